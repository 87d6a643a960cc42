"""Intervention error: does do(attribute + shift) move the picture as the data's SCM says?

For each attribute a of a guided GEM, every test image is decoded twice: from its code as
encoded (the reconstruction) and after `TrainedModel.intervene(images, {a: shift},
shift=True)`; a classifier of attribute levels (the local CNN) reads both, and the measured
effect on attribute b is the mean over images of the change of b's expected level. The true
effect is the data set's counterfactual (`DatasetSpec.counterfactual_levels`: the same images'
true levels after do(a := level + shift), clipped to 0..5, with each image's own noise where it
can be recovered) minus their true levels.

    error = mean over ordered pairs (a, b), a != b, of |measured[a, b] - true[a, b]|

in levels: what the model gets wrong about the intervention's effect on the other attributes
(descendants and non-descendants alike). The diagonal (the intervened attribute itself) is
reported apart (`own_error`): it measures the decoder, not the graph.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from gem_jax.metrics.traversal import expected_levels
from gem_jax.plots import to_uint8

__all__ = ["measured_intervention_effects", "true_intervention_effects", "intervention_error"]

SHIFT = 2.0  # levels added to the intervened attribute (do(a := level + 2))


def measured_intervention_effects(model, images: np.ndarray,
                                  level_logits: Callable[[np.ndarray], np.ndarray],
                                  names: Sequence[str], shift: float = SHIFT,
                                  weights: np.ndarray | None = None) -> np.ndarray:
  """effects [n, n]: row a = mean change of the classified levels of `names` when the model
  intervenes do(names[a] := own level + shift) on images uint8 [N, H, W, 3]. level_logits:
  uint8 images [N, H, W, 3] -> logits [N, n, L] over levels, columns in `names`' order.
  weights: structural weights [d, d] to intervene with instead of the model's own."""
  base = expected_levels(level_logits(to_uint8(model.reconstruct(images))))
  rows = []
  for name in names:
    moved = to_uint8(model.intervene(images, {name: shift}, shift=True, weights=weights))
    rows.append((expected_levels(level_logits(moved)) - base).mean(axis=0))
  return np.stack(rows)


def true_intervention_effects(spec, examples: dict, names: Sequence[str],
                              shift: float = SHIFT, seed: int = 0) -> np.ndarray | None:
  """effects [n, n]: row a = mean change of the true levels of `names` under do(names[a] :=
  level + shift), from the data set's SCM (`spec.counterfactual_levels`); None for a data set
  without a known SCM."""
  levels = spec.true_levels(examples, list(names))
  if levels is None:
    return None
  rows = []
  for a, name in enumerate(names):
    after = spec.counterfactual_levels(examples, list(names),
                                       {name: np.clip(levels[:, a] + shift, 0, 5)}, seed=seed)
    if after is None:
      return None
    rows.append((np.asarray(after, np.float64) - levels).mean(axis=0))
  return np.stack(rows)


def intervention_error(measured: np.ndarray, true: np.ndarray) -> dict:
  """{'intervention_error': mean |measured - true| off the diagonal, 'own_error': the same on
  the diagonal}, levels; measured and true [n, n]."""
  measured, true = np.asarray(measured, np.float64), np.asarray(true, np.float64)
  if measured.shape != true.shape or measured.ndim != 2 or measured.shape[0] != measured.shape[1]:
    raise ValueError(f"expected two [n, n] effect matrices, got {measured.shape} and "
                     f"{true.shape}")
  off = ~np.eye(len(true), dtype=bool)
  gap = np.abs(measured - true)
  return {"intervention_error": float(gap[off].mean()) if off.any() else None,
          "own_error": float(np.diag(gap).mean())}
