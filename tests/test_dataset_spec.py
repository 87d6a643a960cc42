"""DatasetSpec: the one place that knows facts about a data set (gem_jax/data/registry.py)."""
import ast
from pathlib import Path

import ml_collections
import numpy as np
import pytest
import scipy.stats

from gem_jax.data import DATASETS, DatasetSpec, get_builder, get_dataset
from gem_jax.data import synthetic_faces as sf
from gem_jax.data.celeba import ATTRIBUTE_NAMES, GEM_ATTRIBUTES

PACKAGE = Path(__file__).resolve().parents[1] / "gem_jax"


def _synthetic_examples(n: int = 120) -> dict:
  attributes, factors = sf.sample_factors(3, n)
  return {"image": np.zeros((n, 4, 4, 3), np.uint8), "attributes": attributes,
          "factors": factors, "index": np.arange(n)}


def _celeba_examples(n: int = 20) -> dict:
  rng = np.random.default_rng(0)
  return {"image": np.zeros((n, 4, 4, 3), np.uint8),
          "attributes": rng.integers(0, 2, (n, len(ATTRIBUTE_NAMES))).astype(np.int8),
          "gem_labels": rng.integers(0, 2, (n, len(GEM_ATTRIBUTES))).astype(np.int8),
          "filename": np.array([b"000001.jpg"] * n)}


def test_specs_by_name_and_by_data_config(tmp_path):
  assert DATASETS == ("synthetic_faces", "celeba", "image_folder", "labelled_folder", "pendulum")
  for name in DATASETS:
    spec = get_dataset(name)
    assert isinstance(spec, DatasetSpec) and spec.name == name
    config = {"name": name, "config": "x", "data_dir": str(tmp_path)}  # no folder there yet
    assert get_dataset(ml_collections.ConfigDict(config)) is spec


def test_synthetic_faces_facts_are_the_scm():
  spec = get_dataset("synthetic_faces")
  assert spec.attribute_names == sf.ATTRIBUTES and spec.num_levels == sf.NUM_LEVELS == 6
  assert spec.true_graph.shape == (6, 6)
  np.testing.assert_array_equal(spec.true_graph, sf.TRUE_GRAPH)
  assert spec.independent_pairs == sf.INDEPENDENT_PAIRS
  assert spec.nuisance_names == sf.NUISANCE
  np.testing.assert_array_equal(spec.sample_attributes(7, 50), sf.sample_factors(7, 50)[0])


def test_celeba_and_image_folder_facts():
  celeba = get_dataset("celeba")
  assert celeba.attribute_names == GEM_ATTRIBUTES and celeba.num_levels == 2
  assert celeba.true_graph is None and celeba.independent_pairs == ()
  assert celeba.nuisance_names == () and celeba.sample_attributes(0, 3) is None
  folder = get_dataset("image_folder")
  assert folder.attribute_names == () and folder.true_graph is None


def test_unknown_name_lists_the_known_ones():
  message = ("unknown data set 'mnist'; known data sets: synthetic_faces, celeba, image_folder, "
             "labelled_folder, pendulum")
  with pytest.raises(ValueError, match=message):
    get_dataset("mnist")
  with pytest.raises(ValueError, match=message):
    get_builder(ml_collections.ConfigDict({"name": "mnist", "config": "x"}))


def test_oracle_labels_synthetic_faces_are_the_levels():
  examples = _synthetic_examples()
  labels, names = get_dataset("synthetic_faces").oracle_labels(examples)
  assert names == list(sf.ATTRIBUTES)
  np.testing.assert_array_equal(labels, examples["attributes"])
  assert labels.dtype == np.int32


def test_oracle_labels_celeba_are_gem_labels_in_plus_minus_one():
  examples = _celeba_examples()
  labels, names = get_dataset("celeba").oracle_labels(examples)
  assert names == list(GEM_ATTRIBUTES)
  np.testing.assert_array_equal(labels, np.where(examples["gem_labels"] > 0, 1, -1))
  # Without gem_labels, a celeba_local 'attributes' array has no oracle labels.
  del examples["gem_labels"]
  assert get_dataset("celeba").oracle_labels(examples) == (None, None)


def test_oracle_labels_of_a_tfds_celeb_a_mapping_are_sorted_by_name():
  rng = np.random.default_rng(1)
  male, bald = rng.random(30) > 0.5, rng.random(30) > 0.5
  count = rng.integers(0, 3, 30).astype(np.int32)
  examples = {"image": np.zeros((30, 4, 4, 3), np.uint8),
              "attributes": {"Male": male, "Bald": bald, "Count": count}}
  for name in DATASETS:
    labels, names = get_dataset(name).oracle_labels(examples)
    assert names == ["Bald", "Count", "Male"]
    np.testing.assert_array_equal(labels, np.stack(
        [np.where(bald, 1, -1), count.astype(np.int64), np.where(male, 1, -1)], axis=1))


def test_oracle_labels_of_unlabelled_images_are_none():
  examples = {"image": np.zeros((3, 4, 4, 3), np.uint8), "filename": np.array([b"a"] * 3)}
  assert get_dataset("image_folder").oracle_labels(examples) == (None, None)


def test_oracle_labels_with_the_wrong_number_of_columns_is_an_error():
  examples = _synthetic_examples()
  examples["attributes"] = examples["attributes"][:, :4]
  with pytest.raises(ValueError, match="expected 'attributes' labels"):
    get_dataset("synthetic_faces").oracle_labels(examples)


def test_ground_truth_factors_synthetic_faces():
  examples = _synthetic_examples(120)
  spec = get_dataset("synthetic_faces")
  factors, names = spec.ground_truth_factors(examples)
  assert factors.shape == (120, 12) and factors.dtype == np.int64
  assert names == list(sf.ATTRIBUTES) + list(sf.NUISANCE)
  np.testing.assert_array_equal(factors[:, :6], examples["attributes"])
  for column in factors[:, 6:].T:   # quantile bins: 6 bins of 20 examples each
    np.testing.assert_array_equal(np.bincount(column), [20] * 6)
  nuisance = spec.nuisance_factors(examples)
  assert nuisance.shape == (120, 6) and nuisance.dtype == np.float32
  np.testing.assert_array_equal(nuisance, examples["factors"][:, 6:])


def test_ground_truth_factors_celeba_and_image_folder():
  examples = _celeba_examples(20)
  factors, names = get_dataset("celeba").ground_truth_factors(examples)
  assert factors.shape == (20, 40) and names == [f"attr{i}" for i in range(40)]
  np.testing.assert_array_equal(factors, examples["attributes"] > 0)
  assert get_dataset("celeba").nuisance_factors(examples).shape == (20, 0)
  folder = {"image": np.zeros((3, 4, 4, 3), np.uint8)}
  assert get_dataset("image_folder").ground_truth_factors(folder) == (None, [])


def test_true_levels_are_the_labels_of_data_sets_whose_labels_are_factors():
  examples = _synthetic_examples(10)
  for name in ("synthetic_faces", "pendulum"):
    spec = get_dataset(name)
    assert spec.labels_are_factors
    levels = examples["attributes"][:, :len(spec.attribute_names)]
    names = list(spec.attribute_names[::-1])
    np.testing.assert_array_equal(spec.true_levels({"attributes": levels}, names),
                                  levels[:, ::-1])
  assert get_dataset("celeba").true_levels(_celeba_examples(), ["Bald"]) is None
  assert get_dataset("celeba").counterfactual_levels(_celeba_examples(), ["Bald"],
                                                     {"Male": 1}) is None


# ------------------------------------------------------------ synthetic_faces counterfactuals

FACES = get_dataset("synthetic_faces")
A = {name: i for i, name in enumerate(sf.ATTRIBUTES)}


def _descendants(name: str) -> set[str]:
  found, frontier = set(), [name]
  while frontier:
    parent = A[frontier.pop()]
    for child in np.flatnonzero(sf.TRUE_GRAPH[parent]):
      if sf.ATTRIBUTES[child] not in found:
        found.add(sf.ATTRIBUTES[child])
        frontier.append(sf.ATTRIBUTES[child])
  return found


def test_intervening_on_a_face_attribute_moves_exactly_its_descendants():
  examples = _synthetic_examples(400)
  levels = examples["attributes"]
  assert _descendants("gender") == {"beard", "makeup", "bald", "bangs"}  # bangs through bald
  for name in sf.ATTRIBUTES:
    moved = FACES.counterfactual_levels(examples, sf.ATTRIBUTES, {name: 5 - levels[:, A[name]]},
                                        seed=1)
    changed = {n for n in sf.ATTRIBUTES if (moved[:, A[n]] != levels[:, A[n]]).any()}
    assert changed == {name} | _descendants(name), name
  blond = FACES.counterfactual_levels(examples, ["blond"], {"gender": 5})
  np.testing.assert_array_equal(blond[:, 0], levels[:, A["blond"]])


def test_intervening_to_the_observed_levels_changes_nothing():
  examples = _synthetic_examples(400)
  levels = examples["attributes"]
  for name in ("gender", "bald", "blond"):
    same = FACES.counterfactual_levels(examples, sf.ATTRIBUTES, {name: levels[:, A[name]]})
    np.testing.assert_array_equal(same, levels)


def test_do_gender_plus_one_moves_beard_by_its_structural_weight_where_nothing_clips():
  examples = _synthetic_examples(3_000)
  g, beard = examples["attributes"][:, A["gender"]], examples["attributes"][:, A["beard"]]
  up = FACES.counterfactual_levels(examples, ["beard"], {"gender": g + 1.0})[:, 0]
  inside = (g <= 4) & (beard >= 1) & (beard <= 4)
  assert inside.sum() > 300
  assert abs((up - beard)[inside].mean() - sf.TRUE_GRAPH[A["gender"], A["beard"]]) < 0.02


def test_a_half_step_follows_the_truncated_normal_of_the_noise():
  """beard's latent, given gender = 2 and beard = 1, is -1 + 1.3 eps in [0.5, 1.5); a half
  step of gender lifts beard to 2 exactly when the latent is above 1."""
  levels = np.zeros((300, 6), np.int32)
  levels[:, A["gender"]], levels[:, A["beard"]] = 2, 1
  half = FACES.counterfactual_levels({"attributes": levels}, ["beard"], {"gender": 2.5},
                                     seed=3)[:, 0]
  cdf = scipy.stats.norm.cdf
  low, high, cut = (0.5 + 1) / 1.3, (1.5 + 1) / 1.3, (1.0 + 1) / 1.3
  expected = (cdf(high) - cdf(cut)) / (cdf(high) - cdf(low))
  assert abs((half - 1).mean() - expected) < 0.02  # 300 faces x 64 draws: sd 0.004
  assert abs(expected - 0.5) > 0.05  # a uniform position inside the level would miss it


def test_counterfactual_levels_checks_names_and_shapes():
  examples = _synthetic_examples(5)
  with pytest.raises(ValueError, match="has no attribute smile"):
    FACES.counterfactual_levels(examples, ["beard"], {"smile": 1})
  with pytest.raises(ValueError, match=r"do\(gender := \.\.\.\): expected a level or 5 levels"):
    FACES.counterfactual_levels(examples, ["beard"], {"gender": [1, 2]})
  clipped = FACES.counterfactual_levels(examples, ["gender"], {"gender": 7.5})
  assert (clipped == 5).all()


def test_data_layer_imports_nothing_above_it():
  """gem_jax/data is the bottom layer: it imports no other gem_jax package."""
  for path in sorted((PACKAGE / "data").rglob("*.py")):
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, ast.ImportFrom) and node.module:
        modules = [node.module]
      elif isinstance(node, ast.Import):
        modules = [alias.name for alias in node.names]
      else:
        continue
      for module in modules:
        if module.startswith("gem_jax"):
          assert module.startswith("gem_jax.data"), f"{path}: imports {module}"


# ---------------------------------------------------------------------------------------------
# LAYOUT CHECK (issue "One layout that shows the paper"): no code outside gem_jax/data compares
# a data set's name; it asks `get_dataset(...)` instead. Passes once the whole refactor is in.
# ---------------------------------------------------------------------------------------------

_NAMES = set(DATASETS)


def _names_compared(tree: ast.AST) -> list[tuple[int, str]]:
  """(line, name) of every comparison (==, !=, in, not in) with a data set name literal."""
  found = []
  for node in ast.walk(tree):
    if not isinstance(node, ast.Compare):
      continue
    for operand in [node.left, *node.comparators]:
      literals = operand.elts if isinstance(operand, (ast.Tuple, ast.List, ast.Set)) else [operand]
      found += [(node.lineno, lit.value) for lit in literals
                if isinstance(lit, ast.Constant) and lit.value in _NAMES]
  return found


def test_no_data_set_name_is_compared_outside_the_data_layer():
  offenders = []
  for path in sorted(PACKAGE.rglob("*.py")):
    if (PACKAGE / "data") in path.parents:
      continue
    offenders += [f"{path.relative_to(PACKAGE.parent)}:{line}: {name!r}"
                  for line, name in _names_compared(ast.parse(path.read_text()))]
  assert not offenders, "compare via gem_jax.data.get_dataset:\n" + "\n".join(offenders)
