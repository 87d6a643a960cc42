"""Split sizes of a data set read without preparing it: what a run checks before any work.

    survey = get_dataset(config.data).survey(config.data)   # the registry's entry point
    survey.split_sizes                                      # {'train': 15, 'test': 1}

A prepared copy answers from its tfds info. Otherwise: synthetic_faces from its builder
config (it is rendered offline on first use), CelebA from list_eval_partition.txt after
`check_celeba_files` (or from a prepared tfds `celeb_a`), an image folder by listing its files
and splitting them as `image_folder.split_files` will (`list_images`, no file is decoded), a
labelled folder by reading its labels.csv, checked against the listed files, and splitting its
rows as the builder will, the pendulum from its grid before it is rendered.
Absent data raises the builders' own DataNotFoundError messages. Importing this module loads
TensorFlow (the builder modules); the registry imports it on first use only.
"""
from __future__ import annotations

import os
from pathlib import Path

from gem_jax.data import celeba
from gem_jax.data.celeba_builder import (
  PARTITION_FILE,
  CelebaLocal,
  builder_config_name,
  prepared_celeb_a_dir,
  split_files,
)
from gem_jax.data.celeba_files import check_celeba_files
from gem_jax.data.errors import DataConfigError, DataNotFoundError
from gem_jax.data.folder_labels import (
  LABELS_FILE,
  LabelPaths,
  check_images,
  read_labels,
  split_rows,
)
from gem_jax.data.image_folder import ImageFolder, folder_images
from gem_jax.data.image_folder import split_files as split_folder
from gem_jax.data.labelled_folder import LabelledFolder
from gem_jax.data.pendulum import NUM_SCENES, is_test, pendulum_dir
from gem_jax.data.pendulum.builder import pendulum_folder_config
from gem_jax.data.registry import DataSurvey
from gem_jax.data.synthetic_faces.builder import SyntheticFaces
from gem_jax.data.synthetic_faces.render import IMAGE_SIZE
from gem_jax.data.tf_cpu import tensorflow_datasets


def _data_dir(data_config) -> str | None:
  data_dir = data_config.get("data_dir")
  return os.path.expanduser(data_dir) if data_dir else None


def _prepared_sizes(builder) -> dict[str, int]:
  """{split: examples} of a prepared tfds builder."""
  return {name: int(info.num_examples) for name, info in builder.info.splits.items()}


def synthetic_faces_survey(data_config) -> DataSurvey:
  """synthetic_faces/<config.data.config>: sizes from the builder config (64x64 images).

  Raises:
    DataConfigError: an unknown config name, listing the known ones.
  """
  name = data_config.get("config") or SyntheticFaces.DEFAULT_CONFIG_NAME
  configs = {c.name: c for c in SyntheticFaces.BUILDER_CONFIGS}
  if name not in configs:
    raise DataConfigError(f"config.data.config={name!r}: unknown synthetic_faces config; "
                          f"expected one of {', '.join(configs)}")
  config = configs[name]
  return DataSurvey({"train": config.num_train, "test": config.num_test}, IMAGE_SIZE,
                    f"synthetic_faces/{name}")


def celeba_survey(data_config) -> DataSurvey:
  """celeba_local/<config>: a prepared copy, else a prepared tfds celeb_a (when
  config.data.celeba_dir is unset), else the CelebA folder's list_eval_partition.txt; the
  order `celeba_builder` reads them in.

  Raises:
    DataNotFoundError: CelebA's files are absent (`check_celeba_files`).
    CelebaFormatError: list_eval_partition.txt is malformed.
    DataConfigError: an unknown config name.
  """
  config = builder_config_name(data_config.get("config"))
  data_dir, folder = _data_dir(data_config), data_config.get("celeba_dir")
  builder = CelebaLocal(config=config, data_dir=data_dir, celeba_dir=folder)
  size = builder.builder_config.size
  if builder.is_prepared():
    return DataSurvey(_prepared_sizes(builder), size, f"celeba_local/{config} in "
                      f"{builder.data_dir}")
  celeb_a_dir = None if folder else prepared_celeb_a_dir(data_dir)
  if celeb_a_dir:
    source = tensorflow_datasets().builder("celeb_a", data_dir=celeb_a_dir)
    return DataSurvey(_prepared_sizes(source), size, f"tfds celeb_a in {celeb_a_dir}")
  root = check_celeba_files(folder)
  partition = celeba.read_partition(root / PARTITION_FILE)
  sizes = {name: len(files) for name, files in split_files(partition).items()}
  return DataSurvey(sizes, size, f"CelebA in {root} (not prepared yet)")


def image_folder_survey(data_config) -> DataSurvey:
  """image_folder: a prepared copy, else the folder's image files (`list_images`) split as
  the builder will split them; image size config.data.image_size (default 64).

  Raises:
    DataNotFoundError: image_dir unset, absent, or without images (the builder's messages).
  """
  image_dir = data_config.get("image_dir")
  if not image_dir:
    raise DataNotFoundError("config.data.image_dir is not set; point it at a folder of images "
                            "(lsun_gem: --data_dir)")
  size = int(data_config.get("image_size") or 64)
  builder = ImageFolder(root=image_dir, size=size, data_dir=_data_dir(data_config))
  root = Path(builder.builder_config.root)
  if builder.is_prepared():
    return DataSurvey(_prepared_sizes(builder), size, f"image folder {root}, prepared in "
                      f"{builder.data_dir}")
  files = folder_images(root)
  splits = split_folder(files, builder.builder_config.test_fraction)
  return DataSurvey({name: len(members) for name, members in splits.items()}, size,
                    f"image folder {root}, {len(files)} files")


def labelled_folder_survey(data_config) -> DataSurvey:
  """labelled_folder: a prepared copy, else labels.csv's rows, checked against the folder's
  images (`check_images`), split as the builder will split them; image size
  config.data.image_size (default 64).

  Raises:
    DataNotFoundError: image_dir unset or absent, or labels.csv absent (named).
    LabelsError: labels.csv malformed or not matching the images.
  """
  paths = LabelPaths.from_config(data_config)
  size = int(data_config.get("image_size") or 64)
  builder = LabelledFolder(root=paths.image_dir, labels_csv=paths.labels_csv, size=size,
                           data_dir=_data_dir(data_config))
  root = Path(paths.image_dir)
  if builder.is_prepared():
    return DataSurvey(_prepared_sizes(builder), size, f"labelled folder {root}, prepared in "
                      f"{builder.data_dir}")
  table = read_labels(paths.labels_csv)
  check_images(table, folder_images(root), root)
  rows = split_rows(table, builder.builder_config.test_fraction)
  return DataSurvey({name: len(members) for name, members in rows.items()}, size,
                    f"labelled folder {root}, {len(table.filenames)} labelled images")


def pendulum_survey(data_config) -> DataSurvey:
  """pendulum: its rendered folder as a labelled folder, else the published split of the
  7,308 scenes it will render."""
  folder = pendulum_dir(data_config)
  if (folder / LABELS_FILE).is_file():
    return labelled_folder_survey(pendulum_folder_config(data_config))
  test = int(is_test(range(NUM_SCENES)).sum())
  return DataSurvey({"train": NUM_SCENES - test, "test": test},
                    int(data_config.get("image_size") or 64),
                    f"pendulum, rendered on first use into {folder}")
