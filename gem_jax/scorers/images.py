"""Image helpers shared by every scorer: input validation, content hash, PNG encoding.

The image hash is the key that ties a scorer's answer to an image everywhere in the
project (the answer cache, replay files, the oracle's label lookup):

    image_sha256(img) == hashlib.sha256(np.ascontiguousarray(img, np.uint8).tobytes()).hexdigest()

i.e. the SHA-256 of the raw C-ordered uint8 HxWx3 pixel bytes (no header, no shape).
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from typing import Sequence, Union

import numpy as np

__all__ = ["check_images", "image_sha256", "image_hashes", "encode_png"]

ImagesLike = Union[np.ndarray, Sequence[np.ndarray]]


def check_images(images: ImagesLike) -> np.ndarray:
  """Return `images` as a C-contiguous uint8 array [B, H, W, 3]; raise on anything else."""
  if not isinstance(images, np.ndarray):
    images = list(images)
    if not images:
      return np.zeros((0, 1, 1, 3), np.uint8)
    images = np.stack([np.asarray(im) for im in images])
  if images.dtype != np.uint8:
    raise TypeError(
        "scorers expect uint8 images [B, H, W, 3] with values 0..255, got dtype "
        f"{images.dtype}; "
        "convert with np.clip(x * 255, 0, 255).astype(np.uint8) if they are floats in [0, 1]"
    )
  if images.ndim != 4 or images.shape[-1] != 3:
    raise ValueError(f"scorers expect images of shape [B, H, W, 3], got {images.shape}")
  return np.ascontiguousarray(images)


def image_sha256(image: np.ndarray) -> str:
  """Hex SHA-256 of one image's raw uint8 HxWx3 bytes (C order)."""
  return hashlib.sha256(np.ascontiguousarray(image, dtype=np.uint8).tobytes()).hexdigest()


def image_hashes(images: ImagesLike) -> list[str]:
  """`image_sha256` of every image of a batch [B, H, W, 3]."""
  return [image_sha256(im) for im in check_images(images)]


def _png_chunk(tag: bytes, data: bytes) -> bytes:
  crc = zlib.crc32(tag + data) & 0xFFFFFFFF
  return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)


def encode_png(image: np.ndarray) -> bytes:
  """Lossless 8-bit RGB PNG of one uint8 image [H, W, 3] (pure numpy + zlib)."""
  image = np.ascontiguousarray(image, dtype=np.uint8)
  if image.ndim != 3 or image.shape[-1] != 3:
    raise ValueError(f"encode_png expects [H, W, 3], got {image.shape}")
  h, w, _ = image.shape
  rows = np.concatenate([np.zeros((h, 1), np.uint8), image.reshape(h, w * 3)], axis=1)  # filter 0
  header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)  # 8-bit, colour type 2 (RGB)
  return (
      b"\x89PNG\r\n\x1a\n"
      + _png_chunk(b"IHDR", header)
      + _png_chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
      + _png_chunk(b"IEND", b"")
  )
