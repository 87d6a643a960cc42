"""The two-stage GEM pipeline end to end on synthetic_faces/tiny with the oracle scorer."""
import json

import numpy as np
import pytest

from experiments.configs import synthetic_gem
from gem_jax import gem_pipeline
from gem_jax.models import relate
from gem_jax.relations import Alignment
from gem_jax.train import CheckpointError

pytestmark = pytest.mark.slow  # the whole tiny GEM pipeline


@pytest.fixture(scope="module")
def gem_run(tmp_path_factory, tfds_dir):
  config = synthetic_gem.get_config("tiny,gem")
  config.data.data_dir = tfds_dir
  workdir = tmp_path_factory.mktemp("gem")
  model = gem_pipeline.run_gem(config, workdir)
  return config, workdir, model


def test_every_stage_leaves_its_outputs(gem_run):
  config, workdir, model = gem_run
  assert model.step == config.train.num_steps
  assert (workdir / "warmup" / "checkpoints" / str(config.gem.warmup_steps)).is_dir()
  scores = np.load(workdir / "scores" / "scores.npy")
  assert scores.shape == (config.gem.num_scored_images, 6)
  assert json.loads((workdir / "scores" / "scores.json").read_text())["is_simulation"] is True
  for name in ("alignment.json", "somers_d.npy", "a0.npy"):
    assert (workdir / "graph" / name).exists()
  assert (workdir / "figures" / "traversals.png").exists()
  assert (workdir / "figures" / "graphs.png").exists()


def test_gem_checkpoint_carries_alignment_and_a0(gem_run):
  config, workdir, model = gem_run
  alignment = Alignment.from_json((workdir / "graph" / "alignment.json").read_text())
  assert model.alignment == alignment
  a0 = np.load(workdir / "graph" / "a0.npy")
  np.testing.assert_array_equal(model.graph_state["a0"], a0)
  assert model.meta["scorer"]["is_simulation"] is True
  assert sorted(model.latent_labels())[0].startswith("z")
  np.testing.assert_array_equal(np.diag(model.adjacency), 1.0)


def test_restart_skips_finished_stages(gem_run, monkeypatch):
  config, workdir, _ = gem_run
  calls = []
  monkeypatch.setattr(gem_pipeline, "train_and_evaluate",
                      lambda *a, **k: calls.append(a) or None)
  monkeypatch.setattr(gem_pipeline, "run_scoring", lambda *a, **k: calls.append(a))
  gem_pipeline.run_gem(config, workdir)
  assert calls == []


def test_traversal_propagates_through_the_graph(gem_run):
  _, _, model = gem_run
  a = np.asarray(model.adjacency)
  k, l = np.unravel_index(np.argmax(np.abs(a - np.eye(len(a)))), a.shape)
  z = np.zeros((2, model.latent_dim), np.float32)
  z[1, k] = 1.0
  # Moving latent k moves z_rel[l] by A[k, l]: the decoder sees the graph's effect.
  z_rel = np.asarray(relate(z, model.adjacency))
  np.testing.assert_allclose(z_rel[1, l] - z_rel[0, l], a[k, l], atol=1e-6)


def test_edit_moves_the_aligned_latent_through_the_graph(gem_run):
  _, _, model = gem_run
  images = np.zeros((2, 64, 64, 3), np.uint8)
  name = model.alignment.attribute_names[1]
  k, sign = model.latent_of(name)
  edited = model.edit(images, name, 2.0)
  mu = model.encode(images)[0]
  mu[:, k] += sign * 2.0
  np.testing.assert_allclose(edited, model.decode(mu), atol=1e-6)
  assert edited.shape == (2, 64, 64, 3)
  with pytest.raises(ValueError, match="unknown attribute 'wings'; this model's attributes"):
    model.edit(images, "wings", 1.0)


def test_warmup_beta_sets_only_the_warmup():
  config = synthetic_gem.get_config("tiny,gem")
  assert config.gem.warmup_beta is None
  assert gem_pipeline.warmup_config(config).model.beta == config.model.beta
  config.gem.warmup_beta = 0.5
  warm = gem_pipeline.warmup_config(config)
  assert warm.model.beta == 0.5 and config.model.beta == 4.0
  assert (warm.model.graph_learner, warm.model.adversarial) == (False, False)
  assert synthetic_gem.get_config("cpu30").gem.warmup_beta == 0.5


def test_each_stage_records_what_produced_it(gem_run):
  config, workdir, _ = gem_run
  for stage, name in (("warmup", "warm-up"), ("scores", "scoring"), ("graph", "alignment"),
                      ("gem", "GEM")):
    record = json.loads((workdir / stage / "stage.json").read_text())
    assert (record["stage"], record["complete"]) == (name, True)
  scoring = json.loads((workdir / "scores" / "stage.json").read_text())
  assert scoring["config"]["gem.num_scored_images"] == config.gem.num_scored_images
  assert scoring["valid_images"] == config.gem.num_scored_images
  assert not (workdir / ".run.lock").exists()


@pytest.mark.parametrize("key, value, stage", [
    ("gem.num_scored_images", 32, "scoring"), ("gem.scorer.accuracy", 0.5, "scoring"),
    ("model.beta", 1.0, "warm-up"), ("model.lambda_adv", 0.1, "GEM")])
def test_a_finished_run_refuses_other_settings_naming_the_key(gem_run, key, value, stage):
  config, workdir, _ = gem_run
  other = config.copy_and_resolve_references()
  section, _, name = key.rpartition(".")
  node = other
  for part in section.split("."):
    node = node[part]
  node[name] = value
  with pytest.raises(gem_pipeline.StageMismatchError,
                     match=rf"the {stage} stage in .* other settings.*\n  config {key}: "):
    gem_pipeline.run_gem(other, workdir)
  assert not (workdir / ".run.lock").exists()


def test_scoring_with_too_few_valid_answers_fails_and_is_redone(tfds_dir, tmp_path,
                                                                 monkeypatch):
  config = synthetic_gem.get_config("tiny,gem")
  config.data.data_dir = tfds_dir
  real = gem_pipeline.run_scoring
  failing = lambda *a: np.where(np.arange(64)[:, None] < 40, -1, real(*a))  # 24 of 64 valid
  monkeypatch.setattr(gem_pipeline, "run_scoring", failing)
  monkeypatch.setattr(gem_pipeline, "run_warmup", lambda *a: None)
  with pytest.raises(gem_pipeline.ScoringIncompleteError,
                     match=r"24 of 64 images \(37.5%\) .*min_valid_fraction=0.9"):
    gem_pipeline.run_shared_stages(config, tmp_path)
  record = json.loads((tmp_path / "scores" / "stage.json").read_text())
  assert (record["complete"], record["valid_images"]) == (False, 24)
  calls = []
  monkeypatch.setattr(gem_pipeline, "run_scoring", lambda *a: calls.append(1) or real(*a))
  with pytest.raises(CheckpointError):  # scoring is redone; the skipped warm-up is missing
    gem_pipeline.run_shared_stages(config, tmp_path)
  assert calls == [1]
  assert json.loads((tmp_path / "scores" / "stage.json").read_text())["complete"] is True


def test_incomplete_scoring_is_redone_with_new_settings_complete_is_refused(tfds_dir, tmp_path,
                                                                              monkeypatch):
  config = synthetic_gem.get_config("tiny,gem")
  config.data.data_dir = tfds_dir
  real = gem_pipeline.run_scoring
  monkeypatch.setattr(gem_pipeline, "run_warmup", lambda *a: None)
  monkeypatch.setattr(gem_pipeline, "run_scoring", lambda *a: np.full((64, 6), -1, np.int32))
  with pytest.raises(gem_pipeline.ScoringIncompleteError, match="0 of 64 images"):
    gem_pipeline.run_shared_stages(config, tmp_path)
  config.gem.scorer.accuracy = 0.5  # e.g. a local server's new port: the stage is redone
  monkeypatch.setattr(gem_pipeline, "run_scoring", real)
  with pytest.raises(CheckpointError):  # scoring redone; the skipped warm-up is then missing
    gem_pipeline.run_shared_stages(config, tmp_path)
  saved = json.loads((tmp_path / "scores" / "stage.json").read_text())
  assert (saved["complete"], saved["config"]["gem.scorer.accuracy"]) == (True, 0.5)
  config.gem.scorer.accuracy = 0.7  # a complete stage is never silently redone
  with pytest.raises(gem_pipeline.StageMismatchError, match="gem.scorer.accuracy: 0.5 -> 0.7"):
    gem_pipeline.run_shared_stages(config, tmp_path)
