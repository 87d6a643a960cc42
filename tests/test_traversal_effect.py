"""traversal_effect on a constructed model and classifier with known answers."""
import numpy as np
import pytest

from gem_jax.metrics.traversal import expected_levels, traversal_effect
from gem_jax.relations import Alignment


class _FakeModel:
  """d = 2; mu = 0 for every image; decode writes 0.5 + 0.1 * z_c into channel c."""

  def __init__(self, alignment):
    self.alignment = alignment

  def encode(self, images):
    n = len(images)
    return np.zeros((n, 2), np.float32), np.zeros((n, 2), np.float32)

  def decode(self, z):
    out = np.zeros((len(z), 4, 4, 3), np.float32)
    out[..., :2] = (0.5 + 0.1 * z)[:, None, None, :]
    return out


def _alignment(latents, signs):
  corr = np.zeros((2, 2))
  return Alignment(attribute_names=("a", "b"), latent_of_attribute=tuple(latents),
                   signs=tuple(signs), correlations=corr)


def _classifier(images):
  """Column 0 ('a') reads channel 1, column 1 ('b') reads channel 0: level 5 above 0.6,
  0 below 0.4, else 2, as near-one-hot logits over levels 0..5."""
  value = images[:, 0, 0, :2].astype(np.float64) / 255.0
  level = np.where(value > 0.6, 5, np.where(value < 0.4, 0, 2))[:, ::-1]
  return np.where(np.arange(6) == level[..., None], 50.0, 0.0)


def test_expected_levels_is_the_softmax_mean():
  logits = np.log(np.array([[[0.5, 0.5, 0, 0, 0, 0]], [[0, 0, 0, 0, 0.25, 0.75]]]) + 1e-30)
  np.testing.assert_allclose(expected_levels(logits), [[0.5], [4.75]], atol=1e-12)


def test_effect_follows_the_aligned_latent_and_its_sign():
  model = _FakeModel(_alignment(latents=(1, 0), signs=(1.0, -1.0)))
  images = np.zeros((5, 4, 4, 3), np.uint8)
  effect = traversal_effect(model, images, _classifier, delta=2.0)
  # 'a' rides latent 1 (channel 1) upwards: 0 -> 5; 'b' is left at level 2 (mu = 0).
  # 'b' rides latent 0 with sign -1: +delta for 'b' is z_0 = -2, so its channel goes 0.7 -> 0.3
  # and the classifier (which reads higher channel 0 as more 'b') sees 5 -> 0.
  np.testing.assert_allclose(effect, [[5.0, 0.0], [0.0, -5.0]], atol=1e-9)


def test_small_delta_moves_nothing():
  model = _FakeModel(_alignment(latents=(0, 1), signs=(1.0, 1.0)))
  effect = traversal_effect(model, np.zeros((3, 4, 4, 3), np.uint8), _classifier, delta=0.5)
  np.testing.assert_allclose(effect, np.zeros((2, 2)), atol=1e-9)


def test_bad_inputs():
  images = np.zeros((2, 4, 4, 3), np.uint8)
  with pytest.raises(ValueError, match="latent alignment"):
    traversal_effect(_FakeModel(None), images, _classifier)
  with pytest.raises(ValueError, match="delta must be positive"):
    traversal_effect(_FakeModel(_alignment((0, 1), (1.0, 1.0))), images, _classifier, delta=0)


def test_expected_levels_of_extreme_logits_per_row():
  logits = np.array([[[1000.0, 990.0]], [[-1000.0, -990.0]]])
  np.testing.assert_allclose(expected_levels(logits),
                             [[1 / (1 + np.exp(10.0))], [1 / (1 + np.exp(-10.0))]], rtol=1e-12)


class _CodedModel(_FakeModel):
  """mu = 0 for every image, logvar = 5: only mu may be traversed."""

  def encode(self, images):
    mu, _ = super().encode(images)
    return mu, np.full_like(mu, 5.0)


def _sum_classifier(images):
  """One attribute whose level reads both channels: 2 + 10 (c_0 + c_1 - 1), clipped to 0..5."""
  value = images[:, 0, 0, :2].astype(np.float64).sum(axis=1) / 255.0
  level = np.clip(np.rint(10 * (value - 1.0)) + 2, 0, 5).astype(int)
  return np.where(np.arange(6) == level[:, None, None], 50.0, 0.0)


def test_the_traversal_starts_from_the_means_and_moves_two_units_by_default():
  model = _CodedModel(Alignment(attribute_names=("a",), latent_of_attribute=(0,), signs=(1.0,),
                                correlations=np.zeros((2, 1))))
  images = np.zeros((3, 4, 4, 3), np.uint8)
  # z_0 = -2, +2 with z_1 = mu_1 = 0: levels 0 and 4 (c_0 = 0.3, 0.7); from z_1 = 5 both clip.
  np.testing.assert_allclose(traversal_effect(model, images, _sum_classifier), [[4.0]])
  np.testing.assert_allclose(traversal_effect(model, images, _sum_classifier, delta=3.0), [[5.0]])
  with pytest.raises(ValueError, match=r"^traversal_effect needs a model with a latent alignment "
                     r"\(a GEM run\)$"):
    traversal_effect(_FakeModel(None), images, _sum_classifier)
