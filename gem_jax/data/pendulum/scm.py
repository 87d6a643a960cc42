"""The pendulum scene of CausalVAE (Yang et al., CVPR 2021): geometry and structural equations.

Scene units, x to the right and y up. A rod of length ROD hangs from the pivot PIVOT and ends
in a bob of radius BOB_RADIUS; a sun sits at height SUN_HEIGHT on the line through the pivot at
the light angle phi; parallel rays at that angle throw the shadow of the rod and bob onto the
ground line y = GROUND.

Causes, independent, on a grid (generation order: angle outer, light inner):
  angle index i = -40..43 (84 values):        theta = i * pi / 200  (-36.0 .. +38.7 degrees)
  light index j = 60..147 without 100 (87):   phi = j * pi / 200    (54.0 .. 132.3 degrees;
                                              j = 100, the sun straight above, is left out)
  84 * 87 = 7,308 scenes.
Concepts (the columns of labels.csv), with c = cot(phi) and r = ROD + BOB_RADIUS (the far
edge of the bob):
  pendulum_angle  = theta in degrees
  light_position  = PIVOT_X + (SUN_HEIGHT - PIVOT_Y) c                  (the sun's x)
  near            = PIVOT_X + (GROUND - PIVOT_Y) c                      (the pivot's shadow)
  far             = PIVOT_X + r sin(theta) + (GROUND - PIVOT_Y + r cos(theta)) c
  shadow_length   = max(MIN_SHADOW, |far - near|) = max(3, r |sin(theta) + c cos(theta)|)
  shadow_position = (near + far) / 2                                    (the shadow's centre)
so each shadow concept is a function of both causes. Split as published: the 5th scene and
every 4th after it go to `test` (the published loop resets its counter to 0 and adds 1 in
the same pass), 1,826 scenes; the other 5,482 to `train`.
"""
from __future__ import annotations

import numpy as np

CONCEPTS: tuple[str, ...] = ("pendulum_angle", "light_position", "shadow_length",
                             "shadow_position")
PIVOT_X, PIVOT_Y = 10.0, 10.5
ROD = 8.0                 # pivot to bob centre
BOB_RADIUS = 1.5
SUN_HEIGHT = 20.5
SUN_RADIUS = 3.0
GROUND = -0.5
MIN_SHADOW = 3.0          # the shortest shadow drawn (and labelled)
ANGLE_STEP = np.pi / 200  # radians per grid step, for both causes
ANGLE_INDICES = tuple(range(-40, 44))
LIGHT_INDICES = tuple(j for j in range(60, 148) if j != 100)
NUM_SCENES = len(ANGLE_INDICES) * len(LIGHT_INDICES)  # 7,308
TEST_PERIOD = 4           # scenes 4, 8, 12, ... (0-based) go to test
# Edges (parent, child, weight): the sign of each cause's average effect over the 7,308 scenes
# (tests/test_pendulum.py measures it with `counterfactual_levels`). A larger angle moves the
# shadow right, a sun further right moves it left: both monotone. The effects on the length
# change sign inside the grid (the shadow is shortest, MIN_SHADOW, when the rod points along
# the rays) and average slightly negative for both causes (Spearman -0.05 and -0.08).
GRAPH_EDGES: tuple[tuple[str, str, float], ...] = (
    ("pendulum_angle", "shadow_length", -1.0),
    ("pendulum_angle", "shadow_position", 1.0),
    ("light_position", "shadow_length", -1.0),
    ("light_position", "shadow_position", -1.0),
)
CAUSES = (0, 1)           # columns of pendulum_angle and light_position
EFFECTS = (2, 3)          # columns of shadow_length and shadow_position


def true_graph() -> np.ndarray:
  """GRAPH_EDGES as float32 [4, 4] over CONCEPTS (row = parent)."""
  graph = np.zeros((len(CONCEPTS), len(CONCEPTS)), np.float32)
  for parent, child, weight in GRAPH_EDGES:
    graph[CONCEPTS.index(parent), CONCEPTS.index(child)] = weight
  return graph


def scene_grid() -> tuple[np.ndarray, np.ndarray]:
  """(angle index int [7308], light index int [7308]) in generation order."""
  angles, lights = np.meshgrid(ANGLE_INDICES, LIGHT_INDICES, indexing="ij")
  return angles.ravel(), lights.ravel()


def is_test(scene: np.ndarray) -> np.ndarray:
  """bool [N]: whether each scene (0-based generation index) is in the published test split."""
  scene = np.asarray(scene)
  return (scene > 0) & (scene % TEST_PERIOD == 0)


def angle_degrees(angle_index) -> np.ndarray:
  """pendulum_angle in degrees of angle indices [N]."""
  return np.degrees(np.asarray(angle_index) * ANGLE_STEP)


def light_position(light_index) -> np.ndarray:
  """light_position (the sun's x, scene units) of light indices [N]."""
  phi = np.asarray(light_index) * ANGLE_STEP
  return PIVOT_X + (SUN_HEIGHT - PIVOT_Y) / np.tan(phi)


def shadow_ends(angle_deg, light_x) -> tuple[np.ndarray, np.ndarray]:
  """(near, far) x of the shadow on the ground [N]: the pivot's and the bob's far edge's."""
  theta = np.radians(np.asarray(angle_deg, np.float64))
  cot = (np.asarray(light_x, np.float64) - PIVOT_X) / (SUN_HEIGHT - PIVOT_Y)
  reach = ROD + BOB_RADIUS
  near = PIVOT_X + (GROUND - PIVOT_Y) * cot
  far = PIVOT_X + reach * np.sin(theta) + (GROUND - PIVOT_Y + reach * np.cos(theta)) * cot
  return near, far


def shadows(angle_deg, light_x) -> np.ndarray:
  """The structural equations: float64 [N, 2] = (shadow_length, shadow_position) of the
  causes' values (degrees, the sun's x)."""
  near, far = shadow_ends(angle_deg, light_x)
  return np.stack([np.maximum(MIN_SHADOW, np.abs(far - near)), (near + far) / 2], axis=1)


def concept_values(angle_deg, light_x) -> np.ndarray:
  """float64 [N, 4]: the CONCEPTS of scenes given their causes' values."""
  angle_deg, light_x = np.asarray(angle_deg, np.float64), np.asarray(light_x, np.float64)
  return np.concatenate([np.stack([angle_deg, light_x], axis=1), shadows(angle_deg, light_x)],
                        axis=1)


def grid_values() -> tuple[np.ndarray, np.ndarray]:
  """(concept values float64 [7308, 4], test mask bool [7308]) of every scene, in order."""
  angles, lights = scene_grid()
  values = concept_values(angle_degrees(angles), light_position(lights))
  return values, is_test(np.arange(NUM_SCENES))
