"""Tests of the `synthetic_faces` SCM, renderer and tfds builder."""

import numpy as np
import pytest
import scipy.stats
import tensorflow_datasets as tfds

from gem_jax.data import synthetic_faces as sf
from gem_jax.data.synthetic_faces import builder as builder_module
from gem_jax.relations import somers_d

N_STATS = 20_000
IDX = {name: i for i, name in enumerate(sf.ATTRIBUTES)}


@pytest.fixture(scope="module")
def sampled():
  """(attributes int32 [N, 6], factors float32 [N, K]) from a fixed seed."""
  return sf.sample_factors(1234, N_STATS)


def _spearman(attributes, a, b):
  return scipy.stats.spearmanr(attributes[:, IDX[a]], attributes[:, IDX[b]]).statistic


def _centred_factors(attributes):
  """Factors for `attributes` [n, 6] with nuisance fixed: centred, scale 1, light skin."""
  factors = np.zeros((len(attributes), len(sf.FACTOR_NAMES)), np.float32)
  factors[:, : len(sf.ATTRIBUTES)] = attributes
  factors[:, len(sf.ATTRIBUTES) :] = [0.3, 0.55, 0.8, 0.0, 0.0, 1.0]
  return factors


# ----------------------------------------------------------------------------- constants


def test_constants_are_consistent():
  assert sf.ATTRIBUTES == ("bangs", "bald", "gender", "beard", "blond", "makeup")
  assert sf.FACTOR_NAMES[: len(sf.ATTRIBUTES)] == sf.ATTRIBUTES
  assert len(set(sf.FACTOR_NAMES)) == len(sf.FACTOR_NAMES)
  graph = sf.TRUE_GRAPH
  assert graph.shape == (6, 6) and graph.dtype == np.float32
  assert np.all(np.diag(graph) == 0)
  # A DAG: the topological order only has edges pointing forward.
  order = list(sf.TOPOLOGICAL_ORDER)
  assert sorted(order) == list(range(6))
  for i, j in zip(*np.nonzero(graph)):
    assert order.index(i) < order.index(j)
  # The relations the docs promise.
  assert graph[IDX["bald"], IDX["bangs"]] <= -1.0
  assert graph[IDX["gender"], IDX["beard"]] >= 0.9
  assert graph[IDX["gender"], IDX["makeup"]] <= -0.8
  assert graph[IDX["gender"], IDX["bald"]] > 0
  assert graph[IDX["bangs"], IDX["bald"]] == 0  # asymmetric: only bald -> bangs


def test_independent_pairs_have_no_path_and_no_common_ancestor():
  reach = (sf.TRUE_GRAPH != 0) | np.eye(6, dtype=bool)
  for _ in range(6):
    reach = reach | ((reach.astype(int) @ reach.astype(int)) > 0)
  for a, b in sf.INDEPENDENT_PAIRS:
    i, j = IDX[a], IDX[b]
    assert not reach[i, j] and not reach[j, i]
    assert not np.any(reach[:, i] & reach[:, j]), (a, b)  # no common ancestor


# ----------------------------------------------------------------------------- sampling


def test_sampling_is_deterministic():
  a1, f1 = sf.sample_factors(7, 300)
  a2, f2 = sf.sample_factors(7, 300)
  a3, f3 = sf.sample_factors(8, 300)
  np.testing.assert_array_equal(a1, a2)
  np.testing.assert_array_equal(f1, f2)
  assert not np.array_equal(f1, f3)
  a4, f4 = sf.sample_factors(np.random.default_rng(7), 300)
  np.testing.assert_array_equal(f1, f4)


def test_sample_shapes_and_ranges(sampled):
  attributes, factors = sampled
  assert attributes.shape == (N_STATS, 6) and attributes.dtype == np.int32
  assert factors.shape == (N_STATS, len(sf.FACTOR_NAMES)) and factors.dtype == np.float32
  assert attributes.min() == 0 and attributes.max() == 5
  np.testing.assert_array_equal(factors[:, :6], attributes)
  # Every level of every attribute occurs (non-degenerate marginals); bald is mostly 0.
  for i in range(6):
    assert np.all(np.bincount(attributes[:, i], minlength=6) > 0), sf.ATTRIBUTES[i]
  assert np.mean(attributes[:, IDX["bald"]] == 0) > 0.7
  nuisance = dict(zip(sf.FACTOR_NAMES, factors.T, strict=True))
  assert np.all(np.abs(nuisance["shift_x"]) <= sf.SHIFT_MAX_PX)
  assert np.all((nuisance["scale"] >= 0.92) & (nuisance["scale"] <= 1.08))
  assert np.all((nuisance["skin_tone"] >= 0) & (nuisance["skin_tone"] <= 1))


def test_dependence_structure_is_visible(sampled):
  attributes, factors = sampled
  # Measured (this seed, n = 20k): bald/bangs -0.41, gender/beard 0.62, gender/makeup -0.68,
  # gender/bald 0.36, blond/bangs 0.31; the sampling s.d. of rho is about 0.007.
  assert _spearman(attributes, "bald", "bangs") < -0.3
  assert _spearman(attributes, "gender", "beard") > 0.5
  assert _spearman(attributes, "gender", "makeup") < -0.5
  assert _spearman(attributes, "gender", "bald") > 0.25
  assert _spearman(attributes, "blond", "bangs") > 0.2
  for a, b in sf.INDEPENDENT_PAIRS:
    assert abs(_spearman(attributes, a, b)) < 0.05, (a, b)
  # Nuisance factors are independent of every attribute.
  rho = scipy.stats.spearmanr(factors).statistic[:6, 6:]
  assert np.all(np.abs(rho) < 0.05)


def test_somers_d_asymmetry(sampled):
  attributes, _ = sampled
  bald, bangs = attributes[:, IDX["bald"]], attributes[:, IDX["bangs"]]
  # scipy's somersd(x, y) is D(y | x): the impact of x on y. Population values (n = 1e6):
  # D(bangs | bald) = -0.556, D(bald | bangs) = -0.237 (docs/synthetic_faces.md).
  bald_on_bangs = scipy.stats.somersd(bald, bangs).statistic
  bangs_on_bald = scipy.stats.somersd(bangs, bald).statistic
  assert bald_on_bangs < -0.45
  assert -0.32 < bangs_on_bald < -0.15
  assert abs(bald_on_bangs) > 1.8 * abs(bangs_on_bald)


def test_somers_d_of_sampled_attributes_matches_scipy():
  attributes, _ = sf.sample_factors(5, 2_000)
  got = np.asarray(somers_d(attributes, num_levels=sf.NUM_LEVELS))
  for i in range(6):
    for j in range(6):
      want = 1.0 if i == j else scipy.stats.somersd(attributes[:, i], attributes[:, j]).statistic
      assert got[i, j] == pytest.approx(want, abs=1e-6)


# ----------------------------------------------------------------------------- rendering


def test_render_shapes_and_determinism():
  data1 = sf.generate(11, 70, batch_size=32)
  data2 = sf.generate(11, 70, batch_size=64)  # batching must not change pixels
  data3 = sf.generate(12, 70)
  assert data1["image"].shape == (70, 64, 64, 3) and data1["image"].dtype == np.uint8
  assert data1["attributes"].dtype == np.int32 and data1["factors"].dtype == np.float32
  for key in ("image", "attributes", "factors"):
    np.testing.assert_array_equal(data1[key], data2[key])
  assert not np.array_equal(data1["image"], data3["image"])
  # Images use the dynamic range and are not all alike.
  assert data1["image"].std(axis=0).mean() > 20


def test_render_other_size():
  attributes, factors = sf.sample_factors(3, 4)
  big = sf.render(attributes, factors, size=128)
  small = sf.render(attributes, factors)
  assert big.shape == (4, 128, 128, 3)
  # A 2x2 box-downsample of the 128 render is close to the 64 render.
  down = big.reshape(4, 64, 2, 64, 2, 3).mean(axis=(2, 4))
  assert np.abs(down - small).mean() < 6.0


def test_render_is_anti_aliased():
  attributes, factors = sf.sample_factors(4, 16)
  images = sf.render(attributes, factors)
  # Edges have intermediate values: many distinct colours, not a handful of flat fills.
  assert all(len(np.unique(im.reshape(-1, 3), axis=0)) > 60 for im in images)


# Rows (64x64 frame, centred face) where each attribute is drawn, and the minimum mean absolute
# pixel change (0..255, over all pixels and channels) between levels 0 and 5, others at 0.
# Measured: bangs 5.6, bald 15.1, gender 10.9, beard 13.6, blond 35.5, make-up 2.4; the changed
# area is 4.5% (bangs) to 24% (blond) of the frame. Rendering is deterministic, so there is no
# noise to allow for: the thresholds are about half the measured values, so a drawing change
# that halves a feature's footprint or contrast fails.
_VISIBLE = {
    "bangs": ((14, 28), 2.5),  # the forehead
    "bald": ((0, 26), 7.0),  # the top of the head
    "gender": ((24, 64), 5.0),  # jaw, hair length (brows at row ~25)
    "beard": ((30, 62), 6.5),  # lower face
    "blond": ((0, 64), 15.0),  # all hair
    "makeup": ((24, 48), 1.2),  # eyes, cheeks, lips
}


@pytest.mark.parametrize("name", sf.ATTRIBUTES)
def test_each_attribute_is_visible_in_its_region(name):
  attributes = np.zeros((6, 6), np.int32)
  attributes[:, IDX[name]] = np.arange(6)
  images = sf.render(attributes, _centred_factors(attributes)).astype(np.float32)
  (row0, row1), threshold = _VISIBLE[name]
  diff = np.abs(images[5] - images[0]).mean(axis=-1)  # [64, 64]
  assert diff.mean() > threshold
  assert diff[row0:row1].sum() > 0.95 * diff.sum()  # changes happen in the right region
  # Graded: the change from level 0 grows with the level.
  change = [np.abs(images[k] - images[0]).mean() for k in range(6)]
  assert all(b > a for a, b in zip(change, change[1:])), change
  if name in ("bangs", "bald", "gender", "blond"):
    assert diff[36:46, 26:38].max() == 0  # the nose-and-mouth box is untouched


def test_beard_does_not_touch_the_top_half():
  attributes = np.zeros((2, 6), np.int32)
  attributes[1, IDX["beard"]] = 5
  images = sf.render(attributes, _centred_factors(attributes)).astype(np.float32)
  assert np.abs(images[1] - images[0])[:28].max() == 0


def test_nuisance_changes_image_but_not_attributes():
  attributes = np.full((2, 6), 2, np.int32)
  factors = _centred_factors(attributes)
  factors[1, sf.FACTOR_NAMES.index("shift_x")] = 3.0
  images = sf.render(attributes, factors).astype(np.int32)
  # A 3-pixel shift right: the shifted image equals the original moved by 3 columns.
  assert np.abs(images[1][:, 3:] - images[0][:, :-3]).mean() < 1.0


# ----------------------------------------------------------------------------- tfds builder


def test_package_re_exports_the_functions_not_the_modules():
  # `render` is both a module of the package and its drawing function: the name is the function.
  for fn in (sf.render, sf.generate, sf.sample_factors):
    assert callable(fn) and fn.__module__.startswith("gem_jax.data.synthetic_faces.")


def test_tfds_builder_tiny(tfds_dir):
  builder = tfds.builder("synthetic_faces/tiny", data_dir=tfds_dir)
  assert isinstance(builder, builder_module.SyntheticFaces)
  builder.download_and_prepare()
  config = builder.builder_config
  assert (config.num_train, config.num_test) == (512, 128)
  assert builder.info.splits["train"].num_examples == 512
  assert builder.info.splits["test"].num_examples == 128
  assert builder.info.metadata["attributes"] == list(sf.ATTRIBUTES)
  np.testing.assert_allclose(builder.info.metadata["true_graph"], sf.TRUE_GRAPH, atol=1e-6)

  examples = list(tfds.as_numpy(builder.as_dataset(split="train")))
  assert len(examples) == 512
  assert set(examples[0]) == {"image", "attributes", "factors", "index"}
  examples.sort(key=lambda ex: int(ex["index"]))
  images = np.stack([ex["image"] for ex in examples])
  assert images.shape == (512, 64, 64, 3) and images.dtype == np.uint8
  expected = sf.generate(config.split_seed("train"), 512)
  np.testing.assert_array_equal([ex["index"] for ex in examples], np.arange(512))
  np.testing.assert_array_equal(images, expected["image"])
  np.testing.assert_array_equal(
      np.stack([ex["attributes"] for ex in examples]), expected["attributes"]
  )
  np.testing.assert_array_equal(np.stack([ex["factors"] for ex in examples]), expected["factors"])
  # The test split comes from a different seed.
  test_example = next(iter(tfds.as_numpy(builder.as_dataset(split="test"))))
  test_expected = sf.generate(config.split_seed("test"), 128)
  index = int(test_example["index"])
  np.testing.assert_array_equal(test_example["image"], test_expected["image"][index])
  assert config.split_seed("test") != config.split_seed("train")
