"""FactorVAE (Kim & Mnih, 2018): a VAE whose total correlation is penalised through the
density-ratio trick.

A discriminator D on latent codes tells samples z ~ q(z) (posterior samples of a batch) from
samples of prod_j q(z_j) (the same codes with each dimension permuted independently across the
batch). With D's logit l(z) = log D(z) / (1 - D(z)) at its optimum,

  TC(z) = KL(q(z) || prod_j q(z_j)) ~= E_q(z) [ l(z) ],

so the generator minimises recon + beta * KL + gamma * mean(l(z)) (beta = 1 in the paper)
while D minimises the logistic loss with q(z) samples labelled 1. One logit stands for the
paper's two-way softmax: l = logit_0 - logit_1 is the same function class.

Architecture: Kim & Mnih and disentanglement_lib use 6 dense layers of 1000 units with leaky
ReLU (0.2); `ZDiscriminator`'s depth and width are fields (the config's small defaults keep
CPU runs cheap).
"""
from __future__ import annotations

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from gem_jax import adversarial

__all__ = ["ZDiscriminator", "permute_dims", "total_correlation_estimate",
           "discriminator_loss"]


class ZDiscriminator(nn.Module):
  """D(z): latents [B, d] -> logits [B] of "z comes from q(z)" (vs. prod_j q(z_j)).

  `num_layers` dense layers of `width` units with leaky_relu(0.2), then one dense logit.
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


def permute_dims(z: jax.Array, key: jax.Array) -> jax.Array:
  """Each column of z [B, d] permuted independently across the batch: a sample of
  prod_j q(z_j) built from samples of q(z). Every column keeps its multiset of values."""
  chex.assert_rank(z, 2)
  keys = jax.random.split(key, z.shape[1])
  permute_column = lambda k, column: jax.random.permutation(k, column)
  return jax.vmap(permute_column, in_axes=(0, 1), out_axes=1)(keys, z)


def total_correlation_estimate(logits: jax.Array) -> jax.Array:
  """TC ~= mean of D's logits on posterior samples: logits [B] -> scalar, nats."""
  chex.assert_rank(logits, 1)
  return jnp.mean(logits)


def discriminator_loss(logits_joint: jax.Array, logits_permuted: jax.Array) -> jax.Array:
  """Logistic loss, q(z) samples labelled 1 and permuted samples 0: [B], [B] -> scalar.

  The same formula as the joint discriminator's (2 log 2 when D outputs 0)."""
  return adversarial.discriminator_loss(logits_joint, logits_permuted)
