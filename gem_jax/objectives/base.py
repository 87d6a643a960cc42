"""What an objective is: the small context its loss reads and the protocol the train step calls.

An objective is a frozen dataclass of its own hyper-parameters, built once from the config where
a run starts (`from_config`). The generic train step (`gem_jax.train.step`) asks it
  - which discriminator it trains (`discriminator`: 'joint' D(x, z), 'z' D(z) or None),
  - which extra generator parameters it owns (`init_extra_params`, e.g. DEAR's SCM weights),
  - which graph state it starts from when the run gives none (`initial_graph`),
  - its generator loss (`generator_loss(ctx) -> LossOutput`), and
  - its prior: N(0, I), or a linear SCM whose weights `prior_weights` gives (`prior_sample`).
Adding a method is one new file with one such class and one line in `gem_jax.objectives`'
registry (docs/design.md, "Adding an objective", has a worked example).
"""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, NamedTuple

import chex
import jax
import jax.numpy as jnp

from gem_jax.data import DatasetSpec
from gem_jax.models.vae import VAE, relate
from gem_jax.objectives import losses

AXIS = "batch"  # the pmap axis name of the train step


class StepInputs(NamedTuple):
  """One device's share of a step: x [b, H, W, 3] in [0, 1]; eps, prior_eps [b, d] ~ N(0, I)
  (reparameterisation and prior noise, per global example index); perm_key: the step's key
  for FactorVAE's permutation (the same on every device); labels [b, k] or None; step: int32
  [] the state's step before this update (schedules); guide: the step's scored images
  (`gem_jax.objectives.guidance.GuideInputs`) when training is MLLM-guided, else None."""

  x: jax.Array
  eps: jax.Array
  prior_eps: jax.Array
  perm_key: jax.Array
  labels: jax.Array | None
  step: jax.Array | int = 0
  guide: Any = None


class DiscBatch(NamedTuple):
  """The discriminator's inputs (gradients stopped): disc.apply(p, *real) are positives,
  disc.apply(p, *fake) negatives. real_logits / fake_logits [b]: those logits when the
  generator loss computed them already (with the same discriminator parameters): the step
  then takes the discriminator's loss from them, one forward pass shared by both updates."""

  real: tuple
  fake: tuple
  real_logits: jax.Array | None = None
  fake_logits: jax.Array | None = None


class LossContext(NamedTuple):
  """What a generator loss may read.

  params: the generator's parameters {'vae', 'graph', + the objective's extras}; disc_params:
  the discriminator's ({} without one); graph: TrainState.graph ({'a0', 'edge_mask',
  'anchor'} [d, d]); inputs: StepInputs; out: the VAE's outputs (mu, logvar, z, z_rel [b, d],
  logits [b, H, W, 3]); a: the DisGraph's A [d, d]; vae / disc: the modules.
  """

  params: Any
  disc_params: Any
  graph: dict
  inputs: StepInputs
  out: dict
  a: jax.Array
  vae: VAE
  disc: Any


class LossOutput(NamedTuple):
  """total: scalar the generator minimises; metrics: scalars to log; disc_batch: the
  discriminator's inputs, or None when the objective trains none."""

  total: jax.Array
  metrics: dict
  disc_batch: DiscBatch | None


@dataclasses.dataclass(frozen=True)
class Objective:
  """Base class: an objective without discriminator, extra parameters or special prior."""

  name: ClassVar[str] = ""
  # Metric name of the discriminator's loss.
  disc_metric: ClassVar[str] = "adv_discriminator"
  # Whether from_config needs config.model.dataset_size (the training split's size) filled in.
  needs_dataset_size: ClassVar[bool] = False
  # Whether the DisGraph learns from its own term only (gem_sparse: the fit to the codes): the
  # train step then decodes and samples the prior through A with stopped gradients.
  graph_from_codes: ClassVar[bool] = False

  @classmethod
  def from_config(cls, config) -> "Objective":
    raise NotImplementedError

  @property
  def discriminator(self) -> str | None:
    """'joint' (D(x, z)), 'z' (D(z)) or None."""
    return None

  @classmethod
  def trains_once(cls, config) -> bool:
    """True: `python -m experiments.<name>` trains `config` in one run; False: it runs GEM's
    two-stage pipeline (warm-up, scoring, alignment, GEM)."""
    del config
    return True

  def init_extra_params(self, latent_dim: int) -> dict:
    """Generator parameters beside 'vae' and 'graph' (e.g. {'scm': {'a': [d, d]}})."""
    del latent_dim
    return {}

  def initial_graph(self, latent_dim: int, spec: DatasetSpec) -> dict | None:
    """TrainState.graph [d, d] arrays when the run passes none (None: A = I, no edges)."""
    del latent_dim, spec
    return None

  @classmethod
  def prior_weights(cls, params, graph: dict, a: jax.Array) -> jax.Array | None:
    """The weights W [d, d] of a linear SCM prior z = W^T z + eps (W[i, j]: edge i -> j), or
    None for the N(0, I) prior. a: the DisGraph's A [d, d]."""
    del params, graph, a
    return None

  def _prior_draws(self, ctx: "LossContext") -> jax.Array | None:
    """The prior's draws for `joint_adversarial` where the VAE outputs hold none (the step
    always passes them; tests and other callers may not)."""
    if "prior_z" in ctx.out:
      return None
    return self.prior_sample(ctx.params, ctx.graph, ctx.a, ctx.inputs.prior_eps)

  def prior_sample(self, params, graph: dict, a: jax.Array, eps: jax.Array) -> jax.Array:
    """Latents z [B, d] of the prior from N(0, I) noise eps [B, d]: eps itself, or the SCM
    z = (I - W^T)^-1 eps of `prior_weights`."""
    w = self.prior_weights(params, graph, a)
    return eps if w is None else scm_sample(eps, w)

  def generator_loss(self, ctx: LossContext) -> LossOutput:
    raise NotImplementedError


def scm_sample(eps: jax.Array, w: jax.Array) -> jax.Array:
  """z = (I - W^T)^{-1} eps for each row: eps [B, d], W [d, d] -> z [B, d].

  Solves (I - W)^T z_i = eps_i rather than forming the inverse; z then satisfies
  z = z W + eps row-wise, i.e. z_j = sum_i W[i, j] z_i + eps_j.
  """
  chex.assert_rank(eps, 2)
  chex.assert_shape(w, (eps.shape[1], eps.shape[1]))
  i_minus_w = jnp.eye(w.shape[0], dtype=w.dtype) - w
  return jnp.linalg.solve(i_minus_w.T, eps.T).T


def reject_joint_adversarial(name: str, model_config) -> None:
  """An objective without the joint adversarial term refuses config.model.adversarial=True."""
  if model_config.adversarial:
    raise ValueError(f"objective {name!r} has no joint adversarial term; set "
                     "config.model.adversarial=False (it pairs with 'beta_vae' for GEM; "
                     "'dear' always uses it)")


def joint_adversarial(ctx: LossContext, z_prior: jax.Array | None = None
                      ) -> tuple[jax.Array, DiscBatch]:
  """The joint discriminator's generator loss L_adv,G and its DiscBatch: positives (x, z),
  negatives (sigmoid(D_rec(A^T z')), z'). The train step decodes z' = ctx.out['prior_z'] [b, d]
  with the reconstructions (ctx.out['prior_logits']); a caller whose VAE outputs hold no prior
  draws passes z_prior [b, d], decoded here. D runs once on each of the b real and b fake
  pairs; its logits go into the DiscBatch."""
  x, z = ctx.inputs.x, ctx.out["z"]
  if "prior_logits" in ctx.out:
    z_prior, prior_logits = ctx.out["prior_z"], ctx.out["prior_logits"]
  elif z_prior is not None:
    prior_logits = ctx.vae.apply(ctx.params["vae"], relate(z_prior, ctx.a), method=VAE.decode)
  else:
    raise ValueError("joint_adversarial needs the prior's draws: ctx.out['prior_z'] and "
                     "'prior_logits' (VAE called with prior_z) or z_prior")
  x_fake = jax.nn.sigmoid(prior_logits)
  # Two calls, not one on the concatenated 2b pairs: the backward pass then reaches D's image
  # input only for the fake half (the real images are data), 0.48 of 7.9 GFLOPs per GEM step.
  d_real = ctx.disc.apply(ctx.disc_params, x, z)
  d_fake = ctx.disc.apply(ctx.disc_params, x_fake, z_prior)
  sg = jax.lax.stop_gradient
  return (losses.generator_loss(d_real, d_fake),
          DiscBatch(real=(x, sg(z)), fake=(sg(x_fake), sg(z_prior)), real_logits=d_real,
                    fake_logits=d_fake))
