"""Shared command-line plumbing for the experiment entry points (absl + ml_collections).

Every training entry point goes through `run_experiment`: the config is checked
(`gem_jax.config_checks.validate_config`: every value, all problems at once), then what the
run needs beyond it (`gem_jax.preflight`: the data set and its split sizes, GEM's scorer: key
and endpoint), and only then does it train. Errors a user can fix (DOMAIN_ERRORS) print one
line `error: ...` and exit 1; `--verbose` shows their traceback. `--dry_run` stops after the
checks, printing what they found and the scorer's estimated cost.
"""
from __future__ import annotations

import logging
import sys
import traceback
from pathlib import Path

from absl import flags
from ml_collections import config_flags

from gem_jax import objectives
from gem_jax.config_checks import ConfigError, is_two_stage, validate_config
from gem_jax.data import DataNotFoundError, LabelsError
from gem_jax.data.celeba import CelebaFormatError
from gem_jax.data.image_decode import UnreadableImageError
from gem_jax.gem_pipeline import (
  ScoringIncompleteError,
  StageMismatchError,
  WeakAlignmentError,
  run_gem,
)
from gem_jax.objectives.guidance import GuidanceDataError
from gem_jax.preflight import preflight
from gem_jax.scorers import ScorerError
from gem_jax.scoring import ScoringError
from gem_jax.train import (
  CheckpointError,
  DistributedError,
  NonFiniteLossError,
  RunExistsError,
  RunLockedError,
  distributed,
  train_and_evaluate,
)

CONFIG_DIR = Path(__file__).parent / "configs"
# What a user fixes (config, data, key, endpoint, workdir), reported in one line, not a trace.
DOMAIN_ERRORS = (ConfigError, DataNotFoundError, LabelsError, UnreadableImageError,
                 CelebaFormatError, ScorerError, ScoringError, CheckpointError, RunExistsError,
                 NonFiniteLossError, RunLockedError, StageMismatchError, ScoringIncompleteError,
                 DistributedError, WeakAlignmentError, GuidanceDataError)


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


def plan(config) -> str:
  """One line: what the run trains (steps, batches) and, for GEM, what it scores."""
  t = config.train
  if not is_two_stage(config):
    return f"run: {config.model.name}, {t.num_steps} steps at batch {t.batch_size}"
  g = config.gem
  return (f"run: GEM ({config.model.name}): warm-up {g.warmup_steps} steps at batch "
          f"{g.warmup_batch_size}, {g.num_scored_images} images scored by "
          f"{g.scorer.backend}, then {t.num_steps} steps at batch {t.batch_size}")


def checked_run(config, workdir: str, resume: bool, dry_run: bool = False) -> None:
  """Validates the config, runs the preflight, then trains (unless dry_run: then prints what
  the checks found and returns)."""
  validate_config(config)
  checks = lambda: preflight(config, workdir, dry_run=dry_run, scorer=distributed.is_main())
  lines = [plan(config), *distributed.main_first(checks, "the preflight checks")]
  if dry_run:
    print("\n".join(["dry run: the config is valid; nothing was trained, sent or written",
                     *lines]))
    return
  for line in lines:
    logging.info("preflight: %s", line)
  if trains_once(config):
    train_and_evaluate(config, workdir, resume=resume)
  else:
    run_gem(config, workdir)


def run_experiment(config, workdir: str, resume: bool, dry_run: bool = False,
                   verbose: bool = False, cluster: dict | None = None) -> None:
  """The β-VAE branch alone, a baseline, or GEM's whole pipeline, after the checks
  (`checked_run`). cluster: `start_processes`'s arguments (multi-process runs; None: one
  process). A DOMAIN_ERRORS error exits with one line `error: ...` (status 1), or is re-raised
  with its traceback when `verbose`. In a multi-process run, a failed collective (another
  process died) exits at once with one line too (`distributed.abandon`)."""
  try:
    if cluster:
      start_processes(config, workdir, resume, **cluster)
    checked_run(config, workdir, resume, dry_run)
  except DOMAIN_ERRORS as e:
    if verbose:
      raise
    sys.exit(f"error: {e}")
  except Exception as e:
    if not distributed.is_lost_peer(e):
      raise
    if verbose:
      traceback.print_exc()
    distributed.abandon(distributed.lost_peer_message(e))


def start_processes(config, workdir: str, resume: bool, **cluster) -> None:
  """Joins the multi-process run `cluster` describes (`distributed.start`'s arguments; before
  anything touches JAX's devices) and checks that every process got the same config, workdir
  and --resume; the processes but the first only log warnings."""
  if not distributed.start(**cluster):
    return
  run = {"config": config.to_dict(), "workdir": workdir, "resume": resume}
  distributed.agree("--config, --workdir and --resume (a digest)", distributed.digest(run))
  if not distributed.is_main():
    logging.getLogger().setLevel(logging.WARNING)


def define_cluster_flags():
  """--coordinator_address, --num_processes, --process_id, --distributed and
  --distributed_timeout; returns a function giving `distributed.start`'s arguments."""
  address = flags.DEFINE_string("coordinator_address", None,
                                "HOST:PORT of process 0's coordinator: a multi-process run "
                                "(with --num_processes and --process_id).")
  count = flags.DEFINE_integer("num_processes", None, "Processes of a multi-process run.")
  index = flags.DEFINE_integer("process_id", None, "This process's index, 0..num_processes-1.")
  mode = flags.DEFINE_enum("distributed", "off", ["off", "auto"],
                           "auto: jax.distributed.initialize() with no arguments (the cluster "
                           "auto-detected: SLURM, Open MPI, TPU pods, ...).")
  timeout = flags.DEFINE_integer("distributed_timeout", 300,
                                 "Seconds to wait for the coordinator and every process.")
  return lambda: {"coordinator_address": address.value, "num_processes": count.value,
                  "process_id": index.value, "auto": mode.value == "auto",
                  "timeout_s": timeout.value}


def define_run_flags():
  """--dry_run and --verbose, shared by the entry points that train; returns their holders."""
  dry_run = flags.DEFINE_bool("dry_run", False,
                              "Check the config, the data and GEM's scorer (no request: its "
                              "estimated cost), print what was found and stop; nothing is "
                              "trained, sent or written.")
  verbose = flags.DEFINE_bool("verbose", False,
                              "Show the full traceback of an error instead of one line.")
  return dry_run, verbose


def define_experiment(config_name: str, default_workdir: str):
  """Defines --config (with ':tokens'), --workdir, --resume, --dry_run, --verbose and the
  multi-process flags (`define_cluster_flags`); returns the absl main."""
  config = config_flags.DEFINE_config_file("config", config_path(config_name),
                                           "Config file, optionally with ':tokens'.")
  workdir = flags.DEFINE_string("workdir", default_workdir, "Run folder.")
  resume = flags.DEFINE_bool("resume", False,
                             "β-VAE and baselines: continue from the last checkpoint in "
                             "workdir (GEM runs always pick up where they stopped).")
  dry_run, verbose = define_run_flags()
  cluster = define_cluster_flags()

  def main(argv):
    del argv
    setup_logging()
    run_experiment(config.value, workdir.value, resume.value, dry_run.value, verbose.value,
                   cluster())

  return main
