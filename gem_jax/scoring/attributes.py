"""Which attributes a scoring run asks for, and the labels it may compare them with."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from gem_jax.scorers import labels_to_levels

__all__ = [
    "DEFAULT_ATTRIBUTES",
    "NUM_LEVELS",
    "ScoringError",
    "label_levels",
    "parse_attribute_list",
    "validate_attributes",
]

DEFAULT_ATTRIBUTES: tuple[str, ...] = ("bangs", "bald", "gender", "beard", "blond", "makeup")
NUM_LEVELS = 6  # score levels 0..5 (the paper's Figure 3)


class ScoringError(ValueError):
  """A scoring run was asked for something impossible (unknown attribute, no labels, ...)."""


def parse_attribute_list(attributes: str | Sequence[str]) -> list[str]:
  """'bangs, bald' or ['bangs', 'bald'] -> ['bangs', 'bald'] (stripped, non-empty, unique)."""
  items = attributes.split(",") if isinstance(attributes, str) else list(attributes)
  names = [str(a).strip() for a in items if str(a).strip()]
  if not names:
    raise ScoringError("no attributes given (e.g. --attributes bangs,bald,gender)")
  dupes = sorted({a for a in names if names.count(a) > 1})
  if dupes:
    raise ScoringError(f"attributes named more than once: {', '.join(dupes)}")
  return names


def validate_attributes(
    attributes: Sequence[str], label_names: Sequence[str], dataset: str = "the data set"
) -> None:
  """One clear error naming every unknown attribute and listing the valid names."""
  valid = list(label_names)
  unknown = [a for a in attributes if a not in valid]
  if unknown:
    raise ScoringError(
        f"unknown attribute{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
        f"for {dataset}: the oracle can only score the data set's labels. "
        f"Valid names: {', '.join(valid)}"
    )


def label_levels(
    labels: Optional[np.ndarray], label_names: Optional[Sequence[str]], attributes: Sequence[str]
) -> Optional[np.ndarray]:
  """The labels as score levels int32 [N, n] in the column order of `attributes`.

  labels: [N, k] over `label_names` (levels 0..5, or binary -1/+1 which become 0/5). A scored
  attribute without a label column is -1. None when there are no labels or none of the
  scored attributes has one.
  """
  if labels is None:
    return None
  levels_all = labels_to_levels(labels, num_levels=NUM_LEVELS)
  cols = {n: j for j, n in enumerate(label_names)}
  levels = np.full((levels_all.shape[0], len(attributes)), -1, np.int32)
  for j, a in enumerate(attributes):
    if a in cols:
      levels[:, j] = levels_all[:, cols[a]]
  return levels if (levels >= 0).any() else None
