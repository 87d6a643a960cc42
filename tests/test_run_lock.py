"""One run per folder (gem_jax/train/run_lock.py) and atomic writes (gem_jax/files.py)."""
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import threading

import numpy as np
import pytest

from gem_jax import files
from gem_jax.train.run_lock import (
  LOCK_NAME,
  RunLockedError,
  _acquire,
  _release,
  _same_file,
  run_lock,
)


def test_lock_is_held_for_the_block_and_released(tmp_path):
  with run_lock(tmp_path):
    record = json.loads((tmp_path / LOCK_NAME).read_text())
    assert (record["host"], record["pid"]) == (socket.gethostname(), os.getpid())
    assert record["argv"] == sys.argv and sorted(record) == ["argv", "host", "pid", "started"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", record["started"])
  assert not (tmp_path / LOCK_NAME).exists()


HOLD = ("import sys, time\n"
        "from gem_jax.train.run_lock import run_lock\n"
        "with run_lock(sys.argv[1]):\n"
        "  print('held', flush=True)\n"
        "  time.sleep(60)\n")


@contextlib.contextmanager
def _held_by_another_process(workdir):
  """A live process holding the run lock on workdir (started with argv [-c, workdir])."""
  holder = subprocess.Popen([sys.executable, "-c", HOLD, str(workdir)], stdout=subprocess.PIPE,
                            text=True)
  try:
    assert holder.stdout.readline().strip() == "held"
    yield holder
  finally:
    holder.kill()
    holder.wait()


def test_a_second_run_on_the_folder_stops_naming_the_first(tmp_path):
  with _held_by_another_process(tmp_path) as holder:
    with pytest.raises(RunLockedError, match=rf"in use by another run .*process {holder.pid}"
                       r".*Wait for it or choose another --workdir"):
      with run_lock(tmp_path):
        pass
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == holder.pid


def test_a_killed_holder_never_blocks_the_next_run(tmp_path, caplog):
  with _held_by_another_process(tmp_path) as holder:
    pass  # killed: its lock file stays, its lock goes with the process
  assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == holder.pid
  with run_lock(tmp_path):
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
  assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
      f"taking over the run lock {tmp_path / LOCK_NAME} left by process {holder.pid} on "
      f"{socket.gethostname()} (that run ended without releasing it)"]


def test_the_locked_error_quotes_the_holders_whole_record(tmp_path):
  with _held_by_another_process(tmp_path) as holder:
    record = json.loads((tmp_path / LOCK_NAME).read_text())
    with pytest.raises(RunLockedError) as e:
      with run_lock(tmp_path):
        pass
  assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", record["started"])
  assert record["argv"] == ["-c", str(tmp_path)] and sorted(record) == ["argv", "host", "pid",
                                                                         "started"]
  assert str(e.value) == (
      f"{tmp_path} is in use by another run (host {socket.gethostname()}, process {holder.pid}, "
      f"started {record['started']}: -c {tmp_path}). Wait for it or choose another --workdir.")


HOLD_WITHOUT_RECORD = ("import fcntl, os, sys, time\n"
                       "fd = os.open(sys.argv[1], os.O_CREAT | os.O_RDWR)\n"
                       "fcntl.flock(fd, fcntl.LOCK_EX)\n"
                       "print('held', flush=True)\n"
                       "time.sleep(60)\n")


def test_a_holder_without_a_record_is_named_with_question_marks(tmp_path):
  holder = subprocess.Popen([sys.executable, "-c", HOLD_WITHOUT_RECORD,
                             str(tmp_path / LOCK_NAME)], stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(RunLockedError) as e:
      with run_lock(tmp_path):
        pass
  finally:
    holder.kill()
    holder.wait()
  assert str(e.value) == (f"{tmp_path} is in use by another run (host ?, process ?, started ?: "
                          "?). Wait for it or choose another --workdir.")


def test_the_lock_file_is_readable_by_all_and_releasing_a_removed_one_is_fine(tmp_path):
  path = tmp_path / LOCK_NAME
  old = os.umask(0o022)
  try:
    fd = _acquire(path)
  finally:
    os.umask(old)
  assert path.stat().st_mode & 0o777 == 0o644
  path.unlink()
  _release(path, fd)  # already gone: no error, and the descriptor is closed
  with pytest.raises(OSError):
    os.fstat(fd)


def test_a_left_lock_without_its_holder_is_taken_over_with_question_marks(tmp_path, caplog):
  (tmp_path / LOCK_NAME).write_text(json.dumps({"started": "yesterday"}))
  with run_lock(tmp_path):
    pass
  assert "left by process ? on ? (that run ended" in caplog.text


def test_a_lock_file_deleted_under_its_descriptor_is_not_the_same_file(tmp_path):
  path = tmp_path / "lock"
  fd = os.open(path, os.O_CREAT | os.O_RDWR)
  try:
    assert _same_file(path, fd)
    path.unlink()
    assert not _same_file(path, fd)
  finally:
    os.close(fd)


def test_two_runs_over_a_left_lock_never_both_take_it(tmp_path):
  """The race of two runs restarting after a crash: at most one holder, every time."""
  path = tmp_path / LOCK_NAME
  both = 0
  for _ in range(100):
    path.write_text(json.dumps({"host": socket.gethostname(), "pid": 1}))
    start, taken = threading.Barrier(2), []

    def attempt():
      start.wait()
      try:
        taken.append(_acquire(path))
      except RunLockedError:
        pass
    threads = [threading.Thread(target=attempt) for _ in range(2)]
    for t in threads:
      t.start()
    for t in threads:
      t.join()
    both += len(taken) == 2
    for fd in taken:
      _release(path, fd)
  assert both == 0


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
  """tmp_path / 'run', its lock held by a live process."""
  run = tmp_path / "run"
  run.mkdir()
  with _held_by_another_process(run):
    yield run


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
