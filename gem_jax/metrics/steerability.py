"""Steerability: does turning a named latent up raise its attribute in the picture, face by face?

The traversal effect (gem_jax/metrics/traversal.py) is a mean over images: a latent that moves
its attribute by five levels on half of the faces and not at all on the others has an effect
of 2.5. Steerability counts faces instead. For attribute a with latent k and sign s, every
image's code is decoded with mu_k = s * (-delta) and s * (+delta), the other latents as encoded
(`traversal_changes`), and a level reader (a classifier of the attributes' levels 0..L-1, read
as its softmax expectation) reads both decodings:
  - share[a]: the share of images on which attribute a rises by at least `min_rise` levels;
  - off_attribute[a], off_change[a]: the other attribute whose mean change is largest in
    magnitude, and that change (signed, levels): what else the latent moves.
Two readers (docs/metrics.md): the project's local CNN where the data set has labels
(`gem_jax.metrics.local_features`), and a CNN trained on the run's scored images and scores
alone where it has none (`gem_jax.metrics.score_reader`). A number is bounded by its reader's
errors; reports name the reader.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np

from gem_jax.metrics.traversal import traversal_changes

MIN_RISE = 1.0  # levels: a change a person sees on synthetic_faces' 0..5 (0.2 is not)


@dataclasses.dataclass(frozen=True)
class Steerability:
  """attributes [n]; share float [n] in [0, 1]; off_attribute [n] (None with one attribute);
  off_change float [n] (levels); effect float [n, n]: the mean changes (the traversal effect);
  num_images, delta (latent units), min_rise (levels)."""

  attributes: tuple[str, ...]
  share: np.ndarray
  off_attribute: tuple[str | None, ...]
  off_change: np.ndarray
  effect: np.ndarray
  num_images: int
  delta: float
  min_rise: float = MIN_RISE

  def metrics(self) -> dict:
    """The evaluation's keys: 'steerability' [n], its minimum, 'steer_off_attribute' [n],
    'steer_off_change' [n], and what they were measured on."""
    return {"steerability_attributes": list(self.attributes),
            "steerability": self.share.tolist(), "steerability_min": float(self.share.min()),
            "steer_off_attribute": list(self.off_attribute),
            "steer_off_change": self.off_change.tolist(), "steer_images": self.num_images,
            "steer_delta": self.delta, "steer_min_rise": self.min_rise}

  def by_attribute(self) -> tuple[dict[str, float], dict[str, tuple[str | None, float]]]:
    """({attribute: share}, {attribute: (off attribute, off change)}), for
    `AlignmentQuality.with_steerability`."""
    shares = dict(zip(self.attributes, self.share.tolist(), strict=True))
    off = {a: (o, c) for a, o, c in zip(self.attributes, self.off_attribute,
                                        self.off_change.tolist(), strict=True)}
    return shares, off


def steerability_from_changes(changes: np.ndarray, attributes: Sequence[str], delta: float,
                              min_rise: float = MIN_RISE) -> Steerability:
  """Steerability of per-image changes [n, N, n] (changes[a, i, b]: attribute b's level change
  on image i when attribute a's latent is traversed; `traversal_changes` with the reader's
  columns in the attributes' order)."""
  changes = np.asarray(changes, np.float64)
  n = len(attributes)
  if changes.ndim != 3 or changes.shape[0] != n or changes.shape[2] != n:
    raise ValueError(f"expected changes [{n}, N, {n}] for {n} attributes, got "
                     f"{list(changes.shape)}")
  own = changes[np.arange(n), :, np.arange(n)]  # [n, N]
  effect = changes.mean(axis=1)
  others = np.where(np.eye(n, dtype=bool), 0.0, np.abs(effect))
  top = others.argmax(axis=1)
  off_attribute = tuple(attributes[b] if n > 1 else None for b in top)
  off_change = np.array([effect[a, b] if n > 1 else 0.0 for a, b in enumerate(top)])
  return Steerability(attributes=tuple(attributes), share=(own >= min_rise).mean(axis=1),
                      off_attribute=off_attribute, off_change=off_change, effect=effect,
                      num_images=int(changes.shape[1]), delta=float(delta),
                      min_rise=float(min_rise))


def steerability(model, images: np.ndarray, level_logits: Callable[[np.ndarray], np.ndarray],
                 delta: float = 2.0, min_rise: float = MIN_RISE) -> Steerability:
  """The steerability of each of the model's aligned attributes on images uint8 [N, H, W, 3].

  model: a TrainedModel with an alignment; level_logits: uint8 images [N, H, W, 3] -> logits
  [N, n, L], one column per aligned attribute in the alignment's order; delta: each latent goes
  from -delta to +delta (latent units, along its sign); min_rise: levels that count as raised.
  """
  changes = traversal_changes(model, images, level_logits, delta)
  return steerability_from_changes(changes, list(model.alignment.attribute_names), delta,
                                   min_rise)
