"""Adversarial losses of the attribute branch (paper Eq. 5-6 in DESIGN.md's form, stage 3).

Inputs are discriminator logits [B] from `gem_jax.discriminator.JointDiscriminator`:
  d_real = D(x, z),   z ~ q(z|x)                      (positives)
  d_fake = D(x~, z'), x~ = sigmoid(D_rec(A^T z')), z' ~ N(0, I)   (negatives)

The discriminator minimises `discriminator_loss`; encoder, decoder (and graph learner) minimise
the non-saturating flip `generator_loss`, weighted against L_dis by `gem_generator_objective`.
Numbers: both losses are 2 log 2 ~= 1.386 when D outputs 0 (cannot tell the pairs apart).
"""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

__all__ = ["discriminator_loss", "generator_loss", "gem_generator_objective"]


def discriminator_loss(d_real: jax.Array, d_fake: jax.Array) -> jax.Array:
  """mean softplus(-d_real) + mean softplus(d_fake): logits [B], [B'] -> scalar.

  = -mean log sigmoid(d_real) - mean log(1 - sigmoid(d_fake)): real pairs labelled 1.
  """
  chex.assert_rank([d_real, d_fake], 1)
  return jnp.mean(jax.nn.softplus(-d_real)) + jnp.mean(jax.nn.softplus(d_fake))


def generator_loss(d_real: jax.Array, d_fake: jax.Array) -> jax.Array:
  """Non-saturating flip for encoder and decoder: mean softplus(d_real) + mean softplus(-d_fake).

  The encoder is pushed to make its (x, z) pairs look fake, the decoder to make (x~, z') look
  real (labels swapped rather than the discriminator loss negated). Logits [B], [B'] -> scalar.
  """
  chex.assert_rank([d_real, d_fake], 1)
  return jnp.mean(jax.nn.softplus(d_real)) + jnp.mean(jax.nn.softplus(-d_fake))


def gem_generator_objective(l_dis: jax.Array, l_adv_g: jax.Array, lambda_dis: float = 0.6,
                            lambda_adv: float = 0.8) -> jax.Array:
  """lambda_dis * L_dis + lambda_adv * L_adv,G (Eq. 6; defaults from the paper)."""
  return lambda_dis * l_dis + lambda_adv * l_adv_g
