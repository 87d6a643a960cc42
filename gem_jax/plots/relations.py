"""Heatmaps of asymmetric relation matrices (the paper's Figure 4 heatmap).

`S[i, j]` is the impact of the row attribute i on the column attribute j, so rows are labelled
"impact of <row>" and columns "on <col>". Signed values use a diverging colormap centred at 0
(blue = negative, red = positive, vmin -1, vmax 1 for Somers' D); every cell is annotated with
its value (and its bootstrap interval when given); the diagonal, always 1, is drawn in grey so
that it does not dominate the colour scale.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

__all__ = ["Panel", "draw_relation_matrix", "save_somers_d_heatmap", "save_relation_panels"]

_CMAP = "RdBu_r"
_DIAGONAL_COLOUR = "#d9d9d9"


def _plt():
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  return plt


def _fmt(v: float) -> str:
  if not np.isfinite(v):
    return "nan"
  s = f"{v:+.2f}"
  return "0.00" if float(s) == 0 else s.replace("-", "\u2212")


@dataclasses.dataclass
class Panel:
  """One matrix of a side-by-side figure (see `save_relation_panels`)."""

  matrix: np.ndarray
  title: str
  vmin: float = -1.0
  vmax: float = 1.0
  colorbar_label: str = "Somers' D"
  names: Optional[Sequence[str]] = None  # default: the figure's names
  lower: Optional[np.ndarray] = None
  upper: Optional[np.ndarray] = None
  blank_zeros: bool = False  # write "0" in grey for zero cells (a graph's absent edges)
  grey_diagonal: bool = True
  diagonal_text: Optional[str] = None  # default: the value


def draw_relation_matrix(
    ax,
    matrix,
    names: Sequence[str],
    *,
    vmin: float = -1.0,
    vmax: float = 1.0,
    lower=None,
    upper=None,
    title: str = "",
    grey_diagonal: bool = True,
    blank_zeros: bool = False,
    diagonal_text: Optional[str] = None,
    fontsize: float = 9.0,
):
  """Draw one annotated heatmap on `ax`; returns the image (for a colorbar)."""
  plt = _plt()
  m = np.asarray(matrix, np.float64)
  n = len(names)
  if m.shape != (n, n):
    raise ValueError(f"matrix {m.shape} does not match {n} names")
  diag = np.eye(n, dtype=bool)
  shown = np.ma.masked_where(diag, m) if grey_diagonal else m
  cmap = plt.get_cmap(_CMAP).with_extremes(bad=_DIAGONAL_COLOUR)
  im = ax.imshow(shown, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
  lo = None if lower is None else np.asarray(lower, np.float64)
  hi = None if upper is None else np.asarray(upper, np.float64)
  span = max(abs(vmin), abs(vmax))
  for i in range(n):
    for j in range(n):
      v = m[i, j]
      if diag[i, j] and grey_diagonal:
        label = _fmt(v).lstrip("+") if diagonal_text is None else diagonal_text
        ax.text(j, i, label, ha="center", va="center", fontsize=fontsize, color="#666666")
        continue
      if blank_zeros and v == 0:
        ax.text(j, i, "0", ha="center", va="center", fontsize=fontsize, color="#9a9a9a")
        continue
      colour = "white" if abs(v) > 0.55 * span else "black"
      text = _fmt(v)
      if lo is not None and hi is not None:
        text += f"\n[{_fmt(lo[i, j])}, {_fmt(hi[i, j])}]"
        ax.text(
            j,
            i - 0.12,
            _fmt(v),
            ha="center",
            va="center",
            fontsize=fontsize,
            color=colour,
            fontweight="bold",
        )
        ax.text(
            j,
            i + 0.22,
            f"[{_fmt(lo[i, j])}, {_fmt(hi[i, j])}]",
            ha="center",
            va="center",
            fontsize=fontsize * 0.62,
            color=colour,
        )
      else:
        ax.text(
            j, i, text, ha="center", va="center", fontsize=fontsize, color=colour, fontweight="bold"
        )
  ax.set_xticks(range(n))
  ax.set_xticklabels(
      [f"on {a}" for a in names], rotation=35, ha="right", rotation_mode="anchor", fontsize=fontsize
  )
  ax.set_yticks(range(n))
  ax.set_yticklabels([f"impact of {a}" for a in names], fontsize=fontsize)
  ax.set_xticks(np.arange(n + 1) - 0.5, minor=True)
  ax.set_yticks(np.arange(n + 1) - 0.5, minor=True)
  ax.grid(which="minor", color="white", linewidth=1.5)
  ax.tick_params(which="minor", length=0)
  ax.tick_params(which="major", length=0)
  for spine in ax.spines.values():
    spine.set_visible(False)
  ax.set_xlabel("column j: the attribute affected", fontsize=fontsize)
  ax.set_ylabel("row i: the attribute whose impact is measured", fontsize=fontsize)
  if title:
    ax.set_title(title, fontsize=fontsize + 1)
  return im


def save_somers_d_heatmap(
    path: str | Path,
    somers: np.ndarray,
    names: Sequence[str],
    *,
    title: str = "Asymmetric Somers' D",
    subtitle: str = "",
    lower=None,
    upper=None,
    dpi: int = 130,
) -> None:
  """One heatmap of S[i, j] = D(A_j | A_i) with every cell annotated (and its CI if given).

  `subtitle` goes under the title in red (use it for "SIMULATED (oracle)").
  """
  plt = _plt()
  n = len(names)
  side = max(5.5, 0.95 * n + 2.8)
  fig, ax = plt.subplots(figsize=(side + 1.6, side + 0.6))
  im = draw_relation_matrix(
      ax, somers, names, lower=lower, upper=upper, fontsize=9.5 if n <= 8 else 7.5
  )
  cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
  cb.set_label("S[i, j] = D(col | row)   (< 0: row suppresses col)", fontsize=8.5)
  note = "S[i, j] = Somers' D(A_j | A_i): impact of row i on column j; diagonal = 1"
  if lower is not None:
    note += "; [95% bootstrap interval]"
  fig.text(0.5, 0.01, note, ha="center", va="bottom", fontsize=8, color="#444444")
  fig.suptitle(title, fontsize=11, y=0.985)
  if subtitle:
    fig.text(
        0.5, 0.935, subtitle, ha="center", va="top", fontsize=10, color="#b00000", fontweight="bold"
    )
  fig.tight_layout(rect=(0, 0.03, 1, 0.92 if subtitle else 0.95))
  Path(path).parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(path, dpi=dpi, bbox_inches="tight", pad_inches=0.15)
  plt.close(fig)


def save_relation_panels(
    path: str | Path,
    panels: Sequence[Panel],
    names: Sequence[str],
    *,
    title: str = "",
    subtitle: str = "",
    dpi: int = 110,
) -> None:
  """Side-by-side annotated heatmaps (e.g. S from scores | S from labels | the true graph).

  `subtitle` goes under the title in red (use it for "SIMULATED (oracle)").
  """
  plt = _plt()
  k = len(panels)
  n = len(names)
  side = max(4.5, 0.7 * n + 1.8)
  fs = 10.5 if n <= 8 else 8.0
  fig, axes = plt.subplots(1, k, figsize=(k * (side + 1.5), side + 1.2), squeeze=False)
  for ax, p in zip(axes[0], panels):
    im = draw_relation_matrix(
        ax,
        p.matrix,
        list(p.names) if p.names is not None else names,
        vmin=p.vmin,
        vmax=p.vmax,
        lower=p.lower,
        upper=p.upper,
        title=p.title,
        grey_diagonal=p.grey_diagonal,
        blank_zeros=p.blank_zeros,
        diagonal_text=p.diagonal_text,
        fontsize=fs,
    )
    cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    cb.set_label(p.colorbar_label, fontsize=fs - 1)
  top = 1.0
  if title:
    fig.suptitle(title, fontsize=fs + 2.5, y=0.99)
    top = 0.92
  if subtitle:
    fig.text(
        0.5,
        0.935,
        subtitle,
        ha="center",
        va="top",
        fontsize=fs + 1.5,
        color="#b00000",
        fontweight="bold",
    )
    top = 0.88
  fig.tight_layout(rect=(0, 0, 1, top))
  Path(path).parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(path, dpi=dpi, bbox_inches="tight", pad_inches=0.15)
  plt.close(fig)
