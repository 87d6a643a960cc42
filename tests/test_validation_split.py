"""The validation split (gem_jax/data/validation.py): the last images of the training split,
never the scored ones; settings are chosen on it, the test split reports."""
import hashlib

import numpy as np
import pytest

from experiments.configs import synthetic_gem
from gem_jax import gem_pipeline
from gem_jax.data import VALIDATION, DataConfigError, load_examples, validation_rows
from gem_jax.data.pipeline import split_size
from gem_jax.pipeline_settings import STAGE4_IGNORED, truth_split


@pytest.fixture()
def config(tfds_dir):
  c = synthetic_gem.get_config("tiny,gem")
  c.data.data_dir = tfds_dir
  return c


def _hashes(images):
  return {hashlib.sha256(im.tobytes()).hexdigest() for im in images}


def test_validation_is_the_end_of_the_training_split_and_never_the_scored_images(config):
  train = load_examples(config.data, "train")["image"]
  validation = load_examples(config.data, VALIDATION)["image"]
  scored = load_examples(config.data, config.data.split, config.gem.num_scored_images)["image"]
  rows = validation_rows(config.data, config.gem.num_scored_images)
  assert len(validation) == config.data.validation_images == split_size(config.data, VALIDATION)
  assert rows == range(len(train) - config.data.validation_images, len(train))
  np.testing.assert_array_equal(validation, train[rows.start:])
  assert set(rows).isdisjoint(range(config.gem.num_scored_images))
  assert _hashes(validation).isdisjoint(_hashes(scored))  # not a single image in common
  first = load_examples(config.data, VALIDATION, 5)["image"]
  np.testing.assert_array_equal(first, validation[:5])


def test_a_validation_split_that_would_reach_the_scored_images_is_an_error(config):
  with pytest.raises(DataConfigError, match="would overlap the 400 scored images"):
    validation_rows(config.data, 400)  # 400 + 128 > 512
  config.data.validation_images = 512
  with pytest.raises(DataConfigError, match="must be in 1..511"):
    load_examples(config.data, VALIDATION, 4)


def test_the_truth_check_reads_the_configured_split_and_checks_the_overlap(config):
  assert truth_split(config) == "test"  # unset: the reporting split
  config.gem.truth_split = VALIDATION
  assert truth_split(config) == VALIDATION
  images = gem_pipeline._truth_images(config, 10)["image"]
  np.testing.assert_array_equal(images, load_examples(config.data, VALIDATION, 10)["image"])
  config.gem.num_scored_images = 400
  with pytest.raises(DataConfigError, match="overlap"):
    gem_pipeline._truth_images(config, 10)


def test_setting_validation_aside_does_not_change_what_stage_4_computes():
  assert "data.validation_images" in STAGE4_IGNORED
