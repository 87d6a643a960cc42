"""Image grids and labelled traversal figures (matplotlib is imported lazily)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image


def to_uint8(images: np.ndarray) -> np.ndarray:
  """float in [0, 1] or uint8 -> uint8, same shape."""
  images = np.asarray(images)
  if images.dtype == np.uint8:
    return images
  return (np.clip(images, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def image_grid(images: np.ndarray, ncols: int, pad: int = 1) -> np.ndarray:
  """[N, H, W, 3] -> one uint8 image [rows * (H + pad) + pad, cols * (W + pad) + pad, 3]."""
  images = to_uint8(images)
  n, h, w, c = images.shape
  nrows = -(-n // ncols)
  grid = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, c), 255, np.uint8)
  for i in range(n):
    r, q = divmod(i, ncols)
    top, left = pad + r * (h + pad), pad + q * (w + pad)
    grid[top:top + h, left:left + w] = images[i]
  return grid


def save_image(path: str | Path, image: np.ndarray) -> None:
  """Writes uint8 (or float in [0, 1]) [H, W, 3] as an image file (format from the suffix)."""
  Path(path).parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(to_uint8(image)).save(path)


def save_traversal_figure(path: str | Path, traversals: np.ndarray, values: Sequence[float],
                          row_labels: Sequence[str], title: str = "") -> None:
  """traversals: [rows, len(values), H, W, 3]; one labelled row per latent."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  rows, cols = traversals.shape[:2]
  fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.9 + 1.2, rows * 0.9 + 0.5),
                           squeeze=False)
  for r in range(rows):
    for c in range(cols):
      ax = axes[r, c]
      ax.imshow(to_uint8(traversals[r, c]))
      ax.set_xticks([]), ax.set_yticks([])
      if r == rows - 1:
        ax.set_xlabel(f"{values[c]:+.1f}", fontsize=7)
    axes[r, 0].set_ylabel(row_labels[r], fontsize=8, rotation=0, ha="right", va="center")
  if title:
    fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  Path(path).parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(path, dpi=100)
  plt.close(fig)


def save_face_traversals(path: str | Path, traversals: np.ndarray, values: Sequence[float],
                         row_labels: Sequence[str], title: str = "",
                         face_labels: Sequence[str] | None = None) -> None:
  """Traversals of several faces side by side, one labelled row per latent.

  traversals: [faces, rows, len(values), H, W, 3] (float in [0, 1] or uint8); each face is a
  block of len(values) columns with a gap between blocks, headed by face_labels[f] (default
  'face f'); row_labels[r] may hold a line break; values label the bottom row's columns.
  """
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  faces, rows, cols = traversals.shape[:3]
  face_labels = face_labels or [f"face {f + 1}" for f in range(faces)]
  ratios = ([1.0] * cols + [0.25]) * faces
  cell, left, top, bottom = 0.75, 1.6, 0.95, 0.35  # inches
  width = cell * (cols + 0.25) * faces + left
  height = (cell + 0.05) * rows + top + bottom
  fig, axes = plt.subplots(rows, len(ratios) - 1, squeeze=False, figsize=(width, height),
                           gridspec_kw=dict(width_ratios=ratios[:-1], wspace=0.04,
                                            hspace=0.06))
  fig.subplots_adjust(left=left / width, right=1 - 0.05 / width, top=1 - top / height,
                      bottom=bottom / height)
  for r in range(rows):
    for f in range(faces):
      for c in range(cols):
        ax = axes[r, f * (cols + 1) + c]
        ax.imshow(to_uint8(traversals[f, r, c]))
        ax.set_xticks([]), ax.set_yticks([])
        if r == rows - 1:
          ax.set_xlabel(f"{values[c]:+.1f}", fontsize=7)
        if r == 0 and c == cols // 2:
          ax.set_title(face_labels[f], fontsize=8)
      if f < faces - 1:
        axes[r, f * (cols + 1) + cols].axis("off")
    axes[r, 0].set_ylabel(row_labels[r], fontsize=7.5, rotation=0, ha="right", va="center")
  if title:
    fig.suptitle(title, fontsize=9, y=1 - 0.08 / height, va="top")
  Path(path).parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(path, dpi=100)
  plt.close(fig)
