"""FID / KID against direct scipy computations; the feature extractors (local CNN, Keras
InceptionV3; the standard FID network: tests/test_fid_inception.py)."""

import hashlib

import jax
import ml_collections
import numpy as np
import pytest
import scipy.linalg

from experiments.configs import synthetic_gem
from gem_jax.data import load_examples
from gem_jax.metrics import features as feats_lib
from gem_jax.metrics import local_features
from gem_jax.metrics.fid import frechet_distance, kernel_inception_distance

TINY = dict(num_examples=256, steps=30, batch_size=32, seed=0)


def _random_feats(n, f, seed, shift=0.0, scale=1.0):
  rng = np.random.default_rng(seed)
  mix = rng.standard_normal((f, f)) / np.sqrt(f)
  return (rng.standard_normal((n, f)) @ mix) * scale + shift


def _fid_sqrtm(a, b, eps=1e-6):
  """The TTUR / pytorch-fid formula with scipy.linalg.sqrtm, written out independently."""
  mu1, mu2 = a.mean(0), b.mean(0)
  s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
  covmean = scipy.linalg.sqrtm(s1 @ s2)
  if not np.isfinite(covmean).all():
    offset = np.eye(s1.shape[0]) * eps
    covmean = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
  assert np.abs(np.imag(covmean)).max() < 1e-3
  covmean = np.real(covmean)
  return float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def _kid_direct(x, y):
  """Unbiased MMD^2 with k(x, y) = (x.y / F + 1)^3, by explicit double loops over pairs."""
  m, f = len(x), x.shape[1]
  k = lambda u, v: (u @ v / f + 1.0) ** 3
  xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
  yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
  xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
  return (xx + yy) / (m * (m - 1)) - 2 * xy / m**2


# ---------------------------------------------------------------------------------------- FID

def test_fid_of_a_set_with_itself_is_zero():
  a = _random_feats(500, 32, seed=0)
  assert abs(frechet_distance(a, a)) < 1e-6


@pytest.mark.parametrize("n, f", [(400, 16), (300, 64)])
def test_fid_matches_the_sqrtm_formula_and_is_symmetric(n, f):
  a = _random_feats(n, f, seed=1)
  b = _random_feats(n + 50, f, seed=2, shift=0.3, scale=1.5)
  want = _fid_sqrtm(a, b)
  np.testing.assert_allclose(frechet_distance(a, b), want, rtol=1e-6)
  np.testing.assert_allclose(frechet_distance(b, a), want, rtol=1e-6)


def test_fid_between_gaussians_matches_the_closed_form():
  # N(0, I) vs N(m, diag(s^2)): d^2 = |m|^2 + sum (1 - s)^2.
  rng = np.random.default_rng(3)
  f, n = 4, 400_000
  m, s = np.array([1.0, -0.5, 0.0, 2.0]), np.array([1.0, 2.0, 0.5, 3.0])
  a = rng.standard_normal((n, f))
  b = rng.standard_normal((n, f)) * s + m
  want = m @ m + ((1 - s) ** 2).sum()
  np.testing.assert_allclose(frechet_distance(a, b), want, rtol=5e-3)


def test_fid_with_fewer_samples_than_dimensions_is_finite_and_matches_eigenvalues():
  a, b = _random_feats(20, 50, seed=4), _random_feats(30, 50, seed=5, shift=0.1)
  s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
  # Tr((S1 S2)^{1/2}) = sum of square roots of the (real, >= 0) eigenvalues of S1 S2.
  tr = np.sqrt(np.clip(np.linalg.eigvals(s1 @ s2).real, 0, None)).sum()
  diff = a.mean(0) - b.mean(0)
  want = diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr
  np.testing.assert_allclose(frechet_distance(a, b), want, rtol=1e-6)


@pytest.mark.parametrize("fn", [frechet_distance, kernel_inception_distance])
def test_bad_inputs_are_value_errors(fn):
  a = np.zeros((5, 8))
  with pytest.raises(ValueError, match=r"feature dimensions differ: .*\[5, 8\].*\[5, 7\]"):
    fn(a, np.zeros((5, 7)))
  with pytest.raises(ValueError, match="feats_b has 1 rows; at least 2"):
    fn(a, np.zeros((1, 8)))
  nan = np.ones((5, 8))
  nan[3, 2] = np.nan
  with pytest.raises(ValueError, match="feats_a holds NaN or inf in 1 of 5 rows"):
    fn(nan, a)
  with pytest.raises(ValueError, match="2-D array"):
    fn(np.zeros(8), a)


# ---------------------------------------------------------------------------------------- KID

def test_kid_equals_a_direct_pairwise_computation():
  x, y = _random_feats(25, 6, seed=6), _random_feats(25, 6, seed=7, shift=0.4)
  kid = kernel_inception_distance(x, y, num_subsets=1, subset_size=25)
  assert kid["subset_size"] == 25 and kid["std"] == 0.0
  np.testing.assert_allclose(kid["mean"], _kid_direct(x, y), rtol=1e-10)
  # Every subset of size N is a permutation of the set: all subsets agree.
  many = kernel_inception_distance(x, y, num_subsets=5, subset_size=100)
  assert many["subset_size"] == 25
  np.testing.assert_allclose(many["mean"], kid["mean"], rtol=1e-10)
  assert many["std"] < 1e-12


def test_kid_of_identical_sets_is_the_small_nonpositive_unbiased_value():
  x = _random_feats(200, 16, seed=8)
  kid = kernel_inception_distance(x, x, num_subsets=3, subset_size=200)
  # With Y = X exactly: (2/m) (mean off-diagonal k - mean diagonal k) <= 0.
  k = (x @ x.T / 16 + 1) ** 3
  m = len(x)
  want = 2 / m * ((k.sum() - np.trace(k)) / (m * (m - 1)) - np.trace(k) / m)
  np.testing.assert_allclose(kid["mean"], want, rtol=1e-10)
  assert want <= 0 and abs(want) < 0.05 * k.diagonal().mean()


def test_kid_is_near_zero_for_one_distribution_and_grows_with_a_shift():
  x = _random_feats(600, 16, seed=9)
  same = kernel_inception_distance(x[:300], x[300:], num_subsets=20, subset_size=200)
  near = kernel_inception_distance(x, _random_feats(600, 16, seed=9, shift=0.2),
                                   num_subsets=20, subset_size=200)
  far = kernel_inception_distance(x, _random_feats(600, 16, seed=9, shift=0.6),
                                  num_subsets=20, subset_size=200)
  assert abs(same["mean"]) < 3 * same["std"] + 1e-3
  assert 0 < near["mean"] < far["mean"]
  assert near["mean"] > 10 * abs(same["mean"])
  again = kernel_inception_distance(x[:300], x[300:], num_subsets=20, subset_size=200)
  assert again == same   # seeded


# ------------------------------------------------------------------------ local CNN features

@pytest.fixture(scope="module")
def data_config(tfds_dir):
  config = synthetic_gem.get_config("tiny,beta_vae")
  config.data.data_dir = tfds_dir
  return config.data


@pytest.fixture(scope="module")
def cached(data_config, tmp_path_factory):
  root = tmp_path_factory.mktemp("extractors")
  return local_features.local_extractor(data_config, root, **TINY), root


@pytest.fixture(scope="module")
def images(data_config):
  return load_examples(data_config, "test", 40)["image"]


def test_local_features_shape_dtype_name_and_meta(cached, data_config, images):
  extractor, _ = cached
  out = extractor(images)
  assert out.shape == (40, 256) and out.dtype == np.float32 and extractor.dim == 256
  assert np.isfinite(out).all() and (out >= 0).all() and out.std() > 0
  # Scaled to RMS 1 on the training images, so KID's (x.y / F + 1)^3 sees x.x / F ~ 1.
  train = extractor(load_examples(data_config, "train", TINY["num_examples"])["image"])
  np.testing.assert_allclose(np.sqrt(np.mean(np.square(train, dtype=np.float64))), 1.0,
                             rtol=1e-5)
  assert isinstance(extractor, feats_lib.FeatureExtractor)
  assert extractor.name.startswith("local_cnn[synthetic_faces/tiny,")
  assert "steps=30" in extractor.name
  assert feats_lib.metric_label(extractor.name) == "FD (local CNN)"
  held_out = extractor.meta["held_out"]
  assert held_out["split"] == "test" and held_out["num_examples"] == 128
  assert list(held_out["accuracy"]) == ["bangs", "bald", "gender", "beard", "blond", "makeup"]
  test = load_examples(data_config, "test", 128)
  logits = extractor.outputs(test["image"], "logits")  # [128, 6 attributes, 6 levels]
  right = logits.argmax(-1) == test["attributes"]
  assert held_out["accuracy"] == {a: round(float(v), 4) for a, v in
                                  zip(held_out["accuracy"], right.mean(0), strict=True)}
  assert set(held_out["factor_r2"]) == {"skin_tone", "background_hue", "background_value",
                                         "shift_x", "shift_y", "scale"}


def test_features_do_not_depend_on_the_batching(cached, data_config, images):
  extractor, root = cached
  small = local_features.load_local_extractor(
      local_features.cache_dir(data_config, root, **TINY), batch_size=7)
  np.testing.assert_allclose(small(images), extractor(images), rtol=1e-5, atol=1e-5)
  assert small(images[:0]).shape == (0, 256)


def test_same_seed_gives_identical_params_and_features(cached, data_config, images, tmp_path):
  extractor, _ = cached
  again = local_features.train_local_extractor(data_config, tmp_path / "again", **TINY)
  for a, b in zip(jax.tree.leaves(extractor.params), jax.tree.leaves(again.params),
                  strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  np.testing.assert_array_equal(again(images), extractor(images))
  # and the save/load round trip gives the same features
  loaded = local_features.load_local_extractor(tmp_path / "again")
  np.testing.assert_array_equal(loaded(images), extractor(images))
  assert loaded.name == extractor.name and loaded.meta == again.meta
  with pytest.raises(FileExistsError, match="already holds files"):
    local_features.train_local_extractor(data_config, tmp_path / "again", **TINY)


def test_cached_call_loads_without_retraining(cached, data_config, images, monkeypatch):
  extractor, root = cached
  saved = local_features.cache_dir(data_config, root, **TINY) / "params.npz"
  mtime = saved.stat().st_mtime_ns
  assert [p.name for p in root.iterdir()] == [saved.parent.name]   # no temp folder left

  def fail(*args, **kwargs):
    raise AssertionError("retrained although the extractor is cached")

  monkeypatch.setattr(local_features, "train_local_extractor", fail)
  loaded = local_features.local_extractor(data_config, root, **TINY)
  assert saved.stat().st_mtime_ns == mtime
  np.testing.assert_array_equal(loaded(images), extractor(images))
  # Other settings are another cache entry (here: would train).
  with pytest.raises(AssertionError, match="retrained"):
    local_features.local_extractor(data_config, root, **{**TINY, "seed": 1})


def test_local_features_reject_bad_images(cached):
  extractor, _ = cached
  with pytest.raises(ValueError, match=r"expects uint8 images \[N, 64, 64, 3\]"):
    extractor(np.zeros((2, 32, 32, 3), np.uint8))
  with pytest.raises(ValueError, match="float32"):
    extractor(np.zeros((2, 64, 64, 3), np.float32))


def test_unlabelled_data_sets_ask_for_inception_weights(tmp_path):
  config = ml_collections.ConfigDict(dict(name="image_folder", config="x", image_dir="/nowhere"))
  for fn in (local_features.local_extractor, local_features.train_local_extractor):
    with pytest.raises(ValueError, match="no labels.*InceptionV3 weights file"):
      fn(config, tmp_path)


def test_load_of_an_empty_folder_names_it(tmp_path):
  with pytest.raises(FileNotFoundError, match=str(tmp_path)):
    local_features.load_local_extractor(tmp_path)


# ------------------------------------------------------------------------------ InceptionV3

def test_inception_missing_file_names_path_and_download(tmp_path):
  path = tmp_path / "nope.h5"
  with pytest.raises(FileNotFoundError) as err:
    feats_lib.InceptionV3Features.from_file(path)
  msg = str(err.value)
  assert str(path) in msg and feats_lib.INCEPTION_WEIGHTS_FILE in msg
  assert feats_lib.INCEPTION_WEIGHTS_URL in msg


def test_inception_missing_file_message_in_full_and_the_default_batch(tmp_path, monkeypatch):
  path = tmp_path / "nope.h5"
  with pytest.raises(FileNotFoundError) as err:
    feats_lib.InceptionV3Features.from_file(path)
  assert str(err.value) == (
      f"InceptionV3 weights file {path} does not exist. Download "
      f"{feats_lib.INCEPTION_WEIGHTS_FILE} (~87 MB) from {feats_lib.INCEPTION_WEIGHTS_URL} and "
      "pass its path (see docs/metrics.md); without it, use the local CNN features "
      "(local_extractor), reported as FD, not FID.")
  built = []
  monkeypatch.setattr(feats_lib, "_build_inception", lambda weights: built.append(weights) or 0)
  path.write_bytes(b"")
  extractor = feats_lib.InceptionV3Features.from_file(path)
  assert built == [str(path)] and extractor.batch_size == 50


def test_weights_checksums_full_and_prefix(tmp_path, monkeypatch):
  path = tmp_path / "w.pth"
  path.write_bytes(b"some weights")
  actual = hashlib.sha256(b"some weights").hexdigest()
  assert feats_lib.check_sha256(path, actual.upper()) == actual
  with pytest.raises(feats_lib.WeightsChecksumError, match=f"expected sha256 {actual[:8]},"):
    feats_lib.check_sha256(path, actual[:8])   # a pinned digest is the whole digest
  with pytest.raises(feats_lib.WeightsChecksumError) as err:
    feats_lib.check_sha256(path, None)
  assert str(err.value) == (
      f"FID Inception weights {path}: expected sha256 prefix (torch.hub's, from "
      f"{feats_lib.FID_WEIGHTS_FILE}) 6726825d, but the file's sha256 is {actual} (12 bytes): a "
      f"wrong or truncated file. Download {feats_lib.FID_WEIGHTS_FILE} again from "
      f"{feats_lib.FID_WEIGHTS_URL}")
  monkeypatch.setattr(feats_lib, "FID_WEIGHTS_SHA256_PREFIX", actual[:8])
  assert feats_lib.check_sha256(path, None) == actual   # without a pin: the prefix only


def test_inception_builds_and_maps_images_to_2048_features():
  # Random weights (no download): checks the construction, resizing and pooling path only.
  extractor = feats_lib.InceptionV3Features(feats_lib._build_inception(None), batch_size=2)
  images = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
  out = extractor(images)
  assert out.shape == (3, 2048) and out.dtype == np.float32 and np.isfinite(out).all()
  # Not the standard FID network (tests/test_fid_inception.py): its numbers are not "FID".
  assert extractor.name == "inception_v3_keras"
  assert feats_lib.metric_label(extractor.name) == "FD (Keras InceptionV3)"
  assert feats_lib.metric_label(extractor.name, "kd") == "KD (Keras InceptionV3)"
