"""`make_scorer`: the one way to build a scorer by backend name.

    make_scorer("openai", "gpt-4o", cache_path="runs/x/score_cache.jsonl")
    make_scorer("oracle", images=images, labels=labels, label_names=names, accuracy=0.9)
    make_scorer("replay", replay_path="runs/x/score_cache.jsonl")

One call site can pass all of a run's scorer options (a config or the flags of
`experiments.score_attributes`) whatever backend it names: each named option is used by the
backends it belongs to and ignored by the others, and None means the backend's default.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from .base import Scorer
from .cache import CachedScorer
from .gemini_backend import DEFAULT_GEMINI_MODEL, GeminiScorer
from .openai_backend import DEFAULT_OPENAI_MODEL, OpenAIScorer
from .oracle import OracleScorer
from .replay import ReplayScorer

__all__ = ["BACKENDS", "DEFAULT_MODELS", "make_scorer", "default_model"]

BACKENDS = ("openai", "gemini", "oracle", "replay")
DEFAULT_MODELS = {"openai": DEFAULT_OPENAI_MODEL, "gemini": DEFAULT_GEMINI_MODEL}


def default_model(backend: str, model: Optional[str] = None) -> Optional[str]:
  """`model`, else the API backend's default (gpt-4o / gemini-2.5-flash); None otherwise."""
  return model or DEFAULT_MODELS.get(backend)


def _api_options(backend: str, base_url, concurrency, requests_per_minute, response_format,
                 progress) -> dict[str, Any]:
  """The named options an API backend takes (None: its default, e.g. the rate limit of the
  vendor's endpoint and none for a custom base_url; rate 0: no limit)."""
  options: dict[str, Any] = {}
  if base_url:
    options["base_url"] = base_url
  if concurrency is not None:
    options["concurrency"] = concurrency
  if requests_per_minute is not None:
    options["requests_per_minute"] = requests_per_minute  # 0: no limit
  if response_format and backend == "openai":
    options["response_format"] = response_format
  if progress is not None:
    options["progress"] = progress
  return options


def _oracle(images, labels, label_names, accuracy, error_model, seed, kwargs) -> OracleScorer:
  """From a data set's images and labels, or from `kwargs` (label_lookup, attribute_names)."""
  options = {k: v for k, v in (("accuracy", accuracy), ("error_model", error_model),
                               ("seed", seed)) if v is not None}
  if images is None:
    return OracleScorer(**kwargs, **options)
  if labels is None or label_names is None:
    raise ValueError("the oracle needs the data set's labels, and this data set has none")
  return OracleScorer.from_dataset(images, labels, label_names, **kwargs, **options)


def make_scorer(
    backend: str,
    model: Optional[str] = None,
    *,
    cache_path: Optional[str] = None,
    base_url: Optional[str] = None,
    concurrency: Optional[int] = None,
    requests_per_minute: Optional[float] = None,
    response_format: Optional[str] = None,
    progress: Optional[bool] = None,
    images: Optional[np.ndarray] = None,
    labels: Optional[np.ndarray] = None,
    label_names: Optional[Sequence[str]] = None,
    accuracy: Optional[float] = None,
    error_model: Optional[str] = None,
    seed: Optional[int] = None,
    replay_path: Optional[str] = None,
    **kwargs: Any,
) -> Scorer:
  """Build a scorer by name.

  backend: "openai" | "gemini" | "oracle" | "replay" (anything else: ValueError).
  model: the model name (openai/gemini; default gpt-4o / gemini-2.5-flash). The oracle
    names itself from its accuracy (a model is a ValueError); for replay it selects the
    recorded model when the file holds several.
  cache_path: wrap the scorer in `CachedScorer` (append-only JSONL answer cache).
  openai/gemini: base_url, concurrency, requests_per_minute (None: 450 / 500 on the vendor's
    endpoint, none on a custom base_url; 0: no limit), progress; response_format (openai).
  oracle (a SIMULATION): images uint8 [N, H, W, 3] with their labels [N, k] over
    label_names (`OracleScorer.from_dataset`; no labels: ValueError), or label_lookup= and
    attribute_names= in kwargs; accuracy, error_model ("uniform", "adjacent",
    "calibrated", "realistic"), seed (the noise seed); the other error options (bias,
    compression, confusion, confusion_source, visibility, missing_rate) go in kwargs.
  replay: replay_path (or path=), a score cache .jsonl or an .npz.
  kwargs: passed to the scorer class (OpenAIScorer, GeminiScorer, OracleScorer,
    ReplayScorer), e.g. retry=, timeout_s=, api_key_env=.
  Named options that belong to another backend are ignored; None means the default.
  """
  name = str(backend).lower().strip()
  scorer: Scorer
  if name in ("openai", "gemini"):
    kwargs.update(_api_options(name, base_url, concurrency, requests_per_minute,
                               response_format, progress))
    cls = OpenAIScorer if name == "openai" else GeminiScorer
    scorer = cls(model=default_model(name, model), **kwargs)
  elif name == "oracle":
    if model is not None:
      raise ValueError("the oracle names itself (oracle-acc<accuracy>); set accuracy= "
                       "instead of model=")
    scorer = _oracle(images, labels, label_names, accuracy, error_model, seed, kwargs)
  elif name == "replay":
    path = replay_path or kwargs.pop("path", None)
    if not path:
      raise ValueError("the replay scorer needs replay_path= (a score cache .jsonl or .npz)")
    scorer = ReplayScorer(path, model=model, **kwargs)
  else:
    raise ValueError(f"unknown scorer backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
  if cache_path is not None:
    return CachedScorer(scorer, cache_path)
  return scorer
