"""Reconstructions that keep the attributes: does a level reader see the same attribute levels
in an image and in its reconstruction?

A reconstruction can score well on MSE and FD while drawing a face with a lighter beard or no
bangs; that loss matters here, since every traversal and edit starts from a reconstruction.
Per attribute, with a level reader (the local CNN, or the run's score reader; its softmax
expectation of the level, `gem_jax.metrics.traversal.expected_levels`):
  - keeps_input: the share of images whose reconstruction it reads within `tolerance` levels
    (|difference| <= tolerance) of what it reads on the image itself;
  - keeps_truth: where the data set knows the true levels, the share whose reconstruction it
    reads within `tolerance` of the true level; input_truth: the same for the images
    themselves, the reader's own ceiling (a reconstruction cannot be read better than that).
"""
from __future__ import annotations

import numpy as np

TOLERANCE = 1.0  # levels


def kept_attributes(input_levels: np.ndarray, recon_levels: np.ndarray,
                    true_levels: np.ndarray | None = None,
                    tolerance: float = TOLERANCE) -> dict[str, np.ndarray]:
  """{'keeps_input': [n]} and, with true levels, {'keeps_truth': [n], 'input_truth': [n]}:
  shares in [0, 1] per attribute.

  input_levels, recon_levels: float [N, n], the reader's levels of the images and of their
  reconstructions; true_levels: int or float [N, n] in the same attribute order, or None.
  """
  x, r = np.asarray(input_levels, np.float64), np.asarray(recon_levels, np.float64)
  if x.shape != r.shape or x.ndim != 2:
    raise ValueError(f"expected input and reconstruction levels of one shape [N, n], got "
                     f"{list(x.shape)} and {list(r.shape)}")
  within = lambda a, b: (np.abs(a - b) <= tolerance).mean(axis=0)
  out = {"keeps_input": within(r, x)}
  if true_levels is not None:
    t = np.asarray(true_levels, np.float64)
    if t.shape != x.shape:
      raise ValueError(f"expected true levels {list(x.shape)}, got {list(t.shape)}")
    out["keeps_truth"], out["input_truth"] = within(r, t), within(x, t)
  return out
