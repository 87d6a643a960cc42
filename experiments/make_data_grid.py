"""Writes sample grids of the `synthetic_faces` data set.

  python -m experiments.make_data_grid --out docs/images/synthetic_faces_grid.png \
      --attributes_out docs/images/synthetic_faces_attributes.png
"""

from __future__ import annotations

import argparse

import numpy as np
from PIL import Image

from gem_jax.data import synthetic_faces as sf


def tile(images: np.ndarray, rows: int, cols: int, pad: int = 2) -> np.ndarray:
  """uint8 [rows*cols, H, W, 3] -> one uint8 grid image with `pad` white pixels between."""
  n, h, w, c = images.shape
  grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), 255, np.uint8)
  for i in range(min(n, rows * cols)):
    r, q = divmod(i, cols)
    grid[
        pad + r * (h + pad) : pad + r * (h + pad) + h, pad + q * (w + pad) : pad + q * (w + pad) + w
    ] = images[i]
  return grid


def attribute_sweep(base: np.ndarray, factors_row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Rows vary one attribute 0..5 with the others at `base` [6]; returns ([36, 6], [36, K])."""
  attributes = np.repeat(base[None], len(sf.ATTRIBUTES) * sf.NUM_LEVELS, axis=0)
  for i in range(len(sf.ATTRIBUTES)):
    attributes[i * sf.NUM_LEVELS : (i + 1) * sf.NUM_LEVELS, i] = np.arange(sf.NUM_LEVELS)
  factors = np.repeat(factors_row[None], len(attributes), axis=0)
  factors[:, : len(sf.ATTRIBUTES)] = attributes
  return attributes.astype(np.int32), factors


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--out", default="docs/images/synthetic_faces_grid.png")
  parser.add_argument("--attributes_out", default="docs/images/synthetic_faces_attributes.png")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--size", type=int, default=64)
  parser.add_argument("--zoom", type=int, default=2, help="nearest-neighbour upscaling of the PNG")
  args = parser.parse_args()

  data = sf.generate(args.seed, 64, size=args.size)
  grid = tile(data["image"], 8, 8)
  Image.fromarray(grid).resize(
      (grid.shape[1] * args.zoom, grid.shape[0] * args.zoom), Image.NEAREST
  ).save(args.out)

  _, factors = sf.sample_factors(args.seed, 1)
  factors[0, len(sf.ATTRIBUTES) :] = [0.3, 0.55, 0.8, 0.0, 0.0, 1.0]  # centred, light skin
  attributes, sweep_factors = attribute_sweep(np.zeros(6, np.int32), factors[0])
  images = sf.render(attributes, sweep_factors, size=args.size)
  grid = tile(images, len(sf.ATTRIBUTES), sf.NUM_LEVELS)
  Image.fromarray(grid).resize(
      (grid.shape[1] * args.zoom, grid.shape[0] * args.zoom), Image.NEAREST
  ).save(args.attributes_out)
  print(f"wrote {args.out} and {args.attributes_out}")


if __name__ == "__main__":
  main()
