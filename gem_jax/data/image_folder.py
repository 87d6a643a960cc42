"""tfds builder `image_folder`: every image under a folder (LSUN horse/bedroom exports, ...).

    from gem_jax.data.image_folder import ImageFolder
    builder = ImageFolder(root="~/data/lsun_horse", size=64, data_dir="~/tensorflow_datasets")
    builder.download_and_prepare()
    ds = builder.as_dataset(split="train")   # {'image': uint8 [64, 64, 3], 'filename': str}

Files ending in .jpg/.jpeg/.png/.webp (any case) are found recursively (symlinked folders
followed, each folder read once, loops skipped with a warning) and sorted by relative path; each
is decoded to 8-bit RGB without clipping (16-bit grey scaled, alpha composited on white, CMYK
converted: `image_decode.py`, one log line per converted PIL mode), centre-cropped to a square
and resized with Lanczos. The split is deterministic:
`test` holds the `round(test_fraction * N)` files (at least one when N >= 2) whose relative
paths have the smallest SHA-1, `train` the rest. Unreadable files are collected and reported
together by name (or skipped with a warning that names them, `skip_bad=True`).

tfds keys prepared data by name/config/version, so the config name carries the folder's base
name, a hash of its absolute path and the size (`lsun_horse-1a2b3c4d-64`): two folders never
share a prepared copy. A folder whose contents change keeps its old copy; delete
`<data_dir>/image_folder/<config>/` to rebuild it.
"""
from __future__ import annotations

import collections
import dataclasses
import hashlib
import os
import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from gem_jax.data.errors import DataNotFoundError
from gem_jax.data.folder_split import split_files
from gem_jax.data.image_decode import UnreadableImageError, log_conversions, read_rgb
from gem_jax.data.tf_cpu import tensorflow_datasets

tfds = tensorflow_datasets()  # the builder classes below subclass tfds types

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


def center_crop_resize(image: np.ndarray, size: int) -> np.ndarray:
  """Largest centred square of uint8 [H, W, 3], resized (Lanczos) to uint8 [size, size, 3]."""
  height, width = image.shape[:2]
  side = min(height, width)
  left, top = (width - side) // 2, (height - side) // 2
  box = (left, top, left + side, top + side)
  resized = Image.fromarray(image).resize((size, size), Image.LANCZOS, box=box)
  return np.asarray(resized, dtype=np.uint8)


def list_images(root) -> list[str]:
  """Relative paths (POSIX, sorted) of the image files under root, recursively.

  Symlinked folders are followed. A folder reached a second time (a symlink to one of its own
  ancestors, i.e. a loop, or a second path to a folder already read) is skipped with a warning,
  so every folder is read once: top down, real folders before symlinks, each in name order.
  """
  root = Path(root)
  seen = {os.path.realpath(root): "."}  # real path -> relative path it was read under
  found = []
  for folder, subfolders, names in os.walk(root, followlinks=True):
    here = Path(folder)
    order = sorted(subfolders, key=lambda d: (os.path.islink(here / d), d))  # real ones first
    subfolders[:] = [d for d in order if _first_visit(here / d, root, seen)]
    found += [(here / n).relative_to(root).as_posix() for n in names
              if Path(n).suffix.lower() in IMAGE_SUFFIXES and (here / n).is_file()]
  return sorted(found)


def folder_images(root: Path) -> list[str]:
  """`list_images(root)`, or DataNotFoundError when the folder is missing or holds none."""
  if not root.is_dir():
    raise DataNotFoundError(f"image folder {root} does not exist; point "
                            "config.data.image_dir at a folder of images.")
  files = list_images(root)
  if not files:
    raise DataNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}, any case) under {root}")
  return files


def _first_visit(folder: Path, root: Path, seen: dict[str, str]) -> bool:
  """True when `folder` (under root) leads to a folder not read yet; else warns, False."""
  real, rel = os.path.realpath(folder), folder.relative_to(root).as_posix()
  if real not in seen:
    seen[real] = rel
    return True
  first = seen[real]
  if first == "." or rel.startswith(first + "/"):
    why = f"it points at its ancestor {first!r} (a symlink loop)"
  else:
    why = f"that folder is already read as {first!r}"
  warnings.warn(f"image folder {root}: skipping {rel!r}: {why}", stacklevel=2)
  return False


def config_name(root, size: int) -> str:
  """Builder config name for a folder: '<base name>-<8 hex of sha1(abs path)>-<size>'."""
  path = os.path.abspath(os.path.expanduser(os.fspath(root)))
  digest = hashlib.sha1(path.encode("utf-8")).hexdigest()[:8]
  base = re.sub(r"[^A-Za-z0-9_]+", "_", os.path.basename(path.rstrip(os.sep)))[:40] or "root"
  return f"{base}-{digest}-{size}"


@dataclasses.dataclass(eq=False)
class ImageFolderConfig(tfds.core.BuilderConfig):
  """One folder at one size.

  Attributes:
    root: absolute path of the folder.
    size: output side in pixels.
    test_fraction: share of the files that go to `test`.
  """

  root: str = ""
  size: int = 64
  test_fraction: float = 0.05


class BadFiles:
  """Unreadable files and decoded modes of the split generators; the last split to finish
  logs the modes and reports the unreadable files."""

  def __init__(self, root: str, splits, skip_bad: bool):
    self.root, self.pending, self.skip_bad, self.files = root, set(splits), skip_bad, []
    self.modes = collections.Counter()  # PIL mode -> images decoded from it

  def finish(self, split: str, empty: bool = False) -> None:
    """Marks `split` done; once all are, logs the modes and raises (or warns) listing the
    unreadable files.

    An empty split (every file unreadable) raises at once: tfds cannot write it.
    """
    self.pending.discard(split)
    if self.pending and not empty:
      return
    log_conversions(self.modes, f"image folder {self.root}")
    if not self.files:
      return
    listing = "\n  ".join(self.files)
    if self.skip_bad and not empty:
      warnings.warn(f"skipped {len(self.files)} unreadable image(s) under {self.root}:\n  "
                    f"{listing}", stacklevel=2)
      return
    advice = (f"no readable image is left for split {split!r}." if empty else
              "Delete or fix them, or pass skip_bad=True (config.data.skip_bad) to leave them out.")
    raise UnreadableImageError(
        f"{len(self.files)} unreadable image(s) under {self.root}:\n  {listing}\n{advice}")


class ImageFolder(tfds.core.GeneratorBasedBuilder):
  """Every image under a folder, centre-cropped and resized to a square."""

  name = "image_folder"
  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES = {
      "1.0.0": "First release.",
      "1.1.0": "16-bit, palette, alpha and CMYK images decoded without clipping; symlinked "
               "folders followed (copies prepared by 1.0.0 are rebuilt).",
  }

  def __init__(self, *, root=None, size: int = 64, test_fraction: float = 0.05,
               skip_bad: bool = False, config=None, **kwargs):
    """Args:
      root: the image folder (needed unless `config` is an ImageFolderConfig).
      size: output side in pixels.
      test_fraction: share of the files in `test`.
      skip_bad: skip unreadable files with a warning instead of raising.
      config, **kwargs: as for tfds builders (data_dir, version, ...).
    """
    if config is None:
      if root is None:
        raise ValueError("ImageFolder needs root=<folder of images>")
      path = os.path.abspath(os.path.expanduser(os.fspath(root)))
      config = ImageFolderConfig(name=config_name(path, size), root=path, size=size,
                                 test_fraction=test_fraction,
                                 description=f"{path} at {size}x{size}")
    self._skip_bad = skip_bad
    super().__init__(config=config, **kwargs)
    self._original_state.update(skip_bad=skip_bad)  # kept when tfds pickles the builder

  def _info(self) -> tfds.core.DatasetInfo:
    config = self.builder_config
    size = config.size if config is not None else 64
    return self.dataset_info_from_configs(
        description=("Every .jpg/.jpeg/.png/.webp image under a folder, decoded to 8-bit RGB "
                     "without clipping, centre-cropped to a square and resized with Lanczos. "
                     "See docs/data.md."),
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(size, size, 3), encoding_format="png"),
            "filename": tfds.features.Text(),
        }),
        supervised_keys=None,
        homepage="docs/data.md",
        metadata=tfds.core.MetadataDict(
            root=config.root if config is not None else "",
            test_fraction=config.test_fraction if config is not None else 0.05),
    )

  def _split_generators(self, dl_manager):
    """Lists the folder and splits it by path hash; no download."""
    del dl_manager
    config = self.builder_config
    root = Path(config.root)
    files = folder_images(root)
    splits = split_files(files, config.test_fraction)
    bad = BadFiles(str(root), splits, self._skip_bad)
    return {name: self._generate_examples(root, members, name, bad)
            for name, members in splits.items()}

  def _generate_examples(self, root: Path, files: list[str], split: str, bad: BadFiles):
    """Yields (relative path, example); unreadable files go to `bad`."""
    yielded = 0
    for rel in files:
      try:
        image = read_rgb(root / rel, bad.modes)
      except UnreadableImageError as err:
        bad.files.append(f"{rel} ({err.__cause__})")
        continue
      yielded += 1
      yield rel, {"image": center_crop_resize(image, self.builder_config.size), "filename": rel}
    bad.finish(split, empty=not yielded)  # tfds cannot write an empty split: raise now


def image_folder_builder(data_config) -> ImageFolder:
  """A prepared `image_folder` builder for config.data.

  Reads data_config.image_dir (required), data_config.image_size (default 64),
  data_config.data_dir (default $TFDS_DATA_DIR or ~/tensorflow_datasets) and
  data_config.skip_bad (default False). Prepares on first use.
  """
  image_dir = data_config.get("image_dir")
  if not image_dir:
    raise DataNotFoundError("config.data.image_dir is not set; point it at a folder of images "
                            "(lsun_gem: --data_dir)")
  data_dir = data_config.get("data_dir")
  builder = ImageFolder(root=image_dir, size=int(data_config.get("image_size") or 64),
                        skip_bad=bool(data_config.get("skip_bad", False)),
                        data_dir=os.path.expanduser(data_dir) if data_dir else None)
  builder.download_and_prepare()
  return builder
