"""How well a signed relation matrix recovers a true signed DAG (relation recovery).

    report = relation_recovery(learned, true_graph, independent_pairs=[(0, 3), (1, 3)])
    report["sign_accuracy"], report["auroc"], report["directed_auroc"], report["spearman"]
    report = graph_recovery(S, ["bangs", "bald"], truth)   # named, per edge, for a report
    report = graph_metrics(learned, true_graph)   # SHD, orientation, F1 at EDGE_THRESHOLD, AUROC

`learned [k, k]` is any signed relation matrix over the k factors (GEM's A with its unit
diagonal, DEAR's SCM weights, a Somers' D matrix) and `true_graph [k, k]` the signed weights of
the true DAG (nonzero: an edge i -> j), in the same node order. Diagonals are ignored.
`relation_recovery` is the name-free, model-agnostic summary (docs/metrics.md, "Relation
recovery"); `graph_recovery` is the per-edge report of a Somers' D matrix with attribute names
against a `RelationTruth` (scorer_accuracy.json). Both read the same pair scores
(`_pair_scores`): the sign of every true edge, max(|L_ij|, |L_ji|) per unordered pair and
|L_ij| per ordered pair; AUROCs are `auroc` (Mann-Whitney, ties count 1/2).
`graph_metrics` is the field's graph-recovery summary (SHD, orientation, precision/recall/F1,
AUROC) of a thresholded reading of any graph, the same for GEM's A, a Somers' D matrix and the
output of a causal-discovery method (docs/metrics.md, "Graph metrics of the field").
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import numpy as np
import scipy.stats

# |weight| at or above which an entry L_ij claims the edge i -> j, for every method alike
# (docs/metrics.md, "Graph metrics of the field", says why 0.1).
EDGE_THRESHOLD = 0.1
# The state of an unordered pair {i, j}, i < j, in `_pair_states`.
NONE, FORWARD, BACKWARD, UNDIRECTED = 0, 1, 2, 3

__all__ = [
    "EDGE_THRESHOLD",
    "RelationTruth",
    "auroc",
    "graph_metrics",
    "graph_recovery",
    "json_float",
    "json_matrix",
    "relation_recovery",
]


@dataclasses.dataclass(frozen=True)
class RelationTruth:
  """The true relations of a data set with a known generative model.

  true_graph[i, j] != 0: a direct edge attributes[i] -> attributes[j] (signed weight), float
  [k, k] over `attributes`. independent_pairs: attribute pairs independent by construction (no
  path, no common cause). population_somers_d: float [k, k] Somers' D of a large sample from
  the model (what an ideal scorer's S converges to), from `population_size` draws with
  `population_seed`.
  """

  name: str
  attributes: tuple[str, ...]
  true_graph: np.ndarray
  independent_pairs: tuple[tuple[str, str], ...]
  population_somers_d: Optional[np.ndarray] = None
  population_size: int = 0
  population_seed: int = 0


def json_float(x: Optional[float], nd: int = 4) -> Optional[float]:
  """`x` rounded to `nd` digits for a JSON report; None for None, nan and inf."""
  return None if x is None or not np.isfinite(x) else round(float(x), nd)


def json_matrix(m, nd: int = 4) -> list[list[Optional[float]]]:
  """A float matrix [r, c] as nested lists of `json_float`s."""
  return [[json_float(v, nd) for v in row] for row in np.asarray(m, np.float64)]


def auroc(positives: Sequence[float], negatives: Sequence[float]) -> Optional[float]:
  """P(a positive outscores a negative), ties count 1/2 (Mann-Whitney U / (n_p n_n)).

  positives: float [P]; negatives: float [Q]. None when either is empty.
  """
  p = np.asarray(positives, np.float64)[:, None]
  n = np.asarray(negatives, np.float64)[None, :]
  if p.size == 0 or n.size == 0:
    return None
  return float(np.mean((p > n) + 0.5 * (p == n)))


@dataclasses.dataclass(frozen=True)
class _PairScores:
  """What both reports read off a learned matrix L [k, k] and a true graph W [k, k].

  edges: (i, j) of the true edges i -> j off the diagonal, row-major; edge_abs, edge_weight,
  signs_right: |L_ij|, |W_ij| and sign(L_ij) == sign(W_ij) per edge [E]. joined: (i, j), i < j,
  of the unordered pairs with an edge in either direction; joined_max, joined_weight:
  max(|L_ij|, |L_ji|) and max(|W_ij|, |W_ji|) per joined pair [P]. pair_max: max(|L_ij|,
  |L_ji|) of the given negative pairs [Q]; pair_abs: |L_ij| then |L_ji| of each of them [2Q].
  """

  edges: list[tuple[int, int]]
  edge_abs: np.ndarray
  edge_weight: np.ndarray
  signs_right: np.ndarray
  joined: list[tuple[int, int]]
  joined_max: np.ndarray
  joined_weight: np.ndarray
  pair_max: np.ndarray
  pair_abs: np.ndarray


def _pair_scores(learned: np.ndarray, true_graph: np.ndarray,
                 negative_pairs: Sequence[tuple[int, int]]) -> _PairScores:
  """`_PairScores` of float [k, k] matrices; `negative_pairs` are (i, j) index pairs."""
  k = learned.shape[0]
  mag, weight = np.abs(learned), np.abs(true_graph)
  edge = (true_graph != 0) & ~np.eye(k, dtype=bool)
  edges = [(int(i), int(j)) for i, j in zip(*np.nonzero(edge))]
  joined = [(i, j) for i in range(k) for j in range(i + 1, k) if edge[i, j] or edge[j, i]]
  return _PairScores(
      edges=edges,
      edge_abs=mag[edge],
      edge_weight=weight[edge],
      signs_right=np.sign(learned[edge]) == np.sign(true_graph[edge]),
      joined=joined,
      joined_max=np.array([max(mag[i, j], mag[j, i]) for i, j in joined], np.float64),
      joined_weight=np.array([max(weight[i, j], weight[j, i]) for i, j in joined], np.float64),
      pair_max=np.array([max(mag[i, j], mag[j, i]) for i, j in negative_pairs], np.float64),
      pair_abs=np.array([v for i, j in negative_pairs for v in (mag[i, j], mag[j, i])],
                        np.float64),
  )


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


def _orientation_accuracy(learned: np.ndarray, true_graph: np.ndarray) -> Optional[float]:
  """Share of true edges i -> j (no true j -> i) with |L_ij| > |L_ji|, ties 1/2; None if none."""
  k = learned.shape[0]
  mag = np.abs(learned)
  votes = [1.0 if mag[i, j] > mag[j, i] else 0.5 if mag[i, j] == mag[j, i] else 0.0
           for i in range(k) for j in range(k)
           if i != j and true_graph[i, j] != 0 and true_graph[j, i] == 0]
  return float(np.mean(votes)) if votes else None


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
    i -> j (reversed true edges included; `independent_pairs` not used); "auroc_all_pairs":
    `auroc` against every unordered pair without an edge (confounded and indirect pairs
    included) even when `independent_pairs` is given; "orientation_accuracy": share of true
    edges i -> j (without a true j -> i) with |L_ij| > |L_ji| (a tie counts 1/2); "spearman":
    Spearman correlation of learned and true weights over the k (k - 1) off-diagonal ordered
    pairs; "weight_mae": mean |L_ij - W_ij| over those pairs; "num_true_edges",
    "num_negative_pairs" (the negatives of `auroc`)}.
    An AUROC with an empty class, a sign accuracy without true edges and a Spearman
    correlation with a constant side are None. AUROCs count ties as 1/2 (`auroc`).
  """
  learned, true_graph = _check_graphs(learned, true_graph)
  k = learned.shape[0]
  edge = true_graph != 0
  unjoined = [(i, j) for i in range(k) for j in range(i + 1, k)
              if not (edge[i, j] or edge[j, i])]
  pairs = unjoined if independent_pairs is None else _check_pairs(independent_pairs,
                                                                  true_graph)
  p = _pair_scores(learned, true_graph, pairs)
  all_pairs = _pair_scores(learned, true_graph, unjoined)

  off_diagonal = ~np.eye(k, dtype=bool)
  non_edge = off_diagonal & (true_graph == 0)
  spearman = None
  x, y = learned[off_diagonal], true_graph[off_diagonal]
  if np.ptp(x) > 0 and np.ptp(y) > 0:
    spearman = float(scipy.stats.spearmanr(x, y).statistic)

  return {
      "sign_accuracy": float(p.signs_right.mean()) if p.edges else None,
      "auroc": auroc(p.joined_max, p.pair_max),
      "directed_auroc": auroc(p.edge_abs, np.abs(learned)[non_edge]),
      "auroc_all_pairs": auroc(all_pairs.joined_max, all_pairs.pair_max),
      "orientation_accuracy": _orientation_accuracy(learned, true_graph),
      "spearman": spearman,
      "weight_mae": float(np.mean(np.abs(x - y))),
      "num_true_edges": len(p.edges),
      "num_negative_pairs": int(p.pair_max.size),
  }


def _reindex(matrix: np.ndarray, src: Sequence[str], dst: Sequence[str]) -> np.ndarray:
  """matrix [len(src), len(src)] -> [len(dst), len(dst)], rows/columns picked by name."""
  idx = [list(src).index(a) for a in dst]
  return np.asarray(matrix)[np.ix_(idx, idx)]


def _ranked_pairs(s: np.ndarray, names: Sequence[str], kind: dict) -> list[dict]:
  """Every unordered pair by max(|S_ij|, |S_ji|), largest first, labelled by `kind`."""
  ranked = []
  for i in range(len(names)):
    for j in range(i + 1, len(names)):
      ranked.append({
          "pair": [names[i], names[j]],
          "max_abs_S": json_float(max(abs(s[i, j]), abs(s[j, i]))),
          "kind": kind.get((i, j), "indirect"),
      })
  ranked.sort(key=lambda r: -r["max_abs_S"])
  return ranked


def _edge_rows(s: np.ndarray, w: np.ndarray, names: Sequence[str], p: _PairScores) -> list[dict]:
  return [{
      "from": names[i],
      "to": names[j],
      "weight": json_float(w[i, j]),
      "S_from_to": json_float(s[i, j]),
      "S_to_from": json_float(s[j, i]),
      "sign_agrees": bool(right),
      "stronger_in_causal_direction": bool(abs(s[i, j]) >= abs(s[j, i])),
  } for (i, j), right in zip(p.edges, p.signs_right)]


def graph_recovery(
    somers: np.ndarray,
    attribute_names: Sequence[str],
    truth: RelationTruth,
    strong_threshold: float = 0.7,
) -> dict:
  """How a Somers' D matrix over `attribute_names` matches `truth` (shared attributes only).

  `somers` is float [n, n] over the n `attribute_names`; `truth` any object with
  `attributes`, `true_graph` [k, k] and `independent_pairs` (a `RelationTruth`).

  * edges: every true edge i -> j with S[i, j], S[j, i], and whether sign(S[i, j]) equals the
    sign of the structural weight (both directions share N_c - N_d, hence the sign);
  * sign_agreement: the fraction of true edges whose sign S gets right;
  * auroc_undirected: max(|S_ij|, |S_ji|) separating attribute pairs joined by a true edge
    (either direction) from the independent pairs; auroc_directed: |S_ij| of the directed true
    edges vs |S_ij| and |S_ji| of the independent pairs; *_strong: the same with only edges
    whose |weight| >= strong_threshold. Pairs related only indirectly (a common cause or a
    path of length > 1) are in neither group;
  * direction_agreement: the fraction of true edges with |S[i, j]| >= |S[j, i]| (for
    information: Somers' D's asymmetry follows ties, not causal direction);
  * pairs_ranked: every unordered pair by max(|S_ij|, |S_ji|), labelled edge/independent/
    indirect.
  """
  names = [a for a in attribute_names if a in truth.attributes]
  s = np.asarray(_reindex(somers, attribute_names, names), np.float64)
  w = np.asarray(_reindex(truth.true_graph, truth.attributes, names), np.float64)
  indep = [(a, b) for a, b in truth.independent_pairs if a in names and b in names]
  pairs = [tuple(sorted((names.index(a), names.index(b)))) for a, b in indep]
  p = _pair_scores(s, w, pairs)
  edges = _edge_rows(s, w, names, p)
  strong_u = p.joined_max[p.joined_weight >= strong_threshold]
  strong_d = p.edge_abs[p.edge_weight >= strong_threshold]
  kind = {pair: "edge" for pair in p.joined}
  kind.update({pair: "independent" for pair in pairs})
  return {
      "attributes": names,
      "true_graph": json_matrix(w),
      "edges": edges,
      "sign_agreement": json_float(np.mean(p.signs_right)) if edges else None,
      "direction_agreement": (
          json_float(np.mean([e["stronger_in_causal_direction"] for e in edges]))
          if edges else None
      ),
      "num_true_edges": len(edges),
      "independent_pairs": [list(pair) for pair in indep],
      "auroc_undirected": json_float(auroc(p.joined_max, p.pair_max)),
      "auroc_directed": json_float(auroc(p.edge_abs, p.pair_abs)),
      "auroc_undirected_strong": json_float(auroc(strong_u, p.pair_max)),
      "auroc_directed_strong": json_float(auroc(strong_d, p.pair_abs)),
      "strong_threshold": strong_threshold,
      "max_abs_S_independent_pairs": json_float(max(p.pair_max)) if pairs else None,
      "min_max_abs_S_true_edges": json_float(min(p.joined_max)) if p.joined else None,
      "pairs_ranked": _ranked_pairs(s, names, kind),
  }


def _pair_states(claimed: np.ndarray) -> np.ndarray:
  """int [k, k] -> [k (k - 1) / 2]: the state of each unordered pair (i, j), i < j, row-major:
  NONE, FORWARD (i -> j), BACKWARD (j -> i) or UNDIRECTED (claimed both ways: a CPDAG's
  undirected edge or a 2-cycle, which claim no orientation). `claimed` is bool [k, k]."""
  upper = np.triu_indices(claimed.shape[0], k=1)
  forward, backward = claimed[upper], claimed.T[upper]
  return (np.where(forward, FORWARD, NONE) + np.where(backward, BACKWARD, NONE)).astype(int)


def _orientation(learned_states: np.ndarray, true_states: np.ndarray) -> Optional[float]:
  """Over the true directed pairs that the learned skeleton holds: 1 right way round, 0.5
  undirected, 0 reversed; None when the skeleton holds no true edge."""
  directed = np.isin(true_states, (FORWARD, BACKWARD)) & (learned_states != NONE)
  votes = np.where(learned_states[directed] == true_states[directed], 1.0,
                   np.where(learned_states[directed] == UNDIRECTED, 0.5, 0.0))
  return float(votes.mean()) if votes.size else None


def graph_metrics(learned, true_graph, threshold: float = EDGE_THRESHOLD) -> dict:
  """SHD, orientation, precision/recall/F1 and AUROC of a graph against the true DAG.

  Args:
    learned: float [k, k], learned[i, j] the weight of i -> j (any sign; GEM's A, a Somers' D
      matrix, a discovered graph: 1 for i -> j, 1 both ways for an undirected edge). i -> j
      is claimed when |learned[i, j]| >= threshold; the diagonal is ignored.
    true_graph: float [k, k], true_graph[i, j] != 0: a true edge i -> j.
    threshold: |weight| that claims an edge, > 0 (EDGE_THRESHOLD = 0.1 for every method).

  Returns:
    {"shd": unordered pairs whose state (none, i -> j, j -> i, undirected) differs from the
    truth's (a missing, extra or reversed edge, or an undirected one where the truth is
    directed: 1 each), out of "num_pairs" = k (k - 1) / 2; "orientation": over the true edges
    whose pair the claimed skeleton holds, 1 right way round, 0.5 undirected, 0 reversed
    (None when none is held); "precision", "recall", "f1" of the claimed directed edges
    {(i, j): |L_ij| >= threshold} against the true ones (an undirected edge claims both
    directions, so it is at most one hit and one false claim), f1 = 2 TP / (2 TP + FP + FN)
    (0 when precision and recall are 0; None only with neither claims nor true edges),
    precision None without claims, recall None without true edges; "auroc": |L_ij| of the
    true edges i -> j against every other ordered pair i != j (threshold-free, ties 1/2,
    `auroc`); "num_true_edges", "num_claimed_edges" (ordered pairs), "num_undirected" (pairs
    claimed both ways), "threshold"}.
  """
  learned, true_graph = _check_graphs(learned, true_graph)
  if not (np.isfinite(threshold) and threshold > 0):
    raise ValueError(f"threshold must be a finite number > 0, got {threshold!r}")
  k = learned.shape[0]
  off = ~np.eye(k, dtype=bool)
  claimed, true = (np.abs(learned) >= threshold) & off, (true_graph != 0) & off
  states, true_states = _pair_states(claimed), _pair_states(true)
  hits = int(np.sum(claimed & true))
  num_claimed, num_true = int(claimed.sum()), int(true.sum())
  wrong = (num_claimed - hits) + (num_true - hits)
  return {
      "shd": int(np.sum(states != true_states)),
      "orientation": _orientation(states, true_states),
      "precision": hits / num_claimed if num_claimed else None,
      "recall": hits / num_true if num_true else None,
      "f1": 2 * hits / (2 * hits + wrong) if hits or wrong else None,
      "auroc": auroc(np.abs(learned)[true], np.abs(learned)[off & ~true]),
      "num_pairs": k * (k - 1) // 2,
      "num_true_edges": num_true,
      "num_claimed_edges": num_claimed,
      "num_undirected": int(np.sum(states == UNDIRECTED)),
      "threshold": float(threshold),
  }
