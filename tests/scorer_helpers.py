"""Shared pieces of the scorer tests (test_scorers*.py): attributes, keys, a fast retry policy,
test images with the answers the fake servers give them, scorers aimed at a fake server, and a
fake clock that records the waits a scorer asks for instead of waiting."""

from __future__ import annotations

import asyncio

import numpy as np

from gem_jax.scorers import GeminiScorer, OpenAIScorer, RetryPolicy, encode_png
from gem_jax.scorers.retry import RateLimiter

try:
  from fake_servers import OpenAIFakeServer, default_scores
except ImportError:  # tests/ imported as a package
  from tests.fake_servers import OpenAIFakeServer, default_scores

ATTRS = ["bangs", "bald", "gender"]
FAST = RetryPolicy(backoff_initial_s=0.01, backoff_max_s=0.05, max_retries=4, max_reasks=2)
OPENAI_KEY = "sk-test-OPENAI-0123456789"
GEMINI_KEY = "g-test-GEMINI-0123456789"


def images(n, seed=0, size=8):
  """n random uint8 images [n, size, size, 3]."""
  return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def expected(imgs, attrs=ATTRS):
  """int32 [n, len(attrs)]: what the fake servers answer for `imgs` by default."""
  return np.array(
      [[default_scores(encode_png(im), attrs)[a] for a in attrs] for im in imgs], np.int32
  )


def fake_env(monkeypatch):
  """Test keys in the environment; no base URL, Vertex or API version from the caller's."""
  monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
  monkeypatch.setenv("GEMINI_API_KEY", GEMINI_KEY)
  monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
  monkeypatch.delenv("GOOGLE_GEMINI_BASE_URL", raising=False)
  monkeypatch.delenv("GOOGLE_GENAI_USE_VERTEXAI", raising=False)
  monkeypatch.delenv("GOOGLE_GENAI_API_VERSION", raising=False)


def openai_scorer(srv, **kw):
  kw.setdefault("progress", False)
  kw.setdefault("requests_per_minute", None)
  kw.setdefault("retry", FAST)
  kw.setdefault("timeout_s", 10.0)
  return OpenAIScorer(model=kw.pop("model", "gpt-4o"), base_url=srv.base_url, **kw)


def gemini_scorer(srv, **kw):
  kw.setdefault("progress", False)
  kw.setdefault("requests_per_minute", None)
  kw.setdefault("retry", FAST)
  kw.setdefault("timeout_s", 10.0)
  return GeminiScorer(model=kw.pop("model", "gemini-2.5-flash"), base_url=srv.base_url, **kw)


def png_of_openai_request(req):
  return OpenAIFakeServer.request_parts(req.body)[0]


class FakeClock:
  """Time that moves only when a scorer waits: `waits` lists the rate limiter's sleeps and
  `backoffs` the runner's waits before a retry (seconds, in order)."""

  def __init__(self):
    self.now, self.waits, self.backoffs = 0.0, [], []

  def clock(self) -> float:
    return self.now

  async def sleep(self, seconds: float) -> None:
    self.waits.append(seconds)
    self.now += seconds
    await asyncio.sleep(0)

  async def backoff(self, seconds: float) -> None:
    self.backoffs.append(seconds)
    self.now += seconds
    await asyncio.sleep(0)


def on_fake_clock(scorer) -> FakeClock:
  """Makes `scorer`'s runs wait on a fresh FakeClock (its rate limiter and its retries),
  returned."""
  fake = FakeClock()
  scorer._rate_limiter = lambda: RateLimiter(scorer.requests_per_minute, clock=fake.clock,
                                             sleep=fake.sleep)
  scorer._retry_sleep = fake.backoff
  return fake
