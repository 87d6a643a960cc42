"""Writing files so that a crash never leaves half of one: write a temporary sibling, then
rename it over the target (atomic on POSIX within one file system); and a file's sha256.

    atomic_write_text(path, text); atomic_write_json(path, obj); atomic_save_npy(path, array)
    file_sha256(path)
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

__all__ = ["atomic_write", "atomic_write_text", "atomic_write_json", "atomic_save_npy",
           "file_sha256"]


def atomic_write(path: str | Path, write: Callable[[Any], None], mode: str = "w") -> None:
  """Calls write(file) on a temporary file next to `path`, flushes it to disk and renames it
  to `path`; on any error the target is left as it was and the temporary file removed."""
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
  try:
    with os.fdopen(fd, mode) as f:
      write(f)
      f.flush()
      os.fsync(f.fileno())
    # mkstemp makes the file private (0600); give it the target's mode, or rw-r--r--.
    os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o644)
    os.replace(tmp, path)
  except BaseException:
    Path(tmp).unlink(missing_ok=True)
    raise


def atomic_write_text(path: str | Path, text: str) -> None:
  atomic_write(path, lambda f: f.write(text))


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = 2) -> None:
  atomic_write_text(path, json.dumps(obj, indent=indent) + "\n")


def atomic_save_npy(path: str | Path, array) -> None:
  """np.save(path, array) through a temporary file (path should end in .npy)."""
  atomic_write(path, lambda f: np.save(f, np.asarray(array)), mode="wb")


def file_sha256(path: str | Path) -> str:
  """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()
