"""Tests of `python -m experiments.score_attributes` and gem_jax.scoring (synthetic_faces/tiny)."""

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import ml_collections
import numpy as np
import pytest
from absl import flags
from PIL import Image

from experiments import score_attributes
from experiments.configs import synthetic_gem
from gem_jax import gem_pipeline, pipeline_figures, scoring
from gem_jax.data import get_dataset, load_examples
from gem_jax.data import synthetic_faces as sf
from gem_jax.relations import somers_d
from gem_jax.scorers import encode_png
from gem_jax.scorers.oracle import OracleScorer

try:
  from fake_servers import OpenAIFakeServer, default_scores
except ImportError:  # tests/ imported as a package
  from tests.fake_servers import OpenAIFakeServer, default_scores

N = 64
ATTRS = ["bangs", "bald", "gender", "beard", "blond", "makeup"]
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY = "sk-test-SCORE-ATTRIBUTES-0123456789"


def _argv(tfds_dir, out, *extra):
  return [
      "score_attributes",
      "--dataset=synthetic_faces",
      "--data_config=tiny",
      f"--data_dir={tfds_dir}",
      f"--out={out}",
      "--noprogress",
      *extra,
  ]


def _oracle_argv(tfds_dir, out, *extra):
  return _argv(tfds_dir, out, "--backend=oracle", f"--num_images={N}", *extra)


def _count_lines(path):
  with open(path) as f:
    return sum(1 for line in f if line.strip())


@pytest.fixture(scope="module")
def oracle_run(tfds_dir, tmp_path_factory):
  out = str(tmp_path_factory.mktemp("oracle_run"))
  lines = []
  result = score_attributes.run_cli(
      _oracle_argv(tfds_dir, out, "--bootstrap=20"), print_fn=lines.append
  )
  return out, result, lines


def test_oracle_run_writes_everything(oracle_run, tfds_dir):
  out, result, lines = oracle_run
  for name in [
      "scores.npy",
      "scores.json",
      "somers_d.npy",
      "somers_d.json",
      "somers_d.png",
      "scorer_accuracy.json",
      "somers_d_vs_truth.png",
      "score_cache.jsonl",
  ]:
    assert os.path.exists(os.path.join(out, name)), name

  scores = np.load(os.path.join(out, "scores.npy"))
  assert scores.dtype == np.int32 and scores.shape == (N, 6)
  assert scores.min() >= 0 and scores.max() <= 5
  meta = json.load(open(os.path.join(out, "scores.json")))
  assert meta["attributes"] == ATTRS
  assert meta["backend"] == "oracle" and meta["model"] == "oracle-acc0.884"
  assert meta["is_simulation"] is True
  assert meta["prompt_version"].startswith("oracle-")
  assert meta["cache"]["newly_scored"] == N and meta["cache"]["hits"] == 0
  assert _count_lines(os.path.join(out, "score_cache.jsonl")) == N

  s = np.load(os.path.join(out, "somers_d.npy"))
  assert s.dtype == np.float32 and s.shape == (6, 6)
  np.testing.assert_allclose(np.diag(s), 1.0)
  np.testing.assert_allclose(s, np.asarray(somers_d(scores)), atol=1e-6)
  sd = json.load(open(os.path.join(out, "somers_d.json")))
  assert sd["attributes"] == ATTRS and "impact of attributes[i] (row)" in sd["definition"]
  np.testing.assert_allclose(np.asarray(sd["somers_d"]), s, atol=1e-4)
  lo, hi = np.asarray(sd["bootstrap"]["lower"]), np.asarray(sd["bootstrap"]["upper"])
  assert lo.shape == hi.shape == (6, 6) and sd["bootstrap"]["num_resamples"] == 20
  assert np.all(lo <= s + 1e-4) and np.all(s <= hi + 1e-4)

  acc = json.load(open(os.path.join(out, "scorer_accuracy.json")))
  labels = load_examples(ml_collections.ConfigDict(
      {"name": "synthetic_faces", "config": "tiny", "data_dir": tfds_dir, "split": "train"}),
      "train", N)["attributes"].astype(np.int64)
  assert labels.shape == (N, 6)
  _assert_accuracy_of(acc, scores.astype(np.int64), labels)
  assert 0.75 < acc["mean_exact"] < 0.98  # the oracle's stated accuracy is 0.884
  s_labels = np.asarray(somers_d(labels.astype(np.int32)), np.float64)
  np.testing.assert_allclose(np.asarray(acc["somers_d_labels"]), s_labels, atol=5e-5)
  s64 = np.asarray(somers_d(scores), np.float64)
  _assert_recovery_of(acc["truth"]["from_scores"], s64)
  _assert_recovery_of(acc["truth"]["from_labels"], s_labels)
  assert acc["truth"]["from_labels"]["sign_agreement"] == 1.0  # the labels know the truth
  _assert_max_abs_diff(acc["truth"]["population"]["scores_vs_population"], s64,
                       np.asarray(POPULATION_S))

  for png in ("somers_d.png", "somers_d_vs_truth.png"):
    with Image.open(os.path.join(out, png)) as im:
      assert im.format == "PNG" and im.size[0] > 400 and im.size[1] > 300
  text = "\n".join(lines)
  assert "SIMULATED" in text and "impact of row i on column j" in text


def _auroc(positives, negatives) -> float:
  """P(a positive outscores a negative), ties 1/2, counted pair by pair."""
  wins = [1.0 if p > n else 0.5 if p == n else 0.0 for p in positives for n in negatives]
  return sum(wins) / len(wins)


def _assert_accuracy_of(acc, scores, labels):
  """scorer_accuracy.json's accuracy figures equal those counted here from scores and labels
  (int [N, 6], columns ATTRS)."""
  assert list(acc["per_attribute"]) == ATTRS
  for j, name in enumerate(ATTRS):
    v = acc["per_attribute"][name]
    assert v["exact"] == round(float(np.mean(scores[:, j] == labels[:, j])), 4), name
    assert v["within_1"] == round(float(np.mean(np.abs(scores[:, j] - labels[:, j]) <= 1)), 4)
    confusion = np.zeros((6, 6), np.int64)
    for level, score in zip(labels[:, j], scores[:, j], strict=True):
      confusion[level, score] += 1
    np.testing.assert_array_equal(v["confusion_label_by_score"], confusion, err_msg=name)
    assert (v["num_compared"], v["missing_scores"]) == (N, 0)
  exact = [np.mean(scores[:, j] == labels[:, j]) for j in range(6)]
  assert acc["mean_exact"] == pytest.approx(np.mean(exact), abs=5e-5)
  assert acc["all_zero_rate"] == round(float(np.mean([not r.any() for r in scores])), 4)
  assert acc["all_zero_rate_labels"] == round(float(np.mean([not r.any() for r in labels])), 4)


def _assert_recovery_of(rec, s):
  """A graph_recovery block equals the figures computed here from Somers' D s [6, 6] (rows and
  columns ATTRS) and synthetic_faces' true graph: signs of the 5 true edges, and AUROCs of
  |S| on true edges against the 4 independent pairs (all edges, and |weight| >= 0.7)."""
  w = sf.TRUE_GRAPH
  edges = [(i, j) for i in range(6) for j in range(6) if w[i, j] != 0]
  assert rec["num_true_edges"] == len(edges) == 5
  assert [(e["from"], e["to"]) for e in rec["edges"]] == [(ATTRS[i], ATTRS[j]) for i, j in edges]
  right = [np.sign(s[i, j]) == np.sign(w[i, j]) for i, j in edges]
  assert [e["sign_agrees"] for e in rec["edges"]] == right
  assert rec["sign_agreement"] == round(float(np.mean(right)), 4)
  indep = [(ATTRS.index(a), ATTRS.index(b)) for a, b in sf.INDEPENDENT_PAIRS]
  assert rec["independent_pairs"] == [list(p) for p in sf.INDEPENDENT_PAIRS]
  both = lambda i, j: max(abs(s[i, j]), abs(s[j, i]))
  joined = sorted({tuple(sorted(e)) for e in edges})
  strong = [(i, j) for i, j in joined if max(abs(w[i, j]), abs(w[j, i])) >= 0.7]
  negatives = [both(i, j) for i, j in indep]
  assert rec["auroc_undirected"] == round(_auroc([both(*e) for e in joined], negatives), 4)
  assert rec["auroc_undirected_strong"] == round(_auroc([both(*e) for e in strong], negatives),
                                                 4)
  directed_negatives = [abs(s[a, b]) for i, j in indep for a, b in ((i, j), (j, i))]
  assert rec["auroc_directed"] == round(_auroc([abs(s[i, j]) for i, j in edges],
                                               directed_negatives), 4)


def _assert_max_abs_diff(block, s, population):
  """scores_vs_population equals the largest off-diagonal |s - population| ([6, 6] each; the
  population to 4 digits) and names where it is."""
  d = np.abs(s - population)
  np.fill_diagonal(d, 0.0)
  i, j = np.unravel_index(np.argmax(d), d.shape)
  assert block["max_abs_diff"] == pytest.approx(d[i, j], abs=1.1e-4)
  assert block["at"] == [ATTRS[i], ATTRS[j]]


def test_rerun_makes_zero_oracle_calls(oracle_run, tfds_dir, monkeypatch):
  out, first, _ = oracle_run
  cache = os.path.join(out, "score_cache.jsonl")
  before = _count_lines(cache)
  calls = []
  original = OracleScorer._score

  def counting(self, images, attributes, on_result):
    calls.append(len(images))
    return original(self, images, attributes, on_result)

  monkeypatch.setattr(OracleScorer, "_score", counting)
  again = score_attributes.run_cli(_oracle_argv(tfds_dir, out), print_fn=lambda *_: None)
  assert calls == []  # every answer came from the cache
  assert _count_lines(cache) == before
  np.testing.assert_array_equal(again["scores"], first["scores"])
  meta = json.load(open(os.path.join(out, "scores.json")))
  assert meta["cache"] == {"path": os.path.abspath(cache), "hits": N, "newly_scored": 0}


def test_unknown_attribute_is_one_clear_error(tfds_dir, tmp_path):
  out = tmp_path / "bad"
  with pytest.raises(scoring.ScoringError) as e:
    score_attributes.run_cli(_oracle_argv(tfds_dir, out, "--attributes=bangs,hat,Smiling"))
  msg = str(e.value)
  assert "'hat'" in msg and "'Smiling'" in msg
  assert "Valid names: bangs, bald, gender, beard, blond, makeup" in msg
  assert not out.exists()


def test_cli_subprocess_hyphenated_flags_and_clean_error(tfds_dir, tmp_path):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  proc = subprocess.run(
      [
          sys.executable,
          "-m",
          "experiments.score_attributes",
          "--backend",
          "oracle",
          "--data-config",
          "tiny",
          f"--data-dir={tfds_dir}",
          "--num-images",
          "8",
          "--attributes",
          "bangs,hat",
          "--out",
          str(tmp_path / "x"),
      ],
      cwd=REPO,
      env=env,
      capture_output=True,
      text=True,
      timeout=120,
  )
  assert proc.returncode == 1, proc.stderr[-2000:]
  assert "error: unknown attribute 'hat' for synthetic_faces" in proc.stderr
  assert "Valid names: bangs, bald, gender, beard, blond, makeup" in proc.stderr
  assert "Traceback" not in proc.stderr


def test_normalize_argv_accepts_hyphens():
  fv = flags.FlagValues()
  score_attributes.define_flags(fv)
  argv = score_attributes.normalize_argv(
      [
          "prog",
          "--num-images=3",
          "--data-config",
          "tiny",
          "--no-dry-run",
          "--dry-run",
          "--base-url=http://x/v1",
          "--unknown-flag",
      ],
      fv,
  )
  assert argv == [
      "prog",
      "--num_images=3",
      "--data_config",
      "tiny",
      "--nodry_run",
      "--dry_run",
      "--base_url=http://x/v1",
      "--unknown-flag",
  ]


def test_dry_run_sends_nothing(tfds_dir, tmp_path, monkeypatch):
  monkeypatch.setenv("OPENAI_API_KEY", KEY)
  monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
  # the oracle: nothing scored, nothing written
  lines = []
  out = tmp_path / "oracle_dry"
  res = score_attributes.run_cli(_oracle_argv(tfds_dir, out, "--dry_run"), print_fn=lines.append)
  assert res["dry_run"] and res["num_requests"] == 0 and not out.exists()
  assert "0 network requests" in "\n".join(lines)
  # an API backend pointed at a live server: no request reaches it
  lines = []
  out = tmp_path / "openai_dry"
  with OpenAIFakeServer(api_key=KEY) as srv:
    res = score_attributes.run_cli(
        _argv(
            tfds_dir,
            out,
            "--backend=openai",
            f"--base_url={srv.base_url}",
            "--num_images=8",
            "--dry_run",
        ),
        print_fn=lines.append,
    )
    assert srv.num_requests == 0
  assert res["num_requests"] == 8 and res["cached"] == 0 and res["prompt_tokens"] > 0
  assert res["cost_usd"] is None  # a custom server has no list price
  assert not out.exists()
  text = "\n".join(lines)
  assert "8 requests" in text and "nothing was sent" in text and KEY not in text
  # the real endpoint: a list-price estimate, no key needed, no network
  monkeypatch.delenv("OPENAI_API_KEY")
  res = score_attributes.run_cli(
      _argv(
          tfds_dir,
          tmp_path / "gpt",
          "--backend=openai",
          "--model=gpt-4o",
          "--num_images=8",
          "--dry_run",
      ),
      print_fn=lambda *_: None,
  )
  assert res["num_requests"] == 8 and res["cost_usd"] > 0


def test_openai_backend_against_fake_server(tfds_dir, tmp_path, monkeypatch):
  monkeypatch.setenv("OPENAI_API_KEY", KEY)
  monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
  out = tmp_path / "openai"
  lines = []
  with OpenAIFakeServer(api_key=KEY) as srv:
    argv = _argv(
        tfds_dir,
        out,
        "--backend=openai",
        f"--base_url={srv.base_url}",
        "--model=fake-vlm",
        "--num_images=8",
        "--requests_per_minute=0",
        "--concurrency=4",
    )
    res = score_attributes.run_cli(argv, print_fn=lines.append)
    assert srv.num_requests == 8 and not srv.handler_errors
    assert all(r.body["model"] == "fake-vlm" for r in srv.requests)
    # a rerun is served by the cache: no new request
    score_attributes.run_cli(argv, print_fn=lines.append)
    assert srv.num_requests == 8

  images = load_examples(
      ml_collections.ConfigDict(
          {"name": "synthetic_faces", "config": "tiny", "data_dir": tfds_dir, "split": "train"}
      ),
      "train",
      8,
  )["image"]
  want = np.array([[default_scores(encode_png(im), ATTRS)[a] for a in ATTRS] for im in images])
  np.testing.assert_array_equal(np.load(out / "scores.npy"), want)
  np.testing.assert_array_equal(res["scores"], want)
  meta = json.load(open(out / "scores.json"))
  assert meta["backend"] == "openai" and meta["model"] == "fake-vlm"
  assert meta["is_simulation"] is False and meta["prompt_version"] == "fig3-v1"
  assert meta["cache"]["hits"] == 8 and meta["cache"]["newly_scored"] == 0
  assert (out / "scorer_accuracy.json").exists()  # synthetic_faces has labels
  # the key is never written or printed
  for name in os.listdir(out):
    if name.endswith((".json", ".jsonl")):
      assert KEY not in (out / name).read_text(), name
  assert KEY not in "\n".join(lines)
  assert "SIMULATED" not in "\n".join(lines)


def test_relation_report_against_truth_on_labels():
  """Scores equal to the SCM's own attributes recover TRUE_GRAPH's signs and rank its edges
  above the independent pairs; a random order of the attribute columns changes nothing."""
  attrs, _ = sf.sample_factors(7, 3000)
  truth = scoring.relation_truth(get_dataset("synthetic_faces"), population_size=20_000)
  rep = scoring.relation_report(attrs, list(sf.ATTRIBUTES), labels=attrs, truth=truth)
  g = rep["truth"]["from_scores"]
  assert g["sign_agreement"] == 1.0 and g["auroc_undirected"] == 1.0
  assert rep["labels"]["scorer_accuracy"]["mean_exact"] == 1.0
  assert rep["labels"]["scores_vs_labels"]["max_abs_diff"] == 0.0
  assert rep["truth"]["population"]["scores_vs_population"]["max_abs_diff"] < 0.08
  order = [4, 0, 5, 2, 1, 3]
  names = [sf.ATTRIBUTES[i] for i in order]
  rep2 = scoring.relation_report(attrs[:, order], names, truth=truth)
  s1 = np.asarray(rep["somers_d"])[np.ix_(order, order)]
  np.testing.assert_allclose(np.asarray(rep2["somers_d"]), s1, atol=1e-6)
  assert rep2["truth"]["from_scores"]["auroc_directed"] == g["auroc_directed"]
  assert scoring.auroc([0.9, 0.5], [0.1, 0.5]) == pytest.approx(0.875)


# Population Somers' D of the synthetic_faces SCM (200,000 draws, seed 20,241), to 4 digits, as
# the retired float64 reference (synthetic_faces.somers_d_matrix) gave it; the float32
# `gem_jax.relations.somers_d` of the same draws differed from it by at most 8.5e-8.
POPULATION_S = [
    [1.0, -0.2347, -0.1225, -0.0743, 0.2532, 0.0824],
    [-0.553, 1.0, 0.4841, 0.2766, 0.0033, -0.3261],
    [-0.1222, 0.2049, 1.0, 0.4235, -0.0013, -0.569],
    [-0.122, 0.1927, 0.6975, 1.0, -0.0023, -0.4633],
    [0.2559, 0.0014, -0.0013, -0.0014, 1.0, 0.0001],
    [0.0832, -0.1399, -0.5768, -0.2852, 0.0001, 1.0],
]


def test_relation_truth_from_the_dataset_spec():
  """The truth of a spec with a true graph: its graph, independent pairs and the population S
  from its SCM (the numbers the reports always had); no truth without a true graph."""
  spec = get_dataset("synthetic_faces")
  truth = scoring.relation_truth(spec)
  assert truth.name == "synthetic_faces SCM" and truth.attributes == tuple(sf.ATTRIBUTES)
  np.testing.assert_array_equal(truth.true_graph, sf.TRUE_GRAPH)
  assert truth.independent_pairs == tuple(sf.INDEPENDENT_PAIRS)
  assert (truth.population_size, truth.population_seed) == (200_000, 20_241)
  s = truth.population_somers_d
  assert s.dtype == np.float64 and s.shape == (6, 6)
  assert [[round(float(v), 4) for v in row] for row in s] == POPULATION_S
  assert scoring.relation_truth(spec, population_size=0).population_somers_d is None
  assert scoring.relation_truth(get_dataset("celeba")) is None


def test_pipeline_stage_and_cli_write_one_scores_json(oracle_run, tfds_dir, tmp_path):
  """gem_pipeline.run_scoring and the CLI both go through scoring.score_images: same scores,
  same scores.json keys and values (but the cache path); the pipeline reads is_simulation at
  the top level of both this schema and the 3-key one of older runs."""
  out, cli_result, _ = oracle_run
  config = synthetic_gem.get_config("tiny,gem")
  config.data.data_dir = tfds_dir
  config.gem.num_scored_images = N
  examples = load_examples(config.data, config.data.split, N)
  scores = gem_pipeline.run_scoring(config, tmp_path / "scores", examples)
  np.testing.assert_array_equal(scores, cli_result["scores"])
  np.testing.assert_array_equal(np.load(tmp_path / "scores" / "scores.npy"), scores)
  cli = json.loads(Path(out, "scores.json").read_text())
  pipe = json.loads((tmp_path / "scores" / "scores.json").read_text())
  assert list(pipe) == list(cli)
  assert pipe["cache"]["path"] == str(tmp_path / "scores" / "score_cache.jsonl")
  assert pipe["cache"]["newly_scored"] == N
  for meta in (pipe, cli):
    meta.pop("cache")
  assert pipe == cli
  old = {"attributes": ATTRS, "scorer": cli["scorer"], "is_simulation": True}
  for meta in (pipe, old):  # a TrainedModel's meta holds scores.json under "scorer"
    model = types.SimpleNamespace(meta={"scorer": meta})
    assert pipeline_figures._simulation_note(model) == "scores: SIMULATED (oracle)"
