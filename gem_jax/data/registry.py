"""Data sets by name: the one place that knows facts about them.

    spec = get_dataset(config.data)          # or get_dataset("synthetic_faces")
    builder = spec.builder(config.data)      # a prepared tfds builder
    survey = spec.survey(config.data)        # split sizes, without preparing anything
    labels, names = spec.oracle_labels(examples)

A `DatasetSpec` (spec.py) holds what the rest of the project may know about a data set (its
attribute names, label levels, true relation graph, nuisance factors, structural equations)
and reads labels and ground-truth factors from `load_examples` output, so no code outside
`gem_jax.data` compares data set names. The specs of labelled folders (labelled_folder,
pendulum) depend on the folder, so `get_dataset(config.data)` builds them from config.data
(folder_spec.py); by bare name a labelled folder has no attributes.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from gem_jax.data import synthetic_faces as sf
from gem_jax.data.celeba import GEM_ATTRIBUTES
from gem_jax.data.folder_spec import (
  LABELLED_FOLDER,
  PENDULUM,
  labelled_folder_spec,
  pendulum_spec,
)
from gem_jax.data.spec import NUISANCE_BINS, DatasetSpec, DataSurvey, quantile_bins
from gem_jax.data.synthetic_faces.counterfactual import counterfactual_levels

__all__ = ["DATASETS", "NUISANCE_BINS", "DataSurvey", "DatasetSpec", "get_builder",
           "get_dataset", "quantile_bins"]


def _faces_counterfactual(examples: Mapping[str, Any], targets: dict[int, np.ndarray],
                          seed: int) -> np.ndarray:
  """synthetic_faces' `DatasetSpec.counterfactual`: its SCM on examples['attributes']."""
  return counterfactual_levels(examples["attributes"], targets, seed)


SYNTHETIC_FACES = DatasetSpec(
    name="synthetic_faces", attribute_names=tuple(sf.ATTRIBUTES), num_levels=sf.NUM_LEVELS,
    true_graph=sf.TRUE_GRAPH, independent_pairs=tuple(sf.INDEPENDENT_PAIRS),
    nuisance_names=tuple(sf.NUISANCE), label_key="attributes",
    builder_factory="gem_jax.data.synthetic_faces.builder:synthetic_faces_builder",
    survey_factory="gem_jax.data.survey:synthetic_faces_survey",
    sample_factors=sf.sample_factors, labels_are_factors=True,
    counterfactual=_faces_counterfactual)
CELEBA = DatasetSpec(
    name="celeba", attribute_names=tuple(GEM_ATTRIBUTES), num_levels=2, true_graph=None,
    independent_pairs=(), nuisance_names=(), label_key="gem_labels",
    builder_factory="gem_jax.data.celeba_builder:celeba_builder",
    survey_factory="gem_jax.data.survey:celeba_survey")
IMAGE_FOLDER = DatasetSpec(
    name="image_folder", attribute_names=(), num_levels=0, true_graph=None,
    independent_pairs=(), nuisance_names=(), label_key=None,
    builder_factory="gem_jax.data.image_folder:image_folder_builder",
    survey_factory="gem_jax.data.survey:image_folder_survey")

_SPECS = {spec.name: spec for spec in (SYNTHETIC_FACES, CELEBA, IMAGE_FOLDER, LABELLED_FOLDER,
                                       PENDULUM)}
_FROM_CONFIG = {"labelled_folder": labelled_folder_spec, "pendulum": pendulum_spec}
DATASETS = tuple(_SPECS)


def get_dataset(name_or_data_config) -> DatasetSpec:
  """The DatasetSpec of a data set name or of config.data (its `name`, and for labelled_folder
  and pendulum the folder it names: folder_spec.py).

  Raises:
    ValueError: for an unknown name, listing the known ones.
    DataNotFoundError, LabelsError: config.data names a labelled folder whose files are
      absent or malformed (folder_spec.py).
  """
  by_name = isinstance(name_or_data_config, str)
  name = name_or_data_config if by_name else name_or_data_config.name
  if name not in _SPECS:
    raise ValueError(f"unknown data set {name!r}; known data sets: {', '.join(DATASETS)}")
  if by_name or name not in _FROM_CONFIG:
    return _SPECS[name]
  return _FROM_CONFIG[name](name_or_data_config)


def get_builder(data_config):
  """A prepared tfds builder for config.data; unknown names are a ValueError.

  synthetic_faces and pendulum are rendered offline on first use; celeba reads the official
  files from config.data.celeba_dir (DataNotFoundError naming what is missing); image_folder
  reads any folder of images and labelled_folder one with a labels.csv (config.data.image_dir).
  """
  return get_dataset(data_config).builder(data_config)
