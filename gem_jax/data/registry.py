"""Data sets by name. Each entry turns config.data into a prepared tfds builder."""
from __future__ import annotations

import os

DATASETS = ("synthetic_faces", "celeba", "image_folder")


def _synthetic_faces_builder(data_config):
  import tensorflow_datasets as tfds
  import gem_jax.data.synthetic_faces_builder  # noqa: F401  registers the builder
  data_dir = os.path.expanduser(data_config.data_dir) if data_config.data_dir else None
  builder = tfds.builder(f"synthetic_faces/{data_config.config}", data_dir=data_dir)
  builder.download_and_prepare()   # renders offline on first use; no download
  return builder


def get_builder(data_config):
  """A prepared tfds builder for config.data; unknown names are a ValueError.

  synthetic_faces is rendered offline on first use; celeba reads the official files from
  config.data.celeba_dir (DataNotFoundError naming what is missing); image_folder reads any
  folder of images (config.data.image_dir).
  """
  name = data_config.name
  if name == "synthetic_faces":
    return _synthetic_faces_builder(data_config)
  if name == "celeba":
    from gem_jax.data.celeba_builder import celeba_builder
    return celeba_builder(data_config)
  if name == "image_folder":
    from gem_jax.data.image_folder import image_folder_builder
    return image_folder_builder(data_config)
  raise ValueError(f"unknown data set {name!r}; known data sets: {', '.join(DATASETS)}")
