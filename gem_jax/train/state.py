"""TrainState: everything that changes during training, as one pytree; and its creation.

The model and optimiser builders here are the one place config.model / config.train are read
into modules and optax transformations.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from gem_jax import objectives
from gem_jax.data import get_dataset
from gem_jax.models import (
  VAE,
  DisGraph,
  JointDiscriminator,
  PaperJointDiscriminator,
  ZDiscriminator,
)


@flax.struct.dataclass
class TrainState:
  """One training run's mutable state.

  step: int32 []. params: {'vae': ..., 'graph': ...} (the generator side: encoder, decoder and
  graph learner; an objective may add its own, e.g. DEAR's 'scm': {'a': [d, d]}). opt_state:
  their optax state. rng: uint32 [2] base key; step keys are folded from it, so a resumed run
  replays the same stream. graph: {'a0': [d, d] the initial graph A_0, 'edge_mask': [d, d] 1
  where an edge may exist, 'anchor': [d, d] the slowly moving anchor of the bootstrapped graph
  loss}; for DEAR 'edge_mask' is the SCM super-graph.
  disc_params / disc_opt_state: the discriminator and its own optimizer: the joint D(x, z)
  (adversarial strategy, DEAR), FactorVAE's D(z), or {} when there is none.
  """

  step: jax.Array
  params: Any
  opt_state: Any
  rng: jax.Array
  graph: dict
  disc_params: Any
  disc_opt_state: Any


def make_model(model_config) -> VAE:
  """Builds the VAE module from config.model (arch, latent_dim, width, hidden, upsample)."""
  return VAE(latent_dim=model_config.latent_dim, image_size=model_config.image_size,
             width=model_config.width, hidden=model_config.hidden,
             upsample=model_config.upsample, arch=model_config.arch)


def make_graph_module(model_config) -> DisGraph:
  return DisGraph(latent_dim=model_config.latent_dim, num_layers=model_config.gcn_layers,
                  learn=model_config.graph_learner,
                  kind=model_config.get("graph_learner_kind", "gcn"))


def make_discriminator(model_config, kind: str | None
                       ) -> JointDiscriminator | PaperJointDiscriminator | ZDiscriminator:
  """kind 'z': FactorVAE's D(z); 'joint' (or None, unused): the joint D(x, z), the residual
  `PaperJointDiscriminator` when config.model.arch is 'paper'."""
  if kind == "z":
    return ZDiscriminator(num_layers=model_config.factor_disc_layers,
                          width=model_config.factor_disc_width)
  if model_config.arch == "paper":
    return PaperJointDiscriminator(latent_dim=model_config.latent_dim,
                                   width=model_config.disc_width,
                                   hidden=model_config.disc_hidden)
  return JointDiscriminator(width=model_config.disc_width, hidden=model_config.disc_hidden,
                            latent_dim=model_config.latent_dim,
                            input_pool=int(model_config.get("disc_input_pool", 1)))


def _adam(learning_rate, train_config, b1=None, b2=None) -> optax.GradientTransformation:
  b1 = train_config.adam_b1 if b1 is None else b1
  b2 = train_config.adam_b2 if b2 is None else b2
  tx = optax.adam(learning_rate, b1=b1, b2=b2)
  if train_config.grad_clip_norm:
    tx = optax.chain(optax.clip_by_global_norm(train_config.grad_clip_norm), tx)
  return tx


def make_optimizer(train_config) -> optax.GradientTransformation:
  """Adam for the generator side (docs/design.md: 1e-4), optional global-norm clipping; the
  DisGraph's parameters (params['graph']) at train_config.graph_learning_rate where that is
  set (the sparse SCM learner fits its edges within stage 4's few hundred steps)."""
  tx = _adam(train_config.learning_rate, train_config)
  graph_lr = train_config.get("graph_learning_rate")
  if graph_lr is None:
    return tx
  labels = lambda params: {k: "graph" if k == "graph" else "rest" for k in params}
  return optax.multi_transform({"rest": tx, "graph": _adam(graph_lr, train_config)}, labels)


def make_disc_optimizer(train_config) -> optax.GradientTransformation:
  """The discriminator's own Adam; betas disc_adam_b1/b2 where set (FactorVAE: 0.5, 0.9),
  else the generator's."""
  return _adam(train_config.disc_learning_rate, train_config, train_config.disc_adam_b1,
               train_config.disc_adam_b2)


def identity_graph(latent_dim: int) -> dict:
  """The graph state of the β-VAE branch alone: A_0 = I, no edges."""
  eye = np.eye(latent_dim, dtype=np.float32)
  return {"a0": eye, "edge_mask": np.zeros_like(eye), "anchor": eye.copy()}


def make_graph_state(a0: np.ndarray, edge_mask: np.ndarray) -> dict:
  """Graph state from A_0 [d, d] and the edge mask [d, d] (anchor starts at A_0)."""
  a0 = np.asarray(a0, np.float32)
  return {"a0": a0, "edge_mask": np.asarray(edge_mask, np.float32), "anchor": a0.copy()}


@functools.lru_cache(maxsize=64)
def _jitted_init(module: nn.Module) -> Callable:
  """`module.init` as one compiled program, shared by equal modules (flax modules hash by
  their fields). Run op by op, a paper-sized network's init compiles a few hundred small
  programs: 15 s on a CPU against 8 s. Bitwise the same parameters (tests/test_vae.py)."""
  return jax.jit(module.init)


def create_train_state(config, graph: dict | None = None, vae_params=None,
                       objective: objectives.Objective | None = None) -> TrainState:
  """Initialises a state on the host (unreplicated).

  graph: from `make_graph_state` (default: the objective's `initial_graph`, else
  `identity_graph`). vae_params: start the encoder and decoder from these (e.g. the warm-up
  run's) instead of a fresh init. objective: the run's, when the caller has built it already
  (default: from config).
  """
  mc = config.model
  d, size = mc.latent_dim, mc.image_size
  objective = objective or objectives.from_config(config)
  graph = graph or objective.initial_graph(d, get_dataset(config.data)) or identity_graph(d)
  if graph["a0"].shape != (d, d):
    raise ValueError(f"A_0 has shape {graph['a0'].shape} but the model has latent_dim={d}; "
                     f"expected ({d}, {d})")
  vae_key, graph_key, disc_key, run_key = jax.random.split(jax.random.PRNGKey(config.seed), 4)
  x, z = jnp.zeros((1, size, size, 3)), jnp.zeros((1, d))
  if vae_params is None:
    vae_params = _jitted_init(make_model(mc))(vae_key, x, z, jnp.eye(d))
  graph_params = make_graph_module(mc).init(graph_key, graph["a0"], graph["edge_mask"])
  params = {"vae": vae_params, "graph": graph_params, **objective.init_extra_params(d)}
  disc_params, disc_opt_state = {}, {}
  kind = objective.discriminator
  if kind is not None:
    disc_inputs = (z,) if kind == "z" else (x, z)
    disc_params = _jitted_init(make_discriminator(mc, kind))(disc_key, *disc_inputs)
    disc_opt_state = make_disc_optimizer(config.train).init(disc_params)
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    opt_state=make_optimizer(config.train).init(params), rng=run_key,
                    graph=jax.tree.map(jnp.asarray, graph), disc_params=disc_params,
                    disc_opt_state=disc_opt_state)
