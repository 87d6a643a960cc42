"""The specs of labelled folders, whose facts depend on the folder config.data names.

    labelled_folder_spec(config.data)   attribute_names = labels.csv's concept columns,
                                        true_graph = graph.json's matrix (None without one)
    pendulum_spec(config.data)          the pendulum's concepts and graph, with the
                                        counterfactual of its structural equations

A spec is built once per resolved set of paths (and file modification times) and cached.
Without config.data.image_dir a labelled folder has no attributes (`LABELLED_FOLDER`, also what
`get_dataset("labelled_folder")` gives); a pendulum folder that is not rendered yet gets the
levels of the full grid (`PENDULUM`), which are those a rendered folder will have.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os

import numpy as np

from gem_jax.data.concept_graph import read_graph
from gem_jax.data.errors import LabelsError
from gem_jax.data.folder_labels import (
  LABELS_FILE,
  LabelPaths,
  read_header,
  read_labels,
  split_rows,
)
from gem_jax.data.levels import NUM_LEVELS
from gem_jax.data.pendulum import (
  CONCEPTS,
  SCM_NAME,
  PendulumCounterfactual,
  grid_values,
  pendulum_dir,
)
from gem_jax.data.pendulum import true_graph as pendulum_graph
from gem_jax.data.spec import DatasetSpec

LABELLED_FOLDER = DatasetSpec(
    name="labelled_folder", attribute_names=(), num_levels=NUM_LEVELS, true_graph=None,
    independent_pairs=(), nuisance_names=(), label_key=None,
    builder_factory="gem_jax.data.labelled_folder:labelled_folder_builder",
    survey_factory="gem_jax.data.survey:labelled_folder_survey")


def _grid_counterfactual() -> PendulumCounterfactual:
  values, test = grid_values()
  return PendulumCounterfactual.from_train_values(values[~test])


PENDULUM = DatasetSpec(
    name="pendulum", attribute_names=CONCEPTS, num_levels=NUM_LEVELS,
    true_graph=pendulum_graph(), independent_pairs=(("pendulum_angle", "light_position"),),
    nuisance_names=(), label_key="attributes",
    builder_factory="gem_jax.data.pendulum.builder:pendulum_builder",
    survey_factory="gem_jax.data.survey:pendulum_survey", labels_are_factors=True,
    counterfactual=_grid_counterfactual())


def _stamp(*paths) -> tuple:
  """(modification time ns, size) of each existing path: a changed file is read again."""
  return tuple((os.stat(p).st_mtime_ns, os.stat(p).st_size) for p in paths if p)


def labelled_folder_spec(data_config) -> DatasetSpec:
  """The spec of config.data's labelled folder; `LABELLED_FOLDER` when image_dir is unset.

  Raises:
    DataNotFoundError: image_dir, labels.csv or a given graph_json absent (named).
    LabelsError: a malformed header or graph.json (an unknown concept, a cycle, ...).
  """
  if not data_config.get("image_dir"):
    return LABELLED_FOLDER
  paths = LabelPaths.from_config(data_config)
  return _labelled(paths, _stamp(paths.labels_csv, paths.graph_json))


@functools.lru_cache(maxsize=64)
def _labelled(paths: LabelPaths, stamp: tuple) -> DatasetSpec:
  del stamp  # part of the cache key only
  names = read_header(paths.labels_csv)
  graph = read_graph(paths.graph_json, names, paths.labels_csv) if paths.graph_json else None
  spec = dataclasses.replace(LABELLED_FOLDER, attribute_names=names, true_graph=graph,
                             label_key="attributes", labels_are_factors=True)
  if paths.graph_json and _scm_name(paths.graph_json) == SCM_NAME and names == CONCEPTS:
    # Rendered by write_pendulum_folder: its structural equations give the counterfactuals.
    pendulum = _pendulum(str(paths.labels_csv), ())
    spec = dataclasses.replace(spec, counterfactual=pendulum.counterfactual,
                               independent_pairs=pendulum.independent_pairs)
  return spec


def _scm_name(graph_json) -> str | None:
  """graph.json's "scm" entry (the generator of a rendered folder), or None."""
  try:
    data = json.loads(open(graph_json, encoding="utf-8").read())
  except (OSError, ValueError):
    return None
  return data.get("scm") if isinstance(data, dict) else None


def pendulum_spec(data_config) -> DatasetSpec:
  """The pendulum's spec; its levels (and so its counterfactual) are those of the rendered
  folder's train rows when config.data's folder exists (`PENDULUM` before it is rendered).

  Raises:
    LabelsError: the folder's labels.csv is malformed.
  """
  labels = pendulum_dir(data_config) / LABELS_FILE
  if not labels.is_file():
    return PENDULUM
  return _pendulum(str(labels), _stamp(labels))


@functools.lru_cache(maxsize=16)
def _pendulum(labels_csv: str, stamp: tuple) -> DatasetSpec:
  del stamp  # part of the cache key only
  table = read_labels(labels_csv)
  if table.names != CONCEPTS:
    raise LabelsError(f"{labels_csv}: concepts {', '.join(table.names)}; a pendulum folder has "
                      f"{', '.join(CONCEPTS)}. Delete the folder to render it again")
  train = np.asarray(split_rows(table, 0.0)["train"])
  counterfactual = PendulumCounterfactual.from_train_values(table.values[train])
  return dataclasses.replace(PENDULUM, counterfactual=counterfactual)
