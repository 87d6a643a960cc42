"""Score-only causal discovery (gem_jax/relations/discovery.py) and the prior GEM starts from:
causal-learn's encodings read right on graphs whose answer is known, missing rows dropped,
Somers' D kept on the found skeleton, config.gem.prior reaching A_0."""
import logging
import re

import ml_collections
import numpy as np
import pytest
from causallearn.graph.Dag import Dag
from causallearn.graph.GraphNode import GraphNode
from causallearn.graph.SHD import SHD
from causallearn.search.ConstraintBased.PC import pc

from gem_jax.gem_pipeline import prior_and_a0
from gem_jax.pipeline_settings import ADDED_STAGE_KEYS, graph_values
from gem_jax.relations import Alignment, discovery, graph_metrics, somers_d
from gem_jax.relations.discovery import (
    MIN_COMPLETE_ROWS,
    complete_rows,
    discover,
    find_prior,
    from_general_graph,
    prior_matrix,
    skeleton_prior,
)
from gem_jax.stages import check_stage, write_stage


def _levels(v: np.ndarray) -> np.ndarray:
  """A standardised variable rounded to levels 0..5."""
  return np.clip(np.rint(v / v.std() * 1.3 + 2.5), 0, 5).astype(np.int32)


def collider(n: int = 5000, seed: int = 0) -> np.ndarray:
  """Scores [n, 3] of X -> Z <- Y (X, Y independent), discretised to 0..5."""
  rng = np.random.default_rng(seed)
  x, y = rng.standard_normal(n), rng.standard_normal(n)
  return np.stack([_levels(x), _levels(y), _levels(x + y + 0.7 * rng.standard_normal(n))], 1)


def chain(n: int = 5000, seed: int = 0) -> np.ndarray:
  """Scores [n, 3] of X -> Y -> Z: no collider, so its CPDAG is X - Y - Z, undirected."""
  rng = np.random.default_rng(seed)
  x = rng.standard_normal(n)
  y = x + 0.8 * rng.standard_normal(n)
  z = y + 0.8 * rng.standard_normal(n)
  return np.stack([_levels(x), _levels(y), _levels(z)], 1)


COLLIDER = np.array([[0, 0, 1], [0, 0, 1], [0, 0, 0]], np.float64)  # X -> Z, Y -> Z
CHAIN_CPDAG = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], np.float64)  # X - Y - Z


@pytest.mark.parametrize("method", ["pc", "ges"])
def test_collider_is_found_exactly_in_the_project_convention(method):
  np.testing.assert_array_equal(discover(collider(), method), COLLIDER)


def test_chain_gives_undirected_edges_both_ways():
  np.testing.assert_array_equal(discover(chain(), "pc"), CHAIN_CPDAG)


def test_direct_lingam_coefficients_are_rows_out_edges():
  graph = discover(collider(), "direct_lingam")
  assert graph[0, 2] > 0.3 and graph[1, 2] > 0.3  # b_ZX, b_ZY in levels per level
  assert np.all(graph[2] == 0) and graph[0, 1] == graph[1, 0] == 0
  assert graph_metrics(graph, COLLIDER)["shd"] == 0


def test_general_graph_marks_each_end():
  # G[i, j] is the mark at i of the i-j edge: -1 tail, 1 arrowhead.
  g = np.array([[0, -1, -1, 1],
                [1, 0, 0, 0],
                [-1, 0, 0, 0],
                [1, 0, 0, 0]])
  np.testing.assert_array_equal(from_general_graph(g), [[0, 1, 1, 1],
                                                        [0, 0, 0, 0],
                                                        [1, 0, 0, 0],
                                                        [1, 0, 0, 0]])
  with pytest.raises(ValueError, match=r"unexpected causal-learn edge marks G\[0, 1\] = 2"):
    from_general_graph(np.array([[0, 2], [1, 0]]))  # a PAG's circle


def test_shd_agrees_with_causal_learn_on_its_own_output():
  scores = np.concatenate([collider(3000, 1), chain(3000, 2)], axis=1)  # 6 nodes
  names = [GraphNode(f"X{i + 1}") for i in range(6)]
  truth = Dag(names)
  for i, j in ((0, 2), (1, 2), (3, 4), (4, 5)):
    truth.add_directed_edge(names[i], names[j])
  est = pc(scores.astype(float), 0.05, "chisq", show_progress=False).G
  true_graph = np.zeros((6, 6))
  true_graph[[0, 1, 3, 4], [2, 2, 4, 5]] = 1
  mine = graph_metrics(discover(scores, "pc"), true_graph)["shd"]
  assert mine == SHD(truth, est).get_shd() == 2  # the chain's two undirected edges


def test_rows_with_a_missing_answer_are_dropped(caplog):
  scores = collider()
  holed = scores.copy()
  holed[::10, 1] = -1
  holed[5::10, 2] = -1
  with caplog.at_level(logging.INFO):
    graph = discover(holed, "direct_lingam")
  # DirectLiNGAM's coefficients move with any change of the rows it reads.
  np.testing.assert_array_equal(graph, discover(scores[complete_rows(holed)], "direct_lingam"))
  assert "direct_lingam: dropped 1000 of 5000 rows with a missing answer" in caplog.text
  prior = find_prior(holed, "pc", np.asarray(somers_d(holed)))
  assert (prior.rows_used, prior.rows_dropped) == (4000, 1000)


def test_too_few_complete_rows_is_refused_naming_the_fix():
  scores = collider(MIN_COMPLETE_ROWS)
  scores[0, 0] = -1
  with pytest.raises(ValueError) as info:
    discover(scores, "ges")
  assert str(info.value) == (
      "ges needs at least 100 fully answered rows (no -1), got 99 of 100: score more images, "
      "or use the prior 'somers_d' (pairwise deletion)")


def test_unknown_methods_list_the_known_ones():
  with pytest.raises(ValueError) as info:
    discover(collider(200), "fci")
  assert str(info.value) == ("unknown discovery method 'fci'; known: 'pc', 'ges', "
                             "'direct_lingam'")
  with pytest.raises(ValueError) as info:
    prior_matrix(collider(200), "spearman", np.eye(3))
  assert str(info.value) == ("unknown prior 'spearman'; known: 'somers_d', 'pc', 'ges', "
                             "'direct_lingam'")


@pytest.mark.parametrize("method", ["pc", "ges", "direct_lingam"])
def test_a_constant_attribute_stays_an_isolated_node(method):
  scores = collider()
  with_constant = np.concatenate([scores, np.full((5000, 1), 3, np.int32)], axis=1)
  graph = discover(with_constant, method)
  np.testing.assert_array_equal(graph[:3, :3], discover(scores, method))
  assert not graph[3].any() and not graph[:, 3].any()


def test_skeleton_prior_keeps_somers_d_on_found_edges_either_way():
  s = np.array([[1.0, 0.5, -0.3],
                [0.4, 1.0, 0.2],
                [-0.6, 0.1, 1.0]])
  graph = np.array([[0, 1, 0],     # 0 -> 1
                    [0, 0, 1],     # 1 - 2 undirected
                    [0, 1, 0]])
  np.testing.assert_array_equal(skeleton_prior(s, graph), [[1.0, 0.5, 0.0],
                                                           [0.0, 1.0, 0.2],
                                                           [0.0, 0.1, 1.0]])
  # DirectLiNGAM's signed coefficients, read at EDGE_THRESHOLD: -0.05 is no edge, 0.1 and
  # -0.2 are.
  lingam = np.array([[0, -0.05, 0.1], [-0.2, 0, 0], [0, 0, 0]])
  np.testing.assert_array_equal(skeleton_prior(s, lingam), [[1.0, 0.0, -0.3],
                                                            [0.4, 1.0, 0.0],
                                                            [0.0, 0.0, 1.0]])


def test_prior_matrix_is_somers_d_on_the_skeleton():
  scores = collider()
  s = np.asarray(somers_d(scores), np.float64)
  np.testing.assert_array_equal(prior_matrix(scores, "somers_d", s), s)
  expected = np.where(COLLIDER.astype(bool) | np.eye(3, dtype=bool), s, 0.0)
  np.testing.assert_array_equal(prior_matrix(scores, "pc", s), expected)
  prior = find_prior(scores, "pc", s)
  assert prior.to_json(["x", "y", "z"])["graph"] == COLLIDER.tolist()
  assert prior.to_json(["x", "y", "z"])["settings"].startswith("PC, chi-square CI test")


def _config(prior=None):
  gem = {} if prior is None else {"prior": prior}
  return ml_collections.ConfigDict({"seed": 0, "model": {"latent_dim": 4},
                                    "gem": {"attributes": "x,y,z", **gem}})


def test_config_prior_reaches_a0():
  scores = collider()
  # Attribute a on latent 2 - a (z on latent 0, y flipped), latent 3 free.
  alignment = Alignment(("x", "y", "z"), (2, 1, 0), (1.0, -1.0, 1.0), np.zeros((4, 3)))
  s, prior, a0 = prior_and_a0(_config("pc"), scores, alignment)
  assert prior.method == "pc"
  np.testing.assert_array_equal(prior.graph, COLLIDER)
  expected = np.eye(4)
  expected[2, 0], expected[1, 0] = s[0, 2], -s[1, 2]  # x -> z, y -> z (y's latent flipped)
  np.testing.assert_allclose(a0, expected, rtol=0, atol=1e-7)
  s_paper, paper, a0_paper = prior_and_a0(_config(), scores, alignment)  # no key: the paper's
  assert paper.method == "somers_d" and paper.graph is None
  assert np.count_nonzero(a0_paper[:3, :3] - np.eye(3)) == 6


def test_alignment_record_names_the_prior_and_old_records_still_match(tmp_path):
  values = graph_values(_config("ges"))
  assert values["gem.prior"] == "ges"
  assert graph_values(_config())["gem.prior"] == "somers_d"
  old = {k: v for k, v in graph_values(_config("somers_d")).items() if k != "gem.prior"}
  write_stage(tmp_path, "alignment", old, {}, complete=True)  # recorded before the key
  assert check_stage(tmp_path, "alignment", graph_values(_config("somers_d")), {},
                     has_outputs=True, added=ADDED_STAGE_KEYS)
  with pytest.raises(ValueError, match='config gem.prior: "somers_d" -> "pc"'):
    check_stage(tmp_path, "alignment", graph_values(_config("pc")), {}, has_outputs=True,
                added=ADDED_STAGE_KEYS)


@pytest.mark.parametrize("method", ["pc", "ges", "direct_lingam"])
def test_causal_learn_prints_no_progress(method, capfd):
  discover(collider(1000), method)
  assert capfd.readouterr() == ("", "")


def test_general_graph_names_the_first_unexpected_mark():
  g = np.zeros((3, 3), int)
  g[1, 2] = 2
  with pytest.raises(ValueError, match=r"^unexpected causal-learn edge marks G\[1, 2\] = 2, "
                     r"G\[2, 1\] = 0 \(expected a DAG or CPDAG\)$"):
    from_general_graph(g)
  with pytest.raises(ValueError, match=r"G\[0, 1\] = 0, G\[1, 0\] = 1 "):  # half an edge
    from_general_graph(np.array([[0, 0], [1, 0]]))


def test_skeleton_prior_is_float64_and_names_bad_shapes():
  s = np.array([[1.0, 0.5], [0.25, 1.0]], np.float32)
  out = skeleton_prior(s, np.array([[0, 1], [0, 0]]))
  assert out.dtype == np.float64
  np.testing.assert_array_equal(out, [[1.0, 0.5], [0.0, 1.0]])
  for somers, graph, shapes in ((np.zeros((2, 3)), np.zeros((2, 3)), "(2, 3) and (2, 3)"),
                                (np.zeros(2), np.zeros(2), "(2,) and (2,)"),
                                (np.zeros((2, 2)), np.zeros((3, 3)), "(2, 2) and (3, 3)")):
    with pytest.raises(ValueError, match=(r"^somers and graph must be the same square \[n, n\], "
                                          rf"got {re.escape(shapes)}$")):
      skeleton_prior(somers, graph)


def test_the_somers_d_prior_and_its_json():
  s = np.array([[1.0, 0.5], [-0.25, 1.0]], np.float32)
  prior = find_prior(np.zeros((7, 2), np.int32), "somers_d", s)
  assert prior.matrix.dtype == np.float64 and prior.graph is None
  assert (prior.method, prior.rows_used, prior.rows_dropped, prior.seconds, prior.settings) == (
      "somers_d", 7, 0, 0.0, "Somers' D (pairwise deletion)")
  assert type(prior.rows_dropped) is int and type(prior.seconds) is float
  assert prior.to_json(["x", "y"]) == {
      "attribute_names": ["x", "y"], "method": "somers_d",
      "settings": "Somers' D (pairwise deletion)", "rows_used": 7, "rows_dropped": 0,
      "seconds": 0.0, "graph": None, "matrix": [[1.0, 0.5], [-0.25, 1.0]]}


def test_find_prior_passes_alpha_and_seed_records_them_and_times_the_method(monkeypatch):
  calls = []

  def fake_discover(scores, method, *, alpha=None, seed=None):
    calls.append((method, alpha, seed))
    return COLLIDER

  clock = iter([10.0, 12.123456])
  monkeypatch.setattr(discovery, "discover", fake_discover)
  monkeypatch.setattr(discovery.time, "perf_counter", lambda: next(clock))
  scores, s = collider(200), np.eye(3)
  prior = find_prior(scores, "pc", s, alpha=0.01, seed=3)
  assert calls.pop() == ("pc", 0.01, 3)
  assert prior.seconds == pytest.approx(2.123456)
  assert prior.settings == ("PC, chi-square CI test on the levels, alpha 0.01, stable, "
                            "uc_rule 0, Meek")
  assert prior.to_json(["x", "y", "z"]) == {
      "attribute_names": ["x", "y", "z"], "method": "pc", "settings": prior.settings,
      "rows_used": 200, "rows_dropped": 0, "seconds": 2.123, "graph": COLLIDER.tolist(),
      "matrix": np.eye(3).tolist()}
  clock = iter([0.0, 1.0])
  prior = find_prior(scores, "direct_lingam", s, seed=7)
  assert calls.pop() == ("direct_lingam", 0.05, 7)
  assert prior.settings == "DirectLiNGAM (pwling), levels as floats, random_state 7"
  clock = iter([0.0, 1.0])
  find_prior(scores, "ges", s)
  assert calls.pop() == ("ges", 0.05, 0)   # the defaults
  clock = iter([0.0, 1.0, 0.0, 1.0])
  prior_matrix(scores, "pc", s)
  assert calls.pop() == ("pc", 0.05, 0)
  prior_matrix(scores, "pc", s, alpha=0.2, seed=5)
  assert calls.pop() == ("pc", 0.2, 5)


def test_bad_scores_are_named():
  with pytest.raises(ValueError, match=r"^scores must be \[N, n\] with n >= 2 attributes, got "
                     r"shape \(5,\)$"):
    discover(np.zeros(5, int), "pc")
  with pytest.raises(ValueError, match=r"got shape \(5, 1\)$"):
    discover(np.zeros((5, 1), int), "pc")
  with pytest.raises(TypeError, match=r"^scores must be an integer array \(-1 = missing\), got "
                     r"dtype float64$"):
    discover(np.zeros((5, 2)), "pc")
  for value, low, high in ((-2, -2, 5), (6, 0, 6)):
    scores = collider(200)
    scores[0, 0] = value
    with pytest.raises(ValueError, match=(r"^scores must lie in 0..5 or be -1 \(missing\); found "
                                          rf"values in \[{low}, {high}\]$")):
      discover(scores, "pc")


def test_two_attributes_and_exactly_the_fewest_complete_rows_are_enough(caplog):
  scores = chain(MIN_COMPLETE_ROWS)[:, :2]   # X -> Y, one undirected edge for PC
  np.testing.assert_array_equal(discover(scores, "pc"), [[0, 1], [1, 0]])
  holed = np.concatenate([scores, [[-1, 2]]])
  with caplog.at_level(logging.INFO):
    discover(holed, "pc")
  assert "pc: dropped 1 of 101 rows with a missing answer" in caplog.messages


def test_the_defaults_alpha_and_seed():
  scores = collider(300)
  np.testing.assert_array_equal(discover(scores, "pc"), discover(scores, "pc", alpha=0.05))
  assert not np.array_equal(discover(scores, "pc", alpha=1e-300), discover(scores, "pc"))
