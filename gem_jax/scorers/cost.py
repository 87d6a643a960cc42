"""Token and dollar ESTIMATES: a small price table, image-token heuristics and `dry_run`.

Everything here is an estimate for planning, not a bill. Prices are list prices in USD
per million tokens as published by the vendors (standard tier, no batch/caching
discounts) when this table was written; they change, so check the vendor's pricing page
before a large run and pass your own with `price_per_mtok=(input, output)`. A model not
in the table (e.g. anything on a local vLLM/Ollama server) has an unknown cost: `None`.

Heuristics:
* Text tokens: ceil(characters / 4) of the system + user text, plus 4 tokens of message
  overhead per message (system, user).
* Answer tokens: ceil(characters / 4) of the JSON answer `{"attr": 3, ...}` plus 2.
* OpenAI image tokens (GPT-4o family): detail="low" costs 85 tokens whatever the size;
  detail="high"/"auto": the image is fitted into 2048x2048, then its shorter side is
  scaled down to 768 if larger, and it costs 85 + 170 per 512x512 tile
  (64x64 -> 1 tile -> 255). gpt-4o-mini bills images at 2833 (low) and 2833 + 5667 per
  tile (high). Other OpenAI models are estimated with the GPT-4o figures.
* Gemini image tokens: 258 per image when both sides are <= 384 px, else 258 per
  768x768 tile.
* One request per image; re-asks and retries are not included (they add a few percent
  at most when the model follows the JSON format).
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, Optional

from .prompt import build_prompt, normalize_attributes

__all__ = [
    "PRICES_PER_MTOK",
    "price_for",
    "estimate_cost",
    "image_tokens",
    "DryRunEstimate",
    "dry_run",
    "PRICE_TABLE_DATE",
]

PRICE_TABLE_DATE = "2025-06"

# model name (or prefix; the longest matching prefix wins) -> (USD per 1M input tokens,
# USD per 1M output tokens).
PRICES_PER_MTOK: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4-turbo": (10.00, 30.00),
    "gemini-2.0-flash": (0.10, 0.40),
    "gemini-2.0-flash-lite": (0.075, 0.30),
    "gemini-2.5-flash": (0.30, 2.50),
    "gemini-2.5-flash-lite": (0.10, 0.40),
    "gemini-2.5-pro": (1.25, 10.00),
    "gemini-1.5-flash": (0.075, 0.30),
    "gemini-1.5-pro": (1.25, 5.00),
}


def price_for(model: str) -> Optional[tuple[float, float]]:
  """(input, output) USD per 1M tokens for `model`, by longest prefix; None if unknown."""
  model = model.split("/")[-1]  # "models/gemini-2.5-flash" -> "gemini-2.5-flash"
  best = None
  for name, price in PRICES_PER_MTOK.items():
    if model == name or model.startswith(name + "-") or model.startswith(name + ":"):
      if best is None or len(name) > len(best[0]):
        best = (name, price)
  return best[1] if best else None


def estimate_cost(
    prompt_tokens: int, completion_tokens: int, price: Optional[tuple[float, float]]
) -> Optional[float]:
  if price is None:
    return None
  return prompt_tokens * price[0] / 1e6 + completion_tokens * price[1] / 1e6


def _guess_backend(model: str) -> str:
  return "gemini" if model.split("/")[-1].startswith("gemini") else "openai"


def image_tokens(
    model: str,
    image_size: tuple[int, int] = (64, 64),
    detail: str = "low",
    backend: Optional[str] = None,
) -> int:
  """Estimated input tokens one image costs (see the module docstring)."""
  backend = backend or _guess_backend(model)
  h, w = image_size
  if backend == "gemini":
    if h <= 384 and w <= 384:
      return 258
    return 258 * math.ceil(h / 768) * math.ceil(w / 768)
  base, tile = (2833, 5667) if model.startswith("gpt-4o-mini") else (85, 170)
  if detail == "low":
    return base
  scale = min(1.0, 2048 / max(h, w))
  h, w = h * scale, w * scale
  scale = min(1.0, 768 / min(h, w))
  h, w = h * scale, w * scale
  return base + tile * math.ceil(h / 512) * math.ceil(w / 512)


@dataclasses.dataclass
class DryRunEstimate:
  """What a scoring run would cost (an estimate; see `gem_jax.scorers.cost`)."""

  backend: str
  model: str
  num_requests: int
  image_tokens_per_request: int
  prompt_tokens_per_request: int  # text + image
  completion_tokens_per_request: int
  prompt_tokens: int  # totals over all requests
  completion_tokens: int
  cost_usd: Optional[float]  # None: model not in the price table
  price_per_mtok: Optional[tuple[float, float]]

  def __str__(self) -> str:
    cost = (
        "unknown (model not in the price table)"
        if self.cost_usd is None
        else f"~${self.cost_usd:.2f}"
    )
    return (
        f"{self.backend}:{self.model}: {self.num_requests} requests, "
        f"~{self.prompt_tokens:,} input + ~{self.completion_tokens:,} output tokens, "
        f"estimated cost {cost} (an estimate; re-asks/retries not included)"
    )


def dry_run(
    num_images: int,
    attributes: Any,
    model: str = "gpt-4o",
    *,
    backend: Optional[str] = None,
    image_size: tuple[int, int] = (64, 64),
    detail: str = "low",
    price_per_mtok: Optional[tuple[float, float]] = None,
) -> DryRunEstimate:
  """Estimate requests, tokens and dollars for scoring `num_images` images (no network)."""
  attrs = normalize_attributes(attributes)
  backend = backend or _guess_backend(model)
  p = build_prompt(attrs)
  text_tokens = math.ceil(len(p.system + p.before_image + p.after_image) / 4) + 2 * 4
  img = image_tokens(model, image_size, detail, backend)
  answer = json.dumps({a.name: 3 for a in attrs})
  out_tokens = math.ceil(len(answer) / 4) + 2
  n = int(num_images)
  price = price_per_mtok if price_per_mtok is not None else price_for(model)
  pt, ct = n * (text_tokens + img), n * out_tokens
  return DryRunEstimate(
      backend=backend,
      model=model,
      num_requests=n,
      image_tokens_per_request=img,
      prompt_tokens_per_request=text_tokens + img,
      completion_tokens_per_request=out_tokens,
      prompt_tokens=pt,
      completion_tokens=ct,
      cost_usd=estimate_cost(pt, ct, price),
      price_per_mtok=price,
  )
