"""Multi-host training on CPU: 2 processes x 1 device (jax.distributed, gloo collectives on
127.0.0.1) against 1 process x 2 devices: the β-VAE branch, and GEM's whole pipeline killed in
stage 4 and resumed; a killed process stopping the other; the launch errors."""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from experiments.configs import synthetic_gem
from gem_jax.data.registry import get_builder
from gem_jax.gem_pipeline import run_gem
from gem_jax.train import checkpoints, train_and_evaluate
from gem_jax.train.run_lock import run_lock

try:
  from polling import shared_xla_cache, wait_for
except ImportError:  # tests/ imported as a package
  from tests.polling import shared_xla_cache, wait_for


def _has_gloo() -> bool:
  try:
    from jax._src.lib import _jax
  except ImportError:
    return False
  return hasattr(_jax, "make_gloo_tcp_collectives")


pytestmark = [pytest.mark.slow,  # several processes each train a tiny model
              pytest.mark.skipif(not _has_gloo(), reason="this jaxlib has no gloo CPU "
                                 "collectives, which multi-process runs on CPU need")]

ROOT = Path(__file__).resolve().parents[1]
CONFIG = "tiny,beta_vae"


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _launch(tfds_dir, workdir, *args, num_processes=2, ids=None, port=None, config=CONFIG):
  """Starts `experiments.synthetic_gem` as processes `ids` (default all) of a run of
  num_processes, one CPU device each; returns [(Popen, log path)]. The processes share one
  persistent XLA compilation cache (next to the tfds folder, this module's): a rerun, and the
  next test's processes, load the programs the last ones compiled instead of compiling again."""
  port = port or _free_port()
  env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu",
             XLA_FLAGS="--xla_force_host_platform_device_count=1",
             **shared_xla_cache(Path(tfds_dir).parent / "multihost_xla_cache"))
  common = [f"--config=experiments/configs/synthetic_gem.py:{config}",
            f"--config.data.data_dir={tfds_dir}", f"--workdir={workdir}",
            "--config.train.sample_every=1000", f"--coordinator_address=127.0.0.1:{port}",
            f"--num_processes={num_processes}", *args]
  out = []
  for i in range(num_processes) if ids is None else ids:
    log = workdir.parent / f"{workdir.name}_{port}_{i}.log"
    with open(log, "w") as f:
      out.append((subprocess.Popen([sys.executable, "-m", "experiments.synthetic_gem",
                                    *common, f"--process_id={i}"], cwd=ROOT, env=env,
                                   stdout=f, stderr=subprocess.STDOUT), log))
  return out


def _finish(procs, timeout=400) -> list[str]:
  """Waits for the processes; returns their last output lines; fails on a nonzero status."""
  tails = []
  for proc, log in procs:
    try:
      proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
      for p, _ in procs:
        p.kill()
      pytest.fail(f"{log} did not finish: {log.read_text()[-2000:]}")
    tails.append(log.read_text()[-3000:])
    assert proc.returncode == 0, tails[-1]
  return tails


def _assert_same_state(dir_a, dir_b):
  a, _ = checkpoints.restore_raw(dir_a)
  b, _ = checkpoints.restore_raw(dir_b)
  assert int(a["step"]) == int(b["step"])
  leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
  assert len(leaves_a) == len(leaves_b)
  for x, y in zip(leaves_a, leaves_b, strict=True):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-6, atol=1e-7)


def _reference(tfds_dir, workdir, num_steps):
  """1 process x 2 devices (conftest), in this process: the same global batches."""
  config = synthetic_gem.get_config(CONFIG)
  config.data.data_dir = tfds_dir
  config.train.num_steps = num_steps
  config.train.sample_every = 1000
  assert jax.local_device_count() == 2, "conftest sets two host devices"
  train_and_evaluate(config, workdir)
  return workdir


def _data_config(tfds_dir):
  config = synthetic_gem.get_config(CONFIG)
  config.data.data_dir = tfds_dir
  return config.data


@pytest.fixture(scope="module")
def prepared(tfds_dir):
  """synthetic_faces/tiny rendered once, before processes read it."""
  get_builder(_data_config(tfds_dir))
  return tfds_dir


def test_two_processes_match_one_process_with_two_devices(prepared, tmp_path):
  reference = _reference(prepared, tmp_path / "one", num_steps=6)
  _finish(_launch(prepared, tmp_path / "two"))
  _assert_same_state(reference, tmp_path / "two")
  two = tmp_path / "two"
  lines = (two / "metrics.jsonl").read_text().splitlines()
  assert len(lines) == 3, "process 0 alone writes the metrics (steps 2, 4, 6)"
  assert (two / "config.json").exists() and not (two / ".run.lock").exists()


def _wait_for_checkpoint(procs, ckpt):
  """Waits (300 s at most) for a first checkpoint in `ckpt`, then 1 s more; fails with the
  processes' last log lines when one of them exits first or at the deadline."""
  wait_for(lambda: checkpoints.saved_steps(ckpt), f"a first checkpoint in {ckpt}", 300, procs)
  time.sleep(1.0)


def test_a_killed_process_stops_the_other_with_one_clear_error(prepared, tmp_path):
  """Process 1 killed between checkpoints: process 0's next collective fails and it stops
  (not after the coordination service's heartbeat timeout, 90-100 s after the kill, nor with an
  abort) saying what happened and how to resume. Checkpoints every 200 steps: the kill lands in
  training, not in a save whose closing barrier would wait for the heartbeat (CI saw 72 s with
  a save every 2 steps)."""
  run = tmp_path / "run"
  procs = _launch(prepared, run, "--config.train.checkpoint_every=200",
                  "--config.train.num_steps=100000")
  _wait_for_checkpoint(procs, run / "checkpoints")
  (survivor, log), (victim, _) = procs
  victim.send_signal(signal.SIGKILL)
  victim.wait()
  killed_at = time.time()
  survivor.wait(timeout=150)
  text = log.read_text()
  assert survivor.returncode == 1, text[-3000:]
  waited = time.time() - killed_at
  assert waited < 60, f"process 0 took {waited:.0f} s to stop: {text[-2000:]}"
  assert "Gloo" in text, "the failed all-reduce, not the heartbeat, stopped process 0"
  assert "error: process 0 of 2 stopped: a collective with the other processes failed" in text
  assert "rerun every process with the same command" in text


def test_gem_pipeline_in_two_processes_killed_and_resumed_matches_one_process(prepared,
                                                                              tmp_path):
  """Warm-up, oracle scoring, alignment and GEM across 2 processes x 1 device, both killed once
  stage 4 saved a checkpoint, then rerun: the rerun skips stages 1-3 and resumes stage 4, and
  scores, S, A_0 and the warm-up and GEM parameters equal `run_gem`'s in 1 process x 2 devices,
  uninterrupted; process 0 alone wrote the records and figures."""
  two = tmp_path / "two"
  procs = _launch(prepared, two, "--config.train.checkpoint_every=2",
                  "--config.train.num_steps=100000", config="tiny")
  _wait_for_checkpoint(procs, two / "gem" / "checkpoints")
  for proc, _ in procs:
    proc.send_signal(signal.SIGKILL)
    proc.wait()
  saved = max(checkpoints.saved_steps(two / "gem" / "checkpoints"))
  rerun = _launch(prepared, two, "--config.train.checkpoint_every=2",
                  f"--config.train.num_steps={saved + 2}", config="tiny")
  _finish(rerun)
  log = rerun[0][1].read_text()
  assert "warm-up done" in log and f"resumed {two / 'gem'} at step {saved}" in log
  config = synthetic_gem.get_config("tiny")
  config.data.data_dir = prepared
  config.train.sample_every = 1000
  config.train.num_steps = saved + 2
  one = tmp_path / "one"
  run_gem(config, one)
  for stage in ("warmup", "gem"):
    _assert_same_state(one / stage, two / stage)
  for name in ("scores/scores.npy", "graph/somers_d.npy", "graph/a0.npy"):
    np.testing.assert_array_equal(np.load(one / name), np.load(two / name))
  for stage in ("warmup", "scores", "graph", "gem"):
    assert '"complete": true' in (two / stage / "stage.json").read_text()
  assert (two / "figures" / "graphs.png").exists()


def test_unreachable_coordinator_is_one_clear_error(prepared, tmp_path):
  port = _free_port()
  procs = _launch(prepared, tmp_path / "run", "--distributed_timeout=3", ids=[1], port=port)
  proc, log = procs[0]
  proc.wait(timeout=120)
  text = log.read_text()
  assert proc.returncode == 1, text[-2000:]
  assert f"error: cannot reach the coordinator at 127.0.0.1:{port} within 3 s" in text
  assert "Traceback" not in text


def test_processes_that_disagree_on_their_count_stop_with_one_clear_error(prepared, tmp_path):
  port = _free_port()
  procs = (_launch(prepared, tmp_path / "run", "--distributed_timeout=60", ids=[0], port=port)
           + _launch(prepared, tmp_path / "run", "--distributed_timeout=60", ids=[1],
                     port=port, num_processes=3))
  for proc, log in procs:
    proc.wait(timeout=180)
    text = log.read_text()
    assert proc.returncode == 1, text[-2000:]
    assert ("error: the processes disagree on --num_processes (process 0: 2, process 1: 3)"
            in text)
    assert "Traceback" not in text


def test_a_locked_workdir_stops_every_process(prepared, tmp_path):
  """Process 0 cannot take the run lock (this live test process holds it): it reports the lock,
  and process 1 stops too instead of waiting for it."""
  run = tmp_path / "run"
  texts = []
  with run_lock(run):
    for proc, log in _launch(prepared, run, "--distributed_timeout=60"):
      proc.wait(timeout=300)
      texts.append(log.read_text())
      assert proc.returncode == 1, texts[-1][-2000:]
      assert "Traceback" not in texts[-1]
  assert f"error: {run} is in use by another run" in texts[0]
  assert f"error: process 0 failed to take the run lock {run / '.run.lock'}" in texts[1]
