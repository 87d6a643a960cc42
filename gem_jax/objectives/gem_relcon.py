"""GEM with a relation-consistency term (issue 12's candidate (b); docs/design.md).

    lambda_dis * L_dis + lambda_rel * sum_{(i, j) in M} (A[i, j] - D[i, j])^2 [+ adversarial]

D = soft_somers_d(mu) is the differentiable Somers' D of the posterior means over the global
batch (gathered over devices), M the DisGraph's edge mask (pairs of aligned latents). The term
reads A directly, not through the decoder, so folding A into the decoder's first layer changes
the loss: A is identifiable. It pulls A towards the dependence the encoder's codes show on the
images, and the codes towards the relations A states; the anchor keeps A near the MLLM prior.
Registry name 'gem_relcon'; config token 'gem_relcon'.
"""
from __future__ import annotations

import dataclasses

import chex
import jax
import jax.numpy as jnp

from gem_jax.objectives.base import AXIS, LossContext, LossOutput
from gem_jax.objectives.gem import GemObjective
from gem_jax.relations.soft_somers_d import soft_somers_d

__all__ = ["relation_consistency", "GemRelconObjective"]


def relation_consistency(a: jax.Array, dependence: jax.Array, mask: jax.Array) -> jax.Array:
  """sum over the masked pairs of (A - D)^2: A, D [d, d], mask [d, d] (nonzero = pair counted)
  -> scalar."""
  chex.assert_equal_shape([a, dependence, mask])
  return jnp.sum(jnp.where(mask != 0, jnp.square(a - dependence), 0.0))


@dataclasses.dataclass(frozen=True)
class GemRelconObjective(GemObjective):
  """GemObjective's fields; lambda_rel: weight of the relation-consistency term (nats per
  image, the scale of L_dis); temperature: soft sign's scale in code units."""

  name = "gem_relcon"

  lambda_rel: float = 100.0
  temperature: float = 0.5

  @classmethod
  def from_config(cls, config) -> "GemRelconObjective":
    base = GemObjective.from_config(config)
    return cls(**dataclasses.asdict(base), lambda_rel=float(config.model.lambda_rel),
               temperature=float(config.model.relcon_temperature))

  def generator_loss(self, ctx: LossContext) -> LossOutput:
    total, metrics, disc_batch = super().generator_loss(ctx)
    mu = jax.lax.all_gather(ctx.out["mu"], AXIS, tiled=True)
    dependence = soft_somers_d(mu, self.temperature)
    l_rel = relation_consistency(ctx.a, dependence, ctx.graph["edge_mask"])
    metrics["relcon"] = l_rel
    return LossOutput(total + self.lambda_rel * l_rel, metrics, disc_batch)
