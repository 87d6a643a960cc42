"""What scores say: Somers' D, the scorer's accuracy against labels, and the truth comparison.

    report = relation_report(scores, ["bangs", "bald"], labels=levels, bootstrap=200,
                             truth=relation_truth(get_dataset("synthetic_faces")))

`S[i, j] = D(A_j | A_i)` is the impact of attribute i on attribute j (docs/design.md stage 5).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import jax
import numpy as np

from gem_jax.relations import RelationTruth, graph_recovery, somers_d, somers_d_bootstrap
from gem_jax.relations.recovery import json_float, json_matrix
from gem_jax.scoring.attributes import NUM_LEVELS

__all__ = ["DEFINITION", "format_matrix", "relation_report", "scores_somers_d",
           "scorer_accuracy"]

DEFINITION = (
    "S[i][j] = Somers' D(A_j | A_i) = (N_c - N_d) / (pairs of images not tied on A_i): the "
    "impact of attributes[i] (row) on attributes[j] (column); diagonal 1; missing scores (-1) "
    "left out pairwise"
)


def scores_somers_d(scores: np.ndarray) -> np.ndarray:
  """float64 [n, n] Somers' D of int scores [N, n] in 0..5 (-1 = missing)."""
  return np.asarray(somers_d(np.asarray(scores, np.int32), num_levels=NUM_LEVELS), np.float64)


def _reindex(matrix: np.ndarray, src: Sequence[str], dst: Sequence[str]) -> np.ndarray:
  idx = [list(src).index(a) for a in dst]
  return np.asarray(matrix)[np.ix_(idx, idx)]


def scorer_accuracy(scores: np.ndarray, labels: np.ndarray, attribute_names: Sequence[str]) -> dict:
  """How the scores [N, n] match integer labels [N, n] (-1 in either = left out).

  Per attribute: exact-level accuracy, accuracy within +-1 level, the count it is computed
  on, and the confusion matrix (rows = label level, columns = score level). Plus the paper's
  Figure 6 "zero-scoring rate": the fraction of images whose scores are all 0, and the same
  for the labels (what a perfect scorer would show).
  """
  scores = np.asarray(scores, np.int64)
  labels = np.asarray(labels, np.int64)
  per: dict[str, dict] = {}
  for j, name in enumerate(attribute_names):
    ok = (scores[:, j] >= 0) & (labels[:, j] >= 0)
    if not (labels[:, j] >= 0).any():
      continue  # no label for this attribute
    s, l = scores[ok, j], labels[ok, j]
    conf = np.zeros((NUM_LEVELS, NUM_LEVELS), np.int64)
    np.add.at(conf, (l, s), 1)
    per[name] = {
        "exact": json_float(np.mean(s == l)) if ok.any() else None,
        "within_1": json_float(np.mean(np.abs(s - l) <= 1)) if ok.any() else None,
        "num_compared": int(ok.sum()),
        "missing_scores": int((scores[:, j] < 0).sum()),
        "confusion_label_by_score": conf.tolist(),
    }
  exact = [v["exact"] for v in per.values() if v["exact"] is not None]
  within = [v["within_1"] for v in per.values() if v["within_1"] is not None]
  labelled = labels >= 0
  return {
      "per_attribute": per,
      "mean_exact": json_float(np.mean(exact)) if exact else None,
      "mean_within_1": json_float(np.mean(within)) if within else None,
      "all_zero_rate": json_float(np.mean(np.all(scores == 0, axis=1))),
      "all_zero_rate_labels": (
          json_float(np.mean(np.all(labels == 0, axis=1))) if labelled.all() else None
      ),
      "any_missing_rate": json_float(np.mean(np.any(scores < 0, axis=1))),
  }


def _max_abs_offdiag(a: np.ndarray, b: np.ndarray, names: Sequence[str]) -> dict:
  d = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))
  np.fill_diagonal(d, 0.0)
  i, j = np.unravel_index(int(np.argmax(d)), d.shape)
  if d[i, j] == 0:
    return {"max_abs_diff": 0.0, "at": None, "mean_abs_diff": 0.0}
  return {
      "max_abs_diff": json_float(d[i, j]),
      "at": [names[i], names[j]],
      "mean_abs_diff": json_float(d.sum() / max(1, d.size - len(names))),
  }


def _share_inside(lower: np.ndarray, upper: np.ndarray, s: np.ndarray) -> Optional[float]:
  """Share of the off-diagonal entries of s [n, n] inside [lower, upper] (1e-9 slack)."""
  off = ~np.eye(s.shape[0], dtype=bool)
  inside = (lower <= s + 1e-9) & (s <= upper + 1e-9)
  return json_float(np.mean(inside[off]))


def _bootstrap(scores: np.ndarray, bootstrap: int, seed: int, confidence: float):
  """(lower, upper) float64 [n, n] percentile CIs and their report block."""
  _, lo, hi = somers_d_bootstrap(scores, jax.random.PRNGKey(seed), num_resamples=int(bootstrap),
                                 num_levels=NUM_LEVELS, confidence=confidence)
  lower, upper = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
  block = {"num_resamples": int(bootstrap), "confidence": confidence, "seed": seed,
           "lower": json_matrix(lower), "upper": json_matrix(upper)}
  return lower, upper, block


def _population(truth: RelationTruth, names: list[str], s: np.ndarray,
                s_labels: Optional[np.ndarray], ci: Optional[tuple]) -> dict:
  """S (and the labels' S) [n, n] against the truth's population S, shared attributes only."""
  shared = [a for a in names if a in truth.attributes]
  pop = _reindex(truth.population_somers_d, truth.attributes, shared)
  block = {
      "size": truth.population_size,
      "seed": truth.population_seed,
      "attributes": shared,
      "somers_d": json_matrix(pop),
      "scores_vs_population": _max_abs_offdiag(_reindex(s, names, shared), pop, shared),
  }
  if s_labels is not None:
    block["labels_vs_population"] = _max_abs_offdiag(
        _reindex(s_labels, names, shared), pop, shared)
  if ci is not None:
    lower, upper = (_reindex(m, names, shared) for m in ci)
    block["ci_covers_population_S"] = _share_inside(lower, upper, pop)
  return block


def _truth(truth: RelationTruth, names: list[str], s: np.ndarray,
           s_labels: Optional[np.ndarray], ci: Optional[tuple]) -> dict:
  t: dict[str, Any] = {"name": truth.name, "from_scores": graph_recovery(s, names, truth)}
  if s_labels is not None:
    t["from_labels"] = graph_recovery(s_labels, names, truth)
  if truth.population_somers_d is not None:
    t["population"] = _population(truth, names, s, s_labels, ci)
  return t


def relation_report(
    scores: np.ndarray,
    attribute_names: Sequence[str],
    labels: Optional[np.ndarray] = None,
    bootstrap: int = 0,
    *,
    seed: int = 0,
    confidence: float = 0.95,
    truth: Optional[RelationTruth] = None,
) -> dict:
  """Somers' D of the scores and, given labels / a known truth, how good they are.

  Args:
    scores: int [N, n], 0..5, -1 = missing.
    attribute_names: the n column names.
    labels: optional int [N, n] true levels aligned with the columns (-1 = no label).
    bootstrap: number of bootstrap resamples for percentile CIs (0 = none).
    seed: bootstrap seed.
    confidence: CI level.
    truth: the data set's true relations (`relation_truth(spec)`).

  Returns:
    {"attributes", "num_images", "missing_per_attribute", "somers_d" [n][n], "definition",
    "bootstrap" (if asked: lower/upper), "labels" (if labels: accuracy, all-zero rate,
    "somers_d_labels" and its difference to S), "truth" (if truth: `graph_recovery` of S and,
    for reference, of the labels' S, and the comparison with the population S)}.
  """
  scores = np.asarray(scores, np.int32)
  names = list(attribute_names)
  if scores.ndim != 2 or scores.shape[1] != len(names):
    raise ValueError(f"scores {scores.shape} do not match {len(names)} attribute names")
  s = scores_somers_d(scores)
  report: dict[str, Any] = {
      "attributes": names,
      "num_images": int(scores.shape[0]),
      "missing_per_attribute": {a: int((scores[:, j] < 0).sum()) for j, a in enumerate(names)},
      "definition": DEFINITION,
      "somers_d": json_matrix(s),
  }
  ci = None
  if bootstrap:
    lower, upper, report["bootstrap"] = _bootstrap(scores, bootstrap, seed, confidence)
    ci = (lower, upper)
  s_labels = None
  if labels is not None:
    labels = np.asarray(labels, np.int32)
    if labels.shape != scores.shape:
      raise ValueError(f"labels {labels.shape} do not match scores {scores.shape}")
    s_labels = scores_somers_d(labels)
    report["labels"] = {
        "scorer_accuracy": scorer_accuracy(scores, labels, names),
        "somers_d_labels": json_matrix(s_labels),
        "scores_vs_labels": _max_abs_offdiag(s, s_labels, names),
    }
    if ci is not None:
      report["labels"]["ci_covers_labels_S"] = _share_inside(*ci, s_labels)
  if truth is not None:
    report["truth"] = _truth(truth, names, s, s_labels, ci)
  return report


def format_matrix(matrix: Any, names: Sequence[str], nd: int = 2) -> str:
  """A plain-text table of a square matrix, rows and columns named (rows = 'impact of')."""
  m = np.asarray(matrix, np.float64)
  width = max(7, max(len(n) for n in names) + 1)
  head = " " * (width + 2) + "".join(f"{n[:width]:>{width}}" for n in names)
  rows = [head]
  for i, n in enumerate(names):
    cells = "".join(f"{_fmt(v, nd):>{width}}" for v in m[i])
    rows.append(f"{n[:width]:>{width}}  {cells}")
  return "\n".join(rows)


def _fmt(v: float, nd: int = 2) -> str:
  if v is None or not np.isfinite(v):
    return "nan"
  s = f"{v:+.{nd}f}"
  return s[1:] if float(s) == 0 else s
