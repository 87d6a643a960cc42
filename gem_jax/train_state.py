"""TrainState: everything that changes during training, as one pytree."""
from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from gem_jax.vae import VAE


@flax.struct.dataclass
class TrainState:
  """step: int32 []; params: model parameters; opt_state: optax state;
  rng: uint32 [2] base key (step keys are folded from it, so a resumed run replays the
  same stream); adjacency: float32 [d, d], the graph A the decoder reads z_rel = A^T z
  through (I for the β-VAE branch)."""

  step: jax.Array
  params: Any
  opt_state: Any
  rng: jax.Array
  adjacency: jax.Array


def make_model(model_config) -> VAE:
  """Builds the VAE module from config.model (latent_dim, width, hidden, upsample)."""
  return VAE(latent_dim=model_config.latent_dim, image_size=model_config.image_size,
             width=model_config.width, hidden=model_config.hidden,
             upsample=model_config.upsample)


def make_optimizer(train_config) -> optax.GradientTransformation:
  """Adam (DESIGN.md: 1e-4), optional global-norm clipping."""
  tx = optax.adam(train_config.learning_rate, b1=train_config.adam_b1,
                  b2=train_config.adam_b2)
  if train_config.grad_clip_norm:
    tx = optax.chain(optax.clip_by_global_norm(train_config.grad_clip_norm), tx)
  return tx


def create_train_state(config, model: VAE, tx: optax.GradientTransformation) -> TrainState:
  """Initialises parameters and optimizer state on the host (unreplicated)."""
  init_key, run_key = jax.random.split(jax.random.PRNGKey(config.seed))
  d, size = config.model.latent_dim, config.model.image_size
  params = model.init(init_key, jnp.zeros((1, size, size, 3)), jnp.zeros((1, d)),
                      jnp.eye(d))
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    opt_state=tx.init(params), rng=run_key,
                    adjacency=jnp.eye(d, dtype=jnp.float32))
