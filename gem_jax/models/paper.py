"""The `paper` architecture: residual encoder, decoder and joint discriminator sized like the
GEM paper's networks (Table 2: 44.7 M parameters for GEM (Single), 49.6 M for GEM (Full), about
3 GFLOPs per 64x64 image).

The nearest public template is DEAR's (Shen et al. 2022) BigGAN/SAGAN-style 64x64 generator and
BigJointDiscriminator; written here from the published architecture, with three changes that
keep the train step stateless (`gem_jax.train.step` carries no batch statistics and no power
iterations): GroupNorm where BigGAN has BatchNorm, no spectral norm (D is held by the R1 penalty,
docs/decisions.md) and no self-attention. The encoder is a residual stack of the discriminator's
form (DEAR uses a torchvision ResNet) with a `hidden`-unit dense layer before q(z|x).

Channels are multiples of `width` (DEAR's conv_dim = 32): the decoder starts at 4x4 with
16 * width channels and halves them per up block down to 2 * width; the image branches mirror it.
Convolutions are 3x3 'SAME'; up blocks repeat pixels (nearest) before their first convolution,
down blocks average-pool after their second (BigGAN's order). Selected by config.model.arch
('paper'; `gem_jax.train.state.make_model`); the default 'burgess' is `gem_jax.models.vae`.
"""
from __future__ import annotations

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from gem_jax.models.layers import DownConv, num_halvings

__all__ = ["ResUp", "ResDown", "ResMLP", "PaperEncoder", "PaperDecoder",
           "PaperJointDiscriminator", "channel_multipliers"]


def channel_multipliers(n: int) -> list[int]:
  """Output channels of the n resolution blocks, in units of `width`, from 4x4 upwards:
  [16, 8, 4, 2] for 64x64 (n = 4); [16, 16, 16, 8, 4, 2] for 256x256 (n = 6)."""
  return [2 ** min(4, n - i) for i in range(n)]


def _group_norm(channels: int) -> nn.GroupNorm:
  return nn.GroupNorm(num_groups=min(32, channels))


def _leaky_relu(x: jax.Array) -> jax.Array:
  return nn.leaky_relu(x, negative_slope=0.2)


def _avg_pool(x: jax.Array) -> jax.Array:
  return nn.avg_pool(x, (2, 2), strides=(2, 2))


def _repeat_pixels(x: jax.Array) -> jax.Array:
  """Nearest-neighbour x2: [B, H, W, C] -> [B, 2H, 2W, C]."""
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


class ResUp(nn.Module):
  """BigGAN's generator block: [B, H, W, C] -> [B, 2H, 2W, features].

  GN -> ReLU -> x2 -> conv3x3 -> GN -> ReLU -> conv3x3, plus the shortcut x2 -> conv1x1.
  """

  features: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    chex.assert_rank(x, 4)
    h = _repeat_pixels(nn.relu(_group_norm(x.shape[-1])(x)))
    h = nn.Conv(self.features, (3, 3), padding="SAME")(h)
    h = nn.relu(_group_norm(self.features)(h))
    h = nn.Conv(self.features, (3, 3), padding="SAME")(h)
    shortcut = nn.Conv(self.features, (1, 1))(_repeat_pixels(x))
    return h + shortcut


class ResDown(nn.Module):
  """BigGAN's discriminator block: [B, H, W, C] -> [B, H/2, W/2, features] (or
  [B, H, W, features] when `downsample` is False).

  (act ->) conv3x3 -> act -> conv3x3 (-> avg-pool 2), plus the shortcut conv1x1 (-> avg-pool 2),
  the 1x1 only where the channels change or the block downsamples. `preactivate` False for a
  block reading pixels; `norm` adds GroupNorm before each activation (the encoder's form).
  """

  features: int
  downsample: bool = True
  preactivate: bool = True
  norm: bool = False
  leaky: bool = True

  def _act(self, h: jax.Array) -> jax.Array:
    if self.norm:
      h = _group_norm(h.shape[-1])(h)
    return _leaky_relu(h) if self.leaky else nn.relu(h)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    chex.assert_rank(x, 4)
    h = self._act(x) if self.preactivate else x
    h = nn.Conv(self.features, (3, 3), padding="SAME")(h)
    h = nn.Conv(self.features, (3, 3), padding="SAME")(self._act(h))
    shortcut = x
    if self.downsample or x.shape[-1] != self.features:
      shortcut = nn.Conv(self.features, (1, 1))(x)
    if self.downsample:
      h, shortcut = _avg_pool(h), _avg_pool(shortcut)
    return h + shortcut


class ResMLP(nn.Module):
  """DEAR's residual MLP: [B, k] -> (score [B], features [B, width]).

  dense `width` -> act, `num_blocks` residual blocks (dense -> act -> dense, + input, act), then
  a dense score read from the features. leaky_relu(0.2) throughout.
  """

  width: int = 1024
  num_blocks: int = 3

  @nn.compact
  def __call__(self, v: jax.Array) -> tuple[jax.Array, jax.Array]:
    chex.assert_rank(v, 2)
    h = _leaky_relu(nn.Dense(self.width)(v))
    for _ in range(self.num_blocks):
      r = nn.Dense(self.width)(_leaky_relu(nn.Dense(self.width)(h)))
      h = _leaky_relu(h + r)
    score = nn.Dense(1)(h)[:, 0]
    return score, h


class _ImageBranch(nn.Module):
  """Residual image stack: [B, S, S, C] in any range -> features [B, 16 * width].

  Stem: conv3x3 to `width` (BigGAN's discriminator), or with `strided_stem` a 4x4 stride-2
  `DownConv` to `width` that takes over the first halving (ResNet's strided stem: a quarter of
  the full-resolution FLOPs). Then one ResDown per remaining halving to 4x4 (channels by
  `channel_multipliers`, reversed), one ResDown at 4x4 without downsampling, activation,
  global sum pool.
  """

  width: int
  norm: bool = False
  leaky: bool = True
  strided_stem: bool = False

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    chex.assert_rank(x, 4)
    mults = channel_multipliers(num_halvings(x.shape[1]))[::-1]
    if self.strided_stem:
      h, mults = DownConv(self.width)(x), mults[1:]
    else:
      h = nn.Conv(self.width, (3, 3), padding="SAME")(x)
    for i, m in enumerate(mults):
      h = ResDown(m * self.width, preactivate=i > 0 or self.strided_stem, norm=self.norm,
                  leaky=self.leaky)(h)
    h = ResDown(mults[-1] * self.width, downsample=False, norm=self.norm, leaky=self.leaky)(h)
    h = _leaky_relu(h) if self.leaky else nn.relu(h)
    features = h.sum(axis=(1, 2))
    chex.assert_shape(features, (x.shape[0], mults[-1] * self.width))
    return features


class PaperEncoder(nn.Module):
  """E_sem: images [B, H, W, 3] in [0, 1] -> (mu [B, d], logvar [B, d]).

  The residual image stack with the strided stem (GroupNorm, ReLU; features [B, 16 * width] by
  global mean pool),
  then two dense layers of `hidden` units with ReLU (as the Burgess encoder) and dense 2d.
  """

  latent_dim: int = 6
  width: int = 32
  hidden: int = 2048

  @nn.compact
  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    chex.assert_rank(x, 4)
    h = _ImageBranch(self.width, norm=True, leaky=False, strided_stem=True)(2.0 * x - 1.0)
    h = h / 16.0  # the sum over the 4x4 map -> its mean
    h = nn.relu(nn.Dense(self.hidden)(h))
    h = nn.relu(nn.Dense(self.hidden)(h))
    stats = nn.Dense(2 * self.latent_dim)(h)
    mu, logvar = jnp.split(stats, 2, axis=-1)
    chex.assert_shape(mu, (x.shape[0], self.latent_dim))
    return mu, logvar


class PaperDecoder(nn.Module):
  """D_rec: z_rel [B, d] -> pixel logits [B, image_size, image_size, channels].

  Dense_0 (its kernel [d, 16 * width * 16] is what `fold_into_decoder` folds) to 4x4 x
  16 * width, one ResUp per doubling (channels by `channel_multipliers`), GN -> ReLU ->
  conv3x3 to `channels`.
  """

  image_size: int = 64
  channels: int = 3
  width: int = 32

  @nn.compact
  def __call__(self, z_rel: jax.Array) -> jax.Array:
    chex.assert_rank(z_rel, 2)
    mults = channel_multipliers(num_halvings(self.image_size))
    c0 = mults[0] * self.width
    h = nn.Dense(4 * 4 * c0, name="Dense_0")(z_rel).reshape(z_rel.shape[0], 4, 4, c0)
    for m in mults:
      h = ResUp(m * self.width)(h)
    h = nn.relu(_group_norm(h.shape[-1])(h))
    logits = nn.Conv(self.channels, (3, 3), padding="SAME")(h)
    chex.assert_shape(logits, (z_rel.shape[0], self.image_size, self.image_size, self.channels))
    return logits


class PaperJointDiscriminator(nn.Module):
  """D(x, z) after DEAR's BigJointDiscriminator: images [B, H, W, 3] in [0, 1] and latents
  [B, d] -> logits [B].

  Image branch (residual stack, leaky ReLU, no normalisation) -> features fx [B, 16 * width] and
  a score s_x; latent branch ResMLP(hidden) -> s_z, fz [B, hidden]; joint ResMLP(hidden) on
  [fx, fz] -> s_xz. Logit (s_x + s_z + s_xz) / 3. `deterministic` is accepted for the
  interface of `JointDiscriminator` (no dropout here).
  """

  latent_dim: int = 6
  width: int = 32
  hidden: int = 1024
  mlp_blocks: int = 3

  @nn.compact
  def __call__(self, x: jax.Array, z: jax.Array, deterministic: bool = True) -> jax.Array:
    del deterministic
    chex.assert_rank(x, 4)
    chex.assert_shape(z, (x.shape[0], self.latent_dim))
    fx = _ImageBranch(self.width, name="x_branch")(2.0 * x - 1.0)
    s_x = nn.Dense(1, name="x_score")(fx)[:, 0]
    s_z, fz = ResMLP(self.hidden, self.mlp_blocks, name="z_branch")(z)
    s_xz, _ = ResMLP(self.hidden, self.mlp_blocks, name="joint")(
        jnp.concatenate([fx, fz], axis=-1))
    logits = (s_x + s_z + s_xz) / 3.0
    chex.assert_shape(logits, (x.shape[0],))
    return logits
