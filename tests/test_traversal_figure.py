"""The pipeline's traversal figure: contrasting faces, rows labelled with the attribute, truth ρ
and steerability (gem_jax/pipeline_figures.py, gem_jax/plots/images.py)."""
import numpy as np
from PIL import Image

from gem_jax import pipeline_figures
from gem_jax.relations import Alignment, alignment_quality


def test_faces_are_the_median_images_of_brightness_quartiles():
  images = np.zeros((16, 2, 2, 3), np.uint8)
  order = np.random.default_rng(0).permutation(16)
  images[order] = np.arange(16)[:, None, None, None] * 10  # image order[b] has brightness b
  idx = pipeline_figures.contrasting_faces(images, 4)
  np.testing.assert_array_equal(idx, order[[2, 6, 10, 14]])
  np.testing.assert_array_equal(pipeline_figures.contrasting_faces(images, 4), idx)


class _Model:
  """d = 3, 'x' on z0 and 'y' on z2; traverse_all paints latent k's value into channel k."""

  latent_dim = 3

  def __init__(self):
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 6, (200, 2))
    mu = np.stack([scores[:, 0], rng.normal(size=200), scores[:, 1]], 1).astype(float)
    self.alignment = Alignment(attribute_names=("x", "y"), latent_of_attribute=(0, 2),
                               signs=(1.0, 1.0), correlations=np.zeros((3, 2)))
    noisy = mu + rng.normal(scale=2.0, size=mu.shape)  # the truth reads otherwise than scores
    quality = alignment_quality(self.alignment, mu, scores, 0.3, "all", noisy, scores, "truth")
    self.quality = quality.with_steerability({"x": 0.9, "y": 0.5},
                                             {"x": ("y", 0.1), "y": ("x", 0.0)}, "stub")

  def alignment_quality(self):
    return self.quality

  def latent_labels(self):
    return ["plain"] * 3

  def traverse_all(self, image, values):
    out = np.zeros((3, len(values), 8, 8, 3), np.float32)
    for k in range(3):
      out[k, :, :, :, k] = ((np.asarray(values) + 2) / 4)[:, None, None]
    return out


def test_the_figure_labels_rows_with_truth_rho_and_steerability(tmp_path, monkeypatch):
  seen = {}
  real = pipeline_figures.save_face_traversals
  monkeypatch.setattr(pipeline_figures, "save_face_traversals",
                      lambda *a, **k: seen.update(args=a) or real(*a, **k))
  images = np.random.default_rng(1).integers(0, 256, (20, 8, 8, 3), dtype=np.uint8)
  model = _Model()
  pipeline_figures.write_traversals(tmp_path / "t.png", model, images, "title")
  path, grids, values, labels, title, faces = seen["args"]
  assert grids.shape == (4, 3, 5, 8, 8, 3) and list(values) == [-2, -1, 0, 1, 2]
  truth = model.quality.rows[0].truth_spearman
  assert abs(truth - model.quality.rows[0].score_spearman) > 0.05
  assert labels == [f"z0: x (+)\ntrue ρ {truth:.2f} steer 0.90", "z1: free",
                    f"z2: y (+)\ntrue ρ {model.quality.rows[1].truth_spearman:.2f} steer 0.50"]
  assert "steer: share of faces" in title and "(stub)" in title
  assert len(faces) == 4 and faces[0].startswith("face ")
  width, height = Image.open(tmp_path / "t.png").size
  assert width > 2 * height  # four faces side by side
