"""GEM's generator objective (paper Eq. 6), also the β-VAE branch, β-VAE and VAE.

  lambda_dis * L_dis [+ lambda_adv * s * L_adv,G],   L_dis = recon(x, D_rec(A^T z)) + beta * KL

with the joint discriminator's negatives (D_rec(A^T z'), z'), z' from the prior, when
`adversarial`. L_dis is in nats per image (summed over its P = H * W * 3 pixel values), L_adv,G
a batch mean of log-losses; s = 1 (adv_scale 'batch', the paper's form, where the adversarial
term's gradients are about 1/1000 of L_dis's) or s = P (adv_scale 'pixel': both terms summed
over the image's P values, so lambda_dis and lambda_adv weigh terms of one scale;
docs/design.md, "A balanced joint objective").
With a capacity (Burgess et al. 2018, "Understanding disentangling in β-VAE"; capacity_max > 0)
the KL term becomes beta * |KL - C(t)|, C(t) = capacity_max * min(1, t / capacity_steps) nats:
the encoder's capacity grows linearly, so that the factors that explain the most pixels are
encoded first and each later one gets its own latent.
Registry name 'beta_vae' (the name saved configs carry); GEM, GEM (Single) and the ablations are
this objective with other switches (the graph learner is the train step's, not the loss's).
Subclasses change the divergence term (`dis_loss`) and the prior (`prior_weights`).
"""
from __future__ import annotations

import dataclasses
import math

import jax.numpy as jnp

from gem_jax.objectives import losses
from gem_jax.objectives.base import LossContext, LossOutput, Objective, joint_adversarial

ADV_SCALES = ("batch", "pixel")


@dataclasses.dataclass(frozen=True)
class GemObjective(Objective):
  """beta: KL weight; likelihood 'bernoulli' | 'gaussian' (sigma: its pixel scale);
  adversarial: the joint discriminator term, weighted lambda_adv against lambda_dis * L_dis;
  adv_scale: 'batch' | 'pixel' (see the module docstring); capacity_max (nats, 0: off) and
  capacity_steps: the capacity schedule."""

  name = "beta_vae"

  beta: float = 4.0
  likelihood: str = "bernoulli"
  sigma: float = 0.1
  adversarial: bool = False
  lambda_dis: float = 1.0
  lambda_adv: float = 0.8
  adv_scale: str = "batch"
  capacity_max: float = 0.0
  capacity_steps: int = 1

  def __post_init__(self):
    if self.adv_scale not in ADV_SCALES:
      raise ValueError(f"unknown config.model.adv_scale {self.adv_scale!r}; expected one of "
                       f"{ADV_SCALES}")

  @classmethod
  def from_config(cls, config) -> "GemObjective":
    mc = config.model
    return cls(beta=mc.beta, likelihood=mc.likelihood, sigma=mc.sigma,
               adversarial=mc.adversarial, lambda_dis=mc.lambda_dis, lambda_adv=mc.lambda_adv,
               adv_scale=mc.get("adv_scale", "batch"),
               capacity_max=float(mc.get("capacity_max", 0.0)),
               capacity_steps=int(mc.get("capacity_steps", 1)))

  @property
  def discriminator(self) -> str | None:
    return "joint" if self.adversarial else None

  @classmethod
  def trains_once(cls, config) -> bool:
    """The β-VAE branch alone (and its ablations, e.g. 'beta_vae-vae') trains once; GEM
    variants (config.model.name 'gem', 'gem_single', ...) run the two-stage pipeline."""
    return config.model.name.split("-")[0] == "beta_vae"

  def dis_loss(self, ctx: LossContext) -> tuple:
    """L_dis = recon + beta * KL(q(z|x) || N(0, I)) (with a capacity: beta * |KL - C(t)|),
    nats per image: (scalar, metrics)."""
    if not self.capacity_max:
      return losses.beta_vae_loss(ctx.out, ctx.inputs.x, self.beta, self.likelihood,
                                  self.sigma)
    _, metrics = losses.beta_vae_loss(ctx.out, ctx.inputs.x, 0.0, self.likelihood, self.sigma)
    fraction = jnp.minimum(1.0, ctx.inputs.step / max(self.capacity_steps, 1))
    capacity = self.capacity_max * fraction
    loss = metrics["recon"] + self.beta * jnp.abs(metrics["kl"] - capacity)
    return loss, {**metrics, "loss": loss, "capacity": capacity}

  def adv_weight(self, x) -> float:
    """lambda_adv times the adversarial term's scale s for images x [b, H, W, C]."""
    scale = math.prod(x.shape[1:]) if self.adv_scale == "pixel" else 1
    return self.lambda_adv * scale

  def generator_loss(self, ctx: LossContext) -> LossOutput:
    l_dis, metrics = self.dis_loss(ctx)
    total = self.lambda_dis * l_dis
    metrics["l_dis"] = l_dis
    disc_batch = None
    if self.adversarial:
      l_adv_g, disc_batch = joint_adversarial(ctx, self._prior_draws(ctx))
      total = total + self.adv_weight(ctx.inputs.x) * l_adv_g
      metrics["adv_generator"] = l_adv_g
    return LossOutput(total, metrics, disc_batch)
