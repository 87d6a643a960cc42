"""Does GEM's learned graph A beat its MLLM prior A_0 on synthetic_faces' known graph?

    python -m experiments.graph_study --workdir runs/graph_study     # ~1 hour on 2 CPU cores
    python -m experiments.graph_study --config experiments/configs/graph_study.py:long ...

Per seed, the shared stages (warm-up, oracle scoring at the paper's accuracy, alignment) run
once; every variant (experiments/configs/graph_study.py) is a stage-4 run from them, then
evaluated. Layout:

    <workdir>/seed<k>/warmup/ scores/ graph/       the shared stages of seed k
    <workdir>/seed<k>/<variant>/                   its stage-4 run (checkpoints, metrics)
    <workdir>/seed<k>/<variant>.eval.json          its evaluation
    <workdir>/graph_study.md, graph_study.csv       the tables (mean ± std over seeds)
    <results> (docs/results/graph_study.json)       every run's metrics and the summary

Everything resumes: finished shared stages, runs and evaluations are read back, not redone.
"""
from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import ml_collections
import numpy as np
from absl import app, flags
from ml_collections import config_flags
from tqdm import tqdm

from experiments import cli
from experiments.comparison import cell, extractor_note, mean_std, parse_list
from experiments.configs import synthetic_gem
from gem_jax.config_checks import validate_config
from gem_jax.data import get_dataset
from gem_jax.evaluation import aligned_graphs, evaluate_model, make_extractor
from gem_jax.files import atomic_write_json, atomic_write_text
from gem_jax.gem_pipeline import (
  guided_stages,
  make_guide,
  run_shared_stages,
  run_stage4,
  stage4_config,
)
from gem_jax.relations import relation_recovery
from gem_jax.train import checkpoints, run_lock, train_and_evaluate
from gem_jax.trained_model import load

BETA_VAE = "beta_vae"
SHARED = "gem_paper"  # the variant whose config runs the shared stages (all share them)
RELATION_KEYS = ("auroc_all_pairs", "orientation_accuracy", "spearman", "weight_mae",
                 "directed_auroc", "sign_accuracy")
# (header, metric key, digits, scale) of the main table.
COLUMNS = (
    ("AUROC all pairs", "relation_auroc_all_pairs", 3, 1.0),
    ("orientation", "relation_orientation_accuracy", 2, 1.0),
    ("Spearman", "relation_spearman", 3, 1.0),
    ("weight MAE", "relation_weight_mae", 3, 1.0),
    ("MAE of A_0 scaled to A's mass", "relation_a0_scaled_weight_mae", 3, 1.0),
    ("off-diagonal mass", "relation_offdiag_mass", 2, 1.0),
    ("directed AUROC", "relation_directed_auroc", 3, 1.0),
    ("traversal own", "traversal_effect_own_mean", 2, 1.0),
    ("traversal own, min", "traversal_effect_own_min", 2, 1.0),
    ("truth Spearman, min", "alignment_truth_spearman_min", 2, 1.0),
    ("DCI-D", "dci_disentanglement", 3, 1.0),
    ("MIG", "mig", 3, 1.0),
    ("FD samples", "fd_sample", 1, 1.0),
    ("MSE / pixel (x1e3)", "mse_per_pixel", 2, 1e3),
)
# (header, key, digits, scale) of the paired learned-minus-A_0 table.
DELTA_COLUMNS = (
    ("AUROC all pairs", "relation_auroc_all_pairs", 3, 1.0),
    ("orientation", "relation_orientation_accuracy", 2, 1.0),
    ("Spearman", "relation_spearman", 3, 1.0),
    ("weight MAE", "relation_weight_mae", 3, 1.0),
    ("weight MAE vs scaled A_0", "relation_weight_mae_vs_scaled_a0", 3, 1.0),
    ("directed AUROC", "relation_directed_auroc", 3, 1.0),
)
A0_ROW = "A_0 (MLLM prior)"


def variant_config(study, variant: str, seed: int) -> ml_collections.ConfigDict:
  """The run config of one variant and seed: synthetic_gem.py tokens ('-' joins them) on
  the study's size preset, stage 4 of study.stage4_steps."""
  gem_tokens = variant.split("-")
  tokens = [SHARED if variant == BETA_VAE else t for t in gem_tokens]
  c = synthetic_gem.get_config(",".join(tokens + [study.run_tokens]))
  c.seed = seed
  c.data.config = study.data_config
  c.data.data_dir = study.data_dir
  c.gem.warmup_steps = study.warmup_steps
  c.gem.scorer.backend = "oracle"
  c.gem.scorer.accuracy = study.scorer_accuracy
  c.train.num_steps = c.train.checkpoint_every = c.train.sample_every = study.stage4_steps
  c.gem.accept_weak_alignment = True  # measured and tabled (truth Spearman), never refused
  if variant == BETA_VAE:  # the warm-up continued as a β-VAE, on the GEM stage's schedule
    c.model.name, c.model.graph_learner, c.model.adversarial = "beta_vae", False, False
    c.model.lambda_dis = 1.0
  return c


def train_variant(study, root: Path, variant: str, seed: int) -> Path:
  """Stage 4 of one variant from the seed's shared stages; returns its run folder."""
  seed_dir = root / f"seed{seed}"
  out = seed_dir / variant
  config = variant_config(study, variant, seed)
  if checkpoints.reached(out, config.train.num_steps):
    return out
  start = run_shared_stages(variant_config(study, SHARED, seed), seed_dir)
  if variant == BETA_VAE:  # guided as GEM's stage 4 is, so that only the graph differs
    config = stage4_config(config)
    guide = make_guide(config, start.examples, start.scores) if (
        "gem" in guided_stages(config)) else None
    train_and_evaluate(config, out, resume=True, vae_params=start.vae_params, guide=guide)
  else:
    run_stage4(config, start, out)
  return out


def shrinkage_control(model, spec) -> dict:
  """Whether A beats a mere shrinkage of A_0: the off-diagonal L1 mass of A and of A_0 over the
  aligned latents, and the weight MAE of A_0 scaled to A's mass ('relation_a0_scaled_*'; the
  AUROCs, orientation and Spearman of a scaled A_0 are A_0's). {} without A_0."""
  g = aligned_graphs(model, spec)
  if g is None or g["a0"] is None:
    return {}
  off = ~np.eye(len(g["names"]), dtype=bool)
  mass, mass0 = np.abs(g["learned"][off]).sum(), np.abs(g["a0"][off]).sum()
  scaled = np.where(off, g["a0"] * (mass / mass0 if mass0 else 0.0), 1.0)
  rec = relation_recovery(scaled, g["truth"], independent_pairs=g["independent_pairs"])
  return {"relation_offdiag_mass": float(mass), "relation_a0_offdiag_mass": float(mass0),
          "relation_a0_scaled_weight_mae": rec["weight_mae"]}


def _study_metrics(model, metrics: dict) -> dict:
  """evaluate_model's metrics plus the study's: mean own traversal effect, shrinkage control."""
  out = dict(metrics)
  if "traversal_effect_own" in out:
    out["traversal_effect_own_mean"] = float(np.mean(out["traversal_effect_own"]))
  out.update(shrinkage_control(model, get_dataset(model.config.data)))
  return out


def evaluate_variant(study, root: Path, variant: str, seed: int, extractor) -> dict:
  """The run's metrics (`gem_jax.evaluation.evaluate_model` + `_study_metrics`), cached in
  <seed>/<variant>.eval.json for the same settings."""
  path = root / f"seed{seed}" / f"{variant}.eval.json"
  settings = {**study.eval.to_dict(), "extractor": extractor.name,
              "stage4_steps": study.stage4_steps}
  saved = json.loads(path.read_text()) if path.exists() else {}
  if saved.get("settings") == settings:
    return saved["metrics"]
  model = load(str(root / f"seed{seed}" / variant))
  metrics = _study_metrics(model, evaluate_model(model, model.config, study.eval, extractor,
                                                 seed=seed))
  atomic_write_json(path, {"settings": settings, "metrics": metrics})
  return metrics


def a0_metrics(runs: dict[str, dict[int, dict]]) -> dict[int, dict]:
  """Per seed, the recovery of A_0 (the same for every GEM variant of a seed) under the
  learned graph's keys ('relation_<key>')."""
  out = {}
  for by_seed in runs.values():
    for seed, m in by_seed.items():
      if f"relation_a0_{RELATION_KEYS[0]}" in m and seed not in out:
        out[seed] = {f"relation_{k}": m.get(f"relation_a0_{k}") for k in RELATION_KEYS}
        out[seed]["relation_offdiag_mass"] = m.get("relation_a0_offdiag_mass")
  return out


def paired_deltas(runs: dict[str, dict[int, dict]], a0: dict[int, dict]) -> dict:
  """{variant: {key: (mean, std, n)}} of learned A minus A_0, paired per seed, for variants
  whose A differs from A_0 by learning; 'relation_weight_mae_vs_scaled_a0' is A's weight MAE
  minus that of A_0 scaled to A's off-diagonal mass (below 0: better than shrinking A_0)."""
  out = {}
  for variant, by_seed in runs.items():
    if variant == BETA_VAE or "gem_single" in variant or "no_learner" in variant:
      continue
    deltas = {}
    for key in RELATION_KEYS:
      k = f"relation_{key}"
      deltas[k] = mean_std([m[k] - a0[s][k] for s, m in by_seed.items()
                            if m.get(k) is not None and a0.get(s, {}).get(k) is not None])
    deltas["relation_weight_mae_vs_scaled_a0"] = mean_std(
        [m["relation_weight_mae"] - m["relation_a0_scaled_weight_mae"]
         for m in by_seed.values() if m.get("relation_a0_scaled_weight_mae") is not None])
    out[variant] = deltas
  return out


def summarise(runs: dict[str, dict[int, dict]]) -> dict:
  """{row: {metric: (mean, std, n)}}: each variant, then A_0's recovery."""
  def stats(by_seed):
    keys = sorted({k for m in by_seed.values() for k, v in m.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)})
    return {k: mean_std([m.get(k) for m in by_seed.values()]) for k in keys}
  summary = {variant: stats(by_seed) for variant, by_seed in runs.items()}
  summary[A0_ROW] = stats(a0_metrics(runs))
  return summary


def markdown(summary: dict, deltas: dict, header: str) -> str:
  """The main table (every row) and the paired learned-minus-A_0 table."""
  lines = [header, "", "| variant | " + " | ".join(c[0] for c in COLUMNS) + " |",
           "|---|" + "---:|" * len(COLUMNS)]
  for row, s in summary.items():
    lines.append(f"| {row} | " + " | ".join(cell(s.get(k), d, sc) for _, k, d, sc in COLUMNS)
                 + " |")
  lines += ["", "Learned A minus A_0, paired per seed (mean ± std over seeds; higher is better "
            "except the weight MAEs):", "",
            "| variant | " + " | ".join(f"Δ {c[0]}" for c in DELTA_COLUMNS) + " |",
            "|---|" + "---:|" * len(DELTA_COLUMNS)]
  for variant, d in deltas.items():
    lines.append(f"| {variant} | " + " | ".join(cell(d.get(k), dg + 1, sc)
                                              for _, k, dg, sc in DELTA_COLUMNS) + " |")
  return "\n".join(lines) + "\n"


def header(study, extractor_name: str) -> str:
  seeds = parse_list(study.seeds)
  return (f"synthetic_faces/{study.data_config}, graph study preset `{study.preset}`: seeds "
          f"{', '.join(seeds)} (mean ± std over seeds); per seed one warm-up "
          f"({study.warmup_steps} steps, '{study.run_tokens}' settings), oracle scores at "
          f"accuracy {study.scorer_accuracy} (a SIMULATION of the MLLM), then "
          f"{study.stage4_steps} stage-4 steps per variant; {study.eval.num_images} "
          f"`{study.eval.split}` images. FD uses `{extractor_name}` "
          f"({extractor_note(extractor_name)}).")


def write_outputs(study, root: Path, runs: dict, extractor_name: str) -> str:
  """graph_study.md and .csv in root, the JSON at study.results; returns the Markdown."""
  summary = summarise(runs)
  deltas = paired_deltas(runs, a0_metrics(runs))
  text = markdown(summary, deltas, header(study, extractor_name))
  atomic_write_text(root / "graph_study.md", text)
  with open(root / "graph_study.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["row", "metric", "mean", "std", "n"])
    for row, stats in summary.items():
      w.writerows([row, k, *s] for k, s in stats.items() if s is not None)
    for variant, d in deltas.items():
      w.writerows([f"{variant} minus A_0", k, *s] for k, s in d.items() if s is not None)
  if study.results:
    path = Path(study.results)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, {
        "study": study.to_dict(), "feature_extractor": extractor_name,
        "runs": {v: {str(s): m for s, m in by.items()} for v, by in runs.items()},
        "a0": {str(s): m for s, m in a0_metrics(runs).items()},
        "summary": summary, "a_minus_a0": deltas}, indent=1)
  return text


def run_study(study, workdir: str) -> str:
  """Trains and evaluates every (seed, variant) under one run lock on workdir, writing the
  tables after each; returns the Markdown."""
  root = Path(workdir)
  with run_lock(root):
    return _run_study(study, root)


def _run_study(study, root: Path) -> str:
  atomic_write_text(root / "study_config.json", study.to_json(indent=2))
  seeds = [int(s) for s in parse_list(study.seeds)]
  variants = parse_list(study.variants)
  for variant in variants:  # every run's config checked before any work
    validate_config(variant_config(study, variant, seeds[0]))
  data_config = variant_config(study, SHARED, seeds[0]).data
  extractor = make_extractor(data_config, study.eval, str(root / "feature_extractor"))
  runs = {v: {} for v in variants}
  text = ""
  jobs = [(s, v) for s in seeds for v in variants]
  for seed, variant in tqdm(jobs, desc="graph study", unit="run"):
    logging.info("graph study: seed %d, %s", seed, variant)
    train_variant(study, root, variant, seed)
    runs[variant][seed] = evaluate_variant(study, root, variant, seed, extractor)
    text = write_outputs(study, root, runs, extractor.name)  # a partial table after each run
  return text


def define_main():
  """Defines --config and --workdir (at run time, not import time: tests import this module
  beside other entry points that define --workdir) and returns the absl main."""
  config = config_flags.DEFINE_config_file("config", cli.config_path("graph_study"),
                                           "Study config, optionally with ':preset'.")
  workdir = flags.DEFINE_string("workdir", "runs/graph_study", "Folder of all runs and tables.")

  def main(argv):
    del argv
    cli.setup_logging()
    print(run_study(config.value, workdir.value))

  return main


if __name__ == "__main__":
  app.run(define_main())
