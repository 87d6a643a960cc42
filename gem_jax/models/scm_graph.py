"""The DisGraph as structural mechanisms fitted to the concept codes (docs/design.md, "A graph
the codes can support").

Under MLLM-guided training latent a carries attribute a's level (scores 0..5 on -2..+2), so the
aligned latents' posterior means c [B, d] are the concept variables. This learner reads A as
their structural equations, restricted to the prior's support (the edges A_0 holds: Somers' D
on every pair both ways, or the skeleton a causal-discovery method found in the scores):

    c_j = sum_{i: i -> j allowed} (W[i, j] c_i + Q[i, j] psi(c_i)) + u_j,    psi(c) = c^2 / 2,

W the linear effect of latent i on latent j, Q its curvature (an effect that changes sign, as
the pendulum's angle on its shadow's length, is curvature, not slope). Each edge is one group:
its strength is sqrt(W^2 + Q^2), the graph's reading of the edge, signed by W's sign (+ where
W = 0):

    A = I + sign(W) * sqrt(W^2 + Q^2)    (on the support; 0 elsewhere; diagonal 1).

The objective fits (W, Q) to each batch's codes with a group-lasso penalty (`scm_fit_loss`,
codes with stopped gradients: the graph reads the codes, it never moves them), so an edge the
codes do not support shrinks to 0 and leaves the graph read at the edge threshold. Edges held
both ways (a two-way Somers' D pair, an undirected edge of a CPDAG) stay a 2-cycle unless the
acyclicity penalty (`acyclicity`, NOTEARS' h) is on: observational codes rarely say which way
such an edge points (docs/design.md), and the do-operator reads a 2-cycle correctly either way.

W starts at A_0's off-diagonal weights and Q at 0, so the learner's first graph is A_0 on its
support. The linear part W (`scm_effects`) is what the SCM prior samples from and what the
do-operator propagates: the average change of c_j per unit change of c_i.
"""
from __future__ import annotations

from typing import Optional

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from gem_jax.models.graph_masks import edge_mask

__all__ = ["ScmGraph", "support", "signed_strength", "scm_effects", "scm_fit_loss",
           "acyclicity", "learner_params"]

# Added under the square root of a group's norm, so that its gradient is finite at 0.
GROUP_EPS = 1e-8


def support(a0: jax.Array, mask: Optional[jax.Array]) -> jax.Array:
  """bool [d, d]: the edges i -> j the learner may hold: allowed by the mask (off the
  diagonal) and held by the prior A_0 (nonzero)."""
  return edge_mask(mask, a0.shape[0]) & (a0 != 0)


def signed_strength(w: jax.Array, q: jax.Array) -> jax.Array:
  """sign(W) sqrt(W^2 + Q^2) (+ where W = 0): each edge's strength, [d, d] x2 -> [d, d]."""
  sign = jnp.where(w >= 0, 1.0, -1.0)
  norm2 = jnp.square(w) + jnp.square(q)
  positive = norm2 > 0  # sqrt's gradient is infinite at 0: give that edge a zero gradient
  return sign * jnp.where(positive, jnp.sqrt(jnp.where(positive, norm2, 1.0)), 0.0)


class ScmGraph(nn.Module):
  """A_0 [d, d] (+ edge mask) -> A [d, d] = I + signed strength of the learned mechanisms.

  Parameters 'w' [d, d] (initialised at A_0's off-diagonal on its support) and 'q' [d, d]
  (zeros): see the module docstring.
  """

  @nn.compact
  def __call__(self, a0: jax.Array, mask: Optional[jax.Array] = None) -> jax.Array:
    chex.assert_rank(a0, 2)
    d = a0.shape[0]
    allowed = support(a0, mask)
    w = self.param("w", lambda _: jnp.where(allowed, a0, 0.0).astype(jnp.float32))
    q = self.param("q", nn.initializers.zeros, (d, d), jnp.float32)
    off = jnp.where(allowed, signed_strength(w, q), 0.0)
    a = jnp.where(jnp.eye(d, dtype=bool), 1.0, off).astype(jnp.float32)
    chex.assert_shape(a, (d, d))
    return a


def learner_params(graph_params) -> dict:
  """{'w', 'q'} of a DisGraph's ScmGraph from the DisGraph's parameters."""
  return graph_params["params"]["learner"]


def scm_effects(graph_params, a0: jax.Array, mask: Optional[jax.Array]) -> jax.Array:
  """W on the support [d, d] (0 elsewhere): the linear effects (module docstring)."""
  return jnp.where(support(a0, mask), learner_params(graph_params)["w"], 0.0)


def _psi(c: jax.Array) -> jax.Array:
  return 0.5 * jnp.square(c)


def scm_fit_loss(graph_params, a0: jax.Array, mask: Optional[jax.Array], codes: jax.Array,
                 quadratic: bool = True) -> tuple[jax.Array, jax.Array]:
  """(fit, group norm) of the mechanisms on a batch of codes.

  fit: sum over latents j with a parent of mean_b (c_bj - pred_bj)^2 / var_b(c_j), each
  feature centred on the batch (an intercept), the codes' gradients stopped; a latent whose
  parents explain it fully contributes 0, one they do not explain 1. group norm: sum over the
  support of sqrt(W^2 + Q^2 + eps) (Q left out when not `quadratic`).

  codes: float [b, d] (posterior means). Returns two scalars.
  """
  chex.assert_rank(codes, 2)
  p = learner_params(graph_params)
  allowed = support(a0, mask)
  w = jnp.where(allowed, p["w"], 0.0)
  q = jnp.where(allowed & quadratic, p["q"], 0.0)
  c = jax.lax.stop_gradient(codes)
  lin = c - c.mean(axis=0)
  curve = _psi(c) - _psi(c).mean(axis=0)
  pred = lin @ w + curve @ q
  var = lin.var(axis=0) + 1e-6
  has_parent = allowed.any(axis=0)
  fit = jnp.sum(jnp.where(has_parent, jnp.mean(jnp.square(lin - pred), axis=0) / var, 0.0))
  group = jnp.sqrt(jnp.square(w) + jnp.square(q) + GROUP_EPS)
  return fit, jnp.sum(jnp.where(allowed, group, 0.0))


def acyclicity(strength: jax.Array) -> jax.Array:
  """NOTEARS' h(S) = tr(exp(S * S)) - d >= 0, 0 exactly when S [d, d] has no cycle
  (Zheng et al. 2018); the diagonal is ignored."""
  s = jnp.where(jnp.eye(strength.shape[0], dtype=bool), 0.0, strength)
  return jnp.trace(jax.scipy.linalg.expm(s * s)) - s.shape[0]
