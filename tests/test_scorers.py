"""Tests of gem_jax.scorers: the prompt and its parser, the oracle, the answer cache, replay,
the factory and the dry run. The API backends against local fake servers are in
test_scorers_openai.py and test_scorers_gemini.py.
"""

from __future__ import annotations

import io
import json
import logging

import numpy as np
import pytest

from gem_jax.scorers import (
    PROMPT_VERSION,
    Attribute,
    CachedScorer,
    MalformedAnswer,
    MissingScoreError,
    ScoreCache,
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

try:
  from scorer_helpers import ATTRS, fake_env, images
except ImportError:  # tests/ imported as a package
  from tests.scorer_helpers import ATTRS, fake_env, images


@pytest.fixture(autouse=True)
def _env(monkeypatch):
  fake_env(monkeypatch)


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
  im = images(1, size=13)[0]
  back = np.asarray(PIL.open(io.BytesIO(encode_png(im))).convert("RGB"))
  np.testing.assert_array_equal(back, im)



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


def test_make_scorer_one_set_of_options_for_every_backend(tmp_path):
  """One call site passes all of a run's options; each backend takes its own, ignores the
  rest, and None means its default (rate 0: no limit)."""
  imgs, labels = _oracle_data(10, 2)
  common = dict(images=imgs, labels=labels, label_names=["a", "b"], accuracy=0.9, seed=3,
                error_model="adjacent", concurrency=2, base_url="http://127.0.0.1:9/v1",
                requests_per_minute=None, response_format="json_object", replay_path=None)
  o = make_scorer("oracle", **common)
  assert isinstance(o, OracleScorer) and o.model == "oracle-acc0.9-adjacent" and o.seed == 3
  want = OracleScorer.from_dataset(imgs, labels, ["a", "b"], accuracy=0.9, seed=3,
                                   error_model="adjacent")
  np.testing.assert_array_equal(o.score(imgs, ["b", "a"]), want.score(imgs, ["b", "a"]))
  api = make_scorer("openai", "fake-vlm", **common)
  assert isinstance(api, OpenAIScorer) and api.model == "fake-vlm"
  assert api.concurrency == 2 and api.response_format == "json_object"
  assert api.base_url == "http://127.0.0.1:9/v1"
  assert api.requests_per_minute is None  # a custom base_url has no default limit
  assert make_scorer("openai").requests_per_minute == 450  # api.openai.com has
  assert make_scorer("openai", requests_per_minute=0).requests_per_minute is None
  gem = make_scorer("gemini", **common)  # response_format is not a Gemini option
  assert isinstance(gem, GeminiScorer) and gem.model == "gemini-2.5-flash"
  cache = tmp_path / "c.jsonl"
  cached = make_scorer("oracle", cache_path=str(cache), **common)
  assert isinstance(cached, CachedScorer)
  scores = cached.score(imgs, ["a", "b"])
  replay = make_scorer("replay", **dict(common, replay_path=str(cache)))
  assert isinstance(replay, ReplayScorer) and replay.is_simulation
  np.testing.assert_array_equal(replay.score(imgs, ["a", "b"]), scores)
  with pytest.raises(ValueError, match="labels"):
    make_scorer("oracle", images=imgs)
  with pytest.raises(ValueError, match="replay_path"):
    make_scorer("replay")


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
