"""Data sets by name. Each entry turns config.data into a prepared tfds builder."""
from __future__ import annotations

import os

from gem_jax.data.celeba_files import check_celeba_files

DATASETS = ("synthetic_faces", "celeba")


def get_builder(data_config):
  """A prepared tfds builder for config.data; unknown names are a ValueError.

  synthetic_faces is rendered offline on first use (no download) into data_dir.
  """
  import tensorflow_datasets as tfds
  name = data_config.name
  if name not in DATASETS:
    raise ValueError(f"unknown data set {name!r}; known data sets: {', '.join(DATASETS)}")
  data_dir = os.path.expanduser(data_config.data_dir) if data_config.data_dir else None
  if name == "synthetic_faces":
    import gem_jax.data.synthetic_faces_builder  # noqa: F401  registers the builder
    builder = tfds.builder(f"synthetic_faces/{data_config.config}", data_dir=data_dir)
    builder.download_and_prepare()
    return builder
  check_celeba_files(data_config.get("celeba_dir"))
  raise NotImplementedError("the CelebA reader arrives with the full-GEM issue")
