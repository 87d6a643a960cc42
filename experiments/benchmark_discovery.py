"""Benchmark: graph recovery from the scores alone on synthetic_faces' SCM (issue 26).

Run from the repository root:  ``python -m experiments.benchmark_discovery [--seeds 3]``

For each seed: `sample_factors(seed, num_rows)` gives the true levels [N, 6]; the oracle's
uniform error model corrupts them (each score right with probability `accuracy`, else one of
the other 5 levels uniformly: gem_jax.scorers.OracleScorer's model, simulated in numpy); then
Somers' D of the scores (`somers_d`), PC, GES (BIC on the levels, and the BDeu score it was
chosen over) and DirectLiNGAM are scored by `graph_metrics` against TRUE_GRAPH. Prints a
markdown table: per method, mean ± std over seeds of each metric and of the runtime.

``--ges_choice N``: instead, GES with BDeu against GES with BIC on N random 6-node linear SCMs
(not synthetic_faces, whose numbers should not pick the method they are reported for), the
measurement behind gem_jax.relations.discovery.GES_SCORE.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from causallearn.search.ScoreBased.GES import ges

from gem_jax.data.synthetic_faces.scm import (
    ATTRIBUTES,
    INDEPENDENT_PAIRS,
    NUM_LEVELS,
    TRUE_GRAPH,
    sample_factors,
)
from gem_jax.relations import graph_metrics, somers_d
from gem_jax.relations.discovery import discover, from_general_graph

METRICS = ("shd", "orientation", "precision", "recall", "f1", "auroc")


def oracle_scores(levels: np.ndarray, accuracy: float, seed: int) -> np.ndarray:
  """levels int [N, n] -> scores int [N, n]: right with probability `accuracy`, else a
  uniformly drawn other level (the oracle's "uniform" error model)."""
  rng = np.random.default_rng([seed, 26])
  wrong = rng.random(levels.shape) >= accuracy
  shift = rng.integers(1, NUM_LEVELS, size=levels.shape)  # 1..5: never the true level
  return np.where(wrong, (levels + shift) % NUM_LEVELS, levels).astype(np.int32)


def _ges(scores: np.ndarray, score_func: str) -> np.ndarray:
  """GES on complete int scores [N, n] with one of causal-learn's score functions."""
  return from_general_graph(ges(scores.astype(np.float64), score_func=score_func)["G"].graph)


METHODS = {
    "somers_d": lambda x, seed: np.asarray(somers_d(x), np.float64),
    "pc": lambda x, seed: discover(x, "pc", seed=seed),
    "ges": lambda x, seed: discover(x, "ges", seed=seed),
    "ges_bdeu": lambda x, seed: _ges(x, "local_score_BDeu"),
    "direct_lingam": lambda x, seed: discover(x, "direct_lingam", seed=seed),
}


def _summary(values: list) -> dict:
  vals = np.array([np.nan if v is None else v for v in values], np.float64)
  return {"mean": round(float(np.nanmean(vals)), 4), "std": round(float(np.nanstd(vals)), 4)}


def benchmark(seeds: int = 3, num_rows: int = 1500, accuracy: float = 0.884,
              methods=tuple(METHODS)) -> dict:
  """{method: {metric: {mean, std}}, "seconds": {mean, std}} over `seeds` seeds (somers_d
  timed after compilation), plus the largest |S| over synthetic_faces' independent pairs
  (the noise floor a threshold must clear)."""
  runs = {m: [] for m in methods}
  independent_max = []
  idx = {a: i for i, a in enumerate(ATTRIBUTES)}
  somers_d(np.zeros((num_rows, len(ATTRIBUTES)), np.int32))  # compile outside the timing
  for seed in range(seeds):
    levels, _ = sample_factors(seed, num_rows)
    scores = oracle_scores(levels, accuracy, seed)
    for m in methods:
      start = time.perf_counter()
      graph = METHODS[m](scores, seed)
      seconds = time.perf_counter() - start
      runs[m].append({**graph_metrics(graph, TRUE_GRAPH), "seconds": seconds})
      if m == "somers_d":
        independent_max.append(max(max(abs(graph[idx[a], idx[b]]), abs(graph[idx[b], idx[a]]))
                                   for a, b in INDEPENDENT_PAIRS))
  out = {m: {k: _summary([r[k] for r in rs]) for k in METRICS + ("seconds",)}
         for m, rs in runs.items()}
  out["settings"] = {"seeds": seeds, "num_rows": num_rows, "accuracy": accuracy}
  if independent_max:
    out["somers_d_max_abs_independent_pairs"] = _summary(independent_max)
  return out


def random_linear_scm(seed: int, num_rows: int = 1500, num_nodes: int = 6,
                      edge_probability: float = 0.35) -> tuple[np.ndarray, np.ndarray]:
  """(levels int [N, k] in 0..5, weights [k, k]) of a random linear SCM rounded to levels
  like synthetic_faces': a random DAG (each forward pair an edge with `edge_probability`,
  weights ±U(0.4, 1.2)), intercepts U(1.5, 3.5), noise scales U(1.2, 1.8), nodes shuffled."""
  rng = np.random.default_rng([seed, 2026])
  k = num_nodes
  upper = np.triu(rng.random((k, k)) < edge_probability, 1)
  weights = upper * rng.choice([-1.0, 1.0], (k, k)) * rng.uniform(0.4, 1.2, (k, k))
  levels = np.zeros((num_rows, k))
  for i in range(k):  # 0..k-1 is a topological order of the upper-triangular weights
    latent = (rng.uniform(1.5, 3.5) + rng.uniform(1.2, 1.8) * rng.standard_normal(num_rows)
              + levels @ weights[:, i])
    levels[:, i] = np.clip(np.rint(latent), 0, NUM_LEVELS - 1)
  perm = rng.permutation(k)
  return levels[:, perm].astype(np.int32), weights[np.ix_(perm, perm)]


def ges_choice(num_graphs: int = 10, accuracy: float = 0.884) -> dict:
  """{score function: {metric: {mean, std}}} of GES on `num_graphs` random linear SCMs."""
  runs = {"local_score_BDeu": [], "local_score_BIC": []}
  for seed in range(num_graphs):
    levels, weights = random_linear_scm(seed)
    scores = oracle_scores(levels, accuracy, seed)
    for score_func, rs in runs.items():
      start = time.perf_counter()
      graph = _ges(scores, score_func)
      rs.append({**graph_metrics(graph, weights), "seconds": time.perf_counter() - start})
  return {f: {k: _summary([r[k] for r in rs]) for k in METRICS + ("seconds", "num_true_edges")}
          for f, rs in runs.items()}


def table(result: dict) -> str:
  """The benchmark as a markdown table, mean ± std over seeds."""
  cols = METRICS + ("seconds",)
  lines = ["| method | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
  for m in result:
    if isinstance(result[m], dict) and "shd" in result[m]:
      cells = [f"{result[m][k]['mean']:.3g} ± {result[m][k]['std']:.2g}" for k in cols]
      lines.append(f"| {m} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seeds", type=int, default=3)
  parser.add_argument("--num_rows", type=int, default=1500)
  parser.add_argument("--accuracy", type=float, default=0.884)
  parser.add_argument("--ges_choice", type=int, default=0,
                      help="GES BDeu vs BIC on this many random linear SCMs instead")
  args = parser.parse_args()
  if args.ges_choice:
    print(table(ges_choice(args.ges_choice, args.accuracy)))
    return
  result = benchmark(args.seeds, args.num_rows, args.accuracy)
  print(table(result))
  print(json.dumps({k: v for k, v in result.items() if k not in METHODS}))


if __name__ == "__main__":
  main()
