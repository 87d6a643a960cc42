"""Which edges a DisGraph may hold: the one mask convention of every graph learner."""
from __future__ import annotations

from typing import Optional

import chex
import jax
import jax.numpy as jnp

__all__ = ["edge_mask"]


def edge_mask(mask: Optional[jax.Array], latent_dim: int) -> jax.Array:
  """Boolean [d, d] mask of the allowed edges i -> j (never the diagonal).

  Args:
    mask: None (every off-diagonal edge allowed), a node mask bool [d] (True = the latent
      carries an attribute; mask[i, j] = node[i] & node[j]) or an edge mask bool [d, d].
    latent_dim: d.
  """
  off = ~jnp.eye(latent_dim, dtype=bool)
  if mask is None:
    return off
  mask = jnp.asarray(mask).astype(bool)
  if mask.ndim == 1:
    chex.assert_shape(mask, (latent_dim,))
    mask = mask[:, None] & mask[None, :]
  chex.assert_shape(mask, (latent_dim, latent_dim))
  return mask & off
