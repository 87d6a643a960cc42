"""Tests of gem_jax.scorers against local fake servers driven through the real clients.

The fake servers (tests/fake_servers.py) listen on 127.0.0.1 only; nothing here uses the
internet. Retry delays are shrunk with a fast RetryPolicy; Retry-After waits are real
(1 s) because honouring them is what is tested.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time

import numpy as np
import pytest

try:
  from fake_servers import GeminiFakeServer, OpenAIFakeServer, Reply, default_scores
except ImportError:  # tests/ imported as a package
  from tests.fake_servers import GeminiFakeServer, OpenAIFakeServer, Reply, default_scores

from gem_jax.scorers import (
    PROMPT_VERSION,
    Attribute,
    CachedScorer,
    MalformedAnswer,
    MissingScoreError,
    RetryPolicy,
    ScoreCache,
    ScorerAuthError,
    ScorerRequestError,
    build_prompt,
    dry_run,
    encode_png,
    image_sha256,
    make_scorer,
    parse_answer,
)
from gem_jax.scorers.gemini_backend import GeminiScorer
from gem_jax.scorers.openai_backend import OpenAIScorer
from gem_jax.scorers.oracle import OracleScorer, labels_to_levels
from gem_jax.scorers.replay import ReplayScorer, save_scores_npz

ATTRS = ["bangs", "bald", "gender"]
FAST = RetryPolicy(backoff_initial_s=0.01, backoff_max_s=0.05, max_retries=4, max_reasks=2)
OPENAI_KEY = "sk-test-OPENAI-0123456789"
GEMINI_KEY = "g-test-GEMINI-0123456789"


def images(n, seed=0, size=8):
  return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def expected(imgs, attrs=ATTRS):
  return np.array(
      [[default_scores(encode_png(im), attrs)[a] for a in attrs] for im in imgs], np.int32
  )


@pytest.fixture(autouse=True)
def _env(monkeypatch):
  monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
  monkeypatch.setenv("GEMINI_API_KEY", GEMINI_KEY)
  monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
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


# ---------------------------------------------------------------------------------------
# prompt and parsing
# ---------------------------------------------------------------------------------------
def test_prompt_template_and_version():
  assert PROMPT_VERSION == "fig3-v1"
  p = build_prompt({"bangs": "hair covering the forehead", "bald": None})
  assert "assign a score ranging from 0 to 5 for each attribute" in p.system
  assert "- bangs: hair covering the forehead" in p.after_image
  assert "- bald" in p.after_image
  assert "score each <attribute> independently" in p.after_image
  assert '{"bangs": <score>, "bald": <score>}' in p.after_image
  p2 = build_prompt([Attribute("bangs")], reask_reason="answer is not valid JSON")
  assert "could not be used (answer is not valid JSON)" in p2.after_image


@pytest.mark.parametrize(
    "text,want",
    [
        ('{"bangs": 3, "bald": 0, "gender": 5}', [3, 0, 5]),
        ('```json\n{"bangs": 1, "bald": 2, "gender": 3}\n```', [1, 2, 3]),
        ('```\n{"gender": 3, "bald": 2, "bangs": 1, "extra": 9}\n```', [1, 2, 3]),
        ('  {"bangs":0,"bald":0,"gender":0}  ', [0, 0, 0]),
    ],
)
def test_parse_answer_ok(text, want):
  assert parse_answer(text, ATTRS) == want


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "bangs: 3",
        "[1, 2, 3]",
        '{"bangs": 3, "bald": 0}',
        '{"bangs": 6, "bald": 0, "gender": 0}',
        '{"bangs": -1, "bald": 0, "gender": 0}',
        '{"bangs": 2.5, "bald": 0, "gender": 0}',
        '{"bangs": "3", "bald": 0, "gender": 0}',
        '{"bangs": true, "bald": 0, "gender": 0}',
        'Sure! {"bangs": 3, "bald": 0, "gender": 0}',
    ],
)
def test_parse_answer_strict(text):
  with pytest.raises(MalformedAnswer):
    parse_answer(text, ATTRS)


def test_png_encoder_roundtrip():
  PIL = pytest.importorskip("PIL.Image")
  import io

  im = images(1, size=13)[0]
  back = np.asarray(PIL.open(io.BytesIO(encode_png(im))).convert("RGB"))
  np.testing.assert_array_equal(back, im)


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
  imgs = images(1)
  script = [Reply.error(429, "Rate limit reached", {"Retry-After": "1"})]
  with OpenAIFakeServer(script=script) as srv:
    s = openai_scorer(srv)
    out = s.score(imgs, ATTRS)
    assert srv.num_requests == 2
    gap = srv.requests[1].t - srv.requests[0].t
  assert gap >= 0.95, gap
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


def test_openai_timeout_then_success():
  imgs = images(1)
  with OpenAIFakeServer(script=[Reply.answer(delay_s=1.5)]) as srv:
    s = openai_scorer(srv, timeout_s=0.4)
    t0 = time.monotonic()
    out = s.score(imgs, ATTRS)
    assert time.monotonic() - t0 < 1.4  # did not wait for the slow answer
    assert srv.num_requests == 2
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
  imgs = images(9)
  with OpenAIFakeServer(default=Reply.answer(delay_s=0.25)) as srv:
    s = openai_scorer(srv, concurrency=4)
    t0 = time.monotonic()
    out = s.score(imgs, ATTRS)
    elapsed = time.monotonic() - t0
    assert srv.max_in_flight >= 2
    assert srv.max_in_flight <= 4
  assert elapsed < 9 * 0.25
  np.testing.assert_array_equal(out, expected(imgs))


def test_openai_rate_limit_spacing():
  with OpenAIFakeServer() as srv:
    openai_scorer(srv, concurrency=4, requests_per_minute=600).score(images(4), ATTRS)
    ts = sorted(r.t for r in srv.requests)
  gaps = np.diff(ts)  # 600 rpm -> one request start per 0.1 s (arrivals jitter a little)
  assert ts[-1] - ts[0] >= 0.27 and gaps.min() >= 0.04, gaps


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
          requests_per_minute=None,
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


def test_gemini_429_and_500_retried():
  imgs = images(1)
  script = [Reply.error(429, "Resource has been exhausted", {"Retry-After": "1"}), Reply.error(500)]
  with GeminiFakeServer(api_key=GEMINI_KEY, script=script) as srv:
    s = gemini_scorer(srv)
    out = s.score(imgs, ATTRS)
    assert srv.num_requests == 3
    assert srv.requests[1].t - srv.requests[0].t >= 0.95
  assert s.last_usage.retries == 2
  np.testing.assert_array_equal(out, expected(imgs))


def test_gemini_timeout_then_success():
  imgs = images(1)
  with GeminiFakeServer(script=[Reply.answer(delay_s=3.0)]) as srv:
    s = gemini_scorer(srv, timeout_s=1.0)  # google-genai takes whole milliseconds
    t0 = time.monotonic()
    out = s.score(imgs, ATTRS)
    assert time.monotonic() - t0 < 2.8  # did not wait for the slow answer
    assert srv.num_requests == 2
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


# ---------------------------------------------------------------------------------------
# Oracle (a simulation)
# ---------------------------------------------------------------------------------------
def _oracle_data(n=5000, n_attr=2, seed=0):
  rng = np.random.default_rng(seed)
  imgs = rng.integers(0, 256, (n, 4, 4, 3), dtype=np.uint8)
  labels = rng.integers(0, 6, (n, n_attr))
  return imgs, labels


@pytest.mark.parametrize("error_model", ["uniform", "adjacent"])
def test_oracle_accuracy_statistics(error_model):
  imgs, labels = _oracle_data()
  o = OracleScorer.from_dataset(
      imgs, labels, ["a", "b"], accuracy=0.884, seed=1, error_model=error_model
  )
  out = o.score(imgs, ["a", "b"])
  acc = (out == labels).mean()
  assert abs(acc - 0.884) < 0.02, acc
  wrong = out != labels
  if error_model == "uniform":
    diffs = (out - labels)[wrong]
    assert set(np.unique(out[wrong])) == set(range(6))
    assert np.abs(diffs).max() >= 3
  else:
    assert np.all(np.abs(out - labels)[wrong] == 1)
  o2 = OracleScorer.from_dataset(imgs[:2000], labels[:2000], ["a", "b"], accuracy=0.5)
  assert abs((o2.score(imgs[:2000], ["a", "b"]) == labels[:2000]).mean() - 0.5) < 0.03


def test_oracle_deterministic_and_named(caplog):
  imgs, labels = _oracle_data(300, 3)
  with caplog.at_level(logging.WARNING, logger="gem_jax.scorers"):
    o = OracleScorer.from_dataset(imgs, labels, ["x", "y", "z"], seed=7)
  assert "oracle scorer: SIMULATED scores from ground-truth labels (accuracy=0.884" in caplog.text
  assert o.is_simulation is True and o.backend == "oracle" and o.model == "oracle-acc0.884"
  full = o.score(imgs, ["x", "y", "z"])
  np.testing.assert_array_equal(full, o.score(imgs, ["x", "y", "z"]))
  perm = np.random.default_rng(0).permutation(300)
  np.testing.assert_array_equal(o.score(imgs[perm], ["z", "x"]), full[perm][:, [2, 0]])
  again = OracleScorer.from_dataset(imgs, labels, ["x", "y", "z"], seed=7)
  np.testing.assert_array_equal(again.score(imgs, ["x", "y", "z"]), full)
  other = OracleScorer.from_dataset(imgs, labels, ["x", "y", "z"], seed=8)
  assert (other.score(imgs, ["x", "y", "z"]) != full).any()
  with pytest.raises(MissingScoreError, match="not in the label lookup"):
    o.score(images(1, seed=99, size=4), ["x"])
  with pytest.raises(MissingScoreError, match="no labels for attributes"):
    o.score(imgs[:1], ["w"])


def test_oracle_binary_labels_map_to_0_and_5():
  imgs, _ = _oracle_data(50, 1)
  labels = np.where(np.arange(50)[:, None] % 2 == 0, 1, -1) * np.ones((1, 2), int)
  labels[:, 1] = 1  # a constant column of a -1/+1 matrix is still binary
  np.testing.assert_array_equal(np.unique(labels_to_levels(labels)), [0, 5])
  o = OracleScorer.from_dataset(imgs, labels, ["Bangs", "Young"], accuracy=1.0)
  out = o.score(imgs, ["Bangs", "Young"])
  np.testing.assert_array_equal(out[:, 0], np.where(labels[:, 0] > 0, 5, 0))
  np.testing.assert_array_equal(out[:, 1], 5)
  o0 = OracleScorer.from_dataset(
      imgs, (labels > 0).astype(int), ["Bangs", "Young"], binary=True, accuracy=1.0
  )
  np.testing.assert_array_equal(o0.score(imgs, ["Bangs", "Young"]), out)


def test_make_scorer_oracle_and_unknown():
  imgs, labels = _oracle_data(10, 1)
  o = OracleScorer.from_dataset(imgs, labels, ["a"])
  s = make_scorer("oracle", label_lookup=o.label_lookup, attribute_names=["a"], accuracy=0.9)
  assert s.is_simulation and s.model == "oracle-acc0.9"
  with pytest.raises(ValueError) as ei:
    make_scorer("gpt4")
  for b in ("openai", "gemini", "oracle", "replay"):
    assert b in str(ei.value)
  with pytest.raises(ValueError):
    make_scorer("oracle", model="gpt-4o", label_lookup={}, attribute_names=["a"])


# ---------------------------------------------------------------------------------------
# Cache and replay
# ---------------------------------------------------------------------------------------
def test_cached_oracle_then_replay(tmp_path):
  imgs, labels = _oracle_data(20, 2)
  path = tmp_path / "oracle_cache.jsonl"
  o = OracleScorer.from_dataset(imgs, labels, ["a", "b"])
  out = CachedScorer(o, path).score(imgs, ["a", "b"])
  entries = [json.loads(l) for l in path.read_text().splitlines()]
  assert len(entries) == 20 and entries[0]["backend"] == "oracle"
  assert entries[0]["is_simulation"] is True and entries[0]["attributes"] == ["a", "b"]
  r = ReplayScorer(path)
  assert r.is_simulation and r.backend == "replay" and r.source_model == o.model
  np.testing.assert_array_equal(r.score(imgs[::-1], ["b", "a"]), out[::-1][:, [1, 0]])
  with pytest.raises(MissingScoreError, match="no scores"):
    r.score(images(1, seed=42, size=4), ["a"])
  with pytest.raises(MissingScoreError):
    r.score(imgs, ["c"])
  # npz round trip
  npz = tmp_path / "scores.npz"
  save_scores_npz(
      npz,
      [image_sha256(im) for im in imgs],
      out,
      ["a", "b"],
      backend="oracle",
      model=o.model,
      is_simulation=True,
  )
  r2 = make_scorer("replay", path=str(npz))
  np.testing.assert_array_equal(r2.score(imgs, ["a", "b"]), out)
  assert r2.is_simulation


def test_replay_ambiguous_cache_needs_selection(tmp_path):
  imgs, labels = _oracle_data(5, 1)
  path = tmp_path / "c.jsonl"
  CachedScorer(OracleScorer.from_dataset(imgs, labels, ["a"], seed=0), path).score(imgs, ["a"])
  CachedScorer(OracleScorer.from_dataset(imgs, labels, ["a"], seed=0, accuracy=0.5), path).score(
      imgs, ["a"]
  )
  with pytest.raises(ValueError, match="several sources"):
    ReplayScorer(path)
  assert len(ReplayScorer(path, model="oracle-acc0.5")) == 5


def test_cache_half_written_line_then_append(tmp_path, caplog):
  path = tmp_path / "c.jsonl"
  c = ScoreCache(path)
  c.append("aa", "openai", "gpt-4o", "fig3-v1", ["x"], [3])
  c.close()
  with open(path, "ab") as f:
    f.write(b'{"v":1,"sha256":"bb","backend":"openai","mo')  # crash mid-write
  with caplog.at_level(logging.WARNING, logger="gem_jax.scorers"):
    c2 = ScoreCache(path)
  assert "half-written" in caplog.text
  assert c2.lookup("aa", "openai", "gpt-4o", "fig3-v1", ["x"]) == {"x": 3}
  assert c2.lookup("bb", "openai", "gpt-4o", "fig3-v1", ["x"]) == {}
  c2.append("bb", "openai", "gpt-4o", "fig3-v1", ["x"], [4])
  c2.close()
  c3 = ScoreCache(path)
  assert c3.lookup("bb", "openai", "gpt-4o", "fig3-v1", ["x"]) == {"x": 4}
  assert c3.lookup("bb", "openai", "gpt-4o", "fig3-v2", ["x"]) == {}  # version is in the key
  assert c3.lookup("bb", "gemini", "gpt-4o", "fig3-v1", ["x"]) == {}
  assert len(path.read_bytes().splitlines()) == 3


# ---------------------------------------------------------------------------------------
# Dry run / cost estimate
# ---------------------------------------------------------------------------------------
def test_dry_run_numbers():
  six = ["bangs", "bald", "gender", "beard", "blond", "makeup"]
  est = dry_run(1500, six, "gpt-4o")
  assert est.num_requests == 1500
  assert est.image_tokens_per_request == 85
  assert est.prompt_tokens == 1500 * est.prompt_tokens_per_request
  assert 85 < est.prompt_tokens_per_request < 600
  assert 10 < est.completion_tokens_per_request < 40
  assert est.cost_usd == pytest.approx(
      (est.prompt_tokens * 2.5 + est.completion_tokens * 10.0) / 1e6
  )
  assert 0.3 < est.cost_usd < 3.0
  assert dry_run(10, six, "gpt-4o", detail="high").image_tokens_per_request == 255
  assert (
      dry_run(10, six, "gpt-4o", detail="high", image_size=(1024, 1024)).image_tokens_per_request
      == 85 + 170 * 4
  )
  assert dry_run(10, six, "gemini-2.5-flash").image_tokens_per_request == 258
  assert dry_run(10, six, "my-local-llava").cost_usd is None
  assert "estimate" in str(est)
