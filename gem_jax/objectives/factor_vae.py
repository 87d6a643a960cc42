"""FactorVAE (Kim & Mnih, 2018): a VAE whose total correlation is penalised through the
density-ratio trick.

A discriminator D on latent codes tells samples z ~ q(z) (posterior samples of a batch) from
samples of prod_j q(z_j) (the same codes with each dimension permuted independently across the
batch). With D's logit l(z) = log D(z) / (1 - D(z)) at its optimum,

  TC(z) = KL(q(z) || prod_j q(z_j)) ~= E_q(z) [ l(z) ],

so the generator minimises recon + beta * KL + gamma * mean(l(z)) (beta = 1 in the paper)
while D minimises the logistic loss with q(z) samples labelled 1. One logit stands for the
paper's two-way softmax: l = logit_0 - logit_1 is the same function class.

The discriminator D(z) is `gem_jax.models.ZDiscriminator`.
"""
from __future__ import annotations

import dataclasses

import chex
import jax
import jax.numpy as jnp

from gem_jax.objectives import losses
from gem_jax.objectives.base import (
  AXIS,
  DiscBatch,
  LossContext,
  LossOutput,
  Objective,
  reject_joint_adversarial,
)

__all__ = ["permute_dims", "total_correlation_estimate", "FactorVAE"]


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


@dataclasses.dataclass(frozen=True)
class FactorVAE(Objective):
  """recon + beta * KL + factor_gamma * mean D(z). D's negatives are the global batch's codes
  permuted dimension-wise (one permutation for all devices), this device's rows."""

  name = "factor_vae"
  disc_metric = "tc_discriminator"

  beta: float = 1.0
  factor_gamma: float = 6.4
  likelihood: str = "bernoulli"
  sigma: float = 0.1

  @classmethod
  def from_config(cls, config) -> "FactorVAE":
    mc = config.model
    reject_joint_adversarial(cls.name, mc)
    return cls(beta=mc.beta, factor_gamma=mc.factor_gamma, likelihood=mc.likelihood,
               sigma=mc.sigma)

  @property
  def discriminator(self) -> str:
    return "z"

  def generator_loss(self, ctx: LossContext) -> LossOutput:
    out = ctx.out
    vae_loss, metrics = losses.beta_vae_loss(out, ctx.inputs.x, self.beta, self.likelihood,
                                             self.sigma)
    z = jax.lax.stop_gradient(out["z"])
    permuted = permute_dims(jax.lax.all_gather(z, AXIS, tiled=True), ctx.inputs.perm_key)
    local = jax.lax.dynamic_slice_in_dim(permuted, jax.lax.axis_index(AXIS) * z.shape[0],
                                         z.shape[0])
    # One pass of D over the codes and their permutation: the TC estimate reads the first
    # half, D's own loss both (DiscBatch logits).
    logits = ctx.disc.apply(ctx.disc_params, jnp.concatenate([out["z"], local]))
    real_logits, fake_logits = logits[:z.shape[0]], logits[z.shape[0]:]
    tc = total_correlation_estimate(real_logits)
    metrics["tc"] = tc
    return LossOutput(vae_loss + self.factor_gamma * tc, metrics,
                      DiscBatch(real=(z,), fake=(local,), real_logits=real_logits,
                                fake_logits=fake_logits))
