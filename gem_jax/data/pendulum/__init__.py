"""`pendulum`: the CausalVAE pendulum (Yang et al., CVPR 2021), rendered by the project.

    scm.py            the scene's geometry and structural equations: CONCEPTS (pendulum_angle,
                      light_position, shadow_length, shadow_position), GRAPH_EDGES, true_graph(),
                      shadows(angle_deg, light_x) -> [N, 2], grid_values() -> ([7308, 4], test)
    render.py         render_scene(angle_deg, light_x, size) -> uint8 [size, size, 3] (PIL)
    folder.py         write_pendulum_folder(out_dir, ...): PNGs + labels.csv + graph.json
    counterfactual.py PendulumCounterfactual: do(concept := level) with the shadows recomputed
    builder.py        pendulum_builder(config.data) (loads TensorFlow; not re-exported)

The geometry and where it was read are in docs/data.md ('pendulum'); this package re-exports
the public names of scm, render, folder and counterfactual.
"""
from gem_jax.data.pendulum.counterfactual import PendulumCounterfactual
from gem_jax.data.pendulum.folder import (
  FOLDER_NAME,
  SCM_NAME,
  pendulum_dir,
  scene_filename,
  write_pendulum_folder,
)
from gem_jax.data.pendulum.render import render_scene
from gem_jax.data.pendulum.scm import (
  CONCEPTS,
  GRAPH_EDGES,
  NUM_SCENES,
  angle_degrees,
  concept_values,
  grid_values,
  is_test,
  light_position,
  scene_grid,
  shadows,
  true_graph,
)

__all__ = [
    "CONCEPTS", "FOLDER_NAME", "GRAPH_EDGES", "SCM_NAME", "NUM_SCENES", "PendulumCounterfactual",
    "angle_degrees", "concept_values", "grid_values", "is_test", "light_position",
    "pendulum_dir", "render_scene", "scene_filename", "scene_grid", "shadows", "true_graph",
    "write_pendulum_folder",
]
