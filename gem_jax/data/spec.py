"""`DatasetSpec`: what the rest of the project may know about one data set, and `DataSurvey`.

A spec holds a data set's attribute names, label levels, true relation graph and nuisance
factors, reads labels and ground-truth factors from `load_examples` output, and, for data sets
with a known structural causal model, answers counterfactual questions
(`counterfactual_levels`). The registry (`registry.py`) maps names and config.data to specs.
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable, Mapping

import numpy as np

# (examples, {attribute column: level float64 [N], clipped}, seed) -> levels float64 [N, k]
Counterfactual = Callable[[Mapping[str, Any], dict[int, np.ndarray], int], np.ndarray]

NUISANCE_BINS = 6  # continuous nuisance factors -> quantile bins (ground-truth factors)


def quantile_bins(values: np.ndarray, num_bins: int) -> np.ndarray:
  """Continuous values [N] -> int bins 0..num_bins-1 of (near) equal frequency."""
  edges = np.quantile(values, np.linspace(0, 1, num_bins + 1)[1:-1])
  return np.digitize(values, edges).astype(np.int64)


def _num_examples(examples: Mapping[str, Any]) -> int:
  """N of a `load_examples` dict: the length of its images (else of its first entry)."""
  key = "image" if "image" in examples else next(iter(examples))
  return len(examples[key])


@dataclasses.dataclass(frozen=True)
class DataSurvey:
  """What a run can know about config.data's data set before preparing it.

  Attributes:
    split_sizes: {split name: examples}; for a folder not yet prepared, the files that will go
      to each split (unreadable files are found only while preparing).
    image_size: side of the square images in pixels.
    source: where the examples come from, for messages (e.g. 'image folder /x, 16 files').
  """

  split_sizes: dict[str, int]
  image_size: int
  source: str


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """Facts about one data set, and how to read its labels from `load_examples` output.

  Attributes:
    name: the registry name (config.data.name).
    attribute_names: the labels an oracle scorer may read, in column order; () if none.
    num_levels: label levels (synthetic_faces, labelled folders 6: 0..5; celeba 2: absent /
      present; 0: no labels).
    true_graph: float [k, k] signed relation graph over attribute_names (row -> column), or
      None when unknown.
    independent_pairs: attribute pairs independent by construction; () when unknown.
    nuisance_names: continuous factors stored after the attributes in examples['factors']
      (synthetic_faces' NUISANCE); () for others.
    label_key: the feature holding attribute_names' labels ('attributes': levels
      0..num_levels-1; 'gem_labels': 0/1), or None.
    builder_factory: 'module:function' of the function config.data -> a prepared tfds
      builder. The module (which defines and registers the tfds builder, and so loads
      TensorFlow) is imported when a builder is first asked for, not with gem_jax.
    survey_factory: 'module:function' of the function config.data -> DataSurvey, which reads
      split sizes without preparing the data set (imported on first use, as builder_factory).
    sample_factors: (seed, n) -> (attributes int [n, k], factors) from the data set's SCM, or
      None when the data set is not generated.
    labels_are_factors: the label feature holds the true factor values themselves
      (synthetic_faces' SCM levels, a labelled folder's quantile levels of its own numbers),
      not annotations of them (celeba): `true_levels` returns them.
    counterfactual: the data set's structural equations as `Counterfactual` (examples,
      {column: levels [N]}, seed) -> expected levels float64 [N, k] after the intervention;
      None when the SCM is unknown. Read through `counterfactual_levels`.
  """

  name: str
  attribute_names: tuple[str, ...]
  num_levels: int
  true_graph: np.ndarray | None = dataclasses.field(compare=False)
  independent_pairs: tuple[tuple[str, str], ...]
  nuisance_names: tuple[str, ...]
  label_key: str | None
  builder_factory: str
  survey_factory: str
  sample_factors: Callable[[int, int], tuple[np.ndarray, np.ndarray]] | None = (
      dataclasses.field(default=None, compare=False, repr=False))
  labels_are_factors: bool = False
  counterfactual: Counterfactual | None = dataclasses.field(default=None, compare=False,
                                                            repr=False)

  def builder(self, data_config):
    """The prepared tfds builder for config.data (prepared on first use)."""
    module, function = self.builder_factory.split(":")
    return getattr(importlib.import_module(module), function)(data_config)

  def survey(self, data_config) -> DataSurvey:
    """Split sizes and image size of config.data's data set, read without preparing it.

    Raises:
      DataNotFoundError: the data set's files are absent (the message of the builder).
      DataConfigError: config.data names a builder config the data set does not have.
    """
    module, function = self.survey_factory.split(":")
    return getattr(importlib.import_module(module), function)(data_config)

  def oracle_labels(self, examples: Mapping[str, Any]
                    ) -> tuple[np.ndarray | None, list[str] | None]:
    """(labels int [N, k], names) an oracle scorer may read; (None, None) without labels.

    Levels (num_levels > 2) are returned as stored (synthetic_faces: 0..5, `attribute_names`);
    binary labels become -1 / +1 (celeba: `gem_labels`, named GEM_ATTRIBUTES). An 'attributes'
    entry that is a {name: [N]} mapping (as tfds celeb_a gives) is read with its own names,
    sorted: booleans become -1 / +1, other values int64.

    Raises:
      ValueError: the label feature does not have one column per attribute name.
    """
    labels = examples.get(self.label_key) if self.label_key else None
    if labels is not None and not isinstance(labels, Mapping):
      labels = np.asarray(labels)
      if labels.ndim != 2 or labels.shape[1] != len(self.attribute_names):
        raise ValueError(f"data set {self.name!r}: expected {self.label_key!r} labels [N, "
                         f"{len(self.attribute_names)}] ({', '.join(self.attribute_names)}); "
                         f"got shape {list(labels.shape)}")
      if self.num_levels == 2:
        labels = np.where(labels > 0, 1, -1)
      return labels, list(self.attribute_names)
    attributes = examples.get("attributes")
    if isinstance(attributes, Mapping):
      names = sorted(attributes)
      columns = []
      for name in names:
        column = np.asarray(attributes[name])
        columns.append(np.where(column, 1, -1) if column.dtype == np.bool_
                       else column.astype(np.int64))
      return np.stack(columns, axis=1), names
    return None, None

  def ground_truth_factors(self, examples: Mapping[str, Any]
                           ) -> tuple[np.ndarray | None, list[str]]:
    """Discrete ground-truth factors int64 [N, k] and their names; (None, []) without any.

    synthetic_faces: the attribute levels, then each nuisance factor in NUISANCE_BINS quantile
    bins (attribute_names + nuisance_names). Other data sets with an 'attributes' array [N, k]
    (celeba's 40): attributes > 0, named attr0 .. attr{k-1}.
    """
    if self.label_key == "attributes":
      levels = np.asarray(examples["attributes"], np.int64)
      nuisance = self._nuisance(examples)
      bins = [quantile_bins(v, NUISANCE_BINS) for v in nuisance.T]
      factors = np.concatenate([levels, np.stack(bins, axis=1)], axis=1) if bins else levels
      return factors, list(self.attribute_names) + list(self.nuisance_names)
    if "attributes" in examples and np.asarray(examples["attributes"]).ndim == 2:
      attributes = np.asarray(examples["attributes"])
      return (attributes > 0).astype(np.int64), [f"attr{i}" for i in range(attributes.shape[1])]
    return None, []

  def _nuisance(self, examples: Mapping[str, Any]) -> np.ndarray:
    """The nuisance columns of examples['factors'] [N, R], as stored (R = 0 without any)."""
    if not self.nuisance_names:
      return np.zeros((_num_examples(examples), 0), np.float32)
    return np.asarray(examples["factors"])[:, len(self.attribute_names):]

  def nuisance_factors(self, examples: Mapping[str, Any]) -> np.ndarray:
    """Continuous nuisance factors float32 [N, len(nuisance_names)] (R = 0 without any)."""
    return self._nuisance(examples).astype(np.float32)

  def true_levels(self, examples: Mapping[str, Any], names) -> np.ndarray | None:
    """The true attribute levels int64 [N, len(names)] of a data set whose labels are its
    factors (`labels_are_factors`: synthetic_faces, labelled_folder, pendulum), in `names`'
    order; None for data sets whose labels are annotations, not the factors themselves
    (celeba), or without labels.

    Raises:
      ValueError: a name that is not one of the data set's attributes.
    """
    if not self.labels_are_factors or self.label_key not in examples:
      return None
    levels = np.asarray(examples[self.label_key], np.int64)
    return levels[:, self._columns(names)]

  def counterfactual_levels(self, examples: Mapping[str, Any], names,
                            interventions: Mapping[str, Any], seed: int = 0
                            ) -> np.ndarray | None:
    """Expected levels float64 [N, len(names)] of each example after do(attribute := level)
    for every {attribute: level} of `interventions` at once; None without a known SCM.

    A level is a number or float [N] (one per example), may be fractional and is clipped to
    0..num_levels-1. The intervened attributes take their levels; their descendants in the
    data set's structural equations are recomputed with each example's own noise where the
    observation allows it to be recovered (the data set's `counterfactual` says how); every
    other attribute keeps its observed level. `seed` drives any sampling of that noise.

    Raises:
      ValueError: an unknown attribute, or levels that are neither a number nor [N].
    """
    if self.counterfactual is None or self.label_key not in examples:
      return None
    columns = self._columns(names)
    count = len(examples[self.label_key])
    targets = {}
    for name, level in interventions.items():
      (column,) = self._columns([name])
      level = np.asarray(level, np.float64)
      if level.shape not in ((), (count,)):
        raise ValueError(f"do({name} := ...): expected a level or {count} levels (one per "
                         f"example); got shape {list(level.shape)}")
      targets[column] = np.clip(np.broadcast_to(level, (count,)), 0, self.num_levels - 1)
    levels = np.asarray(self.counterfactual(examples, targets, seed), np.float64)
    return levels[:, columns]

  def _columns(self, names) -> list[int]:
    """Column of each name in attribute_names; ValueError naming the unknown ones."""
    unknown = [n for n in names if n not in self.attribute_names]
    if unknown:
      raise ValueError(f"data set {self.name!r} has no attribute {', '.join(unknown)}; its "
                       f"attributes: {', '.join(self.attribute_names)}")
    return [self.attribute_names.index(n) for n in names]

  def sample_attributes(self, seed: int, n: int) -> np.ndarray | None:
    """Attributes int [n, k] drawn from the data set's SCM (synthetic_faces), else None."""
    if self.sample_factors is None:
      return None
    return self.sample_factors(seed, n)[0]


