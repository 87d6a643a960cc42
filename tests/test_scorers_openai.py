"""Tests of gem_jax.scorers' OpenAI backend through the real `openai` client against a local
fake server (tests/fake_servers.py, 127.0.0.1 only; nothing here uses the internet). Retry
delays are shrunk with a fast RetryPolicy; where a wait is what is tested (Retry-After, the rate
limit, the backoff after a timeout) the scorer runs on a fake clock that records the waits it
asks for, so nothing is timed.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging

import numpy as np
import openai
import pytest

from gem_jax.scorers import (
    CachedScorer,
    ScoreCache,
    ScorerAuthError,
    ScorerRequestError,
    encode_png,
    image_sha256,
    make_scorer,
)

try:
  from fake_servers import OpenAIFakeServer, Reply
except ImportError:  # tests/ imported as a package
  from tests.fake_servers import OpenAIFakeServer, Reply
try:
  from scorer_helpers import (
    ATTRS,
    FAST,
    OPENAI_KEY,
    expected,
    fake_env,
    images,
    on_fake_clock,
    openai_scorer,
    png_of_openai_request,
  )
except ImportError:  # tests/ imported as a package
  from tests.scorer_helpers import (
    ATTRS,
    FAST,
    OPENAI_KEY,
    expected,
    fake_env,
    images,
    on_fake_clock,
    openai_scorer,
    png_of_openai_request,
  )


@pytest.fixture(autouse=True)
def _env(monkeypatch):
  fake_env(monkeypatch)


# ---------------------------------------------------------------------------------------
# OpenAI chat completions through the real `openai` client
# ---------------------------------------------------------------------------------------
def test_openai_success_request_shape():
  imgs = images(3)
  attrs = {"bangs": "hair covering the forehead", "bald": None, "gender": "male"}
  with OpenAIFakeServer(api_key=OPENAI_KEY) as srv:
    s = openai_scorer(srv, price_per_mtok=(2.5, 10.0))
    out = s.score(imgs, attrs)
    assert out.dtype == np.int32 and out.shape == (3, 3)
    np.testing.assert_array_equal(out, expected(imgs))
    assert srv.num_requests == 3 and not srv.handler_errors
    pngs = set()
    for req in srv.requests:
      assert req.path == "/v1/chat/completions"
      assert req.headers["authorization"] == f"Bearer {OPENAI_KEY}"
      body = req.body
      assert body["model"] == "gpt-4o"
      assert body["temperature"] == 0.0
      user = body["messages"][1]["content"]
      url = next(p["image_url"]["url"] for p in user if p["type"] == "image_url")
      assert url.startswith("data:image/png;base64,")
      pngs.add(base64.b64decode(url.split(",", 1)[1]))
      text = json.dumps(body["messages"])
      for a in ATTRS:
        assert a in text
      assert "hair covering the forehead" in text
      rf = body["response_format"]
      assert rf["type"] == "json_schema" and rf["json_schema"]["strict"] is True
      assert rf["json_schema"]["schema"]["required"] == ATTRS
    assert pngs == {encode_png(im) for im in imgs}
  assert s.last_usage.requests == 3
  assert s.last_usage.prompt_tokens == 3 * 120 and s.last_usage.completion_tokens == 3 * 20
  assert s.last_usage.cost_usd == pytest.approx(3 * (120 * 2.5 + 20 * 10.0) / 1e6)


def test_openai_duplicate_images_sent_once():
  imgs = images(2)
  batch = np.stack([imgs[0], imgs[1], imgs[0]])
  with OpenAIFakeServer() as srv:
    out = openai_scorer(srv).score(batch, ATTRS)
    assert srv.num_requests == 2
  np.testing.assert_array_equal(out, expected(batch))


def test_openai_429_retry_after_honoured():
  """A 429 with Retry-After: 1 is retried once, for the same image, after a wait of 1 to 1.1 s
  (+ up to 10% jitter) that also holds the rate limiter for as long."""
  imgs = images(1)
  script = [Reply.error(429, "Rate limit reached", {"Retry-After": "1"})]
  with OpenAIFakeServer(script=script) as srv:
    s = openai_scorer(srv)
    fake = on_fake_clock(s)
    out = s.score(imgs, ATTRS)
    assert srv.num_requests == 2
    assert [png_of_openai_request(r) for r in srv.requests] == [encode_png(imgs[0])] * 2
  assert len(fake.backoffs) == 1 and 1.0 <= fake.backoffs[0] <= 1.1, fake.backoffs
  assert fake.waits == []  # the retry waited out the pause it set
  assert s.last_usage.retries == 1
  np.testing.assert_array_equal(out, expected(imgs))


def test_openai_500_then_success():
  imgs = images(2)
  with OpenAIFakeServer(script=[Reply.error(500), Reply.error(503)]) as srv:
    s = openai_scorer(srv, concurrency=1)
    out = s.score(imgs, ATTRS)
    assert srv.num_requests == 4
  assert s.last_usage.retries == 2
  np.testing.assert_array_equal(out, expected(imgs))


def _recording_errors(scorer) -> list:
  """Makes `scorer` list every exception its requests end with (the runner classifies each)."""
  seen, classify = [], scorer._classify

  def recording(exc):
    seen.append(exc)
    return classify(exc)

  scorer._classify = recording
  return seen


def test_openai_timeout_then_success():
  """An answer 30 s late: the client's own 1 s timeout ends the first request (an
  APITimeoutError, not the runner's backstop at timeout + 5 s), and one retry of the same image
  follows after the policy's first backoff (0.01 s, no jitter)."""
  imgs = images(1)
  with OpenAIFakeServer(script=[Reply.answer(delay_s=30.0)]) as srv:
    s = openai_scorer(srv, timeout_s=1.0, retry=dataclasses.replace(FAST, jitter=0.0))
    fake = on_fake_clock(s)
    errors = _recording_errors(s)
    out = s.score(imgs, ATTRS)
    assert srv.num_requests == 2
    assert [png_of_openai_request(r) for r in srv.requests] == [encode_png(imgs[0])] * 2
  assert [type(e) for e in errors] == [openai.APITimeoutError]
  assert fake.backoffs == [0.01] and fake.waits == []
  assert s.last_usage.retries == 1
  np.testing.assert_array_equal(out, expected(imgs))


def test_openai_retries_exhausted_is_loud():
  with OpenAIFakeServer(default=Reply.error(502)) as srv:
    s = openai_scorer(srv, max_retries=2)
    with pytest.raises(ScorerRequestError, match="giving up"):
      s.score(images(1), ATTRS)
    assert srv.num_requests == 3


def test_openai_malformed_then_good_reasks():
  imgs = images(1)
  with OpenAIFakeServer(script=[Reply.content("bangs is 3, bald is 0")]) as srv:
    s = openai_scorer(srv)
    out = s.score(imgs, ATTRS)
    assert srv.num_requests == 2
    second = json.dumps(srv.requests[1].body["messages"])
    assert "could not be used" in second
  assert s.last_usage.reasks == 1
  np.testing.assert_array_equal(out, expected(imgs))


def test_openai_malformed_forever_gives_minus_one(caplog):
  imgs = images(2)
  bad_png = encode_png(imgs[0])

  def script_fn(n, req):
    if png_of_openai_request(req) == bad_png:
      return Reply.content('{"bangs": 7}')
    return None

  with OpenAIFakeServer(script_fn=script_fn) as srv:
    s = openai_scorer(srv, concurrency=1)
    with caplog.at_level(logging.WARNING, logger="gem_jax.scorers"):
      out = s.score(imgs, ATTRS)
    bad_requests = sum(png_of_openai_request(r) == bad_png for r in srv.requests)
  assert bad_requests == 1 + FAST.max_reasks
  np.testing.assert_array_equal(out[0], [-1, -1, -1])
  np.testing.assert_array_equal(out[1], expected(imgs[1:])[0])
  assert s.last_usage.missing == 1
  assert "scoring it -1" in caplog.text


def test_openai_401_immediate_clear_error(monkeypatch, caplog):
  monkeypatch.setenv("OPENAI_API_KEY", "sk-WRONG-key-987654321")
  with OpenAIFakeServer(api_key=OPENAI_KEY) as srv:
    s = openai_scorer(srv, concurrency=4)
    with caplog.at_level(logging.DEBUG):
      with pytest.raises(ScorerAuthError) as ei:
        s.score(images(6), ATTRS)
    assert srv.num_requests == 1  # no retry, and the others never went out
  msg = str(ei.value)
  assert "OPENAI_API_KEY" in msg and "401" in msg
  assert "sk-WRONG-key-987654321" not in msg
  assert "sk-WRONG-key-987654321" not in caplog.text


def test_openai_403_is_auth_error_and_key_redacted():
  key = OPENAI_KEY
  # a server that echoes the key in its error message must not leak it through us
  with OpenAIFakeServer(script=[Reply.error(403, f"key {key} may not use gpt-4o")]) as srv:
    with pytest.raises(ScorerAuthError) as ei:
      openai_scorer(srv).score(images(2), ATTRS)
    assert srv.num_requests == 1
  assert key not in str(ei.value) and "OPENAI_API_KEY" in str(ei.value)


def test_openai_bad_request_not_retried():
  script = [Reply.error(400, "response_format json_schema unsupported")]
  with OpenAIFakeServer(script=script) as srv:
    with pytest.raises(ScorerRequestError, match="json_schema unsupported"):
      openai_scorer(srv, concurrency=4).score(images(5), ATTRS)
    assert srv.num_requests == 1


def test_openai_concurrency_above_one():
  """Answers taking 0.25 s, concurrency 4: requests overlap at the server, never more than 4,
  each of the 9 images is asked for once."""
  imgs = images(9)
  with OpenAIFakeServer(default=Reply.answer(delay_s=0.25)) as srv:
    s = openai_scorer(srv, concurrency=4)
    out = s.score(imgs, ATTRS)
    assert 2 <= srv.max_in_flight <= 4
    assert sorted(png_of_openai_request(r) for r in srv.requests) == sorted(
        encode_png(im) for im in imgs)
  np.testing.assert_array_equal(out, expected(imgs))


def test_openai_rate_limit_spacing():
  """600 requests per minute with concurrency 4: the first request starts at once, each of the
  other three waits for its 0.1 s slot."""
  with OpenAIFakeServer() as srv:
    s = openai_scorer(srv, concurrency=4, requests_per_minute=600)
    fake = on_fake_clock(s)
    s.score(images(4), ATTRS)
    assert srv.num_requests == 4
  assert fake.waits == pytest.approx([0.1] * 3) and fake.backoffs == []


def test_openai_kill_and_resume_zero_repeats(tmp_path):
  imgs = images(10, seed=3)
  cache = tmp_path / "scores.jsonl"
  all_pngs = {encode_png(im) for im in imgs}

  # run 1: the server fails for good on the 5th request -> the run dies after 4 answers
  with OpenAIFakeServer(script_fn=lambda n, r: Reply.error(400, "boom") if n == 4 else None) as srv:
    with pytest.raises(ScorerRequestError):
      CachedScorer(openai_scorer(srv, concurrency=1), cache).score(imgs, ATTRS)
    answered = {png_of_openai_request(r) for r in srv.requests[:4]}
  assert len(ScoreCache(cache)) == 4

  # run 2: only the 6 missing images are requested
  with OpenAIFakeServer() as srv:
    s = CachedScorer(openai_scorer(srv, concurrency=3), cache)
    out = s.score(imgs, ATTRS)
    second = [png_of_openai_request(r) for r in srv.requests]
  assert len(second) == 6 and len(set(second)) == 6
  assert not (set(second) & answered)
  assert set(second) | answered == all_pngs
  np.testing.assert_array_equal(out, expected(imgs))

  # run 3: everything cached -> zero requests
  with OpenAIFakeServer() as srv:
    out3 = CachedScorer(openai_scorer(srv), cache).score(imgs, ATTRS)
    assert srv.num_requests == 0
  np.testing.assert_array_equal(out3, out)


def test_openai_crash_mid_write_resume(tmp_path, caplog):
  imgs = images(5, seed=4)
  cache = tmp_path / "scores.jsonl"
  with OpenAIFakeServer() as srv:
    CachedScorer(openai_scorer(srv, concurrency=1), cache).score(imgs, ATTRS)
  data = cache.read_bytes()
  lines = data.splitlines(keepends=True)
  last = lines[-1]
  lost_sha = json.loads(last)["sha256"]
  cache.write_bytes(b"".join(lines[:-1]) + last[: len(last) // 2])  # half-written last line
  with OpenAIFakeServer() as srv:
    with caplog.at_level(logging.WARNING, logger="gem_jax.scorers"):
      out = CachedScorer(openai_scorer(srv), cache).score(imgs, ATTRS)
    assert srv.num_requests == 1  # only the answer whose line was cut is asked again
    lost = [image_sha256(im) for im in imgs].index(lost_sha)
    assert png_of_openai_request(srv.requests[0]) == encode_png(imgs[lost])
  assert "half-written" in caplog.text
  np.testing.assert_array_equal(out, expected(imgs))
  # the new answer starts on a fresh line: every line but the broken one is valid JSON
  good = []
  for line in cache.read_bytes().splitlines():
    try:
      good.append(json.loads(line))
    except ValueError:
      pass
  assert len(good) == 5 and len(cache.read_bytes().splitlines()) == 6


def test_api_key_never_in_logs_or_cache(tmp_path, caplog, capfd):
  cache = tmp_path / "c.jsonl"
  script = [
      Reply.error(429, "slow", {"Retry-After": "0.05"}),
      Reply.error(500),
      Reply.content("not json"),
  ]
  with OpenAIFakeServer(api_key=OPENAI_KEY, script=script) as srv:
    with caplog.at_level(logging.DEBUG):
      s = make_scorer(
          "openai",
          base_url=srv.base_url,
          cache_path=str(cache),
          progress=True,
          requests_per_minute=0,
          retry=FAST,
          concurrency=1,
      )
      out = s.score(images(3), ATTRS)
      assert repr(s) and s.describe()
  np.testing.assert_array_equal(out, expected(images(3)))
  captured = capfd.readouterr()
  for blob in (
      cache.read_text(),
      caplog.text,
      captured.out,
      captured.err,
      json.dumps(s.describe()),
      repr(s),
  ):
    assert OPENAI_KEY not in blob
  assert "gem_jax.scorers" in caplog.text  # the logs were captured at all


def test_sync_score_inside_running_event_loop():
  imgs = images(2)
  with OpenAIFakeServer() as srv:
    s = openai_scorer(srv)

    async def notebook_cell():  # Jupyter runs cells inside a running loop
      return s.score(imgs, ATTRS)

    out = asyncio.run(notebook_cell())
  np.testing.assert_array_equal(out, expected(imgs))


def test_openai_missing_key(monkeypatch):
  monkeypatch.delenv("OPENAI_API_KEY")
  with pytest.raises(ScorerAuthError, match="OPENAI_API_KEY"):
    make_scorer("openai")
  # a local server needs no key: a placeholder is sent
  with OpenAIFakeServer() as srv:
    out = openai_scorer(srv).score(images(1), ATTRS)
    assert srv.requests[0].headers["authorization"] == "Bearer not-needed"
  np.testing.assert_array_equal(out, expected(images(1)))


def test_openai_new_attribute_asks_only_missing(tmp_path):
  imgs = images(2)
  cache = tmp_path / "c.jsonl"
  with OpenAIFakeServer() as srv:
    s = CachedScorer(openai_scorer(srv), cache)
    s.score(imgs, ATTRS)
    assert srv.num_requests == 2
    sub = s.score(imgs, ["gender", "bangs"])  # subset: all cached
    assert srv.num_requests == 2
    np.testing.assert_array_equal(sub, expected(imgs)[:, [2, 0]])
    more = s.score(imgs, ATTRS + ["beard"])  # one new attribute: asked alone
    assert srv.num_requests == 4
    for r in srv.requests[2:]:
      assert r.body["response_format"]["json_schema"]["schema"]["required"] == ["beard"]
    want = np.concatenate([expected(imgs), expected(imgs, ["beard"])], axis=1)
    np.testing.assert_array_equal(more, want)
    # a changed description is a different question: asked again
    s.score(imgs, {"bangs": "fringe", "bald": None, "gender": None})
    assert srv.num_requests == 6
