"""validate_config: every value a run reads is checked before any work, all problems at once,
one line each naming the key, its value and the valid range."""
import json
from pathlib import Path

import ml_collections
import pytest

from experiments.configs import celeba_gem, labelled_gem, lsun_gem, synthetic_gem
from gem_jax.config_checks import ConfigError, config_problems, is_two_stage, validate_config

FIXTURE = Path(__file__).parent / "fixtures" / "runs_191b7d6"
BATCH = "must be a positive integer divisible by the device count (2)"


def make_config(tokens="tiny", module=synthetic_gem, **overrides):
  """A config with dotted overrides: make_config(train__batch_size=7)."""
  config = module.get_config(tokens)
  for dotted, value in overrides.items():
    *path, key = dotted.split("__")
    node = config
    for part in path:
      node = node[part]
    node[key] = value
  return config


# The user's report (a), then the rest of the ranges.
CASES = [
    (dict(train__batch_size=0), f"config.train.batch_size=0: {BATCH}"),
    (dict(train__batch_size=-8), f"config.train.batch_size=-8: {BATCH}"),
    (dict(train__batch_size=7), f"config.train.batch_size=7: {BATCH}"),
    (dict(gem__warmup_batch_size=7), f"config.gem.warmup_batch_size=7: {BATCH}"),
    (dict(model__latent_dim=0), "config.model.latent_dim=0: must be an integer >= 1"),
    (dict(train__learning_rate=-1.0),
     "config.train.learning_rate=-1.0: must be a finite number > 0"),
    (dict(train__learning_rate=float("nan")),
     "config.train.learning_rate=nan: must be a finite number > 0"),
    (dict(gem__warmup_learning_rate=0.0),
     "config.gem.warmup_learning_rate=0.0: must be a finite number > 0"),
    (dict(train__num_steps=0), "config.train.num_steps=0: must be an integer >= 1"),
    (dict(gem__warmup_steps=0), "config.gem.warmup_steps=0: must be an integer >= 1"),
    (dict(train__checkpoint_every=0),
     "config.train.checkpoint_every=0: must be an integer >= 1"),
    (dict(train__log_every=-1), "config.train.log_every=-1: must be an integer >= 1"),
    (dict(train__sample_every=0), "config.train.sample_every=0: must be an integer >= 1"),
    (dict(model__beta=-0.5), "config.model.beta=-0.5: must be a finite number >= 0"),
    (dict(model__lambda_adv=-1.0), "config.model.lambda_adv=-1.0: must be a finite number >= 0"),
    (dict(model__disc_r1_gamma=-1.0),
     "config.model.disc_r1_gamma=-1.0: must be a finite number >= 0"),
    (dict(model__disc_r1_stride=3),
     "config.model.disc_r1_stride=3: must divide each device's share of "
     "config.train.batch_size (8 / 2 devices = 4 images), or config.model.disc_r1_gamma=0"),
    (dict(model__image_size=48), "config.model.image_size=48: must be a power of two >= 8 "
     "(e.g. 64)"),
    (dict(gem__scorer__accuracy=1.5), "config.gem.scorer.accuracy=1.5: must be a number in "
     "[0, 1]"),
    (dict(gem__num_scored_images=1, gem__prior="somers_d"),
     "config.gem.num_scored_images=1: must be an integer >= 2"),
    (dict(gem__scorer__concurrency=0),
     "config.gem.scorer.concurrency=0: must be an integer >= 1"),
    (dict(model__likelihood="poisson"),
     "config.model.likelihood='poisson': must be one of 'bernoulli', 'gaussian'"),
    (dict(model__upsample="bilinear"), "config.model.upsample='bilinear': must be one of "
     "'subpixel', 'resize_conv', 'conv_transpose'"),
    (dict(model__adv_scale="image"),
     "config.model.adv_scale='image': must be one of 'batch', 'pixel'"),
    (dict(gem__scorer__backend="claude"), "config.gem.scorer.backend='claude': must be one of "
     "'openai', 'gemini', 'oracle', 'replay'"),
    (dict(gem__prior="pc", gem__num_scored_images=64),
     "config.gem.prior='pc': needs at least 100 fully answered scored images, more than "
     "config.gem.num_scored_images=64; or use 'somers_d'"),
    (dict(gem__prior="fci"), "config.gem.prior='fci': must be one of 'somers_d', 'pc', 'ges', "
     "'direct_lingam'"),
    (dict(model__latent_dim=4), "config.model.latent_dim=4: must be >= the 6 attributes of "
     "config.gem.attributes (GEM aligns one latent per attribute)"),
    (dict(gem__scorer__model="gpt-4o"), "config.gem.scorer.model='gpt-4o': must be unset for "
     "the oracle, which names itself from config.gem.scorer.accuracy"),
    (dict(train__num_devices=3),
     "config.train.num_devices=3: must be at most the 2 local devices (0: all of them)"),
]


@pytest.mark.parametrize("overrides,message", CASES, ids=[m.split(":")[0] for _, m in CASES])
def test_each_bad_value_is_one_line_naming_key_value_and_range(overrides, message):
  with pytest.raises(ConfigError) as info:
    validate_config(make_config(**overrides))
  assert str(info.value) == message
  assert info.value.problems == [message]


def test_all_problems_are_reported_together_one_line_each():
  config = make_config(train__batch_size=7, model__latent_dim=0, train__learning_rate=-1.0)
  with pytest.raises(ConfigError) as info:
    validate_config(config)
  assert str(info.value) == (
      "3 problems with the config:\n"
      "  config.model.latent_dim=0: must be an integer >= 1\n"
      "  config.train.learning_rate=-1.0: must be a finite number > 0\n"
      f"  config.train.batch_size=7: {BATCH}")


def test_the_device_count_can_be_given():
  config = make_config("tiny,beta_vae", train__batch_size=6)
  assert config_problems(config, num_devices=3) == []
  assert config_problems(make_config("tiny,beta_vae"), num_devices=3) == [
      "config.train.batch_size=8: must be a positive integer divisible by the device count (3)"]


def test_objective_checks_of_their_own_are_reported():
  config = make_config("tiny,dear", model__latent_dim=4)
  assert config_problems(config) == [
      "config.model.objective='dear': dear_num_factors=6 must be in 1..latent_dim=4"]


def test_r1_stride_is_checked_only_with_a_discriminator_and_r1_on():
  assert config_problems(make_config("tiny,beta_vae", model__disc_r1_stride=3)) == []
  assert config_problems(make_config(model__disc_r1_stride=3, model__disc_r1_gamma=0.0)) == []


def test_gem_keys_are_checked_only_for_the_two_stage_pipeline():
  config = make_config("tiny,beta_vae", gem__warmup_batch_size=7, gem__num_scored_images=0)
  assert not is_two_stage(config)
  assert config_problems(config) == []
  assert is_two_stage(make_config("tiny"))


def test_replay_needs_its_file():
  assert config_problems(make_config(gem__scorer__backend="replay")) == [
      "config.gem.scorer.replay_path=None: must name a score cache (.jsonl) or an .npz of "
      "scores for the replay backend"]


SYNTHETIC_TOKENS = ("", "demo", "cpu30", "tiny", "tiny,gem_single", "tiny,gem_scm",
                    "tiny,gem_relcon", "tiny,adv_pixel", *synthetic_gem.METHOD_TOKENS.values())


@pytest.mark.parametrize("module,tokens", [
    *[(synthetic_gem, t) for t in SYNTHETIC_TOKENS],
    (celeba_gem, ""), (celeba_gem, "oracle"), (celeba_gem, "dear"), (lsun_gem, ""),
    (labelled_gem, ""), (labelled_gem, "oracle"), (labelled_gem, "dear")])
@pytest.mark.parametrize("devices", [1, 2])
def test_the_shipped_configs_are_valid(module, tokens, devices):
  assert config_problems(module.get_config(tokens), num_devices=devices) == []


def test_configs_saved_before_newer_keys_are_tolerated():
  for path in sorted(FIXTURE.glob("**/config.json")):
    config = ml_collections.ConfigDict(json.loads(path.read_text()))
    assert "adv_scale" not in config.model
    assert config_problems(config) == [], path
