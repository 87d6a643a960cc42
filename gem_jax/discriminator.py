"""The joint discriminator D(x, z) of the adversarial strategy (paper Eq. 3-5, DESIGN.md stage 3).

ALI/BiGAN form, DEAR's BigJointDiscriminator being the nearest public template: an image branch
and a latent branch embed x and z separately, a joint head scores their concatenation.

  positives: (x, z) with z ~ q(z|x)                       (real image, its posterior sample)
  negatives: (sigmoid(D_rec(A^T z')), z') with z' ~ N(0, I)  (generated image, its prior draw)

Note the negative pairs the image with z', not with z_rel = A^T z': the discriminator judges
the joint of the latent factors and the image, the DisGraph is part of the generator.
Losses are in `gem_jax.adversarial`.
"""
from __future__ import annotations

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from gem_jax.vae import DownConv

__all__ = ["JointDiscriminator"]


def _leaky_relu(x: jax.Array) -> jax.Array:
  return nn.leaky_relu(x, negative_slope=0.2)


def _halvings_to_four(size: int) -> int:
  """Stride-2 stages that take `size` down to 4 pixels (64 -> 4), as the encoder does."""
  if size < 8 or size & (size - 1):
    raise ValueError(f"image size must be a power of two >= 8, got {size}")
  return size.bit_length() - 3


class JointDiscriminator(nn.Module):
  """D(x, z): images [B, H, W, 3] in [0, 1] and latents [B, d] -> logits [B].

  Image branch: `num_downsamples` 4x4 stride-2 convolutions of `width` channels (the encoder's
  shape; default: as many as take H down to 4) and a dense layer of `hidden` units. Latent branch:
  two dense layers of `hidden` units. Joint head: concatenation -> dense `hidden` -> dense 1.
  leaky_relu(0.2) throughout; dropout (rate `dropout_rate`, off by default) after each hidden
  layer when `deterministic=False`, which then needs a 'dropout' RNG.
  """

  latent_dim: int = 6
  width: int = 32
  hidden: int = 256
  num_downsamples: int | None = None
  dropout_rate: float = 0.0

  def _dropout(self, h: jax.Array, deterministic: bool) -> jax.Array:
    if self.dropout_rate <= 0.0:
      return h
    return nn.Dropout(self.dropout_rate)(h, deterministic=deterministic)

  @nn.compact
  def __call__(self, x: jax.Array, z: jax.Array, deterministic: bool = True) -> jax.Array:
    chex.assert_rank(x, 4)
    chex.assert_shape(z, (x.shape[0], self.latent_dim))
    n = self.num_downsamples
    if n is None:
      n = _halvings_to_four(x.shape[1])

    hx = 2.0 * x - 1.0  # [0, 1] -> [-1, 1]
    for _ in range(n):
      hx = _leaky_relu(DownConv(self.width)(hx))
    hx = hx.reshape(hx.shape[0], -1)
    hx = self._dropout(_leaky_relu(nn.Dense(self.hidden, name="x_dense")(hx)), deterministic)

    hz = _leaky_relu(nn.Dense(self.hidden, name="z_dense_0")(z))
    hz = self._dropout(_leaky_relu(nn.Dense(self.hidden, name="z_dense_1")(hz)), deterministic)

    h = jnp.concatenate([hx, hz], axis=-1)
    h = self._dropout(_leaky_relu(nn.Dense(self.hidden, name="joint_dense")(h)), deterministic)
    logits = nn.Dense(1, name="joint_out")(h)[:, 0]
    chex.assert_shape(logits, (x.shape[0],))
    return logits
