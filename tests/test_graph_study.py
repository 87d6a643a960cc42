"""`python -m experiments.graph_study` on the tiny preset: tables, JSON, resume."""
import json

import ml_collections
import numpy as np
import pytest

from experiments import graph_study
from experiments.configs import graph_study as study_config
from gem_jax.data import get_dataset
from gem_jax.evaluation import relation_metrics
from gem_jax.relations import Alignment


def _study(tfds_dir, results):
  study = study_config.get_config("tiny")
  study.data_dir = tfds_dir
  study.variants = "gem_relcon,gem_single,beta_vae"
  study.seeds = "0"
  study.results = str(results)
  return study


def test_variant_configs():
  study = study_config.get_config("tiny")
  c = graph_study.variant_config(study, "gem_scm-no_adversarial", 3)
  assert (c.model.objective, c.model.adversarial, c.seed) == ("gem_scm", False, 3)
  assert c.train.num_steps == study.stage4_steps and c.gem.warmup_steps == study.warmup_steps
  assert c.gem.scorer.accuracy == 0.884
  b = graph_study.variant_config(study, "beta_vae", 0)
  assert (b.model.graph_learner, b.model.adversarial, b.model.objective) == (
      False, False, "beta_vae")
  assert b.train.batch_size == c.train.batch_size  # the GEM stage's schedule
  with pytest.raises(ValueError, match="unknown config token 'gem_nope'"):
    graph_study.variant_config(study, "gem_nope", 0)


def test_paired_deltas_subtract_a0_per_seed():
  runs = {"gem_x": {0: {"relation_spearman": 0.7, "relation_weight_mae": 0.2,
                        "relation_a0_scaled_weight_mae": 0.25},
                    1: {"relation_spearman": 0.4, "relation_weight_mae": 0.3,
                        "relation_a0_scaled_weight_mae": 0.25}},
          "gem_single": {0: {"relation_spearman": 0.5, "relation_a0_spearman": 0.5}}}
  a0 = {0: {"relation_spearman": 0.5}, 1: {"relation_spearman": 0.3}}
  deltas = graph_study.paired_deltas(runs, a0)
  assert list(deltas) == ["gem_x"]
  mean, std, n = deltas["gem_x"]["relation_spearman"]
  assert (mean, n) == (pytest.approx(0.15), 2) and std == pytest.approx(0.0707, abs=1e-4)
  mean, _, n = deltas["gem_x"]["relation_weight_mae_vs_scaled_a0"]
  assert (mean, n) == (pytest.approx(0.0), 2)


def test_shrinkage_control_scales_a0_to_the_learned_mass():
  class Model:  # what aligned_graphs reads of a TrainedModel
    scm_weights = None
    alignment = Alignment(attribute_names=("bald", "bangs"), latent_of_attribute=(1, 0),
                          signs=(1, -1), correlations=[[0.1, -0.8], [0.9, 0.0]])
    graph_state = {"a0": np.array([[1.0, -0.4], [-0.6, 1.0]], np.float32)}
    adjacency = np.array([[1.0, -0.2], [-0.3, 1.0]], np.float32)
    config = None
  spec = get_dataset(ml_collections.ConfigDict({"name": "synthetic_faces",
                                                "config": "tiny", "data_dir": None}))
  out = graph_study.shrinkage_control(Model(), spec)
  assert out["relation_offdiag_mass"] == pytest.approx(0.5)
  assert out["relation_a0_offdiag_mass"] == pytest.approx(1.0)
  # A_0 scaled by 0.5 is A here, so the two weight MAEs agree.
  learned = relation_metrics(Model(), spec)["relation_weight_mae"]
  assert out["relation_a0_scaled_weight_mae"] == pytest.approx(learned)


@pytest.mark.slow
def test_graph_study_writes_tables_and_resumes(tfds_dir, tmp_path):
  results = tmp_path / "results" / "graph_study.json"
  study = _study(tfds_dir, results)
  text = graph_study.run_study(study, str(tmp_path / "run"))
  for row in ("| gem_relcon |", "| gem_single |", "| beta_vae |", "| A_0 (MLLM prior) |"):
    assert row in text
  assert "NOT Inception FID" in text and "SIMULATION" in text
  saved = json.loads(results.read_text())
  assert set(saved["runs"]) == {"gem_relcon", "gem_single", "beta_vae"}
  relcon = saved["runs"]["gem_relcon"]["0"]
  assert "relation_auroc_all_pairs" in relcon and "relation_a0_auroc_all_pairs" in relcon
  assert "fd_sample" in saved["runs"]["beta_vae"]["0"]
  assert "relation_spearman" not in saved["runs"]["beta_vae"]["0"]  # no graph to recover
  single = saved["runs"]["gem_single"]["0"]
  assert single["relation_spearman"] == pytest.approx(single["relation_a0_spearman"])
  assert list(saved["a_minus_a0"]) == ["gem_relcon"]
  assert (tmp_path / "run" / "graph_study.csv").read_text().startswith("row,metric,mean")
  # The shared stages ran once per seed; a rerun reads everything back.
  assert sorted(p.name for p in (tmp_path / "run" / "seed0").iterdir() if p.is_dir()) == [
      "beta_vae", "gem_relcon", "gem_single", "graph", "scores", "warmup"]
  evals = {p: p.stat().st_mtime_ns for p in (tmp_path / "run").rglob("*.eval.json")}
  assert graph_study.run_study(study, str(tmp_path / "run")) == text
  assert {p: p.stat().st_mtime_ns for p in evals} == evals
