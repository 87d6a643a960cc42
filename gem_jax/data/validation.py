"""The validation split: images to choose settings on, so that the test images only report.

CelebA has an official validation partition (a tfds split of its own). synthetic_faces, the
pendulum and image folders have train and test only; for them 'validation' is the LAST
`config.data.validation_images` images of the training split (config.data.split). GEM scores
and guides the FIRST config.gem.num_scored_images images of that split, so the two never meet
as long as num_scored_images + validation_images <= its size (`validation_rows` checks it when
given the scored count; tests/test_validation_split.py asserts it). The unsupervised terms of
training do see these images, as they see the whole training split: they are held out from the
scores and the guidance, not from the reconstruction loss (docs/decisions.md, "Settings chosen
on validation images").

    load_examples(config.data, "validation", 500)   # the first 500 validation images
    split_size(config.data, "validation")           # validation_images
"""
from __future__ import annotations

from gem_jax.data.errors import DataConfigError
from gem_jax.data.registry import get_builder

VALIDATION = "validation"
DEFAULT_VALIDATION_IMAGES = 1_000  # config.data.validation_images when the config lacks it


def has_own_validation(data_config) -> bool:
  """Whether the data set has a 'validation' split of its own (CelebA's partition)."""
  return VALIDATION in get_builder(data_config).info.splits


def validation_rows(data_config, num_scored: int = 0) -> range:
  """Rows of config.data.split that form the carved validation split: its last
  config.data.validation_images rows.

  Raises:
    DataConfigError: the data set has its own validation split (nothing is carved), the
      training split is too small for them, or they would overlap the first `num_scored` rows
      (the scored images).
  """
  if has_own_validation(data_config):
    raise DataConfigError(f"data set {data_config.name!r} has its own {VALIDATION!r} split; "
                          "no rows of the training split are carved for it")
  size = int(get_builder(data_config).info.splits[data_config.split].num_examples)
  count = int(data_config.get("validation_images", DEFAULT_VALIDATION_IMAGES))
  if not 0 < count < size:
    raise DataConfigError(f"config.data.validation_images={count} must be in 1..{size - 1} "
                          f"(the {data_config.split!r} split holds {size} images)")
  if num_scored > size - count:
    raise DataConfigError(
        f"the {count} validation images (the last of the {size} in {data_config.split!r}) would "
        f"overlap the {num_scored} scored images (its first): lower "
        "config.data.validation_images or config.gem.num_scored_images")
  return range(size - count, size)


def split_spec(data_config, split: str, num_examples: int | None = None) -> str:
  """The tfds split string of the first `num_examples` (all: None) images of `split`, with
  'validation' carved from the training split where the data set has none of its own."""
  if split != VALIDATION or has_own_validation(data_config):
    return split if num_examples is None else f"{split}[:{num_examples}]"
  rows = validation_rows(data_config)
  stop = rows.stop if num_examples is None else rows.start + min(num_examples, len(rows))
  return f"{data_config.split}[{rows.start}:{stop}]"


def carved_size(data_config, split: str) -> int | None:
  """The size of a carved 'validation' split, None for any split the data set has itself."""
  if split != VALIDATION or has_own_validation(data_config):
    return None
  return len(validation_rows(data_config))
