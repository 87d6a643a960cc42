"""tfds builder `labelled_folder`: a folder of images with a labels.csv of numeric concepts.

    from gem_jax.data.labelled_folder import LabelledFolder, labelled_folder_builder
    builder = LabelledFolder(root="~/data/pendulum", size=64, data_dir="~/tensorflow_datasets")
    builder.download_and_prepare()
    ds = builder.as_dataset(split="train")
    # {'image': uint8 [64, 64, 3], 'filename': str, 'attributes': int32 [k] levels 0..5,
    #  'values': float32 [k] the numbers of labels.csv}

The images are found, decoded, centre-cropped and resized exactly as by `image_folder` (whose
helpers it reuses). labels.csv (`folder_labels.py`) gives each image its split (its own
`split` column, else image_folder's path-hash split) and one number per concept; the numbers
become levels 0..5 by quantiles of the TRAIN rows (`levels.py`: edges e_j = the j/6 quantile,
j = 1..5, level = the number of edges strictly below the value; values outside the train range
fall in levels 0 and 5). The edges are stored in `builder.info.metadata['level_edges']`. The
relation graph (graph.json) is the data set spec's, not the builder's (`folder_spec.py`).

The config name is image_folder's `<base>-<hash of the folder>-<size>` plus 8 hex of the
labels file's path and bytes, so an edited labels.csv is prepared again; changed images are
not noticed: delete `<data_dir>/labelled_folder/<config>/` to rebuild.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

import numpy as np

from gem_jax.data.folder_labels import (
  LabelPaths,
  check_images,
  read_header,
  read_labels,
  split_rows,
  table_levels,
)
from gem_jax.data.image_decode import UnreadableImageError, read_rgb
from gem_jax.data.image_folder import BadFiles, center_crop_resize, config_name, folder_images
from gem_jax.data.tf_cpu import tensorflow_datasets

tfds = tensorflow_datasets()  # the builder classes below subclass tfds types


def labels_config_name(root, labels_csv, size: int) -> str:
  """'<image_folder config name>-<8 hex of sha1(labels path + bytes)>'."""
  digest = hashlib.sha1(os.fspath(labels_csv).encode("utf-8"))
  digest.update(Path(labels_csv).read_bytes())
  return f"{config_name(root, size)}-{digest.hexdigest()[:8]}"


@dataclasses.dataclass(eq=False)
class LabelledFolderConfig(tfds.core.BuilderConfig):
  """One folder with one labels file at one size.

  Attributes:
    root: absolute path of the image folder.
    labels_csv: absolute path of its labels file.
    size: output side in pixels.
    test_fraction: share of the files in `test` when labels.csv has no split column.
    concepts: the labels file's concept columns (the length of 'attributes' and 'values').
  """

  root: str = ""
  labels_csv: str = ""
  size: int = 64
  test_fraction: float = 0.05
  concepts: tuple[str, ...] = ()


class LabelledFolder(tfds.core.GeneratorBasedBuilder):
  """Every image under a folder with its concepts' numbers and their levels 0..5."""

  name = "labelled_folder"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}

  def __init__(self, *, root=None, labels_csv=None, size: int = 64,
               test_fraction: float = 0.05, skip_bad: bool = False, config=None, **kwargs):
    """Args:
      root: the image folder (needed unless `config` is a LabelledFolderConfig).
      labels_csv: its labels file; default <root>/labels.csv.
      size: output side in pixels.
      test_fraction: share of the files in `test` without a split column.
      skip_bad: skip unreadable images with a warning instead of raising.
      config, **kwargs: as for tfds builders (data_dir, version, ...).
    """
    if config is None:
      if root is None:
        raise ValueError("LabelledFolder needs root=<folder of images with a labels.csv>")
      paths = LabelPaths.from_config({"image_dir": os.fspath(root), "labels_csv": labels_csv})
      config = LabelledFolderConfig(
          name=labels_config_name(paths.image_dir, paths.labels_csv, size),
          root=paths.image_dir, labels_csv=paths.labels_csv, size=size,
          test_fraction=test_fraction, concepts=read_header(paths.labels_csv),
          description=f"{paths.image_dir} with {paths.labels_csv} at {size}x{size}")
    self._skip_bad = skip_bad
    super().__init__(config=config, **kwargs)
    self._original_state.update(skip_bad=skip_bad)  # kept when tfds pickles the builder

  def _info(self) -> tfds.core.DatasetInfo:
    config = self.builder_config
    size, k = (config.size, len(config.concepts)) if config is not None else (64, 0)
    return self.dataset_info_from_configs(
        description=("Every image under a folder (decoded, centre-cropped and resized as by "
                     "image_folder) with the numbers of its labels.csv row ('values') and "
                     "their levels 0..5, quantiles of the train rows ('attributes'). See "
                     "docs/data.md."),
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(size, size, 3), encoding_format="png"),
            "filename": tfds.features.Text(),
            "attributes": tfds.features.Tensor(shape=(k,), dtype=np.int32),
            "values": tfds.features.Tensor(shape=(k,), dtype=np.float32),
        }),
        supervised_keys=None,
        homepage="docs/data.md",
        metadata=tfds.core.MetadataDict(
            root=config.root if config is not None else "",
            labels_csv=config.labels_csv if config is not None else "",
            concepts=list(config.concepts) if config is not None else []),
    )

  def _split_generators(self, dl_manager):
    """Reads and checks labels.csv against the folder; levels from the train rows."""
    del dl_manager
    config = self.builder_config
    table = read_labels(config.labels_csv)
    root = Path(config.root)
    check_images(table, folder_images(root), root)
    rows = split_rows(table, config.test_fraction)
    levels, edges = table_levels(table, rows)
    self.info.metadata["level_edges"] = edges.T.tolist()  # [k, 5], one row per concept
    bad = BadFiles(str(root), rows, self._skip_bad)
    return {split: self._generate_examples(root, table, levels, members, split, bad)
            for split, members in rows.items()}

  def _generate_examples(self, root: Path, table, levels: np.ndarray, members: list[int],
                         split: str, bad: BadFiles):
    """Yields (relative path, example); unreadable files go to `bad`."""
    yielded = 0
    for row in members:
      rel = table.filenames[row]
      try:
        image = read_rgb(root / rel, bad.modes)
      except UnreadableImageError as err:
        bad.files.append(f"{rel} ({err.__cause__})")
        continue
      yielded += 1
      yield rel, {"image": center_crop_resize(image, self.builder_config.size), "filename": rel,
                  "attributes": levels[row].astype(np.int32),
                  "values": table.values[row].astype(np.float32)}
    bad.finish(split, empty=not yielded)  # tfds cannot write an empty split: raise now


def labelled_folder_builder(data_config) -> LabelledFolder:
  """A prepared `labelled_folder` builder for config.data.

  Reads data_config.image_dir (required), .labels_csv (default <image_dir>/labels.csv),
  .image_size (default 64), .data_dir (default $TFDS_DATA_DIR or ~/tensorflow_datasets) and
  .skip_bad (default False). Prepares on first use.

  Raises:
    DataNotFoundError: image_dir or the labels file absent (the message names which).
    LabelsError: labels.csv malformed or not matching the images (`folder_labels.py`).
  """
  paths = LabelPaths.from_config(data_config)
  data_dir = data_config.get("data_dir")
  builder = LabelledFolder(root=paths.image_dir, labels_csv=paths.labels_csv,
                           size=int(data_config.get("image_size") or 64),
                           skip_bad=bool(data_config.get("skip_bad", False)),
                           data_dir=os.path.expanduser(data_dir) if data_dir else None)
  builder.download_and_prepare()
  return builder


__all__ = ["LabelledFolder", "LabelledFolderConfig",
           "labelled_folder_builder", "labels_config_name"]
