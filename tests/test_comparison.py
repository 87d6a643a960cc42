"""The Table 1 machinery: aggregation and formatting exactly, and the tiny preset end to end."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from experiments import comparison
from experiments.configs import synthetic_gem
from experiments.configs.table1 import get_config
from gem_jax.gem_pipeline import warmup_config
from gem_jax.train import train_and_evaluate


def test_mean_std_uses_sample_std_and_skips_missing():
  mean, std, n = comparison.mean_std([1.0, None, 2.0, 3.0])
  assert (mean, n) == (2.0, 3)
  assert std == pytest.approx(1.0)  # ddof = 1
  assert comparison.mean_std([None, None]) is None
  assert comparison.mean_std([0.5]) == (0.5, 0.0, 1)


def test_markdown_table_cells():
  results = {"beta_vae": [{"seed": 0, "metrics": {"mig": 0.1, "mse_per_pixel": 0.002}},
                          {"seed": 1, "metrics": {"mig": 0.3, "mse_per_pixel": 0.004}}],
             "gem": [{"seed": 0, "metrics": {"mig": 0.25, "relation_auroc": None}}]}
  summary = comparison.summarise(results, {"gem": {"param_count_total": 2_000_000}})
  cols = (("MIG", "mig", 3, 1.0), ("MSE ×1e3", "mse_per_pixel", 2, 1e3),
          ("AUROC", "relation_auroc", 2, 1.0), ("params (M)", "param_count_total", 3, 1e-6))
  lines = comparison.markdown_table(summary, cols).splitlines()
  assert lines[0] == "| method | MIG | MSE ×1e3 | AUROC | params (M) |"
  assert lines[2] == "| beta_vae | 0.200 ± 0.141 | 3.00 ± 1.41 | — | — |"
  assert lines[3] == "| gem | 0.250 | — | — | 2.000 |"


def test_unknown_method_is_a_clear_error():
  with pytest.raises(ValueError, match="unknown method 'resnet'"):
    comparison.method_config(get_config("tiny"), "resnet", 0)
  with pytest.raises(ValueError, match="unknown table1 preset"):
    get_config("huge")


def test_gem_sees_as_many_images_as_a_baseline():
  table = get_config("small")
  base = comparison.method_config(table, "beta_vae", 1)
  gem = comparison.method_config(table, "gem", 1)
  assert base.seed == gem.seed == 1
  baseline_images = base.train.num_steps * base.train.batch_size
  gem_images = (gem.gem.warmup_steps * gem.gem.warmup_batch_size
                + gem.train.num_steps * gem.train.batch_size)
  assert baseline_images == gem_images
  # Guided (the default), GEM warms up itself, at the run settings' warm-up beta; the same
  # learning rate and batch as the baseline.
  assert base.train.learning_rate == gem.gem.warmup_learning_rate
  assert base.train.batch_size == gem.gem.warmup_batch_size
  assert gem.gem.guidance.weight > 0 and warmup_config(gem).model.beta == 0.5
  # Unguided, the β-VAE run is GEM's warm-up: its beta and a checkpoint at its end.
  table.run_tokens = "cpu30,unsupervised"
  unguided = comparison.method_config(table, "gem", 1)
  assert unguided.gem.guidance.weight == 0
  assert warmup_config(unguided).model.beta == base.model.beta
  assert table.gem_warmup_steps % base.train.checkpoint_every == 0
  assert comparison.ordered_methods(get_config("tiny")) == ["beta_vae", "gem"]


@pytest.mark.slow  # trains and evaluates a tiny Table 1
def test_tiny_table_end_to_end(tfds_dir, tmp_path):
  table = get_config("tiny")
  table.data_dir = tfds_dir
  text = comparison.run_table(table, str(tmp_path), benchmark=False)
  assert "NOT Inception FID" in text
  assert "| beta_vae |" in text and "| gem |" in text
  gem_eval = json.loads((tmp_path / "gem" / "seed0" / "eval.json").read_text())["metrics"]
  for key in ("fd_recon", "fd_sample", "kd_sample", "mse_per_pixel", "mig", "sap",
              "dci_disentanglement", "factor_vae_score", "relation_sign_accuracy",
              "relation_auroc", "scorer_accuracy"):
    assert key in gem_eval, key
  assert np.isfinite(gem_eval["fd_recon"])
  base_eval = json.loads((tmp_path / "beta_vae" / "seed0" / "eval.json").read_text())
  assert "relation_auroc" not in base_eval["metrics"]  # no graph, no relation recovery
  # Guided (the default): GEM trains its own warm-up (the unguided copy: the test below).
  assert (tmp_path / "gem" / "seed0" / "warmup" / "checkpoints" / "2").is_dir()
  assert (tmp_path / "gem" / "seed0" / "warmup" / "metrics.jsonl").exists()
  csv_text = (tmp_path / "table1.csv").read_text()
  assert csv_text.startswith("method,metric,mean,std,n")
  # A rerun reads every evaluation back instead of recomputing it.
  mtime = (tmp_path / "gem" / "seed0" / "eval.json").stat().st_mtime_ns
  comparison.run_table(table, str(tmp_path), benchmark=False)
  assert (tmp_path / "gem" / "seed0" / "eval.json").stat().st_mtime_ns == mtime


def test_unguided_warmup_is_the_beta_vae_checkpoint_copied(tmp_path):
  """Unguided, GEM's warm-up is the β-VAE run's checkpoint at gem_warmup_steps, copied whole
  (never retrained, never overwritten); without it, an error that says which method to train."""
  table = get_config("tiny")
  gem_root = comparison.run_dir(tmp_path, "gem", 0)
  with pytest.raises(FileNotFoundError, match="train method 'beta_vae' first"):
    comparison._seed_warmup_from_beta_vae(table, tmp_path, 0, gem_root)
  source = comparison.run_dir(tmp_path, "beta_vae", 0) / "checkpoints" / "2"
  (source / "state").mkdir(parents=True)
  (source / "state" / "leaf").write_bytes(b"weights")
  comparison._seed_warmup_from_beta_vae(table, tmp_path, 0, gem_root)
  target = gem_root / "warmup" / "checkpoints" / "2"
  assert (target / "state" / "leaf").read_bytes() == b"weights"
  assert sorted(p.name for p in target.parent.iterdir()) == ["2"]  # no temporary left
  (source / "state" / "leaf").write_bytes(b"changed")
  comparison._seed_warmup_from_beta_vae(table, tmp_path, 0, gem_root)  # already there: kept
  assert (target / "state" / "leaf").read_bytes() == b"weights"


@pytest.mark.slow  # trains a tiny β-VAE and evaluates it in a subprocess
def test_evaluate_entry_point(tfds_dir, tmp_path):
  """`python -m experiments.evaluate` on a tiny β-VAE checkpoint writes every metric."""
  config = synthetic_gem.get_config("tiny,beta_vae")
  config.data.data_dir = tfds_dir
  config.train.num_steps = 2
  train_and_evaluate(config, tmp_path / "run")
  env = dict(os.environ, TFDS_DATA_DIR=tfds_dir)
  cmd = [sys.executable, "-m", "experiments.evaluate", "--checkpoint", str(tmp_path / "run"),
         "--num_images", "64", "--extractor_steps", "3",
         "--extractor_dir", str(tmp_path / "extractors")]
  subprocess.run(cmd, check=True, env=env, capture_output=True, text=True, timeout=600)
  result = json.loads((tmp_path / "run" / "eval.json").read_text())
  assert result["step"] == 2
  assert result["metrics"]["feature_extractor"].startswith("local_cnn[synthetic_faces/tiny")
  for key in ("fd_recon", "kd_sample", "mse_per_pixel", "dci_disentanglement", "mig", "sap",
              "factor_vae_score"):
    assert np.isfinite(result["metrics"][key]), key
  missing = subprocess.run(cmd[:3] + ["--checkpoint", str(tmp_path / "nowhere")], env=env,
                           capture_output=True, text=True, timeout=600)
  assert missing.returncode != 0
  assert "does not exist" in missing.stderr
