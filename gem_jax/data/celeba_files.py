"""Where the CelebA files must be, and a check that names the first one missing.

The reader itself (landmark-guided crop, tfds builder) arrives with the full-GEM issue;
this module only makes absence a clear, early error.
"""
from __future__ import annotations

import os
from pathlib import Path

from gem_jax.data.errors import DataNotFoundError

REQUIRED = ("img_align_celeba", "list_attr_celeba.txt", "list_landmarks_align_celeba.txt",
            "list_eval_partition.txt")
DEFAULT_DIR = "~/data/celeba"


def celeba_dir(data_dir: str | None) -> Path:
  """The folder holding CelebA: the argument, else $CELEBA_DIR, else ~/data/celeba."""
  return Path(os.path.expanduser(data_dir or os.environ.get("CELEBA_DIR", DEFAULT_DIR)))


def check_celeba_files(data_dir: str | None) -> Path:
  """Returns the CelebA folder, or raises DataNotFoundError naming each missing file."""
  root = celeba_dir(data_dir)
  missing = [name for name in REQUIRED if not (root / name).exists()]
  if missing:
    raise DataNotFoundError(
        f"CelebA not found: missing {', '.join(missing)} in {root}. Download the aligned "
        "CelebA release (img_align_celeba/ with the 202,599 JPEGs, list_attr_celeba.txt, "
        "list_landmarks_align_celeba.txt, list_eval_partition.txt) from "
        "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html and put them in that folder, "
        "or point --config.data.celeba_dir (or $CELEBA_DIR) at the folder that holds them.")
  return root
