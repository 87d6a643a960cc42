"""End to end on synthetic_faces/tiny: artefacts, checkpoint round trip, resume, errors."""
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gem_jax
from experiments.configs import synthetic_gem
from gem_jax.train import RunExistsError, checkpoints, loop, train_and_evaluate

try:
  from polling import shared_xla_cache, wait_for
except ImportError:  # tests/ imported as a package
  from tests.polling import shared_xla_cache, wait_for

pytestmark = pytest.mark.slow  # end-to-end training runs and subprocesses

ROOT = Path(__file__).resolve().parents[1]


def _params(state):
  return [np.asarray(x) for x in jax.tree.leaves(state.params)]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tfds_dir):
  config = synthetic_gem.get_config("tiny,beta_vae")
  config.data.data_dir = tfds_dir
  workdir = tmp_path_factory.mktemp("run")
  state = train_and_evaluate(config, workdir)
  return config, workdir, state


def test_run_writes_checkpoints_samples_and_metrics(finished_run):
  config, workdir, state = finished_run
  assert int(state.step) == config.train.num_steps == 6
  assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == ["3", "6"]
  assert sorted(p.name for p in (workdir / "samples").iterdir()) == [
      "step_0000003.png", "step_0000006.png"]
  lines = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert [l["step"] for l in lines] == [2, 4, 6]
  assert all(np.isfinite(l["loss"]) and l["images_per_s"] > 0 for l in lines)
  assert list((workdir / "tensorboard").glob("events.out.tfevents.*"))
  assert json.loads((workdir / "config.json").read_text())["model"]["latent_dim"] == 6


def test_load_restores_the_final_model(finished_run):
  config, workdir, state = finished_run
  model = gem_jax.load(str(workdir))
  assert model.step == 6
  for a, b in zip(_params(state), [np.asarray(x) for x in jax.tree.leaves(model.params)],
                  strict=True):
    np.testing.assert_array_equal(a, b)
  images = np.zeros((3, 64, 64, 3), np.uint8)
  mu, logvar = model.encode(images)
  assert mu.shape == logvar.shape == (3, 6)
  assert model.reconstruct(images).shape == (3, 64, 64, 3)
  traversal = model.traverse(images[0], latent=2, values=[-2.0, 0.0, 2.0])
  assert traversal.shape == (3, 64, 64, 3)
  assert not np.allclose(traversal[0], traversal[2])   # the latent does something


def test_load_rejects_bad_images(finished_run):
  model = gem_jax.load(str(finished_run[1]))
  with pytest.raises(ValueError, match=r"expected images of shape \[B, 64, 64, 3\]"):
    model.encode(np.zeros((2, 32, 32, 3), np.uint8))
  with pytest.raises(ValueError, match="dtype int64"):
    model.encode(np.zeros((2, 64, 64, 3), np.int64))


def test_resume_continues_the_same_stream(finished_run, tfds_dir, tmp_path):
  config, _, full = finished_run
  config = config.copy_and_resolve_references()
  config.train.num_steps = 3
  train_and_evaluate(config, tmp_path)
  config.train.num_steps = 6
  resumed = train_and_evaluate(config, tmp_path, resume=True)
  assert int(resumed.step) == 6
  np.testing.assert_array_equal(np.asarray(resumed.rng), np.asarray(full.rng))
  for a, b in zip(_params(full), _params(resumed), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_existing_run_without_resume_is_refused(finished_run):
  config, workdir, _ = finished_run
  with pytest.raises(RunExistsError, match="pass --resume"):
    train_and_evaluate(config, workdir)


def test_checkpoint_from_another_model_is_refused(finished_run, tmp_path):
  config, workdir, _ = finished_run
  other = config.copy_and_resolve_references()
  other.model.latent_dim = 4
  other.train.num_steps = 9
  with pytest.raises(checkpoints.CheckpointError, match="holds another model"):
    train_and_evaluate(other, workdir, resume=True)


def test_empty_checkpoint_dir_is_a_clear_error(tmp_path):
  with pytest.raises(checkpoints.CheckpointError, match="no checkpoint found"):
    gem_jax.load(str(tmp_path))
  with pytest.raises(checkpoints.CheckpointError, match="does not exist"):
    gem_jax.load(str(tmp_path / "missing"))


def test_unknown_dataset_is_a_clear_error(tiny_config, tmp_path):
  tiny_config.data.name = "mnist"
  with pytest.raises(ValueError, match="unknown data set 'mnist'; known data sets"):
    train_and_evaluate(tiny_config, tmp_path)


def _cli(*args, env=None, **kwargs):
  env = env or dict(os.environ, PYTHONPATH=str(ROOT))
  return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=300, **kwargs)


def test_unknown_config_key_is_a_clear_error(tmp_path):
  out = _cli("experiments.synthetic_gem", "--config.train.no_such_key=1",
             f"--workdir={tmp_path}")
  assert out.returncode != 0
  assert "no_such_key" in out.stderr


def test_celeba_entry_point_names_the_missing_files(tmp_path):
  """An empty CelebA folder and an empty tfds data_dir of its own (a machine with CelebA
  prepared in ~/tensorflow_datasets must not change the outcome)."""
  data_dir = tmp_path / "tfds"
  data_dir.mkdir()
  out = _cli("experiments.celeba_gem", f"--config.data.celeba_dir={tmp_path}",
             f"--config.data.data_dir={data_dir}",
             env=dict(os.environ, PYTHONPATH=str(ROOT), TFDS_DATA_DIR=str(data_dir)))
  assert out.returncode != 0
  assert "CelebA not found: missing img_align_celeba, list_attr_celeba.txt" in out.stderr
  assert "error:" in out.stderr and "Traceback" not in out.stderr
  assert str(tmp_path) in out.stderr


def test_kill_then_resume(tfds_dir, tmp_path):
  """A run killed with SIGKILL after its first checkpoint resumes from it. The two processes
  share a persistent XLA compilation cache: the resume loads the killed run's programs."""
  config_arg = "--config=experiments/configs/synthetic_gem.py:tiny,beta_vae"
  common = [config_arg, f"--config.data.data_dir={tfds_dir}", f"--workdir={tmp_path}",
            "--config.train.checkpoint_every=2", "--config.train.sample_every=1000"]
  env = dict(os.environ, PYTHONPATH=str(ROOT),
             **shared_xla_cache(tmp_path.parent / f"{tmp_path.name}_xla_cache"))
  log = tmp_path.parent / f"{tmp_path.name}_train.log"
  with open(log, "w") as f:
    proc = subprocess.Popen([sys.executable, "-m", "experiments.synthetic_gem", *common,
                             "--config.train.num_steps=100000"], cwd=ROOT, env=env,
                            stdout=f, stderr=subprocess.STDOUT)
  ckpt = tmp_path / "checkpoints"
  wait_for(lambda: checkpoints.saved_steps(ckpt), f"a first checkpoint in {ckpt}", 240,
           procs=[(proc, log)])
  time.sleep(1.0)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  saved = max(checkpoints.saved_steps(ckpt))
  assert saved >= 2 and saved % 2 == 0, saved  # checkpoint_every=2
  out = _cli("experiments.synthetic_gem", *common, f"--config.train.num_steps={saved + 2}",
             "--resume", env=env)
  assert out.returncode == 0, out.stderr[-2000:]
  assert gem_jax.load(str(tmp_path)).step == saved + 2
  steps = [json.loads(l)["step"] for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert steps[-1] == saved + 2


def test_nonfinite_loss_stops_with_step_and_last_good_checkpoint(tiny_config, tmp_path,
                                                                 monkeypatch):
  real = loop.make_pmapped_step

  def poisoned(*args, **kwargs):
    step_fn = real(*args, **kwargs)

    def wrapped(state, batch):
      if int(state.step[0]) == 4:   # the 5th step sees a NaN graph
        graph = dict(state.graph, a0=state.graph["a0"] * jnp.nan,
                     edge_mask=jnp.ones_like(state.graph["edge_mask"]))
        state = state.replace(graph=graph)
      return step_fn(state, batch)
    return wrapped

  monkeypatch.setattr(loop, "make_pmapped_step", poisoned)
  with pytest.raises(loop.NonFiniteLossError,
                     match=r"non-finite at step 5.*Last good checkpoint: .*checkpoints/3"):
    train_and_evaluate(tiny_config, tmp_path)
  assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["3"]


def test_nan_learning_rate_saves_no_nan_checkpoint(tiny_config, tmp_path):
  """The first step's loss and gradients are finite, its update is NaN: nothing is saved."""
  tiny_config.train.learning_rate = float("nan")
  tiny_config.train.checkpoint_every = 1
  with pytest.raises(loop.NonFiniteLossError,
                     match=r"non-finite at step 1 \(its loss, gradients or updated weights held "
                           r"NaN or inf\).*Last good checkpoint: none saved yet"):
    train_and_evaluate(tiny_config, tmp_path)
  assert checkpoints.saved_steps(tmp_path / "checkpoints") == []
  with pytest.raises(checkpoints.CheckpointError, match="no checkpoint found"):
    gem_jax.load(str(tmp_path))


def test_nan_update_mid_run_leaves_only_finite_checkpoints(tiny_config, tmp_path, monkeypatch):
  real = loop.make_pmapped_step

  def poisoned(*args, **kwargs):
    step_fn = real(*args, **kwargs)

    def wrapped(state, batch):
      if int(state.step[0]) == 3:   # the 4th step's Adam moments are NaN: a NaN update
        state = state.replace(opt_state=jax.tree.map(
            lambda x: x * jnp.nan if jnp.issubdtype(x.dtype, jnp.floating) else x,
            state.opt_state))
      return step_fn(state, batch)
    return wrapped

  monkeypatch.setattr(loop, "make_pmapped_step", poisoned)
  tiny_config.train.checkpoint_every = 1
  with pytest.raises(loop.NonFiniteLossError,
                     match=r"non-finite at step 4 .*Last good checkpoint: .*checkpoints/3\."):
    train_and_evaluate(tiny_config, tmp_path)
  assert checkpoints.saved_steps(tmp_path / "checkpoints") == [1, 2, 3]
  for step in (1, 2, 3):
    state, _ = checkpoints.restore_raw(tmp_path / "checkpoints" / str(step))
    assert checkpoints.nonfinite_leaves(state) == []
  assert gem_jax.load(str(tmp_path)).step == 3


def test_resume_skips_a_damaged_newest_checkpoint(finished_run, tmp_path, caplog,
                                                  open_managers):
  """Step 6's data file is cut short: the resume restarts from step 3 (a warning, not the
  'does not match' error), sets step 6 aside, replays steps 4-6 and logs each step once; the
  orbax managers it opened are all closed (none of their threads is left running)."""
  config, workdir, full = finished_run
  before = open_managers()
  run = tmp_path / "run"
  shutil.copytree(workdir, run)
  data = [p for p in (run / "checkpoints" / "6" / "state").rglob("*") if p.parent.name == "d"]
  with open(max(data, key=lambda p: p.stat().st_size), "r+b") as f:
    f.truncate(1000)
  with caplog.at_level(logging.WARNING):
    resumed = train_and_evaluate(config, run, resume=True)
  warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
  damaged = run.absolute() / "checkpoints" / "6"
  moved = run.absolute() / "damaged_checkpoints" / "6"
  assert any(w.startswith(f"checkpoint {damaged} is damaged (ValueError: OUT_OF_RANGE")
             for w in warnings)
  assert (f"resuming at step 3: moved the damaged {damaged} to {moved}; delete it with: "
          f"rm -r '{moved}'") in warnings
  assert (moved / "state").is_dir()
  assert int(resumed.step) == 6
  for a, b in zip(_params(full), _params(resumed), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  assert gem_jax.load(str(run)).step == 6
  steps = [json.loads(l)["step"] for l in (run / "metrics.jsonl").read_text().splitlines()]
  assert steps == [2, 4, 6]
  assert open_managers() == before
