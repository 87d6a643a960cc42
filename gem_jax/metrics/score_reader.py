"""A level reader for data sets without labels: a small CNN trained on a GEM run's scored
images and their scores, and on nothing else.

Steerability and the attributes a reconstruction keeps need something that reads an
attribute's level off a picture. Where the data set has labels the project's local CNN does
(gem_jax/metrics/local_features.py); CelebA's and an image folder's runs have only what the
MLLM (or the oracle SIMULATION) said about the first N images of the training split. So the
reader is a `LocalCNN` (n attribute heads, levels 0..MAX_SCORE, no factor heads) trained with a
softmax cross-entropy on those N images (mirrored and shifted) against their scores, missing
answers (-1) left out.
It never reads the data set's labels: `run_score_reader` keeps only the 'image' feature of
the loaded examples (tested), and the scores come from <run>/scores/scores.npy. A share of the
scored images (`holdout_fraction`, drawn by the seed) is held out; its agreement with the
scores goes into meta.json ('held_out'), bounded above by the scorer's own accuracy.

The reader is a `LocalFeatures` (its `outputs(images, 'logits')` [N, n, L] and meta's
'attribute_names' are what `gem_jax.evaluation` reads), cached in the run folder:
<run>/score_reader/<digest of the scores, images and settings>/ (params.npz, meta.json).
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gem_jax.data import load_examples
from gem_jax.metrics.local_features import (
  LocalCNN,
  LocalFeatures,
  index_batches,
  load_local_extractor,
  save_atomic,
)
from gem_jax.scorers.images import image_hashes
from gem_jax.scorers.prompt import MAX_SCORE
from gem_jax.train.guide_batches import holdout_split

READER_VERSION = 1  # part of the cache key: bump when the architecture or recipe changes
# Chosen on the demo's 1,500 oracle-scored images (150 held out), by the accuracy against the
# TRUE levels of 500 validation images: without augmentation 0.67 0.87 0.77 0.87 0.91 0.64
# (bangs, bald, gender, beard, blond, makeup), with flips, shifts and weight decay 1e-4 0.60
# 0.94 0.78 0.90 0.97 0.77; the local CNN, trained on 20,000 labelled images, reads 0.89-1.00
# (docs/metrics.md, "The score reader").
READER_DEFAULTS = dict(steps=600, batch_size=64, seed=0, learning_rate=1e-3,
                       weight_decay=1e-4, augment=True, holdout_fraction=0.1,
                       widths=(32, 32, 64, 64), hidden=256)
SCORES = Path("scores")  # a GEM run's scores folder (gem_jax/gem_pipeline.py)


def _masked_loss(logits: jax.Array, scores: jax.Array) -> jax.Array:
  """Mean softmax cross-entropy of logits [B, n, L] against scores int [B, n] over the
  answered entries (score >= 0)."""
  mask = (scores >= 0).astype(jnp.float32)
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.maximum(scores, 0))
  return jnp.sum(ce * mask) / jnp.maximum(mask.sum(), 1.0)


def _augment(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """A batch [B, H, W, 3] with half its images mirrored left-right and all shifted by one
  random offset of up to 3 pixels (wrapping round): levels do not change, the few hundred
  scored images stretch further."""
  flip = rng.random(len(x)) < 0.5
  x = np.where(flip[:, None, None, None], x[:, :, ::-1], x)
  return np.roll(x, tuple(rng.integers(-3, 4, 2)), axis=(1, 2))


def _fit(images: np.ndarray, scores: np.ndarray, model_meta: dict, settings: dict):
  """AdamW on the masked cross-entropy: params of LocalCNN(**model_meta) after
  settings['steps'] steps of settings['batch_size'] images [M, H, W, 3] with scores [M, n]
  (augmented by `_augment` when settings['augment'])."""
  model = LocalCNN(**{**model_meta, "widths": tuple(model_meta["widths"])})
  params = model.init(jax.random.PRNGKey(settings["seed"]),
                      jnp.zeros((1, *images.shape[1:])))["params"]
  tx = optax.adamw(settings["learning_rate"], weight_decay=settings["weight_decay"])
  opt_state = tx.init(params)

  @jax.jit
  def step(params, opt_state, x, y):
    loss_fn = lambda p: _masked_loss(model.apply({"params": p}, x / 255.0)["logits"], y)
    grads = jax.grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  order = index_batches(len(images), min(settings["batch_size"], len(images)), settings["seed"])
  rng = np.random.default_rng([settings["seed"], 1])
  for _ in range(settings["steps"]):
    idx = next(order)
    x = _augment(images[idx], rng) if settings["augment"] else images[idx]
    params, opt_state = step(params, opt_state, x.astype(np.float32), scores[idx])
  return jax.device_get(params)


def _agreement(reader: LocalFeatures, images: np.ndarray, scores: np.ndarray) -> dict:
  """Per attribute on answered entries: the share whose most likely level equals the score
  ('accuracy') and whose expected level is within one of it ('within_one')."""
  names = reader.meta["attribute_names"]
  if not len(images):
    return {"num_images": 0}
  logits = reader.outputs(images, "logits")
  p = np.exp(logits - logits.max(-1, keepdims=True))
  expected = (p / p.sum(-1, keepdims=True)) @ np.arange(logits.shape[-1])
  answered = scores >= 0
  share = lambda hit: [float(hit[answered[:, a], a].mean()) if answered[:, a].any() else None
                       for a in range(len(names))]
  return {"num_images": int(len(images)),
          "accuracy": dict(zip(names, share(logits.argmax(-1) == scores))),
          "within_one": dict(zip(names, share(np.abs(expected - scores) <= 1.0)))}


def _settings(**overrides) -> dict:
  unknown = set(overrides) - set(READER_DEFAULTS)
  if unknown:
    raise TypeError(f"unknown score reader settings {sorted(unknown)}; known: "
                    f"{sorted(READER_DEFAULTS)}")
  settings = {**READER_DEFAULTS, **overrides}
  return {**settings, "widths": [int(w) for w in settings["widths"]]}


def train_score_reader(images: np.ndarray, scores: np.ndarray, attribute_names: list[str],
                       out_dir: str | Path, name: str = "score_reader",
                       **settings) -> LocalFeatures:
  """Trains the reader on images uint8 [N, H, W, 3] and their scores int [N, n] (-1 =
  missing; levels 0..MAX_SCORE), holding out settings['holdout_fraction'] of them, and saves
  it to out_dir (atomically; FileExistsError when out_dir holds files)."""
  settings = _settings(**settings)
  images, scores = np.asarray(images), np.asarray(scores, np.int32)
  if scores.shape != (len(images), len(attribute_names)):
    raise ValueError(f"expected scores [{len(images)}, {len(attribute_names)}], got "
                     f"{list(scores.shape)}")
  out_dir = Path(out_dir).expanduser().absolute()
  if out_dir.exists() and any(out_dir.iterdir()):
    raise FileExistsError(f"{out_dir} already holds files")
  begin = time.time()
  train, held = holdout_split(len(images), settings["holdout_fraction"], settings["seed"])
  model_meta = dict(widths=list(settings["widths"]), hidden=int(settings["hidden"]),
                    num_attributes=len(attribute_names), num_classes=MAX_SCORE + 1,
                    num_factors=0)
  params = _fit(images[train], scores[train], model_meta, settings)
  meta = dict(name=name, reader_version=READER_VERSION, settings=settings,
              image_size=int(images.shape[1]), model=model_meta,
              attribute_names=list(attribute_names), factor_names=[], feature_scale=1.0,
              num_train_images=int(len(train)), train_seconds=round(time.time() - begin, 1),
              reads="scores only (never the data set's labels)")
  reader = LocalFeatures(params, meta)
  meta["held_out"] = {"against": "the held-out images' scores",
                      **_agreement(reader, images[held], scores[held])}
  save_atomic(out_dir, params, meta)
  return reader


def _digest(images: np.ndarray, scores: np.ndarray, settings: dict) -> str:
  key = json.dumps({"version": READER_VERSION, "settings": settings,
                    "images": hashlib.sha256("".join(image_hashes(images)).encode()).hexdigest(),
                    "scores": hashlib.sha256(np.ascontiguousarray(scores, np.int32).tobytes())
                    .hexdigest()}, sort_keys=True)
  return hashlib.sha1(key.encode()).hexdigest()[:10]


def score_reader(images: np.ndarray, scores: np.ndarray, attribute_names: list[str],
                 cache_root: str | Path, name: str = "score_reader",
                 **settings) -> LocalFeatures:
  """The reader of these scored images and scores: loaded from cache_root/<digest>/ when it is
  there, else trained into it (`train_score_reader`)."""
  settings = _settings(**settings)
  out_dir = Path(cache_root).expanduser().absolute() / _digest(images, scores, settings)
  if (out_dir / "meta.json").is_file():
    return load_local_extractor(out_dir)
  try:
    return train_score_reader(images, scores, attribute_names, out_dir, name, **settings)
  except FileExistsError:
    return load_local_extractor(out_dir)


def run_score_reader(data_config, run_root: str | Path, cache_root: str | Path | None = None,
                     **settings) -> LocalFeatures:
  """The reader of a GEM run: <run_root>/scores/scores.npy and the images they score, the first
  N of config.data.split (only their 'image' feature is kept), cached in cache_root (default
  <run_root>/score_reader).

  Raises:
    FileNotFoundError: run_root holds no scores/scores.npy.
    ValueError: the loaded images are not those the scores were made of (scores.json's
      images_sha256).
  """
  root = Path(run_root).expanduser().absolute()
  if not (root / SCORES / "scores.npy").is_file():
    raise FileNotFoundError(f"{root} holds no {SCORES}/scores.npy: the score reader needs a "
                            "GEM run's scores")
  scores = np.load(root / SCORES / "scores.npy")
  info = json.loads((root / SCORES / "scores.json").read_text())
  images = load_examples(data_config, data_config.split, len(scores))["image"]
  want = (info.get("data") or {}).get("images_sha256")
  if want and hashlib.sha256("".join(image_hashes(images)).encode()).hexdigest() != want:
    raise ValueError(f"the first {len(scores)} images of {data_config.name!r} split "
                     f"{data_config.split!r} are not the images {root / SCORES} scored")
  name = f"score_reader[{len(scores)} scored {data_config.name} images]"
  return score_reader(images, scores, list(info["attributes"]),
                      cache_root or root / "score_reader", name, **settings)
