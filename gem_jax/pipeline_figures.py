"""GEM pipeline's figures: traversals of a few contrasting faces, each row labelled with its
latent's attribute and how well it is carried (truth ρ where known, steerability), and A_0 next
to the learned A and, where the data set knows it, the true graph."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from gem_jax.data import DatasetSpec, get_dataset, load_examples
from gem_jax.data.pipeline import split_size
from gem_jax.plots import Panel, save_face_traversals, save_relation_panels
from gem_jax.relations import AlignmentQuality, traversal_labels
from gem_jax.trained_model import TrainedModel

__all__ = ["write_figures", "write_traversals", "contrasting_faces", "candidate_faces",
           "latent_order_truth", "FACES", "CANDIDATES", "TRAVERSAL_VALUES"]

FACES = 4          # faces in the traversal figure
CANDIDATES = 256   # eval-split images they are chosen from
TRAVERSAL_VALUES = np.linspace(-2.0, 2.0, 5)  # latent values: the guided range -2..+2


def contrasting_faces(images: np.ndarray, num: int = FACES) -> np.ndarray:
  """Indices [num] of images uint8 [M, H, W, 3] that differ in brightness (background, hair,
  skin): the images sorted by mean pixel value and cut into `num` equal bins; from each bin,
  its median image. Deterministic, reads no labels."""
  if not 0 < num <= len(images):
    raise ValueError(f"cannot choose {num} faces from {len(images)} images")
  brightness = np.asarray(images, np.float64).mean(axis=(1, 2, 3))
  bins = np.array_split(np.argsort(brightness, kind="stable"), num)
  return np.array([b[len(b) // 2] for b in bins])


def write_traversals(path: str | Path, model: TrainedModel, images: np.ndarray, title: str,
                     num_faces: int = FACES, quality: AlignmentQuality | None = None) -> None:
  """Traversals (TRAVERSAL_VALUES) of every latent of `num_faces` contrasting faces among
  images uint8 [M, H, W, 3]; rows labelled by `traversal_labels` from `quality` (default the
  model's own table), plain latent labels for a model without an alignment."""
  idx = contrasting_faces(images, num_faces)
  grids = np.stack([model.traverse_all(images[i], TRAVERSAL_VALUES) for i in idx])
  if model.alignment is None:
    labels = model.latent_labels()
  else:
    labels = traversal_labels(model.alignment, quality or model.alignment_quality())
  steer_on = getattr(quality or model.alignment_quality(), "steer_on", None)
  if steer_on:
    title += f"\nsteer: share of faces a traversal raises by >= 1 level ({steer_on})"
  brightness = [f"face {i} (brightness {np.mean(images[i]) / 255:.2f})" for i in idx]
  save_face_traversals(path, grids, TRAVERSAL_VALUES, labels, title, brightness)


def candidate_faces(data_config, split: str) -> np.ndarray:
  """The first CANDIDATES images (at most the split's) of `split`: uint8 [M, H, W, 3]."""
  num = min(CANDIDATES, split_size(data_config, split))
  return load_examples(data_config, split, num)["image"]


def write_figures(config, model: TrainedModel, out: Path, images: np.ndarray | None = None
                  ) -> None:
  """Traversals of FACES contrasting faces labelled by attribute (from `images`, default the
  first CANDIDATES images of config.data.eval_split); A_0 next to the learned A (and the
  truth)."""
  if images is None:
    images = candidate_faces(config.data, config.data.eval_split)
  write_traversals(out / "traversals.png", model, images,
                   f"{config.model.name} @ {model.step}", min(FACES, len(images)))
  labels = model.latent_labels()
  a0 = np.asarray(model.graph_state["a0"])
  panels = [Panel(a0, "A_0 (from Somers' D)"), Panel(np.asarray(model.adjacency), "learned A")]
  truth = latent_order_truth(get_dataset(config.data), model)
  if truth is not None:
    panels.append(Panel(truth, "true graph (latent order)"))
  save_relation_panels(out / "graphs.png", panels, labels, title="DisGraph, row -> column",
                       subtitle=_simulation_note(model))


def latent_order_truth(spec: DatasetSpec, model: TrainedModel) -> np.ndarray | None:
  """The data set's true graph permuted into latent order with the alignment's signs, or None
  (no true graph, or a model without alignment)."""
  if spec.true_graph is None or model.alignment is None:
    return None
  names = list(spec.attribute_names)
  al = model.alignment
  out = np.eye(model.latent_dim, dtype=np.float32)
  index = {name: names.index(name) for name in al.attribute_names}
  for a, name_a in enumerate(al.attribute_names):
    for b, name_b in enumerate(al.attribute_names):
      if a != b:
        k, l = al.latent_of_attribute[a], al.latent_of_attribute[b]
        out[k, l] = al.signs[a] * al.signs[b] * spec.true_graph[index[name_a], index[name_b]]
  return out


def _simulation_note(model: TrainedModel) -> str:
  scorer = (model.meta or {}).get("scorer", {})
  return "scores: SIMULATED (oracle)" if scorer.get("is_simulation") else ""
