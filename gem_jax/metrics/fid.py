"""Fréchet distance (FID) and kernel inception distance (KID) between two feature sets.

Both take features, not images: rows are examples, columns are the dimensions of whatever
extractor made them (gem_jax.metrics.features). Which extractor it was decides what the number
may be called: Inception features give FID/KID, the project's local CNN gives "FD (local CNN)".

Everything is numpy/scipy in float64.

`frechet_distance` computes the trace term Tr((S_a S_b)^{1/2}) in the symmetric form
Tr((S_a^{1/2} S_b S_a^{1/2})^{1/2}) with two symmetric eigendecompositions (`eigh`), instead of
the `scipy.linalg.sqrtm(S_a @ S_b)` of TTUR / pytorch-fid. The two are equal in exact arithmetic
(S_a S_b is similar to S_a^{1/2} S_b S_a^{1/2}, a PSD matrix), but the symmetric form never goes
complex, needs no eps*I retry when a covariance is singular (fewer samples than dimensions:
negative rounding eigenvalues are clipped to 0), and on 2048 x 2048 matrices it is several times
faster than the Schur-based sqrtm. The tests check it against the sqrtm formula.

`kernel_inception_distance` is the unbiased MMD^2 estimator of Bińkowski et al. (2018),
"Demystifying MMD GANs", with the cubic polynomial kernel k(x, y) = (x.y / F + 1)^3, averaged
over random subsets as in their code and torch-fidelity's `kid`.
"""
from __future__ import annotations

import numpy as np


def _check_pair(feats_a, feats_b, min_rows: int = 2) -> tuple[np.ndarray, np.ndarray]:
  """Both feature sets as float64 [N, F], [M, F]; ValueError naming what is wrong."""
  out = []
  for label, feats in (("feats_a", feats_a), ("feats_b", feats_b)):
    feats = np.asarray(feats, np.float64)
    if feats.ndim != 2:
      raise ValueError(f"{label} must be a 2-D array [num_examples, feature_dim]; "
                       f"got shape {feats.shape}")
    if feats.shape[0] < min_rows:
      raise ValueError(f"{label} has {feats.shape[0]} rows; at least {min_rows} are needed "
                       "to estimate a covariance / an unbiased MMD")
    bad = ~np.isfinite(feats)
    if bad.any():
      rows = np.unique(np.nonzero(bad)[0])
      raise ValueError(f"{label} holds NaN or inf in {len(rows)} of {feats.shape[0]} rows "
                       f"(first: row {rows[0]}); the feature extractor or its input is broken")
    out.append(feats)
  a, b = out
  if a.shape[1] != b.shape[1]:
    raise ValueError(f"feature dimensions differ: feats_a is [{a.shape[0]}, {a.shape[1]}] and "
                     f"feats_b is [{b.shape[0]}, {b.shape[1]}]; both sets must come from the "
                     "same extractor")
  return a, b


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
  """Square root of a symmetric PSD matrix [F, F] by eigh; rounding negatives are clipped."""
  w, v = np.linalg.eigh(matrix)
  return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def trace_sqrt_product(cov_a: np.ndarray, cov_b: np.ndarray) -> float:
  """Tr((S_a S_b)^{1/2}) for PSD covariances [F, F], as Tr((S_a^{1/2} S_b S_a^{1/2})^{1/2})."""
  root_a = _psd_sqrt(cov_a)
  middle = root_a @ cov_b @ root_a
  w = np.linalg.eigvalsh(0.5 * (middle + middle.T))
  return float(np.sqrt(np.clip(w, 0.0, None)).sum())


def gaussian_stats(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Mean [F] and unbiased (ddof = 1) covariance [F, F] of features [N, F], in float64."""
  feats = np.asarray(feats, np.float64)
  return feats.mean(axis=0), np.cov(feats, rowvar=False)


def frechet_distance(feats_a, feats_b) -> float:
  """Fréchet distance between Gaussians fitted to two feature sets.

  d^2 = ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^{1/2}), in squared feature units.

  Args:
    feats_a: [N, F] features of one image set (N >= 2).
    feats_b: [M, F] features of the other (M >= 2), from the same extractor.
  Returns:
    The distance (>= 0 up to rounding, ~1e-10 relative).
  Raises:
    ValueError: on mismatched F, fewer than 2 rows, a non-2-D array, NaN or inf.
  """
  a, b = _check_pair(feats_a, feats_b)
  mu_a, cov_a = gaussian_stats(a)
  mu_b, cov_b = gaussian_stats(b)
  cov_a, cov_b = np.atleast_2d(cov_a), np.atleast_2d(cov_b)
  diff = mu_a - mu_b
  return float(diff @ diff + np.trace(cov_a) + np.trace(cov_b)
               - 2.0 * trace_sqrt_product(cov_a, cov_b))


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
  """k(x, y) = (x.y / F + 1)^3 for rows x [N, F], y [M, F]: the kernel matrix [N, M]."""
  k = x @ y.T / x.shape[1] + 1.0
  return k * k * k   # several times faster than k ** 3 in numpy


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
  """Unbiased MMD^2 between x [m, F] and y [m, F] under `polynomial_kernel`.

  (sum_{i != j} k(x_i, x_j) + sum_{i != j} k(y_i, y_j)) / (m (m - 1))
  - 2 sum_{i, j} k(x_i, y_j) / m^2   (Bińkowski et al. 2018, 'unbiased' estimator).
  """
  m = x.shape[0]
  k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
  within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
  return float(within - 2.0 * k_xy.sum() / (m * m))


def kernel_inception_distance(feats_a, feats_b, *, num_subsets: int = 100,
                              subset_size: int = 1000, seed: int = 0) -> dict:
  """KID: unbiased MMD^2 with the cubic polynomial kernel, over random subsets.

  Each of `num_subsets` rounds draws min(subset_size, N, M) rows without replacement from each
  set (numpy RandomState(seed), a draws first) and computes `mmd2_unbiased`.

  Args:
    feats_a: [N, F] features (N >= 2). feats_b: [M, F] features (M >= 2), same extractor.
  Returns:
    {'mean': float, 'std': float (ddof = 0, over subsets), 'subset_size': int,
    'num_subsets': int}. The estimator is unbiased, so the mean can be slightly negative when
    the two distributions are equal.
  Raises:
    ValueError: as `frechet_distance`, or for num_subsets < 1 / subset_size < 2.
  """
  a, b = _check_pair(feats_a, feats_b)
  if num_subsets < 1 or subset_size < 2:
    raise ValueError(f"need num_subsets >= 1 and subset_size >= 2; got {num_subsets} and "
                     f"{subset_size}")
  m = min(subset_size, a.shape[0], b.shape[0])
  rng = np.random.RandomState(seed)
  values = []
  for _ in range(num_subsets):
    x = a[rng.choice(a.shape[0], m, replace=False)]
    y = b[rng.choice(b.shape[0], m, replace=False)]
    values.append(mmd2_unbiased(x, y))
  values = np.asarray(values)
  return dict(mean=float(values.mean()), std=float(values.std()), subset_size=int(m),
              num_subsets=int(num_subsets))
