"""Graphs against a data set's known graph: the MLLM prior A_0, causal discovery on the scores
alone, and GEM's learned A, read by one set of metrics (`relations.graph_metrics`) and judged
by the same decoder's interventions. What `experiments.known_graph` writes to report.json and
`experiments.known_graph_study` tables.

Every graph here is over the attributes in the run's order (config.gem.attributes), rows =
parents: A_0 is Somers' D of the scores (the paper's prior, whatever config.gem.prior chose for
the run); "pc", "ges", "direct_lingam" are `relations.discovery.discover` on the same scores;
"gem" is the trained model's DisGraph read back into attribute order with the alignment's signs.

Interventions judge a graph by what it does to pictures: the trained model's decoder, with the
graph's weights as the structural equations (`graph_weights`: Somers' D on a discovery
method's skeleton, as `config.gem.prior` would build it; DirectLiNGAM's own coefficients),
intervenes do(a + 2 levels) on test images, and the local CNN measures what moves
(`gem_jax.metrics.intervention`).
"""
from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np

from gem_jax.data import get_dataset, load_examples
from gem_jax.evaluation import _level_heads, aligned_graphs, make_extractor
from gem_jax.files import atomic_write_json
from gem_jax.gem_pipeline import (
  Stage4Start,
  attribute_names,
  final_alignment_quality,
  prior_and_a0,
  run_shared_stages,
  run_stage4,
)
from gem_jax.metrics.intervention import (
  intervention_error,
  measured_intervention_effects,
  true_intervention_effects,
)
from gem_jax.pipeline_settings import array_digest, prior_method
from gem_jax.plots.relations import Panel, save_relation_panels
from gem_jax.relations import Alignment, graph_metrics, somers_d
from gem_jax.relations.discovery import METHODS, discover, skeleton_prior
from gem_jax.relations.recovery import json_float
from gem_jax.train.state import make_graph_state

__all__ = ["SCORE_ONLY", "REPORTED", "score_only_graphs", "graph_weights", "truth_over",
           "graph_rows", "intervention_rows", "best_score_only", "save_graph_figure",
           "latent_weights", "run_known_graph", "REPORT", "FIGURE", "start_with_prior"]

REPORT, FIGURE = "report.json", "graphs.png"  # what run_known_graph writes into its workdir

SCORE_ONLY = METHODS  # ("pc", "ges", "direct_lingam")
REPORTED = ("shd", "orientation", "f1", "auroc", "precision", "recall", "num_claimed_edges")


def score_only_graphs(scores: np.ndarray) -> dict[str, np.ndarray]:
  """{'A_0': Somers' D S [n, n] (diagonal 0), 'pc' | 'ges' | 'direct_lingam': the graph each
  finds} from int scores [N, n] (-1 = missing)."""
  s = np.asarray(somers_d(scores), np.float64)
  np.fill_diagonal(s, 0.0)
  out = {"A_0": s}
  for method in SCORE_ONLY:
    out[method] = discover(scores, method)
  return out


def graph_weights(graphs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """The structural weights [n, n] each graph intervenes with: A_0 as it is, PC's and GES's
  skeletons carrying Somers' D (the prior `config.gem.prior` builds), DirectLiNGAM's own
  coefficients, a learned graph as it is."""
  s = graphs["A_0"]
  return {name: skeleton_prior(s, g) if name in ("pc", "ges") else np.asarray(g, np.float64)
          for name, g in graphs.items()}


def truth_over(spec, names) -> np.ndarray:
  """The data set's true graph [n, n] over `names` (its attribute order)."""
  known = list(spec.attribute_names)
  idx = [known.index(n) for n in names]
  return np.asarray(spec.true_graph, np.float64)[np.ix_(idx, idx)]


def model_graph(model, spec) -> np.ndarray:
  """The trained model's learned graph [n, n] in its attribute order, signs applied."""
  return np.asarray(aligned_graphs(model, spec)["learned"], np.float64)


def graph_rows(graphs: dict[str, np.ndarray], truth: np.ndarray) -> dict[str, dict]:
  """{method: the REPORTED entries of `graph_metrics` (JSON floats)}."""
  rows = {}
  for name, graph in graphs.items():
    m = graph_metrics(graph, truth)
    rows[name] = {k: (m[k] if isinstance(m[k], int) else json_float(m[k])) for k in REPORTED}
  return rows


def latent_weights(model, weights: np.ndarray) -> np.ndarray:
  """Attribute-order weights [n, n] -> the model's latent order [d, d] (alignment signs)."""
  al = model.alignment
  w = np.zeros((model.latent_dim, model.latent_dim))
  latents = np.asarray(al.latent_of_attribute)
  signs = np.asarray(al.signs, np.float64)
  w[np.ix_(latents, latents)] = np.asarray(weights, np.float64) * np.outer(signs, signs)
  np.fill_diagonal(w, 0.0)
  return w


def intervention_rows(model, examples: dict, spec, level_logits,
                      weights: dict[str, np.ndarray], seed: int = 0) -> dict[str, dict]:
  """{method: {'error', 'own_error'}}: do(a + 2 levels) on `examples` decoded by the trained
  model with each method's structural weights [n, n] (attribute order), against the data
  set's counterfactual; {} without a known SCM."""
  names = list(model.alignment.attribute_names)
  true = true_intervention_effects(spec, examples, names, seed=seed)
  if true is None:
    return {}
  rows = {}
  for name, w in weights.items():
    own = None if name == "gem" else latent_weights(model, w)
    measured = measured_intervention_effects(model, examples["image"], level_logits, names,
                                             weights=own)
    errors = intervention_error(measured, true)
    rows[name] = {"error": json_float(errors["intervention_error"]),
                  "own_error": json_float(errors["own_error"]),
                  "effects": np.round(measured, 4).tolist()}
  rows["truth"] = {"effects": np.round(true, 4).tolist()}
  return rows


def best_score_only(rows: dict[str, dict]) -> str:
  """The score-only method with the lowest SHD (ties: the higher F1, then the listed order)."""
  return min(SCORE_ONLY, key=lambda m: (rows[m]["shd"], -(rows[m]["f1"] or 0.0)))


def save_graph_figure(path, names, truth: np.ndarray, graphs: dict[str, np.ndarray],
                      rows: dict[str, dict], subtitle: str = "") -> None:
  """The true graph, A_0, GEM's learned A and the best score-only graph side by side, each
  titled with its SHD."""
  best = best_score_only(rows)
  shown = [("true graph", truth, None), ("A_0 (Somers' D of the scores)", graphs["A_0"], "A_0"),
           ("GEM's learned A", graphs["gem"], "gem"), (f"{best} on the scores", graphs[best], best)]
  panels = [Panel(np.asarray(m, np.float64) + np.eye(len(names)),
                  title if key is None else f"{title}\nSHD {rows[key]['shd']}",
                  vmin=-max(1.0, float(np.abs(m).max())), vmax=max(1.0, float(np.abs(m).max())),
                  colorbar_label="weight (row -> column)", blank_zeros=True,
                  diagonal_text="")
            for title, m, key in shown]
  save_relation_panels(path, panels, list(names), title="Known graph: rows are parents",
                       subtitle=subtitle)


def start_with_prior(config, start: Stage4Start) -> Stage4Start:
  """The shared stages' start with A_0 built from config.gem.prior instead (the same warm-up,
  scores and alignment: a study's variants with another prior share stages 1-2)."""
  alignment = Alignment.from_json(start.extra_meta["alignment"])
  _, prior, a0 = prior_and_a0(config, start.scores, alignment)
  if np.array_equal(a0, np.asarray(start.graph["a0"])):
    return start
  graph = make_graph_state(a0, np.asarray(start.graph["edge_mask"]))
  meta = {**start.extra_meta, "prior": prior.to_json(list(alignment.attribute_names))}
  logging.info("stage 4 from the %s prior", prior_method(config))
  return dataclasses.replace(start, graph=graph, extra_meta=meta,
                             inputs={**start.inputs, "a0": array_digest(a0)})


def run_known_graph(config, workdir, eval_config, extractor_root) -> dict:
  """GEM's pipeline on a data set with a known graph, then every graph judged (the report).

  Runs (or resumes) stages 1-4 into workdir (`gem_pipeline`), reads the score-only graphs off
  the same scores, and writes workdir/report.json:
  {"concepts": {name: {"truth_spearman"}}, "graphs": {method: graph_metrics' REPORTED},
  "interventions": {method: {"error", "own_error", "effects"}, "truth": {"effects"}},
  "matrices": {method: [n, n]}, "truth": [n, n], "attributes", "prior", "scorer", "steps"},
  and workdir/graphs.png. eval_config: split, intervention_images, extractor_steps,
  extractor_examples (and the FID keys of `make_extractor`); extractor_root: where the local
  CNN is cached.
  """
  root = Path(workdir)
  start = run_shared_stages(config, root)
  model = run_stage4(config, start, root / "gem")
  quality = final_alignment_quality(config, model, start, root / "gem")
  spec = get_dataset(config.data)
  names = attribute_names(config)
  graphs = score_only_graphs(start.scores)
  graphs["gem"] = model_graph(model, spec)
  truth = truth_over(spec, names)
  rows = graph_rows(graphs, truth)
  extractor = make_extractor(config.data, eval_config, str(extractor_root))
  columns = _level_heads(model, extractor)
  interventions = {}
  if columns is not None:
    examples = load_examples(config.data, eval_config.split, eval_config.intervention_images)
    logits = lambda x: extractor.outputs(x, "logits")[:, columns]
    interventions = intervention_rows(model, examples, spec, logits, graph_weights(graphs),
                                      seed=config.seed)
  report = {
      "attributes": names, "truth": truth.tolist(),
      "concepts": {r.attribute: {"truth_spearman": json_float(r.truth_spearman)}
                   for r in quality.rows},
      "graphs": rows, "interventions": interventions,
      "matrices": {k: np.round(v, 4).tolist() for k, v in graphs.items()},
      "prior": config.gem.get("prior", "somers_d"), "model": config.model.name,
      "scorer": json.loads((root / "scores" / "scores.json").read_text()).get("scorer"),
      "steps": {"warmup": int(config.gem.warmup_steps), "gem": int(config.train.num_steps)},
  }
  atomic_write_json(root / REPORT, report)
  scorer = report["scorer"] or {}
  save_graph_figure(root / FIGURE, names, truth, graphs, rows,
                    subtitle="scores SIMULATED (oracle)" if scorer.get("is_simulation") else "")
  logging.info("known graph: SHD %s", {k: v["shd"] for k, v in rows.items()})
  return report
