"""Numbers -> levels 0..5: the quantile rule of labelled folders (labels.csv, pendulum).

Each concept is binned on its own, by edges taken from the TRAIN split only:

    e_j   = np.quantile(train values, j / 6)      j = 1..5  (numpy's default 'linear' rule:
            the sorted values x_0 <= ... <= x_{n-1} read at h = (n - 1) j / 6, interpolated
            between x_floor(h) and x_floor(h)+1)
    level = #{j : e_j < value}                    (np.searchsorted(edges, value, 'left'))

so the six bins (-inf, e_1], (e_1, e_2], ..., (e_5, +inf) hold near-equal shares of the train
values. Ties: a value equal to an edge goes to the LOWER bin, so every copy of a repeated value
gets one level, the train minimum always gets level 0 and a constant concept is level 0
throughout; a value repeated over more than a sixth of the train rows makes some bins empty
(e.g. a 0/1 concept with 70% zeros gets levels 0 and 4). Values outside the train range (test
rows) fall in the end bins: below the train minimum -> 0, above the train maximum -> 5.
"""
from __future__ import annotations

import numpy as np

NUM_LEVELS = 6  # levels 0..5, the scorers' scale


def level_edges(train_values: np.ndarray) -> np.ndarray:
  """Edges float64 [NUM_LEVELS - 1, k] of train values [n, k] (n >= 1), one column each."""
  train_values = np.asarray(train_values, np.float64)
  quantiles = np.arange(1, NUM_LEVELS) / NUM_LEVELS
  return np.quantile(train_values, quantiles, axis=0).reshape(NUM_LEVELS - 1, -1)


def to_levels(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
  """Levels int64 [N, k] in 0..NUM_LEVELS-1 of values [N, k] under edges [NUM_LEVELS - 1, k]."""
  values = np.asarray(values, np.float64)
  columns = [np.searchsorted(edges[:, c], values[:, c], side="left")
             for c in range(edges.shape[1])]
  return np.stack(columns, axis=1).astype(np.int64) if columns else np.zeros(
      (len(values), 0), np.int64)
