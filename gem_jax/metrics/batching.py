"""A jitted image network over N images in batches of one shape (one compilation)."""
from __future__ import annotations

from typing import Callable

import numpy as np
from tqdm.auto import tqdm


def map_batches(fn: Callable[[np.ndarray], np.ndarray], images: np.ndarray, batch_size: int,
                dim: int, desc: str) -> np.ndarray:
  """fn over images [N, H, W, 3] in batches of b = min(batch_size, N); float32 [N, F].

  fn maps uint8 [b, H, W, 3] -> [b, F]. Every call gets the same batch shape (the last batch
  is padded with zeros and its padding trimmed), so a jitted fn compiles once. A progress bar
  labelled `desc` shows when there are more than 4 batches; N = 0 gives [0, dim].
  """
  n = len(images)
  if n == 0:
    return np.zeros((0, dim), np.float32)
  b = max(1, min(batch_size, n))
  out = []
  for start in tqdm(range(0, n, b), desc=desc, unit="batch", leave=False, disable=n <= 4 * b):
    batch = images[start:start + b]
    padded = np.zeros((b, *batch.shape[1:]), batch.dtype)
    padded[:len(batch)] = batch
    out.append(np.asarray(fn(padded))[:len(batch)])
  return np.concatenate(out).astype(np.float32)
