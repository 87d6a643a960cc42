"""Counterfactual levels of synthetic faces: do(attribute := level) through the SCM (scm.py).

The SCM: latent_i = INTERCEPT_i + NOISE_SCALE_i eps_i + sum_j TRUE_GRAPH[j, i] a_j with
eps_i ~ N(0, 1), and a_i = clip(rint(latent_i), 0, 5). For one face and {attribute: level}:

1. abduction: the observed level a_i and parents only bound the latent to the level's
   rounding interval, [a_i - 1/2, a_i + 1/2) (level 0: below 1/2; level 5: from 9/2 up), so
   eps_i follows N(0, 1) truncated to that interval. NUM_DRAWS draws of it are taken per face
   (inverse CDF of the truncated normal at seeded uniforms), each kept a hair (1e-6 levels)
   inside the interval so that rounding gives back a_i;
2. action: the intervened attributes take their levels (fractional ones included: the
   structural equations are linear in the parents, so a child reads e.g. gender = 2.5);
3. prediction: in topological order every descendant of an intervened attribute is
   recomputed from its (new) parents and its own eps draws; everything else keeps its
   observed level. The result is the mean over the draws: an expected level.

At the observed levels nothing moves, since each draw reproduces the observed latent
interval. Where nothing clips, a unit shift of a parent moves a child by exactly its structural
weight when that weight is an integer (do(gender := g + 1) moves beard by 1.0).
"""
from __future__ import annotations

import numpy as np
import scipy.stats

from gem_jax.data.concept_graph import descendants
from gem_jax.data.synthetic_faces.scm import (
  INTERCEPT,
  NOISE_SCALE,
  NUM_LEVELS,
  TOPOLOGICAL_ORDER,
  TRUE_GRAPH,
)

NUM_DRAWS = 64          # eps draws per face
_INSIDE = 1e-6          # levels kept between a draw's latent and its interval's ends


def counterfactual_levels(levels: np.ndarray, targets: dict[int, np.ndarray], seed: int = 0,
                          num_draws: int = NUM_DRAWS) -> np.ndarray:
  """Expected levels float64 [N, 6] after do(attribute column := targets[column]).

  Args:
    levels: observed levels int [N, 6] (ATTRIBUTES order).
    targets: {column: levels float [N] (or a number) in 0..5}.
    seed: seed of the eps draws.
    num_draws: eps draws per face.
  """
  observed = np.asarray(levels, np.float64)
  graph = TRUE_GRAPH.astype(np.float64)
  draws = np.repeat(observed[None], num_draws, axis=0)  # [D, N, 6]
  for column, level in targets.items():
    draws[:, :, column] = level
  moved = descendants(graph, targets) - set(targets)
  rng = np.random.default_rng(seed)
  for i in TOPOLOGICAL_ORDER:
    if i not in moved:
      continue
    noise = _noise_draws(observed, i, graph, rng, num_draws)
    latent = INTERCEPT[i] + draws @ graph[:, i] + noise
    draws[:, :, i] = np.clip(np.rint(latent), 0, NUM_LEVELS - 1)
  return draws.mean(axis=0)


def _noise_draws(observed: np.ndarray, i: int, graph: np.ndarray, rng: np.random.Generator,
                 num_draws: int) -> np.ndarray:
  """NOISE_SCALE_i eps_i float64 [D, N]: draws of the noise given the observed level and
  parents of attribute i (module docstring, step 1)."""
  mean = INTERCEPT[i] + observed @ graph[:, i]
  level = observed[:, i]
  low = np.where(level <= 0, -np.inf, level - 0.5)
  high = np.where(level >= NUM_LEVELS - 1, np.inf, level + 0.5)
  scale = float(NOISE_SCALE[i])
  eps = scipy.stats.truncnorm.ppf(rng.uniform(size=(num_draws, len(level))),
                                  (low - mean) / scale, (high - mean) / scale)
  latent = np.clip(mean + scale * eps, low + _INSIDE, high - _INSIDE)
  return latent - mean
