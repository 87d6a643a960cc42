"""Steerability (gem_jax/metrics/steerability.py) and the attributes reconstructions keep
(gem_jax/metrics/kept_attributes.py) on a stub model and a stub level reader with known
answers, and the evaluation keys that report them."""
import numpy as np
import pytest

from gem_jax.data import get_dataset
from gem_jax.evaluation import kept_attribute_metrics, traversal_metrics
from gem_jax.metrics.kept_attributes import kept_attributes
from gem_jax.metrics.steerability import steerability, steerability_from_changes
from gem_jax.metrics.traversal import traversal_effect
from gem_jax.relations import Alignment

GATE = np.array([1.0, 1.0, 1.0, 0.0])  # images 0-2 follow latent 0; image 3 does not


class _GatedModel:
  """d = 3: 'a' on latent 0 (sign +), 'b' on latent 1 (sign -). Image i's code is
  (0, 0, GATE[i]). Decoding writes channel 0 = 0.5 + 0.1 z0 z2 (a follows its latent only
  where the gate is open) and channel 1 = 0.5 - 0.1 z1 + 0.1 z0 (1 - z2) (where the gate is
  shut, a's latent moves b instead)."""

  alignment = Alignment(attribute_names=("a", "b"), latent_of_attribute=(0, 1),
                        signs=(1.0, -1.0), correlations=np.zeros((3, 2)))

  def encode(self, images):
    mu = np.zeros((len(images), 3), np.float32)
    mu[:, 2] = GATE[:len(images)]
    return mu, np.zeros_like(mu)

  def decode(self, z):
    z = np.asarray(z, np.float32)
    out = np.full((len(z), 4, 4, 3), 0.5, np.float32)
    out[..., 0] = (0.5 + 0.1 * z[:, 0] * z[:, 2])[:, None, None]
    out[..., 1] = (0.5 - 0.1 * z[:, 1] + 0.1 * z[:, 0] * (1 - z[:, 2]))[:, None, None]
    return out


def _levels(images):
  """Channel c of the first pixel as a level: 5 above 0.6, 0 below 0.4, else 2; [N, 2]."""
  value = np.asarray(images)[:, 0, 0, :2].astype(np.float64) / 255.0
  return np.where(value > 0.6, 5, np.where(value < 0.4, 0, 2))


def _logits(images):
  """Near-one-hot logits [N, 2, 6] of `_levels` (column 0 'a', column 1 'b')."""
  return np.where(np.arange(6) == _levels(images)[..., None], 50.0, 0.0)


class _Reader:
  """A level reader like LocalFeatures: heads 'b', 'a' (reversed, to test the column lookup)."""

  name = "stub reader"
  meta = {"attribute_names": ["b", "a"]}

  def outputs(self, images, key):
    assert key == "logits"
    return _logits(images)[:, ::-1]


def test_share_counts_images_whose_own_attribute_rises_and_names_what_else_moves():
  images = np.zeros((4, 4, 4, 3), np.uint8)
  steer = steerability(_GatedModel(), images, _logits, delta=2.0)
  # a: 0 -> 5 on the three gated images, 2 -> 2 on the fourth; there b goes 0 -> 5 instead.
  np.testing.assert_allclose(steer.share, [0.75, 1.0])
  assert steer.off_attribute == ("b", "a")
  np.testing.assert_allclose(steer.off_change, [1.25, 0.0], atol=1e-12)
  # b rides latent 1 with sign -1: +delta is z1 = -2, channel 1 goes 0.3 -> 0.7, 0 -> 5.
  np.testing.assert_allclose(steer.effect, traversal_effect(_GatedModel(), images, _logits))
  np.testing.assert_allclose(steer.effect, [[3.75, 1.25], [0.0, 5.0]], atol=1e-12)
  assert steer.num_images == 4 and steer.metrics()["steerability_min"] == 0.75


def test_a_rise_of_exactly_min_rise_counts_and_the_off_change_keeps_its_sign():
  changes = np.zeros((3, 4, 3))
  changes[0, :, 0] = [1.0, 0.99, 3.0, -2.0]
  changes[0, :, 2] = -0.8            # the largest other change is a fall
  changes[0, :, 1] = 0.5
  changes[1, :, 1] = 2.0
  changes[2, :, 2] = [0.0, 1.5, 1.5, 1.5]
  steer = steerability_from_changes(changes, ["x", "y", "w"], delta=2.0)
  np.testing.assert_allclose(steer.share, [0.5, 1.0, 0.75])
  assert steer.off_attribute[0] == "w" and steer.off_change[0] == pytest.approx(-0.8)
  assert steerability_from_changes(changes, ["x", "y", "w"], 2.0, min_rise=3.0).share[0] == 0.25
  with pytest.raises(ValueError, match=r"expected changes \[2, N, 2\]"):
    steerability_from_changes(changes, ["x", "y"], 2.0)


def test_the_evaluation_reports_steerability_from_the_same_traversals():
  out = traversal_metrics(_GatedModel(), np.zeros((4, 4, 4, 3), np.uint8), _Reader())
  assert out["steerability"] == [0.75, 1.0] and out["steer_off_attribute"] == ["b", "a"]
  assert out["traversal_effect_own"] == pytest.approx([3.75, 5.0])
  assert out["level_reader"] == "stub reader" and out["steer_images"] == 4


def test_kept_attributes_counts_reconstructions_read_within_one_level():
  x = np.array([[0.0, 5.0], [2.0, 3.0], [4.0, 0.0], [1.0, 1.0]])
  r = np.array([[1.0, 5.0], [3.5, 3.0], [4.0, 2.0], [0.2, 1.0]])
  t = np.array([[0, 5], [3, 3], [5, 3], [1, 4]])
  out = kept_attributes(x, r, t)
  np.testing.assert_allclose(out["keeps_input"], [0.75, 0.75])   # 1.0 counts, 1.5 and 2 do not
  np.testing.assert_allclose(out["keeps_truth"], [1.0, 0.75])  # |4.0 - 5| = 1 counts
  np.testing.assert_allclose(out["input_truth"], [1.0, 0.5])
  assert set(kept_attributes(x, r)) == {"keeps_input"}
  with pytest.raises(ValueError, match="one shape"):
    kept_attributes(x, r[:2])


def test_the_evaluation_reads_inputs_and_reconstructions_with_the_reader():
  # Four images with levels (a, b) = (5, 0), (0, 5), (2, 2), (5, 5); their reconstructions
  # lose a on image 0 (5 -> 0) and b on image 1 (5 -> 2).
  value = {0: 0.3, 2: 0.5, 5: 0.7}
  levels = np.array([[5, 0], [0, 5], [2, 2], [5, 5]])
  recon_levels = np.array([[0, 0], [0, 2], [2, 2], [5, 5]])
  def draw(lv):
    out = np.full((4, 4, 4, 3), 0.5, np.float32)
    for i, (a, b) in enumerate(lv):
      out[i, ..., 0], out[i, ..., 1] = value[a], value[b]
    return out
  images = (draw(levels) * 255 + 0.5).astype(np.uint8)
  faces = get_dataset("synthetic_faces")
  attributes = np.zeros((4, 6), np.int32)
  attributes[:, 0] = [5, 0, 2, 5]  # synthetic_faces' first attribute is 'bangs' ...
  model = _GatedModel()
  model.alignment = Alignment(attribute_names=("bangs", "bald"), latent_of_attribute=(0, 1),
                              signs=(1.0, 1.0), correlations=np.zeros((3, 2)))
  reader = _Reader()
  reader.meta = {"attribute_names": ["bald", "bangs"]}
  out = kept_attribute_metrics(model, images, draw(recon_levels), {"attributes": attributes},
                               faces, reader)
  assert out["recon_keeps_attributes"] == ["bangs", "bald"]
  np.testing.assert_allclose(out["recon_keeps_input"], [0.75, 0.75])
  np.testing.assert_allclose(out["input_reads_truth"], [1.0, 0.25])  # true bald is 0 for all
  np.testing.assert_allclose(out["recon_keeps_truth"], [0.75, 0.25])
  assert out["recon_keeps_reader"] == "stub reader"
