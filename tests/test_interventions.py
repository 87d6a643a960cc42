"""The do-operator on latent codes (`relations.interventions`), `TrainedModel.intervene` and the
intervention error (`metrics.intervention`)."""
import re

import ml_collections
import numpy as np
import pytest

from gem_jax.data import get_dataset
from gem_jax.data.synthetic_faces import ATTRIBUTES, sample_factors
from gem_jax.metrics.intervention import (
  intervention_error,
  measured_intervention_effects,
  true_intervention_effects,
)
from gem_jax.relations import Alignment
from gem_jax.relations.interventions import counterfactual_codes, descendants
from gem_jax.scorers.prompt import MAX_SCORE
from gem_jax.trained_model import MAX_LEVEL, TrainedModel

# A chain 0 -> 1 -> 2 (weights 0.5, -2), a collider 3 -> 2 (0.25), a lone latent 4 and a 2-cycle
# 5 <-> 6 (0.3 each way).
W = np.zeros((7, 7))
W[0, 1], W[1, 2], W[3, 2], W[5, 6], W[6, 5] = 0.5, -2.0, 0.25, 0.3, 0.3


def codes(n: int = 5, seed: int = 0) -> np.ndarray:
  return np.random.default_rng(seed).normal(size=(n, 7))


def test_descendants_follow_the_edges():
  assert descendants(W, [0]) == {1, 2}
  assert descendants(W, [3]) == {2}
  assert descendants(W, [2]) == set()
  assert descendants(W, [5]) == {5, 6}  # the cycle returns to its source


def test_an_intervention_moves_exactly_the_descendants_by_the_path_products():
  z = codes()
  out = counterfactual_codes(z, W, {0: 1.5})
  delta = 1.5 - z[:, 0]
  np.testing.assert_allclose(out[:, 0], 1.5)
  np.testing.assert_allclose(out[:, 1] - z[:, 1], 0.5 * delta, atol=1e-12)
  np.testing.assert_allclose(out[:, 2] - z[:, 2], 0.5 * -2.0 * delta, atol=1e-12)
  for j in (3, 4, 5, 6):  # non-descendants: bit for bit
    np.testing.assert_array_equal(out[:, j], z[:, j])


def test_the_intervened_latent_loses_its_incoming_edges_and_keeps_the_rows_noise():
  z = codes()
  out = counterfactual_codes(z, W, {1: np.arange(5.0)})
  np.testing.assert_array_equal(out[:, 0], z[:, 0])  # a parent does not move
  np.testing.assert_allclose(out[:, 1], np.arange(5.0))
  # latent 2 keeps its own noise u_2 = z_2 - (-2 z_1 + 0.25 z_3)
  u2 = z[:, 2] - (-2.0 * z[:, 1] + 0.25 * z[:, 3])
  np.testing.assert_allclose(out[:, 2], -2.0 * np.arange(5.0) + 0.25 * z[:, 3] + u2,
                             atol=1e-12)


def test_an_intervention_to_the_encoded_value_changes_nothing():
  z = codes()
  np.testing.assert_allclose(counterfactual_codes(z, W, {0: z[:, 0], 5: z[:, 5]}), z,
                             atol=1e-12)


def test_a_two_way_edge_propagates_from_the_intervened_side_only():
  z = codes()
  out = counterfactual_codes(z, W, {5: z[:, 5] + 1.0})
  np.testing.assert_allclose(out[:, 6] - z[:, 6], 0.3, atol=1e-12)  # 5 -> 6 kept
  np.testing.assert_allclose(out[:, 5] - z[:, 5], 1.0, atol=1e-12)  # 6 -> 5 cut


def test_a_cycle_with_gain_one_is_an_error():
  w = np.zeros((2, 2))
  w[0, 1] = w[1, 0] = 1.0
  with pytest.raises(ValueError, match=r"latents \[\] \(I - W is singular\)"):
    counterfactual_codes(np.zeros((1, 2)), w, {})
  with pytest.raises(ValueError, match="latent 7 is out of range 0..1"):
    counterfactual_codes(np.zeros((1, 2)), w, {7: 0.0})


def test_bad_shapes_and_indices_are_named():
  """The edge cases: a latent index equal to d, a value with a second axis or the wrong length,
  weights that do not fit codes that are [B, d], and a singular I - W' after an action."""
  z = np.zeros((5, 2))
  with pytest.raises(ValueError, match=r"^latent 2 is out of range 0..1$"):
    counterfactual_codes(z, np.zeros((2, 2)), {2: 0.0})
  with pytest.raises(ValueError, match=r"^latent -1 is out of range 0..1$"):
    counterfactual_codes(z, np.zeros((2, 2)), {-1: 0.0})
  for value, shape in ((np.zeros((5, 1)), "[5, 1]"), (np.zeros(3), "[3]")):
    with pytest.raises(ValueError, match="^" + re.escape(
        f"the value of latent 1 must be a float or one per row [5]; got shape {shape}") + "$"):
      counterfactual_codes(z, np.zeros((2, 2)), {1: value})
  with pytest.raises(ValueError, match=(r"^expected codes \[B, d\] and weights \[d, d\]; got "
                                        r"\[5, 2\] and \[3, 3\]$")):
    counterfactual_codes(z, np.zeros((3, 3)), {})
  with pytest.raises(ValueError, match=r"got \[2\] and \[2, 2\]$"):
    counterfactual_codes(np.zeros(2), np.zeros((2, 2)), {})
  cycle = np.zeros((3, 3))
  cycle[0, 1] = cycle[1, 0] = 1.0
  with pytest.raises(ValueError, match=(r"^the graph's structural equations have no unique "
                                        r"solution after the intervention on latents \[2\] "
                                        r"\(I - W is singular\): a cycle with gain 1$")):
    counterfactual_codes(np.zeros((1, 3)), cycle, {2: 1.0})


def test_the_models_level_scale_is_the_scorers():
  assert MAX_LEVEL == MAX_SCORE


class _Identity:
  """A stand-in VAE for TrainedModel: encode returns fixed codes, decode records its input."""

  latent_dim, image_size = 7, 4


def _model(guided: bool = True) -> TrainedModel:
  model = TrainedModel.__new__(TrainedModel)
  model.module = _Identity()
  model.adjacency = np.eye(7) + W
  model._prior_weights = None
  model._scm_weights = None
  model.alignment = Alignment(attribute_names=tuple("abcdefg"),
                              latent_of_attribute=tuple(range(7)), signs=(1.0,) * 7,
                              correlations=np.eye(7))
  model.config = ml_collections.ConfigDict({"gem": {"guidance": {"weight": 10.0 if guided
                                                                  else 0.0}}})
  model.codes = codes(3)
  model.encode = lambda images: (model.codes.copy(), None)
  model.decode = lambda z: np.asarray(z)
  return model


def test_intervene_sets_the_level_and_moves_the_descendants_through_the_graph():
  model = _model()
  z = model.codes
  out = model.intervene(np.zeros((3, 4, 4, 3), np.uint8), {"a": 5})
  np.testing.assert_allclose(out[:, 0], 2.0)  # level 5 on -2..+2
  np.testing.assert_allclose(out[:, 1] - z[:, 1], 0.5 * (2.0 - z[:, 0]), atol=1e-6)
  np.testing.assert_allclose(out[:, 4], z[:, 4], atol=1e-6)  # float32 codes
  shifted = model.intervene(np.zeros((3, 4, 4, 3), np.uint8), {"a": 1}, shift=True)
  np.testing.assert_allclose(shifted[:, 0], np.minimum(z[:, 0] + 0.8, 2.0), atol=1e-6)


def test_intervene_refuses_a_model_without_level_scale():
  with pytest.raises(ValueError, match="only an MLLM-guided GEM's latents carry"):
    _model(guided=False).intervene(np.zeros((3, 4, 4, 3), np.uint8), {"a": 5})


def test_intervention_error_is_the_mean_off_diagonal_gap():
  measured = np.array([[1.0, 0.5], [0.0, 2.0]])
  true = np.array([[2.0, 1.0], [0.25, 2.0]])
  assert intervention_error(measured, true) == {"intervention_error": 0.375, "own_error": 0.5}


def test_true_effects_of_synthetic_faces_follow_its_graph():
  spec = get_dataset("synthetic_faces")
  levels, factors = sample_factors(3, 400)
  effects = true_intervention_effects(spec, {"attributes": levels, "factors": factors},
                                      list(ATTRIBUTES))
  a = {name: i for i, name in enumerate(ATTRIBUTES)}
  assert effects[a["gender"], a["blond"]] == 0.0  # no path
  assert effects[a["gender"], a["beard"]] > 0.5  # gender -> beard +1.0 (clipped)
  assert effects[a["gender"], a["makeup"]] < -0.5
  assert effects[a["blond"], a["bald"]] == 0.0
  assert effects[a["beard"], a["gender"]] == 0.0  # no edge into the parent


def test_intervention_error_wants_two_square_matrices():
  with pytest.raises(ValueError, match=r"^expected two \[n, n\] effect matrices, got \(2, 3\) and "
                     r"\(2, 3\)$"):
    intervention_error(np.zeros((2, 3)), np.zeros((2, 3)))


# --- the measured and true effects on stand-ins: a model that draws, a reader that reads ------

STEP = 40  # pixel values per level: channel c of pixel (0, 0) holds attribute c's level


def _read_levels(images: np.ndarray) -> np.ndarray:
  """A reader of 3 attributes: logits [N, 3, 6], one-hot (x 100) at each channel's level."""
  levels = np.rint(images[:, 0, 0, :3] / STEP).astype(int)
  return np.eye(6)[levels] * 100.0


class _DrawingModel:
  """Decodes every image one level up (a biased decoder); intervene(do(a := own level +
  shift)) adds shift * effects[a, b] levels to every attribute b on top, effects the model's own
  or `weights`."""

  def __init__(self, effects):
    self.effects, self.calls = np.asarray(effects, np.float64), []

  def reconstruct(self, images):
    out = images.astype(np.float64)
    out[:, 0, 0, :3] += STEP
    return out / 255.0

  def intervene(self, images, interventions, shift=False, weights=None):
    self.calls.append((dict(interventions), shift, weights is None))
    [(name, value)] = interventions.items()
    effects = self.effects if weights is None else np.asarray(weights, np.float64)
    out = self.reconstruct(images) * 255.0
    out[:, 0, 0, :3] += value * STEP * effects["abc".index(name)]
    return out / 255.0


def _level_images() -> np.ndarray:
  images = np.zeros((4, 2, 2, 3), np.uint8)
  images[:, 0, 0, :3] = np.array([[1, 2, 1], [0, 1, 2], [2, 0, 1], [1, 1, 1]]) * STEP
  return images


def test_measured_effects_are_the_mean_change_of_the_read_levels_after_each_intervention():
  own = np.array([[1.0, 0.5, 0.0], [0.0, 1.0, -0.5], [0.5, 0.0, 1.0]])  # whole levels
  model = _DrawingModel(own)
  measured = measured_intervention_effects(model, _level_images(), _read_levels, ["a", "b", "c"])
  np.testing.assert_allclose(measured, 2.0 * own, atol=1e-9)  # do(a := level + 2)
  assert model.calls == [({"a": 2.0}, True, True), ({"b": 2.0}, True, True),
                         ({"c": 2.0}, True, True)]
  other = np.array([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0], [0.0, 1.0, 1.0]])
  measured = measured_intervention_effects(model, _level_images(), _read_levels, ["c", "a"],
                                           shift=1.0, weights=other)
  np.testing.assert_allclose(measured, [other[2], other[0]], atol=1e-9)
  assert model.calls[-2:] == [({"c": 1.0}, True, False), ({"a": 1.0}, True, False)]


class _ChainSpec:
  """True levels from the examples; do(x := v) sets x and adds 1 to the next attribute."""

  def __init__(self, known=True, counterfactual=True):
    self.known, self.counterfactual, self.seeds = known, counterfactual, []

  def true_levels(self, examples, names):
    return np.asarray(examples["levels"], np.float64) if self.known else None

  def counterfactual_levels(self, examples, names, do, seed=0):
    self.seeds.append(seed)
    if not self.counterfactual:
      return None
    after = np.asarray(examples["levels"], np.float64).copy()
    [(name, value)] = do.items()
    a = names.index(name)
    after[:, a] = value
    after[:, (a + 1) % len(names)] += 1
    return after


def test_true_effects_are_the_mean_counterfactual_change_clipped_to_the_scale():
  examples = {"levels": np.array([[4, 0, 1], [1, 5, 0]])}
  spec = _ChainSpec()
  effects = true_intervention_effects(spec, examples, ["a", "b", "c"], seed=7)
  # do(a := level + 2): a moves +1 (4 -> 5 clipped) and +2, b +1; do(b): 0 -> 2 and 5 -> 5.
  np.testing.assert_allclose(effects, [[1.5, 1.0, 0.0], [0.0, 1.0, 1.0], [1.0, 0.0, 2.0]])
  assert spec.seeds == [7, 7, 7]
  effects = true_intervention_effects(_ChainSpec(), examples, ["a", "b", "c"], shift=1.0)
  np.testing.assert_allclose(np.diag(effects), [1.0, 0.5, 1.0])  # 4 -> 5 clipped, 5 -> 5
  assert true_intervention_effects(_ChainSpec(known=False), examples, ["a"]) is None
  assert true_intervention_effects(_ChainSpec(counterfactual=False), examples, ["a"]) is None
