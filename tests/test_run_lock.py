"""One run per folder (gem_jax/train/run_lock.py) and atomic writes (gem_jax/files.py)."""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from gem_jax import files
from gem_jax.train.run_lock import LOCK_NAME, RunLockedError, run_lock


def test_lock_is_held_for_the_block_and_released(tmp_path):
  with run_lock(tmp_path):
    record = json.loads((tmp_path / LOCK_NAME).read_text())
    assert (record["host"], record["pid"]) == (socket.gethostname(), os.getpid())
  assert not (tmp_path / LOCK_NAME).exists()


def test_a_second_run_on_the_folder_stops_naming_the_first(tmp_path):
  holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
  try:
    (tmp_path / LOCK_NAME).write_text(json.dumps(
        {"host": socket.gethostname(), "pid": holder.pid, "started": "then",
         "argv": ["train", "--workdir", "x"]}))
    with pytest.raises(RunLockedError, match=rf"in use by another run .*process {holder.pid}"
                       r".*train --workdir x.*delete .*\.run\.lock"):
      with run_lock(tmp_path):
        pass
    assert (tmp_path / LOCK_NAME).exists()  # the other run's lock is left alone
  finally:
    holder.kill()
    holder.wait()


def test_a_stale_lock_of_a_dead_process_is_replaced(tmp_path, caplog):
  dead = subprocess.Popen([sys.executable, "-c", "pass"])
  dead.wait()
  (tmp_path / LOCK_NAME).write_text(json.dumps({"host": socket.gethostname(),
                                                "pid": dead.pid}))
  with run_lock(tmp_path):
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
  assert "stale run lock" in caplog.text


def test_a_lock_from_another_host_is_not_taken(tmp_path):
  (tmp_path / LOCK_NAME).write_text(json.dumps({"host": "elsewhere", "pid": 1}))
  with pytest.raises(RunLockedError, match="host elsewhere"):
    with run_lock(tmp_path):
      pass


def test_the_lock_is_released_when_the_run_fails(tmp_path):
  with pytest.raises(ZeroDivisionError):
    with run_lock(tmp_path):
      1 / 0
  assert not (tmp_path / LOCK_NAME).exists()


def test_atomic_writes_leave_the_old_file_on_error(tmp_path):
  path = tmp_path / "a.json"
  files.atomic_write_json(path, {"x": 1})
  assert json.loads(path.read_text()) == {"x": 1}

  def fail(f):
    f.write("half")
    raise OSError("disk full")
  with pytest.raises(OSError, match="disk full"):
    files.atomic_write(path, fail)
  assert json.loads(path.read_text()) == {"x": 1}
  assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]  # no temporary left
  assert path.stat().st_mode & 0o777 == 0o644  # readable like a plain write, not private
  files.atomic_save_npy(tmp_path / "m.npy", np.eye(2))
  np.testing.assert_array_equal(np.load(tmp_path / "m.npy"), np.eye(2))


@pytest.fixture()
def held_by_another_process(tmp_path):
  """A lock on tmp_path / 'run' held by a live process."""
  holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
  run = tmp_path / "run"
  run.mkdir()
  (run / LOCK_NAME).write_text(json.dumps({"host": socket.gethostname(), "pid": holder.pid,
                                           "started": "then", "argv": ["first"]}))
  yield run
  holder.kill()
  holder.wait()


def test_training_on_a_locked_workdir_stops_before_writing(tiny_config, held_by_another_process):
  from gem_jax.train import train_and_evaluate
  with pytest.raises(RunLockedError, match="in use by another run"):
    train_and_evaluate(tiny_config, held_by_another_process)
  assert sorted(p.name for p in held_by_another_process.iterdir()) == [LOCK_NAME]


def test_gem_pipeline_on_a_locked_workdir_stops_before_writing(tiny_config,
                                                               held_by_another_process):
  from experiments.configs import synthetic_gem
  from gem_jax.gem_pipeline import run_gem
  config = synthetic_gem.get_config("tiny,gem")
  config.data.data_dir = tiny_config.data.data_dir
  with pytest.raises(RunLockedError, match="in use by another run"):
    run_gem(config, held_by_another_process)
  assert sorted(p.name for p in held_by_another_process.iterdir()) == [LOCK_NAME]
