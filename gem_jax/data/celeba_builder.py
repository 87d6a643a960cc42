"""tfds builder `celeba_local`: CelebA, landmark-cropped at build time, read offline.

Importing this module registers the builder. The source is, in this order:
1. `celeba_dir=` given to the constructor: a folder in the official aligned layout;
2. `celeb_a_data_dir=` given to the constructor: a data_dir where tfds's own `celeb_a` is
   prepared (218x178 JPEGs with the same landmarks; cropped here, filename = "celeb_a:<tfds id>");
3. the tfds manual dir (`DownloadConfig(manual_dir=...)`), if it holds the four CelebA entries;
4. $CELEBA_DIR, else ~/data/celeba (`celeba_files.celeba_dir`).

    from gem_jax.data.celeba_builder import CelebaLocal
    builder = CelebaLocal(config="crop64", data_dir="~/tensorflow_datasets",
                          celeba_dir="~/data/celeba")
    builder.download_and_prepare()
    ds = builder.as_dataset(split="train")

Examples: image uint8 [size, size, 3] (PNG), attributes int8 [40] in {0, 1} (ATTRIBUTE_NAMES
order), gem_labels int8 [6] in {0, 1} (GEM_ATTRIBUTES, Beard = NOT No_Beard), landmarks int32
[10] (the official coordinates in the uncropped 178x218 image), filename text ("000001.jpg").
Splits train / validation / test follow list_eval_partition.txt. See docs/data.md.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from gem_jax.data import celeba
from gem_jax.data.celeba_files import REQUIRED, celeba_dir, check_celeba_files
from gem_jax.data.errors import DataConfigError, DataNotFoundError
from gem_jax.data.image_decode import read_rgb
from gem_jax.data.tf_cpu import tensorflow_datasets

tfds = tensorflow_datasets()  # the builder classes below subclass tfds types

logger = logging.getLogger("gem_jax.data")
IMAGE_DIR, ATTR_FILE, LANDMARK_FILE, PARTITION_FILE = REQUIRED
_SHOWN = 5  # missing files named in an error message
CONFIG_ALIASES = {None: "crop64", "": "crop64", "default": "crop64"}


@dataclasses.dataclass(eq=False)
class CelebaConfig(tfds.core.BuilderConfig):
  """Output size of one `celeba_local` variant.

  Attributes:
    size: side of the square landmark crop in pixels.
  """

  size: int = 64


class CelebaTables(NamedTuple):
  """The three CelebA lists, checked against each other.

  Attributes:
    names: the 40 attribute names (ATTRIBUTE_NAMES).
    attributes: {file: int8 [40] in +-1}.
    landmarks: {file: int32 [10]}.
    partition: {file: 0 train | 1 validation | 2 test}.
  """

  names: list[str]
  attributes: dict[str, np.ndarray]
  landmarks: dict[str, np.ndarray]
  partition: dict[str, int]


class CelebaLocal(tfds.core.GeneratorBasedBuilder):
  """CelebA (aligned release), landmark-cropped to a square; see the module docstring."""

  name = "celeba_local"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}
  BUILDER_CONFIGS = [
      CelebaConfig(name="crop64", size=64, description="64x64 landmark crop (the paper's)."),
      CelebaConfig(name="crop256", size=256,
                   description="256x256 landmark crop (upsampled: the box is ~147 px)."),
  ]
  DEFAULT_CONFIG_NAME = "crop64"
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Put the aligned CelebA release (img_align_celeba/, list_attr_celeba.txt, "
      "list_landmarks_align_celeba.txt, list_eval_partition.txt) in a folder and pass it as "
      "celeba_dir=, as DownloadConfig(manual_dir=...), or via $CELEBA_DIR.")

  def __init__(self, *, celeba_dir: str | None = None, celeb_a_data_dir: str | None = None,
               **kwargs):
    """Args:
      celeba_dir: folder in the official aligned layout.
      celeb_a_data_dir: data_dir holding a prepared tfds `celeb_a` to convert instead.
      **kwargs: as for tfds builders (config, data_dir, version).
    """
    self._celeba_dir = celeba_dir
    self._celeb_a_data_dir = celeb_a_data_dir
    super().__init__(**kwargs)
    self._original_state.update(celeba_dir=celeba_dir, celeb_a_data_dir=celeb_a_data_dir)

  def _info(self) -> tfds.core.DatasetInfo:
    size = self.builder_config.size
    return self.dataset_info_from_configs(
        description=("CelebA aligned images cropped around their landmarks: a square of side "
                     f"{celeba.CROP_SCALE} x the eye-to-mouth distance, centred "
                     f"{celeba.CENTER_SHIFT} x that distance above the eye/mouth midpoint, "
                     f"Lanczos-resized to {size}x{size}. See docs/data.md."),
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(size, size, 3), encoding_format="png"),
            "attributes": tfds.features.Tensor(shape=(len(celeba.ATTRIBUTE_NAMES),),
                                               dtype=np.int8),
            "gem_labels": tfds.features.Tensor(shape=(len(celeba.GEM_ATTRIBUTES),),
                                               dtype=np.int8),
            "landmarks": tfds.features.Tensor(shape=(len(celeba.LANDMARK_NAMES),),
                                              dtype=np.int32),
            "filename": tfds.features.Text(),
        }),
        supervised_keys=None,
        homepage="https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html",
        metadata=tfds.core.MetadataDict(
            attribute_names=list(celeba.ATTRIBUTE_NAMES),
            gem_attributes=list(celeba.GEM_ATTRIBUTES),
            landmark_names=list(celeba.LANDMARK_NAMES),
            crop_scale=celeba.CROP_SCALE,
            center_shift=celeba.CENTER_SHIFT),
    )

  def _source_dir(self, dl_manager) -> Path:
    """The CelebA folder: celeba_dir, else a manual dir holding CelebA, else the default."""
    if self._celeba_dir:
      return celeba_dir(self._celeba_dir)
    try:
      manual = Path(os.fspath(dl_manager.manual_dir))
    except (AssertionError, ValueError):  # no manual dir, or an empty one
      manual = None
    if manual is not None and all((manual / name).exists() for name in REQUIRED):
      return manual
    return celeba_dir(None)

  def _split_generators(self, dl_manager):
    """Reads the lists (or a prepared celeb_a) and checks every listed image exists."""
    if self._celeb_a_data_dir:
      return self._celeb_a_splits()
    root = check_celeba_files(str(self._source_dir(dl_manager)))
    tables = read_tables(root)
    self.info.metadata["source"] = str(root)
    return {split: self._generate_examples(root, files, tables)
            for split, files in split_files(tables.partition).items()}

  def _example(self, image, attributes, landmarks, filename: str) -> dict:
    """One example from an uncropped image uint8 [H, W, 3] and its +-1 or 0/1 attributes."""
    return {
        "image": celeba.landmark_crop(image, landmarks, self.builder_config.size),
        "attributes": (np.asarray(attributes) > 0).astype(np.int8),
        "gem_labels": celeba.gem_labels(attributes, celeba.ATTRIBUTE_NAMES).astype(np.int8),
        "landmarks": np.asarray(landmarks, dtype=np.int32),
        "filename": filename,
    }

  def _generate_examples(self, root: Path, files: list[str], tables: CelebaTables):
    """Yields (filename, example) for the files of one split; a corrupt JPEG raises."""
    for filename in files:
      image = read_rgb(root / IMAGE_DIR / filename)
      yield filename, self._example(image, tables.attributes[filename],
                                    tables.landmarks[filename], filename)

  def _celeb_a_splits(self):
    """Split generators over a prepared tfds `celeb_a`."""
    source = tfds.builder("celeb_a", data_dir=self._celeb_a_data_dir)
    if not source.is_prepared():
      raise FileNotFoundError(f"tfds celeb_a is not prepared in {self._celeb_a_data_dir}")
    self.info.metadata["source"] = f"tfds celeb_a {source.version} in {source.data_dir}"
    return {split: self._generate_from_celeb_a(source, split) for split in source.info.splits}

  def _generate_from_celeb_a(self, source, split: str):
    """Yields (tfds id, example) from a prepared celeb_a split (attributes bool, landmarks
    int64, both dicts keyed by the official names)."""
    read_config = tfds.ReadConfig(add_tfds_id=True)
    ds = source.as_dataset(split=split, shuffle_files=False, read_config=read_config)
    for ex in tfds.as_numpy(ds):
      key = ex["tfds_id"].decode("utf-8")
      attributes = [ex["attributes"][name] for name in celeba.ATTRIBUTE_NAMES]
      landmarks = [ex["landmarks"][name] for name in celeba.LANDMARK_NAMES]
      yield key, self._example(ex["image"], attributes, landmarks, f"celeb_a:{key}")


def read_tables(root: Path) -> CelebaTables:
  """The three CelebA lists under root, checked against each other and img_align_celeba/.

  Raises:
    CelebaFormatError: for a malformed file, a non-official attribute header, or a file in
      the partition list that the attribute or landmark list lacks.
    DataNotFoundError: naming the first listed images absent from img_align_celeba/.
  """
  names, attributes = celeba.read_attributes(root / ATTR_FILE)
  if tuple(names) != celeba.ATTRIBUTE_NAMES:
    raise celeba.CelebaFormatError(
        f"{root / ATTR_FILE}:2: expected the 40 official attribute names "
        f"({' '.join(celeba.ATTRIBUTE_NAMES)}); got {' '.join(names)}")
  landmarks = celeba.read_landmarks(root / LANDMARK_FILE)
  partition = celeba.read_partition(root / PARTITION_FILE)
  for table, name in ((attributes, ATTR_FILE), (landmarks, LANDMARK_FILE)):
    absent = sorted(set(partition) - set(table))
    if absent:
      raise celeba.CelebaFormatError(
          f"{root / name} has no row for {len(absent)} file(s) of {PARTITION_FILE}: "
          f"{_first(absent)}")
  present = set(os.listdir(root / IMAGE_DIR))
  missing = sorted(set(partition) - present)
  if missing:
    raise DataNotFoundError(
        f"{len(missing)} of the {len(partition)} images listed in {PARTITION_FILE} are missing "
        f"from {root / IMAGE_DIR}: {_first(missing)}")
  return CelebaTables(names, attributes, landmarks, partition)


def split_files(partition: dict[str, int]) -> dict[str, list[str]]:
  """{'train' | 'validation' | 'test': sorted file names}, leaving out empty splits."""
  splits = {name: sorted(f for f, p in partition.items() if p == code)
            for code, name in celeba.PARTITIONS.items()}
  return {name: files for name, files in splits.items() if files}


def _first(names: list[str]) -> str:
  shown = ", ".join(names[:_SHOWN])
  return shown + (f", ... ({len(names) - _SHOWN} more)" if len(names) > _SHOWN else "")


def builder_config_name(name: str | None) -> str:
  """config.data.config -> 'crop64' | 'crop256' ('default' and unset mean crop64)."""
  name = CONFIG_ALIASES.get(name, name)
  known = [c.name for c in CelebaLocal.BUILDER_CONFIGS]
  if name not in known:
    raise DataConfigError(f"config.data.config={name!r}: unknown celeba config; expected "
                          f"default, {', '.join(known)}")
  return name


def prepared_celeb_a_dir(data_dir: str | None) -> str | None:
  """The data_dir root where tfds's own `celeb_a` is prepared (data_dir, or tfds's default
  when None), or None when it is not prepared there."""
  try:
    source = tfds.builder("celeb_a", data_dir=data_dir)
  except Exception:  # pylint: disable=broad-except  # unregistered, unreadable info, ...
    return None
  return str(source.data_dir_root) if source.is_prepared() else None


def _log_reuse(builder: CelebaLocal, folder: str | None) -> None:
  """Says which prepared copy is used: a warning when config.data.celeba_dir is set and the
  copy was built from something else (that folder is then not read), else an info line."""
  source = str(builder.info.metadata.get("source", "an unrecorded source"))
  line = f"celeba: using the prepared copy in {builder.data_dir} (built from {source})"
  if folder and os.path.realpath(celeba_dir(folder)) != os.path.realpath(source):
    logger.warning("%s; config.data.celeba_dir=%s is not read. Delete that directory to rebuild "
                   "from it.", line, folder)
  else:
    logger.info("%s", line)


def celeba_builder(data_config) -> CelebaLocal:
  """A prepared `celeba_local` builder for config.data (the registry's entry for 'celeba').

  Reads data_config.config ('default' | 'crop64' | 'crop256'), data_config.data_dir and
  data_config.celeba_dir. A prepared celeba_local is used as is (logged, with its source; a
  warning when celeba_dir is set and the copy was built from elsewhere); otherwise it is built from
  config.data.celeba_dir if set, else from a prepared tfds `celeb_a` in data_dir, else from
  $CELEBA_DIR or ~/data/celeba. Absent files raise DataNotFoundError before any work.
  """
  config = builder_config_name(data_config.get("config"))
  data_dir = data_config.get("data_dir")
  data_dir = os.path.expanduser(data_dir) if data_dir else None
  folder = data_config.get("celeba_dir")
  builder = CelebaLocal(config=config, data_dir=data_dir, celeba_dir=folder)
  if builder.is_prepared():
    _log_reuse(builder, folder)
    return builder
  celeb_a_dir = None if folder else prepared_celeb_a_dir(data_dir)
  if celeb_a_dir:
    builder = CelebaLocal(config=config, data_dir=data_dir, celeb_a_data_dir=celeb_a_dir)
  else:
    root = check_celeba_files(folder)
    builder = CelebaLocal(config=config, data_dir=data_dir, celeba_dir=str(root))
  builder.download_and_prepare()
  return builder
