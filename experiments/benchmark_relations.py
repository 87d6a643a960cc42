"""Benchmark: jit-compiled contingency-table Somers' D vs a Python loop over scipy.

Run from the repository root:  ``python -m experiments.benchmark_relations``

The scipy loop is timed on ``scipy_pairs`` random ordered pairs only and extrapolated linearly
to all ``n (n - 1)`` ordered pairs (every scipy call does the same O(N) crosstab work, so the
per-pair time does not depend on which pair). The same pairs give the accuracy check.
"""

from __future__ import annotations

import json
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats

from gem_jax.relations import somers_d


def _synthetic_scores(num_rows: int, num_cols: int, seed: int) -> np.ndarray:
  """Correlated integer scores 0..5 with ~2% missing (-1), CelebA-sized by default."""
  rng = np.random.default_rng(seed)
  latent = rng.normal(size=(num_rows, 4))
  mixing = rng.normal(size=(4, num_cols))
  raw = latent @ mixing + rng.normal(size=(num_rows, num_cols))
  # per-column thresholds at random quantiles -> heavily tied ordinal levels 0..5
  scores = np.empty((num_rows, num_cols), dtype=np.int32)
  for c in range(num_cols):
    cuts = np.quantile(raw[:, c], np.sort(rng.uniform(0.05, 0.95, size=5)))
    scores[:, c] = np.searchsorted(cuts, raw[:, c])
  scores[rng.random((num_rows, num_cols)) < 0.02] = -1
  return scores


def benchmark_somers_d(
    num_rows: int = 202_599,
    num_cols: int = 40,
    seed: int = 0,
    scipy_pairs: int = 20,
    repeats: int = 7,
) -> dict:
  """Times ``somers_d`` (after compilation) against ``scipy.stats.somersd`` per pair.

  Returns a JSON-able dict: ``rows``, ``cols``, ``backend``, ``compile_seconds`` (first call,
  compile + run), ``jnp_seconds`` (median of ``repeats`` calls, ``block_until_ready``),
  ``jnp_seconds_all``, ``jnp_seconds_min``, ``scipy_pairs_measured``,
  ``scipy_seconds_per_pair``, ``scipy_ordered_pairs_total``,
  ``scipy_seconds_all_pairs_extrapolated`` (per pair x n(n-1)), ``speedup`` (extrapolated
  scipy / median jnp), ``speedup_vs_min``, ``max_abs_diff_vs_scipy`` (measured pairs).
  """
  scores_np = _synthetic_scores(num_rows, num_cols, seed)
  scores = jax.device_put(jnp.asarray(scores_np))

  start = time.perf_counter()
  matrix = somers_d(scores).block_until_ready()
  compile_seconds = time.perf_counter() - start

  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    somers_d(scores).block_until_ready()
    times.append(time.perf_counter() - start)
  jnp_seconds = float(np.median(times))

  rng = np.random.default_rng(seed + 1)
  all_pairs = [(i, j) for i in range(num_cols) for j in range(num_cols) if i != j]
  chosen = rng.choice(len(all_pairs), size=min(scipy_pairs, len(all_pairs)), replace=False)
  matrix = np.asarray(matrix, dtype=np.float64)
  max_diff = 0.0
  start = time.perf_counter()
  for t in chosen:
    i, j = all_pairs[t]
    valid = (scores_np[:, i] >= 0) & (scores_np[:, j] >= 0)
    ref = scipy.stats.somersd(scores_np[valid, i], scores_np[valid, j]).statistic
    if np.isfinite(ref):
      max_diff = max(max_diff, abs(float(ref) - matrix[i, j]))
  scipy_seconds = time.perf_counter() - start
  per_pair = scipy_seconds / len(chosen)
  extrapolated = per_pair * len(all_pairs)

  return {
      "rows": int(num_rows),
      "cols": int(num_cols),
      "backend": jax.default_backend(),
      "device": str(jax.devices()[0]),
      "machine": platform.machine(),
      "compile_seconds": compile_seconds,
      "jnp_seconds": jnp_seconds,
      "jnp_seconds_all": times,
      "jnp_seconds_min": min(times),
      "scipy_pairs_measured": int(len(chosen)),
      "scipy_seconds_per_pair": per_pair,
      "scipy_ordered_pairs_total": len(all_pairs),
      "scipy_seconds_all_pairs_extrapolated": extrapolated,
      "speedup": extrapolated / jnp_seconds,
      "speedup_vs_min": extrapolated / min(times),
      "max_abs_diff_vs_scipy": max_diff,
  }


if __name__ == "__main__":
  print(json.dumps(benchmark_somers_d()))
