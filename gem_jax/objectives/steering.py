"""Steering: the decoder draws what the latents say (docs/design.md, "A decoder that obeys its
latents").

MLLM guidance teaches the encoder to put attribute a's score into latent a; nothing asks the
decoder to draw attribute a when latent a moves, and measured, it does so for some attributes
only. Steering asks it: for every stride-th image of the batch, one attribute a (drawn per
image) has its latent set to a value v drawn uniformly on -SPAN..+SPAN; the code is decoded
through the DisGraph (A stopped), and the encoder, as the judge, reads the picture back. The
loss is the squared gap, over every guided latent, between what the judge reads and the code
that was decoded:

    L_steer = mean_i sum_a (mu_a(D(A^T z'_i)) - z'_ia)^2,   z'_i = mu(x_i) with z'_{i a_i} = v_i

so the intervened attribute must read v and every other attribute must keep its value: a
traversal of latent a moves attribute a in the picture and leaves the others. The judge is
the encoder with its parameters' gradients stopped: it was taught the attributes by the
scores of the scored images only (MLLM guidance), never by a data set's labels, and this term
cannot teach it to read what the decoder happens to draw. Only the decoder learns from it.
"""
from __future__ import annotations

import dataclasses

import chex
import jax
import jax.numpy as jnp

from gem_jax.models.vae import VAE, relate
from gem_jax.objectives.guidance import SPAN

__all__ = ["Steering", "steering_draws"]


def steering_draws(key: jax.Array, global_index: jax.Array, num_attributes: int
                   ) -> tuple[jax.Array, jax.Array]:
  """(attribute int32 [b], value float32 [b] on -SPAN..+SPAN), one draw per global example
  index [b], so one device and several give the same draws for the same global batch."""
  def draw(i):
    k_attr, k_value = jax.random.split(jax.random.fold_in(key, i))
    return (jax.random.randint(k_attr, (), 0, num_attributes),
            jax.random.uniform(k_value, (), minval=-SPAN, maxval=SPAN))
  return jax.vmap(draw)(global_index)


@dataclasses.dataclass(frozen=True)
class Steering:
  """weight: of L_steer against the objective's loss; latents: the guided latent of each
  attribute (scores' column order); stride: every stride-th image of each device's share is
  steered (its cost: one more decode and encode of those images)."""

  weight: float
  latents: tuple[int, ...]
  stride: int = 4

  def __post_init__(self):
    if self.weight < 0:
      raise ValueError(f"config.gem.steer.weight must be >= 0, got {self.weight}")
    if self.stride < 1:
      raise ValueError(f"config.gem.steer.stride must be >= 1, got {self.stride}")

  def loss(self, vae_params, vae: VAE, a: jax.Array, mu: jax.Array, attribute: jax.Array,
           value: jax.Array) -> jax.Array:
    """L_steer on codes mu [b, d] (every stride-th row used), with the draws attribute int
    [b] (an index into `latents`) and value [b]; A [d, d] read with its gradient stopped."""
    chex.assert_rank(mu, 2)
    if mu.shape[0] % self.stride:
      raise ValueError(f"config.gem.steer.stride={self.stride} does not divide the "
                       f"{mu.shape[0]} images each device gets")
    latents = jnp.asarray(self.latents)
    z = jax.lax.stop_gradient(mu[::self.stride])
    rows = jnp.arange(z.shape[0])
    z = z.at[rows, latents[attribute[::self.stride]]].set(value[::self.stride])
    logits = vae.apply(vae_params, relate(z, jax.lax.stop_gradient(a)), method=VAE.decode)
    judge = jax.lax.stop_gradient(vae_params)
    read, _ = vae.apply(judge, jax.nn.sigmoid(logits), method=VAE.encode)
    gap = read[:, latents] - z[:, latents]
    return jnp.mean(jnp.sum(jnp.square(gap), axis=1))
