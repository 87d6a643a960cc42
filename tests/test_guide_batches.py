"""The guide set's edges (`gem_jax.train.guide_batches`): which rows are held out, which rows
each step draws, and the errors at the limits. The draws are pinned: a resumed run, or the same
run on another version, must read the batches it read before."""
import numpy as np
import pytest

from gem_jax.objectives.guidance import GuidanceDataError
from gem_jax.train.guide_batches import GuideSet, holdout_split


def _guide_set(num: int = 6) -> GuideSet:
  """num images whose pixels all equal their row index; two attributes."""
  images = np.arange(num, dtype=np.uint8)[:, None, None, None] * np.ones((1, 1, 1, 3), np.uint8)
  scores = np.stack([np.arange(num) % 6, (np.arange(num) + 1) % 6], axis=1)
  return GuideSet.from_scores(images, scores, ["a", "b"], [3, 1], max_score=5)


def test_the_held_out_rows_of_a_seed_are_pinned():
  guided, held = holdout_split(10, 0.3, seed=0)
  np.testing.assert_array_equal(guided, [0, 2, 3, 4, 5, 6, 9])
  np.testing.assert_array_equal(held, [1, 7, 8])


@pytest.mark.parametrize("fraction", [1.0, 1.5, -0.1])
def test_a_holdout_fraction_outside_zero_to_one_is_refused(fraction):
  with pytest.raises(ValueError) as e:
    holdout_split(10, fraction, seed=0)
  assert str(e.value) == ("config.gem.guidance.holdout_fraction must be in [0, 1), got "
                          f"{fraction}")


def test_as_many_scored_images_as_attributes_is_enough():
  images = np.zeros((2, 1, 1, 3), np.uint8)
  guide = GuideSet.from_scores(images, np.array([[0, 1], [1, 0]]), ["a", "b"], [0, 1], 5)
  assert len(guide) == 2
  with pytest.raises(GuidanceDataError) as e:
    GuideSet.from_scores(images, np.array([[0, 1], [1, 0]]), ["a", "b"], [0, 1], 5, rows=[0])
  assert str(e.value) == (
      "1 scored images guide 2 attributes; at least one image per attribute is needed (and "
      "hundreds for a useful guide): raise config.gem.num_scored_images or lower "
      "config.gem.guidance.holdout_fraction")


def test_a_steps_draw_is_pinned_split_over_the_devices_without_repeats():
  guide = _guide_set()
  batch = guide.batch(step=7, global_batch=4, num_devices=2, seed=1)
  np.testing.assert_array_equal(batch["guide_image"][..., 0, 0, 0], [[0, 3], [2, 4]])
  assert batch["guide_target"].shape == batch["guide_mask"].shape == (2, 2, 2)
  whole = guide.batch(step=3, global_batch=6, num_devices=2, seed=0)  # the whole set
  assert sorted(whole["guide_image"][..., 0, 0, 0].ravel().tolist()) == list(range(6))


@pytest.mark.parametrize("global_batch, devices", [(3, 2), (8, 2), (7, 1)])
def test_a_guide_batch_that_does_not_divide_or_fit_is_refused(global_batch, devices):
  with pytest.raises(ValueError) as e:
    _guide_set().batch(step=0, global_batch=global_batch, num_devices=devices, seed=0)
  assert str(e.value) == (f"config.gem.guidance.batch_size={global_batch} must divide over "
                          f"{devices} devices and be at most the 6 guided images")
