"""β-TCVAE (Chen et al., 2018): the KL term split into index-code MI, total correlation and
dimension-wise KL, estimated by minibatch-weighted sampling (MWS).

With q(z) = (1/N) sum_n q(z|x_n) the aggregate posterior over a data set of N images,

  E_x KL(q(z|x) || p(z)) = I_q(x; z)                               (MI)
                         + KL(q(z) || prod_j q(z_j))              (TC)
                         + sum_j KL(q(z_j) || p(z_j))             (dimension-wise KL)

and the loss is recon + alpha * MI + beta * TC + gamma * dimwise-KL (alpha = gamma = 1 in the
paper). MWS estimates the intractable log q(z_i) of a sample z_i ~ q(z|x_i) from a minibatch
of M posteriors {q(z|x_j)}:

  log q(z_i)          ~= logsumexp_j log q(z_i | x_j)            - log(N M)
  log prod_k q(z_ik)  ~= sum_k [logsumexp_j log q(z_ik | x_j)    - log(N M)]

N only shifts the estimates by constants (no gradient), so it changes the reported MI, TC and
dimension-wise KL but not training. All terms are nats per image, averaged over the samples.
"""
from __future__ import annotations

import dataclasses
import math

import chex
import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp

from gem_jax.objectives import losses
from gem_jax.objectives.base import (
  AXIS,
  LossContext,
  LossOutput,
  Objective,
  reject_joint_adversarial,
)

__all__ = ["gaussian_log_density", "mws_log_densities", "tcvae_terms",
           "total_correlation_mws", "beta_tcvae_loss", "BetaTCVAE"]

_LOG_2PI = math.log(2.0 * math.pi)


def gaussian_log_density(z: jax.Array, mu: jax.Array, logvar: jax.Array) -> jax.Array:
  """log N(z; mu, exp(logvar)) elementwise (broadcasting), in nats."""
  return -0.5 * (_LOG_2PI + logvar + jnp.square(z - mu) * jnp.exp(-logvar))


def mws_log_densities(z: jax.Array, batch_mu: jax.Array, batch_logvar: jax.Array,
                      dataset_size: int) -> tuple[jax.Array, jax.Array]:
  """MWS estimates of log q(z_i) and log prod_k q(z_ik).

  Args:
    z: samples [B, d]. batch_mu, batch_logvar: the M posteriors q(z|x_j) of the minibatch the
      aggregate posterior is estimated from, [M, d] each. dataset_size: N, images in the set.
  Returns:
    (log_qz [B], log_prod_qzk [B]), nats.
  """
  chex.assert_rank([z, batch_mu, batch_logvar], 2)
  chex.assert_equal_shape([batch_mu, batch_logvar])
  log_nm = math.log(dataset_size * batch_mu.shape[0])
  # [B, M, d]: log q(z_ik | x_j).
  mat = gaussian_log_density(z[:, None, :], batch_mu[None], batch_logvar[None])
  log_qz = logsumexp(mat.sum(-1), axis=1) - log_nm
  log_prod_qzk = (logsumexp(mat, axis=1) - log_nm).sum(-1)
  return log_qz, log_prod_qzk


def tcvae_terms(z: jax.Array, mu: jax.Array, logvar: jax.Array, dataset_size: int,
                batch_mu: jax.Array | None = None,
                batch_logvar: jax.Array | None = None) -> dict:
  """MI, TC and dimension-wise KL (MWS), each a scalar in nats per image.

  z, mu, logvar: [B, d], z_i ~ q(z|x_i) = N(mu_i, exp(logvar_i)). batch_mu / batch_logvar
  [M, d]: the posteriors that estimate q(z) (default: mu, logvar themselves; the train step
  passes the whole global batch gathered over devices).
  """
  if dataset_size <= 0:
    raise ValueError(f"dataset_size must be the number of training images (> 0), got "
                     f"{dataset_size}")
  batch_mu = mu if batch_mu is None else batch_mu
  batch_logvar = logvar if batch_logvar is None else batch_logvar
  log_qz_x = gaussian_log_density(z, mu, logvar).sum(-1)
  log_pz = gaussian_log_density(z, 0.0, 0.0).sum(-1)
  log_qz, log_prod_qzk = mws_log_densities(z, batch_mu, batch_logvar, dataset_size)
  return dict(mi=jnp.mean(log_qz_x - log_qz), tc=jnp.mean(log_qz - log_prod_qzk),
              dimwise_kl=jnp.mean(log_prod_qzk - log_pz))


def total_correlation_mws(z: jax.Array, mu: jax.Array, logvar: jax.Array,
                          dataset_size: int) -> jax.Array:
  """KL(q(z) || prod_j q(z_j)) by MWS on one minibatch: [B, d] x 3 -> scalar, nats."""
  return tcvae_terms(z, mu, logvar, dataset_size)["tc"]


def beta_tcvae_loss(outputs: dict, x: jax.Array, *, dataset_size: int, beta: float,
                    mi_weight: float = 1.0, dimwise_kl_weight: float = 1.0,
                    likelihood: str = "bernoulli", sigma: float = 0.1,
                    batch_mu: jax.Array | None = None,
                    batch_logvar: jax.Array | None = None) -> tuple[jax.Array, dict]:
  """recon + mi_weight * MI + beta * TC + dimwise_kl_weight * dimwise-KL. Returns (loss,
  metrics); metrics also carry the analytic KL (what β-VAE would penalise) for comparison."""
  recon = losses.reconstruction_nll(outputs["logits"], x, likelihood, sigma).mean()
  terms = tcvae_terms(outputs["z"], outputs["mu"], outputs["logvar"], dataset_size,
                      batch_mu, batch_logvar)
  loss = (recon + mi_weight * terms["mi"] + beta * terms["tc"]
          + dimwise_kl_weight * terms["dimwise_kl"])
  kl = losses.kl_per_latent(outputs["mu"], outputs["logvar"]).mean(0).sum()
  return loss, dict(loss=loss, recon=recon, kl=kl, **terms)


@dataclasses.dataclass(frozen=True)
class BetaTCVAE(Objective):
  """β-TCVAE with the MWS estimate of q(z) over the global batch: every device scores its
  samples against the posteriors of all devices, so the step does not depend on the device
  count (the gather's gradient returns each device's share to it).

  beta: the TC weight; mi_weight alpha; dimwise_kl_weight gamma; dataset_size: N.
  """

  name = "beta_tcvae"
  needs_dataset_size = True

  dataset_size: int
  beta: float = 6.0
  mi_weight: float = 1.0
  dimwise_kl_weight: float = 1.0
  likelihood: str = "bernoulli"
  sigma: float = 0.1

  @classmethod
  def from_config(cls, config) -> "BetaTCVAE":
    mc = config.model
    reject_joint_adversarial(cls.name, mc)
    if mc.dataset_size <= 0:
      raise ValueError("objective 'beta_tcvae' needs config.model.dataset_size, the number of "
                       "training images (gem_jax.train.train_and_evaluate fills it in from the "
                       "data set when it is 0)")
    return cls(dataset_size=int(mc.dataset_size), beta=mc.beta, mi_weight=mc.mi_weight,
               dimwise_kl_weight=mc.dimwise_kl_weight, likelihood=mc.likelihood,
               sigma=mc.sigma)

  def generator_loss(self, ctx: LossContext) -> LossOutput:
    gather = lambda v: jax.lax.all_gather(v, AXIS, tiled=True)
    loss, metrics = beta_tcvae_loss(
        ctx.out, ctx.inputs.x, dataset_size=self.dataset_size, beta=self.beta,
        mi_weight=self.mi_weight, dimwise_kl_weight=self.dimwise_kl_weight,
        likelihood=self.likelihood, sigma=self.sigma, batch_mu=gather(ctx.out["mu"]),
        batch_logvar=gather(ctx.out["logvar"]))
    return LossOutput(loss, metrics, None)
