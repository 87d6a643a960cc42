"""Runs saved by the code before the layout change (commit 191b7d6) load and resume.

tests/fixtures/runs_191b7d6/ holds tiny runs written by that commit with `make_runs.py` (beside
them): a GEM pipeline stopped after GEM step 3 (warm-up, scores, graph and the step-3 GEM
checkpoint) and the three baselines stopped at step 3. `final_step6.json` is what the same
commit reached at step 6 (per-leaf sums of params, discriminator and graph);
`final_step6_moments.json` adds per leaf the sum of squares and the ramp sum
sum_i v_i (i + 1) / n of the flattened leaf (`make_moments.py`, the same runs again from that
commit), which a transposed, permuted or rescaled leaf does not keep. Resuming with today's code
must reach the same numbers.
"""
import json
import shutil
from pathlib import Path

import jax
import ml_collections
import numpy as np
import pytest

import gem_jax
from experiments.configs import synthetic_gem
from gem_jax import gem_pipeline
from gem_jax.data import load_examples
from gem_jax.gem_pipeline import run_gem
from gem_jax.train import checkpoints, train_and_evaluate

FIXTURE = Path(__file__).parent / "fixtures" / "runs_191b7d6"
BASELINES = ("dear", "factor_vae", "beta_tcvae")


def _leaf_stats(tree, fn) -> dict:
  """{leaf path: fn(leaf as float64 [n], flattened)}."""
  return {jax.tree_util.keystr(k): fn(np.asarray(v, np.float64).ravel())
          for k, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


STATS = {
    "sum": lambda v: float(v.sum()),
    "sum_sq": lambda v: float(np.sum(v * v)),
    "ramp": lambda v: float(np.sum(v * (np.arange(v.size) + 1.0) / v.size)),
}


def _assert_matches_old_commit(token: str, checkpoint_dir: Path) -> None:
  """The step-6 state in checkpoint_dir matches the old commit's per leaf: sum (rel 1e-4, abs
  1e-4), sum of squares and ramp sum (rel 1e-4, abs 1e-6)."""
  sums = json.loads((FIXTURE / "final_step6.json").read_text())[token]
  moments = json.loads((FIXTURE / "final_step6_moments.json").read_text())[token]
  state, _ = checkpoints.restore_raw(checkpoint_dir)
  assert int(state["step"]) == sums["step"] == 6
  for part in ("params", "disc_params", "graph"):
    wants = {"sum": sums[part], **moments[part]}
    for stat, want in wants.items():
      got = _leaf_stats(state[part], STATS[stat])
      assert sorted(got) == sorted(want), (part, stat)
      atol = 1e-4 if stat == "sum" else 1e-6
      for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-4, abs=atol), (part, stat, key)


def _config(token: str, tfds_dir: str):
  """The run config of `token` as the old commit wrote it: its 'gem' was today's
  'gem_paper' (the paper's objective) under the name 'gem', trained unguided."""
  config = synthetic_gem.get_config(f"tiny,{'gem_paper' if token == 'gem' else token}")
  if token == "gem":
    config.model.name = "gem"
    config.gem.guidance.weight = 0.0
  config.gem.num_scored_images = 64   # the old commit's tiny preset
  config.data.data_dir = tfds_dir
  return config


@pytest.fixture()
def saved(tmp_path):
  shutil.copytree(FIXTURE, tmp_path / "runs")
  return tmp_path / "runs"


@pytest.mark.slow
def test_old_gem_pipeline_resumes_to_the_old_commits_weights(saved, tfds_dir):
  model = run_gem(_config("gem", tfds_dir), saved / "gem")
  assert model.step == 6
  assert model.alignment is not None
  _assert_matches_old_commit("gem", saved / "gem" / "gem")


@pytest.mark.slow
@pytest.mark.parametrize("token", BASELINES)
def test_old_baseline_runs_resume_to_the_old_commits_weights(saved, tfds_dir, token):
  train_and_evaluate(_config(token, tfds_dir), saved / token, resume=True)
  _assert_matches_old_commit(token, saved / token)


@pytest.mark.parametrize("run", ["gem/gem", "gem/warmup", *BASELINES])
def test_old_runs_load_for_sampling(run):
  model = gem_jax.load(str(FIXTURE / run))
  images = model.sample(2, seed=0)
  assert images.shape == (2, 64, 64, 3)
  assert np.isfinite(images).all()
  assert (model.scm_weights is not None) == (run == "dear")
  assert (model.alignment is not None) == (run == "gem/gem")


def test_configs_saved_before_a_key_existed_are_upgraded():
  old = json.loads((FIXTURE / "dear" / "config.json").read_text())
  for section, key in (("model", "objective"), ("model", "disc_r1_gamma"),
                       ("model", "disc_r1_stride"), ("train", "disc_adam_b1"),
                       ("data", "label_key")):
    del old[section][key]
  config = checkpoints.upgrade_config(old)
  assert isinstance(config, ml_collections.ConfigDict)
  assert config.model.objective == "beta_vae"
  assert (config.model.disc_r1_gamma, config.model.disc_r1_stride) == (0.0, 1)
  assert config.train.disc_adam_b1 is None and config.data.label_key is None
  assert config.train.disc_adam_b2 == old["train"]["disc_adam_b2"]  # present keys are kept


def test_scoring_stage_gives_the_old_commits_scores(tfds_dir, tmp_path):
  config = _config("gem", tfds_dir)
  examples = load_examples(config.data, config.data.split, config.gem.num_scored_images)
  scores = gem_pipeline.run_scoring(config, tmp_path / "scores", examples)
  old = np.load(FIXTURE / "gem" / "scores" / "scores.npy")
  np.testing.assert_array_equal(scores, old)
  old_meta = json.loads((FIXTURE / "gem" / "scores" / "scores.json").read_text())
  new_meta = json.loads((tmp_path / "scores" / "scores.json").read_text())
  for key in old_meta:  # the old pipeline's schema is a subset of the one schema
    assert new_meta[key] == old_meta[key], key
