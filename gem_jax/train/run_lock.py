"""One run per folder: a lock file naming the host and process that holds it.

    with run_lock(workdir):   # RunLockedError at once if another live run holds workdir
      ...

The lock is `<workdir>/.run.lock` (JSON: host, pid, start time, command line), created with
O_EXCL so that two processes cannot both take it. A lock left by a process that is gone (same
host, PID not alive) is stale: it is replaced with a warning. A lock held by another host
cannot be checked from here; the error says which file to delete if that run is over. Stages
lock their own folders (the pipeline its root, training its run folder), never one twice. In a
multi-host run only process 0 takes the lock: the processes are one run.
"""
from __future__ import annotations

import contextlib
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


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


def _read(path: Path) -> dict:
  try:
    return json.loads(path.read_text())
  except (OSError, ValueError):
    return {}  # being written, or damaged: treated as held by an unknown run


def _try_create(path: Path) -> bool:
  record = {"host": socket.gethostname(), "pid": os.getpid(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"), "argv": sys.argv}
  try:
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
  except FileExistsError:
    return False
  with os.fdopen(fd, "w") as f:
    json.dump(record, f)
  return True


def _acquire(path: Path) -> None:
  for _ in range(3):
    if _try_create(path):
      return
    holder = _read(path)
    same_host = holder.get("host") == socket.gethostname()
    if same_host and isinstance(holder.get("pid"), int) and not _alive(holder["pid"]):
      logging.warning("removing the stale run lock %s (process %d on %s is gone)", path,
                      holder["pid"], holder["host"])
      path.unlink(missing_ok=True)
      continue
    raise RunLockedError(
        f"{path.parent} is in use by another run (host {holder.get('host', '?')}, process "
        f"{holder.get('pid', '?')}, started {holder.get('started', '?')}: "
        f"{' '.join(holder.get('argv', [])) or '?'}). Wait for it, choose another --workdir, "
        f"or, if that run is no longer alive, delete {path}.")
  raise RunLockedError(f"could not take the run lock {path}")


@contextlib.contextmanager
def run_lock(workdir: str | Path):
  """Holds <workdir>/.run.lock for the duration of the block (see the module docstring). In a
  multi-process run process 0 takes it; when it cannot, every process stops (a RunLockedError
  on process 0, a DistributedError naming the lock on the others)."""
  workdir = Path(workdir)
  path = workdir / LOCK_NAME
  main = is_main()

  def take():
    if main:
      workdir.mkdir(parents=True, exist_ok=True)
      _acquire(path)

  main_first(take, f"to take the run lock {path}")
  try:
    yield
  finally:
    if main:
      path.unlink(missing_ok=True)
