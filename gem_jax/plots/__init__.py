"""Figures: image grids and labelled traversals (`images`), heatmaps of relation matrices
(`relations`). The bottom package: numpy, PIL and (lazily) matplotlib only."""
from gem_jax.plots.images import (
    image_grid,
    save_face_traversals,
    save_image,
    save_traversal_figure,
    to_uint8,
)
from gem_jax.plots.relations import (
    Panel,
    draw_relation_matrix,
    save_relation_panels,
    save_somers_d_heatmap,
)

__all__ = [
    "Panel",
    "draw_relation_matrix",
    "image_grid",
    "save_face_traversals",
    "save_image",
    "save_relation_panels",
    "save_somers_d_heatmap",
    "save_traversal_figure",
    "to_uint8",
]
