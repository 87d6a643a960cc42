"""Request limits of the API scorers: the default limit applies only to the vendor's endpoint,
and the server's rate-limit headers hold new requests. The limiter and the retries run on a fake
clock whose sleeps are recorded, so the tests count waits instead of timing anything."""

from __future__ import annotations

import asyncio
import logging

import numpy as np
import pytest

from gem_jax.scorers import GeminiScorer, OpenAIScorer, make_scorer
from gem_jax.scorers.retry import RateLimiter, parse_duration, parse_rate_limit_wait

try:
  from fake_servers import OpenAIFakeServer, Reply
  from scorer_helpers import (
    ATTRS,
    FakeClock,
    expected,
    fake_env,
    images,
    on_fake_clock,
    openai_scorer,
  )
except ImportError:  # tests/ imported as a package
  from tests.fake_servers import OpenAIFakeServer, Reply
  from tests.scorer_helpers import (
    ATTRS,
    FakeClock,
    expected,
    fake_env,
    images,
    on_fake_clock,
    openai_scorer,
  )

LOCAL = "http://127.0.0.1:9/v1"
QUOTA_USED = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1m30s"}


@pytest.fixture(autouse=True)
def _env(monkeypatch):
  fake_env(monkeypatch)


def test_default_limit_only_on_the_vendor_endpoint(monkeypatch):
  assert OpenAIScorer().requests_per_minute == 450
  assert OpenAIScorer(base_url="https://api.openai.com/v1").requests_per_minute == 450
  assert OpenAIScorer(base_url=LOCAL).requests_per_minute is None
  assert OpenAIScorer(base_url=LOCAL, requests_per_minute=600).requests_per_minute == 600
  assert OpenAIScorer(requests_per_minute=0).requests_per_minute is None
  assert OpenAIScorer(base_url="http://proxy/api.openai.com/v1").custom_endpoint
  assert GeminiScorer().requests_per_minute == 500
  official = GeminiScorer(base_url="https://generativelanguage.googleapis.com")
  assert official.requests_per_minute == 500 and not official.custom_endpoint
  assert GeminiScorer(base_url=LOCAL).requests_per_minute is None
  assert GeminiScorer(base_url=LOCAL, requests_per_minute=60).requests_per_minute == 60
  assert make_scorer("openai").requests_per_minute == 450
  assert make_scorer("openai", base_url=LOCAL).requests_per_minute is None
  assert make_scorer("openai", requests_per_minute=0).requests_per_minute is None
  assert make_scorer("gemini", base_url=LOCAL, requests_per_minute=30).requests_per_minute == 30
  monkeypatch.setenv("OPENAI_BASE_URL", LOCAL)
  monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", LOCAL)
  assert OpenAIScorer().requests_per_minute is None and GeminiScorer().custom_endpoint


def test_parse_duration_and_rate_limit_headers():
  assert parse_duration("1s") == 1.0 and parse_duration("6m0s") == 360.0
  assert parse_duration("20ms") == pytest.approx(0.02)
  assert parse_duration("1h2m3.5s") == 3723.5 and parse_duration("2.5") == 2.5
  for bad in (None, "", "soon", "5x", "1s2", "m"):
    assert parse_duration(bad) is None, bad
  assert parse_rate_limit_wait(QUOTA_USED) == 90.0
  assert parse_rate_limit_wait(dict(QUOTA_USED, **{"x-ratelimit-remaining-requests": "3"})) is None
  assert parse_rate_limit_wait({"x-ratelimit-reset-requests": "1s"}) is None
  assert parse_rate_limit_wait(None) is None


def test_limiter_spaces_requests_and_pauses_on_a_fake_clock():
  async def run(limiter, n, pause_after_first=None):
    await limiter.acquire()
    if pause_after_first is not None:
      limiter.pause_for(pause_after_first)
    for _ in range(n - 1):
      await limiter.acquire()

  spaced = FakeClock()
  asyncio.run(run(RateLimiter(600, clock=spaced.clock, sleep=spaced.sleep), 4))
  assert spaced.waits == pytest.approx([0.1, 0.1, 0.1])  # 600 rpm: one start per 0.1 s
  paused = FakeClock()
  asyncio.run(run(RateLimiter(None, clock=paused.clock, sleep=paused.sleep), 3, 5.0))
  assert paused.waits == [5.0]  # no limit, but the pause holds the next start once


def test_custom_base_url_is_not_throttled_by_default():
  with OpenAIFakeServer() as srv:
    s = openai_scorer(srv, concurrency=8, requests_per_minute=None)
    fake = on_fake_clock(s)
    out = s.score(images(24), ATTRS)
    assert srv.num_requests == 24
  assert s.requests_per_minute is None and fake.waits == []
  np.testing.assert_array_equal(out, expected(images(24)))


def test_explicit_limit_applies_to_a_custom_base_url():
  with OpenAIFakeServer() as srv:
    s = openai_scorer(srv, concurrency=1, requests_per_minute=600)
    fake = on_fake_clock(s)
    s.score(images(5), ATTRS)
  assert fake.waits == pytest.approx([0.1] * 4)


def test_quota_used_up_holds_the_next_request_until_the_reset(caplog):
  script = [Reply(kind="answer", headers=QUOTA_USED)]
  with OpenAIFakeServer(script=script) as srv:
    s = openai_scorer(srv, concurrency=1)
    fake = on_fake_clock(s)
    with caplog.at_level(logging.INFO, logger="gem_jax.scorers"):
      out = s.score(images(3), ATTRS)
    assert srv.num_requests == 3
  assert fake.waits == [90.0]  # "1m30s", once: the later answers carry no such headers
  assert "request quota is used up; holding new requests for 90.00 s" in caplog.text
  np.testing.assert_array_equal(out, expected(images(3)))


def test_quota_headers_with_requests_left_or_a_long_reset():
  left = dict(QUOTA_USED, **{"x-ratelimit-remaining-requests": "7"})
  long = dict(QUOTA_USED, **{"x-ratelimit-reset-requests": "6m0s"})
  for headers, want in ((left, []), (long, [300.0])):  # 6 min capped at retry_after_max_s
    with OpenAIFakeServer(script=[Reply(kind="answer", headers=headers)]) as srv:
      s = openai_scorer(srv, concurrency=1)
      fake = on_fake_clock(s)
      s.score(images(2), ATTRS)
    assert fake.waits == want, headers


@pytest.mark.parametrize("headers, low", [
    ({"retry-after": "0.05"}, 0.05),
    ({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "20ms"}, 0.02),
])
def test_429_waits_for_retry_after_or_the_quota_reset(headers, low):
  with OpenAIFakeServer(script=[Reply.error(429, "Rate limit reached", headers)]) as srv:
    s = openai_scorer(srv, concurrency=1)
    fake = on_fake_clock(s)
    out = s.score(images(1), ATTRS)
    assert srv.num_requests == 2
  # The retry waits out the pause it set for every request, so the limiter has none left.
  assert len(fake.backoffs) == 1 and low <= fake.backoffs[0] <= 1.1 * low + 1e-9, fake.backoffs
  assert fake.waits == []
  np.testing.assert_array_equal(out, expected(images(1)))
