"""DEAR's structural causal prior and weak supervision (Shen et al., JMLR 2022), linear form.

The first k latents follow a linear SCM over a given super-graph; the other d - k latents are
independent N(0, 1) (DEAR's composite prior):

  z = A^T z + eps,   eps ~ N(0, I)   <=>   z = (I - A^T)^{-1} eps,

with A [d, d] learnable but zero outside the super-graph mask M (A[i, j] is the weight of the
edge i -> j, the convention of `gem_jax.vae.relate`). In row form, one sample per row,
z = eps (I - A)^{-1}. M must be a DAG, so I - A is invertible for every A it allows.

Weak supervision ties the first k posterior means to the data set's labels, scaled to [-1, 1]:
`supervised_loss(mu, labels, label_max)` = sum_k (mu_k - (2 labels_k / label_max - 1))^2,
averaged over the batch (nats-like units per image, the project's per-image-sum convention).
"""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["SUPERGRAPHS", "scm_sample", "masked_weights", "standardise_labels",
           "supervised_loss", "supergraph_mask", "true_graph_of", "dear_graph_state"]

SUPERGRAPHS = ("true", "full")


def masked_weights(a: jax.Array, edge_mask: jax.Array) -> jax.Array:
  """The SCM weights the model uses: A [d, d] with entries outside the mask exactly 0."""
  return a * edge_mask


def scm_sample(eps: jax.Array, a: jax.Array) -> jax.Array:
  """z = (I - A^T)^{-1} eps for each row: eps [B, d], A [d, d] (a DAG) -> z [B, d].

  Solves (I - A)^T z_i = eps_i rather than forming the inverse; z then satisfies
  z = z A + eps row-wise, i.e. z_j = sum_i A[i, j] z_i + eps_j.
  """
  chex.assert_rank(eps, 2)
  chex.assert_shape(a, (eps.shape[1], eps.shape[1]))
  i_minus_a = jnp.eye(a.shape[0], dtype=a.dtype) - a
  return jnp.linalg.solve(i_minus_a.T, eps.T).T


def standardise_labels(labels: jax.Array, label_max: float) -> jax.Array:
  """Integer labels 0..label_max -> float32 in [-1, 1] (2 y / label_max - 1)."""
  return 2.0 * labels.astype(jnp.float32) / label_max - 1.0


def supervised_loss(mu: jax.Array, labels: jax.Array, label_max: float) -> jax.Array:
  """Squared error of the first k posterior means against the scaled labels.

  mu [B, d], labels [B, k] (k <= d) in 0..label_max -> scalar: summed over the k latents,
  averaged over the batch.
  """
  chex.assert_rank([mu, labels], 2)
  k = labels.shape[1]
  target = standardise_labels(labels, label_max)
  return jnp.mean(jnp.sum(jnp.square(mu[:, :k] - target), axis=-1))


def _is_dag(mask: np.ndarray) -> bool:
  """A 0/1 adjacency is acyclic iff it is nilpotent: M^d = 0."""
  m = (np.asarray(mask) != 0).astype(np.int64)
  return not np.linalg.matrix_power(m, len(m)).any()


def supergraph_mask(kind: str, latent_dim: int, num_factors: int,
                    true_graph: np.ndarray | None = None) -> np.ndarray:
  """The edges A may use, float32 [d, d], among the first k = num_factors latents.

  kind 'true': the support of the data set's true graph `true_graph` [k, k];
  kind 'full': every pair i < j in the latents' order (the largest DAG in that order).
  """
  if not 0 < num_factors <= latent_dim:
    raise ValueError(f"dear_num_factors={num_factors} must be in 1..latent_dim={latent_dim}")
  block = np.zeros((num_factors, num_factors), np.float32)
  if kind == "full":
    block = np.triu(np.ones_like(block), k=1)
  elif kind == "true":
    if true_graph is None:
      raise ValueError("dear_supergraph='true' needs the data set's true graph; this data set "
                       "has none: use config.model.dear_supergraph='full'")
    true_graph = np.asarray(true_graph)
    if true_graph.shape != block.shape:
      raise ValueError(f"the true graph is {true_graph.shape[0]}x{true_graph.shape[1]} but "
                       f"dear_num_factors={num_factors}")
    block = (true_graph != 0).astype(np.float32)
  else:
    raise ValueError(f"unknown dear_supergraph {kind!r}; expected one of {SUPERGRAPHS}")
  if not _is_dag(block):
    raise ValueError("the SCM super-graph must be acyclic")
  mask = np.zeros((latent_dim, latent_dim), np.float32)
  mask[:num_factors, :num_factors] = block
  return mask


def true_graph_of(data_config) -> np.ndarray | None:
  """The data set's true relation graph [k, k] where it has one (synthetic_faces), else None."""
  if data_config.name == "synthetic_faces":
    from gem_jax.data.synthetic_faces import TRUE_GRAPH
    return np.asarray(TRUE_GRAPH)
  return None


def dear_graph_state(config) -> dict:
  """TrainState.graph for DEAR: A_0 = I (the decoder reads z itself) and, as edge mask, the
  SCM super-graph of config.model.dear_supergraph."""
  from gem_jax.train_state import make_graph_state
  mc = config.model
  true_graph = true_graph_of(config.data) if mc.dear_supergraph == "true" else None
  mask = supergraph_mask(mc.dear_supergraph, mc.latent_dim, mc.dear_num_factors, true_graph)
  return make_graph_state(np.eye(mc.latent_dim), mask)
