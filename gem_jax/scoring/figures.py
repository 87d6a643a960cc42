"""The heatmaps of a scoring run: somers_d.png and, with labels, somers_d_vs_truth.png."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from gem_jax.plots import Panel, save_relation_panels, save_somers_d_heatmap

__all__ = ["save_figures", "title"]


def title(desc: dict, num_images: int) -> tuple[str, str]:
  """(title, subtitle) naming the scorer of `desc` (its describe()), SIMULATED when it is."""
  backend, model = desc.get("backend"), desc.get("model")
  head = f"Asymmetric Somers' D from {backend}:{model} scores (N = {num_images})"
  if backend == "oracle":
    sub = "SIMULATED (oracle): ground-truth labels + stated noise, not an MLLM"
  elif desc.get("is_simulation"):
    sub = "SIMULATED (replay of oracle scores), not an MLLM"
  else:
    sub = ""
  return head, sub


def _truth_panel(report: dict) -> Panel:
  """The true graph's structural weights (row -> column) as a panel."""
  tr = report["truth"]["from_scores"]
  graph = np.asarray(tr["true_graph"], np.float64)
  lim = max(1.0, float(np.abs(graph).max()))
  return Panel(
      graph,
      "TRUE_GRAPH (SCM weights, row -> column)",
      vmin=-lim,
      vmax=lim,
      colorbar_label="structural weight",
      names=tr["attributes"],
      blank_zeros=True,
      diagonal_text="\u2014",
  )


def save_figures(out: str, s: np.ndarray, attributes: Sequence[str], desc: dict,
                 report: dict) -> list[str]:
  """Writes the heatmap of S [n, n] (with the report's bootstrap CIs) and, when the report has
  labels, S next to the labels' S (and the true graph); returns the paths written."""
  head, sub = title(desc, report["num_images"])
  lower = upper = None
  if "bootstrap" in report:
    lower = report["bootstrap"]["lower"]
    upper = report["bootstrap"]["upper"]
  path = os.path.join(out, "somers_d.png")
  save_somers_d_heatmap(path, s, attributes, title=head, subtitle=sub, lower=lower, upper=upper)
  figures = [path]
  if "labels" in report:
    simulated = " (SIMULATED)" if desc.get("is_simulation") else ""
    panels = [
        Panel(s, f"S from {desc.get('backend')} scores{simulated}"),
        Panel(np.asarray(report["labels"]["somers_d_labels"]), "S from the true labels"),
    ]
    if "truth" in report:
      panels.append(_truth_panel(report))
    path = os.path.join(out, "somers_d_vs_truth.png")
    save_relation_panels(path, panels, attributes, title=head, subtitle=sub)
    figures.append(path)
  return figures
