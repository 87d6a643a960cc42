"""The two-stage GEM pipeline end to end on synthetic_faces/tiny with the oracle scorer."""
import dataclasses
import json

import numpy as np
import pytest

from experiments.configs import synthetic_gem
from gem_jax import gem_pipeline
from gem_jax.relations import Alignment
from gem_jax.train import CheckpointError
from gem_jax.trained_model import TrainedModel

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
  for name in ("alignment.json", "somers_d.npy", "prior.npy", "prior.json", "a0.npy"):
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
  # Labels carry the final quality table (gem/alignment_quality.json): ρ, and '?'/'weak' for
  # an attribute below config.gem.min_alignment.
  quality = {r.attribute: r for r in model.alignment_quality().rows}
  saved = json.loads((workdir / "gem" / "alignment_quality.json").read_text())
  assert [r["attribute"] for r in saved["rows"]] == list(alignment.attribute_names)
  # Steerability on config.gem.steerability_images test images, read by the run's score reader.
  assert saved["steer_on"].startswith(f"score_reader[{config.gem.num_scored_images} scored "
                                      f"images], {config.gem.steerability_images} 'test' images")
  assert all(0 <= r["steerability"] <= 1 for r in saved["rows"])
  assert len(list((workdir / "score_reader").iterdir())) == 1
  labels = [f"z{k}: free" for k in range(model.latent_dim)]
  for name, k, sign in zip(alignment.attribute_names, alignment.latent_of_attribute,
                           alignment.signs, strict=True):
    r = quality[name]
    assert r.latent == k
    assert r.carried == (r.score_spearman >= config.gem.min_alignment and r.margin >= 0)
    mark, weak = ("", "") if r.carried else ("?", "weak ")
    runner = (f" < z{r.runner_up_latent} {r.runner_up_spearman:.2f}"
              if not r.carried and r.score_spearman >= config.gem.min_alignment else "")
    steer = "" if r.steerability is None else f" steer {r.steerability:.2f}"
    labels[k] = (f"z{k}: {name}{mark} ({'+' if sign > 0 else '-'}) "
                 f"{weak}ρ {r.score_spearman:.2f}{runner}{steer}")
  assert model.latent_labels() == labels
  assert sorted(alignment.latent_of_attribute) == list(range(6))  # 6 attributes on 6 latents
  np.testing.assert_array_equal(np.diag(model.adjacency), 1.0)


def test_restart_skips_finished_stages(gem_run, monkeypatch):
  config, workdir, _ = gem_run
  calls = []
  monkeypatch.setattr(gem_pipeline, "train_and_evaluate",
                      lambda *a, **k: calls.append(a) or None)
  monkeypatch.setattr(gem_pipeline, "run_scoring", lambda *a, **k: calls.append(a))
  gem_pipeline.run_gem(config, workdir)
  assert calls == []


def _with_graph(model, adjacency, alignment=None) -> TrainedModel:
  """`model`'s encoder and decoder with another graph A [d, d] (and alignment)."""
  return TrainedModel(model.module, model.params, adjacency,
                      alignment=model.alignment if alignment is None else alignment)


def _images(n=2, seed=0):
  """n different random images uint8 [n, 64, 64, 3]."""
  return np.random.default_rng(seed).integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)


def _max_diff(a, b) -> float:
  return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def test_traversal_propagates_through_the_graph(gem_run):
  """The learned A [6, 6] has a real edge k -> l (|A[k, l]| > 0.05). Setting latent k alone
  (z [2, 6]: 0, then 3 e_k) decodes through z_rel = A^T z: as the A = I decoder decodes z A,
  unlike that decoder on z itself or on z A^T, and unlike A without the edge k -> l."""
  _, _, model = gem_run
  a = np.asarray(model.adjacency)
  d = model.latent_dim
  off = np.abs(a - np.eye(d))
  k, l = np.unravel_index(np.argmax(off), a.shape)
  assert off[k, l] > 0.05, a
  z = np.zeros((2, d), np.float32)
  z[1, k] = 3.0
  through_a = model.decode(z)
  identity = _with_graph(model, np.eye(d, dtype=np.float32))
  np.testing.assert_allclose(through_a, identity.decode(z @ a), atol=1e-5)
  np.testing.assert_array_equal(through_a[0], identity.decode(z)[0])  # A^T 0 = 0
  assert _max_diff(through_a[1], identity.decode(z)[1]) > 1e-3
  if abs(a[k, l] - a[l, k]) > 0.05:
    assert _max_diff(through_a[1], identity.decode(z @ a.T)[1]) > 1e-3
  without = a.copy()
  without[k, l] = 0.0
  assert _max_diff(through_a[1], _with_graph(model, without).decode(z)[1]) > 1e-3


def test_edit_moves_the_aligned_latent_through_the_graph(gem_run):
  """edit(images [2, 64, 64, 3], attribute, +-2): +2, -2 and the reconstruction all differ;
  +2 equals a traversal of the latent the alignment names to mu_k + sign * 2; it differs from
  the same edit decoded with A = I; with the alignment's sign flipped, +2 is the old -2."""
  _, _, model = gem_run
  images = _images()
  alignment = model.alignment
  a = 1
  name, k = alignment.attribute_names[a], alignment.latent_of_attribute[a]
  sign = alignment.signs[a]
  plus, minus = model.edit(images, name, 2.0), model.edit(images, name, -2.0)
  recon = model.reconstruct(images)
  assert plus.shape == minus.shape == (2, 64, 64, 3)
  for x, y in ((plus, minus), (plus, recon), (minus, recon)):
    assert _max_diff(x, y) > 1e-3
  mu = model.encode(images)[0]
  for i in range(2):
    np.testing.assert_allclose(
        plus[i], model.traverse(images[i], k, [mu[i, k] + sign * 2.0])[0], atol=1e-6)
  identity = _with_graph(model, np.eye(model.latent_dim, dtype=np.float32))
  assert _max_diff(plus, identity.edit(images, name, 2.0)) > 1e-3
  signs = list(alignment.signs)
  signs[a] = -sign
  flipped = _with_graph(model, model.adjacency, dataclasses.replace(alignment, signs=signs))
  np.testing.assert_allclose(flipped.edit(images, name, 2.0), minus, atol=1e-6)
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
    ("gem.num_scored_images", 120, "scoring"), ("gem.scorer.accuracy", 0.5, "scoring"),
    ("model.beta", 1.0, "warm-up"), ("model.lambda_adv", 0.1, "GEM"),
    # A lazy R1 interval is a function of the step, whatever the checkpoint interval; another
    # interval is another stage 4 (a rerun with it is refused, nothing is overwritten).
    ("model.disc_r1_interval", 4, "GEM"), ("gem.guidance.weight", 3.0, "warm-up"),
    ("gem.guidance.stage4_weight", 3.0, "GEM")])
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
  failing = lambda *a: np.where(np.arange(128)[:, None] < 80, -1, real(*a))  # 48 of 128 valid
  monkeypatch.setattr(gem_pipeline, "run_scoring", failing)
  monkeypatch.setattr(gem_pipeline, "run_warmup", lambda *a: None)
  with pytest.raises(gem_pipeline.ScoringIncompleteError,
                     match=r"48 of 128 images \(37.5%\) .*min_valid_fraction=0.9"):
    gem_pipeline.run_shared_stages(config, tmp_path)
  record = json.loads((tmp_path / "scores" / "stage.json").read_text())
  assert (record["complete"], record["valid_images"]) == (False, 48)
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
