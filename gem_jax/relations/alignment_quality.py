"""How well each attribute is carried by its aligned latent, and the guard on it.

For every attribute a with latent k_a and sign s_a (an `Alignment`):
  - score_spearman: s_a * Spearman(mu_{k_a}, scores_a) on the checking images (the held-out
    scored images when training was guided, else all scored images): what decides the guard;
  - runner_up: the latent other than k_a with the largest |Spearman| with scores_a, its value
    and the margin score_spearman - |runner_up|;
  - truth_spearman: s_a * Spearman(mu_{k_a}, true level of a) on test images, where the data
    set knows its true factors (synthetic_faces), else None; best_truth_spearman: the largest
    |Spearman| of any latent with the true level.
  - steerability (optional, `with_steerability`): the share of images whose decoded traversal
    of the latent (-2 -> +2) raises the attribute by at least one level as a level reader sees
    it, and the other attribute it moves most (gem_jax/metrics/steerability.py measures it).
An attribute is *carried* when score_spearman >= min_alignment (config.gem.min_alignment) AND
its margin is >= 0: a latent whose runner-up orders the attribute's scores better does not
carry it, whatever its own correlation (`is_carried`). Everything is measured, nothing is
assumed: a Hungarian match always assigns every attribute, whether or not a latent carries it
(docs/design.md, "Alignment quality").
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np

from gem_jax.relations.alignment import Alignment, spearman_matrix

__all__ = ["AttributeAlignment", "AlignmentQuality", "WeakAlignmentError",
           "alignment_quality", "is_carried", "quality_from_json", "quality_from_alignment",
           "labels_with_quality", "traversal_labels"]


class WeakAlignmentError(ValueError):
  """Some attribute's latent does not carry it: its Spearman with the scores is below
  config.gem.min_alignment, or another latent's is larger (a negative margin)."""


def is_carried(score_spearman: float, margin: float, min_alignment: float) -> bool:
  """The guard's rule: the latent correlates with the attribute's scores at least
  min_alignment AND no other latent correlates more (margin = own - |runner-up| >= 0)."""
  return bool(score_spearman >= min_alignment and margin >= 0)


@dataclasses.dataclass(frozen=True)
class AttributeAlignment:
  """One attribute's row of the quality table (see the module docstring)."""

  attribute: str
  latent: int
  sign: float
  score_spearman: float
  runner_up_latent: int | None
  runner_up_spearman: float
  margin: float
  truth_spearman: float | None = None
  best_truth_spearman: float | None = None
  carried: bool = True
  steerability: float | None = None
  steer_off_attribute: str | None = None
  steer_off_change: float | None = None

  def weak_reason(self, min_alignment: float) -> str | None:
    """Why the guard calls this attribute weak ('below 0.3', 'runner-up z0 0.45 orders it
    better'), or None when its latent carries it."""
    if self.score_spearman < min_alignment:
      return f"rho {self.score_spearman:+.2f} below {min_alignment:g}"
    if self.margin < 0:
      return (f"runner-up z{self.runner_up_latent} {self.runner_up_spearman:.2f} orders it "
              f"better than z{self.latent} {self.score_spearman:+.2f}")
    return None


@dataclasses.dataclass(frozen=True)
class AlignmentQuality:
  """rows: one per attribute, in the alignment's order; min_alignment: the guard's threshold;
  checked_on: what score_spearman was measured on ('held-out scores (300 images)', ...);
  truth_on: what truth_spearman was measured on, or None without true factors; steer_on: what
  the steerability was measured with and on (reader, images, seconds), or None."""

  rows: tuple[AttributeAlignment, ...]
  min_alignment: float
  checked_on: str
  truth_on: str | None = None
  steer_on: str | None = None

  @property
  def weak(self) -> tuple[AttributeAlignment, ...]:
    """The rows whose latent does not carry the attribute (`is_carried`, read from the scores
    and margin, not from a row's saved `carried` flag)."""
    return tuple(r for r in self.rows
                 if not is_carried(r.score_spearman, r.margin, self.min_alignment))

  def with_threshold(self, min_alignment: float) -> "AlignmentQuality":
    """The table under another threshold: every row's `carried` recomputed by `is_carried`."""
    rows = tuple(dataclasses.replace(r, carried=is_carried(r.score_spearman, r.margin,
                                                           min_alignment))
                 for r in self.rows)
    return dataclasses.replace(self, rows=rows, min_alignment=float(min_alignment))

  def with_steerability(self, shares: Mapping[str, float],
                        off: Mapping[str, tuple[str, float]], steer_on: str
                        ) -> "AlignmentQuality":
    """The table with each attribute's steerability: shares {attribute: share in [0, 1]},
    off {attribute: (the other attribute moved most, its mean change in levels)}."""
    rows = tuple(dataclasses.replace(r, steerability=float(shares[r.attribute]),
                                     steer_off_attribute=off[r.attribute][0],
                                     steer_off_change=float(off[r.attribute][1]))
                 for r in self.rows)
    return dataclasses.replace(self, rows=rows, steer_on=steer_on)

  def strengths(self) -> tuple[float, ...]:
    """score_spearman per attribute (the guard's values), in the alignment's order."""
    return tuple(r.score_spearman for r in self.rows)

  def to_json(self) -> dict:
    return {"min_alignment": self.min_alignment, "checked_on": self.checked_on,
            "truth_on": self.truth_on, "steer_on": self.steer_on,
            "rows": [dataclasses.asdict(r) for r in self.rows]}

  def table(self) -> str:
    """A fixed-width text table for logs and notebooks."""
    head = (f"{'attribute':<10} {'latent':>6} {'sign':>4} {'rho(scores)':>11} "
            f"{'runner-up':>11} {'margin':>7} {'rho(truth)':>10} {'best(truth)':>11} "
            f"{'steer':>5}  carried")
    lines = [f"alignment quality (rho: Spearman; scores: {self.checked_on}; truth: "
             f"{self.truth_on or 'not known for this data set'}; carried: rho(scores) >= "
             f"{self.min_alignment:g} and margin >= 0"
             + (f"; steer: {self.steer_on}" if self.steer_on else "") + ")", head]
    fmt = lambda v: "" if v is None else f"{v:+.2f}"
    fmt_abs = lambda v: "" if v is None else f"{v:.2f}"
    for r in self.rows:
      runner = ("" if r.runner_up_latent is None
                else f"z{r.runner_up_latent} {r.runner_up_spearman:.2f}")
      reason = r.weak_reason(self.min_alignment)
      lines.append(f"{r.attribute:<10} {'z' + str(r.latent):>6} {'+' if r.sign > 0 else '-':>4} "
                   f"{r.score_spearman:>+11.2f} {runner:>11} {r.margin:>+7.2f} "
                   f"{fmt(r.truth_spearman):>10} {fmt_abs(r.best_truth_spearman):>11} "
                   f"{fmt_abs(r.steerability):>5}  "
                   f"{'yes' if reason is None else f'NO (weak: {reason})'}")
    return "\n".join(lines)

  def error(self, hints: tuple[str, ...] = ()) -> WeakAlignmentError:
    """The pipeline's stop after stage 3: names the weak attributes and what to try (`hints`,
    from the run's config; `accept_weak_alignment` is always offered)."""
    names = "; ".join(f"{r.attribute} (z{r.latent}: {r.score_spearman:+.2f}, best other latent "
                      f"{r.runner_up_spearman:.2f}: {r.weak_reason(self.min_alignment)})"
                      for r in self.weak)
    tries = "; ".join((*hints, "or accept it with --config.gem.accept_weak_alignment=True "
                       "(recorded in the stage records; labels then mark these attributes as "
                       "weak)"))
    return WeakAlignmentError(
        f"no latent carries {len(self.weak)} of {len(self.rows)} attributes well enough: "
        f"{names}. Each latent needs a Spearman with its attribute's scores ({self.checked_on}) "
        f"of at least config.gem.min_alignment={self.min_alignment:g} and no other latent "
        "ordering those scores better. Traversals, edits and the graph would name latents after "
        f"attributes they do not carry. Try {tries}. Nothing computed is lost: a rerun reuses "
        "the warm-up and scores.")


def _runner_up(rho: np.ndarray, k: int, a: int) -> tuple[int | None, float]:
  others = [(abs(rho[j, a]), j) for j in range(rho.shape[0]) if j != k]
  if not others:
    return None, 0.0
  value, j = max(others)
  return int(j), float(value)


def alignment_quality(alignment: Alignment, mu: np.ndarray, scores: np.ndarray,
                      min_alignment: float, checked_on: str,
                      truth_mu: np.ndarray | None = None,
                      truth_levels: np.ndarray | None = None,
                      truth_on: str | None = None) -> AlignmentQuality:
  """The quality table of `alignment`.

  Args:
    alignment: which latent carries which attribute (n attributes, d latents).
    mu: float [N, d] posterior means of the checking images; scores: int [N, n] their scores
      (-1 = missing, left out pairwise).
    min_alignment: the guard's threshold on score_spearman.
    checked_on: a description of the checking images, for tables and errors.
    truth_mu: float [M, d] posterior means of images with known true levels truth_levels
      int [M, n] (same attribute order), or None.
  """
  mu, scores = np.asarray(mu), np.asarray(scores)
  if mu.shape[1] != alignment.latent_dim or scores.shape[1] != alignment.num_attributes:
    raise ValueError(f"expected mu [N, {alignment.latent_dim}] and scores [N, "
                     f"{alignment.num_attributes}], got {list(mu.shape)} and "
                     f"{list(scores.shape)}")
  rho = spearman_matrix(mu, scores)
  truth = None if truth_mu is None else spearman_matrix(truth_mu, truth_levels)
  rows = []
  for a, name in enumerate(alignment.attribute_names):
    k, sign = alignment.latent_of_attribute[a], alignment.signs[a]
    own = float(sign * rho[k, a])
    runner, runner_value = _runner_up(rho, k, a)
    rows.append(AttributeAlignment(
        attribute=name, latent=int(k), sign=float(sign), score_spearman=own,
        runner_up_latent=runner, runner_up_spearman=runner_value, margin=own - runner_value,
        truth_spearman=None if truth is None else float(sign * truth[k, a]),
        best_truth_spearman=None if truth is None else float(np.abs(truth[:, a]).max()),
        carried=is_carried(own, own - runner_value, min_alignment)))
  return AlignmentQuality(rows=tuple(rows), min_alignment=float(min_alignment),
                          checked_on=checked_on, truth_on=truth_on if truth is not None else None)


def quality_from_json(data: Mapping[str, Any] | None) -> AlignmentQuality | None:
  """Inverse of `AlignmentQuality.to_json`; None for None (runs saved before the table).
  Tables saved before the margin counted (or before steerability) load: `carried` is
  recomputed by `is_carried`, absent fields take their defaults."""
  if not data:
    return None
  known = {f.name for f in dataclasses.fields(AttributeAlignment)}
  rows = tuple(AttributeAlignment(**{k: v for k, v in r.items() if k in known})
               for r in data["rows"])
  quality = AlignmentQuality(rows=rows, min_alignment=float(data["min_alignment"]),
                             checked_on=data["checked_on"], truth_on=data.get("truth_on"),
                             steer_on=data.get("steer_on"))
  return quality.with_threshold(quality.min_alignment)


def quality_from_alignment(alignment: Alignment, min_alignment: float = 0.0) -> AlignmentQuality:
  """The table that an alignment saved without one still supports: its own correlations with
  the scores (all scored images, as the Hungarian match used them), no truth."""
  rho = np.asarray(alignment.correlations)
  rows = []
  for a, name in enumerate(alignment.attribute_names):
    k, sign = alignment.latent_of_attribute[a], alignment.signs[a]
    own = float(sign * rho[k, a])
    runner, runner_value = _runner_up(rho, k, a)
    rows.append(AttributeAlignment(
        attribute=name, latent=int(k), sign=float(sign), score_spearman=own,
        runner_up_latent=runner, runner_up_spearman=runner_value, margin=own - runner_value,
        carried=is_carried(own, own - runner_value, min_alignment)))
  return AlignmentQuality(rows=tuple(rows), min_alignment=float(min_alignment),
                          checked_on="all scored images (saved alignment)")


def _weak_name(base: str, r: AttributeAlignment) -> str:
  """'z1: bald (+)' -> 'z1: bald? (+)'."""
  return base.replace(f"{r.attribute} (", f"{r.attribute}? (")


def _steer(r: AttributeAlignment) -> str:
  return "" if r.steerability is None else f" steer {r.steerability:.2f}"


def labels_with_quality(alignment: Alignment, quality: AlignmentQuality | None
                        ) -> list[str]:
  """Plot labels of every latent: 'z3: bald (-) ρ 0.82 steer 0.91' for a carried attribute
  (steer: where the table holds its steerability), 'z1: gender? (+) weak ρ 0.06' for one below
  the threshold, 'z1: bald? (+) weak ρ 0.37 < z0 0.45' for one whose runner-up orders its
  scores better, 'z5: free'."""
  by_latent = {} if quality is None else {r.latent: r for r in quality.rows}
  out = []
  for k in range(alignment.latent_dim):
    base = alignment.latent_label(k)
    r = by_latent.get(k)
    if r is None:
      out.append(base)
    elif r.weak_reason(quality.min_alignment) is None:
      out.append(f"{base} ρ {r.score_spearman:.2f}{_steer(r)}")
    else:
      runner = (f" < z{r.runner_up_latent} {r.runner_up_spearman:.2f}"
                if r.score_spearman >= quality.min_alignment else "")
      out.append(f"{_weak_name(base, r)} weak ρ {r.score_spearman:.2f}{runner}{_steer(r)}")
  return out


def traversal_labels(alignment: Alignment, quality: AlignmentQuality | None) -> list[str]:
  """Two-line row labels of a traversal figure: the latent and its attribute ('z2: gender
  (+)', 'z1: bald? (+) WEAK'), then the Spearman with the TRUE level where known ('true ρ
  0.96'), else with the scores ('ρ 0.84 (scores)'), and the steerability ('steer 0.92')."""
  by_latent = {} if quality is None else {r.latent: r for r in quality.rows}
  out = []
  for k in range(alignment.latent_dim):
    base, r = alignment.latent_label(k), by_latent.get(k)
    if r is None:
      out.append(base)
      continue
    weak = r.weak_reason(quality.min_alignment) is not None
    head = f"{_weak_name(base, r)} WEAK" if weak else base
    rho = (f"true ρ {r.truth_spearman:.2f}" if r.truth_spearman is not None
           else f"ρ {r.score_spearman:.2f} (scores)")
    out.append(f"{head}\n{rho}{_steer(r)}")
  return out
