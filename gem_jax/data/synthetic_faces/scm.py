"""The structural causal model (SCM) behind `synthetic_faces`: attributes, nuisance, TRUE_GRAPH.

The six attributes of the GEM paper (bangs, bald, gender, beard, blond, makeup) are integer
intensities 0..5 sampled by ancestral sampling from a linear-Gaussian SCM whose latent
variables are rounded and clipped; nuisance factors (skin tone, background, position, scale)
are independent of the attributes and of each other. The exact model is documented in
`docs/synthetic_faces.md`; `TRUE_GRAPH` is its directed, signed, weighted relation graph.

Plain numpy and deterministic given a seed: `sample_factors(seed, n)` draws attributes
int32 [n, 6] and factors float32 [n, 12].
"""

from __future__ import annotations

import numpy as np

ATTRIBUTES: tuple[str, ...] = ("bangs", "bald", "gender", "beard", "blond", "makeup")
NUISANCE: tuple[str, ...] = (
    "skin_tone",  # 0 = light .. 1 = brown, linear blend of two skin colours
    "background_hue",  # HSV hue in [0, 1)
    "background_value",  # HSV value (brightness) in [0.55, 0.95]
    "shift_x",  # horizontal translation, pixels of the 64x64 frame, in [-3, 3]
    "shift_y",  # vertical translation, pixels of the 64x64 frame, in [-3, 3]
    "scale",  # isotropic zoom about the frame centre, in [0.92, 1.08]
)
FACTOR_NAMES: tuple[str, ...] = ATTRIBUTES + NUISANCE
NUM_LEVELS = 6  # attribute intensities are 0..5

_A = {name: i for i, name in enumerate(ATTRIBUTES)}


def _true_graph() -> np.ndarray:
  """Structural weights of the SCM, float32 [6, 6]; W[i, j] != 0 means attribute i -> j."""
  w = np.zeros((6, 6), np.float32)
  w[_A["gender"], _A["beard"]] = 1.0  # men grow beards
  w[_A["gender"], _A["makeup"]] = -0.9  # women wear make-up
  w[_A["gender"], _A["bald"]] = 0.7  # men go bald
  w[_A["bald"], _A["bangs"]] = -1.2  # no hair on top, no fringe
  w[_A["blond"], _A["bangs"]] = 0.4  # blond people wear a fringe a little more often
  return w


TRUE_GRAPH: np.ndarray = _true_graph()
TRUE_GRAPH.setflags(write=False)

# latent_i = INTERCEPT[i] + NOISE_SCALE[i] * eps_i + sum_j TRUE_GRAPH[j, i] * a_j,  eps_i ~ N(0, 1)
# a_i = clip(rint(latent_i), 0, 5).  Units: attribute levels.
INTERCEPT = np.array([2.6, -3.0, 2.5, -3.0, 1.8, 4.0], np.float32)
NOISE_SCALE = np.array([1.5, 1.8, 1.7, 1.3, 1.8, 1.4], np.float32)
# Ancestral order (a topological order of TRUE_GRAPH): gender, blond, bald, beard, makeup, bangs.
TOPOLOGICAL_ORDER: tuple[int, ...] = tuple(
    _A[n] for n in ("gender", "blond", "bald", "beard", "makeup", "bangs")
)
# Attribute pairs with no directed path and no common ancestor: independent by construction.
INDEPENDENT_PAIRS: tuple[tuple[str, str], ...] = (
    ("blond", "bald"),
    ("blond", "gender"),
    ("blond", "beard"),
    ("blond", "makeup"),
)

SHIFT_MAX_PX = 3.0
SCALE_RANGE = (0.92, 1.08)
BACKGROUND_VALUE_RANGE = (0.55, 0.95)


# ----------------------------------------------------------------------------- sampling


def sample_factors(seed_or_rng, n: int) -> tuple[np.ndarray, np.ndarray]:
  """Draws `n` faces' ground-truth factors from the SCM.

  Args:
    seed_or_rng: an int seed or a `np.random.Generator` (consumed).
    n: number of samples.

  Returns:
    attributes: int32 [n, 6] in 0..5, in `ATTRIBUTES` order.
    factors: float32 [n, len(FACTOR_NAMES)]: the attributes as floats, then `NUISANCE`.
  """
  rng = np.random.default_rng(seed_or_rng)
  eps = rng.standard_normal((n, len(ATTRIBUTES)))
  attributes = np.zeros((n, len(ATTRIBUTES)), np.float64)
  for i in TOPOLOGICAL_ORDER:
    latent = INTERCEPT[i] + NOISE_SCALE[i] * eps[:, i] + attributes @ TRUE_GRAPH[:, i]
    attributes[:, i] = np.clip(np.rint(latent), 0, NUM_LEVELS - 1)
  nuisance = np.stack(
      [
          rng.uniform(0.0, 1.0, n),
          rng.uniform(0.0, 1.0, n),
          rng.uniform(*BACKGROUND_VALUE_RANGE, n),
          rng.uniform(-SHIFT_MAX_PX, SHIFT_MAX_PX, n),
          rng.uniform(-SHIFT_MAX_PX, SHIFT_MAX_PX, n),
          rng.uniform(*SCALE_RANGE, n),
      ],
      axis=1,
  )
  factors = np.concatenate([attributes, nuisance], axis=1).astype(np.float32)
  return attributes.astype(np.int32), factors
