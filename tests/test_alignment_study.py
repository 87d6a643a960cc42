"""`python -m experiments.alignment_study` on synthetic_faces/tiny: every setting and seed is
trained, measured against the true levels, tabled, and read back on a rerun."""
import json

import pytest

from experiments import alignment_study
from experiments.configs import alignment_study as study_config


@pytest.mark.slow
def test_the_study_measures_every_setting_and_resumes_without_training(tfds_dir, tmp_path,
                                                                      monkeypatch):
  study = study_config.get_config("tiny")
  study.seeds = "0"
  study.data_dir = tfds_dir
  study.results = str(tmp_path / "results" / "alignment_study.json")
  text = alignment_study.run_study(study, str(tmp_path / "runs"))
  saved = json.loads((tmp_path / "results" / "alignment_study.json").read_text())
  assert sorted(saved["runs"]) == ["tiny_d6", "tiny_guided"]
  unguided, guided = saved["runs"]["tiny_d6"]["0"], saved["runs"]["tiny_guided"]["0"]
  assert unguided["checked_on"].startswith("all 128 scored images")
  assert guided["checked_on"] == "26 held-out scored images (never guided)"
  for run in (unguided, guided):
    assert list(run["attributes"]) == ["bangs", "bald", "gender", "beard", "blond", "makeup"]
    assert run["truth_on"] == "true levels of 128 'test' images"
    assert all(-1 <= r["truth_spearman"] <= r["best_truth_spearman"] + 1e-9
               for r in run["attributes"].values())
    assert run["num_carried"] == len(run["carried"])
  for title in ("TRUE level", "ANY latent", "Traversal effect", "Summary"):
    assert title in text
  assert (tmp_path / "results" / "alignment_study.md").read_text() == text
  monkeypatch.setattr(alignment_study, "run_shared_stages",
                      lambda *a, **k: pytest.fail("a measured run was trained again"))
  assert alignment_study.run_study(study, str(tmp_path / "runs")) == text
