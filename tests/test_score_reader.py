"""The score reader (gem_jax/metrics/score_reader.py): a level reader trained on a run's scored
images and scores alone, never on the data set's labels."""
import hashlib
import json

import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
import scipy.stats

from gem_jax.metrics import score_reader as sr
from gem_jax.metrics.traversal import expected_levels
from gem_jax.scorers.images import image_hashes

N, SIZE = 48, 16
FAST = dict(steps=2, batch_size=8, widths=(8, 8, 8, 8), hidden=16)


def _images(seed=0):
  return np.random.default_rng(seed).integers(0, 256, (N, SIZE, SIZE, 3), dtype=np.uint8)


class _ImagesOnly(dict):
  """load_examples' output where reading anything but 'image' fails the test."""

  def __getitem__(self, key):
    if key != "image":
      raise AssertionError(f"the score reader read the data set's {key!r}")
    return super().__getitem__(key)

  def _refuse(self, *args, **kwargs):
    raise AssertionError("the score reader looked past the images")

  get = items = values = keys = __iter__ = pop = _refuse


def _run(tmp_path, images, scores, monkeypatch, names=("a", "b")):
  """A GEM run folder holding scores of `images`, whose data set also has labels."""
  (tmp_path / "scores").mkdir(exist_ok=True)
  np.save(tmp_path / "scores" / "scores.npy", scores)
  digest = hashlib.sha256("".join(image_hashes(images)).encode()).hexdigest()
  (tmp_path / "scores" / "scores.json").write_text(json.dumps(
      {"attributes": list(names), "data": {"images_sha256": digest}}))
  labels = np.full((len(images), 6), 5, np.int32)
  monkeypatch.setattr(sr, "load_examples", lambda config, split, num: _ImagesOnly(
      image=images[:num], attributes=labels[:num]))
  return ml_collections.ConfigDict({"name": "synthetic_faces", "split": "train"})


def test_missing_answers_are_left_out_of_the_loss():
  logits = jnp.asarray(np.random.default_rng(0).normal(size=(2, 2, 6)), jnp.float32)
  scores = jnp.array([[1, -1], [3, 0]])
  ce = optax.softmax_cross_entropy_with_integer_labels
  want = (ce(logits[0, 0], 1) + ce(logits[1, 0], 3) + ce(logits[1, 1], 0)) / 3
  assert float(sr._masked_loss(logits, scores)) == pytest.approx(float(want), rel=1e-6)


def test_the_run_reader_reads_images_and_scores_never_labels(tmp_path, monkeypatch):
  images = _images()
  scores = np.random.default_rng(1).integers(-1, 6, (N, 2)).astype(np.int32)
  data = _run(tmp_path, images, scores, monkeypatch)
  reader = sr.run_score_reader(data, tmp_path, **FAST)
  assert reader.meta["attribute_names"] == ["a", "b"]
  assert reader.outputs(images, "logits").shape == (N, 2, 6)
  assert reader.meta["held_out"]["num_images"] == round(0.1 * N)
  assert (tmp_path / "score_reader").is_dir()  # cached in the run folder


def test_the_reader_is_cached_by_scores_and_refuses_other_images(tmp_path, monkeypatch):
  images = _images()
  scores = np.random.default_rng(1).integers(0, 6, (N, 2)).astype(np.int32)
  data = _run(tmp_path, images, scores, monkeypatch)
  first = sr.run_score_reader(data, tmp_path, **FAST)
  trained = []
  real = sr.train_score_reader
  monkeypatch.setattr(sr, "train_score_reader", lambda *a, **k: trained.append(1) or real(*a, **k))
  again = sr.run_score_reader(data, tmp_path, **FAST)
  assert trained == []
  np.testing.assert_array_equal(again.outputs(images, "logits"), first.outputs(images, "logits"))
  np.save(tmp_path / "scores" / "scores.npy", (scores + 1) % 6)  # rescored: a new reader
  sr.run_score_reader(data, tmp_path, **FAST)
  assert trained == [1]
  _run(tmp_path, images, scores, monkeypatch)
  monkeypatch.setattr(sr, "load_examples", lambda *a: {"image": _images(seed=5)})
  with pytest.raises(ValueError, match="are not the images"):
    sr.run_score_reader(data, tmp_path, **FAST)


def test_the_reader_learns_levels_from_scores(tmp_path):
  # Score of 'a' = brightness of the red channel in six steps, of 'b' = of the green one.
  rng = np.random.default_rng(0)
  levels = rng.integers(0, 6, (128, 2))
  images = np.zeros((128, SIZE, SIZE, 3), np.uint8)
  images[..., 0] = (levels[:, 0] * 50)[:, None, None]
  images[..., 1] = (levels[:, 1] * 50)[:, None, None]
  reader = sr.train_score_reader(images, levels, ["a", "b"], tmp_path / "r", steps=150,
                                 batch_size=32, holdout_fraction=0.25, widths=(16, 16, 16, 16),
                                 hidden=32)
  read = expected_levels(reader.outputs(images, "logits"))
  for a in range(2):
    assert scipy.stats.spearmanr(read[:, a], levels[:, a]).statistic > 0.8
  assert min(reader.meta["held_out"]["within_one"].values()) > 0.6
