"""Drawing one pendulum scene with PIL: uint8 [size, size, 3].

The scene (scm.py) is drawn at SUPERSAMPLE times the output size and shrunk with a box filter
(each output pixel the mean of SUPERSAMPLE^2 drawn ones), which anti-aliases the edges. The
picture shows scene x and y in VIEW = [-1, 21] on a white background, at one scale on both
axes; from back to front: the sun (orange disc of radius SUN_RADIUS at the light position,
height SUN_HEIGHT; cut by the top edge), the rod (black, ROD_WIDTH wide) from the pivot to the
bob's centre, the bob (firebrick disc of radius BOB_RADIUS) and the shadow (a black bar
SHADOW_WIDTH thick on the ground line, from shadow_position - shadow_length / 2 to
shadow_position + shadow_length / 2; parts beyond the picture are cut).
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from gem_jax.data.pendulum.scm import (
  BOB_RADIUS,
  GROUND,
  PIVOT_X,
  PIVOT_Y,
  ROD,
  SUN_HEIGHT,
  SUN_RADIUS,
  shadows,
)

VIEW = (-1.0, 21.0)         # scene units shown on both axes
SUPERSAMPLE = 4
ROD_WIDTH = 0.5             # scene units
SHADOW_WIDTH = 0.8          # scene units
BACKGROUND = (255, 255, 255)
SUN = (255, 165, 0)         # orange
ROD_COLOUR = (0, 0, 0)
BOB = (178, 34, 34)         # firebrick
SHADOW = (0, 0, 0)


def render_scene(angle_deg: float, light_x: float, size: int = 64) -> np.ndarray:
  """The scene with the given pendulum angle (degrees) and light position (the sun's x) as
  uint8 [size, size, 3]."""
  big = size * SUPERSAMPLE
  scale = big / (VIEW[1] - VIEW[0])

  def px(x: float, y: float) -> tuple[float, float]:
    return (x - VIEW[0]) * scale, (VIEW[1] - y) * scale

  def disc(x: float, y: float, radius: float, colour) -> None:
    (left, top), (right, bottom) = px(x - radius, y + radius), px(x + radius, y - radius)
    draw.ellipse([left, top, right, bottom], fill=colour)

  image = Image.new("RGB", (big, big), BACKGROUND)
  draw = ImageDraw.Draw(image)
  theta = np.radians(angle_deg)
  bob_x, bob_y = PIVOT_X + ROD * np.sin(theta), PIVOT_Y - ROD * np.cos(theta)
  disc(light_x, SUN_HEIGHT, SUN_RADIUS, SUN)
  draw.line([px(PIVOT_X, PIVOT_Y), px(bob_x, bob_y)], fill=ROD_COLOUR,
            width=max(1, round(ROD_WIDTH * scale)))
  disc(bob_x, bob_y, BOB_RADIUS, BOB)
  length, position = shadows([angle_deg], [light_x])[0]
  draw.rectangle([px(position - length / 2, GROUND + SHADOW_WIDTH / 2),
                  px(position + length / 2, GROUND - SHADOW_WIDTH / 2)], fill=SHADOW)
  return np.asarray(image.resize((size, size), Image.BOX), np.uint8)
