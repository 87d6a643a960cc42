"""How far a traversal moves what a classifier sees: the effect of each aligned latent on
every attribute, in attribute levels.

For attribute a with latent k and sign s (the alignment's), every image's code mu is decoded
twice, with mu_k = s * (-delta) and mu_k = s * (+delta), the other latents left as encoded.
A classifier of attribute levels (the project's local CNN, `LocalFeatures.outputs(...,
'logits')`) reads both decodings; `effect[a, b]` is the mean over images of the expected level
of attribute b at +delta minus that at -delta. The diagonal says whether a latent changes its
own attribute (a visible traversal moves it by levels, not tenths of a level); the off-diagonal
says what the decoder's graph carries along (GEM: turning up bald should turn down bangs).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from gem_jax.plots import to_uint8


def expected_levels(logits: np.ndarray) -> np.ndarray:
  """logits [N, k, L] -> the softmax expectation of the level 0..L-1, float [N, k]."""
  logits = np.asarray(logits, np.float64)
  p = np.exp(logits - logits.max(axis=-1, keepdims=True))
  p /= p.sum(axis=-1, keepdims=True)
  return p @ np.arange(logits.shape[-1], dtype=np.float64)


def traversal_changes(model, images: np.ndarray,
                      level_logits: Callable[[np.ndarray], np.ndarray],
                      delta: float = 2.0) -> np.ndarray:
  """changes [n, N, k]: changes[a, i] = the k classified levels of image i's decoding at
  +delta minus those at -delta, when the latent aligned to the model's attribute a moves
  (in latent units, along its sign) and the other latents stay as encoded.

  model: a TrainedModel with an alignment. images: uint8 [N, H, W, 3]. level_logits: uint8
  images [N, H, W, 3] -> logits [N, k, L] over levels 0..L-1.
  """
  if model.alignment is None:
    raise ValueError("traversal_effect needs a model with a latent alignment (a GEM run)")
  if delta <= 0:
    raise ValueError(f"delta must be positive, got {delta}")
  mu = model.encode(images)[0]
  rows = []
  for k, sign in zip(model.alignment.latent_of_attribute, model.alignment.signs):
    levels = []
    for value in (-delta, delta):
      z = mu.copy()
      z[:, k] = sign * value
      levels.append(expected_levels(level_logits(to_uint8(model.decode(z)))))
    rows.append(levels[1] - levels[0])
  return np.stack(rows)


def traversal_effect(model, images: np.ndarray, level_logits: Callable[[np.ndarray], np.ndarray],
                     delta: float = 2.0) -> np.ndarray:
  """effect [n, k]: row a = mean change of the k classified levels when the latent aligned to
  the model's attribute a moves from -delta to +delta (in latent units, along its sign): the
  image mean of `traversal_changes`.

  model: a TrainedModel with an alignment. images: uint8 [N, H, W, 3]. level_logits: uint8
  images [N, H, W, 3] -> logits [N, k, L] over levels 0..L-1.
  """
  return traversal_changes(model, images, level_logits, delta).mean(axis=1)
