"""Scorers: the MLLM branch's only door to the outside (see docs/scorers.md).

    scorer = make_scorer("openai", cache_path="runs/x/scores.jsonl")
    scores = scorer.score(images_uint8_BHW3, ["bangs", "bald"])  # int32 [B, 2], -1 = missing

Backends: "openai" (GPT-4o or any OpenAI-compatible server via base_url), "gemini"
(google-genai), "oracle" (an offline SIMULATION from ground-truth labels) and "replay"
(scores recorded earlier). Nothing ever falls back to the oracle: a failing API scorer
raises.
"""

from __future__ import annotations

from typing import Any, Optional

from .base import (
    MissingScoreError,
    Scorer,
    ScorerAuthError,
    ScorerError,
    ScorerLike,
    ScorerRequestError,
)
from .cache import CachedScorer, ScoreCache
from .cost import PRICES_PER_MTOK, DryRunEstimate, dry_run, price_for
from .images import check_images, encode_png, image_hashes, image_sha256
from .prompt import (
    PROMPT_VERSION,
    Attribute,
    MalformedAnswer,
    answer_schema,
    build_prompt,
    normalize_attributes,
    parse_answer,
)
from .runner import APIScorer, RetryPolicy, UsageStats, run_sync

__all__ = [
    "BACKENDS",
    "make_scorer",
    "Scorer",
    "ScorerLike",
    "APIScorer",
    "ScorerError",
    "ScorerAuthError",
    "ScorerRequestError",
    "MissingScoreError",
    "MalformedAnswer",
    "OpenAIScorer",
    "GeminiScorer",
    "OracleScorer",
    "ReplayScorer",
    "CachedScorer",
    "ScoreCache",
    "RetryPolicy",
    "UsageStats",
    "DryRunEstimate",
    "dry_run",
    "price_for",
    "PRICES_PER_MTOK",
    "PROMPT_VERSION",
    "Attribute",
    "build_prompt",
    "parse_answer",
    "answer_schema",
    "normalize_attributes",
    "image_sha256",
    "image_hashes",
    "check_images",
    "encode_png",
    "run_sync",
]

BACKENDS = ("openai", "gemini", "oracle", "replay")


def __getattr__(name: str) -> Any:  # the backends import their client libraries lazily
  if name == "OpenAIScorer":
    from .openai_backend import OpenAIScorer

    return OpenAIScorer
  if name == "GeminiScorer":
    from .gemini_backend import GeminiScorer

    return GeminiScorer
  if name == "OracleScorer":
    from .oracle import OracleScorer

    return OracleScorer
  if name == "ReplayScorer":
    from .replay import ReplayScorer

    return ReplayScorer
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_scorer(
    backend: str, model: Optional[str] = None, *, cache_path: Optional[str] = None, **kwargs: Any
) -> Scorer:
  """Build a scorer by name.

  backend: "openai" | "gemini" | "oracle" | "replay".
  model: the model name (openai/gemini; default gpt-4o / gemini-2.5-flash). The oracle
    derives its own name from its accuracy (pass model=None); for replay it selects
    the recorded model when the file holds several.
  cache_path: wrap the scorer in `CachedScorer` (append-only JSONL answer cache).
  kwargs: passed to the scorer class (OpenAIScorer, GeminiScorer, OracleScorer(label_lookup,
    attribute_names, ...), ReplayScorer(path, ...)).
  """
  name = str(backend).lower().strip()
  scorer: Scorer
  if name == "openai":
    from .openai_backend import DEFAULT_OPENAI_MODEL, OpenAIScorer

    scorer = OpenAIScorer(model=model or DEFAULT_OPENAI_MODEL, **kwargs)
  elif name == "gemini":
    from .gemini_backend import DEFAULT_GEMINI_MODEL, GeminiScorer

    scorer = GeminiScorer(model=model or DEFAULT_GEMINI_MODEL, **kwargs)
  elif name == "oracle":
    from .oracle import OracleScorer

    if model is not None:
      raise ValueError(
          "the oracle names itself (oracle-acc<accuracy>); set accuracy= " "instead of model="
      )
    scorer = OracleScorer(**kwargs)
  elif name == "replay":
    from .replay import ReplayScorer

    scorer = ReplayScorer(model=model, **kwargs)
  else:
    raise ValueError(
        f"unknown scorer backend {backend!r}; valid backends: " f"{', '.join(BACKENDS)}"
    )
  if cache_path is not None:
    return CachedScorer(scorer, cache_path)
  return scorer
