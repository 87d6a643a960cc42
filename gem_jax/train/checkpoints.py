"""Orbax checkpoints: the train state plus a JSON record (config, model kind, extras).

Layout: <workdir>/checkpoints/<step>/{state, meta}. `meta` carries the whole config so a
checkpoint restores for sampling alone, without the training data or the config file.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

MODEL_KIND = "gem_jax/vae"

# Config keys added after runs were saved, with the value that reproduces the old behaviour.
ADDED_KEYS = {
    "model": {"objective": "beta_vae", "disc_r1_gamma": 0.0, "disc_r1_stride": 1,
              "adv_scale": "batch", "lambda_rel": 100.0, "relcon_temperature": 0.5},
    "train": {"disc_adam_b1": None, "disc_adam_b2": None},
    "data": {"label_key": None, "label_max": 5},
    "gem": {"compensate_a0": False, "min_valid_fraction": 0.9},
}


class CheckpointError(RuntimeError):
  """A checkpoint directory is empty, unreadable, or holds another model."""


def upgrade_config(config: dict) -> ml_collections.ConfigDict:
  """A config saved by any earlier version (a dict, e.g. checkpoint meta["config"]) with the
  keys added since filled in by `ADDED_KEYS`: the one place old saved configs are upgraded."""
  config = copy.deepcopy(dict(config))
  for section, added in ADDED_KEYS.items():
    if section in config:
      config[section] = {**added, **config[section]}
  return ml_collections.ConfigDict(config)


def upgrade_meta(meta: dict) -> dict:
  """Checkpoint meta with its 'config' upgraded and 'model' = the upgraded config.model."""
  meta = dict(meta)
  if "config" in meta:
    config = upgrade_config(meta["config"])
    meta["config"] = config.to_dict()
    meta["model"] = config.model.to_dict()
  return meta


def make_manager(directory: str | Path, *, max_to_keep: int = 3,
                 save_interval_steps: int = 1) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep,
                                         save_interval_steps=save_interval_steps,
                                         create=True)
  return ocp.CheckpointManager(Path(directory).absolute(), options=options)


def save(manager: ocp.CheckpointManager, step: int, state: Any, meta: dict,
         force: bool = False) -> bool:
  """Saves an unreplicated state and its JSON meta; returns whether a save happened."""
  host_state = jax.device_get(state)
  return manager.save(step, force=force, args=ocp.args.Composite(
      state=ocp.args.StandardSave(host_state), meta=ocp.args.JsonSave(meta)))


def read_meta(directory: str | Path, step: int | None = None) -> tuple[int, dict]:
  """(step, meta) of the latest (or given) checkpoint in `directory`; meta's config is
  upgraded (`upgrade_meta`)."""
  directory = _checkpoint_root(directory)
  manager = make_manager(directory)
  step = manager.latest_step() if step is None else step
  if step is None:
    raise CheckpointError(f"no checkpoint found in {directory}: the folder is empty or "
                          "holds no orbax step folders")
  restored = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
  return step, upgrade_meta(dict(restored["meta"]))


def reached(directory: str | Path, num_steps: int) -> bool:
  """Whether `directory` holds a checkpoint at step >= num_steps (a finished run)."""
  try:
    step, _ = read_meta(directory)
  except CheckpointError:
    return False
  return step >= num_steps


def restore_state(directory: str | Path, target: Any, step: int | None = None,
                  expected_meta: dict | None = None) -> tuple[Any, dict]:
  """Restores a state shaped like `target` (an unreplicated TrainState).

  `expected_meta`: keys whose values must match the saved meta (e.g. the model config);
  a mismatch is a CheckpointError that shows both, never a silent partial restore.
  """
  directory = _checkpoint_root(directory)
  step, meta = read_meta(directory, step)
  for key, want in (expected_meta or {}).items():
    if meta.get(key) != want:
      raise CheckpointError(
          f"checkpoint {directory}/{step} holds another model: its {key} is "
          f"{json.dumps(meta.get(key), sort_keys=True)} but this run has "
          f"{json.dumps(want, sort_keys=True)}")
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, jax.device_get(target))
  manager = make_manager(directory)
  try:
    restored = manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract)))
  except (ValueError, KeyError, TypeError) as e:
    raise CheckpointError(f"checkpoint {directory}/{step} does not match this model's "
                          f"parameters: {e}") from e
  return restored["state"], meta


def restore_raw(directory: str | Path, step: int | None = None) -> tuple[dict, dict]:
  """Restores the saved state as a tree of numpy arrays without a target (for sampling)."""
  directory = _checkpoint_root(directory)
  step, meta = read_meta(directory, step)
  restored = make_manager(directory).restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore()))
  return jax.tree.map(np.asarray, restored["state"]), meta


def _checkpoint_root(directory: str | Path) -> Path:
  """Accepts a run's workdir or its checkpoints/ folder."""
  directory = Path(directory).expanduser().absolute()
  if not directory.exists():
    raise CheckpointError(f"checkpoint directory {directory} does not exist")
  if (directory / "checkpoints").is_dir():
    return directory / "checkpoints"
  return directory
