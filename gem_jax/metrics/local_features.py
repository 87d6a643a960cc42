"""The offline feature extractor: a small CNN trained by the project on the data set at hand.

No Inception weights can be downloaded at run time, so the default features for Fréchet / kernel
distances come from a supervised multi-task classifier trained on the data set's own labels
(for synthetic_faces: the 6 attributes as 6-way softmax heads plus the 6 nuisance factors as
standardised regression heads). Its features are the 256-d penultimate layer after the ReLU,
multiplied by one constant (`feature_scale` in meta.json) that gives them a root mean square of 1
over the training images: KID's kernel (x.y / F + 1)^3 then works at the scale it was designed
for (raw features have x.x / F ~ 45, which made KID's subset spread 10^4 times larger).

Distances on these features are NOT FID: the extractor's `name`
(`local_cnn[synthetic_faces/small]`) goes into every metric key and table, where it reads as
"FD (local CNN)". Numbers are comparable only between runs that used the same extractor
directory (same data set, config and training settings).

A saved extractor is a folder holding `params.npz` (flattened Flax params) and `meta.json`
(name, data config, training settings, label spec, held-out accuracy per attribute).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import traverse_util
from tqdm.auto import tqdm

from gem_jax.data import get_builder, get_dataset, load_examples
from gem_jax.metrics.batching import map_batches
from gem_jax.models.layers import DownConv

# Part of the cache key: bump when the architecture or the recipe changes.
RECIPE_VERSION = 1
TRAIN_DEFAULTS = dict(num_examples=20_000, steps=600, batch_size=64, seed=0,
                      learning_rate=1e-3)


class LocalCNN(nn.Module):
  """Images [B, H, W, 3] in [0, 1] -> {'features': [B, hidden] (after ReLU),
  'logits': [B, num_attributes, num_classes], 'factors': [B, num_factors]}."""

  widths: tuple[int, ...] = (32, 32, 64, 64)
  hidden: int = 256
  num_attributes: int = 6
  num_classes: int = 6
  num_factors: int = 6

  @nn.compact
  def __call__(self, x: jax.Array) -> dict:
    h = x
    for width in self.widths:
      h = nn.relu(DownConv(width)(h))
    h = h.reshape(h.shape[0], -1)
    feats = nn.relu(nn.Dense(self.hidden)(h))
    logits = nn.Dense(self.num_attributes * self.num_classes)(feats)
    out = dict(features=feats,
               logits=logits.reshape(-1, self.num_attributes, self.num_classes))
    if self.num_factors:
      out["factors"] = nn.Dense(self.num_factors)(feats)
    return out


@dataclasses.dataclass(eq=False)
class LocalFeatures:
  """A trained LocalCNN as a feature extractor: `__call__(uint8 [N, H, W, 3]) -> float32
  [N, dim]`, batched internally. `meta` is the saved meta.json."""

  params: Any
  meta: dict
  batch_size: int = 256

  def __post_init__(self):
    model = LocalCNN(**_module_kwargs(self.meta["model"]))
    self._apply = jax.jit(
        lambda p, x: model.apply({"params": p}, x.astype(jnp.float32) / 255.0))

  @property
  def name(self) -> str:
    return self.meta["name"]

  @property
  def dim(self) -> int:
    return int(self.meta["model"]["hidden"])

  def outputs(self, images: np.ndarray, key: str) -> np.ndarray:
    """One LocalCNN output ('features', 'logits', 'factors') for uint8 images [N, H, W, 3]."""
    size = self.meta["image_size"]
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1:] != (size, size, 3) or images.dtype != np.uint8:
      raise ValueError(f"{self.name} expects uint8 images [N, {size}, {size}, 3]; got "
                       f"{images.dtype} {list(images.shape)}")
    return map_batches(lambda x: self._apply(self.params, x)[key], images, self.batch_size,
                       self.dim, self.name)

  def __call__(self, images: np.ndarray) -> np.ndarray:
    """uint8 images [N, H, W, 3] -> features float32 [N, dim] (scaled: RMS 1 on train)."""
    return self.outputs(images, "features") * np.float32(self.meta["feature_scale"])


def _module_kwargs(model_meta: dict) -> dict:
  kw = dict(model_meta)
  kw["widths"] = tuple(kw["widths"])
  return kw


def _settings(**overrides) -> dict:
  unknown = set(overrides) - set(TRAIN_DEFAULTS)
  if unknown:
    raise TypeError(f"unknown training settings {sorted(unknown)}; known: "
                    f"{sorted(TRAIN_DEFAULTS)}")
  return {**TRAIN_DEFAULTS, **overrides}


def extractor_name(data_config, settings: dict) -> str:
  """`local_cnn[dataset/config]`, plus every training setting that differs from the defaults."""
  changed = [f"{k}={v}" for k, v in settings.items() if v != TRAIN_DEFAULTS[k]]
  return f"local_cnn[{data_config.name}/{data_config.config}{''.join(',' + c for c in changed)}]"


def _check_labelled(data_config) -> None:
  if not get_dataset(data_config).attribute_names:
    raise ValueError(f"data set {data_config.name!r} has no labels to train the local feature "
                     "CNN on; pass an InceptionV3 weights file instead "
                     "(FIDInceptionFeatures.from_file for FID, or InceptionV3Features.from_file; "
                     "see docs/metrics.md)")


def _targets(data_config, examples: dict) -> dict:
  """Label spec and targets: attributes int32 [N, A]; factors float32 [N, R] (raw).

  When the 'attributes' feature holds the data set's attribute levels (synthetic_faces), the
  heads are named after them with num_levels classes and its nuisance factors are regression
  targets; otherwise (CelebA's 40 binary columns) they are attribute_0.. with
  max(2, max + 1) classes and there are no factor targets.
  """
  if "attributes" not in examples:
    raise ValueError(f"data set {data_config.name!r} has no 'attributes' labels (keys: "
                     f"{sorted(examples)}); pass an InceptionV3 weights file instead "
                     "(FIDInceptionFeatures.from_file for FID, or InceptionV3Features.from_file; "
                     "see docs/metrics.md)")
  attributes = examples["attributes"].astype(np.int32)
  num_attr = attributes.shape[1]
  spec = get_dataset(data_config)
  if spec.label_key == "attributes":
    names, num_classes = list(spec.attribute_names), spec.num_levels
  else:
    names = [f"attribute_{i}" for i in range(num_attr)]
    num_classes = max(2, int(attributes.max()) + 1)
  factor_names, factors = list(spec.nuisance_names), spec.nuisance_factors(examples)
  return dict(attribute_names=names, num_classes=num_classes, factor_names=factor_names,
              attributes=attributes, factors=factors)


def _load(data_config, split: str, num_examples: int) -> dict:
  """The first min(num_examples, split size) examples of a split (tfds rejects longer slices)."""
  size = get_builder(data_config).info.splits[split].num_examples
  return load_examples(data_config, split, min(num_examples, size))


def index_batches(n: int, batch_size: int, seed: int):
  """Endless index batches [batch_size]: a fresh permutation of range(n) per epoch."""
  rng = np.random.default_rng(seed)
  while True:
    perm = rng.permutation(n)
    for start in range(0, n - batch_size + 1, batch_size):
      yield perm[start:start + batch_size]


def train_local_extractor(data_config, out_dir: str | Path, *,
                          num_examples: int = TRAIN_DEFAULTS["num_examples"],
                          steps: int = TRAIN_DEFAULTS["steps"],
                          batch_size: int = TRAIN_DEFAULTS["batch_size"],
                          seed: int = TRAIN_DEFAULTS["seed"],
                          learning_rate: float = TRAIN_DEFAULTS["learning_rate"],
                          num_eval_examples: int = 2_000) -> LocalFeatures:
  """Trains a LocalCNN on the first `num_examples` of the train split and saves it to out_dir.

  Adam, `steps` steps of `batch_size` (shuffled per epoch from `seed`); loss = mean softmax
  cross-entropy over attribute heads + mean squared error of the standardised factors. The
  held-out accuracy per attribute (and the majority-class baseline) on the first
  `num_eval_examples` of the test split goes into meta.json. The folder appears atomically.

  Raises:
    ValueError: the data set has no labels (image_folder).
    FileExistsError: out_dir already holds something.
  """
  _check_labelled(data_config)
  out_dir = Path(out_dir).expanduser().absolute()
  if out_dir.exists() and any(out_dir.iterdir()):
    raise FileExistsError(f"{out_dir} already holds files; load it with load_local_extractor "
                          "or choose an empty folder")
  settings = _settings(num_examples=num_examples, steps=steps, batch_size=batch_size,
                       seed=seed, learning_rate=learning_rate)
  begin = time.time()
  train = _load(data_config, "train", num_examples)
  spec = _targets(data_config, train)
  images = train["image"]
  mean, std = spec["factors"].mean(0), np.maximum(spec["factors"].std(0), 1e-6)
  factors = (spec["factors"] - mean) / std
  model_meta = dict(widths=[32, 32, 64, 64], hidden=256,
                    num_attributes=spec["attributes"].shape[1],
                    num_classes=spec["num_classes"], num_factors=factors.shape[1])
  model = LocalCNN(**_module_kwargs(model_meta))
  params = model.init(jax.random.PRNGKey(seed), jnp.zeros((1, *images.shape[1:])))["params"]
  tx = optax.adam(learning_rate)
  opt_state = tx.init(params)

  @jax.jit
  def train_step(params, opt_state, x, attributes, factors):
    def loss_fn(p):
      out = model.apply({"params": p}, x.astype(jnp.float32) / 255.0)
      ce = optax.softmax_cross_entropy_with_integer_labels(out["logits"], attributes).mean()
      mse = jnp.mean((out["factors"] - factors) ** 2) if "factors" in out else 0.0
      return ce + mse, (ce, mse)
    (_, (ce, mse)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, ce, mse

  batch = min(batch_size, len(images))
  order = index_batches(len(images), batch, seed)
  bar = tqdm(range(steps), desc="local_cnn", unit="step", leave=False, mininterval=2.0)
  for step in bar:
    idx = next(order)
    params, opt_state, ce, mse = train_step(params, opt_state, images[idx],
                                            spec["attributes"][idx], factors[idx])
    if step % 100 == 0 or step == steps - 1:
      bar.set_postfix(ce=f"{float(ce):.3f}", mse=f"{float(mse):.3f}")
  params = jax.device_get(params)
  train_seconds = time.time() - begin

  meta = dict(name=extractor_name(data_config, settings), recipe_version=RECIPE_VERSION,
              data=_config_dict(data_config), settings=settings,
              image_size=int(images.shape[1]), model=model_meta,
              attribute_names=spec["attribute_names"], factor_names=spec["factor_names"],
              factor_mean=mean.tolist(), factor_std=std.tolist(),
              num_train_examples=int(len(images)), train_seconds=round(train_seconds, 1))
  extractor = LocalFeatures(params, meta)
  raw = extractor.outputs(images[:2_000], "features")
  meta["feature_scale"] = float(1.0 / max(np.sqrt(np.mean(np.square(raw, dtype=np.float64))),
                                          1e-12))
  meta["held_out"] = _evaluate(extractor, data_config, num_eval_examples)
  save_atomic(out_dir, params, meta)
  return extractor


def _evaluate(extractor: LocalFeatures, data_config, num_examples: int) -> dict:
  """Accuracy per attribute, the majority-class baseline and R^2 per factor on the test split."""
  test = _load(data_config, "test", num_examples)
  spec = _targets(data_config, test)
  meta = extractor.meta
  pred = extractor.outputs(test["image"], "logits").argmax(-1)
  acc = (pred == spec["attributes"]).mean(0)
  majority = [np.bincount(col).max() / len(col) for col in spec["attributes"].T]
  result = dict(split="test", num_examples=int(len(pred)),
                accuracy=dict(zip(meta["attribute_names"], np.round(acc, 4).tolist())),
                majority_baseline=dict(zip(meta["attribute_names"],
                                           np.round(majority, 4).tolist())))
  if meta["factor_names"]:
    pred_f = extractor.outputs(test["image"], "factors") * meta["factor_std"]
    pred_f = pred_f + np.asarray(meta["factor_mean"])
    resid = ((pred_f - spec["factors"]) ** 2).sum(0)
    total = ((spec["factors"] - spec["factors"].mean(0)) ** 2).sum(0)
    result["factor_r2"] = dict(zip(meta["factor_names"],
                                   np.round(1 - resid / np.maximum(total, 1e-12), 4).tolist()))
  return result


def _config_dict(data_config) -> dict:
  d = data_config.to_dict() if hasattr(data_config, "to_dict") else dict(data_config)
  return json.loads(json.dumps(d, default=str))


def save_atomic(out_dir: Path, params, meta: dict) -> None:
  """Writes params.npz + meta.json into a temp sibling folder, then renames it to out_dir."""
  out_dir.parent.mkdir(parents=True, exist_ok=True)
  tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp-"))
  try:
    flat = traverse_util.flatten_dict(params, sep="/")
    np.savez(tmp / "params.npz", **{k: np.asarray(v) for k, v in flat.items()})
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    os.chmod(tmp, 0o755)
    if out_dir.exists():
      out_dir.rmdir()   # empty (checked before training); rename needs it gone or empty
    os.rename(tmp, out_dir)
  except OSError as err:
    shutil.rmtree(tmp, ignore_errors=True)
    if (out_dir / "meta.json").exists():   # another process finished first
      raise FileExistsError(f"{out_dir} was written by another process") from err
    raise
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise


def load_local_extractor(out_dir: str | Path, *, batch_size: int = 256) -> LocalFeatures:
  """A LocalFeatures saved by `train_local_extractor` (FileNotFoundError naming the folder)."""
  out_dir = Path(out_dir).expanduser().absolute()
  if not (out_dir / "meta.json").is_file() or not (out_dir / "params.npz").is_file():
    raise FileNotFoundError(f"{out_dir} holds no local feature extractor (expected "
                            "params.npz and meta.json from train_local_extractor)")
  meta = json.loads((out_dir / "meta.json").read_text())
  with np.load(out_dir / "params.npz") as flat:
    params = traverse_util.unflatten_dict({k: flat[k] for k in flat.files}, sep="/")
  return LocalFeatures(params, meta, batch_size)


def cache_dir(data_config, cache_root: str | Path, **settings) -> Path:
  """Where `local_extractor` keeps the extractor for this data set and these settings (and,
  for a labelled folder, this folder and labels file: two folders never share one)."""
  settings = _settings(**settings)
  contents = dict(recipe=RECIPE_VERSION, settings=settings)
  folder = {k: os.path.abspath(os.path.expanduser(data_config.get(k)))
            for k in ("image_dir", "labels_csv") if data_config.get(k)}
  if folder:  # absent for the embedded data sets, whose cache folders keep their names
    contents["folder"] = folder
  key = json.dumps(contents, sort_keys=True)
  digest = hashlib.sha1(key.encode()).hexdigest()[:10]
  return (Path(cache_root).expanduser().absolute()
          / f"local_cnn-{data_config.name}-{data_config.config}-{digest}")


def local_extractor(data_config, cache_root: str | Path, **settings) -> LocalFeatures:
  """Loads the cached extractor for (data set, config, settings), else trains and saves it.

  settings: any of TRAIN_DEFAULTS (num_examples, steps, batch_size, seed, learning_rate).
  The cache folder name holds a hash of the settings, so other settings never load a stale one.
  """
  _check_labelled(data_config)
  out_dir = cache_dir(data_config, cache_root, **settings)
  if (out_dir / "meta.json").is_file():
    return load_local_extractor(out_dir)
  try:
    return train_local_extractor(data_config, out_dir, **settings)
  except FileExistsError:
    return load_local_extractor(out_dir)
