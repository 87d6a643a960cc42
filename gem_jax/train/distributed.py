"""Multi-host training with `jax.distributed`: N processes (one per host or accelerator), one run.

    start(coordinator_address="10.0.0.1:1234", num_processes=2, process_id=0)  # explicit
    start(auto=True)         # jax's cluster auto-detection (SLURM, Open MPI, TPU pods, ...)

`start` must run before anything touches JAX's devices. Afterwards the pmapped train step spans
every process's devices (pmap over the global device list; its collectives cross processes, on
CPU through gloo), each process feeds its own rows of the same global batch
(`gem_jax.data.make_train_iterator`), and only the main process (index 0) writes files that are
not checkpoints: config.json, metrics, TensorBoard, samples, the run lock. Checkpoints: every
process calls orbax's save with the same host-local (numpy) unreplicated state; orbax writes
those replicated values from process 0 only, and every process restores them, so the workdir
must be on a file system all processes share.

A process that cannot reach the coordinator, or processes launched with different
--num_processes or configs, stop with one `DistributedError` line each rather than hang or
abort (jax's client aborts the whole process when the coordinator does not answer, so the
coordinator is first probed here).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import sys
import time
from typing import Callable, NoReturn, TypeVar

import jax
import numpy as np
from jax.experimental import multihost_utils

__all__ = ["DistributedError", "agree", "barrier", "digest", "is_main", "main_decides",
           "main_first", "on_main", "start", "is_lost_peer", "lost_peer_message", "abandon"]

T = TypeVar("T")


class DistributedError(RuntimeError):
  """The processes of a multi-host run could not form one run (coordinator, count, config)."""


def is_main() -> bool:
  """Whether this is process 0: the one that writes logs, samples, metrics and config.json."""
  return jax.process_index() == 0


def barrier(name: str) -> None:
  """Waits until every process reaches the barrier `name` (nothing with one process)."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


def _host_port(address: str) -> tuple[str, int]:
  """'HOST:PORT' (HOST may be '[v6]') -> (host, port); DistributedError otherwise."""
  host, _, port = address.rpartition(":")
  if not host or not port.isdigit():
    raise DistributedError(f"--coordinator_address={address!r}: expected HOST:PORT, e.g. "
                           "10.0.0.1:1234")
  return host.strip("[]"), int(port)


def wait_for_coordinator(address: str, timeout_s: float) -> None:
  """Returns once a TCP connection to `address` opens; DistributedError after timeout_s s."""
  host, port = _host_port(address)
  deadline = time.monotonic() + timeout_s
  while True:
    try:
      socket.create_connection((host, port), timeout=min(2.0, timeout_s)).close()
      return
    except OSError as e:
      if time.monotonic() >= deadline:
        raise DistributedError(
            f"cannot reach the coordinator at {address} within {timeout_s:g} s ({e}); start "
            "process 0 (--process_id=0) with the same --coordinator_address, check the host "
            "and port, or raise --distributed_timeout") from e
      time.sleep(0.25)


def _check_explicit(address: str, num_processes: int | None, process_id: int | None) -> None:
  _host_port(address)
  if num_processes is None or num_processes < 1:
    raise DistributedError(f"--num_processes={num_processes}: give the number of processes "
                           "(>= 1) together with --coordinator_address")
  if process_id is None or not 0 <= process_id < num_processes:
    raise DistributedError(f"--process_id={process_id}: must be in 0..{num_processes - 1} "
                           f"(--num_processes={num_processes})")


def _initialize(address: str | None, num_processes: int | None, process_id: int | None,
                timeout_s: int) -> None:
  where = f"the coordinator at {address}" if address else "the auto-detected cluster"
  try:
    jax.distributed.initialize(address, num_processes, process_id,
                               initialization_timeout=timeout_s)
  except (RuntimeError, ValueError) as e:
    line = (str(e).strip().splitlines() or [""])[0][:300]
    raise DistributedError(f"jax.distributed could not join {where}: {type(e).__name__}: "
                           f"{line}. Every process needs the same --coordinator_address and "
                           "--num_processes and its own --process_id") from e


def start(coordinator_address: str | None = None, num_processes: int | None = None,
          process_id: int | None = None, auto: bool = False, timeout_s: int = 300) -> bool:
  """Joins this process to a multi-process run; returns whether one was started.

  Args:
    coordinator_address: 'HOST:PORT' of process 0's coordinator (explicit launch).
    num_processes, process_id: this run's process count and this process's index in it.
    auto: call `jax.distributed.initialize()` without arguments (cluster auto-detection).
    timeout_s: seconds to wait for the coordinator and for every process to join.
  Raises DistributedError when the arguments are incomplete, the coordinator cannot be reached
  or the processes disagree on their count.
  """
  if coordinator_address is None and not auto:
    if num_processes not in (None, 1) or process_id not in (None, 0):
      raise DistributedError("--num_processes/--process_id need --coordinator_address (or "
                             "--distributed=auto)")
    return False
  if coordinator_address is not None:
    _check_explicit(coordinator_address, num_processes, process_id)
  jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU collectives
  if coordinator_address is not None and process_id != 0:
    wait_for_coordinator(coordinator_address, timeout_s)
  _initialize(coordinator_address, num_processes, process_id, timeout_s)
  agree("--num_processes", num_processes or jax.process_count())
  logging.info("process %d of %d (%d local devices of %d)", jax.process_index(),
               jax.process_count(), jax.local_device_count(), jax.device_count())
  return True


def agree(name: str, value: int) -> None:
  """Raises DistributedError on every process unless all gave the same int32 `value`."""
  if jax.process_count() == 1:
    return
  values = np.asarray(multihost_utils.process_allgather(np.int32(value))).reshape(-1)
  if len(set(values.tolist())) > 1:
    each = ", ".join(f"process {i}: {v}" for i, v in enumerate(values.tolist()))
    raise DistributedError(f"the processes disagree on {name} ({each}); launch every process "
                           "with the same arguments")


def on_main(fn: Callable[[], T], what: str) -> T | None:
  """fn() on process 0 only (scoring, writing a stage record or a figure); the others wait for
  it and get None. When it fails there, process 0 raises its error and the others a
  DistributedError naming `what`, instead of waiting for it forever. One process: fn()."""
  if jax.process_count() == 1:
    return fn()
  error, result = None, None
  if is_main():
    try:
      result = fn()
    except Exception as e:  # re-raised below, after telling the others
      error = e
  failed = multihost_utils.broadcast_one_to_all(np.int32(error is not None))
  if error is not None:
    raise error
  if int(np.asarray(failed)):
    raise DistributedError(f"process 0 failed {what}; its log says why")
  return result


def main_decides(fn: Callable[[], bool], what: str) -> bool:
  """fn() on process 0 (see `on_main`), its answer on every process: one decision, e.g.
  whether a pipeline stage is done, that every process then follows."""
  answer = on_main(fn, what)
  if jax.process_count() == 1:
    return bool(answer)
  return bool(int(np.asarray(multihost_utils.broadcast_one_to_all(np.int32(bool(answer))))))


def main_first(fn: Callable[[], T], what: str) -> T:
  """fn() on process 0, then on the others once it succeeded there (e.g. preparing a data set
  in a shared folder once); a failure on process 0 stops every process (see `on_main`)."""
  result = on_main(fn, what)
  return result if is_main() else fn()


def digest(value) -> int:
  """A 28-bit digest (int) of a JSON-able value (e.g. the config as a dict), for `agree`."""
  text = json.dumps(value, sort_keys=True, default=str)
  return int(hashlib.sha256(text.encode()).hexdigest()[:7], 16)


# What a failed collective or coordination call says once a peer process is gone (gloo on CPU,
# NCCL on GPUs, the coordination service's heartbeats and barriers). jax raises these as
# JaxRuntimeError or, from a jit dispatch, ValueError.
_LOST_PEER_MARKERS = ("Gloo", "NCCL", "Connection reset", "Connection closed", "Socket closed",
                      "heartbeat", "Barrier failed", "UNAVAILABLE")


def is_lost_peer(error: BaseException) -> bool:
  """Whether `error` is a collective with the other processes failing (multi-process only)."""
  return (jax.process_count() > 1 and isinstance(error, (RuntimeError, ValueError))
          and any(marker in str(error) for marker in _LOST_PEER_MARKERS))


def lost_peer_message(error: Exception) -> str:
  """What a process says when a collective with the others failed (`error`, e.g. gloo's
  'Connection reset by peer' once another process was killed)."""
  line = (str(error).strip().splitlines() or [""])[0][:300]
  return (f"process {jax.process_index()} of {jax.process_count()} stopped: a collective with "
          f"the other processes failed ({type(error).__name__}: {line}). Another process most "
          "likely died or was killed; its log says why. Nothing saved is lost: rerun every "
          "process with the same command (β-VAE branch and baselines: add --resume) to go on "
          "from the last complete checkpoint.")


def abandon(message: str) -> NoReturn:
  """Prints 'error: message' and exits with status 1 at once. It skips jax.distributed's
  shutdown at exit, which waits for the dead process until its heartbeat times out (100 s)
  and then aborts with a C++ stack trace. Checkpoints are written to a temporary folder and
  renamed when complete, so one cut short is never read back."""
  sys.stdout.flush()
  sys.stderr.write(f"error: {message}\n")
  sys.stderr.flush()
  os._exit(1)
