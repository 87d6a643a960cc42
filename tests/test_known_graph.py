"""experiments.known_graph end to end on a labelled folder the test draws itself, and the
known-graph study's tables."""
import json

import ml_collections
import numpy as np
import pytest
from PIL import Image

from experiments import known_graph, known_graph_study
from experiments.configs import known_graph as known_graph_config
from experiments.configs import known_graph_study as study_config
from gem_jax.relations import graph_metrics

CONCEPTS = ("size", "shade", "offset")


def draw_folder(root, n: int = 150, seed: int = 0):
  """n 64x64 images of a disc: its radius is `size`, its grey level `shade` (caused by size:
  shade = 2 size + noise), its horizontal place `offset` (independent). 80% train."""
  rng = np.random.default_rng(seed)
  size = rng.uniform(4, 14, n)
  shade = 2.0 * size + rng.normal(0, 2.0, n)
  offset = rng.uniform(-8, 8, n)
  yy, xx = np.mgrid[:64, :64]
  root.mkdir()
  lines = ["filename,split," + ",".join(CONCEPTS)]
  for i in range(n):
    disc = (xx - 32 - offset[i]) ** 2 + (yy - 32) ** 2 <= size[i] ** 2
    grey = np.clip(40 + 6 * shade[i], 0, 255)
    image = np.where(disc[..., None], grey, 230).astype(np.uint8).repeat(3, axis=2)
    Image.fromarray(image).save(root / f"disc_{i:03d}.png")
    split = "test" if i % 5 == 4 else "train"
    lines.append(f"disc_{i:03d}.png,{split},{size[i]:.4f},{shade[i]:.4f},{offset[i]:.4f}")
  (root / "labels.csv").write_text("\n".join(lines) + "\n")
  (root / "graph.json").write_text(json.dumps({"edges": [["size", "shade"]]}))
  return root


@pytest.mark.slow
def test_a_drawn_labelled_folder_goes_end_to_end(tmp_path):
  folder = draw_folder(tmp_path / "discs")
  kg = known_graph_config.get_config("tiny")
  kg.dataset, kg.image_dir = "labelled_folder", str(folder)
  kg.data_dir = str(tmp_path / "tfds")
  report = known_graph.run(kg, tmp_path / "run")

  assert report == json.loads((tmp_path / "run" / "report.json").read_text())
  assert (tmp_path / "run" / "graphs.png").read_bytes()[:4] == b"\x89PNG"
  assert report["attributes"] == list(CONCEPTS)
  assert set(report["concepts"]) == set(CONCEPTS)
  assert all(-1 <= c["truth_spearman"] <= 1 for c in report["concepts"].values())
  assert set(report["graphs"]) == {"A_0", "pc", "ges", "direct_lingam", "gem"}
  truth = np.array(report["truth"])
  assert truth[0, 1] == 1.0 and np.count_nonzero(truth) == 1
  for method, row in report["graphs"].items():  # each row is the metric of its own matrix
    expected = graph_metrics(np.array(report["matrices"][method]), truth)
    assert row["shd"] == expected["shd"] and 0 <= row["shd"] <= 3, method
    assert set(row) >= {"shd", "orientation", "f1", "auroc"}
  assert report["interventions"] == {}  # a drawn folder has no known SCM
  assert report["scorer"]["is_simulation"] is True
  assert "A_0" in known_graph.table(report) and "truth Spearman" in known_graph.table(report)


def _rows(shd_gem: int, shd_pc: int) -> dict:
  row = lambda shd: {"shd": shd, "orientation": 1.0, "f1": 0.5, "auroc": 0.75,
                     "intervention_error": 0.1, "truth_spearman_min": 0.9}
  return {"A_0": row(4), "pc": row(shd_pc), "ges": row(3), "direct_lingam": row(5),
          "gem_sparse": row(shd_gem)}


def test_the_study_pairs_each_variant_with_a0_and_the_best_score_only_method_per_seed():
  runs = {("pendulum", "realistic"): {0: _rows(1, 2), 1: _rows(3, 3), 2: _rows(2, 1)}}
  paired = known_graph_study.paired(runs, "gem_sparse")[("pendulum", "realistic")]
  # minus A_0: -3, -1, -2; minus the best score-only (2, 3, 1): -1, 0, +1
  np.testing.assert_allclose(paired["minus_a0"], (-2.0, 1.0, 3))
  np.testing.assert_allclose(paired["minus_best_score_only"], (0.0, 1.0, 3))
  summary = known_graph_study.summarise(runs)
  np.testing.assert_allclose(summary[("pendulum", "realistic")]["gem_sparse"]["shd"],
                             (2.0, 1.0, 3))
  study = ml_collections.ConfigDict({"preset": "t", "seeds": "0,1,2", "warmup_steps": 1,
                                     "run_tokens": "tiny", "num_scored_images": 9,
                                     "scorer_accuracy": 0.884, "stage4_steps": 1,
                                     "eval": {"intervention_images": 4, "split": "test"}})
  text = known_graph_study.markdown(study, summary, {"gem_sparse": {
      ("pendulum", "realistic"): paired}})
  assert "### pendulum, realistic scorer" in text
  assert "| gem_sparse | 2.00 ± 1.00 |" in text
  assert "| gem_sparse | -2.00 ± 1.00 | 0.00 ± 1.00 |" in text


@pytest.mark.parametrize("first", ["gem", "gem_paper"])
def test_a_cells_shared_stages_are_built_on_the_papers_prior_whatever_variant_comes_first(
    tmp_path, monkeypatch, first):
  """Stages 1-3 record the prior; built on Somers' D whichever variant is listed first, one
  cell serves every invocation (each variant's prior is rebuilt from the same scores)."""
  seen = []

  class Stop(Exception):
    pass

  def shared_stages(config, cell_dir):
    seen.append((config.gem.prior, config.model.name, cell_dir))
    raise Stop

  monkeypatch.setattr(known_graph_study, "run_shared_stages", shared_stages)
  study = study_config.get_config("tiny")
  study.data_dir = str(tmp_path)
  study.variants = first
  with pytest.raises(Stop):
    known_graph_study.run_cell(study, tmp_path, "pendulum", "realistic", 0, None)
  assert seen == [("somers_d", first, tmp_path / "pendulum" / "realistic" / "seed0")]
