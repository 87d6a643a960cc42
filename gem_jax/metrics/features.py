"""Pluggable feature extractors for the Fréchet and kernel distances (gem_jax.metrics.fid).

An extractor is anything with

  name: str   goes into every metric key and table, so that numbers from different
              extractors are never mixed up (only `fid_inception_v3` numbers are "FID").
  dim: int    the feature dimension F.
  __call__(images uint8 [N, H, W, 3]) -> float32 [N, F], batched internally.

Three are provided:

* `FIDInceptionFeatures.from_file(path)`: the standard FID network of TTUR / pytorch-fid (the
  2015 TF Inception graph, weights `pt_inception-2015-12-05-6726825d.pth` from a LOCAL file,
  sha256-checked; nothing is downloaded), in Flax (gem_jax/metrics/fid_inception.py): "FID".
* `InceptionV3Features.from_file(path)`: Keras InceptionV3 (ImageNet weights from a LOCAL
  file), 2048-d average-pool features of images resized bilinearly to 299x299. Close to, but
  not identical with, the standard FID network (differently trained weights): its numbers are
  "FD (Keras InceptionV3)", comparable only within this project. See docs/metrics.md.
* `local_extractor(data_config, cache_root)`: the offline default, a small CNN trained by the
  project on the data set's labels (gem_jax/metrics/local_features.py); "FD (local CNN)".
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import jax
import numpy as np

from gem_jax.data.tf_cpu import tensorflow
from gem_jax.files import file_sha256
from gem_jax.metrics import fid_inception, torch_checkpoint
from gem_jax.metrics.batching import map_batches
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

# pytorch-fid's port of the 2015 TF Inception graph. torch.hub's file-name convention puts the
# first 8 hex digits of the file's sha256 after the last '-': that prefix is all that is
# published, so it is what `from_file` checks unless a full digest is pinned.
FID_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                   f"{FID_WEIGHTS_FILE}")
FID_WEIGHTS_SHA256_PREFIX = "6726825d"
# Where torch.hub (pytorch-fid) caches the file after its first download.
DEFAULT_FID_WEIGHTS = Path("~/.cache/torch/hub/checkpoints") / FID_WEIGHTS_FILE

__all__ = ["DEFAULT_FID_WEIGHTS", "DEFAULT_INCEPTION_WEIGHTS", "FID_WEIGHTS_FILE",
           "FID_WEIGHTS_SHA256_PREFIX", "FID_WEIGHTS_URL", "FIDInceptionFeatures",
           "FeatureExtractor", "INCEPTION_WEIGHTS_FILE", "INCEPTION_WEIGHTS_URL",
           "InceptionV3Features", "LocalFeatures", "WeightsChecksumError",
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

  'FID' / 'KID' only for the standard FID network (fid_inception_v3); 'FD (Keras
  InceptionV3)' / 'KD (Keras InceptionV3)' for the Keras one; 'FD (local CNN)' / 'KD (local
  CNN)' for the project's CNN; otherwise 'FD (<name>)'.
  """
  if metric not in ("fd", "kd"):
    raise ValueError(f"metric must be 'fd' or 'kd'; got {metric!r}")
  if extractor_name == FIDInceptionFeatures.name:
    return {"fd": "FID", "kd": "KID"}[metric]
  if extractor_name == InceptionV3Features.name:
    short = "Keras InceptionV3"
  elif extractor_name.startswith("local_cnn"):
    short = "local CNN"
  else:
    short = extractor_name
  return f"{metric.upper()} ({short})"


class WeightsChecksumError(ValueError):
  """A weights file whose sha256 is not the expected one (wrong or truncated file)."""


def check_sha256(path: Path, expected: str | None) -> str:
  """The file's full sha256 after checking it: against `expected` (a full digest) when given,
  else against FID_WEIGHTS_SHA256_PREFIX as torch.hub's check_hash does (its first 8 hex
  digits). Raises WeightsChecksumError naming the path, the expected and the actual digest."""
  actual = file_sha256(path)
  want = (expected or FID_WEIGHTS_SHA256_PREFIX).strip().lower()
  ok = actual == want if expected else actual.startswith(want)
  if not ok:
    what = "sha256" if expected else f"sha256 prefix (torch.hub's, from {FID_WEIGHTS_FILE})"
    raise WeightsChecksumError(
        f"FID Inception weights {path}: expected {what} {want}, but the file's sha256 is "
        f"{actual} ({path.stat().st_size} bytes): a wrong or truncated file. Download "
        f"{FID_WEIGHTS_FILE} again from {FID_WEIGHTS_URL}")
  return actual


def _checked_images(name: str, images) -> np.ndarray:
  """images as a uint8 array [N, H, W, 3]; ValueError naming the extractor otherwise."""
  images = np.asarray(images)
  if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
    raise ValueError(f"{name} expects uint8 images [N, H, W, 3]; got {images.dtype} "
                     f"{list(images.shape)}")
  return images


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
    images = _checked_images(self.name, images)
    size = (self.input_size, self.input_size)

    def features(batch: np.ndarray) -> np.ndarray:
      x = keras.ops.image.resize(batch.astype(np.float32), size, interpolation="bilinear",
                                 antialias=False)
      x = preprocess_input(keras.ops.convert_to_numpy(x))
      return keras.ops.convert_to_numpy(self.model(x, training=False))

    return map_batches(features, images, self.batch_size, self.dim, self.name)


@dataclasses.dataclass(eq=False)
class FIDInceptionFeatures:
  """The standard FID network (pytorch-fid's FID InceptionV3, gem_jax/metrics/fid_inception.py)
  as a feature extractor: uint8 [N, H, W, 3] (any H, W) -> float32 pool features [N, 2048].

  variables: Flax {'params', 'batch_stats'} (`fid_inception.variables_from_torch`).
  Runs jit-compiled on JAX's default device, `batch_size` images at a time.
  """

  variables: Any
  batch_size: int = 50
  sha256: str | None = None
  name = "fid_inception_v3"
  dim = fid_inception.FEATURE_DIM

  def __post_init__(self):
    model = fid_inception.FIDInceptionV3()
    self.variables = jax.device_put(self.variables)
    self._apply = jax.jit(model.apply)

  @classmethod
  def from_file(cls, path: str | Path = DEFAULT_FID_WEIGHTS, *, expected_sha256: str | None = None,
                batch_size: int = 50) -> FIDInceptionFeatures:
    """Loads pt_inception-2015-12-05-6726825d.pth from `path` (no download, no torch needed).

    The file's sha256 is checked first: against `expected_sha256` when given, else against
    the prefix 6726825d of its published name; the full digest is logged so it can be pinned.

    Raises:
      FileNotFoundError: naming the path, the file and the URL to fetch it from by hand.
      WeightsChecksumError: naming the path, the expected and the actual sha256.
      torch_checkpoint.TorchCheckpointError, ValueError: an unreadable file or one that does
        not hold this network's weights (naming the first wrong key).
    """
    path = Path(path).expanduser().absolute()
    if not path.is_file():
      raise FileNotFoundError(
          f"FID Inception weights file {path} does not exist. Download {FID_WEIGHTS_FILE} "
          f"(~91 MB) from {FID_WEIGHTS_URL} by hand and pass its path (see docs/metrics.md).")
    digest = check_sha256(path, expected_sha256)
    log = logging.info if expected_sha256 else logging.warning
    log("FID Inception weights %s: sha256 %s%s", path, digest,
        "" if expected_sha256 else f" (only its prefix {FID_WEIGHTS_SHA256_PREFIX} is "
        "published and was checked; pin the full digest with expected_sha256 / "
        "eval.fid_weights_sha256)")
    state = torch_checkpoint.read_state_dict(path)
    return cls(fid_inception.variables_from_torch(state), batch_size, digest)

  def __call__(self, images: np.ndarray) -> np.ndarray:
    """uint8 images [N, H, W, 3] -> float32 [N, 2048]; the last batch is padded and trimmed."""
    images = _checked_images(self.name, images)
    return map_batches(lambda x: self._apply(self.variables, x), images, self.batch_size,
                       self.dim, self.name)
