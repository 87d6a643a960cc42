"""GEM with an SCM prior on the latents (docs/design.md; issue 12's candidate (a), unmeasured).

The decoder still reads z_rel = A^T z, but the KL is on the exogenous noise of the linear SCM
that A's off-diagonal part W defines (the DEAR / CausalVAE form):

    z = W^T z + eps   <=>   eps = z (I - W)  (one sample per row),   W = A - I (masked, signed)

With q(z|x) = N(mu, diag s^2), eps is Gaussian with mean mu M and covariance M^T diag(s^2) M
(M = I - W), so KL(q(eps|x) || N(0, I)) has a closed form (`scm_kl`). It depends on A through
the encoder's codes, not through the decoder, so folding A into the decoder's first layer
changes the loss: A is identifiable. With A = I it is the β-VAE's KL. The joint
discriminator's negatives are decoded from the SCM prior z' = (I - W^T)^-1 eps'.
Registry name 'gem_scm'; config token 'gem_scm'. GEM's default from the graph study until the
known-graph study chose 'gem_sparse' (docs/design.md, "The default GEM").
"""
from __future__ import annotations

import dataclasses

import chex
import jax
import jax.numpy as jnp

from gem_jax.objectives import losses
from gem_jax.objectives.base import LossContext
from gem_jax.objectives.gem import GemObjective

__all__ = ["scm_kl", "GemScmObjective"]


def scm_kl(mu: jax.Array, logvar: jax.Array, w: jax.Array) -> jax.Array:
  """KL(q(eps|x) || N(0, I)) per example, eps = z (I - W), z ~ N(mu, diag exp(logvar)).

  mu, logvar [B, d], W [d, d] (zero diagonal) -> [B], nats:
  0.5 (tr(M^T S M) + |mu M|^2 - d - sum logvar - 2 log|det M|), M = I - W.
  """
  chex.assert_rank([mu, logvar, w], 2)
  d = mu.shape[1]
  m = jnp.eye(d, dtype=w.dtype) - w
  trace = jnp.exp(logvar) @ jnp.sum(jnp.square(m), axis=1)
  mean_sq = jnp.sum(jnp.square(mu @ m), axis=1)
  log_det = jnp.linalg.slogdet(m)[1]
  return 0.5 * (trace + mean_sq - d - jnp.sum(logvar, axis=1) - 2.0 * log_det)


def _off_diagonal(a: jax.Array) -> jax.Array:
  return jnp.where(jnp.eye(a.shape[0], dtype=bool), 0.0, a)


@dataclasses.dataclass(frozen=True)
class GemScmObjective(GemObjective):
  """GemObjective's fields; the KL term is `scm_kl` under the DisGraph's A."""

  name = "gem_scm"

  @classmethod
  def prior_weights(cls, params, graph: dict, a: jax.Array) -> jax.Array:
    del params, graph
    return _off_diagonal(a)

  def dis_loss(self, ctx: LossContext) -> tuple:
    """recon + beta * scm_kl under the DisGraph's A, nats per image: (scalar, metrics)."""
    out = ctx.out
    recon = losses.reconstruction_nll(out["logits"], ctx.inputs.x, self.likelihood,
                                      self.sigma).mean()
    kl = scm_kl(out["mu"], out["logvar"], _off_diagonal(ctx.a)).mean()
    loss = recon + self.beta * kl
    return loss, dict(loss=loss, recon=recon, kl=kl)
