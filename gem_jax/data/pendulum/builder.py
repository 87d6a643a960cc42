"""`pendulum_builder`: config.data.name = 'pendulum' -> a prepared labelled_folder builder.

The folder (`folder.pendulum_dir`: config.data.image_dir, else <tfds data_dir>/pendulum_folder)
is rendered on first use, all 7,308 scenes at config.data.image_size, then read as a labelled
folder. Importing this module loads TensorFlow (the labelled_folder builder).
"""
from __future__ import annotations

import logging

from gem_jax.data.folder_labels import LABELS_FILE
from gem_jax.data.labelled_folder import LabelledFolder, labelled_folder_builder
from gem_jax.data.pendulum.folder import pendulum_dir, write_pendulum_folder

logger = logging.getLogger("gem_jax.data")


def pendulum_folder_config(data_config) -> dict:
  """config.data for the labelled folder that holds config.data's pendulum (a plain dict)."""
  keys = ("data_dir", "image_size", "skip_bad")
  config = {key: data_config.get(key) for key in keys}
  config.update(image_dir=str(pendulum_dir(data_config)), labels_csv=None, graph_json=None)
  return config


def ensure_pendulum_folder(data_config):
  """The pendulum folder of config.data, rendered first when it has no labels.csv."""
  folder = pendulum_dir(data_config)
  if (folder / LABELS_FILE).is_file():
    return folder
  logger.info("rendering the pendulum (7,308 images) into %s", folder)
  try:
    write_pendulum_folder(folder, size=int(data_config.get("image_size") or 64), progress=True)
  except OSError:
    if not (folder / LABELS_FILE).is_file():  # not another process finishing first
      raise
  return folder


def pendulum_builder(data_config) -> LabelledFolder:
  """A prepared builder of config.data's pendulum folder (rendered on first use)."""
  ensure_pendulum_folder(data_config)
  return labelled_folder_builder(pendulum_folder_config(data_config))
