"""In which regime do the latents carry the attributes they are named after?

    python -m experiments.alignment_study --workdir runs/alignment_study            # unsupervised
    python -m experiments.alignment_study --config experiments/configs/alignment_study.py:guided

Per setting (experiments/configs/alignment_study.py) and seed, GEM's shared stages run
(warm-up, oracle scoring: a SIMULATION, alignment: the Hungarian match, or the latents fixed up
front when guided), and the warm-up is measured against synthetic_faces' true factors:
  - truth Spearman: per attribute, the Spearman of its latent's mean with the true level on
    1,000 images of `eval.split` (test; `validation` to choose settings, which the stage-3 truth
    check then reads too), signed by the alignment (alignment.json's quality table);
  - best truth Spearman: the largest |Spearman| of ANY latent with the true level;
  - traversal effect: how many levels (local CNN) the attribute moves when its latent goes
    from -2 to +2 on the first 256 of them;
  - carried: both truth Spearman >= carried_spearman and traversal >= carried_levels.
Layout:
    <workdir>/<setting>/seed<k>/warmup/ scores/ graph/    the shared stages
    <workdir>/<setting>/seed<k>/eval.json                 its measurement (cached)
    <workdir>/alignment_study.md                           the tables (mean ± std over seeds)
    <results> (docs/results/alignment_study.json, .md)     every run and the summary
Everything resumes: finished stages and measurements are read back, not redone.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import ml_collections
from absl import app, flags
from ml_collections import config_flags
from tqdm import tqdm

from experiments import cli
from experiments.comparison import cell, mean_std, parse_list
from experiments.configs import synthetic_gem
from experiments.configs.alignment_study import setting_overrides
from gem_jax.config_checks import validate_config
from gem_jax.data import load_examples
from gem_jax.evaluation import make_extractor, traversal_metrics
from gem_jax.files import atomic_write_json, atomic_write_text
from gem_jax.gem_pipeline import run_shared_stages
from gem_jax.relations import Alignment, quality_from_json
from gem_jax.train import run_lock
from gem_jax.trained_model import load


def setting_config(study, name: str, seed: int) -> ml_collections.ConfigDict:
  """The run config of one setting and seed: synthetic_gem.py:<run_tokens>,gem with the
  setting's overrides; weak alignments are measured, never refused."""
  c = synthetic_gem.get_config(f"{study.run_tokens},gem")
  c.seed = seed
  c.data.config = study.data_config
  c.data.data_dir = study.data_dir
  c.gem.accept_weak_alignment = True
  c.gem.truth_split = study.eval.split  # the truth check reads the study's split
  for key, value in setting_overrides(name).items():
    node = c
    *path, last = key.split(".")
    for part in path:
      node = node[part]
    node[last] = value
  return c


def run_setting(study, root: Path, name: str, seed: int, extractor) -> dict:
  """Trains (or reads back) one setting's shared stages and measures its warm-up; cached in
  <setting>/seed<k>/eval.json for the same study settings."""
  out = root / name / f"seed{seed}"
  path = out / "eval.json"
  settings = {**study.eval.to_dict(), "extractor": extractor.name,
              "overrides": setting_overrides(name)}
  saved = json.loads(path.read_text()) if path.exists() else {}
  if saved.get("settings") == settings:
    return saved["metrics"]
  config = setting_config(study, name, seed)
  t0 = time.perf_counter()
  run_shared_stages(config, out)
  metrics = measure(config, out, study, extractor)
  metrics["wall_s_after_cache"] = time.perf_counter() - t0
  atomic_write_json(path, {"settings": settings, "metrics": metrics})
  return metrics


def measure(config, out: Path, study, extractor) -> dict:
  """The warm-up's alignment against the truth (the quality table stage 3 wrote) and the
  traversal effect of each aligned latent."""
  saved = json.loads((out / "graph" / "alignment.json").read_text())
  quality = quality_from_json(saved["quality"])
  model = load(str(out / "warmup"))
  model.alignment = Alignment.from_json(saved)
  images = load_examples(config.data, study.eval.split, study.eval.num_images)["image"]
  traversal = traversal_metrics(model, images, extractor)
  own = traversal.get("traversal_effect_own", [None] * len(quality.rows))
  rows = {r.attribute: {"latent": r.latent, "score_spearman": r.score_spearman,
                        "truth_spearman": r.truth_spearman,
                        "best_truth_spearman": r.best_truth_spearman, "traversal": t}
          for r, t in zip(quality.rows, own, strict=True)}
  carried = [a for a, r in rows.items()
             if r["truth_spearman"] is not None and r["traversal"] is not None
             and r["truth_spearman"] >= study.carried_spearman
             and r["traversal"] >= study.carried_levels]
  truth = [r["truth_spearman"] for r in rows.values()]
  return {"attributes": rows, "carried": carried, "num_carried": len(carried),
          "truth_spearman_min": min(truth) if None not in truth else None,
          "traversal_min": min(own) if None not in own else None,
          "checked_on": quality.checked_on, "truth_on": quality.truth_on,
          "traversal_effect": traversal.get("traversal_effect")}


def summarise(runs: dict[str, dict[int, dict]]) -> dict:
  """{setting: {'<attribute>/<metric>': (mean, std, n), 'num_carried': ..., ...}}."""
  out = {}
  for name, by_seed in runs.items():
    stats = {}
    metrics = list(by_seed.values())
    for attribute in metrics[0]["attributes"]:
      for key in ("truth_spearman", "best_truth_spearman", "traversal", "score_spearman"):
        stats[f"{attribute}/{key}"] = mean_std([m["attributes"][attribute][key]
                                                for m in metrics])
    for key in ("num_carried", "truth_spearman_min", "traversal_min", "wall_s_after_cache"):
      stats[key] = mean_std([m.get(key) for m in metrics])
    out[name] = stats
  return out


def markdown(study, summary: dict, runs: dict) -> str:
  """Three tables: truth Spearman, traversal effect, and the carried count per setting."""
  attributes = list(next(iter(next(iter(runs.values())).values()))["attributes"])
  lines = [f"synthetic_faces/{study.data_config}, alignment study (`{study.preset}`): seeds "
           f"{study.seeds} per setting, mean ± std over seeds. Scores: oracle SIMULATION. "
           f"Carried = Spearman with the true level >= {study.carried_spearman} and traversal "
           f">= {study.carried_levels} levels (local CNN), on {study.eval.num_images} "
           f"'{study.eval.split}' images (traversal: the first 256).", ""]
  for title, key, digits in (("Spearman of each attribute's latent with its TRUE level",
                              "truth_spearman", 2),
                             ("Best |Spearman| of ANY latent with the true level",
                              "best_truth_spearman", 2),
                             ("Traversal effect of each attribute's latent (levels, -2 -> +2)",
                              "traversal", 2)):
    lines += [f"**{title}**", "", "| setting | " + " | ".join(attributes) + " |",
              "|---|" + "---:|" * len(attributes)]
    for name, s in summary.items():
      lines.append(f"| {name} | " + " | ".join(cell(s.get(f"{a}/{key}"), digits, 1.0)
                                               for a in attributes) + " |")
    lines.append("")
  lines += ["**Summary**", "", "| setting | seeds | attributes carried (of 6) | min truth "
            "Spearman | min traversal | wall s per run |", "|---|---:|---:|---:|---:|---:|"]
  for name, s in summary.items():
    lines.append(f"| {name} | {len(runs[name])} | {cell(s.get('num_carried'), 1, 1.0)} | "
                 f"{cell(s.get('truth_spearman_min'), 2, 1.0)} | "
                 f"{cell(s.get('traversal_min'), 2, 1.0)} | "
                 f"{cell(s.get('wall_s_after_cache'), 0, 1.0)} |")
  return "\n".join(lines) + "\n"


def write_outputs(study, root: Path, runs: dict) -> str:
  summary = summarise(runs)
  text = markdown(study, summary, runs)
  atomic_write_text(root / "alignment_study.md", text)
  if study.results:
    path = Path(study.results)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path.with_suffix(".md"), text)
    atomic_write_json(path, {"study": study.to_dict(),
                             "settings": {n: setting_overrides(n) for n in runs},
                             "runs": {n: {str(s): m for s, m in by.items()}
                                      for n, by in runs.items()},
                             "summary": summary}, indent=1)
  return text


def study_jobs(study) -> list[tuple[int, str]]:
  """(seed, setting) of every run: each setting on every seed (seed by seed), then the screened
  settings on their seeds."""
  main = [(int(s), n) for s in parse_list(study.seeds) for n in parse_list(study.settings)]
  screen = [(int(s), n) for s in parse_list(study.get("screen_seeds", ""))
            for n in parse_list(study.get("screen", ""))]
  return main + screen


def run_study(study, workdir: str) -> str:
  """Every (setting, seed) under one run lock on workdir, the tables written after each."""
  root = Path(workdir)
  with run_lock(root):
    atomic_write_text(root / "study_config.json", study.to_json(indent=2))
    jobs = study_jobs(study)
    for seed, name in jobs:  # every run's config checked before any work
      validate_config(setting_config(study, name, seed))
    extractor = make_extractor(setting_config(study, jobs[0][1], jobs[0][0]).data, study.eval,
                               str(root / "feature_extractor"))
    runs = {n: {} for _, n in jobs}
    text = ""
    for seed, name in tqdm(jobs, desc="alignment study", unit="run"):
      logging.info("alignment study: %s, seed %d", name, seed)
      runs[name][seed] = run_setting(study, root, name, seed, extractor)
      text = write_outputs(study, root, {n: r for n, r in runs.items() if r})
    return text


def define_main():
  """Defines --config and --workdir at run time (tests import several entry points)."""
  config = config_flags.DEFINE_config_file("config", cli.config_path("alignment_study"),
                                           "Study config, optionally with ':preset'.")
  workdir = flags.DEFINE_string("workdir", "runs/alignment_study", "Folder of all runs.")

  def main(argv):
    del argv
    cli.setup_logging()
    print(run_study(config.value, workdir.value))

  return main


if __name__ == "__main__":
  app.run(define_main())
