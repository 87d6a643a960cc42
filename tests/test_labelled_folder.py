"""labelled_folder: images + labels.csv (+ graph.json) -> levels 0..5 by train quantiles, a spec
built from config.data, and one exact error per kind of bad input."""
import json

import ml_collections
import numpy as np
import pytest
from PIL import Image

from gem_jax.config_checks import config_problems
from gem_jax.data import DataNotFoundError, LabelsError, get_dataset, load_examples
from gem_jax.data.folder_labels import read_labels, split_rows, table_levels
from gem_jax.data.folder_split import split_files
from gem_jax.data.levels import level_edges, to_levels

# Train values 0..17 of 'size' (n = 18): the j/6 quantiles sit at h = 17 j / 6, i.e. edges
# 2.83, 5.67, 8.5, 11.33, 14.17, so each level holds three train rows. The test rows probe the
# rule: below the train range, above it, and exactly on an edge (8.5: the lower bin).
TRAIN_SIZES = list(range(18))
TEST_SIZES = [-5.0, 100.0, 8.5, 3.0]
EXPECTED_TRAIN_LEVELS = [v // 3 for v in TRAIN_SIZES]
EXPECTED_TEST_LEVELS = [0, 5, 2, 1]


def draw(path, value: float, side: int = 16) -> None:
  """A small PNG whose grey level follows `value`."""
  grey = int(np.clip(60 + 8 * value, 0, 255))
  Image.fromarray(np.full((side, side, 3), grey, np.uint8)).save(path)


def write_folder(root, *, split: bool = True, graph=None, rows=None):
  """The standard folder: 22 images (18 train, 4 test) with concepts size and hue (hue
  = 2 * size, so both bin alike), labels.csv, and graph.json when `graph` is given."""
  root.mkdir(parents=True, exist_ok=True)
  sizes = TRAIN_SIZES + TEST_SIZES
  splits = ["train"] * len(TRAIN_SIZES) + ["test"] * len(TEST_SIZES)
  header = "filename,split,size,hue" if split else "filename,size,hue"
  lines = [header]
  for i, (size, which) in enumerate(zip(sizes, splits)):
    name = f"img_{i:02d}.png"
    draw(root / name, size)
    cells = [name, which] if split else [name]
    lines.append(",".join(cells + [repr(float(size)), repr(2.0 * size)]))
  (root / "labels.csv").write_text("\n".join(rows if rows is not None else lines) + "\n")
  if graph is not None:
    (root / "graph.json").write_text(json.dumps({"edges": graph}))
  return root


def data_config(root, tmp_path, **keys) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict({"name": "labelled_folder", "config": "default",
                                    "image_dir": str(root) if root else None,
                                    "data_dir": str(tmp_path / "tfds"),
                                    "image_size": 64, "labels_csv": None, "graph_json": None,
                                    **keys})


def test_levels_are_quantiles_of_the_train_rows_only():
  values = np.array(TRAIN_SIZES, np.float64)[:, None]
  edges = level_edges(values)
  np.testing.assert_allclose(edges.ravel(), [17 / 6, 34 / 6, 8.5, 68 / 6, 85 / 6])
  np.testing.assert_array_equal(to_levels(values, edges).ravel(), EXPECTED_TRAIN_LEVELS)
  test = np.array(TEST_SIZES)[:, None]
  np.testing.assert_array_equal(to_levels(test, edges).ravel(), EXPECTED_TEST_LEVELS)


def test_ties_go_to_the_lower_bin():
  zeros_and_ones = np.array([0.0] * 70 + [1.0] * 30)[:, None]
  levels = to_levels(zeros_and_ones, level_edges(zeros_and_ones)).ravel()
  assert sorted(set(levels)) == [0, 4]
  constant = np.full((5, 1), 3.0)
  assert to_levels(constant, level_edges(constant)).ravel().tolist() == [0] * 5


def test_the_builder_stores_levels_values_and_the_split(tmp_path):
  root = write_folder(tmp_path / "imgs")
  config = data_config(root, tmp_path)
  train, test = load_examples(config, "train"), load_examples(config, "test")
  assert train["image"].shape == (18, 64, 64, 3) and train["image"].dtype == np.uint8
  order = np.argsort([f.decode() for f in train["filename"]])
  np.testing.assert_array_equal(train["values"][order, 0], TRAIN_SIZES)
  np.testing.assert_array_equal(train["attributes"][order], np.stack(
      [EXPECTED_TRAIN_LEVELS] * 2, axis=1))
  assert train["attributes"].dtype == np.int32 and train["values"].dtype == np.float32
  by_name = dict(zip([f.decode() for f in test["filename"]], test["attributes"][:, 0]))
  assert [by_name[f"img_{i:02d}.png"] for i in range(18, 22)] == EXPECTED_TEST_LEVELS
  builder = get_dataset(config).builder(config)
  np.testing.assert_allclose(builder.info.metadata["level_edges"][0],
                             [17 / 6, 34 / 6, 8.5, 68 / 6, 85 / 6])


def test_without_a_split_column_the_image_folder_hash_split_is_used(tmp_path):
  root = write_folder(tmp_path / "imgs", split=False)
  table = read_labels(root / "labels.csv")
  rows = split_rows(table, 0.2)
  expected = split_files(sorted(table.filenames), 0.2)
  assert {s: sorted(table.filenames[i] for i in r) for s, r in rows.items()} == {
      s: sorted(f) for s, f in expected.items()}
  levels, edges = table_levels(table, rows)
  np.testing.assert_array_equal(edges, level_edges(table.values[rows["train"]]))
  survey = get_dataset(data_config(root, tmp_path)).survey(data_config(root, tmp_path))
  assert survey.split_sizes == {"train": 21, "test": 1}  # image_folder's 5% (at least one)
  assert not (tmp_path / "tfds").exists()


def test_the_spec_reads_its_concepts_and_graph_from_the_folder(tmp_path):
  root = write_folder(tmp_path / "imgs", graph=[["size", "hue", -0.5]])
  config = data_config(root, tmp_path)
  spec = get_dataset(config)
  assert spec.attribute_names == ("size", "hue") and spec.num_levels == 6
  np.testing.assert_array_equal(spec.true_graph, [[0, -0.5], [0, 0]])
  assert get_dataset(config) is spec  # cached per resolved paths
  (root / "graph.json").write_text(json.dumps({"edges": [["hue", "size"]]}))
  np.testing.assert_array_equal(get_dataset(config).true_graph, [[0, 0], [1, 0]])
  (root / "graph.json").unlink()
  assert get_dataset(config).true_graph is None
  bare = get_dataset("labelled_folder")
  assert bare.attribute_names == () and bare.true_graph is None
  assert get_dataset(data_config(None, tmp_path)) is bare


def test_true_levels_and_oracle_labels_are_the_folders_levels(tmp_path):
  spec = get_dataset(data_config(write_folder(tmp_path / "imgs"), tmp_path))
  levels = np.array([[0, 1], [5, 4]], np.int32)
  examples = {"image": np.zeros((2, 4, 4, 3), np.uint8), "attributes": levels,
              "values": np.zeros((2, 2), np.float32)}
  np.testing.assert_array_equal(spec.true_levels(examples, ["hue"]), [[1], [4]])
  labels, names = spec.oracle_labels(examples)
  assert names == ["size", "hue"] and labels.tolist() == levels.tolist()
  factors, factor_names = spec.ground_truth_factors(examples)
  assert factor_names == ["size", "hue"] and factors.tolist() == levels.tolist()
  assert spec.counterfactual_levels(examples, ["hue"], {"size": 3}) is None  # no known SCM
  assert get_dataset("celeba").true_levels({"gem_labels": np.ones((2, 6))}, ["Bald"]) is None


def test_two_folders_never_share_a_local_feature_extractor(tmp_path):
  from gem_jax.metrics import local_features
  dirs = {local_features.cache_dir(data_config(tmp_path / name, tmp_path), tmp_path / "cache")
          for name in ("a", "b")}
  assert len(dirs) == 2
  faces = ml_collections.ConfigDict({"name": "synthetic_faces", "config": "tiny"})
  assert local_features.cache_dir(faces, "/c").name == "local_cnn-synthetic_faces-tiny-" + (
      "2606cf09d4")  # the digest before folders had keys


def test_the_survey_counts_the_split_column_before_and_after_preparing(tmp_path):
  config = data_config(write_folder(tmp_path / "imgs"), tmp_path)
  spec = get_dataset(config)
  assert spec.survey(config).split_sizes == {"train": 18, "test": 4}
  assert "22 labelled images" in spec.survey(config).source
  spec.builder(config)
  assert "prepared in" in spec.survey(config).source


def test_the_labelled_gem_configs_name_the_folder_keys():
  from experiments.configs import labelled_gem, lsun_gem
  for tokens in ("", "oracle", "tiny,oracle"):
    config = labelled_gem.get_config(tokens)
    assert {"image_dir", "labels_csv", "graph_json"} <= set(config.data.keys())
    assert config.gem.scorer.model is None
    assert config_problems(config, num_devices=1) == []
  assert lsun_gem.get_config().gem.scorer.model is None
  config = labelled_gem.get_config()
  config.data.labels_csv = ""
  config.data.graph_json = " "
  assert config_problems(config, num_devices=1) == [
      "config.data.labels_csv='': must be a path (a non-empty string)",
      "config.data.graph_json=' ': must be a path (a non-empty string)"]


# --------------------------------------------------------------------------- one error each


def _error(tmp_path, kind, **folder):
  """The error `kind` ('spec': get_dataset(config), 'survey': reading the rows) raises."""
  root = tmp_path / "imgs"
  if not (root / "labels.csv").exists() and folder.get("write", True):
    write_folder(root, **{k: v for k, v in folder.items() if k not in ("write", "keys")})
  config = data_config(root, tmp_path, **folder.get("keys", {}))
  with pytest.raises((DataNotFoundError, LabelsError)) as info:
    spec = get_dataset(config)
    if kind == "survey":
      spec.survey(config)
  return type(info.value), str(info.value).replace(str(tmp_path), "TMP")


def _rows(*changes):
  """labels.csv of the standard folder with rows replaced: {row index (1 = first data
  row): new line}; None deletes the row."""
  lines = ["filename,split,size,hue"] + [
      f"img_{i:02d}.png,{'train' if i < 18 else 'test'},{float(v)},{2.0 * v}"
      for i, v in enumerate(TRAIN_SIZES + TEST_SIZES)]
  for index, line in changes:
    lines[index] = line
  return [line for line in lines if line is not None]


def test_image_dir_unset_or_absent(tmp_path):
  config = data_config(None, tmp_path)
  with pytest.raises(DataNotFoundError) as info:
    config.name = "labelled_folder"
    get_dataset(config).survey(config)
  assert str(info.value) == ("config.data.image_dir is not set; point it at a folder of images "
                             "with a labels.csv (docs/data.md, 'labelled_folder')")
  assert _error(tmp_path, "spec", write=False) == (DataNotFoundError, (
      "labelled folder TMP/imgs does not exist; point config.data.image_dir at the folder of "
      "images and its labels"))


def test_labels_csv_or_graph_json_absent(tmp_path):
  (tmp_path / "imgs").mkdir()
  assert _error(tmp_path, "spec", write=False) == (DataNotFoundError, (
      "labelled folder TMP/imgs has no labels.csv; write one (header filename[,split],"
      "<concept>,<concept>,...; docs/data.md) or point config.data.labels_csv at it"))
  missing = str(tmp_path / "other.csv")
  assert _error(tmp_path, "spec", write=False, keys={"labels_csv": missing}) == (
      DataNotFoundError, "config.data.labels_csv=TMP/other.csv: no such file (TMP/other.csv)")
  assert _error(tmp_path, "spec", keys={"graph_json": str(tmp_path / "g.json")}) == (
      DataNotFoundError, "config.data.graph_json=TMP/g.json: no such file (TMP/g.json); leave "
      "it unset to read TMP/imgs/graph.json when present")


def test_an_image_without_a_row(tmp_path):
  root = write_folder(tmp_path / "imgs")
  for name in ("zz.png", "sub/extra.png"):
    (root / name).parent.mkdir(exist_ok=True)
    draw(root / name, 1.0)
  assert _error(tmp_path, "survey") == (LabelsError, (
      "TMP/imgs/labels.csv: 2 image(s) under TMP/imgs have no row: sub/extra.png, zz.png; add "
      "a row for each or move them out of the folder"))


def test_a_row_without_an_image(tmp_path):
  (tmp_path / "imgs").mkdir()
  write_folder(tmp_path / "imgs")
  (tmp_path / "imgs" / "img_03.png").unlink()
  assert _error(tmp_path, "survey") == (LabelsError, (
      "TMP/imgs/labels.csv: 1 row(s) name no image under TMP/imgs: 'img_03.png' (line 5); fix "
      "the filename or delete the row"))


def test_a_value_that_is_not_a_number(tmp_path):
  rows = _rows((7, "img_06.png,train,6.0,twelve"))
  assert _error(tmp_path, "survey", rows=rows) == (LabelsError, (
      "TMP/imgs/labels.csv:8: column 'hue' of 'img_06.png' is 'twelve', not a finite number"))
  (tmp_path / "imgs" / "labels.csv").write_text("\n".join(_rows((2, "img_01.png,train,nan,2"))))
  assert _error(tmp_path, "survey")[1] == (
      "TMP/imgs/labels.csv:3: column 'size' of 'img_01.png' is 'nan', not a finite number")


def test_a_bad_split(tmp_path):
  rows = _rows((4, "img_03.png,validation,3.0,6.0"))
  assert _error(tmp_path, "survey", rows=rows) == (LabelsError, (
      "TMP/imgs/labels.csv:5: split 'validation' of 'img_03.png'; expected 'train' or 'test' "
      "(or no split column: the images are then split by path hash)"))


def test_a_duplicate_filename(tmp_path):
  rows = _rows((9, "img_02.png,train,8.0,16.0"))
  assert _error(tmp_path, "survey", rows=rows) == (LabelsError, (
      "TMP/imgs/labels.csv:10: 'img_02.png' already has a row (line 4); give each image one "
      "row"))


def test_an_unknown_concept_in_the_graph(tmp_path):
  graph = [["size", "hue"], ["hue", "colour", 2.0]]
  assert _error(tmp_path, "spec", graph=graph) == (LabelsError, (
      "TMP/imgs/graph.json: edge 2 (hue -> colour) names 'colour', which is not a concept of "
      "TMP/imgs/labels.csv; its concepts: size, hue"))


def test_a_cycle_in_the_graph_is_named_in_order(tmp_path):
  rows = ["filename,split,a,b,c,d"] + [f"img_{i:02d}.png,train,{i},{i},{i},{i}"
                                       for i in range(22)]
  graph = [["a", "b"], ["b", "c"], ["c", "d"], ["d", "b", -1.0]]
  assert _error(tmp_path, "spec", rows=rows, graph=graph) == (LabelsError, (
      "TMP/imgs/graph.json: the edges form a cycle b -> c -> d -> b; a relation graph must be "
      "acyclic: remove one of these edges"))
  (tmp_path / "imgs" / "graph.json").write_text(json.dumps({"edges": [["a", "a"]]}))
  assert _error(tmp_path, "spec")[1].startswith("TMP/imgs/graph.json: the edges form a cycle "
                                                "a -> a;")


def test_malformed_graph_and_header(tmp_path):
  assert _error(tmp_path, "spec", graph=[["size", "hue", "strong"]]) == (LabelsError, (
      "TMP/imgs/graph.json: edge 1 (size -> hue) has weight \"strong\"; expected a finite "
      "non-zero number"))
  (tmp_path / "imgs" / "labels.csv").write_text("name,size\nimg_00.png,1\n")
  assert _error(tmp_path, "spec") == (LabelsError, (
      "TMP/imgs/labels.csv: the header 'name,size' has no 'filename' column; expected "
      "filename[,split],<concept>,<concept>,..."))


def test_the_entry_points_print_a_labels_error_in_one_line(tmp_path):
  from experiments import cli
  from experiments.configs import labelled_gem
  write_folder(tmp_path / "imgs", graph=[["size", "hue"], ["hue", "size"]])
  config = labelled_gem.get_config("tiny,oracle")
  config.data.name, config.data.image_dir = "labelled_folder", str(tmp_path / "imgs")
  with pytest.raises(SystemExit) as info:
    cli.run_experiment(config, str(tmp_path / "run"), resume=False)
  assert info.value.code == (f"error: {tmp_path}/imgs/graph.json: the edges form a cycle size -> "
                             "hue -> size; a relation graph must be acyclic: remove one of these "
                             "edges")
  assert not (tmp_path / "run").exists()
