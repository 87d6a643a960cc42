"""The true relations of a data set with a known generative model, from its `DatasetSpec`."""

from __future__ import annotations

from typing import Optional

import numpy as np

from gem_jax.data import DatasetSpec
from gem_jax.relations import RelationTruth, somers_d

__all__ = ["RelationTruth", "relation_truth"]


def relation_truth(
    spec: DatasetSpec, population_size: int = 200_000, seed: int = 20_241
) -> Optional[RelationTruth]:
  """The spec's true graph [k, k], independent pairs and population Somers' D; None without a
  true graph.

  The population S [k, k] is `somers_d` of `population_size` attribute draws from the data
  set's model (`spec.sample_attributes(seed, population_size)`); none when population_size
  is 0 or the data set cannot be sampled.
  """
  if spec.true_graph is None:
    return None
  population = None
  sample = spec.sample_attributes(seed, population_size) if population_size else None
  if sample is not None:
    population = np.asarray(somers_d(sample, num_levels=spec.num_levels), np.float64)
  return RelationTruth(
      name=f"{spec.name} SCM",
      attributes=tuple(spec.attribute_names),
      true_graph=np.asarray(spec.true_graph, np.float64),
      independent_pairs=tuple(spec.independent_pairs),
      population_somers_d=population,
      population_size=int(population_size),
      population_seed=int(seed),
  )
