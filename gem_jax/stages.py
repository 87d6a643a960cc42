"""Stage records: what produced a pipeline stage's outputs, so that a rerun never trusts a
folder made by other settings or left incomplete.

Each stage folder (warmup/, scores/, graph/, gem/) holds `stage.json`:

    {"stage": name, "config": {dotted key: value}, "inputs": {name: digest}, "complete": bool}

`check_stage` compares a saved record with the current run's: a changed config key or input is
an error naming each change (the stage is never silently reused or overwritten), an incomplete
stage is redone, a complete one is reused. Folders written before records existed have outputs
but no record: they are trusted once and recorded (a log line says so).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Sequence

from gem_jax.files import atomic_write_json

__all__ = ["RECORD", "StageMismatchError", "config_values", "check_stage",
           "write_stage", "read_stage"]

RECORD = "stage.json"


class StageMismatchError(ValueError):
  """A stage folder was made by other settings or inputs than the current run's."""


def config_values(config, keys: Sequence[str]) -> dict[str, Any]:
  """{dotted key: value} of `config` (a ConfigDict or dict); None for keys it lacks."""
  data = config.to_dict() if hasattr(config, "to_dict") else dict(config)
  out = {}
  for key in keys:
    node = data
    for part in key.split("."):
      node = node.get(part) if isinstance(node, dict) else None
    out[key] = node
  return out


def read_stage(stage_dir: str | Path) -> dict:
  """The stage record of stage_dir, {} when it has none."""
  path = Path(stage_dir) / RECORD
  return json.loads(path.read_text()) if path.exists() else {}


def _changes(saved: dict, now: dict, kind: str) -> list[str]:
  return [f"{kind} {k}: {json.dumps(saved.get(k))} -> {json.dumps(now.get(k))}"
          for k in sorted(set(saved) | set(now)) if saved.get(k) != now.get(k)]


def check_stage(stage_dir: str | Path, name: str, config: dict, inputs: dict,
                has_outputs: bool, redo_incomplete: bool = False,
                added: dict | None = None) -> bool:
  """True when `stage_dir` holds this stage, complete and made by `config` and `inputs`;
  False when it must be (re)done (nothing there yet, or incomplete).

  redo_incomplete: an incomplete stage made by other settings is redone from scratch instead
  of refused (for stages that recompute everything, e.g. scoring through its answer cache;
  never for training, which would resume the old settings' checkpoints).
  added: {key: value} of config keys added after records existed: a record without the key
  was made with that value.

  Raises:
    StageMismatchError: the saved record names other config values or inputs (each change
      is listed, with how to redo the stage).
  """
  path = Path(stage_dir) / RECORD
  if not path.exists():
    if has_outputs:
      logging.info("%s: outputs without a stage record (written by an earlier version); "
                   "recording the current settings", stage_dir)
      write_stage(stage_dir, name, config, inputs, complete=True)
    return has_outputs
  saved = read_stage(stage_dir)
  saved_config = {**{k: v for k, v in (added or {}).items() if k in config},
                  **saved.get("config", {})}
  changes = (_changes(saved_config, config, "config")
             + _changes(saved.get("inputs", {}), inputs, "input"))
  if changes and redo_incomplete and not saved.get("complete"):
    logging.info("%s: redoing the incomplete %s stage with new settings (%s)", stage_dir,
                 name, "; ".join(changes))
    return False
  if changes:
    raise StageMismatchError(
        f"the {name} stage in {stage_dir} was made by other settings than this run's:\n  "
        + "\n  ".join(changes)
        + f"\nUse another --workdir, restore those settings, or delete {stage_dir} (and the "
        "stages after it) to redo it.")
  return bool(saved.get("complete")) and has_outputs


def write_stage(stage_dir: str | Path, name: str, config: dict, inputs: dict,
                complete: bool, **extra) -> None:
  """Writes <stage_dir>/stage.json (atomically)."""
  atomic_write_json(Path(stage_dir) / RECORD, {"stage": name, "config": config,
                                               "inputs": inputs, "complete": bool(complete),
                                               **extra})
