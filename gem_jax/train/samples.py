"""The sample grids written while training: inputs, reconstructions, prior samples."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from gem_jax.models import VAE, relate
from gem_jax.objectives import Objective
from gem_jax.plots import image_grid
from gem_jax.train.state import TrainState, make_graph_module, make_model


def sample_grid(config, objective: Objective, state: TrainState, images: np.ndarray,
                seed: int) -> np.ndarray:
  """uint8 images [n, H, W, 3] -> a grid uint8 [3 rows of n]: the images, their
  reconstructions (posterior means through A) and n decodings of the objective's prior."""
  mc = config.model
  vae = make_model(mc)
  params, graph = state.params, state.graph
  a = make_graph_module(mc).apply(params["graph"], graph["a0"], graph["edge_mask"])
  decode = lambda z: jax.nn.sigmoid(vae.apply(params["vae"], relate(z, a), method=VAE.decode))
  n = len(images)
  mu, _ = vae.apply(params["vae"], jnp.asarray(images, jnp.float32) / 255.0, method=VAE.encode)
  eps = jax.random.normal(jax.random.PRNGKey(seed), (n, mc.latent_dim))
  z = objective.prior_sample(params, graph, a, eps)
  rows = np.concatenate([images / 255.0, np.asarray(decode(mu)), np.asarray(decode(z))])
  return image_grid(rows, ncols=n)
