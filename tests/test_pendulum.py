"""pendulum: the CausalVAE scene's geometry, its drawing, the labelled folder it writes, the
registered data set, and the counterfactuals of its structural equations."""
import functools
import json
import math
import subprocess
import sys
from pathlib import Path

import ml_collections
import numpy as np
import pytest

from gem_jax.data import get_builder, get_dataset, load_examples
from gem_jax.data import pendulum as pd
from gem_jax.data.levels import level_edges, to_levels
from gem_jax.data.pendulum import builder as pendulum_builder

ROOT = Path(__file__).parent.parent
STRIDE = 97  # 76 of the 7,308 scenes, 18 of them in the published test split


def published_shadow(i: int, j: int) -> tuple[float, float, float]:
  """(light x, shadow length, shadow centre) of grid scene (i, j), written the way the
  published script computes them: a line through (x, y) with slope tan(phi) meets height
  `base` at x + (base - y) / tan(phi)."""
  theta, phi = i * math.pi / 200, j * math.pi / 200

  def meet(x, y, base=-0.5):
    return x + (base - y) / math.tan(phi)

  near = meet(10.0, 10.5)
  far = meet(10 + 9.5 * math.sin(theta), 10.5 - 9.5 * math.cos(theta))
  return meet(10.0, 10.5, 20.5), max(3.0, abs(far - near)), (near + far) / 2


def test_the_grid_is_the_published_one():
  angles, lights = pd.scene_grid()
  assert len(set(angles)) == 84 and len(set(lights)) == 87 and pd.NUM_SCENES == 7308
  assert angles[0] == -40 and angles[-1] == 43 and 100 not in set(lights)
  assert (lights[0], lights[86], lights[87]) == (60, 147, 60)  # light varies fastest
  test = pd.is_test(np.arange(pd.NUM_SCENES))
  assert test.sum() == 1826 and np.flatnonzero(test)[:3].tolist() == [4, 8, 12]
  values, grid_test = pd.grid_values()
  np.testing.assert_array_equal(grid_test, test)
  np.testing.assert_allclose(values[[0, -1], 0], [-36.0, 38.7])


@pytest.mark.parametrize("i,j", [(-40, 60), (-3, 99), (0, 101), (17, 130), (43, 147)])
def test_the_shadow_follows_the_published_projection(i, j):
  angle, light = pd.angle_degrees([i]), pd.light_position([j])
  np.testing.assert_allclose(angle, [i * 0.9])
  values = pd.concept_values(angle, light)[0]
  np.testing.assert_allclose(values[1:], published_shadow(i, j), rtol=1e-12)


def test_the_drawing_puts_bob_sun_and_shadow_where_the_geometry_says():
  image = pd.render_scene(30.0, 15.0, size=64)
  assert image.shape == (64, 64, 3) and image.dtype == np.uint8

  def pixel(x, y):  # scene units -> the 64 px picture of [-1, 21]^2
    return image[int((21 - y) / 22 * 64), int((x + 1) / 22 * 64)]

  theta = math.radians(30)
  bob = pixel(10 + 8 * math.sin(theta), 10.5 - 8 * math.cos(theta))
  assert bob[0] > 150 and bob[1] < 80  # firebrick
  sun = pixel(15.0, 20.0)
  assert sun[0] > 200 and 120 < sun[1] < 200 and sun[2] < 60  # orange
  length, centre = pd.shadows([30.0], [15.0])[0]
  assert pixel(centre, -0.5).max() < 60  # the shadow bar is dark
  assert pixel(centre + length / 2 + 1.0, -0.5).min() > 200  # and ends where it should
  moved = pd.render_scene(-30.0, 15.0, size=64)
  assert np.abs(moved.astype(int) - image).sum() > 0


def test_the_folder_holds_pngs_labels_with_the_published_split_and_the_graph(tmp_path):
  out = pd.write_pendulum_folder(tmp_path / "pend", stride=STRIDE)
  lines = (out / "labels.csv").read_text().splitlines()
  assert lines[0] == "filename,split,pendulum_angle,light_position,shadow_length,shadow_position"
  rows = [line.split(",") for line in lines[1:]]
  scenes = list(range(0, pd.NUM_SCENES, STRIDE))
  assert len(rows) == len(scenes) == 76 and len(list(out.glob("*.png"))) == 76
  assert [r[1] == "test" for r in rows] == pd.is_test(scenes).tolist()
  angles, lights = pd.scene_grid()
  first = rows[1]  # scene 97: angle index -39, light index 60 + 10 (97 - 87)
  assert first[0] == "pendulum_a-39_l070.png" == pd.scene_filename(-39, 70)
  np.testing.assert_allclose([float(v) for v in first[2:]], pd.concept_values(
      pd.angle_degrees([angles[97]]), pd.light_position([lights[97]]))[0])
  edges = json.loads((out / "graph.json").read_text())["edges"]
  assert edges == [list(e) for e in pd.GRAPH_EDGES]
  with pytest.raises(FileExistsError, match="already holds files"):
    pd.write_pendulum_folder(out, stride=STRIDE)
  assert not list(tmp_path.glob(".pend.partial-*"))


def _config(tmp_path, **keys) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict({"name": "pendulum", "config": "default", "image_size": 64,
                                    "data_dir": str(tmp_path / "tfds"), "image_dir": None,
                                    **keys})


def test_the_registered_pendulum_renders_its_folder_on_first_use(tmp_path, monkeypatch):
  write = functools.partial(pd.write_pendulum_folder, stride=STRIDE)  # not all 7,308 here
  monkeypatch.setattr(pendulum_builder, "write_pendulum_folder", write)
  config = _config(tmp_path)
  spec = get_dataset(config)
  assert spec.survey(config).split_sizes == {"train": 5482, "test": 1826}
  assert not (tmp_path / "tfds").exists()  # counted, not rendered
  builder = get_builder(config)
  folder = tmp_path / "tfds" / "pendulum_folder"
  assert (folder / "labels.csv").is_file() and builder.info.splits["test"].num_examples == 18
  examples = load_examples(config, "train")
  spec = get_dataset(config)  # now the folder's own levels
  assert spec.attribute_names == pd.CONCEPTS
  np.testing.assert_array_equal(spec.true_graph, pd.true_graph())
  assert spec.independent_pairs == (("pendulum_angle", "light_position"),)
  np.testing.assert_array_equal(spec.true_levels(examples, list(pd.CONCEPTS)),
                                examples["attributes"])
  assert spec.survey(config).split_sizes == {"train": 58, "test": 18}
  unchanged = spec.counterfactual_levels(examples, pd.CONCEPTS, {
      "light_position": examples["attributes"][:, 1]})
  np.testing.assert_array_equal(unchanged, examples["attributes"])


def grid_examples() -> tuple[dict, np.ndarray]:
  """All 7,308 scenes as examples (values, levels by the train rows' quantiles): no image."""
  values, test = pd.grid_values()
  levels = to_levels(values, level_edges(values[~test]))
  return {"values": values.astype(np.float32), "attributes": levels.astype(np.int32)}, levels


def test_intervening_changes_exactly_the_descendants():
  examples, levels = grid_examples()
  spec = get_dataset("pendulum")
  for name in pd.CONCEPTS:
    column = pd.CONCEPTS.index(name)
    moved = spec.counterfactual_levels(examples, pd.CONCEPTS, {name: 5 - levels[:, column]})
    changed = {pd.CONCEPTS[c] for c in range(4) if (moved[:, c] != levels[:, c]).any()}
    children = {child for parent, child, _ in pd.GRAPH_EDGES if parent == name}
    assert changed == {name} | children, name
  same = spec.counterfactual_levels(examples, pd.CONCEPTS, {"pendulum_angle": levels[:, 0],
                                                            "light_position": levels[:, 1]})
  np.testing.assert_array_equal(same, levels)


def test_the_graph_signs_are_the_average_effects():
  examples, levels = grid_examples()
  spec = get_dataset("pendulum")
  for parent, child, weight in pd.GRAPH_EDGES:
    p, c = pd.CONCEPTS.index(parent), pd.CONCEPTS.index(child)
    room = levels[:, p] < 5
    up = spec.counterfactual_levels(examples, [child], {parent: levels[:, p] + 1})[:, 0]
    assert np.sign((up - levels[:, c])[room].mean()) == weight, (parent, child)


def test_a_fractional_level_mixes_its_neighbours():
  examples, levels = grid_examples()
  spec = get_dataset("pendulum")
  low = spec.counterfactual_levels(examples, ["shadow_position"], {"pendulum_angle": 2})
  high = spec.counterfactual_levels(examples, ["shadow_position"], {"pendulum_angle": 3})
  mid = spec.counterfactual_levels(examples, ["pendulum_angle", "shadow_position"],
                                   {"pendulum_angle": 2.25})
  np.testing.assert_allclose(mid[:, 1:], 0.75 * low + 0.25 * high)
  assert (mid[:, 0] == 2.25).all()
  clipped = spec.counterfactual_levels(examples, ["pendulum_angle"], {"pendulum_angle": 9})
  assert (clipped == 5).all()
  with pytest.raises(ValueError, match="no attribute mass"):
    spec.counterfactual_levels(examples, ["mass"], {"pendulum_angle": 1})


@pytest.mark.slow
def test_the_cli_writes_a_folder(tmp_path):
  out = tmp_path / "cli"
  done = subprocess.run([sys.executable, "-m", "experiments.render_pendulum", "--out", str(out),
                         "--stride", "700"], cwd=ROOT, capture_output=True, text=True,
                        timeout=120)
  assert done.returncode == 0, done.stderr
  assert len(list(out.glob("*.png"))) == 11 and (out / "graph.json").is_file()
  again = subprocess.run([sys.executable, "-m", "experiments.render_pendulum", "--out",
                          str(out)], cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert again.returncode == 1 and again.stderr.strip() == (
      f"error: {out} already holds files; delete it or choose another folder")
