"""One image file -> uint8 RGB, scaled and never clipped: the decoder of the data builders.

PIL's `convert("RGB")` clips 16-bit grey (mode "I;16", values 0..65535) at 255 and drops alpha
as if the image were opaque. `to_rgb8` converts by PIL mode instead:

    "RGB"                         as is
    "L", "1"                      the grey copied to R, G and B ("1": 0 or 255)
    "I;16", "I;16L/B/N"           16-bit grey: round(v / 257), so 0..65535 -> 0..255
    "I"                           32-bit integer (older Pillow's mode for 16-bit PNGs): as
                                  "I;16" when every value is in 0..65535, else an error
    "P", "PA"                     the palette's colours; entries marked transparent (PNG tRNS)
                                  and the "PA" alpha are composited as below
    "LA", "RGBA", "RGBa"          alpha composited on ALPHA_BACKGROUND (white):
                                  round(a * colour + (1 - a) * 255) with a = alpha / 255
    "CMYK"                        round((255 - C) * (255 - K) / 255) for R (M, Y for G, B);
                                  no colour profile is applied
    "RGBX", "YCbCr", "LAB", "HSV" PIL's convert("RGB") (8-bit to 8-bit, nothing clips)
    anything else ("F", ...)      an error naming the mode

16-bit RGB(A) PNGs reach us as 8-bit "RGB"/"RGBA": Pillow's PNG decoder keeps the high byte of
each sample (floor(v / 256)), which is proportional, not clipped. `read_rgb(path, modes)` counts
the modes it met; `log_conversions` writes one log line per converted mode.
"""
from __future__ import annotations

import collections
import logging

import numpy as np
from PIL import Image, ImageOps

logger = logging.getLogger("gem_jax.data")

ALPHA_BACKGROUND = (255, 255, 255)  # white: what transparent parts look like on a web page
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")
_VIA_RGBA = ("P", "PA", "LA", "RGBA", "RGBa")
_VIA_PIL = ("1", "L", "RGBX", "YCbCr", "LAB", "HSV")
_NOTES = {
    "I;16": "16-bit grey scaled 0..65535 -> 0..255", "I": "integer grey scaled 0..65535 -> 0..255",
    "P": "palette colours, transparent entries composited on white",
    "PA": "palette colours with alpha, composited on white",
    "LA": "grey with alpha, composited on white", "RGBA": "alpha composited on white",
    "RGBa": "premultiplied alpha composited on white", "CMYK": "CMYK to RGB, no colour profile",
    "L": "grey copied to R, G and B", "1": "black and white copied to R, G and B",
}
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


class UnreadableImageError(ValueError):
  """One or more image files cannot be decoded; the message names them."""


def _scale_16bit(values: np.ndarray, mode: str) -> np.ndarray:
  """uint16 (or int32 for mode "I") [H, W] in 0..65535 -> uint8 [H, W], round(v / 257)."""
  low, high = int(values.min(initial=0)), int(values.max(initial=0))
  if low < 0 or high > 65535:
    raise ValueError(f"PIL mode {mode!r} image has values {low}..{high}, outside the 16-bit "
                     "range 0..65535; convert it to 8- or 16-bit first")
  return np.rint(values.astype(np.float64) / 257.0).astype(np.uint8)


def _composite(rgba: np.ndarray, background) -> np.ndarray:
  """uint8 [H, W, 4] -> uint8 [H, W, 3]: alpha blended onto an RGB background (0..255)."""
  alpha = rgba[..., 3:].astype(np.float64) / 255.0
  mixed = rgba[..., :3] * alpha + np.asarray(background, np.float64) * (1.0 - alpha)
  return np.rint(mixed).astype(np.uint8)


def _cmyk(cmyk: np.ndarray) -> np.ndarray:
  """uint8 [H, W, 4] CMYK -> uint8 [H, W, 3]: (255 - C) * (255 - K) / 255, rounded."""
  ink = 255.0 - cmyk.astype(np.float64)
  return np.rint(ink[..., :3] * ink[..., 3:] / 255.0).astype(np.uint8)


def to_rgb8(image: Image.Image, background=ALPHA_BACKGROUND) -> np.ndarray:
  """A PIL image of any supported mode (module docstring) -> uint8 [H, W, 3].

  Args:
    image: the decoded image.
    background: RGB 0..255 that transparent pixels are composited on.
  Raises:
    ValueError: for an unsupported mode, or mode "I" values outside 0..65535.
  """
  mode = image.mode
  if mode in _SIXTEEN_BIT or mode == "I":
    grey = _scale_16bit(np.asarray(image), mode)
    return np.repeat(grey[..., None], 3, axis=-1)
  if mode == "RGB":
    return np.asarray(image, dtype=np.uint8)
  if mode in _VIA_RGBA:
    return _composite(np.asarray(image.convert("RGBA"), dtype=np.uint8), background)
  if mode == "CMYK":
    return _cmyk(np.asarray(image, dtype=np.uint8))
  if mode in _VIA_PIL:
    return np.asarray(image.convert("RGB"), dtype=np.uint8)
  raise ValueError(f"unsupported PIL image mode {mode!r} (supported: RGB, L, 1, I;16, I, P, PA, "
                   "LA, RGBA, CMYK, RGBX, YCbCr, LAB, HSV)")


def read_rgb(path, modes: collections.Counter | None = None) -> np.ndarray:
  """Decodes an image file to uint8 [H, W, 3] (EXIF orientation applied, `to_rgb8`).

  Args:
    path: the image file.
    modes: if given, modes[PIL mode] is incremented for this file.
  Raises:
    UnreadableImageError: naming the file, when it is not a decodable image.
  """
  try:
    with Image.open(path) as image:
      image = ImageOps.exif_transpose(image)
      if modes is not None:
        modes[image.mode] += 1
      return to_rgb8(image)
  except _DECODE_ERRORS as err:
    raise UnreadableImageError(f"cannot decode image {path}: {err}") from err


def log_conversions(modes: collections.Counter, where: str) -> None:
  """One INFO line per non-RGB mode in `modes`: how many images, and what was done to them."""
  for mode, count in sorted(modes.items()):
    if mode != "RGB":
      note = _NOTES.get("I;16" if mode in _SIXTEEN_BIT else mode, "converted by PIL")
      logger.info("%s: %d image(s) of PIL mode %s decoded to 8-bit RGB (%s)", where, count, mode,
                  note)
