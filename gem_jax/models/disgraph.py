"""The DisGraph and its graph learner E_gnn (paper Eq. 9, docs/design.md stage 7).

Conventions (shared with `gem_jax.models.vae.relate` and
`gem_jax.relations.alignment.initial_graph`):
A is [d, d] float32, row i holds the out-edges of latent i, weights are signed, the diagonal
is exactly 1, and the decoder reads z_rel = A^T z, i.e. z_rel[j] = sum_i A[i, j] z[i].
A free latent (one with no aligned attribute) has no edges: zero off-diagonal row and column.

Design note (PR-sized; the paper and docs/design.md leave these open)
-----------------------------------------------------------------
Direction of message passing. Eq. 9 writes T(l) = sigma(N T(l-1) Omega) with
N = D~^-1/2 A~ D~^-1/2. With rows as out-edges, N T gathers at node i over i's *out*-edges,
i.e. messages would flow against the edges. We let messages flow *along* the edges, the same
way z flows in z_rel = A^T z: node j receives sum_i N[i, j] T[i], so one layer computes

    T(l) = sigma(N^T T(l-1) Omega(l)),    N = D~^-1/2 A~ D~^-1/2,    A~ = A_0 + I.

`WeightedGCNLayer` implements this on jraph's segment ops (edge i -> j carries N[i, j]);
`dense_gcn_propagate` is the same product written as matrices, and the tests check the two
agree. The graph propagated over is the (masked) A_0, fixed during training; Omega is learned.

Degrees. docs/design.md takes degrees from |A~| (A~ is signed, so raw row sums can cancel to 0).
A~ is not symmetric (Somers' D is asymmetric), so out- and in-degrees differ. We use one degree
per node, the mean of the two: deg_i = (sum_j |A~[i, j]| + sum_j |A~[j, i]|) / 2, i.e. the degree
of the symmetrised magnitude graph (|A~| + |A~|^T) / 2. It (a) equals Kipf & Welling's degree
when A~ is symmetric, (b) keeps N = D^-1/2 A~ D^-1/2 a plain two-sided diagonal scaling, so N^T
has the same form, (c) treats a node that mostly sends and one that mostly receives alike, and
(d) bounds the spectral norm of N by 2 (Schur test with weights sqrt(deg); by 1 when A~ is
symmetric), so stacked layers neither blow up nor vanish. Since A_0 has diagonal 1, A~ has
diagonal 2 and deg_i >= 2: no division by zero, even for free latents.

Initialisation: the learner starts at A_0. A learner whose first output is far from A_0 throws
the MLLM prior away before the decoder has seen it, so the refined graph is a residual on A_0
in tanh space:

    T(L) = atanh(clip(offdiag(A_0))) + G(A_0),    A = I + M * offdiag(tanh(T(L))),

where G is the L-layer weighted GCN with T(0) = A_0 (node features = rows of A_0), hidden
activation `activation` (ReLU by default, as Kipf & Welling), linear last layer whose Omega(L) is
initialised to zeros, and M is the edge mask. At init G = 0, so A == A_0 up to float32 rounding of
tanh(atanh(.)) (and the clip, which only touches |A_0[i, j]| > 1 - 1e-3; atanh(+-1) is
infinite). This is Eq. 9 with a skip connection from T(0) into T(L). Consequence of the zero
last layer: at the very first step only Omega(L) receives a gradient (the earlier layers'
gradients are multiplied by Omega(L) = 0); from the second step on all layers learn. Masked
edges are removed from the graph the GCN propagates over as well as from the output, so a free
latent neither sends nor receives.

Anchor (SUBLIME bootstrapping): the learner is also pulled towards a slowly moving copy of its
own output, `anchor_loss(A, A_anchor)` with `A_anchor <- tau A_anchor + (1 - tau) sg(A)`,
tau = 0.999, A_anchor initialised to A_0.
"""
from __future__ import annotations

from typing import Callable, Optional

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph
import numpy as np

from gem_jax.models.graph_masks import edge_mask
from gem_jax.models.scm_graph import ScmGraph

__all__ = [
    "edge_mask", "node_mask_from_alignment", "masked_graph", "normalized_adjacency",
    "graphs_tuple_from_adjacency", "dense_gcn_propagate", "WeightedGCNLayer", "GraphLearner",
    "DisGraph", "LEARNERS", "anchor_loss", "update_anchor",
]

Activation = Callable[[jax.Array], jax.Array]

# atanh(1 - 1e-3) ~= 3.8: the largest |pre-activation| the residual init starts from.
ATANH_CLIP = 1e-3


def _eye_like(a: jax.Array) -> jax.Array:
  return jnp.eye(a.shape[0], dtype=bool)


def node_mask_from_alignment(alignment) -> np.ndarray:
  """bool [d]: True for latents that carry an attribute, False for free latents.

  `alignment` is a `gem_jax.relations.Alignment` (read through `latent_dim` and
  `free_latents` only).
  """
  node = np.ones(alignment.latent_dim, dtype=bool)
  node[list(alignment.free_latents)] = False
  return node


def masked_graph(a: jax.Array, mask: Optional[jax.Array] = None) -> jax.Array:
  """[d, d] -> [d, d]: off-diagonal entries outside the edge mask set to 0, diagonal set to 1.

  Uses `where`, not a product, so entries that stay are bit-identical to the input.
  """
  chex.assert_shape(a, (a.shape[0], a.shape[0]))
  allowed = edge_mask(mask, a.shape[0])
  return jnp.where(_eye_like(a), jnp.ones_like(a), jnp.where(allowed, a, jnp.zeros_like(a)))


def normalized_adjacency(a: jax.Array) -> jax.Array:
  """N = D~^-1/2 A~ D~^-1/2 with A~ = A + I: [d, d] -> [d, d] (signed).

  deg_i = (sum_j |A~[i, j]| + sum_j |A~[j, i]|) / 2 (see the module docstring).
  """
  chex.assert_rank(a, 2)
  a_tilde = a + jnp.eye(a.shape[0], dtype=a.dtype)
  mag = jnp.abs(a_tilde)
  deg = 0.5 * (mag.sum(axis=1) + mag.sum(axis=0))
  inv_sqrt = jnp.where(deg > 0, jax.lax.rsqrt(jnp.maximum(deg, 1e-12)), 0.0)
  return inv_sqrt[:, None] * a_tilde * inv_sqrt[None, :]


def graphs_tuple_from_adjacency(a: jax.Array, nodes: Optional[jax.Array] = None
                                ) -> jraph.GraphsTuple:
  """One fully connected directed graph over the d latents, edge weights from N.

  Edge k = i * d + j goes from sender i to receiver j (all d^2 ordered pairs, self-loops
  included; the structure depends on d only, so it is static under jit) and carries
  edges[k] = N[i, j] with N = `normalized_adjacency(a)`.

  Args:
    a: [d, d] signed adjacency, rows = out-edges.
    nodes: node features [d, F]; defaults to the rows of `a` (T(0) = A).

  Returns:
    GraphsTuple with nodes [d, F], edges [d^2], senders/receivers int32 [d^2], n_node [1],
    n_edge [1], globals None.
  """
  chex.assert_rank(a, 2)
  d = a.shape[0]
  chex.assert_shape(a, (d, d))
  nodes = a if nodes is None else nodes
  chex.assert_rank(nodes, 2)
  chex.assert_axis_dimension(nodes, 0, d)
  senders = jnp.repeat(jnp.arange(d, dtype=jnp.int32), d)
  receivers = jnp.tile(jnp.arange(d, dtype=jnp.int32), d)
  return jraph.GraphsTuple(
      nodes=nodes, edges=normalized_adjacency(a).reshape(-1), senders=senders,
      receivers=receivers, globals=None, n_node=jnp.array([d], jnp.int32),
      n_edge=jnp.array([d * d], jnp.int32))


def dense_gcn_propagate(a: jax.Array, t: jax.Array, omega: jax.Array) -> jax.Array:
  """The dense form of one layer before its activation: N^T T Omega, [d, d], [d, F], [F, G].

  Reference for `WeightedGCNLayer` (messages flow along out-edges: out[j] = sum_i N[i, j] ...).
  """
  return normalized_adjacency(a).T @ t @ omega


class WeightedGCNLayer(nn.Module):
  """One weighted GCN layer on a jraph graph: T_out = act(N^T T Omega) (Eq. 9, transposed).

  Input `graph.nodes` [d, F_in], `graph.edges` [E] (edge weights, e.g. from
  `graphs_tuple_from_adjacency`); returns the graph with nodes [d, features]. Omega is
  [F_in, features]. jraph's `GraphConvolution` ignores edge weights, hence this layer.
  """

  features: int
  activation: Optional[Activation] = nn.relu
  use_bias: bool = False
  kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()

  @nn.compact
  def __call__(self, graph: jraph.GraphsTuple) -> jraph.GraphsTuple:
    nodes = graph.nodes
    chex.assert_rank(nodes, 2)
    chex.assert_rank(graph.edges, 1)
    chex.assert_equal_shape([graph.edges, graph.senders, graph.receivers])
    num_nodes = nodes.shape[0]
    h = nn.Dense(self.features, use_bias=False, kernel_init=self.kernel_init,
                 name="omega")(nodes)
    messages = graph.edges[:, None] * h[graph.senders]
    out = jraph.segment_sum(messages, graph.receivers, num_segments=num_nodes)
    if self.use_bias:
      out = out + self.param("bias", nn.initializers.zeros, (self.features,))
    if self.activation is not None:
      out = self.activation(out)
    chex.assert_shape(out, (num_nodes, self.features))
    return graph._replace(nodes=out)


class GraphLearner(nn.Module):
  """E_gnn: A_0 [d, d] (+ optional mask) -> refined A [d, d] (see the module docstring).

  A = I + M * offdiag(tanh(atanh(clip(A_0)) + G(A_0))), G an L-layer weighted GCN over A_0
  with T(0) = A_0, hidden width d, Omega(l) in R^{d x d}, last layer linear and zero-initialised,
  so A == A_0 at init. Off-diagonal values lie in (-1, 1), the diagonal is exactly 1.
  """

  num_layers: int = 2
  activation: Activation = nn.relu

  @nn.compact
  def __call__(self, a0: jax.Array, mask: Optional[jax.Array] = None) -> jax.Array:
    if self.num_layers < 1:
      raise ValueError(f"num_layers must be >= 1, got {self.num_layers}")
    chex.assert_rank(a0, 2)
    d = a0.shape[0]
    chex.assert_shape(a0, (d, d))
    allowed = edge_mask(mask, d)
    a0 = masked_graph(a0.astype(jnp.float32), allowed)
    graph = graphs_tuple_from_adjacency(a0)
    for layer in range(self.num_layers):
      last = layer == self.num_layers - 1
      graph = WeightedGCNLayer(
          d, activation=None if last else self.activation,
          kernel_init=nn.initializers.zeros if last else nn.initializers.lecun_normal(),
          name=f"gcn_{layer}")(graph)
    prior = jnp.arctanh(jnp.clip(a0, -1.0 + ATANH_CLIP, 1.0 - ATANH_CLIP))
    t_final = prior + graph.nodes
    off = jnp.where(allowed, jnp.tanh(t_final), 0.0)
    a = jnp.where(_eye_like(a0), 1.0, off).astype(jnp.float32)
    chex.assert_shape(a, (d, d))
    return a


LEARNERS = ("gcn", "scm")  # config.model.graph_learner_kind


class DisGraph(nn.Module):
  """The DisGraph: A_0 [d, d] (+ edge mask) -> A [d, d] float32, diagonal exactly 1.

  learn=False is GEM (Single) / the "no learner" ablation: A is A_0 (masked; with mask None the
  input comes back unchanged) and the module has no parameters. learn=True refines A_0 with
  `kind`'s learner: 'gcn', the paper's Eq. 9 (`GraphLearner`), or 'scm', structural mechanisms
  fitted to the concept codes on A_0's support (`gem_jax.models.scm_graph.ScmGraph`).
  """

  latent_dim: int = 6
  num_layers: int = 2
  learn: bool = True
  activation: Activation = nn.relu
  kind: str = "gcn"

  @nn.compact
  def __call__(self, a0: jax.Array, edge_mask: Optional[jax.Array] = None) -> jax.Array:
    chex.assert_shape(a0, (self.latent_dim, self.latent_dim))
    if not self.learn:
      if edge_mask is None:
        return a0.astype(jnp.float32)
      return masked_graph(a0.astype(jnp.float32), edge_mask)
    if self.kind == "scm":
      return ScmGraph(name="learner")(a0.astype(jnp.float32), edge_mask)
    if self.kind != "gcn":
      raise ValueError(f"unknown graph learner {self.kind!r}; known: {', '.join(LEARNERS)}")
    return GraphLearner(self.num_layers, self.activation, name="learner")(a0, edge_mask)


def anchor_loss(a: jax.Array, anchor: jax.Array) -> jax.Array:
  """||offdiag(A - A_anchor)||^2: sum of squared off-diagonal differences, [d, d] x2 -> []."""
  chex.assert_rank(a, 2)
  chex.assert_equal_shape([a, anchor])
  diff = jnp.where(_eye_like(a), 0.0, a - anchor)
  return jnp.sum(jnp.square(diff))


def update_anchor(anchor: jax.Array, a: jax.Array, tau: float = 0.999) -> jax.Array:
  """SUBLIME bootstrapping: tau * anchor + (1 - tau) * stop_gradient(A), [d, d] -> [d, d]."""
  chex.assert_equal_shape([a, anchor])
  return tau * anchor + (1.0 - tau) * jax.lax.stop_gradient(a)
