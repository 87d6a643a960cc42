"""Waiting for a subprocess to reach a state (a checkpoint on disk, a line in its log) with a
deadline, failing clearly: what was awaited, and each process's last log lines; and the
environment that lets such processes share their compiled programs.

    wait_for(lambda: saved_steps(ckpt), "a checkpoint in " + str(ckpt), 300, procs=[(proc, log)])
    env = dict(os.environ, **shared_xla_cache(folder))
"""
from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import pytest

TAIL_LINES = 20


def log_tail(log: Path, lines: int = TAIL_LINES) -> str:
  """The last `lines` lines of a log file ('(no log file)' when it does not exist)."""
  log = Path(log)
  if not log.exists():
    return "(no log file)"
  return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _report(what: str, why: str, procs: Sequence[tuple[subprocess.Popen, Path]]) -> str:
  parts = [f"{why} while waiting for {what}"]
  for proc, log in procs:
    status = "running" if proc.poll() is None else f"exited with status {proc.returncode}"
    parts.append(f"--- pid {proc.pid} ({status}), last lines of {log}:\n{log_tail(log)}")
  return "\n".join(parts)


def wait_for(condition: Callable[[], Any], what: str, timeout_s: float,
             procs: Sequence[tuple[subprocess.Popen, Path]] = (), poll_s: float = 0.5) -> Any:
  """Polls `condition()` every `poll_s` seconds until it returns something truthy, which is
  returned.

  Fails the test (pytest.fail) at the deadline, or as soon as one of `procs` ((process, log
  file) pairs, the processes expected to bring the condition about) has exited, with a message
  naming `what` was awaited and the last TAIL_LINES lines of each process's log; the processes
  still running are killed first (a run of 100000 steps would otherwise go on).
  """
  deadline = time.monotonic() + timeout_s
  while True:
    value = condition()
    if value:
      return value
    why = None
    if any(proc.poll() is not None for proc, _ in procs):
      why = "a process exited"
    elif time.monotonic() >= deadline:
      why = f"gave up after {timeout_s:g} s"
    if why is not None:
      message = _report(what, why, procs)
      for proc, _ in procs:
        if proc.poll() is None:
          proc.kill()
          proc.wait()
      pytest.fail(message, pytrace=False)
    time.sleep(poll_s)


def shared_xla_cache(folder: str | Path) -> dict[str, str]:
  """Environment variables under which JAX processes share one persistent compilation cache in
  `folder`: a rerun, or a resume, loads the programs an earlier process compiled."""
  return {"JAX_COMPILATION_CACHE_DIR": str(folder),
          "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0.5"}
