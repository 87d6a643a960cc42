"""How well a learned signed graph recovers a true signed DAG (relation recovery).

    report = relation_recovery(learned, true_graph, independent_pairs=[(0, 3), (1, 3)])
    report["sign_accuracy"], report["auroc"], report["directed_auroc"], report["spearman"]

`learned [k, k]` is any signed relation matrix over the k factors (GEM's A with its unit
diagonal, DEAR's SCM weights, a Somers' D matrix) and `true_graph [k, k]` the signed weights of
the true DAG (nonzero: an edge i -> j), in the same node order. Diagonals are ignored. For
Somers' D matrices with attribute names, `gem_jax.scoring.graph_recovery` gives a per-edge
report; this module is the name-free, model-agnostic summary (docs/metrics.md, "Relation
recovery").
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import scipy.stats

from gem_jax.scoring import auroc

__all__ = ["relation_recovery"]


def _check_graphs(learned, true_graph) -> tuple[np.ndarray, np.ndarray]:
  learned = np.asarray(learned, np.float64)
  true_graph = np.asarray(true_graph, np.float64)
  if learned.ndim != 2 or learned.shape[0] != learned.shape[1]:
    raise ValueError(f"learned must be a square [k, k] matrix, got shape {learned.shape}")
  if true_graph.shape != learned.shape:
    raise ValueError(
        f"learned and true_graph must have the same shape, got {learned.shape} and "
        f"{true_graph.shape}"
    )
  if learned.shape[0] < 2:
    raise ValueError(f"need at least 2 nodes, got k = {learned.shape[0]}")
  if not (np.isfinite(learned).all() and np.isfinite(true_graph).all()):
    raise ValueError("learned and true_graph must be finite (no NaN or inf)")
  return learned, true_graph


def _check_pairs(
    independent_pairs: Sequence[tuple[int, int]], true_graph: np.ndarray
) -> list[tuple[int, int]]:
  """The distinct unordered pairs (i < j), checked against the graph's size and edges."""
  k = true_graph.shape[0]
  pairs = set()
  for pair in independent_pairs:
    if len(pair) != 2:
      raise ValueError(f"independent_pairs must hold (i, j) index pairs, got {pair!r}")
    i, j = (int(v) for v in pair)
    if not (0 <= i < k and 0 <= j < k) or i == j:
      raise ValueError(f"independent pair {pair!r} is not two distinct node indices in [0, {k})")
    if true_graph[i, j] or true_graph[j, i]:
      raise ValueError(f"independent pair {pair!r} is joined by a true edge")
    pairs.add((min(i, j), max(i, j)))
  return sorted(pairs)


def relation_recovery(
    learned, true_graph, *, independent_pairs: Optional[Sequence[tuple[int, int]]] = None
) -> dict:
  """Sign, ranking and correlation agreement of a learned graph with the true DAG.

  Args:
    learned: float [k, k], learned[i, j] the learned signed weight of i -> j.
    true_graph: float [k, k], true_graph[i, j] != 0: a true edge i -> j with that signed weight.
    independent_pairs: (i, j) node pairs independent by construction; when given, they are the
      only negatives of `auroc`.

  Returns:
    {"sign_accuracy": share of true edges i -> j with sign(learned[i, j]) ==
    sign(true_graph[i, j]) (a learned 0 counts as wrong); "auroc": AUROC of
    max(|L_ij|, |L_ji|) separating unordered pairs joined by a true edge (either direction)
    from pairs with no edge in either direction (or from `independent_pairs`); "directed_auroc":
    |L_ij| of the true edges i -> j against |L_ij| of every ordered pair i != j with no edge
    i -> j (reversed true edges included; `independent_pairs` not used); "spearman": Spearman
    correlation of learned and true weights over the k (k - 1) off-diagonal ordered pairs;
    "num_true_edges", "num_negative_pairs" (the negatives of `auroc`)}.
    An AUROC with an empty class, a sign accuracy without true edges and a Spearman
    correlation with a constant side are None. AUROCs count ties as 1/2
    (`gem_jax.scoring.auroc`).
  """
  learned, true_graph = _check_graphs(learned, true_graph)
  k = learned.shape[0]
  off_diagonal = ~np.eye(k, dtype=bool)
  edge = (true_graph != 0) & off_diagonal
  magnitude = np.abs(learned)

  signs_right = np.sign(learned[edge]) == np.sign(true_graph[edge])
  sign_accuracy = float(signs_right.mean()) if edge.any() else None

  upper_i, upper_j = np.triu_indices(k, 1)
  pair_score = np.maximum(magnitude[upper_i, upper_j], magnitude[upper_j, upper_i])
  joined = edge[upper_i, upper_j] | edge[upper_j, upper_i]
  if independent_pairs is None:
    negatives = pair_score[~joined]
  else:
    pairs = _check_pairs(independent_pairs, true_graph)
    negatives = np.array([max(magnitude[i, j], magnitude[j, i]) for i, j in pairs])

  spearman = None
  x, y = learned[off_diagonal], true_graph[off_diagonal]
  if np.ptp(x) > 0 and np.ptp(y) > 0:
    spearman = float(scipy.stats.spearmanr(x, y).statistic)

  return {
      "sign_accuracy": sign_accuracy,
      "auroc": auroc(pair_score[joined], negatives),
      "directed_auroc": auroc(magnitude[edge], magnitude[off_diagonal & ~edge]),
      "spearman": spearman,
      "num_true_edges": int(edge.sum()),
      "num_negative_pairs": int(negatives.size),
  }
