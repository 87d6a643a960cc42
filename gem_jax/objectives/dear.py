"""DEAR-style objective: a structural causal prior and weak supervision (Shen et al., JMLR
2022), linear form.

The first k latents follow a linear SCM over a given super-graph; the other d - k latents are
independent N(0, 1) (DEAR's composite prior):

  z = A^T z + eps,   eps ~ N(0, I)   <=>   z = (I - A^T)^{-1} eps,

with A [d, d] learnable but zero outside the super-graph mask M (A[i, j] is the weight of the
edge i -> j, the convention of `gem_jax.models.vae.relate`). In row form, one sample per row,
z = eps (I - A)^{-1}. M must be a DAG, so I - A is invertible for every A it allows.

Weak supervision ties the first k posterior means to the data set's labels, scaled to [-1, 1]:
`supervised_loss(mu, labels, label_max)` = sum_k (mu_k - (2 labels_k / label_max - 1))^2,
averaged over the batch (nats-like units per image, the project's per-image-sum convention).

The generator minimises recon + lambda_adv * L_adv,G + lambda_sup * supervised loss, with the
joint discriminator's negatives drawn from the SCM prior.
"""
from __future__ import annotations

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np

from gem_jax.data import DatasetSpec
from gem_jax.objectives import losses
from gem_jax.objectives.base import (
  LossContext,
  LossOutput,
  Objective,
  joint_adversarial,
  scm_sample,
)

__all__ = ["SUPERGRAPHS", "scm_sample", "masked_weights", "standardise_labels",
           "supervised_loss", "supergraph_mask", "graph_state", "DEAR"]

SUPERGRAPHS = ("true", "full")


def masked_weights(a: jax.Array, edge_mask: jax.Array) -> jax.Array:
  """The SCM weights the model uses: A [d, d] with entries outside the mask exactly 0."""
  return a * edge_mask


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


def graph_state(latent_dim: int, edge_mask: np.ndarray) -> dict:
  """TrainState.graph for DEAR: A_0 = I (the decoder reads z itself), the SCM super-graph as
  edge mask [d, d], anchor = A_0."""
  eye = np.eye(latent_dim, dtype=np.float32)
  return {"a0": eye, "edge_mask": np.asarray(edge_mask, np.float32), "anchor": eye.copy()}


@dataclasses.dataclass(frozen=True)
class DEAR(Objective):
  """lambda_adv: weight of the joint adversarial term; lambda_sup: of the supervised loss on
  the first num_factors means (labels 0..label_max); supergraph: 'true' | 'full'."""

  name = "dear"

  lambda_adv: float = 1.0
  lambda_sup: float = 1.0
  num_factors: int = 6
  label_max: float = 5.0
  supergraph: str = "true"
  likelihood: str = "bernoulli"
  sigma: float = 0.1

  @classmethod
  def from_config(cls, config) -> "DEAR":
    mc = config.model
    return cls(lambda_adv=mc.lambda_adv, lambda_sup=mc.lambda_sup,
               num_factors=mc.dear_num_factors, label_max=float(config.data.label_max),
               supergraph=mc.dear_supergraph, likelihood=mc.likelihood, sigma=mc.sigma)

  @property
  def discriminator(self) -> str:
    return "joint"

  def init_extra_params(self, latent_dim: int) -> dict:
    return {"scm": {"a": jnp.zeros((latent_dim, latent_dim), jnp.float32)}}

  def initial_graph(self, latent_dim: int, spec: DatasetSpec) -> dict:
    """A_0 = I and, as edge mask, the SCM super-graph `supergraph` (of the data set's true
    graph, or every i < j)."""
    true_graph = spec.true_graph if self.supergraph == "true" else None
    return graph_state(latent_dim, supergraph_mask(self.supergraph, latent_dim,
                                                   self.num_factors, true_graph))

  @classmethod
  def prior_weights(cls, params, graph: dict, a: jax.Array) -> jax.Array:
    """The SCM's learned weights, zero outside the super-graph (the decoder's A is I)."""
    del a
    return masked_weights(params["scm"]["a"], graph["edge_mask"])

  def generator_loss(self, ctx: LossContext) -> LossOutput:
    labels = ctx.inputs.labels
    if labels is None or labels.ndim != 2 or labels.shape[1] != self.num_factors:
      got = "no labels" if labels is None else f"labels of shape {list(labels.shape)}"
      raise ValueError(f"objective 'dear' needs batch['labels'] [b, k={self.num_factors}] "
                       f"(config.model.dear_num_factors) but the batch has {got}; set "
                       "config.data.label_key (e.g. 'attributes') so the input pipeline feeds "
                       "the data set's labels")
    recon = losses.reconstruction_nll(ctx.out["logits"], ctx.inputs.x, self.likelihood,
                                      self.sigma).mean()
    l_adv_g, disc_batch = joint_adversarial(ctx, self._prior_draws(ctx))
    sup = supervised_loss(ctx.out["mu"], labels, self.label_max)
    total = recon + self.lambda_adv * l_adv_g + self.lambda_sup * sup
    return LossOutput(total, dict(recon=recon, adv_generator=l_adv_g, supervised=sup),
                      disc_batch)
