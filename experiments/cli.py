"""Shared command-line plumbing for the experiment entry points (absl + ml_collections)."""
from __future__ import annotations

import logging
import os
from pathlib import Path

CONFIG_DIR = Path(__file__).parent / "configs"


def quiet_tensorflow() -> None:
  """TensorFlow only feeds data here: silence its C++ logs and keep it off any GPU."""
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def config_path(name: str) -> str:
  return str(CONFIG_DIR / f"{name}.py")


def setup_logging() -> None:
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
