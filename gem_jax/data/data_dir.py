"""Where prepared data sets live: config.data.data_dir, else $TFDS_DATA_DIR, else tfds's own
default ~/tensorflow_datasets."""
from __future__ import annotations

import os


def default_data_dir() -> str:
  """$TFDS_DATA_DIR, else ~/tensorflow_datasets (tfds's own default)."""
  return os.path.expanduser(os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets"))


def data_dir_of(data_config) -> str:
  """config.data.data_dir (user-expanded) when set, else `default_data_dir()`."""
  data_dir = data_config.get("data_dir")
  return os.path.expanduser(data_dir) if data_dir else default_data_dir()
