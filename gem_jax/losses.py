"""Losses of the β-VAE branch: reconstruction and β-weighted KL (L_dis of DESIGN.md).

All losses are per-example sums over pixels (or latents) averaged over the batch, the
convention of Higgins et al. and Burgess et al., so numbers are in nats per image.
"""
from __future__ import annotations

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
