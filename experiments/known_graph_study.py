"""Does GEM's learned graph beat its MLLM prior and causal discovery on the scores alone?

    python -m experiments.known_graph_study --workdir runs/known_graph_study
    python -m experiments.known_graph_study --config experiments/configs/known_graph_study.py:tiny

Per data set x scorer x seed (experiments/configs/known_graph_study.py): the shared stages
once, then every GEM variant's stage 4; each judged against the data set's known graph
(`gem_jax.graph_benchmark`). Layout:

    <workdir>/<data set>/<scorer>/seed<k>/warmup/ scores/ graph/   shared stages
    <workdir>/<data set>/<scorer>/seed<k>/<variant>/               stage 4
    <workdir>/<data set>/<scorer>/seed<k>/<row>.eval.json          each row's metrics
    <workdir>/known_graph_study.md                                  the tables (mean ± std)
    <results> (docs/results/known_graph_study.json)                 every run and the summary

Everything resumes: finished stages and evaluations are read back, not redone. A data set is
'synthetic_faces', 'pendulum' (rendered into the tfds data_dir) or the path of a labelled folder.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import ml_collections
import numpy as np
from absl import app, flags
from ml_collections import config_flags
from tqdm import tqdm

from experiments import cli
from experiments.comparison import cell, mean_std, parse_list
from experiments.known_graph import run_config
from gem_jax.config_checks import validate_config
from gem_jax.data import get_dataset, load_examples
from gem_jax.evaluation import _level_heads, make_extractor
from gem_jax.files import atomic_write_json, atomic_write_text
from gem_jax.gem_pipeline import (
  attribute_names,
  final_alignment_quality,
  run_shared_stages,
  run_stage4,
)
from gem_jax.graph_benchmark import (
  SCORE_ONLY,
  graph_rows,
  graph_weights,
  intervention_rows,
  model_graph,
  score_only_graphs,
  start_with_prior,
  truth_over,
)
from gem_jax.train import run_lock

SCORE_ROWS = ("A_0",) + SCORE_ONLY
# (header, key, digits) of each table's columns.
COLUMNS = (("SHD", "shd", 2), ("orientation", "orientation", 2), ("F1", "f1", 2),
           ("AUROC", "auroc", 2), ("intervention error", "intervention_error", 3),
           ("truth Spearman, min", "truth_spearman_min", 2))


def cell_config(study, dataset: str, scorer: str, seed: int, variant: str):
  """The GEM run config of one variant in one cell (experiments.known_graph's `run_config`)."""
  folder = dataset not in ("synthetic_faces", "pendulum")
  kg = ml_collections.ConfigDict({
      "dataset": "labelled_folder" if folder else dataset, "image_dir": dataset if folder
      else None, "data_dir": study.data_dir, "run_tokens": study.run_tokens,
      "variant": variant, "seed": seed, "warmup_steps": study.warmup_steps,
      "stage4_steps": study.stage4_steps, "num_scored_images": study.num_scored_images,
      "scorer_accuracy": study.scorer_accuracy, "error_model": scorer})
  return run_config(kg)


def dataset_label(dataset: str) -> str:
  return dataset if dataset in ("synthetic_faces", "pendulum") else Path(dataset).name


def cell_variants(study, scorer: str) -> list[str]:
  extra = parse_list(study.ablations) if scorer in parse_list(study.ablation_scorers) else []
  return parse_list(study.variants) + extra


def evaluate_row(model, config, start, examples, spec, extractor, name: str = "gem",
                 graph: np.ndarray | None = None) -> dict:
  """SHD, orientation, F1, AUROC of a graph (default: the model's learned one) and the
  intervention error of do(a + 2 levels) with its weights (`graph_weights`: a discovery
  method's skeleton carries Somers' D) through the model's decoder."""
  names = attribute_names(config)
  if graph is None:
    graph = model_graph(model, spec)
  row = graph_rows({name: graph}, truth_over(spec, names))[name]
  columns = _level_heads(model, extractor)
  if columns is not None:
    logits = lambda x: extractor.outputs(x, "logits")[:, columns]
    weights = graph_weights({"A_0": start_somers(start), name: graph})
    found = intervention_rows(model, examples, spec, logits, {name: weights[name]},
                              config.seed)
    row["intervention_error"] = found.get(name, {}).get("error")
  return row


def start_somers(start) -> np.ndarray:
  s = np.asarray(start.extra_meta["somers_d"], np.float64)
  np.fill_diagonal(s, 0.0)
  return s


def run_cell(study, root: Path, dataset: str, scorer: str, seed: int, extractor_for) -> dict:
  """{row: metrics} of one cell: each variant (trained, resumed or read back) and each
  score-only method; each row cached in <cell>/<row>.eval.json."""
  cell_dir = root / dataset_label(dataset) / scorer / f"seed{seed}"
  variants = cell_variants(study, scorer)
  rows = {}
  cached = lambda name: read_json(cell_dir / f"{name}.eval.json")
  if all(cached(v) for v in list(variants) + list(SCORE_ROWS)):
    return {name: cached(name) for name in list(SCORE_ROWS) + variants}
  base = cell_config(study, dataset, scorer, seed, variants[0])
  # Stages 1-3 on the paper's prior whatever variant comes first: each variant's A_0 is
  # rebuilt from the same scores (start_with_prior), so a cell serves every invocation.
  shared = base.copy_and_resolve_references()
  shared.gem.prior = "somers_d"
  start = run_shared_stages(shared, cell_dir)
  spec = get_dataset(base.data)
  extractor = extractor_for(base.data)
  examples = load_examples(base.data, study.eval.split, study.eval.intervention_images)
  models = {}
  for variant in variants:
    config = cell_config(study, dataset, scorer, seed, variant)
    models[variant] = run_stage4(config, start_with_prior(config, start), cell_dir / variant)
    if not cached(variant):
      quality = final_alignment_quality(config, models[variant], start, cell_dir / variant)
      row = evaluate_row(models[variant], config, start, examples, spec, extractor)
      truths = [r.truth_spearman for r in quality.rows if r.truth_spearman is not None]
      row["truth_spearman_min"] = min(truths) if truths else None
      row["truth_spearman"] = {r.attribute: r.truth_spearman for r in quality.rows}
      atomic_write_json(cell_dir / f"{variant}.eval.json", row)
    rows[variant] = cached(variant)
  graphs = score_only_graphs(start.scores)
  for name in SCORE_ROWS:
    if not cached(name):
      row = evaluate_row(models[variants[0]], base, start, examples, spec, extractor,
                         name=name, graph=graphs[name])
      atomic_write_json(cell_dir / f"{name}.eval.json", row)
    rows[name] = cached(name)
  return {name: rows[name] for name in list(SCORE_ROWS) + variants}


def read_json(path: Path) -> dict | None:
  return json.loads(path.read_text()) if path.is_file() else None


def summarise(runs: dict) -> dict:
  """{(data set, scorer): {row: {key: (mean, std, n)}}} over seeds."""
  out = {}
  for key, by_seed in runs.items():
    names = list(next(iter(by_seed.values())))
    out[key] = {name: {k: mean_std([by_seed[s][name].get(k) for s in by_seed
                                    if name in by_seed[s]]) for _, k, _ in COLUMNS}
                for name in names}
  return out


def paired(runs: dict, variant: str) -> dict:
  """Per cell: the variant's SHD minus A_0's and minus the best score-only method's (the
  lowest SHD of PC, GES and DirectLiNGAM on that seed), mean ± std over seeds."""
  out = {}
  for key, by_seed in runs.items():
    d0 = [r[variant]["shd"] - r["A_0"]["shd"] for r in by_seed.values() if variant in r]
    db = [r[variant]["shd"] - min(r[m]["shd"] for m in SCORE_ONLY) for r in by_seed.values()
          if variant in r]
    out[key] = {"minus_a0": mean_std(d0), "minus_best_score_only": mean_std(db)}
  return out


def markdown(study, summary: dict, deltas: dict) -> str:
  lines = [f"Known-graph study, preset `{study.preset}`: seeds {study.seeds} (mean ± std); "
           f"per seed one warm-up ({study.warmup_steps} steps, '{study.run_tokens}' settings), "
           f"{study.num_scored_images} images scored by the oracle (a SIMULATION) at mean "
           f"accuracy {study.scorer_accuracy}, {study.stage4_steps} stage-4 steps per GEM "
           f"variant; graphs read at |w| >= 0.1; interventions do(a + 2 levels) on "
           f"{study.eval.intervention_images} `{study.eval.split}` images.", ""]
  for (dataset, scorer), rows in summary.items():
    lines += [f"### {dataset}, {scorer} scorer", "",
              "| graph | " + " | ".join(c[0] for c in COLUMNS) + " |",
              "|---|" + "---:|" * len(COLUMNS)]
    for name, stats in rows.items():
      lines.append(f"| {name} | " + " | ".join(cell(stats.get(k), d, 1.0)
                                               for _, k, d in COLUMNS) + " |")
    lines += ["", "| GEM variant | SHD minus A_0 | SHD minus best score-only |", "|---|---:|---:|"]
    for variant, by_cell in deltas.items():
      d = by_cell.get((dataset, scorer))
      if d:
        lines.append(f"| {variant} | {cell(d['minus_a0'], 2, 1.0)} | "
                     f"{cell(d['minus_best_score_only'], 2, 1.0)} |")
    lines.append("")
  return "\n".join(lines)


def run_study(study, workdir: str) -> str:
  root = Path(workdir)
  with run_lock(root):
    atomic_write_text(root / "study_config.json", study.to_json(indent=2))
    datasets, scorers = parse_list(study.datasets), parse_list(study.scorers)
    seeds = [int(s) for s in parse_list(study.seeds)]
    for dataset in datasets:  # every run's config checked before any work
      for scorer in scorers:
        for variant in cell_variants(study, scorer):
          validate_config(cell_config(study, dataset, scorer, seeds[0], variant))
    extractors = {}

    def extractor_for(data_config):
      key = data_config.name + str(data_config.get("image_dir"))
      if key not in extractors:
        extractors[key] = make_extractor(data_config, study.eval, str(root / "extractors"))
      return extractors[key]

    runs, text = {}, ""
    jobs = [(d, sc, s) for d in datasets for sc in scorers for s in seeds]
    for dataset, scorer, seed in tqdm(jobs, desc="known-graph study", unit="cell"):
      logging.info("known-graph study: %s, %s scorer, seed %d", dataset, scorer, seed)
      key = (dataset_label(dataset), scorer)
      runs.setdefault(key, {})[seed] = run_cell(study, root, dataset, scorer, seed,
                                                extractor_for)
      text = write_outputs(study, root, runs)
    return text


def write_outputs(study, root: Path, runs: dict) -> str:
  summary = summarise(runs)
  variants = sorted({v for by_seed in runs.values() for r in by_seed.values() for v in r
                     if v not in SCORE_ROWS})
  deltas = {v: paired(runs, v) for v in variants}
  text = markdown(study, summary, deltas)
  atomic_write_text(root / "known_graph_study.md", text)
  if study.results:
    path = Path(study.results)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, {
        "study": study.to_dict(),
        "runs": {f"{d}/{sc}": {str(s): r for s, r in by.items()}
                 for (d, sc), by in runs.items()},
        "summary": {f"{d}/{sc}": rows for (d, sc), rows in summary.items()},
        "paired": {v: {f"{d}/{sc}": x for (d, sc), x in by.items()}
                   for v, by in deltas.items()}}, indent=1)
  return text


def define_main():
  config = config_flags.DEFINE_config_file("config", cli.config_path("known_graph_study"),
                                           "Study config, optionally with ':preset'.")
  workdir = flags.DEFINE_string("workdir", "runs/known_graph_study", "Folder of every run.")

  def main(argv):
    del argv
    cli.setup_logging()
    try:
      print(run_study(config.value, workdir.value))
    except cli.DOMAIN_ERRORS as e:
      raise SystemExit(f"error: {e}") from e

  return main


if __name__ == "__main__":
  app.run(define_main())
