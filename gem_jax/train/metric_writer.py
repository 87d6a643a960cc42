"""Metrics to a JSONL file (one object per logged step) and to TensorBoard event files."""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

from gem_jax.data.tf_cpu import tensorflow


def _line_step(line: str) -> int | None:
  """The 'step' of one metrics.jsonl line; None for a line cut short (a killed run)."""
  try:
    return int(json.loads(line)["step"])
  except (ValueError, KeyError, TypeError):
    return None


def truncate_metrics(path: Path, last_step: int) -> int:
  """Drops the lines of a metrics.jsonl after `last_step` (a resumed run writes those steps
  again) and the unreadable ones; returns how many were dropped."""
  if not path.exists():
    return 0
  lines = path.read_text().splitlines()
  kept = [line for line in lines if (s := _line_step(line)) is not None and s <= last_step]
  if len(kept) < len(lines):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in kept))
    os.replace(tmp, path)
  return len(lines) - len(kept)


class MetricWriter:
  """Appends {'step': s, name: value, ...} lines to <workdir>/metrics.jsonl and writes the
  same scalars as TensorBoard summaries under <workdir>/tensorboard.

  resume_step: the step the run starts from; lines of later steps (written before a crash or
  by an earlier fresh attempt) are dropped first, so that no step appears twice.
  """

  def __init__(self, workdir: str | Path, resume_step: int = 0):
    self._path = Path(workdir) / "metrics.jsonl"
    self._path.parent.mkdir(parents=True, exist_ok=True)
    dropped = truncate_metrics(self._path, resume_step)
    if dropped:
      logging.info("%s: dropped %d lines after step %d", self._path, dropped, resume_step)
    self._file = open(self._path, "a")
    self._tf = tensorflow()
    self._summary = self._tf.summary.create_file_writer(str(Path(workdir) / "tensorboard"))

  def write_scalars(self, step: int, scalars: dict) -> None:
    values = {k: float(np.asarray(v)) for k, v in scalars.items() if np.ndim(v) == 0}
    self._file.write(json.dumps({"step": int(step), **values}) + "\n")
    self._file.flush()
    with self._summary.as_default(step=int(step)):
      for name, value in values.items():
        self._tf.summary.scalar(name, value)

  def write_image(self, step: int, name: str, image: np.ndarray) -> None:
    """image: uint8 [H, W, 3]."""
    with self._summary.as_default(step=int(step)):
      self._tf.summary.image(name, image[None])

  def close(self) -> None:
    self._file.close()
    self._summary.close()


class NullWriter:
  """MetricWriter's interface, writing nothing: the processes of a multi-host run but the
  first."""

  def write_scalars(self, step: int, scalars: dict) -> None:
    del step, scalars

  def write_image(self, step: int, name: str, image: np.ndarray) -> None:
    del step, name, image

  def close(self) -> None:
    pass
