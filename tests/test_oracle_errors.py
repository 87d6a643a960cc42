"""The oracle SIMULATION's MLLM-like error models (gem_jax/scorers/oracle_errors.py): each
option does exactly what docs/scorers.md states, measured over a few thousand deterministic
draws (tolerances are 4 binomial standard errors), and no error branch leaks the true level."""
import json

import numpy as np
import pytest

from experiments import score_attributes
from experiments.configs import synthetic_gem
from gem_jax import gem_pipeline
from gem_jax.config_checks import config_problems
from gem_jax.data.synthetic_faces.scm import ATTRIBUTES, sample_factors
from gem_jax.pipeline_settings import ADDED_STAGE_KEYS, scoring_values
from gem_jax.scorers import CachedScorer, OracleScorer, make_scorer
from gem_jax.scorers import oracle_errors as errs
from gem_jax.scoring import ScoringError, ScoringOptions, check_options, scorer_accuracy
from gem_jax.stages import StageMismatchError, check_stage, write_stage


def _images(n: int, seed: int = 0) -> np.ndarray:
  """uint8 [n, 8, 8, 3] of varied brightness and contrast (all different)."""
  rng = np.random.default_rng(seed)
  base = rng.uniform(30, 225, (n, 1, 1, 1))
  spread = rng.uniform(2, 60, (n, 1, 1, 1))
  return np.clip(base + spread * rng.standard_normal((n, 8, 8, 3)), 0, 255).astype(np.uint8)


def _near(measured: float, p: float, n: int) -> bool:
  """Within 4 binomial standard errors of p."""
  return abs(measured - p) <= 4 * np.sqrt(p * (1 - p) / n) + 1e-9


def _oracle(labels, names, **kw) -> tuple[OracleScorer, np.ndarray, np.ndarray]:
  imgs = _images(len(labels), kw.pop("image_seed", 0))
  o = OracleScorer.from_dataset(imgs, labels, names, **kw)
  return o, imgs, o.score(imgs, names)


def test_accuracy_per_attribute():
  labels = np.random.default_rng(1).integers(0, 6, (4000, 2))
  o, _, out = _oracle(labels, ["a", "b"], accuracy={"a": 0.6, "b": 0.95})
  for j, p in enumerate((0.6, 0.95)):
    assert _near((out[:, j] == labels[:, j]).mean(), p, 4000)
  assert o.model.startswith("oracle-accmap-uniform-")
  assert o.describe()["error_parameters"]["accuracy_per_attribute"] == {"a": 0.6, "b": 0.95}
  with pytest.raises(ValueError, match=r"accuracy must be a number in \[0, 1\]"):
    OracleScorer({}, ["a"], accuracy={"a": 1.5})
  with pytest.raises(ValueError, match="no labels for"):
    OracleScorer({}, ["a"], accuracy={"z": 0.5})


def test_bias_and_compression_move_the_mean_as_stated():
  """Wrong answers: E[W | t] = x = 2.5 + compression (t - 2.5) + bias when 1 <= |x - t| and x
  lies on the scale; every answer: E = accuracy t + (1 - accuracy) E[W | t]."""
  labels = np.random.default_rng(2).integers(0, 6, (6000, 1))
  t = labels[:, 0]
  _, _, out = _oracle(labels, ["a"], accuracy=0.0, error_model="calibrated", bias=1.5,
                      compression=1.0)
  up = t <= 3
  assert abs((out[up, 0] - t[up]).mean() - 1.5) < 0.05
  np.testing.assert_array_equal(out[t == 4, 0], 5)   # x = 5.5 -> clipped to 5
  np.testing.assert_array_equal(out[t == 5, 0], 4)   # x = 6.5 -> 5 = t -> the neighbour
  _, _, out = _oracle(labels, ["a"], accuracy=0.0, error_model="calibrated", bias=0.0,
                      compression=0.5)
  for level, x in ((0, 1.25), (5, 3.75)):
    assert abs(out[t == level, 0].mean() - x) < 0.05, level
  _, _, out = _oracle(labels, ["a"], accuracy=0.7, error_model="calibrated", bias=1.5,
                      compression=1.0)
  assert abs((out[up, 0] - t[up]).mean() - 0.3 * 1.5) < 0.07
  with pytest.raises(ValueError, match="bias and compression shape"):
    OracleScorer({}, ["a"], bias=0.5)


def _correlated_labels(n: int = 6000) -> np.ndarray:
  """[n, 4]: b copies a 80% of the time, c mirrors a 50% of the time, d is independent."""
  rng = np.random.default_rng(3)
  a = rng.integers(0, 6, n)
  b = np.where(rng.random(n) < 0.8, a, rng.integers(0, 6, n))
  c = np.where(rng.random(n) < 0.5, 5 - a, rng.integers(0, 6, n))
  return np.stack([a, b, c, rng.integers(0, 6, n)], axis=1)


def test_confusion_reads_the_most_correlated_attribute_at_its_rate():
  labels = _correlated_labels()
  names = ["a", "b", "c", "d"]
  o, _, out = _oracle(labels, names, accuracy=0.5, confusion={"c": 0.6, "d": 0.6},
                      confusion_source={"d": "a"})
  assert {k: o.confusion_source[k] for k in "abc"} == {"a": ("b", 1), "b": ("a", 1),
                                                         "c": ("a", -1)}
  assert o.confusion_source["d"][0] == "a"
  # wrong answers of c (source a, mirrored) and d (source a): read = a's level (5 - a for c);
  # among those whose read level differs from the truth, P(answer = read) = 0.6 + 0.4 / 5
  # (the rest are uniform errors, one in five of which hit the read level by chance)
  a = labels[:, 0]
  for j, read in ((2, 5 - a), (3, a if o.confusion_source["d"][1] > 0 else 5 - a)):
    eligible = (out[:, j] != labels[:, j]) & (read != labels[:, j])
    assert _near((out[eligible, j] == read[eligible]).mean(), 0.68, int(eligible.sum())), j
  assert _near((out[:, 0] == labels[:, 0]).mean(), 0.5, 6000)  # no confusion for a: uniform


def test_confusion_default_source_is_the_halo_on_synthetic_faces_labels():
  labels, _ = sample_factors(0, 1500)
  o = OracleScorer({str(i): lv for i, lv in enumerate(labels)}, ATTRIBUTES, confusion=0.3)
  assert o.confusion_source["makeup"] == ("gender", -1)   # makeup read from gender
  assert o.confusion_source["beard"] == ("gender", 1)
  with pytest.raises(ValueError, match="distinct attributes"):
    OracleScorer({}, ["a", "b"], confusion=0.3, confusion_source={"a": "a"})


def test_visibility_faint_images_and_weak_levels_err_more_on_target_on_average():
  n = 8000
  labels = np.random.default_rng(4).integers(0, 6, (n, 2))
  o, imgs, out = _oracle(labels, ["a", "b"], accuracy={"a": 0.8, "b": 0.9}, visibility=0.5)
  wrong = out != labels
  for j, p in enumerate((0.8, 0.9)):
    assert _near(1 - wrong[:, j].mean(), p, n)
    expected = np.mean([1 - o._p_correct(h, "ab"[j], int(lv[j]))
                        for h, lv in o.label_lookup.items()])
    assert abs(expected - (1 - p)) < 1e-9  # the rate is kept on target exactly in expectation
  hard = errs.image_difficulty(errs.pixel_stats(imgs))
  faint, clear = hard > np.quantile(hard, 0.75), hard < np.quantile(hard, 0.25)
  assert wrong[faint].mean() > 1.5 * wrong[clear].mean()
  level = labels[:, 0]
  assert wrong[level == 1, 0].mean() > 1.6 * wrong[level == 4, 0].mean()
  np.testing.assert_array_equal(out[wrong[:, 0] & (level == 1), 0], 0)  # read as absent
  low2 = out[wrong[:, 0] & (level == 2), 0]
  assert (low2 < 2).mean() > 0.5   # half by the miss, and some uniform errors below too
  with pytest.raises(ValueError, match="contrast and brightness"):
    OracleScorer(o.label_lookup, ["a", "b"], visibility=0.5)


def test_missing_answers_whole_images_at_the_rate_and_not_cached(tmp_path):
  n = 4000
  labels = np.random.default_rng(5).integers(0, 6, (n, 2))
  o, imgs, out = _oracle(labels, ["a", "b"], missing_rate=0.1)
  gone = (out < 0).any(axis=1)
  assert np.array_equal(gone, (out < 0).all(axis=1))  # a refusal: the whole image
  assert _near(gone.mean(), 0.1, n)
  acc = scorer_accuracy(out, labels, ["a", "b"])  # the stated accuracy: answered images only
  assert _near(acc["per_attribute"]["a"]["exact"], 0.884, int((~gone).sum()))
  assert acc["per_attribute"]["a"]["missing_scores"] == gone.sum()
  cached = CachedScorer(o, tmp_path / "c.jsonl")
  np.testing.assert_array_equal(cached.score(imgs[:200], ["a", "b"]), out[:200])
  again = CachedScorer(o, tmp_path / "c.jsonl")
  np.testing.assert_array_equal(again.score(imgs[:200], ["a", "b"]), out[:200])
  assert again.last_misses == gone[:200].sum()  # refused images are asked again


def test_same_image_same_answer_whatever_the_batch_seed_changes_it():
  labels, _ = sample_factors(1, 600)
  names = list(ATTRIBUTES)
  o, imgs, full = _oracle(labels, names, error_model="realistic", seed=3)
  perm = np.random.default_rng(0).permutation(600)
  parts = [o.score(imgs[perm[i:i + 77]], names[::-1]) for i in range(0, 600, 77)]
  np.testing.assert_array_equal(np.concatenate(parts), full[perm][:, ::-1])
  np.testing.assert_array_equal(o.score(imgs[:50], ["makeup"]), full[:50, [5]])
  again, _, out = _oracle(labels, names, error_model="realistic", seed=3)
  np.testing.assert_array_equal(out, full)
  assert (again.model, again.prompt_version) == (o.model, o.prompt_version)
  other, _, out = _oracle(labels, names, error_model="realistic", seed=4)
  assert (out != full).any() and other.prompt_version != o.prompt_version
  biased, _, _ = _oracle(labels, names, error_model="realistic", seed=3, bias=0.0)
  small, _, _ = _oracle(labels[:300], names, error_model="realistic", seed=3)
  models = {o.model, biased.model, _oracle(labels, names, error_model="calibrated")[0].model,
            _oracle(labels, names, missing_rate=0.02)[0].model, "oracle-acc0.884"}
  assert len(models) == 5 and all("realistic" in m for m in (o.model, biased.model))
  assert small.model == o.model and small.prompt_version != o.prompt_version  # the lookup


def test_realistic_preset_averages_the_paper_accuracy_on_synthetic_faces_labels():
  labels, _ = sample_factors(0, 1500)
  names = list(ATTRIBUTES)
  o, _, out = _oracle(labels, names, error_model="realistic")
  stated = o.error_parameters()["accuracy_per_attribute"]
  assert stated == errs.preset_accuracies(names, 0.884, 0.06)
  assert abs(np.mean(list(stated.values())) - 0.884) < 1e-6
  assert max(stated.values()) - min(stated.values()) > 0.08
  acc = scorer_accuracy(out, labels, names)
  answered = int((out[:, 0] >= 0).sum())
  for a, v in acc["per_attribute"].items():
    assert _near(v["exact"], stated[a], answered), (a, v["exact"], stated[a])
  assert abs(acc["mean_exact"] - 0.884) < 4 * np.sqrt(0.884 * 0.116 / (6 * answered))
  assert _near(acc["any_missing_rate"], 0.02, 1500)
  assert (out >= 0).all(axis=1).mean() > 0.95  # far above the pipeline's 0.9 guard
  assert o.describe()["error_parameters"]["visibility"] == 0.5


LEAK_CASES = {
    "uniform": {},
    "adjacent": {"error_model": "adjacent"},
    "calibrated_identity": {"error_model": "calibrated", "bias": 0.0, "compression": 1.0},
    "calibrated_pull": {"error_model": "calibrated", "bias": 0.3, "compression": 0.5},
    "calibrated_far": {"error_model": "calibrated", "bias": -3.0, "compression": 1.0},
    "confusion": {"confusion": 1.0},
    "visibility": {"visibility": 0.9},
    "realistic": {"error_model": "realistic", "confusion": 1.0},
}


@pytest.mark.parametrize("case", sorted(LEAK_CASES))
def test_no_error_model_leaks_the_true_level(case):
  """At accuracy 0 every answer is on the error branch, which must never give the truth
  (e.g. confusion reading an attribute that agrees with this one, a calibrated reading that
  rounds back to it, a weak level 'read lower' that stays); at 0.7 the stated share is."""
  labels = _correlated_labels(3000)
  names = ["a", "b", "c", "d"]
  _, _, out = _oracle(labels, names, accuracy=0.0, **LEAK_CASES[case])
  answered = out >= 0
  assert answered.any(axis=1).mean() > 0.9
  assert not (out == labels)[answered].any()
  _, _, out = _oracle(labels, names, accuracy=0.7, **LEAK_CASES[case])
  answered = out >= 0
  assert _near((out == labels)[answered].mean(), 0.7, int(answered.sum()) // 4)


def test_plumbing_config_record_checks_and_cli(tmp_path):
  config = synthetic_gem.get_config("tiny")
  assert config.gem.scorer.error_model == "uniform"
  assert scoring_values(config)["gem.scorer.error_model"] == "uniform"
  values = scoring_values(config)
  old = {k: v for k, v in values.items() if k != "gem.scorer.error_model"}
  write_stage(tmp_path, "scoring", old, {}, complete=True)  # a run from before the key
  assert check_stage(tmp_path, "scoring", values, {}, True, added=ADDED_STAGE_KEYS)
  values["gem.scorer.error_model"] = "realistic"
  with pytest.raises(StageMismatchError, match='error_model: "uniform" -> "realistic"'):
    check_stage(tmp_path, "scoring", values, {}, True, added=ADDED_STAGE_KEYS)
  config.gem.scorer.error_model = "gpt-ish"
  assert any(p.startswith("config.gem.scorer.error_model='gpt-ish': must be one of 'uniform'")
             for p in config_problems(config, num_devices=1))
  with pytest.raises(ScoringError, match="unknown oracle error model 'gpt-ish'"):
    check_options(ScoringOptions("oracle", str(tmp_path), error_model="gpt-ish"))
  fv = score_attributes.flags.FlagValues()
  score_attributes.define_flags(fv)
  fv(["score", "--backend=oracle", "--out=x", "--error_model=realistic"])
  assert score_attributes.options_from_flags(fv).error_model == "realistic"
  labels = np.random.default_rng(6).integers(0, 6, (50, 2))
  s = make_scorer("oracle", images=_images(50), labels=labels, label_names=["a", "b"],
                  error_model="realistic", accuracy=0.8, missing_rate=0.0)
  assert s.model.startswith("oracle-acc0.8-realistic-") and s.is_simulation
  assert json.dumps(s.describe())  # JSON-ready, lists the parameters


def test_the_pipeline_passes_the_error_model_and_reads_old_scoring_records(monkeypatch,
                                                                           tmp_path):
  config = synthetic_gem.get_config("tiny")
  config.gem.scorer.error_model = "realistic"
  examples = {"image": _images(4), "attributes": np.zeros((4, 6), np.int32)}
  seen = {}
  monkeypatch.setattr(gem_pipeline, "score_images", lambda o, *a: seen.update(options=o))
  with pytest.raises(AttributeError):  # the stub returns nothing to take .scores of
    gem_pipeline.run_scoring(config, tmp_path, examples)
  assert seen["options"].error_model == "realistic"

  class Stop(Exception):
    pass

  def is_done(stage_dir, name, values, inputs, has_outputs, **kwargs):
    seen.update(name=name, values=values, **kwargs)
    raise Stop
  monkeypatch.setattr(gem_pipeline, "load_examples", lambda *a: examples)
  monkeypatch.setattr(gem_pipeline, "_is_done", is_done)
  with pytest.raises(Stop):
    gem_pipeline.run_shared_stages(config, tmp_path)
  assert seen["name"] == "scoring" and seen["added"] is ADDED_STAGE_KEYS
  assert seen["values"]["gem.scorer.error_model"] == "realistic"
