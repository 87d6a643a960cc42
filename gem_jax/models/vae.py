"""The β-VAE branch: semantic encoder E_sem and reconstruction decoder D_rec.

The encoder maps images [B, H, W, 3] in [0, 1] to the parameters of
q(z|x) = N(mu, diag exp(logvar)), each [B, d]. The decoder never reads z: it reads
z_rel = A^T z (see `relate`), so the DisGraph slots in without reshaping the code.
With A = I (the β-VAE branch alone) z_rel = z.

Sizes follow Burgess et al. (2018): four 4x4 stride-2 convolutions of `width` channels,
two dense layers of `hidden` units, mirrored in the decoder; the blocks are in
`gem_jax.models.layers`. `arch='paper'` swaps in the residual networks of
`gem_jax.models.paper`, sized like the GEM paper's (44.7 M parameters with the discriminator).
"""
from __future__ import annotations

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from gem_jax.models.layers import Arch, DownConv, UpBlock, Upsample, num_halvings
from gem_jax.models.paper import PaperDecoder, PaperEncoder


def relate(z: jax.Array, adjacency: jax.Array) -> jax.Array:
  """z_rel = A^T z for a batch of row vectors: [B, d], [d, d] -> [B, d].

  Row i of A holds the out-edges of factor i, so z_rel[:, j] = sum_i z[:, i] A[i, j].
  """
  chex.assert_rank(z, 2)
  chex.assert_shape(adjacency, (z.shape[-1], z.shape[-1]))
  return z @ adjacency


def fold_into_decoder(vae_params, g) -> dict:
  """VAE params whose decoder reads z_rel G where it read z_rel: its first dense layer's kernel
  W1 [d, hidden] becomes G W1 (G [d, d]). With G = A^-1 a decoder fed z_rel = A^T z computes
  what it computed from z; with G = A it absorbs A, so that A = I gives the same function."""
  decoder = dict(vae_params["params"]["decoder"])
  dense = dict(decoder["Dense_0"])
  chex.assert_shape(g, (dense["kernel"].shape[0],) * 2)
  dense["kernel"] = jnp.asarray(g, dense["kernel"].dtype) @ dense["kernel"]
  decoder["Dense_0"] = dense
  return {**vae_params, "params": {**vae_params["params"], "decoder": decoder}}


class Encoder(nn.Module):
  """E_sem: images [B, H, W, 3] in [0, 1] -> (mu [B, d], logvar [B, d])."""

  latent_dim: int = 6
  width: int = 32
  hidden: int = 256
  num_downsamples: int = 4

  @nn.compact
  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    chex.assert_rank(x, 4)
    h = x
    for _ in range(self.num_downsamples):
      h = nn.relu(DownConv(self.width)(h))
    h = h.reshape(h.shape[0], -1)
    h = nn.relu(nn.Dense(self.hidden)(h))
    h = nn.relu(nn.Dense(self.hidden)(h))
    stats = nn.Dense(2 * self.latent_dim)(h)
    mu, logvar = jnp.split(stats, 2, axis=-1)
    return mu, logvar


class Decoder(nn.Module):
  """D_rec: z_rel [B, d] -> pixel logits [B, image_size, image_size, channels]."""

  image_size: int = 64
  channels: int = 3
  width: int = 32
  hidden: int = 256
  num_upsamples: int = 4
  upsample: Upsample = "subpixel"

  @nn.compact
  def __call__(self, z_rel: jax.Array) -> jax.Array:
    chex.assert_rank(z_rel, 2)
    base = self.image_size // 2**self.num_upsamples
    h = nn.relu(nn.Dense(self.hidden)(z_rel))
    h = nn.relu(nn.Dense(self.hidden)(h))
    h = nn.relu(nn.Dense(base * base * self.width)(h))
    h = h.reshape(h.shape[0], base, base, self.width)
    for i in range(self.num_upsamples):
      last = i == self.num_upsamples - 1
      h = UpBlock(self.channels if last else self.width, self.upsample)(h)
      if not last:
        h = nn.relu(h)
    return h


class VAE(nn.Module):
  """Encoder + reparameterised sample + z_rel = A^T z + decoder.

  `__call__(x, noise, adjacency[, prior_z])` with x [B, H, W, 3] in [0, 1], noise [B, d] ~
  N(0, I) and adjacency [d, d] returns a dict with mu, logvar, z, z_rel [B, d] and logits
  [B, H, W, 3] (and, given prior_z, its decodings 'prior_logits'). The noise is an argument
  (not drawn inside) so that the train step controls the RNG stream per example. `arch`:
  'burgess' (Burgess et al. 2018, the default) or 'paper' (`gem_jax.models.paper`; `width` is
  its base channel count, `hidden` the encoder's dense layer, `upsample` unused).
  """

  latent_dim: int = 6
  image_size: int = 64
  channels: int = 3
  width: int = 32
  hidden: int = 256
  upsample: Upsample = "subpixel"
  arch: Arch = "burgess"

  def setup(self):
    n = num_halvings(self.image_size)
    if self.arch == "paper":
      self.encoder = PaperEncoder(self.latent_dim, self.width, self.hidden)
      self.decoder = PaperDecoder(self.image_size, self.channels, self.width)
      return
    if self.arch != "burgess":
      raise ValueError(f"unknown arch {self.arch!r}; expected 'burgess' or 'paper'")
    self.encoder = Encoder(self.latent_dim, self.width, self.hidden, n)
    self.decoder = Decoder(self.image_size, self.channels, self.width, self.hidden, n,
                           self.upsample)

  def __call__(self, x: jax.Array, noise: jax.Array, adjacency: jax.Array,
               prior_z: jax.Array | None = None) -> dict:
    """prior_z [B', d] (optional): latents of the prior, decoded in the same decoder call as
    the reconstructions (one batch of B + B'; no layer mixes examples) into 'prior_logits'
    [B', H, W, 3]."""
    chex.assert_shape(x, (None, self.image_size, self.image_size, self.channels))
    mu, logvar = self.encoder(x)
    chex.assert_equal_shape([mu, noise])
    z = mu + jnp.exp(0.5 * logvar) * noise
    z_rel = relate(z, adjacency)
    if prior_z is None:
      return dict(mu=mu, logvar=logvar, z=z, z_rel=z_rel, logits=self.decoder(z_rel))
    chex.assert_shape(prior_z, (None, self.latent_dim))
    logits = self.decoder(jnp.concatenate([z_rel, relate(prior_z, adjacency)]))
    return dict(mu=mu, logvar=logvar, z=z, z_rel=z_rel, logits=logits[:x.shape[0]],
                prior_z=prior_z, prior_logits=logits[x.shape[0]:])

  def encode(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    return self.encoder(x)

  def decode(self, z_rel: jax.Array) -> jax.Array:
    return self.decoder(z_rel)

