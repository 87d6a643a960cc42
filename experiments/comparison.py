"""The paper's Table 1 / Table 2 on the data at hand: every method x seed, trained or loaded,
evaluated, and summarised as mean ± std.

    <root>/<method>/seed<k>/          one run (GEM: the pipeline's warmup/ scores/ graph/ gem/)
    <root>/<method>/seed<k>/eval.json  its evaluation (`gem_jax.evaluation.evaluate_model`)
    <root>/benchmark/<method>.json     Table 2 columns, timed by `experiments.benchmark`
    <root>/table1.md, table1.csv, runs.csv

GEM's warm-up, unguided, is the β-VAE run of the same seed at step `gem_warmup_steps` (the two
are the same training: β-VAE branch, A = I, same seed, batch and learning rate), copied into
GEM's warmup/ folder; guided (the default), it is GEM's own warm-up of `gem_warmup_steps` (the
run settings' warm-up β). Either way GEM sees as many images as a baseline: warm-up + GEM
stage at batch 32 (the guided term's scored images come on top: 16 per step).
Everything is resumable: a finished run, evaluation or benchmark is read back, not redone.
"""
from __future__ import annotations

import concurrent.futures
import csv
import json
import logging
import multiprocessing
import shutil
import subprocess
import sys
from pathlib import Path

import ml_collections
import numpy as np

from experiments.configs import synthetic_gem
from experiments.configs.table1 import METHOD_TOKENS
from gem_jax.data import get_dataset, load_examples
from gem_jax.evaluation import evaluate_model, make_extractor
from gem_jax.gem_pipeline import attribute_names, guided_stages, run_gem
from gem_jax.metrics.features import metric_label
from gem_jax.scoring import scorer_accuracy
from gem_jax.train import checkpoints, run_lock, train_and_evaluate
from gem_jax.trained_model import load

GEM_METHODS = ("gem", "gem_single")


def parse_list(text: str) -> list[str]:
  return [t.strip() for t in str(text).split(",") if t.strip()]


def method_config(table, method: str, seed: int) -> ml_collections.ConfigDict:
  """The run config of `method` for one seed (experiments/configs/synthetic_gem.py tokens)."""
  if method not in METHOD_TOKENS:
    raise ValueError(f"unknown method {method!r}; choose from {sorted(METHOD_TOKENS)}")
  tokens = ",".join(t for t in (METHOD_TOKENS[method], table.run_tokens) if t)
  c = synthetic_gem.get_config(tokens)
  c.seed = seed
  c.data.name = table.dataset
  c.data.config = table.data_config
  c.data.data_dir = table.data_dir
  c.model.latent_dim = table.latent_dim
  if method in GEM_METHODS:
    c.train.num_steps = c.train.checkpoint_every = c.train.sample_every = table.gem_steps
    c.gem.warmup_steps = table.gem_warmup_steps
    c.gem.warmup_learning_rate = table.learning_rate
    if "warmup" not in guided_stages(c):
      c.gem.warmup_beta = None     # the warm-up is the β-VAE run itself (model.beta)
    c.gem.accept_weak_alignment = True  # measured and tabled (truth Spearman), never refused
  else:
    c.train.num_steps = c.train.sample_every = table.num_steps
    c.train.learning_rate = table.learning_rate
    c.train.checkpoint_every = table.gem_warmup_steps
  return c


def run_dir(root: Path, method: str, seed: int) -> Path:
  return Path(root) / method / f"seed{seed}"


def model_dir(root: Path, method: str, seed: int) -> Path:
  """Where the method's final checkpoints are (GEM: the pipeline's gem/ stage)."""
  d = run_dir(root, method, seed)
  return d / "gem" if method in GEM_METHODS else d


def _seed_warmup_from_beta_vae(table, root: Path, seed: int, gem_root: Path) -> None:
  """Copies the β-VAE run's checkpoint at gem_warmup_steps into GEM's warmup/ folder."""
  step = table.gem_warmup_steps
  target = gem_root / "warmup" / "checkpoints" / str(step)
  if target.exists():
    return
  source = run_dir(root, "beta_vae", seed) / "checkpoints" / str(step)
  if not source.is_dir():
    raise FileNotFoundError(f"GEM's warm-up is the β-VAE run's step-{step} checkpoint, but "
                            f"{source} does not exist; train method 'beta_vae' first")
  target.parent.mkdir(parents=True, exist_ok=True)
  shutil.copytree(source, target.with_name(f".{step}.tmp"), dirs_exist_ok=True)
  target.with_name(f".{step}.tmp").rename(target)


def train_method(table, root: Path, method: str, seed: int) -> Path:
  """Trains one (method, seed) unless finished; returns its final checkpoint folder."""
  config = method_config(table, method, seed)
  out = model_dir(root, method, seed)
  if checkpoints.reached(out, config.train.num_steps):
    logging.info("%s seed %d: trained (%s)", method, seed, out)
    return out
  logging.info("%s seed %d: training into %s", method, seed, out)
  if method in GEM_METHODS:
    if "warmup" not in guided_stages(config):  # a guided warm-up is GEM's own
      _seed_warmup_from_beta_vae(table, root, seed, run_dir(root, method, seed))
    run_gem(config, run_dir(root, method, seed))
  else:
    train_and_evaluate(config, out, resume=True)
  return out


def _train_from_json(table_json: str, root: str, method: str, seed: int) -> str:
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
  logging.getLogger("absl").setLevel(logging.WARNING)
  return str(train_method(ml_collections.ConfigDict(json.loads(table_json)), Path(root),
                          method, seed))


def train_isolated(table, root: Path, method: str, seed: int) -> Path:
  """`train_method` in a fresh (spawned) process, so that whatever one run holds (its
  tf.data pipeline caches the training split) is returned before the next run starts."""
  with concurrent.futures.ProcessPoolExecutor(
      max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
    return Path(pool.submit(_train_from_json, table.to_json(), str(root), method, seed)
                .result())


def ordered_methods(table) -> list[str]:
  """The table's methods, with β-VAE trained before the GEM rows that start from it."""
  methods = parse_list(table.methods)
  if any(m in GEM_METHODS for m in methods) and "beta_vae" not in methods:
    methods.insert(0, "beta_vae")
  return sorted(methods, key=lambda m: m in GEM_METHODS)


def evaluate_method(table, root: Path, method: str, seed: int, extractor) -> dict:
  """Evaluation of one trained run, cached in <run>/eval.json for the same settings."""
  path = run_dir(root, method, seed) / "eval.json"
  settings = {**table.eval.to_dict(), "extractor": extractor.name}
  if path.exists():
    saved = json.loads(path.read_text())
    if saved.get("settings") == settings:
      return saved
  model = load(str(model_dir(root, method, seed)))
  metrics = evaluate_model(model, model.config, table.eval, extractor, seed=seed)
  if method in GEM_METHODS:
    metrics.update(gem_scorer_accuracy(model.config, run_dir(root, method, seed)))
  result = {"method": method, "seed": seed, "settings": settings, "metrics": metrics}
  tmp = path.with_suffix(".json.tmp")
  tmp.write_text(json.dumps(result, indent=2))
  tmp.replace(path)
  return result


def gem_scorer_accuracy(config, run: Path) -> dict:
  """The GEM run's attribute scores (scores/scores.npy) against the data set's labels."""
  scores = np.load(run / "scores" / "scores.npy")
  examples = load_examples(config.data, config.data.split, len(scores))
  labels, label_names = get_dataset(config.data).oracle_labels(examples)
  if labels is None:
    return {}
  names = attribute_names(config)
  labels = labels[:, [label_names.index(n) for n in names]]
  acc = scorer_accuracy(scores, labels, names)
  return {"scorer_accuracy": acc["mean_exact"], "scorer_within_1": acc["mean_within_1"]}


def benchmark_method(table, root: Path, method: str) -> dict:
  """Table 2 columns of one method from `experiments.benchmark` in a fresh process (so its
  peak memory is the method's own); cached in <root>/benchmark/<method>.json."""
  path = Path(root) / "benchmark" / f"{method}.json"
  if path.exists():
    return json.loads(path.read_text())
  config = method_config(table, method, 0)
  cmd = [sys.executable, "-m", "experiments.benchmark", "--model", method,
         "--batch_size", str(config.train.batch_size), "--steps", str(table.benchmark_steps),
         "--latent_dim", str(table.latent_dim), "--run_tokens", table.run_tokens]
  logging.info("benchmark: %s", " ".join(cmd))
  out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
  result = json.loads(out.strip().splitlines()[-1])
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps(result, indent=2))
  return result


# (column, metric key, digits, scale) of the Markdown table; the CSV keeps every metric.
TABLE1_COLUMNS = (
    ("FD recon", "fd_recon", 2, 1.0),
    ("FD sample", "fd_sample", 2, 1.0),
    ("KD sample ×1e3", "kd_sample", 2, 1e3),
    ("MSE ×1e3", "mse_per_pixel", 2, 1e3),
    ("DCI-D", "dci_disentanglement", 3, 1.0),
    ("DCI-C", "dci_completeness", 3, 1.0),
    ("DCI-I", "dci_informativeness", 3, 1.0),
    ("MIG", "mig", 3, 1.0),
    ("SAP", "sap", 3, 1.0),
    ("FactorVAE", "factor_vae_score", 3, 1.0),
    ("truth Spearman, min", "alignment_truth_spearman_min", 2, 1.0),
    ("traversal own, min", "traversal_effect_own_min", 2, 1.0),
    ("sign acc.", "relation_sign_accuracy", 2, 1.0),
    ("AUROC |A|", "relation_auroc", 2, 1.0),
    ("Spearman", "relation_spearman", 2, 1.0),
    ("AUROC |A_0|", "relation_a0_auroc", 2, 1.0),
    ("scorer acc.", "scorer_accuracy", 3, 1.0),
)
TABLE2_COLUMNS = (
    ("params (M)", "param_count_total", 3, 1e-6),
    ("GFLOPs / step", "gflops_per_step", 2, 1.0),
    ("peak RSS (MiB)", "peak_rss_mib", 0, 1.0),
    ("images/s", "images_per_s", 0, 1.0),
    ("s / epoch", "seconds_per_epoch", 0, 1.0),
)


def mean_std(values: list) -> tuple[float, float, int] | None:
  """(mean, sample std (ddof 1; 0 for one value), count) of the non-None values."""
  v = np.asarray([x for x in values if x is not None], np.float64)
  if v.size == 0:
    return None
  return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0, int(v.size)


def cell(stats, digits: int, scale: float) -> str:
  """'mean ± std' of (mean, std, n) stats (just the mean for n = 1; '—' for None)."""
  if stats is None:
    return "—"
  mean, std, n = stats
  if n == 1:
    return f"{mean * scale:.{digits}f}"
  return f"{mean * scale:.{digits}f} ± {std * scale:.{digits}f}"


def summarise(results: dict[str, list[dict]], benchmarks: dict[str, dict]) -> dict:
  """{method: {metric: (mean, std, n)}} over seeds, Table 2 figures added per method."""
  out = {}
  for method, runs in results.items():
    keys = sorted({k for r in runs for k, v in r["metrics"].items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)})
    out[method] = {k: mean_std([r["metrics"].get(k) for r in runs]) for k in keys}
    for key, value in benchmarks.get(method, {}).items():
      if isinstance(value, (int, float)) and not isinstance(value, bool):
        out[method][key] = (float(value), 0.0, 1)
  return out


def markdown_table(summary: dict, columns) -> str:
  head = "| method | " + " | ".join(c[0] for c in columns) + " |"
  rule = "|---|" + "---:|" * len(columns)
  rows = [f"| {m} | " + " | ".join(cell(s.get(key), digits, scale)
                                    for _, key, digits, scale in columns) + " |"
          for m, s in summary.items()]
  return "\n".join([head, rule] + rows)


def write_tables(root: Path, results: dict[str, list[dict]], benchmarks: dict[str, dict],
                 header: str) -> str:
  """Writes table1.md (both tables), table1.csv (mean, std, n of every metric) and runs.csv
  (one row per run); returns the Markdown."""
  root = Path(root)
  summary = summarise(results, benchmarks)
  text = "\n\n".join([header, markdown_table(summary, TABLE1_COLUMNS),
                      markdown_table(summary, TABLE2_COLUMNS)]) + "\n"
  (root / "table1.md").write_text(text)
  with open(root / "table1.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["method", "metric", "mean", "std", "n"])
    for method, stats in summary.items():
      for key, s in stats.items():
        if s is not None:
          w.writerow([method, key, *s])
  with open(root / "runs.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["method", "seed", "metric", "value"])
    for method, runs in results.items():
      for r in runs:
        for key, value in r["metrics"].items():
          if not isinstance(value, (list, dict)):
            w.writerow([method, r["seed"], key, value])
  return text


def table_header(table, extractor_name: str) -> str:
  methods, seeds = parse_list(table.methods), parse_list(table.seeds)
  return (f"synthetic data set `{table.dataset}/{table.data_config}`, preset `{table.preset}`: "
          f"{len(methods)} methods x seeds {', '.join(seeds)} (mean ± std over seeds), "
          f"d = {table.latent_dim}, baselines {table.num_steps} steps of 64 images, GEM "
          f"{table.gem_warmup_steps} warm-up + {table.gem_steps} GEM steps of 32; evaluated "
          f"on {table.eval.num_images} `{table.eval.split}` images. FD/KD use the feature "
          f"extractor `{extractor_name}` ({extractor_note(extractor_name)}).")


def extractor_note(extractor_name: str) -> str:
  """What the FD/KD columns of a table are on this extractor's features (its
  `features.metric_label`): 'FID / KID, ...' only for the standard FID network."""
  fd, kd = metric_label(extractor_name, "fd"), metric_label(extractor_name, "kd")
  if fd == "FID":
    return f"{fd} / {kd}: pytorch-fid's FID Inception network"
  if extractor_name.startswith("local_cnn"):
    return f"{fd} / {kd}: a CNN trained by this project on this data set, NOT Inception FID"
  return f"{fd} / {kd}: NOT the standard FID network, so NOT FID"


def run_table(table, workdir: str, benchmark: bool = True, isolate: bool = True) -> str:
  """Trains, evaluates and benchmarks every (method, seed); writes and returns the tables.

  isolate: train each unfinished run in its own process (see `train_isolated`)."""
  root = Path(workdir)
  with run_lock(root):
    return _run_table(table, root, benchmark, isolate)


def _run_table(table, root: Path, benchmark: bool, isolate: bool) -> str:
  (root / "table_config.json").write_text(table.to_json(indent=2))
  seeds = [int(s) for s in parse_list(table.seeds)]
  train = train_isolated if isolate else train_method
  for method in ordered_methods(table):
    for seed in seeds:
      if not checkpoints.reached(model_dir(root, method, seed), method_config(table, method, seed)
                       .train.num_steps):
        train(table, root, method, seed)
  data_config = method_config(table, "beta_vae", 0).data
  extractor = make_extractor(data_config, table.eval, str(root / "feature_extractor"))
  results = {m: [evaluate_method(table, root, m, s, extractor) for s in seeds]
             for m in parse_list(table.methods)}
  benchmarks = {}
  if benchmark:
    benchmarks = {m: benchmark_method(table, root, m) for m in parse_list(table.methods)}
  return write_tables(root, results, benchmarks, table_header(table, extractor.name))
