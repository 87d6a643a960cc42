"""Orbax checkpoints: the train state plus a JSON record (config, model kind, extras).

Layout: <workdir>/checkpoints/<step>/{state, meta}. `meta` carries the whole config so a
checkpoint restores for sampling alone, without the training data or the config file.

Only finite states are saved (`save` refuses NaN/inf) and restored (`restore_raw`,
`restore_state` refuse them). A step folder that does not read (a truncated data file, a
deleted metadata file) is damaged: restoring the newest step skips it with a warning naming it
and restores the newest step that reads; a resumed run moves the skipped folders to
<workdir>/damaged_checkpoints/ (`set_aside_newer`). A checkpoint that reads but does not fit
the model is a mismatch, always an error.
"""
from __future__ import annotations

import copy
import json
import logging
import shutil
import sys
from pathlib import Path
from typing import Any, Callable

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

MODEL_KIND = "gem_jax/vae"

# Config keys added after runs were saved, with the value that reproduces the old behaviour.
ADDED_KEYS = {
    "model": {"objective": "beta_vae", "disc_r1_gamma": 0.0, "disc_r1_stride": 1,
              "adv_scale": "batch", "lambda_rel": 100.0, "relcon_temperature": 0.5,
              "arch": "burgess", "capacity_max": 0.0, "capacity_steps": 1,
              "disc_r1_interval": 1, "graph_learner_kind": "gcn", "graph_fit_weight": 1.0,
              "graph_l1": 0.2, "graph_quadratic": True, "graph_acyclic": 0.0,
              "disc_input_pool": 1},
    "train": {"disc_adam_b1": None, "disc_adam_b2": None, "graph_learning_rate": None},
    "data": {"label_key": None, "label_max": 5},
    "gem": {"compensate_a0": False, "min_valid_fraction": 0.9, "prior": "somers_d"},
}


# What orbax and tensorstore raise for a step folder they cannot read: a missing file
# (FileNotFoundError), a truncated one (ValueError: OUT_OF_RANGE), garbled JSON (ValueError).
READ_ERRORS = (OSError, ValueError, KeyError, TypeError, RuntimeError)

LOOKED_FOR = ("a run folder (checkpoints/<step>/ inside), a checkpoints/ folder (<step>/ "
              "folders inside) or a step folder (<step>/ holding state/ and meta/)")


class CheckpointError(RuntimeError):
  """A checkpoint directory is empty, damaged, non-finite, or holds another model."""


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
  """An orbax manager of `directory` (created if missing). Close it when done (`with
  make_manager(...) as manager:` or `manager.close()`): an open one keeps a thread running
  (orbax's metadata store) and its saves may still be in flight when the interpreter exits."""
  options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep,
                                         save_interval_steps=save_interval_steps,
                                         create=True)
  return ocp.CheckpointManager(Path(directory).absolute(), options=options)


def nonfinite_leaves(tree) -> list[str]:
  """Paths ('params/vae/...') of the floating-point leaves of `tree` holding NaN or inf."""
  bad = []
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    x = np.asarray(leaf)
    if np.issubdtype(x.dtype, np.inexact) and not np.isfinite(x).all():
      bad.append(jax.tree_util.keystr(path, simple=True, separator="/"))
  return bad


def _describe(paths: list[str], most: int = 4) -> str:
  more = f" and {len(paths) - most} more" if len(paths) > most else ""
  return ", ".join(paths[:most]) + more


def save(manager: ocp.CheckpointManager, step: int, state: Any, meta: dict,
         force: bool = False) -> bool:
  """Saves an unreplicated state and its JSON meta; returns whether a save happened.

  Raises CheckpointError, writing nothing, when the state holds NaN or inf.
  """
  host_state = jax.device_get(state)
  bad = nonfinite_leaves(host_state)
  if bad:
    raise CheckpointError(
        f"refusing to save step {step} to {manager.directory}: non-finite values in "
        f"{_describe(bad)}. Only finite states are saved, so the newest checkpoint there is "
        "still the last good one.")
  return manager.save(step, force=force, args=ocp.args.Composite(
      state=ocp.args.StandardSave(host_state), meta=ocp.args.JsonSave(meta)))


def is_step_folder(path: Path) -> bool:
  """Whether `path` is one orbax step folder <checkpoints>/<step> of this layout."""
  return path.name.isdigit() and ((path / "state").is_dir() or (path / "meta").is_dir())


def saved_steps(root: str | Path) -> list[int]:
  """The steps of the step folders in a checkpoints/ folder, ascending (no reading)."""
  root = Path(root)
  if not root.is_dir():
    return []
  return sorted(int(p.name) for p in root.iterdir() if p.is_dir() and p.name.isdigit())


def locate(directory: str | Path) -> tuple[Path, int | None]:
  """(checkpoints/ folder, step) that `directory` names: a run folder (its checkpoints/), a
  checkpoints/ folder (step None: the newest), or one step folder (that step)."""
  directory = Path(directory).expanduser().absolute()
  if not directory.exists():
    raise CheckpointError(f"checkpoint directory {directory} does not exist")
  if (directory / "checkpoints").is_dir():
    return directory / "checkpoints", None
  if is_step_folder(directory):
    return directory.parent, int(directory.name)
  return directory, None


def _resolve(directory: str | Path, step: int | None) -> tuple[Path, int | None]:
  root, folder_step = locate(directory)
  if folder_step is not None and step not in (None, folder_step):
    raise CheckpointError(f"{directory} is the folder of step {folder_step}, but step={step} "
                          "was asked for; pass its checkpoints/ folder instead")
  return root, folder_step if step is None else step


def _error_line(e: Exception) -> str:
  """The first line of an orbax/tensorstore error (their tracebacks run to 100 lines)."""
  lines = str(e).strip().splitlines() or [""]
  return f"{type(e).__name__}: {lines[0][:300]}"


def _read_raw(manager: ocp.CheckpointManager, step: int) -> tuple[dict, dict]:
  """(state as numpy arrays, upgraded meta) of one step; raises READ_ERRORS when damaged."""
  restored = manager.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(), meta=ocp.args.JsonRestore()))
  state = jax.tree.map(np.asarray, restored["state"])
  return state, upgrade_meta(dict(restored["meta"]))


def _read_meta(manager: ocp.CheckpointManager, step: int) -> dict:
  restored = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
  return upgrade_meta(dict(restored["meta"]))


class _DamagedReadFilter(logging.Filter):
  """Drops asyncio's 'Task exception was never retrieved' records of failed reads inside the
  checkpoints/ folders `_read` reads: orbax reads a step's arrays concurrently and raises the
  first failure (which `_read` reports, naming the damaged step); the other failed reads'
  exceptions were logged with a traceback each when their tasks were collected."""

  def __init__(self):
    super().__init__()
    self.roots: set[str] = set()

  def filter(self, record: logging.LogRecord) -> bool:
    exc = record.exc_info[1] if record.exc_info else None
    return not (str(record.msg).startswith("Task exception was never retrieved")
                and isinstance(exc, READ_ERRORS)
                and any(f"{root}/" in str(exc) for root in self.roots))


def _quiet_unretrieved_reads(root: Path) -> None:
  """Adds `root` (a checkpoints/ folder about to be read) to the asyncio logger's filter."""
  logger = logging.getLogger("asyncio")
  quiet = next((f for f in logger.filters if isinstance(f, _DamagedReadFilter)), None)
  if quiet is None:
    quiet = _DamagedReadFilter()
    logger.addFilter(quiet)
  quiet.roots.add(str(Path(root).absolute()))


def _read_step(manager, step: int, read: Callable) -> Any:
  """read(manager, step) of a step asked for by number: a damaged one is an error."""
  root = Path(manager.directory)
  if step not in manager.all_steps():
    raise CheckpointError(f"no checkpoint of step {step} in {root}; its steps: "
                          f"{list(manager.all_steps()) or 'none'}")
  try:
    return read(manager, step)
  except READ_ERRORS as e:
    raise CheckpointError(f"checkpoint {root / str(step)} is damaged and cannot be read "
                          f"({_error_line(e)}); choose another of its steps "
                          f"{list(manager.all_steps())} or delete the folder with: "
                          f"rm -r '{root / str(step)}'") from e


def _read_newest(manager, read: Callable) -> tuple[int, Any]:
  """(step, read(manager, step)) of the newest step that reads; the damaged newer ones are
  skipped, each with a warning naming its folder."""
  root = Path(manager.directory)
  steps = sorted(manager.all_steps(), reverse=True)
  if not steps:
    raise CheckpointError(f"no checkpoint found in {root}: looked for {LOOKED_FOR}")
  damaged = []
  for step in steps:
    try:
      result = read(manager, step)
    except READ_ERRORS as e:
      damaged.append((root / str(step), _error_line(e)))
      continue
    for folder, why in damaged:
      logging.warning("checkpoint %s is damaged (%s); using step %d (%s) instead. Delete the "
                      "damaged folder with: rm -r '%s'", folder, why, step,
                      root / str(step), folder)
    return step, result
  raise CheckpointError(
      f"every checkpoint in {root} is damaged: "
      + "; ".join(f"{folder.name}: {why}" for folder, why in damaged)
      + f". Delete them (rm -r '{root}') to start afresh.")


def _is_closed_loop_error(unraisable) -> bool:
  return (isinstance(unraisable.exc_value, RuntimeError)
          and str(unraisable.exc_value) == "Event loop is closed")


def _quiet_closed_loop_callbacks() -> None:
  """Drops the 'Event loop is closed' errors that orbax's reads still in flight raise, one
  traceback each through sys.unraisablehook, after one read of a damaged step failed and
  orbax closed its event loop; every other unraisable error still reaches the previous hook."""
  previous = sys.unraisablehook
  if getattr(previous, "quiets_closed_loop", False):
    return

  def hook(unraisable):
    if not _is_closed_loop_error(unraisable):
      previous(unraisable)

  hook.quiets_closed_loop = True
  sys.unraisablehook = hook


def _read(directory: str | Path, step: int | None, read: Callable) -> tuple[Path, int, Any]:
  """(checkpoints/ folder, step, read(manager, step)): the step asked for (or named by a step
  folder), else the newest step that reads."""
  root, step = _resolve(directory, step)
  _quiet_closed_loop_callbacks()
  _quiet_unretrieved_reads(root)
  with make_manager(root) as manager:  # closed: none of its threads outlives the read
    if step is not None:
      return root, step, _read_step(manager, step, read)
    return (root, *_read_newest(manager, read))


def _refuse_nonfinite(state, folder: Path, step: int) -> None:
  bad = nonfinite_leaves(state)
  if bad:
    raise CheckpointError(
        f"checkpoint {folder} (step {step}) holds non-finite weights ({_describe(bad)}); "
        "it cannot be used. Choose an earlier step (gem_jax.load(dir, step=...)) or delete "
        f"the folder with: rm -r '{folder}'")


def read_meta(directory: str | Path, step: int | None = None) -> tuple[int, dict]:
  """(step, meta) of the given (or newest readable) checkpoint in `directory` (see `locate`);
  meta's config is upgraded (`upgrade_meta`)."""
  _, step, meta = _read(directory, step, _read_meta)
  return step, meta


def reached(directory: str | Path, num_steps: int) -> bool:
  """Whether `directory` holds a readable, finite checkpoint at step >= num_steps (a finished
  run); its newest one is read in full."""
  try:
    state, _ = restore_raw(directory)
  except CheckpointError:
    return False
  return int(state["step"]) >= num_steps


def restore_raw(directory: str | Path, step: int | None = None) -> tuple[dict, dict]:
  """(state as a tree of numpy arrays, meta) without a target (for sampling): the given step,
  the step folder `directory` names, or the newest step that reads (see `locate`).

  Raises CheckpointError when there is none, the step asked for is damaged, or the state is
  not finite.
  """
  root, step, (state, meta) = _read(directory, step, _read_raw)
  _refuse_nonfinite(state, root / str(step), step)
  return state, meta


def restore_state(directory: str | Path, target: Any, step: int | None = None,
                  expected_meta: dict | None = None) -> tuple[Any, dict]:
  """Restores a state shaped like `target` (an unreplicated TrainState): the given step, or the
  newest one that reads (a damaged newer one is skipped with a warning).

  `expected_meta`: keys whose values must match the saved meta (e.g. the model config);
  a mismatch is a CheckpointError that shows both, never a silent partial restore. A step that
  reads but does not fit `target` is a CheckpointError too ("does not match").
  """
  root, step, (raw, meta) = _read(directory, step, _read_raw)
  folder = root / str(step)
  for key, want in (expected_meta or {}).items():
    if meta.get(key) != want:
      raise CheckpointError(
          f"checkpoint {folder} holds another model: its {key} is "
          f"{json.dumps(meta.get(key), sort_keys=True)} but this run has "
          f"{json.dumps(want, sort_keys=True)}")
  _refuse_nonfinite(raw, folder, step)
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, jax.device_get(target))
  try:  # the step reads (above), so a failure here is the model's, not the files'
    with make_manager(root) as manager:
      restored = manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract)))
  except READ_ERRORS as e:
    raise CheckpointError(f"checkpoint {folder} reads but does not match this model's "
                          f"parameters ({_error_line(e)}): it was saved by another model or "
                          "code version") from e
  return restored["state"], meta


def set_aside_newer(manager: ocp.CheckpointManager, step: int) -> list[Path]:
  """Moves the step folders newer than `step` (the damaged ones a resume skipped) to
  <run>/damaged_checkpoints/, so that the resumed run saves those steps afresh; returns
  their new places."""
  root = Path(manager.directory)
  moved = []
  for newer in [s for s in saved_steps(root) if s > step]:
    target = root.parent / "damaged_checkpoints" / str(newer)
    suffix = 1
    while target.exists():
      suffix += 1
      target = target.with_name(f"{newer}_{suffix}")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(root / str(newer)), str(target))
    logging.warning("resuming at step %d: moved the damaged %s to %s; delete it with: "
                    "rm -r '%s'", step, root / str(newer), target, target)
    moved.append(target)
  manager.reload()
  return moved
