"""`--dry_run`: how many requests a scoring run would send and what they would cost."""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, Optional, Sequence

import numpy as np

from gem_jax.scorers import PROMPT_VERSION, DryRunEstimate, ScoreCache, default_model, dry_run
from gem_jax.scoring.options import ScoringOptions

__all__ = ["count_cached", "estimate_request_cost", "print_dry_run"]


def estimate_request_cost(
    backend: str,
    model: str,
    num_requests: int,
    attributes: Sequence[str],
    *,
    base_url: Optional[str] = None,
    image_size: tuple[int, int] = (64, 64),
) -> DryRunEstimate:
  """`gem_jax.scorers.dry_run` for `num_requests` images; cost unknown for a custom server."""
  est = dry_run(num_requests, list(attributes), model, backend=backend, image_size=image_size)
  vendor = "api.openai.com" if backend == "openai" else "googleapis.com"
  if backend == "openai" and not base_url:
    base_url = os.environ.get("OPENAI_BASE_URL") or None
  if base_url and vendor not in base_url:
    est = dataclasses.replace(est, cost_usd=None, price_per_mtok=None)
  return est


def count_cached(
    cache_path: str,
    hashes: Sequence[str],
    backend: str,
    model: str,
    prompt_version: str,
    attributes: Sequence[str],
) -> int:
  """Images whose every requested attribute is already answered in the cache."""
  if not os.path.exists(cache_path):
    return 0
  cache = ScoreCache(cache_path)
  n = 0
  for h in dict.fromkeys(hashes):
    if len(cache.lookup(h, backend, model, prompt_version, list(attributes))) == len(attributes):
      n += 1
  return n


def _offline(o: ScoringOptions, images: np.ndarray, n_unique: int, print_fn) -> dict:
  what = "an offline SIMULATION from labels" if o.backend == "oracle" else "scores from a file"
  print_fn(
      f"dry run: {o.backend}: {len(images)} images ({n_unique} unique) would be scored by "
      f"{what}; 0 network requests, no cost. Nothing was sent or written."
  )
  return {
      "dry_run": True,
      "backend": o.backend,
      "num_images": len(images),
      "num_requests": 0,
      "cost_usd": 0.0,
  }


def print_dry_run(o: ScoringOptions, attributes: Sequence[str], images: np.ndarray,
                  hashes: Sequence[str], cache_path: Optional[str],
                  print_fn: Callable[[str], None]) -> dict:
  """Prints the request count (less what the cache answers) and the estimated token cost of
  scoring `images` [N, H, W, 3]; sends and writes nothing. Returns the numbers."""
  n_unique = len(set(hashes))
  if o.backend in ("oracle", "replay"):
    return _offline(o, images, n_unique, print_fn)
  model = default_model(o.backend, o.model)
  cached = (
      count_cached(cache_path, hashes, o.backend, model, PROMPT_VERSION, attributes)
      if cache_path
      else 0
  )

  def estimate(count: int) -> DryRunEstimate:
    return estimate_request_cost(o.backend, model, count, attributes, base_url=o.base_url,
                                 image_size=tuple(images.shape[1:3]))

  est, full = estimate(n_unique - cached), estimate(n_unique)
  print_fn(
      f"dry run: {o.backend}:{model} on {len(images)} images ({n_unique} unique), {len(attributes)}"
      f" attributes ({', '.join(attributes)}), one request per image"
  )
  if cache_path:
    print_fn(f"  already answered in the cache {cache_path}: {cached}")
  else:
    print_fn("  (no --out or --cache given: no cache consulted)")
  print_fn(f"  to send: {est}")
  if cached:
    print_fn(f"  (without the cache: {full})")
  print_fn("  nothing was sent or written")
  return {
      "dry_run": True,
      "backend": o.backend,
      "model": model,
      "num_images": len(images),
      "cached": cached,
      "num_requests": est.num_requests,
      "prompt_tokens": est.prompt_tokens,
      "completion_tokens": est.completion_tokens,
      "cost_usd": est.cost_usd,
  }
