"""One run per folder: an exclusive lock on `<workdir>/.run.lock`, naming the holder.

    with run_lock(workdir):   # RunLockedError at once if another run holds workdir
      ...

The lock is an flock(2) on the file, which records the holder (JSON: host, PID, start time,
command line) for the error message. The kernel drops the lock when its process ends, however it
ends, so a crashed run never blocks the next one and two runs restarting together after a crash
cannot both take it (the file's contents are only a record; a file left by a crashed run is
taken over with a warning). The holder unlinks the file before it lets go, and a taker checks
that the file it locked is still the one at the path, so a release racing a new run cannot
leave two holders. Stages lock their own folders (the pipeline its root, training its run
folder), never one twice. In a multi-host run process 0 takes the lock: the processes are one
run. On a network file system the lock is as good as its flock support (NFSv4: yes).
"""

import contextlib
import fcntl
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path

from gem_jax.train.distributed import is_main, main_first

__all__ = ["LOCK_NAME", "RunLockedError", "run_lock"]

LOCK_NAME = ".run.lock"


class RunLockedError(RuntimeError):
  """Another run holds the folder."""


def _read(path: Path) -> dict:
  try:
    return json.loads(path.read_text())
  except (OSError, ValueError):
    return {}  # empty (being written) or damaged: an unknown holder


def _same_file(path: Path, fd: int) -> bool:
  try:
    return os.stat(path).st_ino == os.fstat(fd).st_ino
  except FileNotFoundError:
    return False


def _locked_error(path: Path) -> RunLockedError:
  holder = _read(path)
  return RunLockedError(
      f"{path.parent} is in use by another run (host {holder.get('host', '?')}, process "
      f"{holder.get('pid', '?')}, started {holder.get('started', '?')}: "
      f"{' '.join(holder.get('argv', [])) or '?'}). Wait for it or choose another --workdir.")


def _record(fd: int, path: Path) -> None:
  previous = _read(path)
  if previous:
    logging.warning("taking over the run lock %s left by process %s on %s (that run ended "
                    "without releasing it)", path, previous.get("pid", "?"),
                    previous.get("host", "?"))
  record = {"host": socket.gethostname(), "pid": os.getpid(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"), "argv": sys.argv}
  os.ftruncate(fd, 0)
  os.pwrite(fd, json.dumps(record).encode(), 0)
  os.fsync(fd)


def _acquire(path: Path) -> int:
  """Takes the lock; returns the open descriptor that holds it."""
  for _ in range(10):
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      os.close(fd)
      raise _locked_error(path) from None
    if _same_file(path, fd):
      _record(fd, path)
      return fd
    os.close(fd)  # the holder released and removed the file meanwhile: lock the new one
  raise RunLockedError(f"could not take the run lock {path}")


def _release(path: Path, fd: int) -> None:
  path.unlink(missing_ok=True)  # before letting go: a waiting taker then sees a new file
  os.close(fd)


@contextlib.contextmanager
def run_lock(workdir: str | Path):
  """Holds <workdir>/.run.lock for the duration of the block (see the module docstring). In a
  multi-process run process 0 takes it; when it cannot, every process stops (a RunLockedError
  on process 0, a DistributedError naming the lock on the others)."""
  workdir = Path(workdir)
  path = workdir / LOCK_NAME
  main = is_main()
  held = []

  def take():
    if main:
      workdir.mkdir(parents=True, exist_ok=True)
      held.append(_acquire(path))

  main_first(take, f"to take the run lock {path}")
  try:
    yield
  finally:
    if held:
      _release(path, held[0])
