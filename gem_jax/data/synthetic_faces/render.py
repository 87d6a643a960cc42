"""The `synthetic_faces` renderer: the SCM's attributes and nuisance factors as cartoon faces.

Plain numpy and deterministic: `render(attributes [n, 6], factors [n, 12])` draws anti-aliased
uint8 [n, 64, 64, 3] images (any size; the geometry is defined at 64x64), and
`generate(seed, n)` samples factors from the SCM (`scm.sample_factors`) and draws them. The
geometry and colours are documented in `docs/synthetic_faces.md`.
"""

from __future__ import annotations

import concurrent.futures
import os
from typing import NamedTuple

import numpy as np

from gem_jax.data.synthetic_faces.scm import (
  ATTRIBUTES,
  FACTOR_NAMES,
  NUISANCE,
  NUM_LEVELS,
  sample_factors,
)

IMAGE_SIZE = 64


# ----------------------------------------------------------------------------- colours

# Hair colour per blond level 0..5: black-brown, brown, chestnut, dark blond, blond, platinum.
HAIR_PALETTE = np.array(
    [
        [0.14, 0.09, 0.06],
        [0.30, 0.18, 0.10],
        [0.48, 0.31, 0.15],
        [0.68, 0.50, 0.25],
        [0.85, 0.69, 0.36],
        [0.98, 0.88, 0.52],
    ],
    np.float32,
)
SKIN_LIGHT = np.array([0.99, 0.84, 0.72], np.float32)
SKIN_DARK = np.array([0.62, 0.42, 0.29], np.float32)
SHIRT = np.array([0.22, 0.27, 0.38], np.float32)
BEARD_DARK = np.array([0.12, 0.08, 0.05], np.float32)
LIPSTICK = np.array([0.85, 0.05, 0.18], np.float32)
EYESHADOW = np.array([0.45, 0.22, 0.65], np.float32)
BLUSH = np.array([0.96, 0.40, 0.48], np.float32)
EYE_WHITE = np.array([0.97, 0.97, 0.97], np.float32)
PUPIL = np.array([0.10, 0.12, 0.18], np.float32)


def hair_colour(blond: np.ndarray) -> np.ndarray:
  """Hair RGB in [0, 1], float32 [B, 3], piecewise-linear in the blond level [B] (0..5)."""
  levels = np.arange(NUM_LEVELS, dtype=np.float32)
  return np.stack([np.interp(blond, levels, HAIR_PALETTE[:, c]) for c in range(3)], axis=-1).astype(
      np.float32
  )


def hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
  """HSV (each [B], in [0, 1]) to RGB float32 [B, 3] in [0, 1]."""
  k = np.array([5.0, 3.0, 1.0], np.float32)
  t = np.mod(k[None, :] + 6.0 * h[:, None], 6.0)
  ramp = np.clip(np.minimum(t, 4.0 - t), 0.0, 1.0)
  return (v[:, None] - v[:, None] * s[:, None] * ramp).astype(np.float32)


# ----------------------------------------------------------------------------- drawing primitives
#
# Shapes are signed distances (negative inside) in the canonical frame: the origin is the
# frame centre, y points down, and one canonical unit is FACE_SCALE pixels of a 64x64 image
# when the nuisance `scale` is 1. Grids are separable: x is [B, 1, W] and y is [B, H, 1], so
# per-axis work is cheap and only the combination is [B, H, W]. Images are drawn as
# channel-first float planes [3, B, H, W] in [0, 1] (contiguous per channel, which is ~8x
# faster to composite than [B, H, W, 3] in numpy).

FACE_SCALE = 1.12  # pixels (at 64x64) per canonical unit


class _Frame(NamedTuple):
  """Sampling grid of one batch: x [B,1,S], y [B,S,1] canonical; ppu [B,1,1] pixels/unit."""

  x: np.ndarray
  y: np.ndarray
  ppu: np.ndarray
  shift_x: np.ndarray  # [B] pixels at 64
  shift_y: np.ndarray  # [B] pixels at 64
  zoom: np.ndarray  # [B] pixels at 64 per canonical unit
  size: int


def _c(v) -> np.ndarray:
  """Per-image scalar [B] -> broadcastable [B, 1, 1] float32."""
  return np.asarray(v, np.float32)[:, None, None]


def make_frame(shift_x: np.ndarray, shift_y: np.ndarray, scale: np.ndarray, size: int) -> _Frame:
  """Canonical coordinates of the pixel centres of a [B, size, size] batch.

  shift_x, shift_y: [B] translation in pixels of the 64x64 frame; scale: [B] zoom factor.
  """
  k = size / IMAGE_SIZE
  zoom = np.asarray(scale, np.float32) * FACE_SCALE
  pix = ((np.arange(size, dtype=np.float32) + 0.5) / k - IMAGE_SIZE / 2).astype(np.float32)
  x = (pix[None, None, :] - _c(shift_x)) / _c(zoom)
  y = (pix[None, :, None] - _c(shift_y)) / _c(zoom)
  return _Frame(x, y, _c(zoom * k), np.asarray(shift_x), np.asarray(shift_y), zoom, size)


def window(frame: _Frame, bbox: tuple[float, float, float, float]) -> tuple[slice, slice]:
  """Pixel rows and columns that hold the canonical box (x0, x1, y0, y1) in every image."""
  x0, x1, y0, y1 = bbox
  k = frame.size / IMAGE_SIZE
  xs = np.stack([x0 * frame.zoom, x1 * frame.zoom]) + frame.shift_x + IMAGE_SIZE / 2
  ys = np.stack([y0 * frame.zoom, y1 * frame.zoom]) + frame.shift_y + IMAGE_SIZE / 2
  c0 = min(max(int(np.floor(xs.min() * k)) - 1, 0), frame.size)
  c1 = min(max(int(np.ceil(xs.max() * k)) + 1, c0), frame.size)
  r0 = min(max(int(np.floor(ys.min() * k)) - 1, 0), frame.size)
  r1 = min(max(int(np.ceil(ys.max() * k)) + 1, r0), frame.size)
  return slice(r0, r1), slice(c0, c1)


def crop(frame: _Frame, planes: np.ndarray, bbox) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(x [B,1,w], y [B,h,1], planes view [3,B,h,w]) restricted to `window(frame, bbox)`."""
  rows, cols = window(frame, bbox)
  return frame.x[:, :, cols], frame.y[:, rows, :], planes[:, :, rows, cols]


def ellipse_sdf(x, y, cx, cy, rx, ry) -> np.ndarray:
  """Approximate signed distance to an axis-aligned ellipse, canonical units.

  Uses f / |grad f| with f = u^2 + v^2 - 1 (exact on the boundary, first-order near it),
  which is all anti-aliasing needs. x [B,1,W], y [B,H,1]; centre and radii scalars or
  [B,1,1]. Returns [B,H,W] float32.
  """
  u = (x - cx) / rx
  v = (y - cy) / ry
  gu = u / rx
  gv = v / ry
  f = (u * u - 1.0) + v * v
  g = np.sqrt(gu * gu + gv * gv + 1e-6)
  return f / (2.0 * g)


def superellipse_sdf(x, y, cx, cy, rx, ry, power) -> np.ndarray:
  """Approximate signed distance to |u|^p + |v|^p = 1 (p = 2: ellipse; larger: boxier).

  Same conventions as `ellipse_sdf`; `power` scalar or [B,1,1].
  """
  u = np.abs((x - cx) / rx)
  v = np.abs((y - cy) / ry)
  up = u ** (power - 1.0)
  vp = v ** (power - 1.0)
  f = (up * u - 1.0) + vp * v
  g = np.sqrt((up / rx) ** 2 + (vp / ry) ** 2 + 1e-6)
  return f / (power * g)


def coverage(d: np.ndarray, ppu, feather: float = 1.0) -> np.ndarray:
  """Pixel coverage in [0, 1] of a shape with signed distance `d` (canonical units).

  `ppu` [B,1,1] is output pixels per canonical unit; the edge ramp is `feather` pixels wide,
  which is the anti-aliasing (a box filter of the edge, to first order).
  """
  return np.clip(0.5 - d * (ppu / feather), 0.0, 1.0)


def paint(planes: np.ndarray, alpha: np.ndarray, colour) -> None:
  """In place: planes = planes + alpha * (colour - planes).

  planes [3,B,H,W]; alpha [B,H,W] (or broadcastable); colour RGB [3] or per image [B,3].
  """
  colour = np.asarray(colour, np.float32)
  for ch in range(3):
    plane = planes[ch]
    target = colour[ch] if colour.ndim == 1 else colour[:, ch, None, None]
    delta = target - plane
    delta *= alpha
    plane += delta


# ----------------------------------------------------------------------------- the face
#
# Canonical geometry (documented in docs/synthetic_faces.md): cranium ellipse centre (0, -4),
# radii (15, 17); jaw superellipse centre (0, 3), radii (10.5 + 0.7 g, 14.5 - 0.3 g), power
# 2 + 0.3 g for gender g; eyes at (+-6, -1.5); mouth at (0, 9.5); shoulders below y = 24.

_BOX_SHIRT = (-27.0, 27.0, 23.0, 50.0)
_BOX_NECK = (-6.5, 6.5, 7.0, 31.0)
_BOX_EARS = (-17.5, 17.5, -4.5, 4.5)
_BOX_EYES = (-11.0, 11.0, -8.5, 1.0)
_BOX_CHEEKS = (-14.0, 14.0, 0.5, 8.5)
_BOX_NOSE = (-2.5, 2.5, 2.5, 6.0)
_BOX_MOUTH = (-7.0, 7.0, 7.0, 12.0)
_BOX_HAIR_TOP = (-18.0, 18.0, -24.5, 0.5)
_BOX_BEARD = (-17.0, 17.0, -2.0, 20.0)


def _jaw_sdf(x, y, gender) -> np.ndarray:
  """Lower face: wider, boxier and a little shorter with gender [B] (0..5)."""
  g = _c(gender)
  return superellipse_sdf(x, y, 0.0, 3.0, 10.5 + 0.7 * g, 14.5 - 0.3 * g, 2.0 + 0.3 * g)


def _draw_body(planes, frame: _Frame, gender, hair, skin, background) -> None:
  """Background, shoulders, long hair behind the head, neck, ears, head (skin)."""
  planes[:] = background.T[:, :, None, None]
  x, y, sub = crop(frame, planes, _BOX_SHIRT)
  paint(sub, coverage(ellipse_sdf(x, y, 0.0, 37.0, 26.0, 12.5), frame.ppu), SHIRT)

  # Long hair behind the head: ends lower for lower gender (0: shoulders, 5: hidden).
  hair_end = _c(4.0 + 4.0 * (5.0 - gender))
  d_cut = np.maximum(frame.y - hair_end, -11.0 - frame.y)
  d_back = np.maximum(ellipse_sdf(frame.x, frame.y, 0.0, -1.0, 18.5, 23.0), d_cut)
  paint(planes, coverage(d_back, frame.ppu), hair)

  x, y, sub = crop(frame, planes, _BOX_NECK)
  d_neck = np.maximum(np.abs(x) - 5.5, np.maximum(8.0 - y, y - 30.0))
  paint(sub, coverage(d_neck, frame.ppu), skin * 0.88)
  x, y, sub = crop(frame, planes, _BOX_EARS)
  paint(sub, coverage(ellipse_sdf(np.abs(x), y, 14.6, 0.0, 2.4, 3.8), frame.ppu), skin * 0.95)

  d_cranium = ellipse_sdf(frame.x, frame.y, 0.0, -4.0, 15.0, 17.0)
  d_head = np.minimum(d_cranium, _jaw_sdf(frame.x, frame.y, gender))
  paint(planes, coverage(d_head, frame.ppu), skin)


def _draw_eyes(planes, frame: _Frame, gender, makeup, hair) -> None:
  """Blush and eye shadow (make-up), eye whites, pupils, brows (thicker with gender)."""
  x, y, sub = crop(frame, planes, _BOX_CHEEKS)
  blush = coverage(ellipse_sdf(np.abs(x), y, 8.5, 4.5, 4.0, 2.6), frame.ppu, feather=2.5)
  paint(sub, blush * _c(0.12 * makeup), BLUSH)

  x, y, sub = crop(frame, planes, _BOX_EYES)
  ax = np.abs(x)
  shadow = coverage(ellipse_sdf(ax, y, 6.0, -2.6, 4.0, 2.6), frame.ppu)
  paint(sub, shadow * _c(0.17 * makeup), EYESHADOW)
  paint(sub, coverage(ellipse_sdf(ax, y, 6.0, -1.5, 3.0, 1.8), frame.ppu), EYE_WHITE)
  paint(sub, coverage(ellipse_sdf(ax, y, 6.0, -1.4, 1.35, 1.35), frame.ppu), PUPIL)
  brow = ellipse_sdf(ax, y, 6.2, -5.8, 3.6, _c(0.55 + 0.27 * gender))
  paint(sub, coverage(brow, frame.ppu), hair * 0.55)

  x, y, sub = crop(frame, planes, _BOX_NOSE)
  paint(sub, coverage(ellipse_sdf(x, y, 0.0, 4.2, 1.7, 1.1), frame.ppu) * 0.5, PUPIL)


def _draw_beard_and_mouth(planes, frame: _Frame, gender, beard, makeup, hair, skin) -> None:
  """Beard over the jaw from y_top = 17 - 3.2 level down; lips redden with make-up."""
  x, y, sub = crop(frame, planes, _BOX_BEARD)
  d_face = np.minimum(ellipse_sdf(x, y, 0.0, -4.0, 15.0, 17.0), _jaw_sdf(x, y, gender))
  d_beard = np.maximum(d_face - _c(0.35 * beard), _c(17.0 - 3.2 * beard) - y)
  d_beard = np.maximum(d_beard, -ellipse_sdf(x, y, 0.0, 1.5, 5.5, 4.5))  # spare the nose
  opacity = _c(np.minimum(beard, 1.0) * (0.55 + 0.08 * beard))
  paint(sub, coverage(d_beard, frame.ppu) * opacity, 0.5 * hair + 0.5 * BEARD_DARK)

  x, y, sub = crop(frame, planes, _BOX_MOUTH)
  lip = skin * 0.72 + np.array([0.08, -0.02, -0.02], np.float32)
  lip = lip + (makeup / 5.0)[:, None] * (LIPSTICK - lip)
  d_mouth = ellipse_sdf(x, y, 0.0, 9.5, _c(4.0 + 0.3 * makeup), _c(1.1 + 0.25 * makeup))
  paint(sub, coverage(d_mouth, frame.ppu), lip)


def _draw_top_hair(planes, frame: _Frame, bangs, bald, hair) -> None:
  """Hair cap with a forehead opening, minus a bald patch, plus a fringe over the forehead.

  The bald patch is a superellipse (power 3) centred above the head whose radii grow with
  `bald`; the fringe's lower edge (scalloped, 1.3 deep) sits at y = -12 + 1.5 level (the
  hairline is at y = -13).
  """
  x, y, sub = crop(frame, planes, _BOX_HAIR_TOP)
  d_cap = ellipse_sdf(x, y, 0.0, -5.0, 16.8, 19.0)
  d_opening = ellipse_sdf(x, y, 0.0, 2.0, 13.2, 15.0)
  d_hair = np.maximum(np.maximum(d_cap, -d_opening), y + 1.0)
  d_bald = superellipse_sdf(x, y, 0.0, -23.5, _c(4.0 + 3.6 * bald), _c(2.5 + 2.6 * bald), 3.0)
  # Level 0: no patch. (Clamp first: f/|grad f| is far too negative deep inside.)
  d_bald = np.maximum(d_bald, -5.0) + _c(30.0 * (1.0 - np.minimum(bald, 1.0)))
  d_hair = np.maximum(d_hair, -d_bald)
  fringe_end = _c(np.where(bangs > 0, -12.0 + 1.5 * bangs, -40.0))
  fringe_bottom = fringe_end - 1.3 * np.abs(np.sin(x * (np.pi / 3.5)))
  d_fringe = np.maximum(np.maximum(d_opening - 1.0, d_cap), y - fringe_bottom)
  paint(sub, coverage(np.minimum(d_hair, d_fringe), frame.ppu), hair)
  # A soft highlight where the bald patch shows the scalp.
  shine = coverage(ellipse_sdf(x, y, -5.0, -15.5, 4.0, 2.2), frame.ppu, feather=2.0)
  paint(sub, shine * coverage(d_bald, frame.ppu) * 0.35, np.ones(3, np.float32))


def render_planes(attributes: np.ndarray, factors: np.ndarray, size: int) -> np.ndarray:
  """Draws one batch. attributes [B, 6] levels, factors [B, K]; returns float32 [3, B, S, S]."""
  a = np.asarray(attributes, np.float32)
  f = np.asarray(factors, np.float32)
  bangs, bald, gender, beard, blond, makeup = (a[:, i] for i in range(len(ATTRIBUTES)))
  nz = len(ATTRIBUTES)
  skin_tone, bg_hue, bg_value, sx, sy, scale = (f[:, nz + i] for i in range(len(NUISANCE)))
  frame = make_frame(sx, sy, scale, size)
  hair = hair_colour(blond)
  skin = SKIN_LIGHT[None] + skin_tone[:, None] * (SKIN_DARK - SKIN_LIGHT)[None]
  background = hsv_to_rgb(bg_hue, np.full_like(bg_hue, 0.35), bg_value)

  planes = np.empty((3, a.shape[0], size, size), np.float32)
  _draw_body(planes, frame, gender, hair, skin, background)
  _draw_eyes(planes, frame, gender, makeup, hair)
  _draw_beard_and_mouth(planes, frame, gender, beard, makeup, hair, skin)
  _draw_top_hair(planes, frame, bangs, bald, hair)
  return planes


def to_uint8(planes: np.ndarray, out: np.ndarray) -> None:
  """Writes float planes [3, B, S, S] in [0, 1] into uint8 `out` [B, S, S, 3] (rounded)."""
  planes *= 255.0
  planes += 0.5
  np.clip(planes, 0.0, 255.0, out=planes)
  flat = out.reshape(-1, 3)
  for ch in range(3):
    flat[:, ch] = planes[ch].astype(np.uint8).ravel()


def render(
    attributes: np.ndarray,
    factors: np.ndarray,
    size: int = IMAGE_SIZE,
    batch_size: int = 64,
    num_threads: int | None = None,
) -> np.ndarray:
  """Draws faces, deterministically.

  Args:
    attributes: int [n, 6] levels in 0..5 (`ATTRIBUTES` order); non-integer levels are
      accepted and draw in-between shapes and colours (the fringe appears only above 0).
    factors: float [n, len(FACTOR_NAMES)] from `sample_factors` (only the nuisance columns
      are read; the attribute columns are ignored in favour of `attributes`).
    size: output side in pixels; geometry is defined at 64 and scales with it.
    batch_size: images drawn per numpy pass (64 keeps the working set in cache).
    num_threads: worker threads (numpy releases the GIL); default min(4, cpu count).

  Returns:
    uint8 [n, size, size, 3].
  """
  attributes = np.asarray(attributes)
  factors = np.asarray(factors, np.float32)
  n = attributes.shape[0]
  if attributes.shape != (n, len(ATTRIBUTES)) or factors.shape != (n, len(FACTOR_NAMES)):
    raise ValueError(
        f"expected attributes [n, {len(ATTRIBUTES)}] and factors [n, {len(FACTOR_NAMES)}], "
        f"got {attributes.shape} and {factors.shape}"
    )
  out = np.empty((n, size, size, 3), np.uint8)

  def work(start: int) -> None:
    stop = min(start + batch_size, n)
    planes = render_planes(attributes[start:stop], factors[start:stop], size)
    to_uint8(planes, out[start:stop])

  starts = range(0, n, batch_size)
  threads = num_threads or min(4, os.cpu_count() or 1)
  if threads <= 1 or n <= batch_size:
    for start in starts:
      work(start)
  else:
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
      list(pool.map(work, starts))
  return out


def generate(seed, n: int, batch_size: int = 64, size: int = IMAGE_SIZE) -> dict[str, np.ndarray]:
  """Samples and draws `n` faces.

  Returns:
    dict(image=uint8 [n, size, size, 3], attributes=int32 [n, 6], factors=float32 [n, K]).
  """
  attributes, factors = sample_factors(seed, n)
  images = render(attributes, factors, size=size, batch_size=batch_size)
  return {"image": images, "attributes": attributes, "factors": factors}
