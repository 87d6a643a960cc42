"""CelebA in its official aligned layout: the three list files, the landmark crop, GEM labels.

Pure numpy + PIL (no TensorFlow); the tfds builder in `celeba_builder.py` puts these together.
The list files are whitespace-separated text (any run of spaces, LF or CRLF line ends):

    list_attr_celeba.txt             202599
                                     5_o_Clock_Shadow Arched_Eyebrows ... Young
                                     000001.jpg -1  1  1 -1 ...            (40 values, +-1)
    list_landmarks_align_celeba.txt  202599
                                     lefteye_x lefteye_y ... rightmouth_y
                                     000001.jpg    69  109  106  113 ...  (10 pixel coordinates)
    list_eval_partition.txt          000001.jpg 0                          (0 train, 1 val, 2 test)

Landmark crop (docs/design.md stage 1): the square box is centred `CENTER_SHIFT * d` above the
midpoint between the eye centre and the mouth centre, with side `CROP_SCALE * d`, where d is the
eye-centre to mouth-centre distance. The aligned release puts eyes and mouth at nearly fixed
places (000001.jpg: d ~ 42 px, eyes at y ~ 111), so the box is ~147 px wide and centred near the
image centre: the common "148 px centre crop" framing of 64x64 CelebA (forehead, hair and chin
inside, so Bangs, Bald and Blond_Hair stay visible), but following each face's own landmarks.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

ATTRIBUTE_NAMES: tuple[str, ...] = tuple(
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose "
    "Black_Hair Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee "
    "Gray_Hair Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes "
    "No_Beard Oval_Face Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks Sideburns Smiling "
    "Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat Wearing_Lipstick Wearing_Necklace "
    "Wearing_Necktie Young".split())
LANDMARK_NAMES: tuple[str, ...] = tuple(
    "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y "
    "rightmouth_x rightmouth_y".split())
PARTITIONS: dict[int, str] = {0: "train", 1: "validation", 2: "test"}

# The paper's six attributes (Sec. 4.2: Bangs, Bald, Gender, Beard, Blond, Makeup) as CelebA
# columns; "Beard" is derived: NOT No_Beard.
GEM_ATTRIBUTES: tuple[str, ...] = ("Bangs", "Bald", "Male", "Beard", "Blond_Hair", "Heavy_Makeup")
_DERIVED = {"Beard": "No_Beard"}  # derived name -> the CelebA column it negates

CROP_SCALE = 3.5     # side of the square crop, in eye-to-mouth distances
CENTER_SHIFT = 0.5   # crop centre above the eye/mouth midpoint, in eye-to-mouth distances
MIN_SIDE = 16.0      # pixels; guards against degenerate landmarks (eyes on the mouth)


class CelebaFormatError(ValueError):
  """A CelebA list file does not follow the official format; the message names file and line."""


def _lines(path) -> list[tuple[int, list[str]]]:
  """(1-based line number, whitespace tokens) of each non-blank line of a text file."""
  text = Path(path).read_text(encoding="utf-8", errors="strict")
  return [(i, line.split()) for i, line in enumerate(text.splitlines(), 1) if line.strip()]


def _fail(path, lineno: int, what: str, tokens: Sequence[str]) -> CelebaFormatError:
  return CelebaFormatError(f"{path}:{lineno}: {what}; got {' '.join(tokens)!r}")


def _read_rows(path, rows, width: int, allowed: set[int] | None) -> dict[str, np.ndarray]:
  """Parses "filename v1 ... v_width" rows into {filename: int64 [width]}."""
  table = {}
  for lineno, tokens in rows:
    if len(tokens) != width + 1:
      raise _fail(path, lineno, f"expected a file name and {width} integers", tokens)
    try:
      values = np.array([int(v) for v in tokens[1:]], dtype=np.int64)
    except ValueError:
      raise _fail(path, lineno, f"expected a file name and {width} integers", tokens) from None
    if allowed is not None and not set(values.tolist()) <= allowed:
      raise _fail(path, lineno, f"values must be in {sorted(allowed)}", tokens)
    if tokens[0] in table:
      raise _fail(path, lineno, f"{tokens[0]} is listed twice", tokens)
    table[tokens[0]] = values
  return table


def _read_headed(path, allowed: set[int] | None) -> tuple[list[str], dict[str, np.ndarray]]:
  """A list file with a count line and a names line: (names, {filename: int64 [len(names)]})."""
  lines = _lines(path)
  if len(lines) < 2:
    raise CelebaFormatError(f"{path}: expected a count line and a header line, found "
                            f"{len(lines)} non-blank line(s)")
  (count_no, count_tokens), (_, names) = lines[0], lines[1]
  if len(count_tokens) != 1 or not count_tokens[0].isdigit():
    raise _fail(path, count_no, "line 1 must be the number of images", count_tokens)
  table = _read_rows(path, lines[2:], len(names), allowed)
  if len(table) != int(count_tokens[0]):
    raise CelebaFormatError(f"{path}: line 1 announces {count_tokens[0]} images but "
                            f"{len(table)} rows follow")
  return names, table


def read_attributes(path) -> tuple[list[str], dict[str, np.ndarray]]:
  """Reads list_attr_celeba.txt.

  Returns:
    names: the 40 attribute names in file order.
    table: {filename: int8 [40]} with values -1 (absent) or +1 (present).
  Raises:
    CelebaFormatError: naming the file and line of the first malformed row.
  """
  names, table = _read_headed(path, allowed={-1, 1})
  return names, {k: v.astype(np.int8) for k, v in table.items()}


def read_landmarks(path) -> dict[str, np.ndarray]:
  """Reads list_landmarks_align_celeba.txt: {filename: int32 [10]} in `LANDMARK_NAMES` order
  (pixel x, y of left eye, right eye, nose, left and right mouth corner)."""
  names, table = _read_headed(path, allowed=None)
  if tuple(names) != LANDMARK_NAMES:
    raise CelebaFormatError(f"{path}:2: expected the header {' '.join(LANDMARK_NAMES)!r}; got "
                            f"{' '.join(names)!r}")
  return {k: v.astype(np.int32) for k, v in table.items()}


def read_partition(path) -> dict[str, int]:
  """Reads list_eval_partition.txt (no header): {filename: 0 train | 1 validation | 2 test}."""
  table = _read_rows(path, _lines(path), width=1, allowed=set(PARTITIONS))
  return {k: int(v[0]) for k, v in table.items()}


def crop_box(landmarks) -> tuple[float, float, float]:
  """The landmark crop's square box as (centre x, centre y, side), in pixels.

  Args:
    landmarks: [10] in `LANDMARK_NAMES` order.
  """
  points = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
  eyes, mouth = points[0:2].mean(axis=0), points[3:5].mean(axis=0)
  distance = float(np.linalg.norm(mouth - eyes))
  centre_x, centre_y = (eyes + mouth) / 2.0
  return (float(centre_x), float(centre_y - CENTER_SHIFT * distance),
          max(CROP_SCALE * distance, MIN_SIDE))


def _pad_crop(image: np.ndarray, left: int, top: int, side: int) -> np.ndarray:
  """image[top:top+side, left:left+side], edge-padded where the box leaves the image."""
  height, width = image.shape[:2]
  pad_top, pad_left = max(0, -top), max(0, -left)
  pad_bottom, pad_right = max(0, top + side - height), max(0, left + side - width)
  if pad_top or pad_left or pad_bottom or pad_right:
    image = np.pad(image, ((pad_top, pad_bottom), (pad_left, pad_right), (0, 0)), mode="edge")
  top, left = top + pad_top, left + pad_left
  return image[top:top + side, left:left + side]


def landmark_crop(image: np.ndarray, landmarks, size: int = 64) -> np.ndarray:
  """Square landmark-guided crop, resized with PIL's Lanczos filter (antialiased).

  Args:
    image: uint8 [H, W, 3].
    landmarks: [10] in `LANDMARK_NAMES` order, pixel coordinates in `image`.
    size: output side in pixels (64, or 256 for the high-resolution variant).
  Returns:
    uint8 [size, size, 3]; parts of the box outside the image repeat the edge pixels.
  """
  image = np.asarray(image)
  if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
    raise ValueError(f"expected a uint8 [H, W, 3] image, got {image.dtype} {image.shape}")
  centre_x, centre_y, side = crop_box(landmarks)
  side_px = int(round(side))
  left, top = int(round(centre_x - side_px / 2)), int(round(centre_y - side_px / 2))
  square = _pad_crop(image, left, top, side_px)
  resized = Image.fromarray(np.ascontiguousarray(square)).resize((size, size), Image.LANCZOS)
  return np.asarray(resized, dtype=np.uint8)


def gem_labels(attr_row, names: Sequence[str],
               attributes: Sequence[str] = GEM_ATTRIBUTES) -> np.ndarray:
  """Binary labels of the GEM attributes from CelebA attribute rows.

  Args:
    attr_row: int [..., 40] in +-1 (as in the file) or {0, 1} (as stored by the builder).
    names: the column names of attr_row (`ATTRIBUTE_NAMES`).
    attributes: CelebA columns to return, or "Beard" (= NOT No_Beard).
  Returns:
    int32 [..., len(attributes)] in {0, 1}.
  Raises:
    ValueError: for a name that is neither a column nor "Beard", listing the valid names.
  """
  names = list(names)
  valid = names + [d for d, base in _DERIVED.items() if base in names]
  unknown = [a for a in attributes if a not in valid]
  if unknown:
    raise ValueError(f"unknown CelebA attribute(s) {', '.join(map(repr, unknown))}; valid "
                     f"names: {', '.join(valid)}")
  row = np.asarray(attr_row) > 0
  columns = [~row[..., names.index(_DERIVED[a])] if a in _DERIVED else row[..., names.index(a)]
             for a in attributes]
  return np.stack(columns, axis=-1).astype(np.int32)
