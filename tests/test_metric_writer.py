"""metrics.jsonl and TensorBoard's event files (`gem_jax.train.metric_writer`)."""
import json
import logging
import os

import numpy as np

from gem_jax.data.tf_cpu import tensorflow
from gem_jax.train.metric_writer import MetricWriter, truncate_metrics


def _events(workdir) -> dict[str, list[tuple[int, object]]]:
  """{tag: [(step, value)]} of every summary under workdir/tensorboard."""
  tf = tensorflow()
  out = {}
  for path in sorted((workdir / "tensorboard").iterdir()):
    for event in tf.compat.v1.train.summary_iterator(str(path)):
      for value in event.summary.value:
        out.setdefault(value.tag, []).append((event.step, tf.make_ndarray(value.tensor)))
  return out


def test_scalars_go_to_both_files_as_floats_and_arrays_are_left_out(tmp_path):
  writer = MetricWriter(tmp_path)
  writer.write_scalars(np.int64(2), {"loss": np.float32(1.5), "kl": 3, "per_latent": np.ones(4)})
  writer.write_scalars(4, {"loss": 0.25})
  writer.write_image(4, "samples", np.full((2, 3, 3), 200, np.uint8))
  writer.close()
  lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
  assert [json.loads(line) for line in lines] == [{"step": 2, "loss": 1.5, "kl": 3.0},
                                                  {"step": 4, "loss": 0.25}]
  assert lines[0] == '{"step": 2, "loss": 1.5, "kl": 3.0}'
  events = _events(tmp_path)
  assert sorted(events) == ["kl", "loss", "samples"]
  assert [(s, float(v)) for s, v in events["loss"]] == [(2, 1.5), (4, 0.25)]
  assert [(s, float(v)) for s, v in events["kl"]] == [(2, 3.0)]
  (step, image), = events["samples"]
  assert step == 4 and list(image[:2]) == [b"3", b"2"]  # width, height, then the PNG


def test_a_resumed_writer_drops_the_later_steps_then_appends(tmp_path, caplog):
  path = tmp_path / "metrics.jsonl"
  path.write_text("".join(json.dumps({"step": s}) + "\n" for s in (1, 2, 3)) + '{"step": 4, "lo')
  with caplog.at_level(logging.INFO):
    writer = MetricWriter(tmp_path, resume_step=2)
  writer.write_scalars(3, {"loss": 1.0})
  writer.close()
  assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [1, 2, 3]
  assert f"{path}: dropped 2 lines after step 2" in [r.getMessage() for r in caplog.records]


def test_a_fresh_writer_in_a_new_nested_folder_starts_an_empty_file(tmp_path):
  workdir = tmp_path / "run" / "stage"
  workdir.mkdir(parents=True)
  (workdir / "metrics.jsonl").write_text('{"step": 1}\n')  # a fresh attempt's leftovers
  MetricWriter(workdir).close()
  assert (workdir / "metrics.jsonl").read_text() == ""
  MetricWriter(tmp_path / "new" / "deeper").close()
  assert (tmp_path / "new" / "deeper" / "metrics.jsonl").exists()


def test_truncating_nothing_leaves_the_file_as_it_was(tmp_path):
  path = tmp_path / "metrics.jsonl"
  path.write_text('{"step": 1}\n{"step": 2}\n')
  inode = os.stat(path).st_ino
  assert truncate_metrics(path, 2) == 0
  assert os.stat(path).st_ino == inode and path.read_text() == '{"step": 1}\n{"step": 2}\n'
