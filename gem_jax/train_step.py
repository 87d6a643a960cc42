"""One training step of the β-VAE branch, written per device and pmapped over devices.

`train_step(state, batch) -> (state, metrics)` is pure: the per-example noise is drawn from
`fold_in(fold_in(state.rng, step), global example index)`, so the same global batch gives
the same update on one device or on several (up to float summation order).
"""
from __future__ import annotations

import functools
from typing import Callable, Sequence

import chex
import jax
import jax.numpy as jnp
import optax

from gem_jax import losses
from gem_jax.train_state import TrainState
from gem_jax.vae import VAE

AXIS = "batch"


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


def train_step(state: TrainState, batch: dict, *, model: VAE,
               tx: optax.GradientTransformation, beta: float, likelihood: str,
               sigma: float) -> tuple[TrainState, dict]:
  """Per-device body. batch['image']: uint8 [b, H, W, 3] (this device's share).

  A step whose loss or gradients are not finite leaves params and optimizer state as
  they were and reports metrics['nonfinite'] = 1, so NaN never reaches the weights.
  """
  images = batch["image"]
  chex.assert_rank(images, 4)
  x = images_to_float(images)
  step_key = jax.random.fold_in(state.rng, state.step)
  noise = example_noise(step_key, _global_index(x.shape[0]), model.latent_dim)

  def loss_fn(params):
    outputs = model.apply(params, x, noise, state.adjacency)
    return losses.beta_vae_loss(outputs, x, beta, likelihood, sigma)

  (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  grads = jax.lax.pmean(grads, AXIS)
  metrics = jax.lax.pmean(metrics, AXIS)
  updates, new_opt_state = tx.update(grads, state.opt_state, state.params)
  new_params = optax.apply_updates(state.params, updates)
  ok = jnp.isfinite(metrics["loss"]) & _all_finite(grads)
  keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)
  new_state = state.replace(step=state.step + 1,
                            params=keep(new_params, state.params),
                            opt_state=keep(new_opt_state, state.opt_state))
  metrics["nonfinite"] = 1 - ok.astype(jnp.int32)
  return new_state, metrics


def make_pmapped_step(model: VAE, tx: optax.GradientTransformation, model_config,
                      devices: Sequence[jax.Device] | None = None) -> Callable:
  """jit + pmap of `train_step` over `devices` (default: all local devices).

  The returned function takes a replicated state and a batch shaped
  [num_devices, per_device_batch, H, W, 3] and returns (state, metrics), both replicated.
  """
  body = functools.partial(train_step, model=model, tx=tx, beta=model_config.beta,
                           likelihood=model_config.likelihood, sigma=model_config.sigma)
  return jax.pmap(body, axis_name=AXIS, devices=devices, donate_argnums=(0,))
