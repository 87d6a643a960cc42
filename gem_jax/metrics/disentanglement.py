"""Supervised disentanglement metrics: DCI, MIG, SAP and the FactorVAE score.

    scores = dci(codes, factors)            # {"disentanglement": ..., "completeness": ..., ...}
    gap = mig(codes, factors)               # float in [0, 1]
    s = sap(codes, factors)                 # float in [0, 1]
    fv = factor_vae_score(codes, factors)   # {"train_accuracy": ..., "eval_accuracy": ..., ...}

`codes` is a float array ``[N, d]`` (e.g. posterior means of N images) and `factors` an integer
array ``[N, k]`` of the discrete ground-truth factors of the same images. Definitions and
defaults are disentanglement_lib's (Locatello et al., ICML 2019), with the formulas taken from
scikit-learn / scipy where they live there; disentanglement_lib samples fresh data from a
ground-truth simulator for every metric, while here every metric works on one finite sample.
Each deviation this forces (and every other) is listed in docs/metrics.md, "Disentanglement
metrics". All functions are deterministic given `seed` and return plain Python values.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import scipy.stats
from sklearn import ensemble, metrics, svm

__all__ = [
    "disentanglement_from_importance",
    "completeness_from_importance",
    "dci",
    "mig",
    "mig_details",
    "sap",
    "factor_vae_score",
]

MIN_ROWS = 10
_VOTE_CHUNK = 1024  # FactorVAE votes whose [chunk, batch_size, d] code batch is held at once
_MIN_CODE_VARIANCE = 1e-12  # SAP (continuous): a code with less variance scores 0, as in d_lib


# ----------------------------------------------------------------------------- input checks


def _check_inputs(
    codes, factors, *, integer_factors: bool = True, min_codes: int = 1
) -> tuple[np.ndarray, np.ndarray]:
  """(codes float64 [N, d], factors [N, k]) after the checks every metric shares."""
  codes = np.asarray(codes)
  factors = np.asarray(factors)
  if codes.ndim != 2:
    raise ValueError(f"codes must be a 2-D array [N, d], got shape {codes.shape}")
  if factors.ndim != 2:
    raise ValueError(f"factors must be a 2-D array [N, k], got shape {factors.shape}")
  if codes.shape[0] != factors.shape[0]:
    raise ValueError(
        f"codes and factors must have the same number of rows N, got {codes.shape[0]} codes "
        f"and {factors.shape[0]} factor rows"
    )
  if codes.shape[0] < MIN_ROWS:
    raise ValueError(f"need at least {MIN_ROWS} rows, got N = {codes.shape[0]}")
  if codes.shape[1] < min_codes:
    raise ValueError(f"need at least {min_codes} code dimensions, got d = {codes.shape[1]}")
  if factors.shape[1] < 1:
    raise ValueError("factors has no columns (k = 0)")
  if not np.issubdtype(codes.dtype, np.number) or np.issubdtype(codes.dtype, np.complexfloating):
    raise ValueError(f"codes must be real numbers, got dtype {codes.dtype}")
  codes = codes.astype(np.float64)
  if not np.isfinite(codes).all():
    raise ValueError(f"codes contain {int((~np.isfinite(codes)).sum())} NaN or infinite values")
  if integer_factors:
    if not (np.issubdtype(factors.dtype, np.integer) or factors.dtype == np.bool_):
      raise ValueError(
          f"factors must be discrete: an integer array, got dtype {factors.dtype} (cast with "
          "factors.astype(np.int64) if the values are whole numbers)"
      )
    return codes, factors.astype(np.int64)
  if not np.issubdtype(factors.dtype, np.number) or not np.isfinite(factors).all():
    raise ValueError("factors must be finite real numbers")
  return codes, factors.astype(np.float64)


def _train_test_split(n: int, train_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """(train rows, test rows) of a seeded random split of range(n); both non-empty."""
  if not 0.0 < train_fraction < 1.0:
    raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
  num_train = min(max(int(round(n * train_fraction)), 1), n - 1)
  order = np.random.default_rng(seed).permutation(n)
  return order[:num_train], order[num_train:]


def _is_constant(column: np.ndarray) -> bool:
  return bool(np.all(column == column[0]))


# ----------------------------------------------------------------------------- DCI


def _weighted_specificity(importance: np.ndarray) -> float:
  """sum_i rho_i (1 - H_m(P_i.)) over the rows i of a non-negative [n, m] matrix.

  rho_i = row i's share of the total, P_i. = row i normalised, H_m the entropy in base m.
  Rows without importance weigh 0 and are left out (0 for an all-zero matrix).
  """
  total = importance.sum()
  if total == 0.0:
    return 0.0
  rows = importance.sum(axis=1)
  used = rows > 0
  entropy = scipy.stats.entropy(importance[used], base=importance.shape[1], axis=1)
  return float(np.sum(rows[used] / total * (1.0 - entropy)))


def _check_importance(importance) -> np.ndarray:
  r = np.asarray(importance, np.float64)
  if r.ndim != 2 or r.shape[0] < 2 or r.shape[1] < 2:
    raise ValueError(
        f"the importance matrix must be [d, k] with d >= 2 codes and k >= 2 factors (entropies "
        f"in base d and k), got shape {r.shape}"
    )
  if not np.isfinite(r).all() or (r < 0).any():
    raise ValueError("the importance matrix must be finite and non-negative (pass np.abs(R))")
  return r


def disentanglement_from_importance(importance) -> float:
  """DCI disentanglement of an importance matrix R [d, k] (codes x factors), in [0, 1].

  sum_i rho_i (1 - H_k(P_i.)): rho_i = sum_j R_ij / sum R, P_i. = row i normalised, H_k the
  entropy in base k. 1: every code informs about one factor only; 0: all codes spread evenly.
  """
  return _weighted_specificity(_check_importance(importance))


def completeness_from_importance(importance) -> float:
  """DCI completeness of an importance matrix R [d, k] (codes x factors), in [0, 1].

  sum_j rho_j (1 - H_d(P_.j)): the same as disentanglement with the roles of codes and factors
  swapped. 1: every factor is captured by one code only.
  """
  return _weighted_specificity(_check_importance(importance).T)


def dci(
    codes,
    factors,
    *,
    train_fraction: float = 0.8,
    seed: int = 0,
    max_train: Optional[int] = 10_000,
) -> dict:
  """Eastwood & Williams' DCI with gradient-boosted trees, as in disentanglement_lib.

  Args:
    codes: float [N, d], d >= 2.
    factors: integer [N, k], k >= 2.
    train_fraction: share of the N rows the classifiers are fit on; the rest is the test set.
    seed: the split, the subsample and the trees' random state.
    max_train: at most this many training rows (a seeded subsample; None: all). One
      `GradientBoostingClassifier` per factor is fit, which is slow for large N.

  Returns:
    {"disentanglement", "completeness": floats in [0, 1]; "informativeness_train",
    "informativeness_test": mean classification accuracy over factors; "importance_matrix":
    R [d][k] (lists), |feature_importances_| of factor j's classifier in column j;
    "num_train", "num_test": rows used}.
  """
  codes, factors = _check_inputs(codes, factors, min_codes=2)
  if factors.shape[1] < 2:
    raise ValueError(f"DCI needs k >= 2 factors (entropy in base k), got k = {factors.shape[1]}")
  if max_train is not None and max_train < 1:
    raise ValueError(f"max_train must be positive or None, got {max_train}")
  train, test = _train_test_split(codes.shape[0], train_fraction, seed)
  if max_train is not None:
    train = train[:max_train]  # `train` is already a random order
  importance = np.zeros((codes.shape[1], factors.shape[1]))
  acc_train, acc_test = [], []
  for j in range(factors.shape[1]):
    y_train, y_test = factors[train, j], factors[test, j]
    if _is_constant(y_train):
      # No classifier to fit: the factor gets no importance and the constant is predicted.
      acc_train.append(1.0)
      acc_test.append(float(np.mean(y_test == y_train[0])))
      continue
    model = ensemble.GradientBoostingClassifier(random_state=seed)
    model.fit(codes[train], y_train)
    importance[:, j] = np.abs(model.feature_importances_)
    acc_train.append(float(np.mean(model.predict(codes[train]) == y_train)))
    acc_test.append(float(np.mean(model.predict(codes[test]) == y_test)))
  return {
      "disentanglement": disentanglement_from_importance(importance),
      "completeness": completeness_from_importance(importance),
      "informativeness_train": float(np.mean(acc_train)),
      "informativeness_test": float(np.mean(acc_test)),
      "importance_matrix": importance.tolist(),
      "num_train": int(train.size),
      "num_test": int(test.size),
  }


# ----------------------------------------------------------------------------- MIG


def _histogram_discretize(codes: np.ndarray, num_bins: int) -> np.ndarray:
  """int [N, d]: each code's bin 1..num_bins among num_bins equal-width bins over its range."""
  out = np.empty(codes.shape, np.int64)
  for i in range(codes.shape[1]):
    edges = np.histogram_bin_edges(codes[:, i], bins=num_bins)
    out[:, i] = np.digitize(codes[:, i], edges[:-1])
  return out


def mig_details(codes, factors, *, num_bins: int = 20) -> dict:
  """Chen et al.'s mutual information gap with every intermediate, as in disentanglement_lib.

  Each code is cut into `num_bins` equal-width bins over its range; MI (nats) between every
  binned code and every factor by `sklearn.metrics.mutual_info_score`; per factor j,
  gap_j = (largest MI - second largest MI) / H(factor j).

  Args:
    codes: float [N, d], d >= 2.
    factors: integer [N, k].
    num_bins: bins per code (disentanglement_lib: 20).

  Returns:
    {"mig": mean gap over the non-constant factors; "per_factor_gap": [k] (None for a constant
    factor, whose entropy is 0); "mutual_info": [d][k] nats; "entropy": [k] nats;
    "skipped_factors": indices of the constant factors}.
  """
  codes, factors = _check_inputs(codes, factors, min_codes=2)
  if int(num_bins) != num_bins or num_bins < 2:
    raise ValueError(f"num_bins must be an integer >= 2, got {num_bins}")
  binned = _histogram_discretize(codes, int(num_bins))
  d, k = codes.shape[1], factors.shape[1]
  mi = np.array(
      [[metrics.mutual_info_score(factors[:, j], binned[:, i]) for j in range(k)]
       for i in range(d)]
  )
  entropy = np.array([metrics.mutual_info_score(factors[:, j], factors[:, j]) for j in range(k)])
  skipped = [j for j in range(k) if _is_constant(factors[:, j])]
  if len(skipped) == k:
    raise ValueError("every factor is constant (zero entropy): MIG is undefined")
  top_two = -np.sort(-mi, axis=0)[:2]
  gaps: list[Optional[float]] = [
      None if j in skipped else float((top_two[0, j] - top_two[1, j]) / entropy[j])
      for j in range(k)
  ]
  return {
      "mig": float(np.mean([g for g in gaps if g is not None])),
      "per_factor_gap": gaps,
      "mutual_info": mi.tolist(),
      "entropy": entropy.tolist(),
      "skipped_factors": skipped,
  }


def mig(codes, factors, *, num_bins: int = 20) -> float:
  """Mutual information gap of codes [N, d] for integer factors [N, k], in [0, 1].

  See `mig_details`; constant factors are left out of the mean.
  """
  return mig_details(codes, factors, num_bins=num_bins)["mig"]


# ----------------------------------------------------------------------------- SAP


def _sap_score_matrix(
    codes: np.ndarray,
    factors: np.ndarray,
    train_fraction: float,
    seed: int,
    continuous_factors: bool,
) -> tuple[np.ndarray, list[int]]:
  """(score [d, k], indices of the factors that can be scored) of SAP; see `sap`."""
  d, k = codes.shape[1], factors.shape[1]
  score = np.zeros((d, k))
  if continuous_factors:
    scored = [j for j in range(k) if not _is_constant(factors[:, j])]
    for i in range(d):
      if np.var(codes[:, i], ddof=1) <= _MIN_CODE_VARIANCE:
        continue
      for j in scored:
        score[i, j] = scipy.stats.pearsonr(codes[:, i], factors[:, j]).statistic ** 2
    return score, scored
  train, test = _train_test_split(codes.shape[0], train_fraction, seed)
  scored = [j for j in range(k) if not _is_constant(factors[train, j])]
  for i in range(d):
    for j in scored:
      classifier = svm.LinearSVC(C=0.01, class_weight="balanced", random_state=seed)
      classifier.fit(codes[train, i : i + 1], factors[train, j])
      score[i, j] = np.mean(classifier.predict(codes[test, i : i + 1]) == factors[test, j])
  return score, scored


def sap(
    codes,
    factors,
    *,
    train_fraction: float = 0.8,
    seed: int = 0,
    continuous_factors: bool = False,
) -> float:
  """Kumar et al.'s Separated Attribute Predictability, as in disentanglement_lib, in [0, 1].

  Score matrix S [d, k]: discrete factors (default): the test accuracy of a
  `LinearSVC(C=0.01, class_weight="balanced")` predicting factor j from code i alone, fit on the
  training split; continuous factors: R^2 of a linear fit of factor j on code i over all N rows
  (0 for a code with variance <= 1e-12). SAP = mean over factors of (top - second score).

  Args:
    codes: float [N, d], d >= 2.
    factors: [N, k], integer unless `continuous_factors`.
    train_fraction: share of the rows the classifiers are fit on (discrete factors only).
    seed: the split and the classifiers' random state.
    continuous_factors: score with R^2 instead of classification accuracy.

  Factors that are constant (on the training split, for discrete factors) cannot be scored
  and are left out of the mean.
  """
  codes, factors = _check_inputs(
      codes, factors, integer_factors=not continuous_factors, min_codes=2
  )
  score, scored = _sap_score_matrix(codes, factors, train_fraction, seed, continuous_factors)
  if not scored:
    raise ValueError("every factor is constant: SAP is undefined")
  top_two = -np.sort(-score[:, scored], axis=0)[:2]
  return float(np.mean(top_two[0] - top_two[1]))


# ----------------------------------------------------------------------------- FactorVAE


def _vote_batches(
    factors: np.ndarray, num_votes: int, batch_size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
  """(fixed factor [V], rows [V, batch_size]) of `num_votes` FactorVAE votes from the pool.

  A vote fixes factor k (uniform), takes its value from a uniformly drawn pool row and draws
  `batch_size` rows (with replacement) among the pool rows that share that value.
  """
  n, k = factors.shape
  order = np.empty((k, n), np.int64)  # rows sorted by factor j's value: each value a block
  block_start = np.empty((k, n), np.int64)  # per factor and row: where the row's block starts
  block_size = np.empty((k, n), np.int64)
  for j in range(k):
    _, inverse, counts = np.unique(factors[:, j], return_inverse=True, return_counts=True)
    order[j] = np.argsort(inverse, kind="stable")
    block_start[j] = (np.cumsum(counts) - counts)[inverse]
    block_size[j] = counts[inverse]
  fixed = rng.integers(k, size=num_votes)
  anchor = rng.integers(n, size=num_votes)
  start = block_start[fixed, anchor][:, None]
  offset = rng.integers(0, block_size[fixed, anchor][:, None], size=(num_votes, batch_size))
  return fixed, order[fixed[:, None], start + offset]


def _votes(
    codes: np.ndarray,
    factors: np.ndarray,
    num_votes: int,
    batch_size: int,
    rng: np.random.Generator,
    global_variance: np.ndarray,
    active: np.ndarray,
) -> np.ndarray:
  """int [k, d]: votes[j, i] = how many votes fixed factor j and found code i least variable."""
  fixed, rows = _vote_batches(factors, num_votes, batch_size, rng)
  active_dims = np.flatnonzero(active)
  votes = np.zeros((factors.shape[1], codes.shape[1]), np.int64)
  for lo in range(0, num_votes, _VOTE_CHUNK):
    batch = codes[rows[lo : lo + _VOTE_CHUNK]][:, :, active_dims]  # [chunk, batch_size, a]
    ratio = np.var(batch, axis=1, ddof=1) / global_variance[active_dims]
    np.add.at(votes, (fixed[lo : lo + _VOTE_CHUNK], active_dims[np.argmin(ratio, axis=1)]), 1)
  return votes


def factor_vae_score(
    codes,
    factors,
    *,
    batch_size: int = 64,
    num_train: int = 10_000,
    num_eval: int = 5_000,
    num_variance_estimate: int = 10_000,
    prune_threshold: float = 0.05,
    seed: int = 0,
) -> dict:
  """Kim & Mnih's FactorVAE score (majority-vote accuracy), as in disentanglement_lib.

  Global variances (ddof=1) from `num_variance_estimate` pool rows (all N if fewer); a code
  dimension is active when its global standard deviation is >= `prune_threshold` (and > 0).
  A vote fixes a factor k, draws `batch_size` codes sharing one value of it (see
  `_vote_batches`: from the pool, not from a simulator), divides their per-dimension variance
  (ddof=1) by the global variance and votes (argmin over the active dims, k). Each dimension
  predicts the factor it got most training votes for (ties: the lowest factor index; a
  dimension with no votes predicts factor 0); accuracy = share of votes predicted right.

  Args:
    codes: float [N, d].
    factors: integer [N, k].
    batch_size: codes per vote (>= 2).
    num_train, num_eval: training and evaluation votes.
    num_variance_estimate: rows drawn (without replacement) for the global variances.
    prune_threshold: minimum global standard deviation of an active dimension.
    seed: every random draw.

  Returns:
    {"train_accuracy", "eval_accuracy": floats in [0, 1] (0.0 without active dims);
    "num_active_dims": int}.
  """
  codes, factors = _check_inputs(codes, factors)
  if batch_size < 2:
    raise ValueError(f"batch_size must be >= 2 (a variance per vote), got {batch_size}")
  if num_train < 1 or num_eval < 1 or num_variance_estimate < 2:
    raise ValueError(
        "num_train and num_eval must be >= 1 and num_variance_estimate >= 2, got "
        f"{num_train}, {num_eval}, {num_variance_estimate}"
    )
  if not prune_threshold >= 0:
    raise ValueError(f"prune_threshold must be >= 0, got {prune_threshold}")
  rng = np.random.default_rng(seed)
  n = codes.shape[0]
  sample = rng.choice(n, size=min(num_variance_estimate, n), replace=False)
  global_variance = np.var(codes[sample], axis=0, ddof=1)
  active = (np.sqrt(global_variance) >= prune_threshold) & (global_variance > 0)
  if not active.any():
    return {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0}
  train_votes = _votes(codes, factors, num_train, batch_size, rng, global_variance, active)
  eval_votes = _votes(codes, factors, num_eval, batch_size, rng, global_variance, active)
  classifier = np.argmax(train_votes, axis=0)  # [d]: the factor each dimension predicts
  dims = np.arange(codes.shape[1])
  return {
      "train_accuracy": float(train_votes[classifier, dims].sum() / train_votes.sum()),
      "eval_accuracy": float(eval_votes[classifier, dims].sum() / eval_votes.sum()),
      "num_active_dims": int(active.sum()),
  }
