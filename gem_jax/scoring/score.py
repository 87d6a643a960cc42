"""Scoring images through the answer cache, and the one scores.npy / scores.json they leave.

`score_images` is the scoring stage of both `run_scoring` (experiments/score_attributes.py)
and the GEM pipeline (`gem_jax.gem_pipeline.run_scoring`). scores.json (docs/scorers.md):

    {"attributes": [n names], "backend", "model", "prompt_version", "is_simulation": bool,
     "scorer": the scorer's describe(), "shape": [N, n], "dtype": "int32", "missing_value": -1,
     "num_missing", "data": {"dataset", "data_config", "split", "images", "image_shape",
     "images_sha256"}, "cache": {"path", "hits", "newly_scored"} or null,
     "usage": API request/token counts or null}
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from typing import Any, Optional, Sequence

import numpy as np

from gem_jax.files import atomic_save_npy
from gem_jax.scorers import CachedScorer, ScorerLike, image_hashes
from gem_jax.scoring.options import (
    ScoringOptions,
    cache_path_for,
    check_labels,
    check_options,
    scorer_for,
)

__all__ = ["ScoredImages", "score_dataset", "score_images", "scores_meta", "write_json"]

logger = logging.getLogger("gem_jax.scoring")


def score_dataset(
    images: np.ndarray,
    attributes: Sequence[str],
    scorer: ScorerLike,
    cache_path: Optional[str] = None,
) -> np.ndarray:
  """Scores int32 [N, n] (-1 = missing) of `images` [N, H, W, 3] through the answer cache.

  With `cache_path` the scorer is wrapped in `CachedScorer` (unless it already is one): every
  answer is appended to the cache the moment it arrives, and images already answered there
  are not asked again. The wrapper's `last_hits` / `last_misses` count them.
  """
  if cache_path is not None and not isinstance(scorer, CachedScorer):
    scorer = CachedScorer(scorer, cache_path)
  scores = np.asarray(scorer.score(images, list(attributes)), np.int32)
  if isinstance(scorer, CachedScorer):
    logger.info(
        "%s:%s: %d images from the cache, %d newly scored",
        scorer.backend,
        scorer.model,
        scorer.last_hits,
        scorer.last_misses,
    )
  return scores


@dataclasses.dataclass
class ScoredImages:
  """What `score_images` wrote: scores int32 [N, n], the scores.json dict, and the scorer
  (a `CachedScorer` unless no cache was used)."""

  scores: np.ndarray
  meta: dict
  scorer: ScorerLike


def scores_meta(o: ScoringOptions, attributes: Sequence[str], images: np.ndarray,
                scores: np.ndarray, scorer: ScorerLike) -> dict:
  """The scores.json dict (the schema in the module docstring)."""
  desc = scorer.describe()
  desc.pop("cache_path", None)
  hashes = image_hashes(images)
  cache = None
  if isinstance(scorer, CachedScorer):
    cache = {
        "path": os.path.abspath(cache_path_for(o)),
        "hits": int(scorer.last_hits),
        "newly_scored": int(scorer.last_misses),
    }
  usage = getattr(scorer, "last_usage", None)
  return {
      "attributes": list(attributes),
      "backend": desc.get("backend"),
      "model": desc.get("model"),
      "prompt_version": desc.get("prompt_version"),
      "is_simulation": bool(desc.get("is_simulation")),
      "scorer": desc,
      "shape": list(scores.shape),
      "dtype": "int32",
      "missing_value": -1,
      "num_missing": int((scores < 0).sum()),
      "data": {
          "dataset": o.dataset,
          "data_config": o.data_config,
          "split": o.split,
          "images": f"the first {len(images)} images of the split",
          "image_shape": list(images.shape[1:]),
          "images_sha256": hashlib.sha256("".join(hashes).encode()).hexdigest(),
      },
      "cache": cache,
      "usage": usage.as_dict() if usage is not None and hasattr(usage, "as_dict") else None,
  }


def score_images(
    o: ScoringOptions,
    images: np.ndarray,
    labels: Optional[np.ndarray] = None,
    label_names: Optional[Sequence[str]] = None,
) -> ScoredImages:
  """Score `images` uint8 [N, H, W, 3] as `o` says; write <o.out>/scores.npy and scores.json.

  labels [N, k] over `label_names` (from `DatasetSpec.oracle_labels`) are what the oracle
  reads. Answers go to the cache (`cache_path_for(o)`) as they arrive, so a rerun asks
  nothing twice. ScoringError for an impossible request, before anything is sent or written.
  """
  attributes = check_options(o)
  check_labels(o, attributes, labels, label_names)
  images = np.asarray(images)
  scorer = scorer_for(o, images, labels, label_names)
  os.makedirs(o.out, exist_ok=True)
  scores = score_dataset(images, attributes, scorer)
  meta = scores_meta(o, attributes, images, scores, scorer)
  atomic_save_npy(os.path.join(o.out, "scores.npy"), scores.astype(np.int32))
  write_json(os.path.join(o.out, "scores.json"), meta)
  return ScoredImages(scores, meta, scorer)


def _dumps(obj: Any, indent: int = 0) -> str:
  """JSON with one key per line, but lists of numbers/strings (matrix rows) on one line."""
  pad, inner = " " * indent, " " * (indent + 2)
  if isinstance(obj, dict) and obj:
    items = [f"{inner}{json.dumps(str(k))}: {_dumps(v, indent + 2)}" for k, v in obj.items()]
    return "{\n" + ",\n".join(items) + f"\n{pad}}}"
  if (
      isinstance(obj, (list, tuple))
      and obj
      and any(isinstance(v, (dict, list, tuple)) for v in obj)
  ):
    items = [f"{inner}{_dumps(v, indent + 2)}" for v in obj]
    return "[\n" + ",\n".join(items) + f"\n{pad}]"
  return json.dumps(obj)


def write_json(path: str, obj: Any) -> None:
  """Writes `obj` as JSON (matrix rows on one line) through a temporary file."""
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.write(_dumps(obj) + "\n")
  os.replace(tmp, path)
