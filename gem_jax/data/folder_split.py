"""The train/test split of a folder's files by path hash (image_folder, labelled_folder).

Kept apart from the tfds builders so that code which only counts files (surveys, the label
reader) does not load TensorFlow.
"""
from __future__ import annotations

import hashlib


def split_files(files: list[str], test_fraction: float) -> dict[str, list[str]]:
  """{'train': [...], 'test': [...]}: test = the files with the smallest SHA-1 of their path.

  Deterministic for a given set of relative paths; `test` has round(test_fraction * N) files,
  at least one when N >= 2, none when N == 1 (tfds cannot write an empty split, so a split with
  no files is left out).
  """
  n_test = 0 if len(files) < 2 else max(1, round(test_fraction * len(files)))
  n_test = min(n_test, len(files) - 1) if files else 0
  by_hash = sorted(files, key=lambda f: hashlib.sha1(f.encode("utf-8")).hexdigest())
  test = set(by_hash[:n_test])
  splits = {"train": [f for f in files if f not in test], "test": [f for f in files if f in test]}
  return {name: members for name, members in splits.items() if members}
