"""Checkpoints without training: only finite states are saved and loaded, a damaged newest step
falls back to the previous one, damage is told apart from a model mismatch, `gem_jax.load`
finds the checkpoints of every kind of folder, metrics.jsonl drops the steps a resume redoes."""
import asyncio
import json
import logging
import os
import subprocess
import sys
import types
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

import gem_jax
from experiments.configs import synthetic_gem
from gem_jax.train import checkpoints, loop
from gem_jax.train.checkpoints import CheckpointError
from gem_jax.train.metric_writer import truncate_metrics
from gem_jax.train.state import create_train_state

ROOT = Path(__file__).resolve().parents[1]


def _config(variant="beta_vae"):
  return synthetic_gem.get_config(f"tiny,{variant}")


def _state_at(config, step: int):
  """A fresh state whose step counter reads `step`, its weights and Adam moments moved by
  noise seeded with `step` (incompressible, as a trained state's are)."""
  state = create_train_state(config)
  rng = np.random.default_rng(step)

  def noisy(x):
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
      return x
    return (x + rng.normal(0.0, 0.1, x.shape)).astype(x.dtype)

  return state.replace(step=np.int32(step), params=jax.tree.map(noisy, state.params),
                       opt_state=jax.tree.map(noisy, state.opt_state))


def _save_run(run: Path, steps=(3, 6), variant="beta_vae") -> Path:
  """A run folder <run>/checkpoints/<step> for each step; returns the checkpoints/ folder."""
  config = _config(variant)
  with checkpoints.make_manager(run / "checkpoints") as manager:
    for step in steps:
      checkpoints.save(manager, step, _state_at(config, step), loop.checkpoint_meta(config))
  return run / "checkpoints"


def _biggest_data_file(step_folder: Path) -> Path:
  files = [p for p in (step_folder / "state").rglob("*") if p.is_file() and p.parent.name == "d"]
  return max(files, key=lambda p: p.stat().st_size)


def _truncate(step_folder: Path) -> None:
  with open(_biggest_data_file(step_folder), "r+b") as f:
    f.truncate(1000)


DAMAGE = {
    "truncated data file": _truncate,
    "deleted state/_METADATA": lambda folder: (folder / "state" / "_METADATA").unlink(),
    "deleted meta/metadata": lambda folder: (folder / "meta" / "metadata").unlink(),
}


def _warnings(caplog) -> list[str]:
  return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


# --- only finite states -------------------------------------------------------------------


def _with_nan_kernel(state):
  """`state` with a NaN decoder kernel (params/vae/params/decoder/Dense_1/kernel)."""
  params = jax.tree.map(lambda x: x, state.params)   # a copy of the nested dicts
  decoder = params["vae"]["params"]["decoder"]
  decoder["Dense_1"]["kernel"] = decoder["Dense_1"]["kernel"] * np.nan
  return state.replace(params=params)


def test_save_refuses_a_non_finite_state(tmp_path):
  config = _config()
  manager = checkpoints.make_manager(tmp_path / "checkpoints")
  with pytest.raises(CheckpointError, match=r"refusing to save step 4 to .*checkpoints: "
                     r"non-finite values in params/vae/params/decoder/Dense_1/kernel\. Only "
                     "finite states are saved"):
    checkpoints.save(manager, 4, _with_nan_kernel(_state_at(config, 4)),
                     loop.checkpoint_meta(config))
  manager.wait_until_finished()
  assert checkpoints.saved_steps(tmp_path / "checkpoints") == []


def test_load_refuses_planted_non_finite_weights(tmp_path):
  config = _config()
  state = _state_at(config, 5)
  host = jax.device_get(_with_nan_kernel(state))   # saved past checkpoints.save's refusal
  manager = checkpoints.make_manager(tmp_path / "checkpoints")
  manager.save(5, args=ocp.args.Composite(state=ocp.args.StandardSave(host),
                                          meta=ocp.args.JsonSave(loop.checkpoint_meta(config))))
  manager.wait_until_finished()
  folder = tmp_path.absolute() / "checkpoints" / "5"
  with pytest.raises(CheckpointError, match=rf"checkpoint {folder} \(step 5\) holds non-finite "
                     r"weights \(params/vae/params/decoder/Dense_1/kernel\); it cannot be used"):
    gem_jax.load(tmp_path)
  with pytest.raises(CheckpointError, match=r"\(step 5\) holds non-finite weights"):
    checkpoints.restore_state(tmp_path, state)


# --- damaged checkpoints ------------------------------------------------------------------


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_newest_checkpoint_falls_back_to_the_previous_step(tmp_path, caplog, damage):
  root = _save_run(tmp_path)
  DAMAGE[damage](root / "6")
  with caplog.at_level(logging.WARNING):
    model = gem_jax.load(tmp_path)
  assert model.step == 3
  np.testing.assert_allclose(
      np.asarray(model.params["params"]["decoder"]["Dense_1"]["bias"]),
      np.asarray(_state_at(_config(), 3).params["vae"]["params"]["decoder"]["Dense_1"]["bias"]))
  [warning] = _warnings(caplog)
  assert warning.startswith(f"checkpoint {root.absolute() / '6'} is damaged (")
  assert warning.endswith(f"using step 3 ({root.absolute() / '3'}) instead. Delete the damaged "
                          f"folder with: rm -r '{root.absolute() / '6'}'")


def test_damage_leaves_no_orbax_traceback_on_stderr(tmp_path):
  """Orbax's reads still in flight when one fails each printed a traceback ('Event loop is
  closed') through sys.unraisablehook, which pytest would capture: so a subprocess."""
  root = _save_run(tmp_path)
  _truncate(root / "6")
  code = f"import gem_jax; print(gem_jax.load({str(tmp_path)!r}).step)"
  env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.strip() == "3"
  assert "Traceback" not in out.stderr and "Event loop is closed" not in out.stderr
  assert f"checkpoint {root.absolute() / '6'} is damaged" in out.stderr


def test_unretrieved_read_errors_of_a_folder_read_are_dropped_and_others_kept(tmp_path, caplog):
  """Orbax raises the first failed read of a step (reported as damaged); the others' tasks,
  collected later, logged 'Task exception was never retrieved' with a traceback on the
  asyncio logger (seen once in CI). Those inside the checkpoints/ folder read are dropped;
  any other error, message or folder still reaches the log."""
  root = _save_run(tmp_path)
  _truncate(root / "6")
  with caplog.at_level(logging.WARNING):
    assert gem_jax.load(tmp_path).step == 3
  caplog.clear()
  read_error = lambda folder: ValueError(
      f'OUT_OF_RANGE: Error reading "x/0.0" in OCDBT database at local file "{folder}/state/"')
  never = "Task exception was never retrieved"
  other_root = tmp_path.absolute() / "other" / "checkpoints"
  contexts = [(read_error(root.absolute() / "6"), never, False),
              (read_error(other_root / "6"), never, True),
              (read_error(root.absolute() / "6"), "Exception in callback", True),
              (KeyboardInterrupt(f"{root.absolute() / '6'}/"), never, True)]
  loop = asyncio.new_event_loop()
  try:
    for exc, message, kept in contexts:
      with caplog.at_level(logging.ERROR, logger="asyncio"):
        loop.call_exception_handler({"message": message, "exception": exc})
      assert [r.getMessage().startswith(message) for r in caplog.records] == [True] * kept, exc
      caplog.clear()
  finally:
    loop.close()


def test_a_damaged_step_asked_for_is_an_error(tmp_path):
  root = _save_run(tmp_path)
  _truncate(root / "6")
  folder = root.absolute() / "6"
  with pytest.raises(CheckpointError, match=rf"checkpoint {folder} is damaged and cannot be read "
                     r"\(ValueError: .*\); choose another of its steps \[3, 6\] or delete the "
                     rf"folder with: rm -r '{folder}'"):
    gem_jax.load(folder)


def test_every_checkpoint_damaged_is_an_error(tmp_path):
  root = _save_run(tmp_path)
  for step in ("3", "6"):
    (root / step / "meta" / "metadata").unlink()
  with pytest.raises(CheckpointError, match=rf"every checkpoint in {root.absolute()} is damaged: "
                     r"6: FileNotFoundError: .*; 3: FileNotFoundError: "):
    gem_jax.load(tmp_path)
  assert not checkpoints.reached(tmp_path, 3)


def test_restore_state_tells_damage_from_a_mismatch(tmp_path, caplog):
  root = _save_run(tmp_path)
  _truncate(root / "6")
  target = create_train_state(_config())
  with caplog.at_level(logging.WARNING):
    state, _ = checkpoints.restore_state(tmp_path, target)
  assert int(state.step) == 3
  assert "checkpoints/6 is damaged" in _warnings(caplog)[0]
  other = create_train_state(_config("gem_single"))   # another model: a discriminator, ...
  with pytest.raises(CheckpointError, match=rf"checkpoint {root.absolute() / '3'} reads but does "
                     "not match this model's parameters"):
    checkpoints.restore_state(tmp_path, other)
  with pytest.raises(CheckpointError, match="holds another model: its model is"):
    checkpoints.restore_state(tmp_path, other,
                              expected_meta={"model": _config("gem_single").model.to_dict()})


def test_reading_closes_every_manager_it_opens(tmp_path, open_managers):
  """Each read opens an orbax manager and closes it, a damaged step or a mismatch included: an
  open one keeps orbax's threads running, until the interpreter exits if nothing closes it."""
  root = _save_run(tmp_path)
  _truncate(root / "6")
  before = open_managers()
  assert checkpoints.restore_raw(tmp_path)[0]["step"] == 3
  assert checkpoints.read_meta(tmp_path)[0] == 6   # its meta reads
  assert int(checkpoints.restore_state(tmp_path, create_train_state(_config()))[0].step) == 3
  assert not checkpoints.reached(tmp_path, 6)
  with pytest.raises(CheckpointError, match="is damaged and cannot be read"):
    checkpoints.restore_raw(root / "6")
  with pytest.raises(CheckpointError, match="reads but does not match this model"):
    checkpoints.restore_state(tmp_path, create_train_state(_config("gem_single")))
  assert open_managers() == before


def test_set_aside_newer_moves_the_skipped_steps_out_of_the_way(tmp_path):
  root = _save_run(tmp_path, steps=(3, 6, 9))
  manager = checkpoints.make_manager(root)
  moved = checkpoints.set_aside_newer(manager, 3)
  assert moved == [tmp_path.absolute() / "damaged_checkpoints" / "6",
                   tmp_path.absolute() / "damaged_checkpoints" / "9"]
  assert checkpoints.saved_steps(root) == [3] and manager.all_steps() == [3]
  assert (moved[0] / "state").is_dir()


def test_a_meta_mismatch_shows_both_values_with_sorted_keys_for_the_step_asked(tmp_path):
  config = _config()
  root = (tmp_path / "checkpoints").absolute()
  with checkpoints.make_manager(root) as manager:
    for step in (3, 6):
      meta = {**loop.checkpoint_meta(config), "marker": {"z": step, "a": 0}}
      checkpoints.save(manager, step, _state_at(config, step), meta)
  checkpoints.restore_state(tmp_path, create_train_state(config), step=3,
                            expected_meta={"marker": {"a": 0, "z": 3}})  # matches: no error
  with pytest.raises(CheckpointError) as e:
    checkpoints.restore_state(tmp_path, create_train_state(config), step=3,
                              expected_meta={"marker": {"z": 6, "a": 0}})
  assert str(e.value) == (f"checkpoint {root / '3'} holds another model: its marker is "
                          '{"a": 0, "z": 3} but this run has {"a": 0, "z": 6}')
  assert int(checkpoints.restore_state(tmp_path, create_train_state(_config()),
                                       step=3)[0].step) == 3


def test_only_closed_event_loop_errors_are_quieted_and_the_hook_is_set_once(monkeypatch):
  seen = []
  monkeypatch.setattr(sys, "unraisablehook", seen.append)
  checkpoints._quiet_closed_loop_callbacks()
  hook = sys.unraisablehook
  assert hook is not seen.append and hook.quiets_closed_loop is True
  checkpoints._quiet_closed_loop_callbacks()
  assert sys.unraisablehook is hook  # not wrapped twice
  unraisable = lambda e: types.SimpleNamespace(exc_value=e)
  closed = unraisable(RuntimeError("Event loop is closed"))
  others = [unraisable(RuntimeError("event loop is closed")), unraisable(ValueError("x")),
            unraisable(ValueError("Event loop is closed"))]
  for item in [closed, *others]:
    hook(item)
  assert seen == others


def test_step_folders_are_numbered_folders_with_state_or_meta(tmp_path):
  for name, parts in [("3", ["state"]), ("4", ["meta"]), ("5", ["state", "meta"]),
                      ("x6", ["state"]), ("7", []), ("8", ["other"])]:
    for part in parts:
      (tmp_path / name / part).mkdir(parents=True)
    (tmp_path / name).mkdir(exist_ok=True)
  assert [n for n in ("3", "4", "5", "x6", "7", "8")
          if checkpoints.is_step_folder(tmp_path / n)] == ["3", "4", "5"]


def test_set_aside_newer_numbers_each_later_copy_and_says_how_to_delete_it(tmp_path, caplog):
  root = _save_run(tmp_path, steps=(3, 6))
  damaged = tmp_path.absolute() / "damaged_checkpoints"
  for copy in ("6", "6_2", "6_3"):
    _save_run(tmp_path, steps=(6,))  # step 6 saved again, then set aside again
    caplog.clear()
    with caplog.at_level(logging.WARNING), checkpoints.make_manager(root) as manager:
      assert checkpoints.set_aside_newer(manager, 3) == [damaged / copy]
    assert _warnings(caplog) == [f"resuming at step 3: moved the damaged {root.absolute() / '6'} "
                                 f"to {damaged / copy}; delete it with: rm -r '{damaged / copy}'"]
  assert sorted(p.name for p in damaged.iterdir()) == ["6", "6_2", "6_3"]


def test_reached_counts_the_last_step_itself_and_read_meta_reads_the_step_asked(tmp_path):
  config = _config()
  with checkpoints.make_manager(tmp_path / "checkpoints") as manager:
    for step in (3, 6):
      meta = {**loop.checkpoint_meta(config), "marker": f"saved at {step}"}
      checkpoints.save(manager, step, _state_at(config, step), meta)
  assert checkpoints.reached(tmp_path, 6) and not checkpoints.reached(tmp_path, 7)
  step, meta = checkpoints.read_meta(tmp_path, 3)
  assert (step, meta["marker"]) == (3, "saved at 3")
  step, meta = checkpoints.read_meta(tmp_path)
  assert (step, meta["marker"]) == (6, "saved at 6")
  with pytest.raises(CheckpointError) as e:
    checkpoints.read_meta(tmp_path, 5)
  root = (tmp_path / "checkpoints").absolute()
  assert str(e.value) == f"no checkpoint of step 5 in {root}; its steps: [3, 6]"


# --- which folder gem_jax.load reads --------------------------------------------------------


def test_load_reads_a_run_its_checkpoints_and_one_step_folder(tmp_path):
  root = _save_run(tmp_path)
  assert gem_jax.load(tmp_path).step == 6
  assert gem_jax.load(root).step == 6
  assert gem_jax.load(root / "3").step == 3
  assert gem_jax.load(str(root / "6")).step == 6
  with pytest.raises(CheckpointError, match="is the folder of step 3, but step=6 was asked"):
    gem_jax.load(root / "3", step=6)


def test_load_reads_a_pipeline_roots_gem_stage_else_its_warmup(tmp_path, caplog):
  pipeline = tmp_path / "demo"
  _save_run(pipeline / "warmup", steps=(4,))
  (pipeline / "scores").mkdir()
  (pipeline / "graph").mkdir()
  (pipeline / "gem" / "checkpoints").mkdir(parents=True)   # GEM started, nothing saved yet
  with caplog.at_level(logging.INFO):
    assert gem_jax.load(pipeline).step == 4
  assert (f"{pipeline.absolute()} is a GEM pipeline root: loading its warmup/ stage "
          "(no gem/ checkpoint yet)") in [r.getMessage() for r in caplog.records]
  _save_run(pipeline / "gem", steps=(3, 6))
  caplog.clear()
  with caplog.at_level(logging.INFO):
    assert gem_jax.load(pipeline).step == 6
  assert (f"{pipeline.absolute()} is a GEM pipeline root: loading its gem/ stage"
          in [r.getMessage() for r in caplog.records])


def test_load_reads_a_saved_pipeline_root():
  """A pipeline root written by an earlier commit (tests/fixtures/runs_191b7d6/gem)."""
  root = ROOT / "tests" / "fixtures" / "runs_191b7d6" / "gem"
  model = gem_jax.load(root)
  assert model.step == 3 and model.alignment is not None          # gem/, not warmup/
  assert gem_jax.load(root / "warmup" / "checkpoints" / "4").alignment is None


def test_load_names_what_it_looked_for(tmp_path):
  (tmp_path / "figures").mkdir()
  with pytest.raises(CheckpointError, match=(
      rf"no checkpoint found in {tmp_path.absolute()}: looked for a GEM pipeline root \(gem/ or "
      r"warmup/ run folders inside\), a run folder \(checkpoints/<step>/ inside\), a "
      r"checkpoints/ folder \(<step>/ folders inside\) or a step folder \(<step>/ holding state/ "
      r"and meta/\)")):
    gem_jax.load(tmp_path)
  with pytest.raises(CheckpointError, match="does not exist"):
    gem_jax.load(tmp_path / "missing")


# --- the loop's bookkeeping ---------------------------------------------------------------


def test_a_fresh_start_is_logged_as_info_not_as_a_resume_warning(tmp_path, caplog):
  config = _config()
  manager = checkpoints.make_manager(tmp_path / "checkpoints")
  state = create_train_state(config)
  with caplog.at_level(logging.INFO):
    assert loop._open_or_resume(config, tmp_path, True, state, manager) is state
  assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
      ("INFO", f"{tmp_path} holds no checkpoint yet: starting a fresh run at step 0")]


def test_truncate_metrics_drops_the_steps_a_resume_writes_again(tmp_path):
  path = tmp_path / "metrics.jsonl"
  lines = [json.dumps({"step": s, "loss": float(s)}) for s in (2, 4, 6, 8)]
  path.write_text("\n".join(lines) + '\n{"step": 1')   # cut short by a kill
  assert truncate_metrics(path, 4) == 3
  assert path.read_text() == lines[0] + "\n" + lines[1] + "\n"
  assert truncate_metrics(path, 4) == 0
  assert truncate_metrics(tmp_path / "missing.jsonl", 4) == 0
