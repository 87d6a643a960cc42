"""Metrics to a JSONL file (one object per logged step) and to TensorBoard event files."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gem_jax.data.tf_cpu import tensorflow


class MetricWriter:
  """Appends {'step': s, name: value, ...} lines to <workdir>/metrics.jsonl and writes the
  same scalars as TensorBoard summaries under <workdir>/tensorboard."""

  def __init__(self, workdir: str | Path):
    self._path = Path(workdir) / "metrics.jsonl"
    self._path.parent.mkdir(parents=True, exist_ok=True)
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
