"""MLLM-like error models of the oracle SIMULATION (`OracleScorer`; docs/scorers.md).

Every draw is a deterministic function of (seed, image sha256, attribute name) and of the
oracle's label lookup (never of the batch). On top of the per-attribute accuracy, the errors
are made systematic, as a real MLLM's are:

  calibrated  a wrong answer is the truth t miscalibrated: x = c + compression * (t - c) + bias
              (c = (L - 1) / 2, the scale's centre), stochastically rounded, clipped to 0..L-1;
              when that lands on t, the neighbour of t towards x (`calibrated_wrong`).
  confusion   a wrong answer read from the attribute whose labels correlate most with this
              one's (|Spearman| over the lookup; the halo effect), mirrored L-1-level when the
              correlation is negative (`confusion_sources`).
  visibility  more errors on low-contrast / dark images (quantile-normalised over the lookup,
              `image_difficulty`) and on weak levels (`weakness`), whose errors read the
              attribute as absent or lower; the per-attribute error rate is rescaled to stay at
              its target on average over the lookup (`error_scale`).
  missing     a whole image unanswered (-1), as a real scorer's refusal after its re-asks.

Accuracies are in [0, 1]; levels are integers 0..L-1 (L = num_levels, 6 in the paper).
"""

from __future__ import annotations

import hashlib
import numbers
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

__all__ = [
    "ERROR_MODELS",
    "LEGACY_ERROR_MODELS",
    "REALISTIC",
    "Rates",
    "calibrated_wrong",
    "confusion_sources",
    "error_scale",
    "fraction",
    "image_difficulty",
    "needs_pixels",
    "pixel_stats",
    "preset_accuracies",
    "rates",
    "spearman_matrix",
    "unit",
    "weakness",
]

ERROR_MODELS = ("uniform", "adjacent", "calibrated", "realistic")
LEGACY_ERROR_MODELS = ("uniform", "adjacent")  # the oracle's first two, kept draw for draw
# The `realistic` preset: per-attribute accuracies target +- accuracy_spread (from the names,
# re-centred on the target), calibrated wrong answers, halo confusion, visibility, refusals.
REALISTIC = {
    "accuracy_spread": 0.06,
    "bias": -0.25,        # levels: wrong answers lean towards "less of it"
    "compression": 0.75,  # wrong answers pulled towards the scale's centre
    "confusion": 0.25,    # share of wrong answers read from the most correlated attribute
    "visibility": 0.5,    # error-rate modulation by image contrast/brightness and weak levels
    "missing_rate": 0.02,  # share of images with no answer at all (-1)
}
_LUMA = np.array([0.299, 0.587, 0.114])
Rates = Union[float, Mapping[str, float]]  # one value for every attribute, or {name: value}


def rates(value: Rates, names: Sequence[str], what: str) -> dict[str, float]:
  """{name: value in [0, 1]} from one number (every name) or a mapping (the names it has)."""
  if isinstance(value, Mapping):
    unknown = [k for k in value if k not in names]
    if unknown:
      raise ValueError(f"{what} names attributes {unknown} that the oracle has no labels for; "
                       f"it knows {list(names)}")
    out = {str(k): v for k, v in value.items()}
  else:
    out = {n: value for n in names}
  bad = {k: v for k, v in out.items()
         if not isinstance(v, numbers.Real) or isinstance(v, bool) or not 0.0 <= v <= 1.0}
  if bad:
    raise ValueError(f"{what} must be a number in [0, 1] (or {{attribute: number}}), got {bad}")
  return {k: float(v) for k, v in out.items()}


def fraction(value: Any, what: str) -> float:
  """A share in [0, 1) (ValueError naming `what` otherwise)."""
  if not isinstance(value, numbers.Real) or isinstance(value, bool) or not 0.0 <= value < 1.0:
    raise ValueError(f"{what} must be a number in [0, 1), got {value!r}")
  return float(value)


def needs_pixels(options: Mapping[str, Any]) -> bool:
  """Whether an oracle built with these keyword options has visibility errors."""
  if options.get("visibility") is not None:
    return bool(options["visibility"])
  return options.get("error_model") == "realistic"


def unit(digest: bytes, index: int) -> float:
  """The index-th 64-bit word of a sha256 digest as a float in [0, 1) (index 0..3)."""
  return int.from_bytes(digest[8 * index:8 * index + 8], "little") / 2.0**64


def preset_accuracies(names: Sequence[str], target: float, spread: float) -> dict[str, float]:
  """{name: accuracy}: target + s * (z_a - mean z) / max |z - mean z|, z_a in [-1, 1) from
  sha256 of the name, s = min(spread, target, 1 - target): spread over [target - s,
  target + s], mean `target` (to 1e-6, the rounding), the same for a name whatever the
  data set (re-centred over `names`)."""
  z = np.array([2 * unit(hashlib.sha256(f"oracle-accuracy|{n}".encode()).digest(), 0) - 1
                for n in names])
  z = z - z.mean() if len(z) else z
  top = np.abs(z).max() if len(z) else 0.0
  s = min(float(spread), float(target), 1.0 - float(target))
  scaled = z / top if top > 0 else z
  return {str(n): round(float(target + s * v), 6) for n, v in zip(names, scaled)}


def pixel_stats(images: np.ndarray) -> np.ndarray:
  """float64 [N, 2]: (contrast, brightness) of uint8 images [N, H, W, 3]: the standard
  deviation and the mean of the luma 0.299 R + 0.587 G + 0.114 B, in [0, 1]."""
  out = np.zeros((len(images), 2))
  for start in range(0, len(images), 256):  # 256 images at a time: bounded memory
    chunk = np.asarray(images[start:start + 256], np.float64) / 255.0
    luma = np.tensordot(chunk, _LUMA, axes=([-1], [0])).reshape(len(chunk), -1)
    out[start:start + len(chunk)] = np.stack([luma.std(axis=1), luma.mean(axis=1)], axis=1)
  return out


def _quantile_position(values: np.ndarray) -> np.ndarray:
  """Mid-rank position in [0, 1) of each value among all of them: (#below + #equal / 2) / M."""
  order = np.sort(values)
  below = np.searchsorted(order, values, side="left")
  upto = np.searchsorted(order, values, side="right")
  return (below + (upto - below) / 2.0) / len(values)


def image_difficulty(stats: np.ndarray) -> np.ndarray:
  """float64 [M] in [0, 1]: 1 - the mean quantile position of an image's contrast and its
  brightness among the M lookup images (`pixel_stats` [M, 2]); mean 0.5; 1 = the lowest."""
  stats = np.asarray(stats, np.float64)
  if len(stats) == 0:
    return np.zeros(0)
  return 1.0 - 0.5 * (_quantile_position(stats[:, 0]) + _quantile_position(stats[:, 1]))


def weakness(level: int, num_levels: int) -> float:
  """How weakly a level shows: (W - level + 1) / W for 1 <= level <= W = (L - 1) // 2, else 0
  (L = 6: level 1 -> 1, level 2 -> 0.5; absent (0) and strong levels -> 0)."""
  w = (num_levels - 1) // 2
  return (w - level + 1) / w if 1 <= level <= w else 0.0


def _midranks(column: np.ndarray) -> np.ndarray:
  order = np.sort(column)
  return (np.searchsorted(order, column, "left") + np.searchsorted(order, column, "right")
          + 1) / 2.0


def spearman_matrix(levels: np.ndarray) -> np.ndarray:
  """float64 [n, n] Spearman correlation of the columns of `levels` [M, n] (mid-ranks for
  ties); 0 where a column is constant (all 0 for fewer than 2 rows)."""
  levels = np.asarray(levels, np.float64)
  rho = np.zeros((levels.shape[1], levels.shape[1]))
  if len(levels) < 2:
    return rho
  ranks = np.stack([_midranks(c) for c in levels.T], axis=1)
  ranks = ranks - ranks.mean(axis=0)
  norm = np.sqrt((ranks**2).sum(axis=0))
  ok = norm > 0
  rho[np.ix_(ok, ok)] = (ranks[:, ok].T @ ranks[:, ok]) / np.outer(norm[ok], norm[ok])
  return rho


def confusion_sources(levels: np.ndarray, names: Sequence[str],
                      override: Optional[Mapping[str, str]] = None
                      ) -> dict[str, tuple[str, int]]:
  """{a: (b, sign)}: the attribute b != a whose label column has the largest |Spearman| with
  a's over the lookup levels [M, n] (first on ties; none for a when all are 0), sign +1 or -1
  that correlation's (-1: b's level is read mirrored). override {a: b} picks b (its sign still
  from the correlation, +1 when 0)."""
  names = [str(n) for n in names]
  rho = spearman_matrix(levels)
  np.fill_diagonal(rho, 0.0)
  out: dict[str, tuple[str, int]] = {}
  for j, a in enumerate(names):
    k = int(np.argmax(np.abs(rho[j])))
    if abs(rho[j, k]) > 0:
      out[a] = (names[k], 1 if rho[j, k] > 0 else -1)
  for a, b in (override or {}).items():
    if a not in names or b not in names or a == b:
      raise ValueError(f"confusion_source {a!r} -> {b!r}: both must be distinct attributes "
                       f"of the oracle's labels {names}")
    r = rho[names.index(a), names.index(b)]
    out[str(a)] = (str(b), -1 if r < 0 else 1)
  return out


def error_scale(weights: np.ndarray, error_rate: float) -> float:
  """k >= 0 with mean(min(1, k * weights)) = error_rate (bisection to 1e-12), so errors
  weighted by `weights` [M] (> 0) keep the target rate on average over the M images."""
  weights = np.asarray(weights, np.float64)
  if error_rate <= 0 or len(weights) == 0:
    return 0.0
  lo, hi = 0.0, 1.0 / weights.min()
  if error_rate >= 1:
    return hi
  for _ in range(200):
    mid = 0.5 * (lo + hi)
    if np.minimum(1.0, mid * weights).mean() < error_rate:
      lo = mid
    else:
      hi = mid
    if hi - lo < 1e-12 * hi:
      break
  return 0.5 * (lo + hi)


def calibrated_wrong(true_level: int, bias: float, compression: float, num_levels: int,
                     u_round: float, u_direction: float) -> int:
  """A wrong level (never `true_level`) from the miscalibrated reading
  x = c + compression * (t - c) + bias, c = (L - 1) / 2: R = clip(floor(x) + [u_round <
  frac(x)], 0, L-1) when R != t, else t + d with d the sign of x - t (a fair draw from
  u_direction when x == t), or t - d when t + d is off the scale. E[answer] = x when
  1 <= |x - t| and 0 <= x <= L-1."""
  t, top = int(true_level), num_levels - 1
  x = top / 2.0 + compression * (t - top / 2.0) + bias
  r = int(np.floor(x)) + (1 if u_round < x - np.floor(x) else 0)
  r = min(max(r, 0), top)
  if r != t:
    return r
  d = 1 if x > t else -1 if x < t else (1 if u_direction < 0.5 else -1)
  return t + d if 0 <= t + d <= top else t - d
