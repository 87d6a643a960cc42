"""Counterfactual levels of pendulum scenes: do(concept := level), the shadows recomputed.

The pendulum's SCM is deterministic: the two causes (pendulum_angle, light_position) are
exogenous and each shadow concept is `scm.shadows` of them. For one example and
{concept: level} (levels 0..5, fractional allowed):

1. an intervened cause moves to a value in its target level's bin that keeps the example's
   position inside its own bin: with the bins' bounds b_0 = train minimum, b_1..b_5 = the
   level edges, b_6 = train maximum, t = (value - b_obs) / (b_obs+1 - b_obs) clipped to [0, 1]
   (0.5 in an empty bin), the new value is b_L + t (b_L+1 - b_L); at the example's own level
   the value is kept exactly. A fractional level L mixes floor(L) and ceil(L) with weights
   ceil(L) - L and L - floor(L), so the returned levels are expectations;
2. each shadow concept not intervened is recomputed from the (new) causes by the structural
   equations (`scm.shadows`) and binned with the level edges; where the causes did not move
   it keeps its observed level. The equations have no noise term: a stored value differs
   from them only by rounding (float32 in the tfds copy), which is not added back, since
   near MIN_SHADOW, where 40% of the shadows tie, even a rounding residual would move a
   level;
3. every other concept keeps its observed level; an intervened concept takes its level.
"""
from __future__ import annotations

import dataclasses
import itertools
from typing import Any, Mapping

import numpy as np

from gem_jax.data.levels import level_edges, to_levels
from gem_jax.data.pendulum.scm import CAUSES, EFFECTS, shadows


@dataclasses.dataclass(frozen=True, eq=False)
class PendulumCounterfactual:
  """`DatasetSpec.counterfactual` of the pendulum, for the levels of one set of train values.

  Attributes:
    edges: level edges float64 [5, 4] of the train values (`levels.level_edges`).
    lows, highs: the train values' minimum and maximum float64 [4] (the outer bin bounds).
  """

  edges: np.ndarray
  lows: np.ndarray
  highs: np.ndarray

  @classmethod
  def from_train_values(cls, train_values: np.ndarray) -> "PendulumCounterfactual":
    """From the train rows' concept values float [n, 4] (CONCEPTS order)."""
    train_values = np.asarray(train_values, np.float64)
    return cls(level_edges(train_values), train_values.min(axis=0), train_values.max(axis=0))

  def __call__(self, examples: Mapping[str, Any], targets: dict[int, np.ndarray],
               seed: int = 0) -> np.ndarray:
    """Expected levels float64 [N, 4] after do(column := targets[column]) (module docstring).

    examples: 'values' float [N, 4] (the concepts' numbers) and 'attributes' int [N, 4] (their
    levels). targets: {column: levels float64 [N] in 0..5}. seed: unused (deterministic).
    """
    del seed
    values = np.asarray(examples["values"], np.float64)
    observed = np.asarray(examples["attributes"], np.int64)
    out = observed.astype(np.float64)
    for column, level in targets.items():
      out[:, column] = level
    free = [c for c in EFFECTS if c not in targets]
    if not free or not any(c in targets for c in CAUSES):
      return out
    expected = np.zeros((len(values), len(EFFECTS)))
    options = [self._cause_options(values, observed, c, targets.get(c)) for c in CAUSES]
    for (w_angle, angle), (w_light, light) in itertools.product(*options):
      levels = to_levels(shadows(angle, light), self.edges[:, EFFECTS])
      unmoved = (angle == values[:, 0]) & (light == values[:, 1])
      levels = np.where(unmoved[:, None], observed[:, EFFECTS], levels)
      expected += (w_angle * w_light)[:, None] * levels
    for column in free:
      out[:, column] = expected[:, EFFECTS.index(column)]
    return out

  def _cause_options(self, values: np.ndarray, observed: np.ndarray, column: int,
                     level: np.ndarray | None) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(weight [N], value [N]), ...] of a cause: its own value, or the values at the floor
    and ceiling of the target level with their mixing weights."""
    if level is None:
      return [(np.ones(len(values)), values[:, column])]
    level = np.clip(level, 0, len(self.edges))
    low, high = np.floor(level), np.ceil(level)
    return [(1.0 - (level - low), self._value_at(values, observed, column, low.astype(int))),
            (level - low, self._value_at(values, observed, column, high.astype(int)))]

  def _value_at(self, values: np.ndarray, observed: np.ndarray, column: int,
                level: np.ndarray) -> np.ndarray:
    """The value [N] of a cause moved to `level` [N], keeping its place inside its bin."""
    bounds = np.concatenate([[self.lows[column]], self.edges[:, column],
                             [self.highs[column]]])
    own, value = observed[:, column], values[:, column]
    width = bounds[own + 1] - bounds[own]
    place = np.where(width > 0, np.clip((value - bounds[own]) / np.where(width > 0, width, 1),
                                        0, 1), 0.5)
    moved = bounds[level] + place * (bounds[level + 1] - bounds[level])
    return np.where(level == own, value, moved)
