"""One training step of GEM (and of its β-VAE branch alone), pmapped over devices.

`train_step(state, batch) -> (state, metrics)` is pure. Per step, on each device:
  1. A = DisGraph(A_0) (the graph learner's refinement, or A_0 itself);
  2. z = mu + sigma * eps with eps drawn per global example index from the state's RNG, so
     the same global batch gives the same update on one device or several;
  3. generator objective lambda_dis * L_dis + lambda_adv * L_adv,G + lambda_anchor *
     ||A - A_anchor||^2, where L_dis = recon(x, D_rec(A^T z)) + beta * KL;
  4. the joint discriminator D(x, z) learns positives (x, z ~ q(z|x)) against negatives
     (D_rec(A^T z'), z'), z' ~ N(0, I), with its own optimizer;
  5. gradients are averaged over devices (lax.pmean) and the anchor moves towards A.
A step whose loss or gradients are not finite leaves the state as it was (step + 1 aside)
and reports metrics['nonfinite'] = 1, so NaN never reaches the weights.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from gem_jax import adversarial, losses
from gem_jax.disgraph import anchor_loss, update_anchor
from gem_jax.train_state import (TrainState, make_disc_optimizer, make_discriminator,
                                 make_graph_module, make_model, make_optimizer)
from gem_jax.vae import VAE, relate

AXIS = "batch"


@dataclasses.dataclass(frozen=True)
class StepConfig:
  """The loss weights and switches the step reads (from config.model)."""

  beta: float
  likelihood: str
  sigma: float
  adversarial: bool
  lambda_dis: float
  lambda_adv: float
  lambda_anchor: float
  anchor_tau: float

  @classmethod
  def from_model_config(cls, mc) -> "StepConfig":
    return cls(beta=mc.beta, likelihood=mc.likelihood, sigma=mc.sigma,
               adversarial=mc.adversarial, lambda_dis=mc.lambda_dis, lambda_adv=mc.lambda_adv,
               lambda_anchor=mc.lambda_anchor if mc.graph_learner else 0.0,
               anchor_tau=mc.anchor_tau)


def replicate(tree, devices: Sequence[jax.Device]):
  """Stacks one copy of `tree` per device, laid out exactly as the pmapped step returns its
  outputs (mesh axis AXIS), so the step compiles once rather than again on its second call."""
  mesh = jax.sharding.Mesh(np.asarray(devices), (AXIS,))
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(AXIS))
  stack = lambda x: np.stack([np.asarray(x)] * len(devices))
  return jax.device_put(jax.tree.map(stack, tree), sharding)


def unreplicate(tree):
  """The first device's copy of a replicated tree."""
  return jax.tree.map(lambda x: x[0], tree)


def images_to_float(images: jax.Array) -> jax.Array:
  """uint8 [..., H, W, 3] in 0..255 -> float32 in [0, 1]."""
  return images.astype(jnp.float32) / 255.0


def example_noise(key: jax.Array, global_index: jax.Array, latent_dim: int) -> jax.Array:
  """N(0, I) noise [B, d], one independent draw per global example index [B]."""
  draw = lambda i: jax.random.normal(jax.random.fold_in(key, i), (latent_dim,))
  return jax.vmap(draw)(global_index)


def _global_index(per_device_batch: int) -> jax.Array:
  return jax.lax.axis_index(AXIS) * per_device_batch + jnp.arange(per_device_batch)


def _all_finite(tree) -> jax.Array:
  leaves = jax.tree.leaves(tree)
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def _keep_if(ok, new, old):
  return jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)


def generator_loss(params, disc_params, state: TrainState, x, eps, z_prior, *, vae: VAE,
                   graph_module, disc, cfg: StepConfig):
  """The generator objective and what the discriminator step needs from it."""
  a = graph_module.apply(params["graph"], state.graph["a0"], state.graph["edge_mask"])
  out = vae.apply(params["vae"], x, eps, a)
  l_dis, metrics = losses.beta_vae_loss(out, x, cfg.beta, cfg.likelihood, cfg.sigma)
  total = cfg.lambda_dis * l_dis
  x_fake = jnp.zeros_like(x)
  if cfg.adversarial:
    x_fake = jax.nn.sigmoid(vae.apply(params["vae"], relate(z_prior, a), method=VAE.decode))
    d_real = disc.apply(disc_params, x, out["z"])
    d_fake = disc.apply(disc_params, x_fake, z_prior)
    l_adv_g = adversarial.generator_loss(d_real, d_fake)
    total = total + cfg.lambda_adv * l_adv_g
    metrics["adv_generator"] = l_adv_g
  if cfg.lambda_anchor:
    l_anchor = anchor_loss(a, state.graph["anchor"])
    total = total + cfg.lambda_anchor * l_anchor
    metrics["anchor"] = l_anchor
  metrics["l_dis"] = l_dis
  metrics["loss"] = total
  return total, (metrics, a, out["z"], x_fake)


def train_step(state: TrainState, batch: dict, *, vae: VAE, graph_module, disc, tx, disc_tx,
               cfg: StepConfig) -> tuple[TrainState, dict]:
  """Per-device body. batch['image']: uint8 [b, H, W, 3] (this device's share)."""
  chex.assert_rank(batch["image"], 4)
  x = images_to_float(batch["image"])
  d = vae.latent_dim
  step_key = jax.random.fold_in(state.rng, state.step)
  index = _global_index(x.shape[0])
  eps = example_noise(jax.random.fold_in(step_key, 0), index, d)
  z_prior = example_noise(jax.random.fold_in(step_key, 1), index, d)

  grad_fn = jax.value_and_grad(generator_loss, has_aux=True)
  (_, (metrics, a, z, x_fake)), grads = grad_fn(
      state.params, state.disc_params, state, x, eps, z_prior, vae=vae,
      graph_module=graph_module, disc=disc, cfg=cfg)
  grads = jax.lax.pmean(grads, AXIS)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  ok = jnp.isfinite(metrics["loss"]) & _all_finite(grads)

  disc_params, disc_opt_state = state.disc_params, state.disc_opt_state
  if cfg.adversarial:
    real = (x, jax.lax.stop_gradient(z))
    fake = (jax.lax.stop_gradient(x_fake), z_prior)

    def disc_loss(p):
      return adversarial.discriminator_loss(disc.apply(p, *real), disc.apply(p, *fake))

    l_disc, disc_grads = jax.value_and_grad(disc_loss)(state.disc_params)
    disc_grads = jax.lax.pmean(disc_grads, AXIS)
    disc_updates, disc_opt_state = disc_tx.update(disc_grads, state.disc_opt_state,
                                                  state.disc_params)
    disc_params = optax.apply_updates(state.disc_params, disc_updates)
    metrics["adv_discriminator"] = l_disc
    ok = ok & jnp.isfinite(l_disc) & _all_finite(disc_grads)

  graph = dict(state.graph)
  if cfg.lambda_anchor:
    graph["anchor"] = update_anchor(state.graph["anchor"], a, cfg.anchor_tau)
  metrics = jax.lax.pmean(metrics, AXIS)
  new_state = state.replace(
      step=state.step + 1,
      params=_keep_if(ok, params, state.params),
      opt_state=_keep_if(ok, opt_state, state.opt_state),
      graph=_keep_if(ok, graph, state.graph),
      disc_params=_keep_if(ok, disc_params, state.disc_params),
      disc_opt_state=_keep_if(ok, disc_opt_state, state.disc_opt_state))
  metrics["nonfinite"] = 1 - ok.astype(jnp.int32)
  return new_state, metrics


def make_pmapped_step(config, devices: Sequence[jax.Device] | None = None) -> Callable:
  """jit + pmap of `train_step` over `devices` (default: all local devices).

  The returned function takes a replicated state and a batch shaped
  [num_devices, per_device_batch, H, W, 3] and returns (state, metrics), both replicated.
  """
  mc = config.model
  body = functools.partial(train_step, vae=make_model(mc), graph_module=make_graph_module(mc),
                           disc=make_discriminator(mc), tx=make_optimizer(config.train),
                           disc_tx=make_disc_optimizer(config.train),
                           cfg=StepConfig.from_model_config(mc))
  return jax.pmap(body, axis_name=AXIS, devices=devices, donate_argnums=(0,))
