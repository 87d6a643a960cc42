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

__all__ = ["discriminator_loss", "generator_loss", "gem_generator_objective", "r1_penalty"]


def discriminator_loss(d_real: jax.Array, d_fake: jax.Array) -> jax.Array:
  """mean softplus(-d_real) + mean softplus(d_fake): logits [B], [B'] -> scalar.

  = -mean log sigmoid(d_real) - mean log(1 - sigmoid(d_fake)): real pairs labelled 1.
  """
  chex.assert_rank([d_real, d_fake], 1)
  return jnp.mean(jax.nn.softplus(-d_real)) + jnp.mean(jax.nn.softplus(d_fake))


def r1_penalty(d_fn, inputs: tuple) -> jax.Array:
  """R1 (Mescheder et al. 2018): mean over the batch of ||grad D||^2 at the real inputs.

  d_fn(*inputs) -> logits [B]; the gradient is taken with respect to every input ((x, z) for
  the joint discriminator) and its squared norm summed over each example's entries. The
  discriminator adds gamma / 2 times this; gamma = 0 leaves D unconstrained.
  """
  grads = jax.grad(lambda *a: jnp.sum(d_fn(*a)), argnums=tuple(range(len(inputs))))(*inputs)
  per_example = sum(jnp.sum(jnp.reshape(g, (g.shape[0], -1)) ** 2, axis=1) for g in grads)
  return jnp.mean(per_example)


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
