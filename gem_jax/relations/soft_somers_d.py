"""A differentiable Somers' D between continuous codes over a batch (issue 12's candidate (b)).

`somers_d` counts concordant and discordant pairs of integer scores; here the sign of each
pairwise difference is softened, s = tanh((c_n - c_m) / t), so the statistic has gradients
with respect to the codes:

    D[i, j] = sum_{n, m} s_i(n, m) s_j(n, m) / sum_{n, m} s_i(n, m)^2

With hard signs (t -> 0) this is Somers' D(j | i) of the ranks: the numerator counts N_c - N_d
(each unordered pair twice) and the denominator the pairs not tied on i. With t > 0, pairs
closer than about t on code i count as partly tied, so, as for scores, a latent whose values
bunch up (a rare attribute) has a larger impact on others than they have on it: D is
asymmetric and D[i, i] = 1. Cauchy-Schwarz bounds |D[i, j]| by the square root of the ratio of
the two soft-untied counts, which can exceed 1, so D is clipped to [-1, 1]. Units: t is in code
units (the β-VAE's posterior means are roughly standard normal).
"""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

__all__ = ["soft_somers_d"]


def soft_somers_d(codes: jax.Array, temperature: float = 0.5) -> jax.Array:
  """codes [B, d] (B >= 2) -> D [d, d] float32, D[i, j] = soft Somers' D(code j | code i).

  Rows are the independent variable, as in `gem_jax.relations.somers_d` and A_0. A code that
  is constant over the batch gets a zero row (no measurable impact) and diagonal 1.
  """
  chex.assert_rank(codes, 2)
  if codes.shape[0] < 2:
    raise ValueError(f"soft_somers_d needs at least 2 rows, got {codes.shape[0]}")
  if temperature <= 0:
    raise ValueError(f"temperature must be > 0, got {temperature}")
  codes = codes.astype(jnp.float32)
  s = jnp.tanh((codes[:, None, :] - codes[None, :, :]) / temperature)  # [B, B, d]
  num = jnp.einsum("nmi,nmj->ij", s, s)
  untied = jnp.diagonal(num)
  safe = jnp.where(untied > 1e-12, untied, 1.0)
  d = jnp.where((untied > 1e-12)[:, None], num / safe[:, None], 0.0)
  d = jnp.clip(d, -1.0, 1.0)
  return jnp.where(jnp.eye(codes.shape[1], dtype=bool), 1.0, d)
