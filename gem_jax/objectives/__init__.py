"""The objectives, by name: the only place a method name (config.model.objective) is looked up.

    objective = objectives.from_config(config)   # a frozen dataclass, e.g. GemObjective(...)
    out = objective.generator_loss(ctx)            # LossOutput(total, metrics, disc_batch)

Adding a method: one file in this package with an `Objective` subclass, one line in OBJECTIVES
(docs/design.md, "Adding an objective").
"""
from gem_jax.objectives.base import (
  DiscBatch,
  LossContext,
  LossOutput,
  Objective,
  StepInputs,
  joint_adversarial,
)
from gem_jax.objectives.beta_tcvae import BetaTCVAE
from gem_jax.objectives.dear import DEAR
from gem_jax.objectives.factor_vae import FactorVAE
from gem_jax.objectives.gem import GemObjective
from gem_jax.objectives.gem_relcon import GemRelconObjective
from gem_jax.objectives.gem_scm import GemScmObjective
from gem_jax.objectives.gem_sparse import GemSparseObjective

OBJECTIVES: dict[str, type[Objective]] = {
    "beta_vae": GemObjective,
    "beta_tcvae": BetaTCVAE,
    "factor_vae": FactorVAE,
    "dear": DEAR,
    "gem_scm": GemScmObjective,
    "gem_relcon": GemRelconObjective,
    "gem_sparse": GemSparseObjective,
}

DEFAULT = "beta_vae"  # what configs saved before config.model.objective existed mean


def get(name: str) -> type[Objective]:
  """The objective class registered as `name`; unknown names are a ValueError listing all."""
  if name not in OBJECTIVES:
    raise ValueError(f"unknown config.model.objective {name!r}; expected one of "
                     f"{tuple(OBJECTIVES)}")
  return OBJECTIVES[name]


def from_config(config) -> Objective:
  """The run's objective, built once from config.model.objective and its keys."""
  return get(config.model.objective).from_config(config)


__all__ = ["OBJECTIVES", "DEFAULT", "get", "from_config", "Objective", "LossContext",
           "LossOutput", "StepInputs", "DiscBatch", "joint_adversarial", "GemObjective",
           "BetaTCVAE", "FactorVAE", "DEAR", "GemScmObjective", "GemRelconObjective",
           "GemSparseObjective"]
