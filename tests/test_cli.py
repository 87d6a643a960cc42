"""experiments.cli.run_experiment: the config and the preflight are checked before anything is
written; errors a user can fix are one line `error: ...` (exit status 1), the traceback only
with --verbose; --dry_run stops after the checks."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from scorer_helpers import fake_env
from test_config_checks import CASES
from test_preflight import NO_OPENAI_KEY, folder_config, tiny

from experiments import cli
from gem_jax.config_checks import ConfigError
from gem_jax.data import DataNotFoundError
from gem_jax.data.celeba import CelebaFormatError
from gem_jax.data.image_decode import UnreadableImageError
from gem_jax.objectives.guidance import GuidanceDataError
from gem_jax.relations import WeakAlignmentError
from gem_jax.scorers import MissingScoreError, ScorerAuthError, ScorerRequestError
from gem_jax.train import CheckpointError, NonFiniteLossError, RunExistsError

ROOT = Path(__file__).parent.parent


def exit_message(config, workdir, **kwargs) -> str:
  """The SystemExit message of run_experiment (it must exit)."""
  with pytest.raises(SystemExit) as info:
    cli.run_experiment(config, str(workdir), resume=False, **kwargs)
  return info.value.code


@pytest.mark.parametrize("overrides,message", CASES, ids=[m.split(":")[0] for _, m in CASES])
def test_a_bad_value_exits_in_one_line_before_the_workdir_is_made(tmp_path, overrides,
                                                                   message):
  workdir = tmp_path / "run"
  assert exit_message(tiny(tmp_path, **overrides), workdir) == f"error: {message}"
  assert not workdir.exists()


def test_a_small_image_folder_exits_before_preparation(tmp_path):
  config = folder_config(tmp_path, 16, gem__num_scored_images=15, gem__prior="somers_d")
  assert exit_message(config, tmp_path / "run") == (
      "error: config.data.eval_split='test': must hold >= 8 images (the sample grids'); it "
      f"holds 1 (image folder {config.data.image_dir}, 16 files)")
  assert not (tmp_path / "run").exists() and not (tmp_path / "tfds").exists()


def test_gem_with_openai_and_no_key_stops_before_the_warmup(tmp_path, monkeypatch):
  fake_env(monkeypatch)
  monkeypatch.delenv("OPENAI_API_KEY")
  config = tiny(tmp_path, gem__scorer__backend="openai")
  assert exit_message(config, tmp_path / "run") == f"error: {NO_OPENAI_KEY}"
  assert not (tmp_path / "run" / "warmup").exists() and not (tmp_path / "run").exists()


def test_verbose_raises_the_error_itself(tmp_path):
  with pytest.raises(ConfigError, match="^config.train.num_steps=0: must be an integer >= 1$"):
    cli.run_experiment(tiny(tmp_path, train__num_steps=0), str(tmp_path / "run"),
                       resume=False, verbose=True)


def test_a_dry_run_prints_the_checks_and_writes_nothing(tmp_path, capsys):
  cli.run_experiment(tiny(tmp_path), str(tmp_path / "run"), resume=False, dry_run=True)
  assert capsys.readouterr().out.splitlines() == [
      "dry run: the config is valid; nothing was trained, sent or written",
      "run: GEM (gem): warm-up 4 steps at batch 8, 128 images scored by oracle, then 6 steps at "
      "batch 8",
      "data: train 512, test 128 images (synthetic_faces/tiny)",
      "scorer: oracle (an offline SIMULATION; no network)"]
  assert not (tmp_path / "run").exists() and not (tmp_path / "tfds").exists()


DOMAIN = [
    UnreadableImageError("1 unreadable image(s) under /data:\n  a.png (truncated)"),
    CelebaFormatError("/celeba/list_attr_celeba.txt:4: expected a file name and 40 integers"),
    DataNotFoundError("no images under /data"),
    CheckpointError("checkpoint directory /x does not exist"),
    RunExistsError("/x already holds checkpoints"),
    NonFiniteLossError("the loss became non-finite at step 5"),
    ScorerAuthError("openai scorer: HTTP 401"),
    ScorerRequestError("openai:gpt-4o: giving up"),
    MissingScoreError("replay scorer: no score for image 0a1b"),
    WeakAlignmentError("no latent carries 1 of 6 attributes well enough: gender (z2: +0.06)"),
    GuidanceDataError("the scores cannot guide these attributes: bald: every valid score is 0"),
]


@pytest.mark.parametrize("error", DOMAIN, ids=[type(e).__name__ for e in DOMAIN])
def test_domain_errors_while_training_are_one_line(tmp_path, monkeypatch, error):
  def fail(*args, **kwargs):
    raise error

  monkeypatch.setattr(cli, "train_and_evaluate", fail)
  monkeypatch.setattr(cli, "run_gem", fail)
  for tokens in ("tiny,beta_vae", "tiny"):
    assert exit_message(tiny(tmp_path, tokens), tmp_path / "run") == f"error: {error}"


def test_other_errors_keep_their_traceback(tmp_path, monkeypatch):
  def fail(*args, **kwargs):
    raise RuntimeError("a bug")

  monkeypatch.setattr(cli, "train_and_evaluate", fail)
  with pytest.raises(RuntimeError, match="a bug"):
    cli.run_experiment(tiny(tmp_path, "tiny,beta_vae"), str(tmp_path / "run"), resume=False)


@pytest.mark.slow
def test_the_entry_point_prints_one_line_and_verbose_the_traceback(tmp_path):
  args = [sys.executable, "-m", "experiments.synthetic_gem",
          "--config=experiments/configs/synthetic_gem.py:tiny,beta_vae",
          "--config.train.batch_size=7", f"--workdir={tmp_path / 'run'}"]
  env = dict(os.environ, PYTHONPATH=str(ROOT))
  out = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert out.returncode == 1
  assert out.stderr.splitlines()[-1] == ("error: config.train.batch_size=7: must be a positive "
                                         "integer divisible by the device count (2)")
  assert "Traceback" not in out.stderr
  out = subprocess.run(args + ["--verbose"], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=300)
  assert out.returncode == 1
  assert "Traceback" in out.stderr and "gem_jax.config_checks.ConfigError: " in out.stderr
  assert not (tmp_path / "run").exists()
