"""Causal discovery on the MLLM scores alone (PC, GES, DirectLiNGAM) and GEM's prior graph.

    graph = discover(scores, "pc")                   # float [n, n], graph[i, j]: i -> j
    prior = find_prior(scores, "pc", S)              # Prior: .matrix [n, n], .graph, .to_json
    P = prior_matrix(scores, "ges", S)               # the matrix GEM's A_0 is built from

The baselines of issue 26 read only the integer scores [N, n] (0..5, -1 = missing), through
causal-learn (pinned: causal-learn==0.1.4.8), and return a graph in the project's convention,
rows = out-edges (A[i, j] is the edge i -> j):

* "pc": PC with the chi-square conditional-independence test on the discrete levels (each level
  a category), significance `alpha` (0.05); stable skeleton, colliders from the separating sets,
  then Meek's rules. 1 for a directed edge i -> j, 1 both ways for an undirected CPDAG edge;
* "ges": GES with the BIC score on the levels as floats (linear-Gaussian local scores, penalty
  0.5 log N per parameter), chosen over the discrete BDeu score by measurement (F1 0.59 vs 0.37
  on 10 random 6-node linear SCMs, 0.72 vs 0.44 on synthetic_faces; docs/metrics.md,
  "Score-only causal discovery"); same encoding as PC;
* "direct_lingam": DirectLiNGAM (pairwise likelihood-ratio measure, adaptive-lasso weights) on
  the levels as floats; graph[i, j] = b_ji of causal-learn's B, the signed coefficient of i in
  j's equation (in levels of j per level of i).

causal-learn's GeneralGraph marks each end of an edge: G.graph[i, j] = -1 and G.graph[j, i] = 1
is i -> j (tail at i, arrowhead at j); -1 both ways is an undirected i - j, 1 both ways a
bidirected i <-> j (read here as claimed both ways); 0 both ways, no edge. Its DirectLiNGAM
returns B with B[j, i] the coefficient of x_i in x_j's equation (rows = in-edges), hence the
transpose.

Missing answers: these methods need complete rows, so rows with any -1 are dropped (logged,
and counted in `Prior`); Somers' D keeps pairwise deletion. Attributes constant on the complete
rows carry no information and stay isolated nodes (the methods run on the others).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Optional, Sequence

import numpy as np
from causallearn.search.ConstraintBased.PC import pc
from causallearn.search.FCMBased.lingam import DirectLiNGAM
from causallearn.search.ScoreBased.GES import ges

from gem_jax.relations.recovery import EDGE_THRESHOLD, json_float, json_matrix

__all__ = ["METHODS", "MIN_COMPLETE_ROWS", "PRIORS", "Prior", "complete_rows", "discover",
           "find_prior", "from_general_graph", "prior_matrix", "skeleton_prior"]

METHODS = ("pc", "ges", "direct_lingam")
PRIORS = ("somers_d",) + METHODS  # config.gem.prior; "somers_d" is the paper's A_0
# Fewest fully answered rows a method runs on: about 3 rows per cell of the 6 x 6 table that a
# marginal chi-square test reads (conditional tests split them further).
MIN_COMPLETE_ROWS = 100
GES_SCORE = "local_score_BIC"  # chosen over "local_score_BDeu" (module docstring)
# What each method ran with, recorded beside its graph (prior.json).
SETTINGS = {
    "pc": "PC, chi-square CI test on the levels, alpha {alpha}, stable, uc_rule 0, Meek",
    "ges": "GES, BIC score (lambda 0.5) on the levels as floats",
    "direct_lingam": "DirectLiNGAM (pwling), levels as floats, random_state {seed}",
}


def _check_scores(scores, num_levels: int) -> np.ndarray:
  scores = np.asarray(scores)
  if scores.ndim != 2 or scores.shape[1] < 2:
    raise ValueError(f"scores must be [N, n] with n >= 2 attributes, got shape {scores.shape}")
  if not np.issubdtype(scores.dtype, np.integer):
    raise TypeError(f"scores must be an integer array (-1 = missing), got dtype {scores.dtype}")
  if scores.size and (scores.min() < -1 or scores.max() > num_levels - 1):
    raise ValueError(f"scores must lie in 0..{num_levels - 1} or be -1 (missing); found values "
                     f"in [{scores.min()}, {scores.max()}]")
  return scores


def _check_method(method: str, known: Sequence[str], what: str) -> None:
  if method not in known:
    raise ValueError(f"unknown {what} {method!r}; known: "
                     + ", ".join(repr(m) for m in known))


def complete_rows(scores) -> np.ndarray:
  """bool [N]: the rows of int scores [N, n] without a missing answer (-1)."""
  return np.all(np.asarray(scores) >= 0, axis=1)


def from_general_graph(graph) -> np.ndarray:
  """causal-learn's endpoint matrix G.graph int [n, n] -> float [n, n] in the project's
  convention: 1 at [i, j] for i -> j (G[i, j] = -1, G[j, i] = 1), 1 both ways for an undirected
  (-1, -1) or bidirected (1, 1) edge, 0 for no edge (0, 0); any other mark (a PAG's circle)
  is a ValueError."""
  g = np.asarray(graph)
  off = ~np.eye(len(g), dtype=bool)
  forward = (g == -1) & (g.T == 1)
  both = ((g == -1) & (g.T == -1)) | ((g == 1) & (g.T == 1))
  known = forward | forward.T | both | ((g == 0) & (g.T == 0))
  if not np.all(known | ~off):
    i, j = np.argwhere(~known & off)[0]
    raise ValueError(f"unexpected causal-learn edge marks G[{i}, {j}] = {g[i, j]}, "
                     f"G[{j}, {i}] = {g[j, i]} (expected a DAG or CPDAG)")
  return ((forward | both) & off).astype(np.float64)


def _run(data: np.ndarray, method: str, alpha: float, seed: int) -> np.ndarray:
  """One causal-learn method on complete rows float [M, m] -> graph float [m, m] (ours)."""
  if method == "pc":  # PC's tqdm bar is its only output (verbose=False prints nothing)
    return from_general_graph(pc(data, alpha, "chisq", show_progress=False).G.graph)
  if method == "ges":
    return from_general_graph(ges(data, score_func=GES_SCORE)["G"].graph)
  model = DirectLiNGAM(random_state=seed)
  model.fit(data)
  return np.asarray(model.adjacency_matrix_, np.float64).T  # B[j, i]: i -> j


def discover(scores, method: str, *, alpha: float = 0.05, seed: int = 0,
             num_levels: int = 6) -> np.ndarray:
  """The graph `method` finds from the scores alone.

  Args:
    scores: int [N, n], levels 0..num_levels-1, -1 = missing; rows with any -1 are dropped.
    method: "pc", "ges" or "direct_lingam" (module docstring).
    alpha: PC's significance level of each chi-square test (unused by the others).
    seed: DirectLiNGAM's random_state (PC and GES are deterministic).
    num_levels: score levels (6).

  Returns:
    float64 [n, n], graph[i, j] the edge i -> j: 1 (PC, GES; an undirected edge is 1 both
    ways) or DirectLiNGAM's signed coefficient; the diagonal and the rows and columns of
    attributes constant on the complete rows are 0.

  Raises:
    ValueError: an unknown method, or fewer than MIN_COMPLETE_ROWS complete rows.
  """
  _check_method(method, METHODS, "discovery method")
  scores = _check_scores(scores, num_levels)
  rows = complete_rows(scores)
  if rows.sum() < MIN_COMPLETE_ROWS:
    raise ValueError(
        f"{method} needs at least {MIN_COMPLETE_ROWS} fully answered rows (no -1), got "
        f"{int(rows.sum())} of {len(scores)}: score more images, or use the prior 'somers_d' "
        "(pairwise deletion)")
  if not rows.all():
    logging.info("%s: dropped %d of %d rows with a missing answer", method,
                 int((~rows).sum()), len(scores))
  data = scores[rows]
  varying = np.flatnonzero(data.min(axis=0) < data.max(axis=0))
  graph = np.zeros((scores.shape[1],) * 2)
  if len(varying) >= 2:
    graph[np.ix_(varying, varying)] = _run(data[:, varying].astype(np.float64), method,
                                           float(alpha), int(seed))
  np.fill_diagonal(graph, 0.0)
  return graph


def skeleton_prior(somers, graph, threshold: float = EDGE_THRESHOLD) -> np.ndarray:
  """Somers' D on a found skeleton: float [n, n] P with P[i, j] = S[i, j] where the found
  graph [n, n] holds i -> j or an undirected i - j (|graph[i, j]| >= threshold, the reading of
  `graph_metrics`), else 0; the diagonal is S's."""
  s = np.asarray(somers, np.float64)
  graph = np.asarray(graph, np.float64)
  if s.ndim != 2 or s.shape[0] != s.shape[1] or graph.shape != s.shape:
    raise ValueError(f"somers and graph must be the same square [n, n], got {s.shape} and "
                     f"{graph.shape}")
  keep = (np.abs(graph) >= threshold) | np.eye(len(s), dtype=bool)
  return np.where(keep, s, 0.0)


@dataclasses.dataclass(frozen=True, eq=False)
class Prior:
  """The graph GEM starts from (config.gem.prior) and how it was found.

  method: one of PRIORS. matrix: float [n, n], the prior P (`prior_matrix`). graph: float
  [n, n], the discovered graph (`discover`), None for "somers_d". rows_used, rows_dropped:
  complete rows the method read and rows dropped for a missing answer (somers_d: all rows,
  pairwise deletion). seconds: the method's wall time. settings: what it ran with.
  """

  method: str
  matrix: np.ndarray
  graph: Optional[np.ndarray]
  rows_used: int
  rows_dropped: int
  seconds: float
  settings: str

  def to_json(self, attribute_names: Sequence[str]) -> dict:
    """Plain JSON for prior.json: names, method, settings, rows, seconds, graph, matrix."""
    return {
        "attribute_names": list(attribute_names),
        "method": self.method,
        "settings": self.settings,
        "rows_used": self.rows_used,
        "rows_dropped": self.rows_dropped,
        "seconds": json_float(self.seconds, 3),
        "graph": None if self.graph is None else json_matrix(self.graph),
        "matrix": json_matrix(self.matrix),
    }


def find_prior(scores, method: str, somers, *, alpha: float = 0.05, seed: int = 0) -> Prior:
  """`Prior` of int scores [N, n] (-1 = missing) by `method` in PRIORS, with the Somers' D
  matrix S [n, n] of the same scores: "somers_d" is S itself (diagonal as given); "pc", "ges",
  "direct_lingam" are `skeleton_prior(S, discover(scores, method))`, Somers' D giving the
  signs and weights on the skeleton found."""
  _check_method(method, PRIORS, "prior")
  s = np.asarray(somers, np.float64)
  num_rows = int(np.shape(scores)[0])
  if method == "somers_d":
    return Prior(method, s.copy(), None, num_rows, 0, 0.0, "Somers' D (pairwise deletion)")
  start = time.perf_counter()
  graph = discover(scores, method, alpha=alpha, seed=seed)
  seconds = time.perf_counter() - start
  used = int(complete_rows(scores).sum())
  return Prior(method, skeleton_prior(s, graph), graph, used, num_rows - used, seconds,
               SETTINGS[method].format(alpha=alpha, seed=seed))


def prior_matrix(scores, method: str, somers, *, alpha: float = 0.05,
                 seed: int = 0) -> np.ndarray:
  """float [n, n]: the matrix GEM's A_0 is built from (`find_prior(...).matrix`)."""
  return find_prior(scores, method, somers, alpha=alpha, seed=seed).matrix
