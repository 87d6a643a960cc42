"""Scorers: the MLLM branch's only door to the outside (see docs/scorers.md).

    scorer = make_scorer("openai", cache_path="runs/x/scores.jsonl")
    scores = scorer.score(images_uint8_BHW3, ["bangs", "bald"])  # int32 [B, 2], -1 = missing

Backends: "openai" (GPT-4o or any OpenAI-compatible server via base_url), "gemini"
(google-genai), "oracle" (an offline SIMULATION from ground-truth labels) and "replay"
(scores recorded earlier). Nothing ever falls back to the oracle: a failing API scorer
raises. The client libraries (openai, google-genai) are imported only when a request is sent.
`list_models(scorer)` sends one cheap models-list request: does the endpoint answer and take
the key (the run's preflight, before the warm-up)?
"""

from __future__ import annotations

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
from .factory import BACKENDS, DEFAULT_MODELS, default_model, make_scorer
from .gemini_backend import GeminiScorer
from .images import check_images, encode_png, image_hashes, image_sha256
from .openai_backend import OpenAIScorer
from .oracle import OracleScorer, labels_to_levels
from .oracle_errors import ERROR_MODELS as ORACLE_ERROR_MODELS
from .probe import PROBE_TIMEOUT_S, list_models
from .prompt import (
    PROMPT_VERSION,
    Attribute,
    MalformedAnswer,
    answer_schema,
    build_prompt,
    normalize_attributes,
    parse_answer,
)
from .replay import ReplayScorer, ReplaySelectionError
from .retry import RetryPolicy, UsageStats, run_sync
from .runner import APIScorer

__all__ = [
    "BACKENDS",
    "DEFAULT_MODELS",
    "make_scorer",
    "default_model",
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
    "ORACLE_ERROR_MODELS",
    "ReplayScorer",
    "ReplaySelectionError",
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
    "labels_to_levels",
    "run_sync",
    "list_models",
    "PROBE_TIMEOUT_S",
]
