"""Shared command-line plumbing for the experiment entry points (absl + ml_collections)."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

from absl import flags
from ml_collections import config_flags

from gem_jax import objectives
from gem_jax.data import DataNotFoundError
from gem_jax.gem_pipeline import run_gem
from gem_jax.train import CheckpointError, NonFiniteLossError, RunExistsError, train_and_evaluate

CONFIG_DIR = Path(__file__).parent / "configs"


def config_path(name: str) -> str:
  return str(CONFIG_DIR / f"{name}.py")


def setup_logging() -> None:
  """INFO for this project; tfds, orbax and TensorFlow (absl loggers) only warn."""
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
  logging.getLogger("absl").setLevel(logging.WARNING)


def trains_once(config) -> bool:
  """The β-VAE branch (with its ablations, e.g. 'beta_vae,vae') and the Table 1 baselines
  train once; GEM variants run the two-stage pipeline (the objective says which)."""
  return objectives.get(config.model.objective).trains_once(config)


def run_experiment(config, workdir: str, resume: bool) -> None:
  """The β-VAE branch alone, a baseline, or GEM's whole pipeline; data errors exit with one
  message."""
  try:
    if trains_once(config):
      train_and_evaluate(config, workdir, resume=resume)
    else:
      run_gem(config, workdir)
  except (DataNotFoundError, CheckpointError, RunExistsError, NonFiniteLossError) as e:
    sys.exit(f"error: {e}")


def define_experiment(config_name: str, default_workdir: str):
  """Defines --config (with ':tokens'), --workdir and --resume; returns the absl main."""
  config = config_flags.DEFINE_config_file("config", config_path(config_name),
                                           "Config file, optionally with ':tokens'.")
  workdir = flags.DEFINE_string("workdir", default_workdir, "Run folder.")
  resume = flags.DEFINE_bool("resume", False,
                             "β-VAE and baselines: continue from the last checkpoint in "
                             "workdir (GEM runs always pick up where they stopped).")

  def main(argv):
    del argv
    setup_logging()
    run_experiment(config.value, workdir.value, resume.value)

  return main
