"""GEM whose DisGraph is fitted to the concept codes (docs/design.md, "A graph the codes can
support"); registry name 'gem_sparse', config token 'gem_sparse'.

As `gem_scm` (the KL on the noise of the linear SCM z = W^T z + eps, negatives from that SCM),
with the DisGraph's `ScmGraph` learner (config.model.graph_learner_kind = 'scm') and one more
term:

    graph_fit_weight * (fit + graph_l1 * sum_edges sqrt(W^2 + Q^2)) [+ graph_acyclic * h(A)]

`fit` is each aligned latent's share of batch variance that its parents' mechanisms on A_0's
support leave unexplained (`gem_jax.models.scm_graph.scm_fit_loss`), read on the batch's
posterior means with their gradients stopped; the group lasso removes the edges the codes do
not support; h is NOTEARS' acyclicity (0: off, the default, so that an edge the prior holds both
ways stays two-way). Nothing else moves the graph: the decoder, the KL and the SCM prior read
A and W with stopped gradients (`graph_from_codes`), because through the decoder A is not
identifiable (docs/design.md, "What was measured about the graph").
"""
from __future__ import annotations

import dataclasses

import jax

from gem_jax.models.scm_graph import acyclicity, scm_effects, scm_fit_loss
from gem_jax.objectives import losses
from gem_jax.objectives.base import AXIS, LossContext, LossOutput
from gem_jax.objectives.gem_scm import GemScmObjective, scm_kl

__all__ = ["GRAPH_L1", "GemSparseObjective", "graph_l1"]

# The group lasso's weight per prior (config.gem.prior) when config.model.graph_l1 is unset:
# each the weight with the lowest SHD on 128 simulated SCMs under both oracle error models
# (`python -m experiments.simulated_graph_l1 --seeds 128 --scorer uniform|realistic`;
# docs/design.md, "A graph the codes can support"). PC's skeleton has been pruned by
# conditional-independence tests already, and a lasso on it removes true edges; Somers' D is
# dense and needs one. Priors not simulated (DirectLiNGAM) get DEFAULT_GRAPH_L1.
GRAPH_L1 = {"somers_d": 0.2, "pc": 0.0, "ges": 0.2}
DEFAULT_GRAPH_L1 = 0.2


def graph_l1(config) -> float:
  """config.model.graph_l1, or when it is unset (None) the prior's weight (`GRAPH_L1`); a
  config from before the key existed trained with 0.2."""
  value = config.model.get("graph_l1", DEFAULT_GRAPH_L1)
  if value is not None:
    return float(value)
  gem = config.get("gem")
  prior = gem.get("prior", "somers_d") if gem is not None else "somers_d"
  return GRAPH_L1.get(prior, DEFAULT_GRAPH_L1)


@dataclasses.dataclass(frozen=True)
class GemSparseObjective(GemScmObjective):
  """GemScmObjective's fields, plus the graph's fit: fit_weight, l1 (group lasso per edge),
  quadratic (each edge's curvature Q besides its slope W), acyclic_weight (NOTEARS' h)."""

  name = "gem_sparse"
  graph_from_codes = True

  fit_weight: float = 1.0
  l1: float = DEFAULT_GRAPH_L1
  quadratic: bool = True
  acyclic_weight: float = 0.0

  @classmethod
  def from_config(cls, config) -> "GemSparseObjective":
    base = GemScmObjective.from_config(config)
    mc = config.model
    return cls(**{f.name: getattr(base, f.name) for f in dataclasses.fields(base)},
               fit_weight=float(mc.get("graph_fit_weight", 1.0)),
               l1=graph_l1(config),
               quadratic=bool(mc.get("graph_quadratic", True)),
               acyclic_weight=float(mc.get("graph_acyclic", 0.0)))

  @classmethod
  def prior_weights(cls, params, graph: dict, a: jax.Array) -> jax.Array:
    """W on A_0's support: the linear effects the SCM prior samples from (stopped)."""
    del a
    return jax.lax.stop_gradient(scm_effects(params["graph"], graph["a0"], graph["edge_mask"]))

  def dis_loss(self, ctx: LossContext) -> tuple:
    """recon + beta * scm_kl under the learned W (stopped), nats per image."""
    out = ctx.out
    recon = losses.reconstruction_nll(out["logits"], ctx.inputs.x, self.likelihood,
                                      self.sigma).mean()
    w = self.prior_weights(ctx.params, ctx.graph, ctx.a)
    kl = scm_kl(out["mu"], out["logvar"], w).mean()
    loss = recon + self.beta * kl
    return loss, dict(loss=loss, recon=recon, kl=kl)

  def generator_loss(self, ctx: LossContext) -> LossOutput:
    out = super().generator_loss(ctx)
    # The fit reads the global batch's codes (gathered over the devices), so that one device
    # and several fit the same mechanisms to the same batch.
    codes = jax.lax.all_gather(ctx.out["mu"], AXIS, tiled=True)
    fit, group = scm_fit_loss(ctx.params["graph"], ctx.graph["a0"], ctx.graph["edge_mask"],
                              codes, self.quadratic)
    graph_loss = fit + self.l1 * group
    metrics = {**out.metrics, "graph_fit": fit, "graph_group_norm": group}
    if self.acyclic_weight:
      h = acyclicity(ctx.a)
      graph_loss = graph_loss + self.acyclic_weight * h
      metrics["graph_acyclicity"] = h
    return LossOutput(out.total + self.fit_weight * graph_loss, metrics, out.disc_batch)
