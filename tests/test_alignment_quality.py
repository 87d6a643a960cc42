"""How well each attribute is carried by its latent: the quality table, the labels that say so,
the pipeline's guard that stops after stage 3, and runs saved before the table existed."""
import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

import gem_jax
from experiments.configs import synthetic_gem
from gem_jax import gem_pipeline
from gem_jax.data import get_dataset
from gem_jax.relations import (
  Alignment,
  AlignmentQuality,
  WeakAlignmentError,
  align_latents,
  alignment_quality,
  fixed_alignment,
  labels_with_quality,
  quality_from_alignment,
  quality_from_json,
  traversal_labels,
)
from gem_jax.relations.alignment_quality import AttributeAlignment

NAMES = ("bangs", "gender")
FIXTURE = Path(__file__).parent / "fixtures" / "runs_191b7d6"


def _data(n=400, seed=0):
  """Scores [n, 2] and codes [n, 3]: z0 = -bangs + noise (flipped), z2 weakly gender, z1
  noise; the truth is the scores themselves."""
  rng = np.random.default_rng(seed)
  scores = rng.integers(0, 6, (n, 2))
  mu = np.stack([-scores[:, 0] + 0.5 * rng.normal(size=n), rng.normal(size=n),
                 0.3 * scores[:, 1] + 2.0 * rng.normal(size=n)], axis=1)
  return mu, scores


def _rho(x, y):
  return scipy.stats.spearmanr(x, y).statistic


def test_the_table_holds_each_attributes_signed_spearman_runner_up_and_truth():
  mu, scores = _data()
  alignment = align_latents(mu, scores, NAMES)
  assert alignment.latent_of_attribute == (0, 2) and alignment.signs == (-1.0, 1.0)
  truth_mu, truth = _data(300, seed=1)
  q = alignment_quality(alignment, mu, scores, 0.4, "all 400", truth_mu, truth, "300 truth")
  bangs, gender = q.rows
  assert bangs.score_spearman == pytest.approx(-_rho(mu[:, 0], scores[:, 0]))
  assert bangs.truth_spearman == pytest.approx(-_rho(truth_mu[:, 0], truth[:, 0]))
  runner = max((abs(_rho(mu[:, k], scores[:, 0])), k) for k in (1, 2))
  assert (bangs.runner_up_latent, bangs.runner_up_spearman) == (runner[1],
                                                                pytest.approx(runner[0]))
  assert bangs.margin == pytest.approx(bangs.score_spearman - runner[0])
  assert gender.best_truth_spearman == pytest.approx(
      max(abs(_rho(truth_mu[:, k], truth[:, 1])) for k in range(3)))
  assert bangs.carried and bangs.score_spearman > 0.9
  assert not gender.carried and 0 < gender.score_spearman < 0.4
  assert [r.attribute for r in q.weak] == ["gender"]
  assert q.strengths() == (bangs.score_spearman, gender.score_spearman)


def test_a_fixed_alignment_can_measure_negative_and_keeps_its_latents():
  mu, scores = _data()
  alignment = fixed_alignment(mu, scores, NAMES, (0, 1))
  assert alignment.latent_of_attribute == (0, 1) and alignment.signs == (1.0, 1.0)
  q = alignment_quality(alignment, mu, scores, 0.4, "held-out")
  assert q.rows[0].score_spearman < -0.9 and not q.rows[0].carried  # trained the wrong way
  assert q.rows[0].truth_spearman is None and q.truth_on is None


def test_the_table_round_trips_through_json():
  mu, scores = _data()
  q = alignment_quality(align_latents(mu, scores, NAMES), mu, scores, 0.4, "all", mu, scores,
                        "truth")
  assert quality_from_json(json.loads(json.dumps(q.to_json()))) == q
  assert quality_from_json(None) is None


def test_labels_mark_weak_attributes_and_never_name_them_plainly():
  mu, scores = _data()
  alignment = align_latents(mu, scores, NAMES)
  q = alignment_quality(alignment, mu, scores, 0.4, "all")
  labels = labels_with_quality(alignment, q)
  assert labels[0] == f"z0: bangs (-) ρ {q.rows[0].score_spearman:.2f}"
  assert labels[1] == "z1: free"
  assert labels[2] == f"z2: gender? (+) weak ρ {q.rows[1].score_spearman:.2f}"


def test_the_weak_alignment_error_names_attributes_correlations_and_what_to_try():
  mu, scores = _data()
  q = alignment_quality(align_latents(mu, scores, NAMES), mu, scores, 0.4, "all 400 images")
  message = str(q.error(("a hint",)))
  assert message.startswith("no latent carries 1 of 2 attributes well enough: gender (z2: +0.")
  for part in ("all 400 images", "config.gem.min_alignment=0.4", "Try a hint; or accept it "
               "with --config.gem.accept_weak_alignment=True", "Nothing computed"):
    assert part in message


def test_the_weak_alignment_error_in_full():
  row = AttributeAlignment("gender", 2, 1.0, 0.1234, 0, 0.25, -0.1266)
  other = AttributeAlignment("smile", 1, -1.0, 0.5, 0, 0.2, 0.3)
  q = AlignmentQuality(rows=(row, other, dataclasses.replace(row, attribute="age", latent=3,
                                                              carried=False)),
                       min_alignment=0.3, checked_on="held-out scores (300 images)")
  q = dataclasses.replace(q, rows=(dataclasses.replace(row, carried=False), other, q.rows[2]))
  assert str(q.error(("a", "b"))) == (
      "no latent carries 2 of 3 attributes well enough: gender (z2: +0.12, best other latent "
      "0.25: rho +0.12 below 0.3); age (z3: +0.12, best other latent 0.25: rho +0.12 below "
      "0.3). Each latent needs a Spearman with its attribute's scores (held-out scores (300 "
      "images)) of at least config.gem.min_alignment=0.3 and no other latent ordering those "
      "scores better. Traversals, edits and the graph would name latents after attributes they "
      "do not carry. Try a; b; or accept it with --config.gem.accept_weak_alignment=True "
      "(recorded in the stage records; labels then mark these attributes as weak). Nothing "
      "computed is lost: a rerun reuses the warm-up and scores.")
  assert isinstance(q.error(), WeakAlignmentError)


def test_the_text_table():
  rows = (AttributeAlignment("bangs", 0, -1.0, 0.912, 2, 0.05, 0.862, 0.9, 0.95, True),
          AttributeAlignment("gender", 2, 1.0, 0.1, None, 0.0, 0.1, None, None, False))
  q = AlignmentQuality(rows=rows, min_alignment=0.4, checked_on="all 400", truth_on="truth")
  assert q.table().splitlines() == [
      "alignment quality (rho: Spearman; scores: all 400; truth: truth; carried: rho(scores) "
      ">= 0.4 and margin >= 0)",
      "attribute  latent sign rho(scores)   runner-up  margin rho(truth) best(truth) steer  "
      "carried",
      "bangs          z0    -       +0.91     z2 0.05   +0.86      +0.90        0.95        yes",
      "gender         z2    +       +0.10               +0.10                               "
      "NO (weak: rho +0.10 below 0.4)"]
  untold = dataclasses.replace(q, truth_on=None).table().splitlines()[0]
  assert "truth: not known for this data set;" in untold


def test_shapes_that_do_not_fit_the_alignment_are_named():
  mu, scores = _data()
  alignment = align_latents(mu, scores, NAMES)
  for bad_mu, bad_scores, got in ((mu[:, :2], scores, "[400, 2] and [400, 2]"),
                                  (mu, scores[:, :1], "[400, 3] and [400, 1]")):
    with pytest.raises(ValueError, match=re.escape(
        f"expected mu [N, 3] and scores [N, 2], got {got}")):
      alignment_quality(alignment, bad_mu, bad_scores, 0.4, "all")


def test_the_threshold_itself_carries_and_the_truth_is_named_only_when_measured():
  mu, scores = _data()
  alignment = align_latents(mu, scores, NAMES)
  first = alignment_quality(alignment, mu, scores, 0.4, "all").rows[0]
  at = alignment_quality(alignment, mu, scores, first.score_spearman, "all", mu, scores,
                         "truth")
  assert at.rows[0].carried and at.truth_on == "truth"
  assert [r.sign for r in at.rows] == [-1.0, 1.0]
  assert all(type(r.sign) is float for r in at.rows)
  assert alignment_quality(alignment, mu, scores, 0.4, "all", truth_on="truth").truth_on is None


@pytest.mark.parametrize("tokens, want, not_want", [
    ("paper_demo", ["guidance.weight=10", "latent_dim=10", "warmup_beta=0.5"],
     ["longer guided warm-up"]),
    ("demo", ["longer guided warm-up (--config.gem.warmup_steps, now 2000)"],
     ["guidance.weight=10", "latent_dim=10", "warmup_beta=0.5"]),
])
def test_the_hints_follow_what_the_run_did(tokens, want, not_want):
  hints = " ".join(gem_pipeline.alignment_hints(synthetic_gem.get_config(tokens)))
  assert all(w in hints for w in want) and not any(w in hints for w in not_want)
  assert "--config.gem.min_alignment" in hints


def _outdone(n=400, seed=0):
  """bangs fixed on z0, which follows it (Spearman ~0.7), while z1 follows it better (~0.95);
  gender on z2, clean. The guard must call bangs weak though 0.7 clears the threshold."""
  rng = np.random.default_rng(seed)
  scores = rng.integers(0, 6, (n, 2))
  mu = np.stack([scores[:, 0] + 2.0 * rng.normal(size=n), scores[:, 0] + 0.3 * rng.normal(size=n),
                 scores[:, 1] + 0.1 * rng.normal(size=n)], axis=1)
  return fixed_alignment(mu, scores, NAMES, (0, 2)), mu, scores


def test_a_latent_outdone_by_its_runner_up_is_weak_above_the_threshold():
  alignment, mu, scores = _outdone()
  q = alignment_quality(alignment, mu, scores, 0.3, "all")
  bangs, gender = q.rows
  assert 0.5 < bangs.score_spearman < 0.9 and bangs.runner_up_latent == 1
  assert bangs.margin < 0 and not bangs.carried and gender.carried
  assert [r.attribute for r in q.weak] == ["bangs"]
  assert "runner-up z1" in bangs.weak_reason(0.3) and gender.weak_reason(0.3) is None
  assert "NO (weak: runner-up z1" in q.table()
  label = labels_with_quality(alignment, q)[0]
  assert label == (f"z0: bangs? (+) weak ρ {bangs.score_spearman:.2f} < z1 "
                   f"{bangs.runner_up_spearman:.2f}")
  assert traversal_labels(alignment, q)[0].startswith("z0: bangs? (+) WEAK\nρ ")
  assert "bangs (z0" in str(q.error()) and "orders it better" in str(q.error())


def test_the_pipeline_guard_stops_on_a_negative_margin_unless_accepted():
  alignment, mu, scores = _outdone()
  q = alignment_quality(alignment, mu, scores, 0.3, "all")
  config = synthetic_gem.get_config("demo")
  with pytest.raises(WeakAlignmentError, match="1 of 2 attributes well enough: bangs"):
    gem_pipeline.check_alignment(config, q)
  # A row whose flag still says carried (as saved before the margin counted) is weak all the
  # same: the guard reads the scores and margin.
  stale = dataclasses.replace(q, rows=tuple(dataclasses.replace(r, carried=True)
                                            for r in q.rows))
  with pytest.raises(WeakAlignmentError):
    gem_pipeline.check_alignment(config, stale)
  assert [r.attribute for r in stale.weak] == ["bangs"]
  config.gem.accept_weak_alignment = True
  assert gem_pipeline.check_alignment(config, q) == ("bangs",)
  # The run's threshold decides, not the one the table was made with.
  strict = alignment_quality(alignment, mu, scores, 0.99, "all")
  assert len(strict.weak) == 2 and gem_pipeline.check_alignment(config, strict) == ("bangs",)


def test_a_table_saved_before_the_margin_counted_loads_and_is_judged_by_it():
  alignment, mu, scores = _outdone()
  saved = alignment_quality(alignment, mu, scores, 0.3, "all", mu, scores, "truth").to_json()
  del saved["steer_on"]
  for row in saved["rows"]:  # the old rule and the old fields
    row["carried"] = row["score_spearman"] >= 0.3
    for key in ("steerability", "steer_off_attribute", "steer_off_change"):
      del row[key]
  q = quality_from_json(saved)
  assert [r.carried for r in q.rows] == [False, True] and q.steer_on is None
  assert q.rows[0].steerability is None and q.rows[0].truth_spearman is not None


def test_steerability_goes_into_the_table_labels_and_json():
  mu, scores = _data()
  alignment = align_latents(mu, scores, NAMES)
  q = alignment_quality(alignment, mu, scores, 0.4, "all", mu, scores, "truth")
  q = q.with_steerability({"bangs": 0.9, "gender": 0.25},
                          {"bangs": ("gender", -0.5), "gender": ("bangs", 0.1)}, "reader X")
  assert labels_with_quality(alignment, q)[0] == (f"z0: bangs (-) ρ "
                                                  f"{q.rows[0].score_spearman:.2f} steer 0.90")
  assert traversal_labels(alignment, q)[0] == (f"z0: bangs (-)\ntrue ρ "
                                               f"{q.rows[0].truth_spearman:.2f} steer 0.90")
  assert " 0.90  yes" in q.table() and "steer: reader X" in q.table()
  assert quality_from_json(json.loads(json.dumps(q.to_json()))) == q


def test_an_alignment_saved_without_a_table_still_gives_one():
  mu, scores = _data()
  alignment = align_latents(mu, scores, NAMES)
  q = quality_from_alignment(Alignment.from_json(alignment.to_json()), 0.4)
  assert [r.score_spearman for r in q.rows] == pytest.approx(
      [-_rho(mu[:, 0], scores[:, 0]), _rho(mu[:, 2], scores[:, 1])])
  assert [r.carried for r in q.rows] == [True, False]


def test_an_old_run_without_the_table_loads_and_labels_its_latents():
  model = gem_jax.load(str(FIXTURE / "gem" / "gem"))
  q = model.alignment_quality()
  assert q is not None and q.checked_on == "all scored images (saved alignment)"
  assert len(q.rows) == 6 and all(r.truth_spearman is None for r in q.rows)
  rho = np.asarray(model.alignment.correlations)
  for r in q.rows:
    a = model.alignment.attribute_names.index(r.attribute)
    assert r.score_spearman == pytest.approx(r.sign * rho[r.latent, a])
  assert all(" ρ " in label for label in model.latent_labels())


@pytest.mark.slow
def test_weak_alignment_stops_after_stage_3_and_an_explicit_accept_goes_on(tfds_dir, tmp_path,
                                                                           monkeypatch):
  config = synthetic_gem.get_config("tiny,gem")
  config.data.data_dir = tfds_dir
  config.gem.accept_weak_alignment = False
  config.gem.min_alignment = 0.99  # nothing a 4-step warm-up learns reaches it
  with pytest.raises(WeakAlignmentError, match="no latent carries 6 of 6 attributes"):
    gem_pipeline.run_gem(config, tmp_path)
  saved = json.loads((tmp_path / "graph" / "alignment.json").read_text())
  assert len(saved["quality"]["rows"]) == 6 and saved["quality"]["truth_on"]
  assert not (tmp_path / "gem").exists()  # stage 4 never started
  trained = []
  real = gem_pipeline.train_and_evaluate
  monkeypatch.setattr(gem_pipeline, "train_and_evaluate",
                      lambda c, workdir, **k: trained.append(Path(workdir).name)
                      or real(c, workdir, **k))
  config.gem.accept_weak_alignment = True
  model = gem_pipeline.run_gem(config, tmp_path)
  assert trained == ["gem"]  # the warm-up, scores and alignment were reused
  record = json.loads((tmp_path / "gem" / "stage.json").read_text())
  assert sorted(record["accepted_weak_alignment"]) == sorted(synthetic_gem.ATTRIBUTES)
  assert all(" weak ρ " in label for label in model.latent_labels())
  final = json.loads((tmp_path / "gem" / "alignment_quality.json").read_text())
  assert model.meta["alignment_quality"] == final  # measured again on the trained GEM
  assert [r["attribute"] for r in final["rows"]] == list(synthetic_gem.ATTRIBUTES)
  assert gem_jax.load(str(tmp_path)).alignment_quality() == model.alignment_quality()


def test_only_data_sets_that_know_their_factors_report_true_levels():
  levels = np.arange(18).reshape(3, 6) % 6
  faces = get_dataset("synthetic_faces")
  np.testing.assert_array_equal(faces.true_levels({"attributes": levels}, ["gender", "bangs"]),
                                levels[:, [2, 0]])
  with pytest.raises(ValueError, match="has no attribute smile"):
    faces.true_levels({"attributes": levels}, ["smile"])
  # CelebA's labels are annotations, not the factors: score correlations only.
  assert get_dataset("celeba").true_levels({"gem_labels": np.ones((3, 6))}, ["bald"]) is None


def test_the_runner_up_is_searched_over_every_latent():
  """Three latents, one attribute: the runner-up is the last latent (beyond the attribute
  count); with a single latent there is none."""
  corr = np.array([[0.8], [0.1], [-0.5]])
  q = quality_from_alignment(Alignment(("a",), (0,), (1.0,), corr))
  [row] = q.rows
  assert (row.runner_up_latent, row.runner_up_spearman, row.margin) == (2, 0.5,
                                                                       pytest.approx(0.3))
  assert q.min_alignment == 0.0 and row.carried   # the default threshold
  assert quality_from_alignment(Alignment(("a",), (0,), (-1.0,), corr), 0.5).min_alignment == 0.5
  [alone] = quality_from_alignment(Alignment(("a",), (0,), (-1.0,), np.array([[-0.8]]))).rows
  assert (alone.runner_up_latent, alone.runner_up_spearman, alone.margin) == (None, 0.0, 0.8)
  at = quality_from_alignment(Alignment(("a",), (0,), (1.0,), corr), 0.8)
  assert at.rows[0].carried   # score_spearman == min_alignment is carried
  assert not quality_from_alignment(Alignment(("a",), (0,), (1.0,), corr), 0.81).rows[0].carried


def test_labels_without_a_quality_table_are_the_alignments():
  alignment = Alignment(("a",), (1,), (-1.0,), np.zeros((2, 1)))
  assert labels_with_quality(alignment, None) == ["z0: free", "z1: a (-)"]
