"""`ReplayScorer`: scores read from a file written earlier, keyed by image sha256.

Accepted files:
* the answer cache (`*.jsonl` written by `CachedScorer`): entries
  {"sha256", "backend", "model", "prompt_version", "scores": {attr: level}, ...};
  when it holds answers from several (backend, model, prompt_version), choose one with
  `backend=` / `model=` / `prompt_version=` (a run: config.gem.scorer.model). An ambiguous
  file, or a choice that matches no line, is a `ReplaySelectionError` listing every source
  the file holds with its line count;
* a plain JSONL of {"sha256": ..., "scores": {attr: level}} lines;
* an `.npz` with arrays `sha256` [N] (str), `scores` int [N, n], `attributes` [n] (str)
  and optionally `backend`, `model`, `is_simulation` (see `save_scores_npz`).

An image (or attribute) not in the file is a `MissingScoreError`, never a silent -1.
Levels recorded as -1 in an `.npz` (a missing answer of the original run) come back as -1.
`is_simulation` is True if the recorded scores came from a simulation (the oracle).
"""

from __future__ import annotations

import os
from typing import Optional, Sequence, Union

import numpy as np

from .base import MissingScoreError, OnResult, Scorer, ScorerError, logger
from .cache import read_jsonl_entries
from .images import image_sha256
from .prompt import Attribute

__all__ = ["ReplayScorer", "ReplaySelectionError", "save_scores_npz"]

_SOURCE_KEYS = ("backend", "model", "prompt_version")  # what tells a cache's sources apart


class ReplaySelectionError(ScorerError, ValueError):
  """A score cache holds no scores, none of the chosen source, or several sources and no
  choice; the message lists every (backend, model, prompt_version) it holds and how to choose."""


def _sources(groups: dict[tuple[str, str, str], list[dict]]) -> str:
  """'the file holds:' and one line per source with its line count, then how to choose."""
  lines = [f"  backend={b!r}, model={m!r}, prompt_version={p!r}: {len(es)} line(s)"
           for (b, m, p), es in sorted(groups.items())]
  return ("the file holds:\n" + "\n".join(lines) + "\nchoose one with "
          "config.gem.scorer.model=<model> (score_attributes: --model; in code "
          "ReplayScorer(path, backend=..., model=..., prompt_version=...))")


def save_scores_npz(
    path: Union[str, os.PathLike],
    hashes: Sequence[str],
    scores: np.ndarray,
    attributes: Sequence[str],
    *,
    backend: str = "unknown",
    model: str = "unknown",
    is_simulation: bool = False,
) -> None:
  """Write scores [N, n] of images with the given sha256 hashes for `ReplayScorer`."""
  scores = np.asarray(scores, np.int32)
  if scores.shape != (len(hashes), len(attributes)):
    raise ValueError(
        f"scores {scores.shape} do not match {len(hashes)} hashes and "
        f"{len(attributes)} attributes"
    )
  np.savez(
      path,
      sha256=np.asarray(list(hashes), dtype=str),
      scores=scores,
      attributes=np.asarray(list(attributes), dtype=str),
      backend=np.asarray(backend),
      model=np.asarray(model),
      is_simulation=np.asarray(bool(is_simulation)),
  )


class ReplayScorer(Scorer):
  backend = "replay"

  def __init__(
      self,
      path: Union[str, os.PathLike],
      *,
      backend: Optional[str] = None,
      model: Optional[str] = None,
      prompt_version: Optional[str] = None,
  ):
    self.path = os.fspath(path)
    if not os.path.exists(self.path):
      raise FileNotFoundError(f"replay scorer: no such file {self.path}")
    self._scores: dict[str, dict[str, int]] = {}
    if self.path.endswith(".npz"):
      self._load_npz()
    else:
      self._load_jsonl(backend, model, prompt_version)
    self.model = f"{self.source_backend}/{self.source_model}"
    logger.info(
        "replay scorer: %d images from %s (recorded by %s%s)",
        len(self._scores),
        self.path,
        self.model,
        ", a SIMULATION" if self.is_simulation else "",
    )

  def _load_npz(self) -> None:
    with np.load(self.path, allow_pickle=False) as z:
      hashes = [str(h) for h in z["sha256"]]
      scores = np.asarray(z["scores"], np.int64)
      attrs = [str(a) for a in z["attributes"]]
      self.source_backend = str(z["backend"]) if "backend" in z else "unknown"
      self.source_model = str(z["model"]) if "model" in z else "unknown"
      self.is_simulation = bool(z["is_simulation"]) if "is_simulation" in z else False
    self.prompt_version = "replay"
    for h, row in zip(hashes, scores):
      self._scores[h] = {a: int(v) for a, v in zip(attrs, row)}

  def _load_jsonl(self, backend, model, prompt_version) -> None:
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for e in read_jsonl_entries(self.path):
      if "sha256" not in e or not isinstance(e.get("scores"), dict):
        continue
      source = tuple(str(e.get(key, "unknown")) for key in _SOURCE_KEYS)
      groups.setdefault(source, []).append(e)
    if not groups:
      raise ReplaySelectionError(f"replay scorer: {self.path} holds no scores")
    wanted = (backend, model, prompt_version)
    chosen = {k: es for k, es in groups.items()
              if all(w is None or w == v for w, v in zip(wanted, k))}
    if not chosen:
      asked = ", ".join(f"{key}={w!r}" for key, w in zip(_SOURCE_KEYS, wanted) if w is not None)
      raise ReplaySelectionError(f"replay scorer: no scores in {self.path} match {asked}; "
                                 f"{_sources(groups)}")
    if len(chosen) > 1:
      raise ReplaySelectionError(f"replay scorer: {self.path} holds scores of several sources; "
                                 f"{_sources(chosen)}")
    ((k, es),) = chosen.items()
    self.source_backend, self.source_model, self.prompt_version = k
    self.is_simulation = any(bool(e.get("is_simulation", False)) for e in es)
    for e in es:
      slot = self._scores.setdefault(str(e["sha256"]), {})
      for a, v in e["scores"].items():
        if int(v) >= 0 or a not in slot:
          slot[str(a)] = int(v)

  def __len__(self) -> int:
    return len(self._scores)

  def describe(self) -> dict:
    d = super().describe()
    d.update(path=self.path, source_backend=self.source_backend, source_model=self.source_model)
    return d

  def _score(
      self, images: np.ndarray, attributes: tuple[Attribute, ...], on_result: Optional[OnResult]
  ) -> np.ndarray:
    out = np.empty((len(images), len(attributes)), np.int32)
    missing_img, missing_attr = [], set()
    for i, im in enumerate(images):
      h = image_sha256(im)
      rec = self._scores.get(h)
      if rec is None:
        missing_img.append((i, h))
        continue
      for j, a in enumerate(attributes):
        if a.name not in rec:
          missing_attr.add(a.name)
        else:
          out[i, j] = rec[a.name]
    if missing_img:
      i, h = missing_img[0]
      raise MissingScoreError(
          f"replay scorer: {len(missing_img)} of {len(images)} images have no scores in "
          f"{self.path} (first: image {i}, sha256 {h[:12]}...); replay only works for the "
          "exact images (same pixels) that were scored before"
      )
    if missing_attr:
      raise MissingScoreError(
          f"replay scorer: no scores for attributes " f"{sorted(missing_attr)} in {self.path}"
      )
    if on_result is not None:
      for i, im in enumerate(images):
        on_result(image_sha256(im), [int(v) for v in out[i]], {"replayed": True})
    return out
