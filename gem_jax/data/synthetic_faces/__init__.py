"""`synthetic_faces`: cartoon faces drawn from a small structural causal model (SCM).

    scm.py      the SCM: ATTRIBUTES (6, levels 0..NUM_LEVELS-1), NUISANCE, TRUE_GRAPH [6, 6],
                INDEPENDENT_PAIRS, sample_factors(seed, n) -> (int32 [n, 6], float32 [n, 12])
    render.py   the renderer: render(attributes, factors) -> uint8 [n, 64, 64, 3];
                generate(seed, n) samples and draws
    builder.py  the tfds builder `synthetic_faces` (registered by `import gem_jax.data`)

Everything is plain numpy and deterministic given a seed. The exact model and drawing are
documented in `docs/synthetic_faces.md`; this package re-exports the public names of
`scm` and `render`.
"""

from gem_jax.data.synthetic_faces.render import (
  BEARD_DARK,
  BLUSH,
  EYE_WHITE,
  EYESHADOW,
  FACE_SCALE,
  HAIR_PALETTE,
  IMAGE_SIZE,
  LIPSTICK,
  PUPIL,
  SHIRT,
  SKIN_DARK,
  SKIN_LIGHT,
  coverage,
  crop,
  ellipse_sdf,
  generate,
  hair_colour,
  hsv_to_rgb,
  make_frame,
  paint,
  render,
  render_planes,
  superellipse_sdf,
  to_uint8,
  window,
)
from gem_jax.data.synthetic_faces.scm import (
  ATTRIBUTES,
  BACKGROUND_VALUE_RANGE,
  FACTOR_NAMES,
  INDEPENDENT_PAIRS,
  INTERCEPT,
  NOISE_SCALE,
  NUISANCE,
  NUM_LEVELS,
  SCALE_RANGE,
  SHIFT_MAX_PX,
  TOPOLOGICAL_ORDER,
  TRUE_GRAPH,
  sample_factors,
)

__all__ = [
    # scm
    "ATTRIBUTES", "BACKGROUND_VALUE_RANGE", "FACTOR_NAMES", "INDEPENDENT_PAIRS", "INTERCEPT",
    "NOISE_SCALE", "NUISANCE", "NUM_LEVELS", "SCALE_RANGE", "SHIFT_MAX_PX", "TOPOLOGICAL_ORDER",
    "TRUE_GRAPH", "sample_factors",
    # render
    "BEARD_DARK", "BLUSH", "EYE_WHITE", "EYESHADOW", "FACE_SCALE", "HAIR_PALETTE", "IMAGE_SIZE",
    "LIPSTICK", "PUPIL", "SHIRT", "SKIN_DARK", "SKIN_LIGHT", "coverage", "crop", "ellipse_sdf",
    "generate", "hair_colour", "hsv_to_rgb", "make_frame", "paint", "render", "render_planes",
    "superellipse_sdf", "to_uint8", "window",
]
