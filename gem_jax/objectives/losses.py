"""The loss terms the objectives share.

β-VAE branch (L_dis, docs/design.md stage 2): reconstruction and β-weighted KL. These are
per-example sums over pixels (or latents) averaged over the batch, the convention of Higgins et
al. and Burgess et al., so numbers are in nats per image.

Adversarial terms (paper Eq. 3-5): discriminator logits [B] from `JointDiscriminator`
  d_real = D(x, z),   z ~ q(z|x)                                    (positives)
  d_fake = D(x~, z'), x~ = sigmoid(D_rec(A^T z')), z' from the prior (negatives)
The discriminator minimises `discriminator_loss`; encoder, decoder (and graph learner) minimise
the non-saturating flip `generator_loss`. Both are 2 log 2 ~= 1.386 when D outputs 0 (cannot
tell the pairs apart). FactorVAE's D(z) uses the same `discriminator_loss`. `r1_penalty` keeps
a discriminator from winning outright (docs/decisions.md, "R1 penalty").
"""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import optax


def bernoulli_nll(logits: jax.Array, x: jax.Array) -> jax.Array:
  """-log p(x|z) for pixels in [0, 1] under Bernoulli(sigmoid(logits)): [B, ...] -> [B]."""
  per_pixel = optax.sigmoid_binary_cross_entropy(logits, x)
  return per_pixel.reshape(per_pixel.shape[0], -1).sum(-1)


def gaussian_nll(logits: jax.Array, x: jax.Array, sigma: float = 0.1) -> jax.Array:
  """Squared error of sigmoid(logits) against x, scaled by 1/(2 sigma^2): [B, ...] -> [B].

  The constant log(sigma sqrt(2 pi)) per pixel is dropped.
  """
  err = jnp.square(jax.nn.sigmoid(logits) - x) / (2.0 * sigma**2)
  return err.reshape(err.shape[0], -1).sum(-1)


def kl_per_latent(mu: jax.Array, logvar: jax.Array) -> jax.Array:
  """KL(N(mu, exp(logvar)) || N(0, 1)) of each latent: [B, d] -> [B, d]."""
  return 0.5 * (jnp.square(mu) + jnp.exp(logvar) - 1.0 - logvar)


def reconstruction_nll(logits: jax.Array, x: jax.Array, likelihood: str,
                       sigma: float = 0.1) -> jax.Array:
  """Dispatches on likelihood 'bernoulli' | 'gaussian': [B, ...] -> [B]."""
  if likelihood == "bernoulli":
    return bernoulli_nll(logits, x)
  if likelihood == "gaussian":
    return gaussian_nll(logits, x, sigma)
  raise ValueError(f"unknown likelihood {likelihood!r}; expected 'bernoulli' or 'gaussian'")


def beta_vae_loss(outputs: dict, x: jax.Array, beta: float, likelihood: str = "bernoulli",
                  sigma: float = 0.1) -> tuple[jax.Array, dict]:
  """L_dis = recon + beta * KL, averaged over the batch. Returns (loss, metrics)."""
  recon = reconstruction_nll(outputs["logits"], x, likelihood, sigma).mean()
  kl_latents = kl_per_latent(outputs["mu"], outputs["logvar"]).mean(0)
  kl = kl_latents.sum()
  loss = recon + beta * kl
  return loss, dict(loss=loss, recon=recon, kl=kl, kl_per_latent=kl_latents)


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
