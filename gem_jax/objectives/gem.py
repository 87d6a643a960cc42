"""GEM's generator objective (paper Eq. 6), also the β-VAE branch, β-VAE and VAE.

  lambda_dis * L_dis [+ lambda_adv * L_adv,G],   L_dis = recon(x, D_rec(A^T z)) + beta * KL

with the joint discriminator's negatives (D_rec(A^T z'), z'), z' ~ N(0, I), when `adversarial`.
Registry name 'beta_vae' (the name saved configs carry); GEM, GEM (Single) and the ablations are
this objective with other switches (the graph learner is the train step's, not the loss's).
"""
from __future__ import annotations

import dataclasses

from gem_jax.objectives import losses
from gem_jax.objectives.base import LossContext, LossOutput, Objective, joint_adversarial


@dataclasses.dataclass(frozen=True)
class GemObjective(Objective):
  """beta: KL weight; likelihood 'bernoulli' | 'gaussian' (sigma: its pixel scale);
  adversarial: the joint discriminator term, weighted lambda_adv against lambda_dis * L_dis."""

  name = "beta_vae"

  beta: float = 4.0
  likelihood: str = "bernoulli"
  sigma: float = 0.1
  adversarial: bool = False
  lambda_dis: float = 1.0
  lambda_adv: float = 0.8

  @classmethod
  def from_config(cls, config) -> "GemObjective":
    mc = config.model
    return cls(beta=mc.beta, likelihood=mc.likelihood, sigma=mc.sigma,
               adversarial=mc.adversarial, lambda_dis=mc.lambda_dis, lambda_adv=mc.lambda_adv)

  @property
  def discriminator(self) -> str | None:
    return "joint" if self.adversarial else None

  @classmethod
  def trains_once(cls, config) -> bool:
    """The β-VAE branch alone (and its ablations, e.g. 'beta_vae-vae') trains once; GEM
    variants (config.model.name 'gem', 'gem_single', ...) run the two-stage pipeline."""
    return config.model.name.split("-")[0] == "beta_vae"

  def generator_loss(self, ctx: LossContext) -> LossOutput:
    l_dis, metrics = losses.beta_vae_loss(ctx.out, ctx.inputs.x, self.beta, self.likelihood,
                                          self.sigma)
    total = self.lambda_dis * l_dis
    metrics["l_dis"] = l_dis
    disc_batch = None
    if self.adversarial:
      l_adv_g, disc_batch = joint_adversarial(ctx, ctx.inputs.prior_eps)
      total = total + self.lambda_adv * l_adv_g
      metrics["adv_generator"] = l_adv_g
    return LossOutput(total, metrics, disc_batch)
