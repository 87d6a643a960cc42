"""Scoring a data set's images with a scorer, and what the scores say (stages 4-5).

    scorer = build_scorer("oracle", images=images, labels=labels, label_names=names)
    scores = score_dataset(images, ["bangs", "bald"], scorer, "runs/x/score_cache.jsonl")
    report = relation_report(scores, ["bangs", "bald"], labels=levels, bootstrap=200,
                             truth=synthetic_faces_truth())

`run_scoring(ScoringOptions(...))` is a whole `python -m experiments.score_attributes` run: it
loads the first N images of a split, scores them through the answer cache (a rerun resumes
with zero repeated requests), computes the asymmetric Somers' D matrix
(`S[i, j] = D(A_j | A_i)`, the impact of attribute i on attribute j; DESIGN.md stage 5) and,
when the data set has labels, how good the scorer is and how well S recovers the truth. Files
it writes are listed in `run_scoring`. Keys are read by the scorers from the environment only
and never appear here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from gem_jax import scorers as scorers_lib

__all__ = [
    "ScoringError",
    "DEFAULT_ATTRIBUTES",
    "parse_attribute_list",
    "validate_attributes",
    "dataset_label_names",
    "labels_from_examples",
    "build_scorer",
    "score_dataset",
    "scorer_accuracy",
    "auroc",
    "RelationTruth",
    "synthetic_faces_truth",
    "graph_recovery",
    "relation_report",
    "ScoringOptions",
    "estimate_request_cost",
    "run_scoring",
    "format_matrix",
]

logger = logging.getLogger("gem_jax.scoring")

DEFAULT_ATTRIBUTES: tuple[str, ...] = ("bangs", "bald", "gender", "beard", "blond", "makeup")
NUM_LEVELS = 6
DEFINITION = (
    "S[i][j] = Somers' D(A_j | A_i) = (N_c - N_d) / (pairs of images not tied on A_i): the "
    "impact of attributes[i] (row) on attributes[j] (column); diagonal 1; missing scores (-1) "
    "left out pairwise"
)


class ScoringError(ValueError):
  """A scoring run was asked for something impossible (unknown attribute, no labels, ...)."""


# ----------------------------------------------------------------------------- attributes


def parse_attribute_list(attributes: str | Sequence[str]) -> list[str]:
  """'bangs, bald' or ['bangs', 'bald'] -> ['bangs', 'bald'] (stripped, non-empty, unique)."""
  items = attributes.split(",") if isinstance(attributes, str) else list(attributes)
  names = [str(a).strip() for a in items if str(a).strip()]
  if not names:
    raise ScoringError("no attributes given (e.g. --attributes bangs,bald,gender)")
  dupes = sorted({a for a in names if names.count(a) > 1})
  if dupes:
    raise ScoringError(f"attributes named more than once: {', '.join(dupes)}")
  return names


def validate_attributes(
    attributes: Sequence[str], label_names: Sequence[str], dataset: str = "the data set"
) -> None:
  """One clear error naming every unknown attribute and listing the valid names."""
  valid = list(label_names)
  unknown = [a for a in attributes if a not in valid]
  if unknown:
    raise ScoringError(
        f"unknown attribute{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
        f"for {dataset}: the oracle can only score the data set's labels. "
        f"Valid names: {', '.join(valid)}"
    )


# ----------------------------------------------------------------------------- data


def dataset_label_names(dataset: str) -> Optional[list[str]]:
  """The label names a data set is known to have without loading it (None: unknown)."""
  if dataset == "synthetic_faces":
    from gem_jax.data import synthetic_faces as sf

    return list(sf.ATTRIBUTES)
  return None


def labels_from_examples(
    examples: Mapping[str, Any], label_names: Optional[Sequence[str]] = None
) -> tuple[Optional[np.ndarray], Optional[list[str]]]:
  """(labels [N, k], their names) of `load_examples` output; (None, None) without labels.

  `examples["attributes"]` is either an int array [N, k] (synthetic_faces; names from
  `label_names`) or a {name: [N]} dict (tfds celeb_a; booleans become -1/+1).
  """
  attrs = examples.get("attributes")
  if attrs is None:
    return None, None
  if isinstance(attrs, Mapping):
    names = sorted(attrs)
    cols = []
    for n in names:
      col = np.asarray(attrs[n])
      cols.append(np.where(col, 1, -1) if col.dtype == np.bool_ else col.astype(np.int64))
    return np.stack(cols, axis=1), names
  labels = np.asarray(attrs)
  if label_names is None or len(label_names) != labels.shape[1]:
    raise ScoringError(
        f"the data set has {labels.shape[1]} label columns but their names are unknown"
    )
  return labels, list(label_names)


def _load(
    dataset: str, data_config_name: str, data_dir: Optional[str], split: str, num_images: int
):
  import ml_collections

  from gem_jax.data import load_examples

  data_config = ml_collections.ConfigDict(
      {"name": dataset, "config": data_config_name, "data_dir": data_dir, "split": split}
  )
  examples = load_examples(data_config, split, num_images)
  return examples


# ----------------------------------------------------------------------------- scoring


def build_scorer(
    backend: str,
    *,
    model: Optional[str] = None,
    base_url: Optional[str] = None,
    images: Optional[np.ndarray] = None,
    labels: Optional[np.ndarray] = None,
    label_names: Optional[Sequence[str]] = None,
    accuracy: float = 0.884,
    error_model: str = "uniform",
    seed: int = 0,
    concurrency: int = 8,
    requests_per_minute: Optional[float] = None,
    response_format: Optional[str] = None,
    replay_path: Optional[str] = None,
    progress: bool = True,
) -> scorers_lib.Scorer:
  """A scorer by backend name (no cache; `score_dataset` adds it).

  oracle: a SIMULATION built from `images` and their `labels` [N, k] over `label_names`
  (error model: `accuracy`, `error_model`, `seed`). openai/gemini: `model` (default gpt-4o /
  gemini-2.5-flash), `base_url`, `concurrency`, `requests_per_minute` (None: the backend's
  default), `response_format` (openai). replay: `replay_path`.
  """
  if backend not in scorers_lib.BACKENDS:
    raise ScoringError(
        f"unknown backend {backend!r}; valid backends: {', '.join(scorers_lib.BACKENDS)}"
    )
  if backend == "oracle":
    if model:
      raise ScoringError(
          "the oracle names itself (oracle-acc<accuracy>); leave --model out and set --accuracy"
      )
    if images is None or labels is None or label_names is None:
      raise ScoringError("the oracle needs the data set's labels, and this data set has none")
    from gem_jax.scorers.oracle import OracleScorer

    return OracleScorer.from_dataset(
        images, labels, label_names, accuracy=accuracy, seed=seed, error_model=error_model
    )
  if backend == "replay":
    if not replay_path:
      raise ScoringError("--backend replay needs --replay_path (a score cache .jsonl or .npz)")
    return scorers_lib.make_scorer("replay", model, path=replay_path)
  kwargs: dict[str, Any] = {"concurrency": concurrency, "progress": progress}
  if base_url:
    kwargs["base_url"] = base_url
  if requests_per_minute is not None:
    kwargs["requests_per_minute"] = requests_per_minute or None  # 0: no limit
  if response_format and backend == "openai":
    kwargs["response_format"] = response_format
  return scorers_lib.make_scorer(backend, model, **kwargs)


def score_dataset(
    images: np.ndarray,
    attributes: Sequence[str],
    scorer: scorers_lib.ScorerLike,
    cache_path: Optional[str] = None,
) -> np.ndarray:
  """Scores int32 [N, n] (-1 = missing) of `images` [N, H, W, 3] through the answer cache.

  With `cache_path` the scorer is wrapped in `CachedScorer` (unless it already is one): every
  answer is appended to the cache the moment it arrives, and images already answered there
  are not asked again. The wrapper's `last_hits` / `last_misses` count them.
  """
  if cache_path is not None and not isinstance(scorer, scorers_lib.CachedScorer):
    scorer = scorers_lib.CachedScorer(scorer, cache_path)
  scores = np.asarray(scorer.score(images, list(attributes)), np.int32)
  if isinstance(scorer, scorers_lib.CachedScorer):
    logger.info(
        "%s:%s: %d images from the cache, %d newly scored",
        scorer.backend,
        scorer.model,
        scorer.last_hits,
        scorer.last_misses,
    )
  return scores


# ----------------------------------------------------------------------------- metrics


def _somers_d(scores: np.ndarray) -> np.ndarray:
  from gem_jax.relations import somers_d

  return np.asarray(somers_d(np.asarray(scores, np.int32), num_levels=NUM_LEVELS), np.float64)


def _r(x: float, nd: int = 4) -> Optional[float]:
  return None if x is None or not np.isfinite(x) else round(float(x), nd)


def _mat(m: np.ndarray, nd: int = 4) -> list[list[float]]:
  return [[_r(v, nd) for v in row] for row in np.asarray(m, np.float64)]


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
        "exact": _r(np.mean(s == l)) if ok.any() else None,
        "within_1": _r(np.mean(np.abs(s - l) <= 1)) if ok.any() else None,
        "num_compared": int(ok.sum()),
        "missing_scores": int((scores[:, j] < 0).sum()),
        "confusion_label_by_score": conf.tolist(),
    }
  exact = [v["exact"] for v in per.values() if v["exact"] is not None]
  within = [v["within_1"] for v in per.values() if v["within_1"] is not None]
  labelled = labels >= 0
  return {
      "per_attribute": per,
      "mean_exact": _r(np.mean(exact)) if exact else None,
      "mean_within_1": _r(np.mean(within)) if within else None,
      "all_zero_rate": _r(np.mean(np.all(scores == 0, axis=1))),
      "all_zero_rate_labels": (
          _r(np.mean(np.all(labels == 0, axis=1))) if labelled.all() else None
      ),
      "any_missing_rate": _r(np.mean(np.any(scores < 0, axis=1))),
  }


def auroc(positives: Sequence[float], negatives: Sequence[float]) -> Optional[float]:
  """P(a positive outscores a negative), ties count 1/2 (Mann-Whitney U / (n_p n_n))."""
  p = np.asarray(positives, np.float64)[:, None]
  n = np.asarray(negatives, np.float64)[None, :]
  if p.size == 0 or n.size == 0:
    return None
  return float(np.mean((p > n) + 0.5 * (p == n)))


@dataclasses.dataclass(frozen=True)
class RelationTruth:
  """The true relations of a data set with a known generative model.

  true_graph[i, j] != 0: a direct edge attributes[i] -> attributes[j] (signed weight).
  independent_pairs: attribute pairs independent by construction (no path, no common cause).
  population_somers_d: Somers' D of a large sample from the model (what an ideal scorer's S
  converges to), from `population_size` draws with `population_seed`.
  """

  name: str
  attributes: tuple[str, ...]
  true_graph: np.ndarray
  independent_pairs: tuple[tuple[str, str], ...]
  population_somers_d: Optional[np.ndarray] = None
  population_size: int = 0
  population_seed: int = 0


def synthetic_faces_truth(population_size: int = 200_000, seed: int = 20_241) -> RelationTruth:
  """TRUE_GRAPH, INDEPENDENT_PAIRS and the population Somers' D of `synthetic_faces`."""
  from gem_jax.data import synthetic_faces as sf

  population = None
  if population_size:
    attrs, _ = sf.sample_factors(seed, population_size)
    population = sf.somers_d_matrix(attrs)
  return RelationTruth(
      name="synthetic_faces SCM",
      attributes=tuple(sf.ATTRIBUTES),
      true_graph=np.asarray(sf.TRUE_GRAPH, np.float64),
      independent_pairs=tuple(sf.INDEPENDENT_PAIRS),
      population_somers_d=population,
      population_size=int(population_size),
      population_seed=int(seed),
  )


def _reindex(matrix: np.ndarray, src: Sequence[str], dst: Sequence[str]) -> np.ndarray:
  idx = [list(src).index(a) for a in dst]
  return np.asarray(matrix)[np.ix_(idx, idx)]


def graph_recovery(
    somers: np.ndarray,
    attribute_names: Sequence[str],
    truth: RelationTruth,
    strong_threshold: float = 0.7,
) -> dict:
  """How a Somers' D matrix over `attribute_names` matches `truth` (shared attributes only).

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
  s = _reindex(somers, attribute_names, names)
  w = _reindex(truth.true_graph, truth.attributes, names)
  edges = []
  for i, j in zip(*np.nonzero(w)):
    edges.append(
        {
            "from": names[i],
            "to": names[j],
            "weight": _r(w[i, j]),
            "S_from_to": _r(s[i, j]),
            "S_to_from": _r(s[j, i]),
            "sign_agrees": bool(np.sign(s[i, j]) == np.sign(w[i, j])),
            "stronger_in_causal_direction": bool(abs(s[i, j]) >= abs(s[j, i])),
        }
    )
  indep = [(a, b) for a, b in truth.independent_pairs if a in names and b in names]
  pos_u, pos_u_strong, pos_d, pos_d_strong = [], [], [], []
  kind: dict[tuple[int, int], str] = {}
  for i in range(len(names)):
    for j in range(i + 1, len(names)):
      if w[i, j] or w[j, i]:
        kind[(i, j)] = "edge"
        m = max(abs(s[i, j]), abs(s[j, i]))
        pos_u.append(m)
        if max(abs(w[i, j]), abs(w[j, i])) >= strong_threshold:
          pos_u_strong.append(m)
  for i, j in zip(*np.nonzero(w)):
    pos_d.append(abs(s[i, j]))
    if abs(w[i, j]) >= strong_threshold:
      pos_d_strong.append(abs(s[i, j]))
  neg_u, neg_d = [], []
  for a, b in indep:
    i, j = sorted((names.index(a), names.index(b)))
    kind[(i, j)] = "independent"
    neg_u.append(max(abs(s[i, j]), abs(s[j, i])))
    neg_d += [abs(s[i, j]), abs(s[j, i])]
  ranked = []
  for i in range(len(names)):
    for j in range(i + 1, len(names)):
      ranked.append(
          {
              "pair": [names[i], names[j]],
              "max_abs_S": _r(max(abs(s[i, j]), abs(s[j, i]))),
              "kind": kind.get((i, j), "indirect"),
          }
      )
  ranked.sort(key=lambda r: -r["max_abs_S"])
  n_edges = len(edges)
  return {
      "attributes": names,
      "true_graph": _mat(w),
      "edges": edges,
      "sign_agreement": _r(np.mean([e["sign_agrees"] for e in edges])) if edges else None,
      "direction_agreement": (
          _r(np.mean([e["stronger_in_causal_direction"] for e in edges])) if edges else None
      ),
      "num_true_edges": n_edges,
      "independent_pairs": [list(p) for p in indep],
      "auroc_undirected": _r(auroc(pos_u, neg_u)),
      "auroc_directed": _r(auroc(pos_d, neg_d)),
      "auroc_undirected_strong": _r(auroc(pos_u_strong, neg_u)),
      "auroc_directed_strong": _r(auroc(pos_d_strong, neg_d)),
      "strong_threshold": strong_threshold,
      "max_abs_S_independent_pairs": _r(max(neg_u)) if neg_u else None,
      "min_max_abs_S_true_edges": _r(min(pos_u)) if pos_u else None,
      "pairs_ranked": ranked,
  }


def _max_abs_offdiag(a: np.ndarray, b: np.ndarray, names: Sequence[str]) -> dict:
  d = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))
  np.fill_diagonal(d, 0.0)
  i, j = np.unravel_index(int(np.argmax(d)), d.shape)
  if d[i, j] == 0:
    return {"max_abs_diff": 0.0, "at": None, "mean_abs_diff": 0.0}
  return {
      "max_abs_diff": _r(d[i, j]),
      "at": [names[i], names[j]],
      "mean_abs_diff": _r(d.sum() / max(1, d.size - len(names))),
  }


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
    truth: the data set's true relations (e.g. `synthetic_faces_truth()`).

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
  s = _somers_d(scores)
  report: dict[str, Any] = {
      "attributes": names,
      "num_images": int(scores.shape[0]),
      "missing_per_attribute": {a: int((scores[:, j] < 0).sum()) for j, a in enumerate(names)},
      "definition": DEFINITION,
      "somers_d": _mat(s),
  }
  lower = upper = None
  if bootstrap:
    import jax

    from gem_jax.relations import somers_d_bootstrap

    _, lo, hi = somers_d_bootstrap(
        scores,
        jax.random.PRNGKey(seed),
        num_resamples=int(bootstrap),
        num_levels=NUM_LEVELS,
        confidence=confidence,
    )
    lower, upper = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    report["bootstrap"] = {
        "num_resamples": int(bootstrap),
        "confidence": confidence,
        "seed": seed,
        "lower": _mat(lower),
        "upper": _mat(upper),
    }
  s_labels = None
  if labels is not None:
    labels = np.asarray(labels, np.int32)
    if labels.shape != scores.shape:
      raise ValueError(f"labels {labels.shape} do not match scores {scores.shape}")
    s_labels = _somers_d(labels)
    report["labels"] = {
        "scorer_accuracy": scorer_accuracy(scores, labels, names),
        "somers_d_labels": _mat(s_labels),
        "scores_vs_labels": _max_abs_offdiag(s, s_labels, names),
    }
    if lower is not None:
      off = ~np.eye(len(names), dtype=bool)
      inside = (lower <= s_labels + 1e-9) & (s_labels <= upper + 1e-9)
      report["labels"]["ci_covers_labels_S"] = _r(np.mean(inside[off]))
  if truth is not None:
    t: dict[str, Any] = {"name": truth.name, "from_scores": graph_recovery(s, names, truth)}
    if s_labels is not None:
      t["from_labels"] = graph_recovery(s_labels, names, truth)
    if truth.population_somers_d is not None:
      shared = [a for a in names if a in truth.attributes]
      pop = _reindex(truth.population_somers_d, truth.attributes, shared)
      pop_block = {
          "size": truth.population_size,
          "seed": truth.population_seed,
          "attributes": shared,
          "somers_d": _mat(pop),
          "scores_vs_population": _max_abs_offdiag(_reindex(s, names, shared), pop, shared),
      }
      if s_labels is not None:
        pop_block["labels_vs_population"] = _max_abs_offdiag(
            _reindex(s_labels, names, shared), pop, shared
        )
      if lower is not None:
        lo_s, hi_s = _reindex(lower, names, shared), _reindex(upper, names, shared)
        off = ~np.eye(len(shared), dtype=bool)
        inside = (lo_s <= pop + 1e-9) & (pop <= hi_s + 1e-9)
        pop_block["ci_covers_population_S"] = _r(np.mean(inside[off]))
      t["population"] = pop_block
    report["truth"] = t
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


# ----------------------------------------------------------------------------- the run


@dataclasses.dataclass
class ScoringOptions:
  """Everything `run_scoring` needs (the flags of experiments/score_attributes.py)."""

  backend: str
  out: str
  model: Optional[str] = None
  base_url: Optional[str] = None
  dataset: str = "synthetic_faces"
  data_config: str = "default"
  data_dir: Optional[str] = None
  split: str = "train"
  attributes: Sequence[str] = DEFAULT_ATTRIBUTES
  num_images: int = 1500
  cache_path: Optional[str] = None  # default: <out>/score_cache.jsonl
  dry_run: bool = False
  concurrency: int = 8
  requests_per_minute: Optional[float] = None
  response_format: Optional[str] = None
  accuracy: float = 0.884
  error_model: str = "uniform"
  seed: int = 0
  bootstrap: int = 0
  replay_path: Optional[str] = None
  progress: bool = True
  plots: bool = True


def _default_model(backend: str, model: Optional[str]) -> Optional[str]:
  if model or backend not in ("openai", "gemini"):
    return model
  if backend == "openai":
    from gem_jax.scorers.openai_backend import DEFAULT_OPENAI_MODEL

    return DEFAULT_OPENAI_MODEL
  from gem_jax.scorers.gemini_backend import DEFAULT_GEMINI_MODEL

  return DEFAULT_GEMINI_MODEL


def estimate_request_cost(
    backend: str,
    model: str,
    num_requests: int,
    attributes: Sequence[str],
    *,
    base_url: Optional[str] = None,
    image_size: tuple[int, int] = (64, 64),
) -> scorers_lib.DryRunEstimate:
  """`gem_jax.scorers.dry_run` for `num_requests` images; cost unknown for a custom server."""
  est = scorers_lib.dry_run(
      num_requests, list(attributes), model, backend=backend, image_size=image_size
  )
  vendor = "api.openai.com" if backend == "openai" else "googleapis.com"
  if backend == "openai" and not base_url:
    base_url = os.environ.get("OPENAI_BASE_URL") or None
  if base_url and vendor not in base_url:
    est = dataclasses.replace(est, cost_usd=None, price_per_mtok=None)
  return est


def _count_cached(
    cache_path: str,
    hashes: Sequence[str],
    backend: str,
    model: str,
    prompt_version: str,
    attributes: Sequence[str],
) -> int:
  """Images whose every requested attribute is already answered in the cache."""
  if not os.path.exists(cache_path):
    return 0
  cache = scorers_lib.ScoreCache(cache_path)
  n = 0
  for h in dict.fromkeys(hashes):
    if len(cache.lookup(h, backend, model, prompt_version, list(attributes))) == len(attributes):
      n += 1
  return n


def _title(desc: dict, num_images: int) -> tuple[str, str]:
  backend, model = desc.get("backend"), desc.get("model")
  head = f"Asymmetric Somers' D from {backend}:{model} scores (N = {num_images})"
  if backend == "oracle":
    sub = "SIMULATED (oracle): ground-truth labels + stated noise, not an MLLM"
  elif desc.get("is_simulation"):
    sub = "SIMULATED (replay of oracle scores), not an MLLM"
  else:
    sub = ""
  return head, sub


def _dumps(obj: Any, indent: int = 0) -> str:
  """JSON with one key per line, but lists of numbers/strings (matrix rows) on one line."""
  pad, inner = " " * indent, " " * (indent + 2)
  if isinstance(obj, dict) and obj:
    items = [f"{inner}{json.dumps(str(k))}: {_dumps(v, indent + 2)}" for k, v in obj.items()]
    return "{\n" + ",\n".join(items) + f"\n{pad}}}"
  if (
      isinstance(obj, (list, tuple))
      and obj
      and any(isinstance(v, (dict, list, tuple)) for v in obj)
  ):
    items = [f"{inner}{_dumps(v, indent + 2)}" for v in obj]
    return "[\n" + ",\n".join(items) + f"\n{pad}]"
  return json.dumps(obj)


def _write_json(path: str, obj: Any) -> None:
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.write(_dumps(obj) + "\n")
  os.replace(tmp, path)


def run_scoring(options: ScoringOptions, *, print_fn=print) -> dict:
  """Score the first `num_images` images of a split and write the relation report.

  Writes to `options.out`: scores.npy (int32 [N, n]) and scores.json (attributes, backend,
  model, prompt version, is_simulation, cache hits), somers_d.npy / somers_d.json (S, its
  definition, bootstrap CIs if asked) and somers_d.png (the heatmap); with labels also
  scorer_accuracy.json (per-attribute accuracy, all-zero rate, S from the labels, and for
  synthetic_faces the TRUE_GRAPH / population comparison) and somers_d_vs_truth.png. The
  answer cache is `<out>/score_cache.jsonl` unless `cache_path` is set (not used for replay).

  dry_run: print the request count and the estimated token cost; nothing is sent or written.
  Returns a summary dict (the report for a real run, the estimate for a dry run).
  """
  o = options
  attributes = parse_attribute_list(o.attributes)
  if o.backend not in scorers_lib.BACKENDS:
    raise ScoringError(
        f"unknown backend {o.backend!r}; valid backends: {', '.join(scorers_lib.BACKENDS)}"
    )
  if o.num_images < 1:
    raise ScoringError("num_images must be >= 1")
  known_names = dataset_label_names(o.dataset)
  if o.backend == "oracle":
    if o.model:
      raise ScoringError(
          "the oracle names itself (oracle-acc<accuracy>); leave --model out and set --accuracy"
      )
    if known_names is not None:  # fail before rendering or loading anything
      validate_attributes(attributes, known_names, o.dataset)
  if not o.out and not o.dry_run:
    raise ScoringError("an output folder (--out) is required")
  cache_path = (
      None
      if o.backend == "replay" or not (o.out or o.cache_path)
      else (o.cache_path or os.path.join(o.out, "score_cache.jsonl"))
  )

  examples = _load(o.dataset, o.data_config, o.data_dir, o.split, o.num_images)
  images = np.asarray(examples["image"])
  if len(images) < o.num_images:
    logger.warning(
        "%s/%s split %r has only %d images; scoring those (asked for %d)",
        o.dataset,
        o.data_config,
        o.split,
        len(images),
        o.num_images,
    )
  all_labels, label_names = labels_from_examples(examples, known_names)
  if o.backend == "oracle":
    if all_labels is None:
      raise ScoringError(f"the oracle needs labels, and {o.dataset} has none")
    validate_attributes(attributes, label_names, o.dataset)
  hashes = scorers_lib.image_hashes(images)

  if o.dry_run:
    return _dry_run(o, attributes, images, hashes, cache_path, print_fn)

  scorer = build_scorer(
      o.backend,
      model=o.model,
      base_url=o.base_url,
      images=images,
      labels=all_labels,
      label_names=label_names,
      accuracy=o.accuracy,
      error_model=o.error_model,
      seed=o.seed,
      concurrency=o.concurrency,
      requests_per_minute=o.requests_per_minute,
      response_format=o.response_format,
      replay_path=o.replay_path,
      progress=o.progress,
  )
  if cache_path is not None:
    scorer = scorers_lib.CachedScorer(scorer, cache_path)
  os.makedirs(o.out, exist_ok=True)
  scores = score_dataset(images, attributes, scorer)
  desc = scorer.describe()
  desc.pop("cache_path", None)

  levels = None
  if all_labels is not None:
    from gem_jax.scorers.oracle import labels_to_levels

    lv = labels_to_levels(all_labels, num_levels=NUM_LEVELS)
    cols = {n: j for j, n in enumerate(label_names)}
    levels = np.full(scores.shape, -1, np.int32)
    for j, a in enumerate(attributes):
      if a in cols:
        levels[:, j] = lv[:, cols[a]]
    if not (levels >= 0).any():
      levels = None
  truth = synthetic_faces_truth() if o.dataset == "synthetic_faces" else None
  report = relation_report(
      scores, attributes, labels=levels, bootstrap=o.bootstrap, seed=o.seed, truth=truth
  )

  source = {
      "dataset": o.dataset,
      "data_config": o.data_config,
      "split": o.split,
      "images": f"the first {len(images)} images of the split",
      "image_shape": list(images.shape[1:]),
      "images_sha256": hashlib.sha256("".join(hashes).encode()).hexdigest(),
  }
  cache_info = None
  if isinstance(scorer, scorers_lib.CachedScorer):
    cache_info = {
        "path": os.path.abspath(cache_path),
        "hits": int(scorer.last_hits),
        "newly_scored": int(scorer.last_misses),
    }
  usage = getattr(scorer, "last_usage", None)
  scores_meta = {
      "attributes": attributes,
      "backend": desc.get("backend"),
      "model": desc.get("model"),
      "prompt_version": desc.get("prompt_version"),
      "is_simulation": bool(desc.get("is_simulation")),
      "scorer": desc,
      "shape": list(scores.shape),
      "dtype": "int32",
      "missing_value": -1,
      "num_missing": int((scores < 0).sum()),
      "data": source,
      "cache": cache_info,
      "usage": usage.as_dict() if usage is not None and hasattr(usage, "as_dict") else None,
  }
  np.save(os.path.join(o.out, "scores.npy"), scores.astype(np.int32))
  _write_json(os.path.join(o.out, "scores.json"), scores_meta)

  s = np.asarray(report["somers_d"], np.float64)  # rounded to 4 digits, as printed
  np.save(os.path.join(o.out, "somers_d.npy"), _somers_d(scores).astype(np.float32))
  somers_json = {
      "attributes": attributes,
      "definition": DEFINITION,
      "somers_d": report["somers_d"],
      "num_images": report["num_images"],
      "missing_per_attribute": report["missing_per_attribute"],
      "backend": desc.get("backend"),
      "model": desc.get("model"),
      "is_simulation": bool(desc.get("is_simulation")),
  }
  if "bootstrap" in report:
    somers_json["bootstrap"] = report["bootstrap"]
  _write_json(os.path.join(o.out, "somers_d.json"), somers_json)

  accuracy_json = None
  if "labels" in report or "truth" in report:
    accuracy_json = {
        "attributes": attributes,
        "backend": desc.get("backend"),
        "model": desc.get("model"),
        "is_simulation": bool(desc.get("is_simulation")),
        "scorer": desc,
        "num_images": report["num_images"],
    }
    if "labels" in report:
      accuracy_json.update(report["labels"]["scorer_accuracy"])
      accuracy_json["somers_d"] = report["somers_d"]
      accuracy_json["somers_d_labels"] = report["labels"]["somers_d_labels"]
      accuracy_json["scores_vs_labels"] = report["labels"]["scores_vs_labels"]
      if "ci_covers_labels_S" in report["labels"]:
        accuracy_json["ci_covers_labels_S"] = report["labels"]["ci_covers_labels_S"]
    if "truth" in report:
      accuracy_json["truth"] = report["truth"]
    _write_json(os.path.join(o.out, "scorer_accuracy.json"), accuracy_json)

  figures = []
  if o.plots:
    from gem_jax import relation_plots

    head, sub = _title(desc, len(images))
    lower = upper = None
    if "bootstrap" in report:
      lower = report["bootstrap"]["lower"]
      upper = report["bootstrap"]["upper"]
    path = os.path.join(o.out, "somers_d.png")
    relation_plots.save_somers_d_heatmap(
        path, s, attributes, title=head, subtitle=sub, lower=lower, upper=upper
    )
    figures.append(path)
    if "labels" in report:
      panels = [
          relation_plots.Panel(
              s,
              f"S from {desc.get('backend')} scores"
              + (" (SIMULATED)" if desc.get("is_simulation") else ""),
          ),
          relation_plots.Panel(
              np.asarray(report["labels"]["somers_d_labels"]), "S from the true labels"
          ),
      ]
      if "truth" in report:
        tr = report["truth"]["from_scores"]
        graph = np.asarray(tr["true_graph"], np.float64)
        lim = max(1.0, float(np.abs(graph).max()))
        panels.append(
            relation_plots.Panel(
                graph,
                "TRUE_GRAPH (SCM weights, row -> column)",
                vmin=-lim,
                vmax=lim,
                colorbar_label="structural weight",
                names=tr["attributes"],
                blank_zeros=True,
                diagonal_text="\u2014",
            )
        )
      path = os.path.join(o.out, "somers_d_vs_truth.png")
      relation_plots.save_relation_panels(path, panels, attributes, title=head, subtitle=sub)
      figures.append(path)

  _print_summary(print_fn, o, scores_meta, report)
  return {
      "out": o.out,
      "scores": scores,
      "somers_d": s,
      "report": report,
      "scores_meta": scores_meta,
      "scorer_accuracy": accuracy_json,
      "figures": figures,
  }


def _dry_run(o, attributes, images, hashes, cache_path, print_fn) -> dict:
  n_unique = len(set(hashes))
  if o.backend in ("oracle", "replay"):
    what = "an offline SIMULATION from labels" if o.backend == "oracle" else "scores from a file"
    msg = (
        f"dry run: {o.backend}: {len(images)} images ({n_unique} unique) would be scored by "
        f"{what}; 0 network requests, no cost. Nothing was sent or written."
    )
    print_fn(msg)
    return {
        "dry_run": True,
        "backend": o.backend,
        "num_images": len(images),
        "num_requests": 0,
        "cost_usd": 0.0,
    }
  model = _default_model(o.backend, o.model)
  cached = (
      _count_cached(cache_path, hashes, o.backend, model, scorers_lib.PROMPT_VERSION, attributes)
      if cache_path
      else 0
  )
  todo = n_unique - cached
  def estimate(count: int):
    return estimate_request_cost(
        o.backend, model, count, attributes, base_url=o.base_url,
        image_size=tuple(images.shape[1:3]))

  est, full = estimate(todo), estimate(n_unique)
  print_fn(
      f"dry run: {o.backend}:{model} on {len(images)} images ({n_unique} unique), {len(attributes)}"
      f" attributes ({', '.join(attributes)}), one request per image"
  )
  if cache_path:
    print_fn(f"  already answered in the cache {cache_path}: {cached}")
  else:
    print_fn("  (no --out or --cache given: no cache consulted)")
  print_fn(f"  to send: {est}")
  if cached:
    print_fn(f"  (without the cache: {full})")
  print_fn("  nothing was sent or written")
  return {
      "dry_run": True,
      "backend": o.backend,
      "model": model,
      "num_images": len(images),
      "cached": cached,
      "num_requests": est.num_requests,
      "prompt_tokens": est.prompt_tokens,
      "completion_tokens": est.completion_tokens,
      "cost_usd": est.cost_usd,
  }


def _print_summary(print_fn, o, meta: dict, report: dict) -> None:
  names = report["attributes"]
  sim = (
      "  [SIMULATED: oracle, not an MLLM]"
      if meta["backend"] == "oracle"
      else ("  [SIMULATED]" if meta["is_simulation"] else "")
  )
  print_fn(f"scored {report['num_images']} images with {meta['backend']}:{meta['model']}{sim}")
  if meta.get("cache"):
    c = meta["cache"]
    print_fn(f"  cache {c['path']}: {c['hits']} hits, {c['newly_scored']} newly scored")
  print_fn("Somers' D, S[i, j] = impact of row i on column j:")
  print_fn(format_matrix(report["somers_d"], names))
  if "labels" in report:
    acc = report["labels"]["scorer_accuracy"]
    print_fn("scorer vs labels (exact / within +-1):")
    for a, v in acc["per_attribute"].items():
      print_fn(f"  {a:>10}: {v['exact']:.3f} / {v['within_1']:.3f}")
    print_fn(
        f"  mean exact {acc['mean_exact']}, all-zero rate {acc['all_zero_rate']} "
        f"(labels: {acc['all_zero_rate_labels']})"
    )
    print_fn(f"  S vs S(labels): {report['labels']['scores_vs_labels']}")
  if "truth" in report:
    g = report["truth"]["from_scores"]
    print_fn(
        f"TRUE_GRAPH: sign agreement {g['sign_agreement']} on {g['num_true_edges']} edges; "
        f"AUROC edges vs independent pairs: undirected {g['auroc_undirected']}, directed "
        f"{g['auroc_directed']}"
    )
    if "population" in report["truth"]:
      print_fn(f"  S vs population S: {report['truth']['population']['scores_vs_population']}")
  print_fn(f"wrote {o.out}")
