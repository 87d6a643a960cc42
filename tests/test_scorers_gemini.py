"""Tests of gem_jax.scorers' Gemini backend through the real `google-genai` client against a
local fake server (tests/fake_gemini_server.py, 127.0.0.1 only)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import numpy as np
import pytest

from gem_jax.scorers import ScorerAuthError, ScorerRequestError, encode_png, make_scorer

try:
  from fake_gemini_server import GeminiFakeServer
  from fake_servers import Reply
except ImportError:  # tests/ imported as a package
  from tests.fake_gemini_server import GeminiFakeServer
  from tests.fake_servers import Reply
try:
  from scorer_helpers import (
    ATTRS,
    FAST,
    GEMINI_KEY,
    expected,
    fake_env,
    gemini_scorer,
    images,
    on_fake_clock,
  )
except ImportError:  # tests/ imported as a package
  from tests.scorer_helpers import (
    ATTRS,
    FAST,
    GEMINI_KEY,
    expected,
    fake_env,
    gemini_scorer,
    images,
    on_fake_clock,
  )


@pytest.fixture(autouse=True)
def _env(monkeypatch):
  fake_env(monkeypatch)


# ---------------------------------------------------------------------------------------
# Gemini generateContent through the real `google-genai` client
# ---------------------------------------------------------------------------------------
def test_gemini_success_request_shape():
  imgs = images(3)
  with GeminiFakeServer(api_key=GEMINI_KEY) as srv:
    s = gemini_scorer(srv)
    out = s.score(imgs, ATTRS)
    assert srv.num_requests == 3 and not srv.handler_errors
    pngs = set()
    for req in srv.requests:
      assert GeminiFakeServer.model_of(req.path) == "gemini-2.5-flash"
      assert req.path.endswith("/models/gemini-2.5-flash:generateContent")
      assert req.headers["x-goog-api-key"] == GEMINI_KEY
      image, attrs, text = GeminiFakeServer.request_parts(req.body)
      pngs.add(image)
      assert attrs == ATTRS
      gc = req.body["generationConfig"]
      assert gc["responseMimeType"] == "application/json"
      assert gc["responseSchema"]["properties"]["bangs"]["type"] == "INTEGER"
      assert "assign a score ranging from 0 to 5" in text
    assert pngs == {encode_png(im) for im in imgs}
  np.testing.assert_array_equal(out, expected(imgs))
  assert s.last_usage.prompt_tokens == 360 and s.last_usage.completion_tokens == 60


def _images_sent(srv) -> list[bytes]:
  return [GeminiFakeServer.request_parts(r.body)[0] for r in srv.requests]


def test_gemini_429_and_500_retried():
  """A 429 with Retry-After: 1, then a 500: two retries of the same image, the first after 1 to
  1.1 s (+ up to 10% jitter), the second after the policy's second backoff (0.02 s, no
  jitter); the rate limiter has no pause left to wait out."""
  imgs = images(1)
  script = [Reply.error(429, "Resource has been exhausted", {"Retry-After": "1"}), Reply.error(500)]
  with GeminiFakeServer(api_key=GEMINI_KEY, script=script) as srv:
    s = gemini_scorer(srv, retry=dataclasses.replace(FAST, jitter=0.0))
    fake = on_fake_clock(s)
    out = s.score(imgs, ATTRS)
    assert srv.num_requests == 3
    assert _images_sent(srv) == [encode_png(imgs[0])] * 3
  assert len(fake.backoffs) == 2 and 1.0 <= fake.backoffs[0] <= 1.1, fake.backoffs
  assert fake.backoffs[1] == pytest.approx(0.02) and fake.waits == []
  assert s.last_usage.retries == 2
  np.testing.assert_array_equal(out, expected(imgs))


def test_gemini_timeout_then_success():
  """An answer 30 s late: the client's own 1 s timeout (google-genai takes whole milliseconds)
  ends the first request with a transport timeout, not the runner's backstop at timeout + 5 s,
  and one retry of the same image follows after the policy's first backoff (0.01 s)."""
  imgs = images(1)
  with GeminiFakeServer(script=[Reply.answer(delay_s=30.0)]) as srv:
    s = gemini_scorer(srv, timeout_s=1.0, retry=dataclasses.replace(FAST, jitter=0.0))
    fake = on_fake_clock(s)
    errors, classify = [], s._classify
    s._classify = lambda exc: errors.append(exc) or classify(exc)
    out = s.score(imgs, ATTRS)
    assert srv.num_requests == 2
    assert _images_sent(srv) == [encode_png(imgs[0])] * 2
  assert len(errors) == 1 and "Timeout" in type(errors[0]).__name__, errors
  assert not isinstance(errors[0], asyncio.TimeoutError)  # the backstop's error
  assert fake.backoffs == [0.01] and fake.waits == []
  assert s.last_usage.retries == 1
  np.testing.assert_array_equal(out, expected(imgs))


def test_gemini_sdk_does_not_retry_by_itself():
  with GeminiFakeServer(default=Reply.error(503)) as srv:
    with pytest.raises(ScorerRequestError):
      gemini_scorer(srv, max_retries=0).score(images(1), ATTRS)
    assert srv.num_requests == 1


@pytest.mark.parametrize("status", [401, 403])
def test_gemini_auth_error_immediate(status, caplog):
  with GeminiFakeServer(script=[Reply.error(status, "API key not valid.")]) as srv:
    with caplog.at_level(logging.DEBUG):
      with pytest.raises(ScorerAuthError) as ei:
        gemini_scorer(srv, concurrency=4).score(images(5), ATTRS)
    assert srv.num_requests == 1
  assert "GEMINI_API_KEY" in str(ei.value) and str(status) in str(ei.value)
  assert GEMINI_KEY not in str(ei.value) and GEMINI_KEY not in caplog.text


def test_gemini_wrong_key_is_auth_error(monkeypatch):
  monkeypatch.setenv("GEMINI_API_KEY", "g-wrong-key-0000")
  with GeminiFakeServer(api_key=GEMINI_KEY) as srv:
    with pytest.raises(ScorerAuthError, match="GEMINI_API_KEY"):
      gemini_scorer(srv).score(images(2), ATTRS)
    assert srv.num_requests == 1


def test_gemini_missing_key(monkeypatch):
  monkeypatch.delenv("GEMINI_API_KEY")
  with pytest.raises(ScorerAuthError, match="GEMINI_API_KEY"):
    make_scorer("gemini")
