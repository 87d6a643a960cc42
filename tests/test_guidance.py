"""MLLM-guided training: the guided term, the scored images it reads (and only those), the guide
batches and their held-out images, and the capacity schedule of the warm-up."""
import jax
import numpy as np
import pytest

from experiments.configs import synthetic_gem
from gem_jax import config_checks
from gem_jax.objectives.guidance import (
  Guidance,
  GuidanceDataError,
  guidance_loss,
  score_targets,
  target_to_score,
)
from gem_jax.train.guide_batches import GuideSet, holdout_split
from gem_jax.train.state import create_train_state, make_model
from gem_jax.train.step import StepConfig, make_pmapped_step, replicate

NAMES = ("bangs", "bald", "gender")
LATENTS = (2, 0, 3)


def _config(weight=10.0):
  config = synthetic_gem.get_config("tiny,beta_vae")
  config.model.latent_dim = 4
  config.gem.attributes = ",".join(NAMES)
  config.gem.guidance.weight = weight
  return config


def _images(n, seed):
  return np.random.default_rng(seed).integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)


def _guide_batch(seed, g=4, missing=()):
  rng = np.random.default_rng(seed)
  target = rng.normal(size=(g, len(NAMES))).astype(np.float32)
  mask = np.ones_like(target)
  for i, a in missing:
    mask[i, a] = 0.0
  return {"guide_image": _images(g, seed + 100)[None], "guide_target": target[None],
          "guide_mask": mask[None]}


_STEPS = {}


def _step_metrics(config, batch, latents=LATENTS):
  """Metrics of one guided step on one device from the same initial state (the compiled step
  is kept per guided latents: every test here uses the same config)."""
  devices = jax.local_devices()[:1]
  if latents not in _STEPS:
    cfg = StepConfig.from_config(config, latents)
    _STEPS[latents] = make_pmapped_step(config, devices, cfg)
  _, metrics = _STEPS[latents](replicate(create_train_state(config), devices), batch)
  return {k: np.asarray(v)[0] for k, v in metrics.items()}


def test_guidance_loss_is_the_masked_squared_error_summed_over_attributes():
  mu = np.array([[1.0, 2.0], [0.0, -1.0]], np.float32)
  target = np.array([[0.0, 0.0], [1.0, 1.0]], np.float32)
  mask = np.array([[1.0, 1.0], [1.0, 0.0]], np.float32)
  # image 0: 1 + 4; image 1: 1 (the missing answer adds nothing); mean over the 2 images.
  assert float(guidance_loss(mu, target, mask)) == pytest.approx(3.0)


def test_scores_map_onto_minus_two_to_two_and_missing_answers_are_masked():
  scores = np.array([[0, 5], [2, -1], [4, 1], [-1, 3]])
  targets, mask = score_targets(scores, ("a", "b"), max_score=5)
  np.testing.assert_array_equal(mask, [[1, 1], [1, 0], [1, 1], [0, 1]])
  np.testing.assert_allclose(targets, [[-2.0, 2.0], [-0.4, 0.0], [1.2, -1.2], [0.0, 0.4]],
                             rtol=1e-6)
  np.testing.assert_allclose(target_to_score(targets[mask > 0], 5), scores[mask > 0])


def test_scores_outside_the_scorers_range_are_refused():
  with pytest.raises(GuidanceDataError, match="must be -1 .missing. or 0..5; got values -1..7"):
    score_targets(np.array([[7, 1], [-1, 2]]), ("a", "b"), max_score=5)


@pytest.mark.parametrize("column, message", [([3, 3, 3, -1], "a: every valid score is 3"),
                                             ([-1, -1, 2, -1], "a: 1 valid answers")])
def test_scores_that_cannot_guide_are_a_clear_error(column, message):
  scores = np.stack([column, [0, 1, 2, 3]], axis=1)
  with pytest.raises(GuidanceDataError, match=message) as e:
    score_targets(scores, ("a", "b"), max_score=5)
  assert "config.gem.guidance.weight=0" in str(e.value)


def test_targets_and_mask_are_float32_at_the_ends_of_the_range():
  scores = np.array([[-1, 5], [0, 0], [5, -1], [2, 5]])
  targets, mask = score_targets(scores, ("a", "b"), max_score=5)
  assert targets.dtype == np.float32 and mask.dtype == np.float32
  np.testing.assert_array_equal(targets, np.float32([[0, 2], [-2, -2], [2, 0], [-0.4, 2]]))
  with pytest.raises(GuidanceDataError, match="got values -2..5"):
    score_targets(scores - (scores == -1), ("a", "b"), max_score=5)


def test_two_valid_answers_are_enough_and_the_whole_message_names_each_column():
  score_targets(np.array([[1, 0], [2, 1], [-1, 2]]), ("a", "b"), max_score=5)  # no error
  scores = np.array([[1, 4], [-1, 4], [-1, 4]])
  with pytest.raises(GuidanceDataError) as e:
    score_targets(scores, ("a", "b"), max_score=5)
  assert str(e.value) == (
      "the scores cannot guide these attributes: a: 1 valid answers; b: every valid score is "
      "4. Score more images (config.gem.num_scored_images), drop the attribute from "
      "config.gem.attributes, or train unguided (config.gem.guidance.weight=0).")


@pytest.mark.parametrize("shape", [(4,), (4, 3)])
def test_scores_of_the_wrong_shape_are_refused_with_the_expected_one(shape):
  with pytest.raises(GuidanceDataError) as e:
    score_targets(np.zeros(shape, int), ("a", "b"), max_score=5)
  assert str(e.value) == (f"scores must be [N, 2] (one column per attribute: a, b), got shape "
                          f"{list(shape)}")


def test_guidance_settings_are_checked_with_the_whole_message():
  Guidance(weight=0.0, latents=(0, 1))  # unguided: valid
  Guidance(weight=0.5, latents=(1, 0))
  with pytest.raises(ValueError) as e:
    Guidance(weight=-1.0, latents=(0, 1))
  assert str(e.value) == "config.gem.guidance.weight must be >= 0, got -1.0"
  with pytest.raises(ValueError) as e:
    Guidance(weight=1.0, latents=(2, 2))
  assert str(e.value) == "guided latents must be distinct, got (2, 2)"


def test_fewer_scored_images_than_attributes_is_a_clear_error():
  with pytest.raises(GuidanceDataError, match="2 scored images guide 3 attributes"):
    GuideSet.from_scores(_images(2, 0), np.zeros((2, 3), int), NAMES, LATENTS, 5)


def test_the_guided_term_reads_the_scored_images_only():
  config = _config()
  guide = _guide_batch(0)
  base = _step_metrics(config, {"image": _images(8, 1)[None], **guide})
  other_unscored = _step_metrics(config, {"image": _images(8, 2)[None], **guide})
  other_scored = _step_metrics(config, {"image": _images(8, 1)[None], **_guide_batch(5)})
  assert other_unscored["guide"] == base["guide"]        # the unscored batch never enters it
  assert other_unscored["recon"] != base["recon"]        # ... though it changed the step
  assert other_scored["guide"] != base["guide"]
  assert other_scored["recon"] == base["recon"]          # the scored batch enters only it
  assert base["loss"] == pytest.approx(base["recon"] + config.model.beta * base["kl"]
                                       + config.gem.guidance.weight * base["guide"], rel=1e-5)


def test_the_guided_term_is_computed_on_the_guided_latents_in_attribute_order():
  config = _config()
  guide = _guide_batch(0)
  batch = {"image": _images(8, 1)[None], **guide}
  state = create_train_state(config)
  mu, _ = make_model(config.model).apply(state.params["vae"], guide["guide_image"][0] / 255.0,
                                          method=make_model(config.model).encode)
  want = np.mean(np.sum(np.square(np.asarray(mu)[:, LATENTS] - guide["guide_target"][0]), 1))
  assert _step_metrics(config, batch)["guide"] == pytest.approx(want, rel=1e-5)
  assert _step_metrics(config, batch, latents=(0, 1, 2))["guide"] != pytest.approx(want,
                                                                                 rel=1e-3)


def test_a_missing_answer_does_not_reach_the_guided_term():
  config = _config()
  guide = _guide_batch(0, missing=[(1, 2)])
  changed = {k: v.copy() for k, v in guide.items()}
  changed["guide_target"][0, 1, 2] = 1e3  # the target of the missing answer
  image = {"image": _images(8, 1)[None]}
  assert (_step_metrics(config, {**image, **guide})["guide"]
          == _step_metrics(config, {**image, **changed})["guide"])


def test_a_guided_step_without_scored_images_is_a_clear_error():
  config = _config()
  with pytest.raises(ValueError, match="needs the step's scored images"):
    _step_metrics(config, {"image": _images(8, 1)[None]})


def test_holdout_split_is_disjoint_complete_and_seeded():
  guided, held = holdout_split(100, 0.2, seed=3)
  assert len(held) == 20 and len(guided) == 80
  assert sorted(np.concatenate([guided, held]).tolist()) == list(range(100))
  np.testing.assert_array_equal(held, holdout_split(100, 0.2, seed=3)[1])
  assert not np.array_equal(held, holdout_split(100, 0.2, seed=4)[1])
  assert len(holdout_split(100, 0.0, seed=3)[1]) == 0


def test_guide_batches_are_a_function_of_seed_and_step_drawn_from_the_guide_set():
  scores = np.random.default_rng(0).integers(0, 6, (40, 3))
  rows = np.arange(10, 40)
  guide = GuideSet.from_scores(_images(40, 0), scores, NAMES, LATENTS, 5, rows)
  assert len(guide) == 30 and guide.latents == LATENTS
  a, b = guide.batch(7, 8, 2, seed=1), guide.batch(7, 8, 2, seed=1)
  for key in a:
    np.testing.assert_array_equal(a[key], b[key])
  assert a["guide_image"].shape == (2, 4, 64, 64, 3)
  assert a["guide_target"].shape == a["guide_mask"].shape == (2, 4, 3)
  assert not np.array_equal(a["guide_image"], guide.batch(8, 8, 2, seed=1)["guide_image"])
  held_images = _images(40, 0)[:10].reshape(10, -1)
  drawn = a["guide_image"].reshape(8, -1)
  assert not any((drawn[:, None] == held_images[None]).all(-1).any(1))  # never a held-out one


def test_a_guide_batch_larger_than_the_guide_set_is_refused():
  guide = GuideSet.from_scores(_images(8, 0), np.arange(24).reshape(8, 3) % 6, NAMES, LATENTS,
                               5)
  with pytest.raises(ValueError, match="at most the 8 guided images"):
    guide.batch(1, 16, 2, seed=0)


def test_config_checks_bound_the_guide_batch_by_the_guided_images():
  config = synthetic_gem.get_config("tiny,gem")
  config.gem.guidance.weight = 1.0
  config.gem.num_scored_images = 64
  config.gem.guidance.batch_size = 60  # 64 scored, 13 held out: 51 guide
  problems = config_checks.config_problems(config, num_devices=2)
  assert any(p.startswith("config.gem.guidance.batch_size=60: must be an integer in 1..51")
             for p in problems)
  config.gem.guidance.stages = "warmup,stage4"
  assert any(p.startswith("config.gem.guidance.stages='warmup,stage4'")
             for p in config_checks.config_problems(config, num_devices=2))


def test_the_capacity_ramp_replaces_the_kl_by_its_distance_to_the_capacity():
  config = synthetic_gem.get_config("tiny,beta_vae")
  config.model.capacity_max, config.model.capacity_steps, config.model.beta = 20.0, 4, 3.0
  devices = jax.local_devices()[:1]
  step = make_pmapped_step(config, devices)
  rstate = replicate(create_train_state(config), devices)
  batch = {"image": _images(8, 1)[None]}
  for t in range(6):
    rstate, metrics = step(rstate, batch)
    m = {k: np.asarray(v)[0] for k, v in metrics.items()}
    capacity = 20.0 * min(1.0, t / 4)
    assert m["capacity"] == pytest.approx(capacity)
    assert m["loss"] == pytest.approx(m["recon"] + 3.0 * abs(m["kl"] - capacity), rel=1e-5)
