"""metrics.batching.map_batches: one batch shape for every call, the padding trimmed."""
import numpy as np
import pytest

from gem_jax.metrics.batching import map_batches


def _recording(calls):
  """fn: records each batch it is given; features [b, 2] = (sum of the pixels, the batch's
  size), so padded rows (zeros) are told apart from real ones."""
  def fn(batch):
    calls.append(batch.copy())
    return np.stack([batch.reshape(len(batch), -1).sum(1), np.full(len(batch), len(batch))], 1)
  return fn


def _images(n: int) -> np.ndarray:
  return (np.arange(n * 2 * 2 * 3) % 251).astype(np.uint8).reshape(n, 2, 2, 3)


def test_every_call_gets_one_batch_shape_and_the_padding_is_trimmed():
  calls = []
  images = _images(7)
  out = map_batches(_recording(calls), images, batch_size=3, dim=2, desc="x")
  assert [c.shape for c in calls] == [(3, 2, 2, 3)] * 3
  assert all(c.dtype == np.uint8 for c in calls)
  np.testing.assert_array_equal(calls[2][0], images[6])
  assert not calls[2][1:].any()  # the last batch is padded with zeros
  assert out.dtype == np.float32 and out.shape == (7, 2)
  np.testing.assert_array_equal(out[:, 0], images.reshape(7, -1).sum(1).astype(np.float32))
  np.testing.assert_array_equal(out[:, 1], np.full(7, 3.0))


@pytest.mark.parametrize("batch_size,want", [(10, 4), (4, 4), (0, 1), (-3, 1), (2, 2)])
def test_the_batch_is_the_smaller_of_batch_size_and_n_and_at_least_one(batch_size, want):
  calls = []
  out = map_batches(_recording(calls), _images(4), batch_size=batch_size, dim=2, desc="x")
  assert {len(c) for c in calls} == {want} and len(calls) == -(-4 // want)
  assert out.shape == (4, 2)


def test_no_images_give_an_empty_float32_array_of_the_features_width_without_a_call():
  calls = []
  out = map_batches(_recording(calls), np.zeros((0, 2, 2, 3), np.uint8), 8, dim=5, desc="x")
  assert calls == [] and out.shape == (0, 5) and out.dtype == np.float32
