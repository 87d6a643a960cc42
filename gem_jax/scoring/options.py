"""`ScoringOptions` (the flags of experiments/score_attributes.py) and what they are checked
against before anything is loaded, rendered or sent."""

from __future__ import annotations

import dataclasses
import os
from typing import Optional, Sequence

import ml_collections
import numpy as np

from gem_jax.data import get_dataset
from gem_jax.scorers import BACKENDS, ORACLE_ERROR_MODELS, Scorer, make_scorer
from gem_jax.scoring.attributes import (
    DEFAULT_ATTRIBUTES,
    ScoringError,
    parse_attribute_list,
    validate_attributes,
)

__all__ = [
    "ScoringOptions",
    "cache_path_for",
    "check_labels",
    "check_options",
    "data_config",
    "scorer_for",
]


@dataclasses.dataclass
class ScoringOptions:
  """Everything `run_scoring` needs (the flags of experiments/score_attributes.py)."""

  backend: str
  out: str
  model: Optional[str] = None
  base_url: Optional[str] = None
  dataset: str = "synthetic_faces"
  data_config: str = "default"
  data_dir: Optional[str] = None
  split: str = "train"
  attributes: Sequence[str] = DEFAULT_ATTRIBUTES
  num_images: int = 1500
  cache_path: Optional[str] = None  # default: <out>/score_cache.jsonl
  dry_run: bool = False
  concurrency: int = 8
  requests_per_minute: Optional[float] = None
  response_format: Optional[str] = None
  accuracy: float = 0.884  # oracle; realistic: the mean of its per-attribute accuracies
  error_model: str = "uniform"  # oracle: uniform | adjacent | calibrated | realistic
  seed: int = 0
  bootstrap: int = 0
  replay_path: Optional[str] = None
  progress: bool = True
  plots: bool = True


def check_options(o: ScoringOptions) -> list[str]:
  """The parsed attribute list; ScoringError for an impossible request.

  Checks the backend, the image count, that the oracle gets no model name and a known error
  model and, where the data set's label names are known without loading it, that the oracle
  can read every attribute; an output folder is required except for a dry run.
  """
  attributes = parse_attribute_list(o.attributes)
  if o.backend not in BACKENDS:
    raise ScoringError(f"unknown backend {o.backend!r}; valid backends: {', '.join(BACKENDS)}")
  if o.num_images < 1:
    raise ScoringError("num_images must be >= 1")
  if o.backend == "oracle":
    if o.model:
      raise ScoringError(
          "the oracle names itself (oracle-acc<accuracy>); leave --model out and set --accuracy"
      )
    if o.error_model not in ORACLE_ERROR_MODELS:
      raise ScoringError(f"unknown oracle error model {o.error_model!r}; valid: "
                         f"{', '.join(ORACLE_ERROR_MODELS)}")
    known = get_dataset(o.dataset).attribute_names
    if known:  # fail before rendering or loading anything
      validate_attributes(attributes, known, o.dataset)
  if not o.out and not o.dry_run:
    raise ScoringError("an output folder (--out) is required")
  return attributes


def check_labels(o: ScoringOptions, attributes: Sequence[str], labels: Optional[np.ndarray],
                 label_names: Optional[Sequence[str]]) -> None:
  """The oracle needs labels [N, k] whose names include every attribute (ScoringError)."""
  if o.backend != "oracle":
    return
  if labels is None:
    raise ScoringError(f"the oracle needs labels, and {o.dataset} has none")
  validate_attributes(attributes, label_names, o.dataset)


def cache_path_for(o: ScoringOptions) -> Optional[str]:
  """The answer cache: `cache_path`, else <out>/score_cache.jsonl; none for replay."""
  if o.backend == "replay" or not (o.out or o.cache_path):
    return None
  return o.cache_path or os.path.join(o.out, "score_cache.jsonl")


def data_config(o: ScoringOptions) -> ml_collections.ConfigDict:
  """config.data for `load_examples` of the options' data set and split."""
  return ml_collections.ConfigDict(
      {"name": o.dataset, "config": o.data_config, "data_dir": o.data_dir, "split": o.split}
  )


def scorer_for(o: ScoringOptions, images: np.ndarray, labels: Optional[np.ndarray],
               label_names: Optional[Sequence[str]]) -> Scorer:
  """`make_scorer` with the options (the oracle reads `labels` [N, k] of `images`, the columns
  of the scored attributes only: what its error model is normalised over), wrapped in the
  answer cache `cache_path_for(o)` unless that is None."""
  if o.backend == "replay" and not o.replay_path:
    raise ScoringError("--backend replay needs --replay_path (a score cache .jsonl or .npz)")
  oracle = {"attributes": parse_attribute_list(o.attributes)} if o.backend == "oracle" else {}
  return make_scorer(
      o.backend,
      o.model,
      cache_path=cache_path_for(o),
      base_url=o.base_url,
      concurrency=o.concurrency,
      requests_per_minute=o.requests_per_minute,
      response_format=o.response_format,
      progress=o.progress,
      images=images,
      labels=labels,
      label_names=label_names,
      accuracy=o.accuracy,
      error_model=o.error_model,
      seed=o.seed,
      replay_path=o.replay_path,
      **oracle,
  )
