"""The FID Inception network (TTUR / pytorch-fid) in Flax: uint8 images -> 2048-d pool features.

This is `pytorch_fid.inception.InceptionV3([3], resize_input=True, normalize_input=True,
use_fid_inception=True)`, i.e. torchvision's Inception3 with pytorch-fid's patches for the 2015
TF graph (`pt_inception-2015-12-05`), layer for layer:

* input uint8 [N, H, W, 3] -> float32 / 255 in [0, 1] -> bilinear resize to 299 x 299 as
  `torch.nn.functional.interpolate(mode='bilinear', align_corners=False)` (no antialiasing,
  for up- and downsampling: `resize_bilinear`) -> x * 2 - 1;
* BasicConv2d = conv without bias + BatchNorm (eps 0.001, running statistics) + ReLU;
* the stem Conv2d_1a_3x3 ... Conv2d_4a_3x3 with two 3x3 / stride 2 max pools (no padding);
* Mixed_5b-5d (FIDInceptionA), Mixed_6a (reduction), Mixed_6b-6e (FIDInceptionC), Mixed_7a
  (reduction), Mixed_7b (FIDInceptionE_1), Mixed_7c (FIDInceptionE_2);
* FIDInceptionA / C / E_1 pool their branch with a 3x3 / stride 1 / pad 1 average that does not
  count the padding (TF's average pool); FIDInceptionE_2 takes a 3x3 max pool there instead;
* the global average pool: features [N, 2048].

Module and parameter names follow torchvision's (`Mixed_6b/branch7x7_2/conv`), so a PyTorch
state dict maps onto the Flax variables by name (`variables_from_torch`).
"""
from __future__ import annotations

import functools
from typing import Any, Sequence

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

INPUT_SIZE = 299
FEATURE_DIM = 2048
BN_EPSILON = 1e-3
# Parameters (conv kernels, BN scale and bias) of pytorch-fid's network without its `fc`
# classifier: sum(p.numel() for n, p in fid_inception_v3().named_parameters() if not fc).
PARAM_COUNT = 21_785_568


# ------------------------------------------------------------------------------ the resize

def _source_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """torch's bilinear taps (align_corners=False): int32 i0, i1 [out] and float32 weight of i1.

  scale = float32(in / out); src = scale * (i + 0.5) - 0.5 rounded once to float32 (as a fused
  multiply-add: what torch's CPU kernel computes; rounding the product first was up to 4e-6
  off F.interpolate on [0, 1] images), clamped at 0; i0 = floor(src); i1 = min(i0 + 1, in - 1).
  """
  scale = np.float64(np.float32(in_size / out_size))
  src = (scale * (np.arange(out_size) + 0.5) - 0.5).astype(np.float32)
  src = np.maximum(src, np.float32(0.0))
  i0 = np.minimum(np.floor(src).astype(np.int32), in_size - 1)
  i1 = np.minimum(i0 + 1, in_size - 1)
  return i0, i1, (src - i0).astype(np.float32)


def _resize_axis(x: jax.Array, axis: int, out_size: int) -> jax.Array:
  i0, i1, w1 = _source_taps(x.shape[axis], out_size)
  shape = [1] * x.ndim
  shape[axis] = out_size
  w1 = jnp.asarray(w1).reshape(shape)
  return (1.0 - w1) * jnp.take(x, i0, axis=axis) + w1 * jnp.take(x, i1, axis=axis)


def resize_bilinear(x: jax.Array, size: int = INPUT_SIZE) -> jax.Array:
  """Images float [N, H, W, C] -> [N, size, size, C], as torch's F.interpolate(mode='bilinear',
  align_corners=False, antialias=False) for any H, W (up- or downsampling: always the two
  nearest source pixels, never an antialiasing filter)."""
  chex.assert_rank(x, 4)
  return _resize_axis(_resize_axis(x, 2, size), 1, size)


# ----------------------------------------------------------------------------- the network

class BasicConv(nn.Module):
  """torchvision's BasicConv2d: conv (no bias) + BatchNorm (running stats) + ReLU.

  kernel (kh, kw), stride, and padding (ph, pw) as torch's Conv2d; [N, H, W, C] -> [N, H', W',
  features].
  """

  features: int
  kernel: tuple[int, int]
  stride: int = 1
  padding: tuple[int, int] = (0, 0)
  precision: Any = jax.lax.Precision.HIGHEST

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    ph, pw = self.padding
    x = nn.Conv(self.features, self.kernel, strides=self.stride,
                padding=((ph, ph), (pw, pw)), use_bias=False, precision=self.precision,
                name="conv")(x)
    x = nn.BatchNorm(use_running_average=True, epsilon=BN_EPSILON, name="bn")(x)
    return nn.relu(x)


def _avg_pool_3x3(x: jax.Array) -> jax.Array:
  """F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False) (TF's average pool)."""
  return nn.avg_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)),
                     count_include_pad=False)


def _max_pool_3x3_s2(x: jax.Array) -> jax.Array:
  """nn.MaxPool2d(kernel_size=3, stride=2), no padding."""
  return nn.max_pool(x, (3, 3), strides=(2, 2), padding="VALID")


def _cat(branches: Sequence[jax.Array]) -> jax.Array:
  return jnp.concatenate(branches, axis=-1)


class FIDInceptionA(nn.Module):
  """Mixed_5b-5d: [N, 35, 35, C] -> [N, 35, 35, 224 + pool_features]."""

  pool_features: int
  precision: Any = jax.lax.Precision.HIGHEST

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    conv = functools.partial(BasicConv, precision=self.precision)
    b1 = conv(64, (1, 1), name="branch1x1")(x)
    b5 = conv(48, (1, 1), name="branch5x5_1")(x)
    b5 = conv(64, (5, 5), padding=(2, 2), name="branch5x5_2")(b5)
    b3 = conv(64, (1, 1), name="branch3x3dbl_1")(x)
    b3 = conv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(b3)
    b3 = conv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_3")(b3)
    bp = conv(self.pool_features, (1, 1), name="branch_pool")(_avg_pool_3x3(x))
    return _cat([b1, b5, b3, bp])


class InceptionB(nn.Module):
  """Mixed_6a (reduction): [N, 35, 35, 288] -> [N, 17, 17, 768]."""

  precision: Any = jax.lax.Precision.HIGHEST

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    conv = functools.partial(BasicConv, precision=self.precision)
    b3 = conv(384, (3, 3), stride=2, name="branch3x3")(x)
    bd = conv(64, (1, 1), name="branch3x3dbl_1")(x)
    bd = conv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(bd)
    bd = conv(96, (3, 3), stride=2, name="branch3x3dbl_3")(bd)
    return _cat([b3, bd, _max_pool_3x3_s2(x)])


class FIDInceptionC(nn.Module):
  """Mixed_6b-6e: [N, 17, 17, 768] -> [N, 17, 17, 768]; 1x7 / 7x1 factorised convolutions."""

  channels_7x7: int
  precision: Any = jax.lax.Precision.HIGHEST

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    conv = functools.partial(BasicConv, precision=self.precision)
    c7 = self.channels_7x7
    row, col = dict(kernel=(1, 7), padding=(0, 3)), dict(kernel=(7, 1), padding=(3, 0))
    b1 = conv(192, (1, 1), name="branch1x1")(x)
    b7 = conv(c7, (1, 1), name="branch7x7_1")(x)
    b7 = conv(c7, **row, name="branch7x7_2")(b7)
    b7 = conv(192, **col, name="branch7x7_3")(b7)
    bd = conv(c7, (1, 1), name="branch7x7dbl_1")(x)
    bd = conv(c7, **col, name="branch7x7dbl_2")(bd)
    bd = conv(c7, **row, name="branch7x7dbl_3")(bd)
    bd = conv(c7, **col, name="branch7x7dbl_4")(bd)
    bd = conv(192, **row, name="branch7x7dbl_5")(bd)
    bp = conv(192, (1, 1), name="branch_pool")(_avg_pool_3x3(x))
    return _cat([b1, b7, bd, bp])


class InceptionD(nn.Module):
  """Mixed_7a (reduction): [N, 17, 17, 768] -> [N, 8, 8, 1280]."""

  precision: Any = jax.lax.Precision.HIGHEST

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    conv = functools.partial(BasicConv, precision=self.precision)
    b3 = conv(192, (1, 1), name="branch3x3_1")(x)
    b3 = conv(320, (3, 3), stride=2, name="branch3x3_2")(b3)
    b7 = conv(192, (1, 1), name="branch7x7x3_1")(x)
    b7 = conv(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(b7)
    b7 = conv(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(b7)
    b7 = conv(192, (3, 3), stride=2, name="branch7x7x3_4")(b7)
    return _cat([b3, b7, _max_pool_3x3_s2(x)])


class FIDInceptionE(nn.Module):
  """Mixed_7b (pool='avg', FIDInceptionE_1) and Mixed_7c (pool='max', FIDInceptionE_2):
  [N, 8, 8, C] -> [N, 8, 8, 2048]."""

  pool: str
  precision: Any = jax.lax.Precision.HIGHEST

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    conv = functools.partial(BasicConv, precision=self.precision)
    row, col = dict(kernel=(1, 3), padding=(0, 1)), dict(kernel=(3, 1), padding=(1, 0))
    b1 = conv(320, (1, 1), name="branch1x1")(x)
    b3 = conv(384, (1, 1), name="branch3x3_1")(x)
    b3 = _cat([conv(384, **row, name="branch3x3_2a")(b3),
               conv(384, **col, name="branch3x3_2b")(b3)])
    bd = conv(448, (1, 1), name="branch3x3dbl_1")(x)
    bd = conv(384, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(bd)
    bd = _cat([conv(384, **row, name="branch3x3dbl_3a")(bd),
               conv(384, **col, name="branch3x3dbl_3b")(bd)])
    if self.pool == "avg":
      pooled = _avg_pool_3x3(x)
    else:   # F.max_pool2d(x, 3, stride=1, padding=1): the padding never wins
      pooled = nn.max_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)))
    bp = conv(192, (1, 1), name="branch_pool")(pooled)
    return _cat([b1, b3, bd, bp])


class FIDInceptionV3(nn.Module):
  """uint8 images [N, H, W, 3] (any H, W >= 1) -> float32 pool features [N, 2048]."""

  precision: Any = jax.lax.Precision.HIGHEST

  @nn.compact
  def __call__(self, images: jax.Array) -> jax.Array:
    chex.assert_rank(images, 4)
    chex.assert_axis_dimension(images, 3, 3)
    x = resize_bilinear(images.astype(jnp.float32) / 255.0)
    x = 2.0 * x - 1.0
    conv = functools.partial(BasicConv, precision=self.precision)
    p = dict(precision=self.precision)
    x = conv(32, (3, 3), stride=2, name="Conv2d_1a_3x3")(x)            # 149 x 149 x 32
    x = conv(32, (3, 3), name="Conv2d_2a_3x3")(x)                      # 147 x 147 x 32
    x = conv(64, (3, 3), padding=(1, 1), name="Conv2d_2b_3x3")(x)      # 147 x 147 x 64
    x = _max_pool_3x3_s2(x)                                            # 73 x 73 x 64
    x = conv(80, (1, 1), name="Conv2d_3b_1x1")(x)                      # 73 x 73 x 80
    x = conv(192, (3, 3), name="Conv2d_4a_3x3")(x)                     # 71 x 71 x 192
    x = _max_pool_3x3_s2(x)                                            # 35 x 35 x 192
    x = FIDInceptionA(32, **p, name="Mixed_5b")(x)                     # 35 x 35 x 256
    x = FIDInceptionA(64, **p, name="Mixed_5c")(x)                     # 35 x 35 x 288
    x = FIDInceptionA(64, **p, name="Mixed_5d")(x)                     # 35 x 35 x 288
    x = InceptionB(**p, name="Mixed_6a")(x)                            # 17 x 17 x 768
    for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160),
                     ("Mixed_6e", 192)):
      x = FIDInceptionC(c7, **p, name=name)(x)                         # 17 x 17 x 768
    x = InceptionD(**p, name="Mixed_7a")(x)                            # 8 x 8 x 1280
    x = FIDInceptionE("avg", **p, name="Mixed_7b")(x)                  # 8 x 8 x 2048
    x = FIDInceptionE("max", **p, name="Mixed_7c")(x)                  # 8 x 8 x 2048
    feats = jnp.mean(x, axis=(1, 2))
    chex.assert_shape(feats, (images.shape[0], FEATURE_DIM))
    return feats


# ----------------------------------------------------------------- PyTorch weights -> Flax

# Flax leaf (collection, last two path parts) <- torch state-dict suffix.
_TORCH_NAMES = {("params", "conv", "kernel"): "conv.weight",
                ("params", "bn", "scale"): "bn.weight",
                ("params", "bn", "bias"): "bn.bias",
                ("batch_stats", "bn", "mean"): "bn.running_mean",
                ("batch_stats", "bn", "var"): "bn.running_var"}
# State-dict entries the features never use: the ImageNet classifier and BN's step counters.
_IGNORED = ("fc.weight", "fc.bias")


def variable_shapes() -> dict:
  """The network's variables as shape structs: {'params': ..., 'batch_stats': ...}."""
  model = FIDInceptionV3()
  dummy = jax.ShapeDtypeStruct((1, INPUT_SIZE, INPUT_SIZE, 3), jnp.uint8)
  return jax.eval_shape(model.init, jax.random.PRNGKey(0), dummy)


def _torch_key(path: tuple[str, ...]) -> str:
  collection, *modules, layer, leaf = path
  return ".".join([*modules, _TORCH_NAMES[(collection, layer, leaf)]])


def _to_flax(value: np.ndarray, path: tuple[str, ...]) -> np.ndarray:
  """conv weight [O, I, kh, kw] -> kernel [kh, kw, I, O]; BN vectors unchanged."""
  return np.transpose(value, (2, 3, 1, 0)) if path[-1] == "kernel" else value


def variables_from_torch(state_dict: dict[str, np.ndarray]) -> dict:
  """pytorch-fid's Inception3 state dict ({name: array}, torch layout) -> Flax variables.

  fc.* and *.num_batches_tracked are ignored.

  Raises:
    ValueError: naming the first missing key, the first key whose shape differs from the
      network's (with both shapes), or the first unexpected key.
  """
  flat, used = {}, set()
  for path, shape in traverse_util.flatten_dict(variable_shapes()).items():
    key = _torch_key(path)
    if key not in state_dict:
      raise ValueError(f"the state dict lacks {key!r} (the first of the network's keys it "
                       "lacks): not pytorch-fid's FID Inception weights")
    value = np.asarray(state_dict[key])
    want = _torch_shape(shape.shape, path)
    if value.shape != want:
      raise ValueError(f"state dict entry {key!r} has shape {list(value.shape)}; the FID "
                       f"Inception network needs {list(want)}")
    flat[path] = _to_flax(value.astype(np.float32), path)
    used.add(key)
  extra = [k for k in state_dict if k not in used and k not in _IGNORED
           and not k.endswith(".num_batches_tracked")]
  if extra:
    raise ValueError(f"the state dict holds {len(extra)} entries the FID Inception network "
                     f"does not have (first: {extra[0]!r})")
  return traverse_util.unflatten_dict(flat)


def _torch_shape(shape: tuple[int, ...], path: tuple[str, ...]) -> tuple[int, ...]:
  """Flax kernel [kh, kw, I, O] -> torch's [O, I, kh, kw]; vectors unchanged."""
  return (shape[3], shape[2], shape[0], shape[1]) if path[-1] == "kernel" else tuple(shape)

