"""The discriminators: the joint D(x, z) of the adversarial strategy (paper Eq. 3-5,
docs/design.md stage 3) and FactorVAE's D(z).

ALI/BiGAN form, DEAR's BigJointDiscriminator being the nearest public template: an image branch
and a latent branch embed x and z separately, a joint head scores their concatenation.

  positives: (x, z) with z ~ q(z|x)                       (real image, its posterior sample)
  negatives: (sigmoid(D_rec(A^T z')), z') with z' ~ N(0, I)  (generated image, its prior draw)

Note the negative pairs the image with z', not with z_rel = A^T z': the discriminator judges
the joint of the latent factors and the image, the DisGraph is part of the generator.
Losses are in `gem_jax.objectives.losses`.

`ZDiscriminator` is FactorVAE's D(z) (Kim & Mnih 2018): it tells posterior samples z ~ q(z)
from the same codes permuted dimension-wise, prod_j q(z_j) (`gem_jax.objectives.factor_vae`).
Kim & Mnih and disentanglement_lib use 6 dense layers of 1000 units with leaky ReLU (0.2); its
depth and width are fields (the config's small defaults keep CPU runs cheap).
"""
from __future__ import annotations

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from gem_jax.models.layers import DownConv, num_halvings

__all__ = ["JointDiscriminator", "ZDiscriminator"]


def _leaky_relu(x: jax.Array) -> jax.Array:
  return nn.leaky_relu(x, negative_slope=0.2)


class JointDiscriminator(nn.Module):
  """D(x, z): images [B, H, W, 3] in [0, 1] and latents [B, d] -> logits [B].

  Image branch: the image average-pooled by `input_pool` (1: full resolution; 2: half, a
  quarter of the tower's work), then `num_downsamples` 4x4 stride-2 convolutions of `width`
  channels (the encoder's shape; default: as many as take the pooled side down to 4) and a
  dense layer of `hidden` units. Latent branch:
  two dense layers of `hidden` units. Joint head: concatenation -> dense `hidden` -> dense 1.
  leaky_relu(0.2) throughout; dropout (rate `dropout_rate`, off by default) after each hidden
  layer when `deterministic=False`, which then needs a 'dropout' RNG.
  """

  latent_dim: int = 6
  width: int = 32
  hidden: int = 256
  num_downsamples: int | None = None
  dropout_rate: float = 0.0
  input_pool: int = 1

  def _dropout(self, h: jax.Array, deterministic: bool) -> jax.Array:
    if self.dropout_rate <= 0.0:
      return h
    return nn.Dropout(self.dropout_rate)(h, deterministic=deterministic)

  @nn.compact
  def __call__(self, x: jax.Array, z: jax.Array, deterministic: bool = True) -> jax.Array:
    chex.assert_rank(x, 4)
    chex.assert_shape(z, (x.shape[0], self.latent_dim))
    hx = 2.0 * x - 1.0  # [0, 1] -> [-1, 1]
    if self.input_pool > 1:
      window = (self.input_pool, self.input_pool)
      hx = nn.avg_pool(hx, window, strides=window)
    n = self.num_downsamples
    if n is None:
      n = num_halvings(hx.shape[1])

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


class ZDiscriminator(nn.Module):
  """D(z): latents [B, d] -> logits [B] of "z comes from q(z)" (vs. prod_j q(z_j)).

  `num_layers` dense layers of `width` units with leaky_relu(0.2), then one dense logit.
  One logit stands for the paper's two-way softmax: l = logit_0 - logit_1 is the same function
  class.
  """

  num_layers: int = 6
  width: int = 1000

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    chex.assert_rank(z, 2)
    h = z
    for i in range(self.num_layers):
      h = nn.leaky_relu(nn.Dense(self.width, name=f"dense_{i}")(h), negative_slope=0.2)
    return nn.Dense(1, name="logit")(h)[:, 0]
