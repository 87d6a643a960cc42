"""The β-VAE branch: semantic encoder E_sem and reconstruction decoder D_rec.

The encoder maps images [B, H, W, 3] in [0, 1] to the parameters of
q(z|x) = N(mu, diag exp(logvar)), each [B, d]. The decoder never reads z: it reads
z_rel = A^T z (see `relate`), so the DisGraph slots in without reshaping the code.
With A = I (the β-VAE branch alone) z_rel = z.

Sizes follow Burgess et al. (2018): four 4x4 stride-2 convolutions of `width` channels,
two dense layers of `hidden` units, mirrored in the decoder. Layer forms were chosen by
measurement on XLA:CPU (docs/decisions.md): the encoder's strided convolutions are written as
space-to-depth + 2x2 convolutions and the decoder upsamples by sub-pixel convolution, because
XLA:CPU is slow on the gradients of strided and transposed convolutions.
"""
from __future__ import annotations

from typing import Literal

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

Upsample = Literal["subpixel", "resize_conv", "conv_transpose"]


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


def relate(z: jax.Array, adjacency: jax.Array) -> jax.Array:
  """z_rel = A^T z for a batch of row vectors: [B, d], [d, d] -> [B, d].

  Row i of A holds the out-edges of factor i, so z_rel[:, j] = sum_i z[:, i] A[i, j].
  """
  chex.assert_rank(z, 2)
  chex.assert_shape(adjacency, (z.shape[-1], z.shape[-1]))
  return z @ adjacency


class Encoder(nn.Module):
  """E_sem: images [B, H, W, 3] in [0, 1] -> (mu [B, d], logvar [B, d])."""

  latent_dim: int = 6
  width: int = 32
  hidden: int = 256
  num_downsamples: int = 4

  @nn.compact
  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    chex.assert_rank(x, 4)
    h = x
    for _ in range(self.num_downsamples):
      h = nn.relu(DownConv(self.width)(h))
    h = h.reshape(h.shape[0], -1)
    h = nn.relu(nn.Dense(self.hidden)(h))
    h = nn.relu(nn.Dense(self.hidden)(h))
    stats = nn.Dense(2 * self.latent_dim)(h)
    mu, logvar = jnp.split(stats, 2, axis=-1)
    return mu, logvar


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


class Decoder(nn.Module):
  """D_rec: z_rel [B, d] -> pixel logits [B, image_size, image_size, channels]."""

  image_size: int = 64
  channels: int = 3
  width: int = 32
  hidden: int = 256
  num_upsamples: int = 4
  upsample: Upsample = "subpixel"

  @nn.compact
  def __call__(self, z_rel: jax.Array) -> jax.Array:
    chex.assert_rank(z_rel, 2)
    base = self.image_size // 2**self.num_upsamples
    h = nn.relu(nn.Dense(self.hidden)(z_rel))
    h = nn.relu(nn.Dense(self.hidden)(h))
    h = nn.relu(nn.Dense(base * base * self.width)(h))
    h = h.reshape(h.shape[0], base, base, self.width)
    for i in range(self.num_upsamples):
      last = i == self.num_upsamples - 1
      h = UpBlock(self.channels if last else self.width, self.upsample)(h)
      if not last:
        h = nn.relu(h)
    return h


class VAE(nn.Module):
  """Encoder + reparameterised sample + z_rel = A^T z + decoder.

  `__call__(x, noise, adjacency)` with x [B, H, W, 3] in [0, 1], noise [B, d] ~ N(0, I)
  and adjacency [d, d] returns a dict with mu, logvar, z, z_rel [B, d] and logits
  [B, H, W, 3]. The noise is an argument (not drawn inside) so that the train step
  controls the RNG stream per example.
  """

  latent_dim: int = 6
  image_size: int = 64
  channels: int = 3
  width: int = 32
  hidden: int = 256
  upsample: Upsample = "subpixel"

  def setup(self):
    n = _num_halvings(self.image_size)
    self.encoder = Encoder(self.latent_dim, self.width, self.hidden, n)
    self.decoder = Decoder(self.image_size, self.channels, self.width, self.hidden, n,
                           self.upsample)

  def __call__(self, x: jax.Array, noise: jax.Array, adjacency: jax.Array) -> dict:
    chex.assert_shape(x, (None, self.image_size, self.image_size, self.channels))
    mu, logvar = self.encoder(x)
    chex.assert_equal_shape([mu, noise])
    z = mu + jnp.exp(0.5 * logvar) * noise
    z_rel = relate(z, adjacency)
    return dict(mu=mu, logvar=logvar, z=z, z_rel=z_rel, logits=self.decoder(z_rel))

  def encode(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    return self.encoder(x)

  def decode(self, z_rel: jax.Array) -> jax.Array:
    return self.decoder(z_rel)


def _num_halvings(image_size: int) -> int:
  """Stride-2 stages that take image_size down to 4 pixels (64 -> 4, 256 -> 6 stages)."""
  if image_size < 8 or image_size & (image_size - 1):
    raise ValueError(f"image_size must be a power of two >= 8, got {image_size}")
  return image_size.bit_length() - 3
