"""Blocks shared by the encoder, decoder and joint discriminator.

Layer forms were chosen by measurement on XLA:CPU (docs/design.md, "Layer forms"): strided
convolutions are written as space-to-depth + 2x2 convolutions and upsampling as sub-pixel
convolution, because XLA:CPU is slow on the gradients of strided and transposed convolutions.
"""
from __future__ import annotations

from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp

Upsample = Literal["subpixel", "resize_conv", "conv_transpose"]
# Network families (config.model.arch): 'burgess' (gem_jax.models.vae, the default) and
# 'paper' (gem_jax.models.paper, sized like the GEM paper's).
Arch = Literal["burgess", "paper"]


def num_halvings(image_size: int) -> int:
  """Stride-2 stages that take image_size down to 4 pixels (64 -> 4 stages, 256 -> 6)."""
  if image_size < 8 or image_size & (image_size - 1):
    raise ValueError(f"image_size must be a power of two >= 8, got {image_size}")
  return image_size.bit_length() - 3


def depth_to_space(x: jax.Array, block: int = 2) -> jax.Array:
  """[B, H, W, C * block^2] -> [B, H * block, W * block, C] (pixel shuffle)."""
  b, h, w, c = x.shape
  out_c = c // (block * block)
  x = x.reshape(b, h, w, block, block, out_c)
  x = x.transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, h * block, w * block, out_c)


def space_to_depth(x: jax.Array, block: int = 2) -> jax.Array:
  """[B, H, W, C] -> [B, H / block, W / block, C * block^2] (inverse of depth_to_space)."""
  b, h, w, c = x.shape
  x = x.reshape(b, h // block, block, w // block, block, c)
  x = x.transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, h // block, w // block, block * block * c)


class DownConv(nn.Module):
  """A 4x4 stride-2 'SAME' convolution written as pad 1 + space-to-depth + 2x2 convolution:
  the same function class ([B, H, W, C] -> [B, H/2, W/2, features]) without the
  base-dilated input gradient that XLA:CPU runs slowly."""

  features: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = space_to_depth(jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))))
    return nn.Conv(self.features, (2, 2), padding="VALID")(x)


class UpBlock(nn.Module):
  """Doubles the spatial size: [B, H, W, C] -> [B, 2H, 2W, features]."""

  features: int
  form: Upsample = "subpixel"

  @nn.compact
  def __call__(self, h: jax.Array) -> jax.Array:
    if self.form == "conv_transpose":
      return nn.ConvTranspose(self.features, (4, 4), strides=(2, 2), padding="SAME")(h)
    if self.form == "resize_conv":
      b, hh, ww, c = h.shape
      h = jax.image.resize(h, (b, 2 * hh, 2 * ww, c), method="nearest")
      return nn.Conv(self.features, (3, 3), padding="SAME")(h)
    if self.form == "subpixel":
      # A 2x2 conv emitting the four output phases: the FLOPs of a 4x4 stride-2
      # transposed conv without its slow gradient on XLA:CPU.
      h = nn.Conv(4 * self.features, (2, 2), padding=((0, 1), (0, 1)))(h)
      return depth_to_space(h)
    raise ValueError(f"unknown upsampling form {self.form!r}; "
                     "expected 'subpixel', 'resize_conv' or 'conv_transpose'")
