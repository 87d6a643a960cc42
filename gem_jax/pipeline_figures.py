"""GEM pipeline's figures: traversals labelled with the aligned attributes (and how well each is
carried), A_0 next to the learned A and, where the data set knows it, the true graph."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from gem_jax.data import DatasetSpec, get_dataset
from gem_jax.plots import Panel, save_relation_panels, save_traversal_figure
from gem_jax.trained_model import TrainedModel

__all__ = ["write_figures", "latent_order_truth"]


def write_figures(config, model: TrainedModel, out: Path, image: np.ndarray) -> None:
  """Traversals labelled by attribute; A_0 next to the learned A (and the truth)."""
  values = np.linspace(-2.5, 2.5, 9)
  save_traversal_figure(out / "traversals.png", model.traverse_all(image, values), values,
                        model.latent_labels(), title=f"{config.model.name} @ {model.step}")
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
