"""Pluggable feature extractors for the Fréchet and kernel distances (gem_jax.metrics.fid).

An extractor is anything with

  name: str   goes into every metric key and table, so that numbers from different
              extractors are never mixed up (only `inception_v3_keras` numbers are "FID").
  dim: int    the feature dimension F.
  __call__(images uint8 [N, H, W, 3]) -> float32 [N, F], batched internally.

Two are provided:

* `InceptionV3Features.from_file(path)`: Keras InceptionV3 (ImageNet weights from a LOCAL
  file; nothing is downloaded), 2048-d average-pool features of images resized bilinearly to
  299x299. Close to, but not identical with, TTUR / pytorch-fid's FID (those use the 2015 TF
  graph); compare its numbers only within this project. See docs/metrics.md.
* `local_extractor(data_config, cache_root)`: the offline default, a small CNN trained by the
  project on the data set's labels (gem_jax/metrics/local_features.py); "FD (local CNN)".
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
from tqdm.auto import tqdm

from gem_jax.data.tf_cpu import tensorflow
from gem_jax.metrics.local_features import (
  LocalFeatures,
  load_local_extractor,
  local_extractor,
  train_local_extractor,
)

INCEPTION_WEIGHTS_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
INCEPTION_WEIGHTS_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/"
                         f"inception_v3/{INCEPTION_WEIGHTS_FILE}")
# Where Keras itself caches the file after `weights="imagenet"`.
DEFAULT_INCEPTION_WEIGHTS = Path("~/.keras/models") / INCEPTION_WEIGHTS_FILE

__all__ = ["DEFAULT_INCEPTION_WEIGHTS", "FeatureExtractor", "INCEPTION_WEIGHTS_FILE",
           "INCEPTION_WEIGHTS_URL", "InceptionV3Features", "LocalFeatures",
           "load_local_extractor", "local_extractor", "metric_label", "train_local_extractor"]


@runtime_checkable
class FeatureExtractor(Protocol):
  """uint8 images [N, H, W, 3] -> float32 features [N, dim]; `name` labels the numbers."""

  name: str
  dim: int

  def __call__(self, images: np.ndarray) -> np.ndarray:
    ...


def metric_label(extractor_name: str, metric: str = "fd") -> str:
  """How to print a distance on this extractor's features: metric 'fd' or 'kd'.

  'FID' / 'KID' only for inception_v3_keras; 'FD (local CNN)' / 'KD (local CNN)' for the
  project's CNN; otherwise 'FD (<name>)'.
  """
  if metric not in ("fd", "kd"):
    raise ValueError(f"metric must be 'fd' or 'kd'; got {metric!r}")
  if extractor_name == InceptionV3Features.name:
    return {"fd": "FID", "kd": "KID"}[metric]
  short = "local CNN" if extractor_name.startswith("local_cnn") else extractor_name
  return f"{metric.upper()} ({short})"


def _build_inception(weights: str | None):
  """keras InceptionV3 without its top, global average pooling, 299x299 inputs."""
  tensorflow()   # loaded with its GPUs hidden (JAX owns them)
  import keras
  return keras.applications.InceptionV3(include_top=False, weights=weights, pooling="avg",
                                        input_shape=(299, 299, 3))


class InceptionV3Features:
  """Keras InceptionV3 pool features: uint8 [N, H, W, 3] -> float32 [N, 2048].

  Images are resized bilinearly (no antialiasing) to 299x299 as float32 in [0, 255] and
  mapped to [-1, 1] by `keras.applications.inception_v3.preprocess_input`.
  """

  name = "inception_v3_keras"
  dim = 2048
  input_size = 299

  def __init__(self, model, batch_size: int = 50):
    self.model = model
    self.batch_size = batch_size

  @classmethod
  def from_file(cls, path: str | Path = DEFAULT_INCEPTION_WEIGHTS, *,
                batch_size: int = 50) -> InceptionV3Features:
    """Loads the ImageNet weights from `path` (the Keras *_notop.h5 file); no download.

    Raises:
      FileNotFoundError: naming the path and the file to download when it is absent.
    """
    path = Path(path).expanduser().absolute()
    if not path.is_file():
      raise FileNotFoundError(
          f"InceptionV3 weights file {path} does not exist. Download {INCEPTION_WEIGHTS_FILE} "
          f"(~87 MB) from {INCEPTION_WEIGHTS_URL} and pass its path (see docs/metrics.md); "
          "without it, use the local CNN features (local_extractor), reported as FD, not FID.")
    return cls(_build_inception(str(path)), batch_size)

  def __call__(self, images: np.ndarray) -> np.ndarray:
    """uint8 images [N, H, W, 3] (any H, W) -> float32 [N, 2048]."""
    import keras
    from keras.applications.inception_v3 import preprocess_input
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
      raise ValueError(f"{self.name} expects uint8 images [N, H, W, 3]; got {images.dtype} "
                       f"{list(images.shape)}")
    n, b = len(images), self.batch_size
    size = (self.input_size, self.input_size)
    out = []
    for start in tqdm(range(0, n, b), desc=self.name, unit="batch", leave=False,
                      disable=n <= 4 * b):
      x = keras.ops.image.resize(images[start:start + b].astype(np.float32), size,
                                 interpolation="bilinear", antialias=False)
      x = preprocess_input(keras.ops.convert_to_numpy(x))
      out.append(keras.ops.convert_to_numpy(self.model(x, training=False)))
    if not out:
      return np.zeros((0, self.dim), np.float32)
    return np.concatenate(out).astype(np.float32)
