"""Tests for gem_jax.relations: contingency-table Somers' D against scipy.stats.somersd, and
the field's graph metrics (`graph_metrics`) on hand-made graphs and against causal-learn."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from causallearn.graph.ArrowConfusion import ArrowConfusion
from causallearn.graph.Edge import Edge
from causallearn.graph.Endpoint import Endpoint
from causallearn.graph.GeneralGraph import GeneralGraph
from causallearn.graph.GraphNode import GraphNode
from causallearn.graph.SHD import SHD

from gem_jax.data.synthetic_faces.scm import TRUE_GRAPH
from gem_jax.relations import (
    EDGE_THRESHOLD,
    Alignment,
    contingency_tables,
    graph_metrics,
    somers_d,
    somers_d_bootstrap,
    somers_d_from_tables,
)
from gem_jax.relations.recovery import (
    RelationTruth,
    graph_recovery,
    json_float,
    json_matrix,
    relation_recovery,
)

TOL = 1e-6


def scipy_reference(scores: np.ndarray) -> np.ndarray:
  """Pairwise-deletion loop over scipy.stats.somersd; nan where scipy gives nan."""
  scores = np.asarray(scores)
  n = scores.shape[1]
  ref = np.eye(n)
  for i in range(n):
    for j in range(n):
      if i == j:
        continue
      valid = (scores[:, i] >= 0) & (scores[:, j] >= 0)
      ref[i, j] = scipy.stats.somersd(scores[valid, i], scores[valid, j]).statistic
  return ref


def assert_matches_scipy(scores, num_levels=6):
  S = np.asarray(somers_d(scores, num_levels=num_levels))
  ref = scipy_reference(scores)
  assert S.shape == ref.shape and S.dtype == np.float32
  finite = np.isfinite(ref)
  np.testing.assert_allclose(S[finite], ref[finite], rtol=0, atol=TOL)
  np.testing.assert_array_equal(np.diag(S), np.ones(S.shape[0], np.float32))
  return S, ref


def correlated_scores(rng, num_rows, num_cols, num_levels, noise=1.0):
  latent = rng.normal(size=(num_rows, 2))
  raw = latent @ rng.normal(size=(2, num_cols)) + noise * rng.normal(size=(num_rows, num_cols))
  ranks = scipy.stats.rankdata(raw, axis=0) / (num_rows + 1)
  return np.minimum((ranks * num_levels).astype(np.int64), num_levels - 1)


def test_random_scores_match_scipy():
  rng = np.random.default_rng(0)
  assert_matches_scipy(rng.integers(0, 6, size=(300, 5)))
  assert_matches_scipy(correlated_scores(rng, 500, 6, 6))


def test_heavily_tied_scores_match_scipy():
  rng = np.random.default_rng(1)
  probs = np.array([0.85, 0.1, 0.02, 0.01, 0.01, 0.01])
  scores = rng.choice(6, size=(400, 5), p=probs)
  scores[:, 1] = np.where(rng.random(400) < 0.7, scores[:, 0], scores[:, 1])
  assert_matches_scipy(scores)
  # binary-like columns (only levels 0 and 5 used)
  assert_matches_scipy(5 * rng.integers(0, 2, size=(200, 3)))


def test_constant_column_gives_zero_where_scipy_gives_nan():
  rng = np.random.default_rng(2)
  scores = rng.integers(0, 6, size=(100, 3))
  scores[:, 1] = 3
  S, ref = assert_matches_scipy(scores)
  # scipy returns nan whenever either variable is constant (table not "truly 2-D")
  assert np.isnan(ref[1, 0]) and np.isnan(ref[0, 1])
  # constant independent variable: no untied pair -> 0 by convention
  assert S[1, 0] == 0.0 and S[1, 2] == 0.0
  # constant dependent variable: N_c = N_d = 0 over a positive denominator -> exactly 0
  assert S[0, 1] == 0.0 and S[2, 1] == 0.0
  assert S[1, 1] == 1.0  # diagonal stays 1 even for a constant column


def test_missing_values_pairwise_deletion():
  rng = np.random.default_rng(3)
  scores = correlated_scores(rng, 600, 5, 6)
  scores[rng.random(scores.shape) < 0.2] = -1
  scores[:150, 4] = -1  # a block missing for one attribute only
  assert_matches_scipy(scores)
  # pairwise, not listwise: an entry only depends on its own two columns
  S = np.asarray(somers_d(scores))
  np.testing.assert_allclose(S[:2, :2], np.asarray(somers_d(scores[:, :2])), rtol=0, atol=TOL)


def test_no_jointly_present_rows_gives_zero():
  scores = np.array([[0, -1], [1, -1], [-1, 2], [-1, 3]])
  S = np.asarray(somers_d(scores))
  np.testing.assert_array_equal(S, np.eye(2, dtype=np.float32))


@pytest.mark.parametrize("num_levels", [2, 3, 10])
def test_other_num_levels(num_levels):
  rng = np.random.default_rng(4 + num_levels)
  scores = correlated_scores(rng, 300, 4, num_levels)
  scores[rng.random(scores.shape) < 0.05] = -1
  S, _ = assert_matches_scipy(scores, num_levels=num_levels)
  assert S.shape == (4, 4)


def test_asymmetry_bald_bangs_by_hand():
  # bald (x): 60 non-bald faces, bangs 0..5 (10 each); 10 bald faces, all without bangs.
  bald = np.array([0] * 60 + [5] * 10)
  bangs = np.array(list(np.repeat(np.arange(6), 10)) + [0] * 10)
  scores = np.stack([bald, bangs], axis=1)
  S = np.asarray(somers_d(scores))
  # N_c = 0 (a bald face has the lowest bangs); N_d = 10 bald x 50 non-bald-with-bangs = 500.
  # Untied on bald: 10 x 60 = 600 -> D(bangs | bald) = -500 / 600 = -5/6.
  # Untied on bangs: C(70, 2) - C(20, 2) - 5 C(10, 2) = 2415 - 190 - 225 = 2000
  #   -> D(bald | bangs) = -500 / 2000 = -1/4.
  assert S[0, 1] == pytest.approx(-5 / 6, abs=TOL)
  assert S[1, 0] == pytest.approx(-1 / 4, abs=TOL)
  assert abs(S[0, 1]) > 3 * abs(S[1, 0])  # bald strongly suppresses bangs, not vice versa
  assert S[0, 1] == pytest.approx(scipy.stats.somersd(bald, bangs).statistic, abs=TOL)
  assert S[1, 0] == pytest.approx(scipy.stats.somersd(bangs, bald).statistic, abs=TOL)


def test_asymmetry_rare_attribute_with_noise():
  # x mostly 0 with a few high values; y increases with x plus noise.
  rng = np.random.default_rng(5)
  x = np.where(rng.random(2000) < 0.9, 0, rng.integers(3, 6, 2000))
  y = np.clip(x + rng.integers(-1, 3, 2000), 0, 5)
  S, _ = assert_matches_scipy(np.stack([x, y], axis=1))
  assert S[0, 1] > 0 and S[1, 0] > 0
  # x is tied far more often, so x's impact on y is the larger one
  assert S[0, 1] > S[1, 0] + 0.3


def test_large_n_nearly_constant_column_accuracy():
  # 202,599 rows (CelebA size): counts ~4e10 in the numerator; nearly constant column makes
  # the denominator tiny (1 - sum r^2 ~ 1e-5), where a naive float32 formula loses digits.
  rng = np.random.default_rng(6)
  num_rows = 202_599
  scores = np.zeros((num_rows, 3), np.int64)
  scores[:5, 0] = [5, 4, 5, 3, 5]
  scores[:, 1] = rng.integers(0, 6, num_rows)
  scores[:, 2] = np.clip(scores[:, 1] + rng.integers(-1, 2, num_rows), 0, 5)
  scores[rng.random(num_rows) < 0.01, 2] = -1
  assert_matches_scipy(scores)


def test_contingency_tables_are_counts():
  rng = np.random.default_rng(7)
  scores = rng.integers(-1, 4, size=(200, 3))
  tables = np.asarray(contingency_tables(scores, num_levels=4))
  assert tables.shape == (3, 3, 4, 4)
  for i in range(3):
    for j in range(3):
      valid = (scores[:, i] >= 0) & (scores[:, j] >= 0)
      expected = np.zeros((4, 4))
      np.add.at(expected, (scores[valid, i], scores[valid, j]), 1)
      np.testing.assert_array_equal(tables[i, j], expected)
  np.testing.assert_allclose(
      np.asarray(somers_d_from_tables(jnp.asarray(tables))),
      np.asarray(somers_d(scores, num_levels=4)),
      rtol=0,
      atol=TOL,
  )


def test_weighted_tables_over_several_chunks():
  # 70,000 rows = two full 32,768-row chunks + a remainder; integer weights as in the bootstrap
  rng = np.random.default_rng(12)
  scores = rng.integers(-1, 3, size=(70_000, 2))
  weights = rng.integers(0, 4, size=70_000)
  tables = np.asarray(contingency_tables(scores, num_levels=3, weights=weights))
  valid = (scores[:, 0] >= 0) & (scores[:, 1] >= 0)
  expected = np.zeros((3, 3))
  np.add.at(expected, (scores[valid, 0], scores[valid, 1]), weights[valid])
  np.testing.assert_array_equal(tables[0, 1], expected)
  np.testing.assert_array_equal(tables[1, 0], expected.T)
  # weights = row multiplicities: same tables as repeating the rows
  repeated = np.repeat(scores, weights, axis=0)
  np.testing.assert_array_equal(tables, np.asarray(contingency_tables(repeated, 3)))
  with pytest.raises(ValueError, match="weights must have shape"):
    contingency_tables(scores, 3, weights=weights[:10])


def test_input_validation():
  with pytest.raises(ValueError, match="0..5 or be -1"):
    somers_d(np.array([[0, 6], [1, 2]]))
  with pytest.raises(ValueError, match="0..5 or be -1"):
    somers_d(jnp.array([[0, -2], [1, 2]]))
  with pytest.raises(ValueError, match="0..2 or be -1"):
    somers_d(np.array([[0, 3], [1, 2]]), num_levels=3)
  with pytest.raises(TypeError, match="integer"):
    somers_d(np.array([[0.0, 1.0], [1.0, 2.0]]))
  with pytest.raises(ValueError, match="2-D"):
    somers_d(np.array([0, 1, 2]))
  with pytest.raises(ValueError, match="num_levels"):
    somers_d(np.array([[0, 1]]), num_levels=1)


def test_works_inside_jit_and_is_jitted():
  rng = np.random.default_rng(8)
  scores = jnp.asarray(rng.integers(-1, 6, size=(100, 4)), dtype=jnp.int32)
  outer = jax.jit(lambda s: somers_d(s) * 2.0)
  np.testing.assert_allclose(np.asarray(outer(scores)), 2 * np.asarray(somers_d(scores)))


def test_bootstrap_shapes_and_ci_contains_estimate():
  rng = np.random.default_rng(9)
  scores = correlated_scores(rng, 400, 4, 6)
  scores[rng.random(scores.shape) < 0.05] = -1
  S, lower, upper = somers_d_bootstrap(scores, jax.random.PRNGKey(0), num_resamples=100)
  S, lower, upper = map(np.asarray, (S, lower, upper))
  assert S.shape == lower.shape == upper.shape == (4, 4)
  np.testing.assert_allclose(S, np.asarray(somers_d(scores)), rtol=0, atol=TOL)
  assert np.all(lower <= upper)
  assert np.all(lower <= S + 1e-6) and np.all(S <= upper + 1e-6)
  np.testing.assert_array_equal(np.diag(lower), 1.0)
  np.testing.assert_array_equal(np.diag(upper), 1.0)
  off = ~np.eye(4, dtype=bool)
  assert np.all(upper[off] - lower[off] > 0)  # resampling does move the estimate
  # deterministic given the key; batch_size does not change the result
  again = somers_d_bootstrap(scores, jax.random.PRNGKey(0), num_resamples=100, batch_size=25)
  np.testing.assert_allclose(np.asarray(again[1]), lower, atol=1e-6)
  np.testing.assert_allclose(np.asarray(again[2]), upper, atol=1e-6)


def test_bootstrap_narrower_with_more_data():
  rng = np.random.default_rng(10)
  big = correlated_scores(rng, 8000, 3, 6)
  small = big[:200]
  key = jax.random.PRNGKey(1)
  _, lo_s, up_s = somers_d_bootstrap(small, key, num_resamples=100)
  _, lo_b, up_b = somers_d_bootstrap(big, key, num_resamples=100)
  off = ~np.eye(3, dtype=bool)
  width_small = np.asarray(up_s - lo_s)[off]
  width_big = np.asarray(up_b - lo_b)[off]
  assert np.all(width_big < width_small)
  # roughly 1/sqrt(N) scaling: 40x the data -> about 6x narrower
  assert width_big.mean() < width_small.mean() / 3


def test_bootstrap_confidence_level_orders_intervals():
  rng = np.random.default_rng(11)
  scores = correlated_scores(rng, 300, 3, 6)
  key = jax.random.PRNGKey(2)
  _, lo50, up50 = somers_d_bootstrap(scores, key, num_resamples=100, confidence=0.5)
  _, lo95, up95 = somers_d_bootstrap(scores, key, num_resamples=100, confidence=0.95)
  assert np.all(np.asarray(lo95) <= np.asarray(lo50) + 1e-7)
  assert np.all(np.asarray(up50) <= np.asarray(up95) + 1e-7)
  with pytest.raises(ValueError, match="confidence"):
    somers_d_bootstrap(scores, key, confidence=1.5)
  with pytest.raises(ValueError, match="num_resamples"):
    somers_d_bootstrap(scores, key, num_resamples=0)


# ------------------------------------------------------------------ graph metrics of the field


def _two_nodes(forward: float, backward: float) -> np.ndarray:
  return np.array([[1.0, forward], [backward, 1.0]])  # the diagonal is ignored


TRUE_01 = np.array([[0.0, 0.8], [0.0, 0.0]])  # 0 -> 1


@pytest.mark.parametrize("forward,backward,expected", [
    # found the right way round, negative weights count by |w|
    (-0.5, 0.0, dict(shd=0, orientation=1.0, precision=1.0, recall=1.0, f1=1.0, auroc=1.0)),
    # missing
    (0.0, 0.05, dict(shd=1, orientation=None, precision=None, recall=0.0, f1=0.0, auroc=0.0)),
    # reversed
    (0.0, 0.3, dict(shd=1, orientation=0.0, precision=0.0, recall=0.0, f1=0.0, auroc=0.0)),
    # undirected (a CPDAG's i - j, 1 both ways)
    (1.0, 1.0, dict(shd=1, orientation=0.5, precision=0.5, recall=1.0, f1=2 / 3, auroc=0.5)),
    # a 2-cycle of other signs claims no orientation either
    (0.3, -0.2, dict(shd=1, orientation=0.5, precision=0.5, recall=1.0, f1=2 / 3, auroc=1.0)),
    # exactly at the threshold is claimed, just below is not
    (0.1, 0.0999, dict(shd=0, orientation=1.0, precision=1.0, recall=1.0, f1=1.0, auroc=1.0)),
])
def test_graph_metrics_of_each_pair_state(forward, backward, expected):
  m = graph_metrics(_two_nodes(forward, backward), TRUE_01)
  assert {k: m[k] for k in expected} == pytest.approx(expected)
  assert (m["num_pairs"], m["num_true_edges"], m["threshold"]) == (1, 1, EDGE_THRESHOLD)


def test_graph_metrics_of_an_extra_edge_and_of_no_truth():
  m = graph_metrics(_two_nodes(0.4, 0.0), np.zeros((2, 2)))
  assert (m["shd"], m["orientation"], m["precision"], m["recall"], m["f1"], m["auroc"]) == (
      1, None, 0.0, None, 0.0, None)
  m = graph_metrics(np.eye(2), np.zeros((2, 2)))
  assert (m["shd"], m["precision"], m["recall"], m["f1"]) == (0, None, None, None)


def test_graph_metrics_of_the_truth_itself():
  m = graph_metrics(TRUE_GRAPH + np.eye(6), TRUE_GRAPH)
  assert m == {"shd": 0, "orientation": 1.0, "precision": 1.0, "recall": 1.0, "f1": 1.0,
               "auroc": 1.0, "num_pairs": 15, "num_true_edges": 5, "num_claimed_edges": 5,
               "num_undirected": 0, "threshold": 0.1}


def test_graph_metrics_of_a_cpdag_by_hand():
  # Truth: 0 -> 1 -> 2, 3 -> 2. Found: 0 - 1 undirected, 1 -> 2, 2 -> 3 (reversed), 0 -> 3 (extra).
  true = np.zeros((4, 4))
  true[0, 1], true[1, 2], true[3, 2] = 1.0, -0.7, 0.5
  found = np.zeros((4, 4))
  found[0, 1] = found[1, 0] = found[1, 2] = found[2, 3] = found[0, 3] = 1.0
  m = graph_metrics(found, true)
  # pairs (0,1) undirected vs ->, (2,3) reversed, (0,3) extra: 3; (1,2), (0,2), (1,3) agree.
  assert m["shd"] == 3 and m["num_pairs"] == 6 and m["num_undirected"] == 1
  assert m["orientation"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)
  # claimed (0,1) (1,0) (1,2) (2,3) (0,3): hits (0,1) (1,2); TP 2, FP 3, FN 1.
  assert (m["precision"], m["recall"], m["f1"]) == pytest.approx((2 / 5, 2 / 3, 4 / 8))
  # |L| of the 3 true edges (1, 1, 0) against the 9 other ordered pairs (3 ones, 6 zeros):
  # each 1 beats 6 and ties 3 (7.5 of 9), the 0 ties 6 (3 of 9).
  assert m["auroc"] == pytest.approx((7.5 + 7.5 + 3) / 27)


def test_graph_metrics_shd_matches_causal_learn_and_its_arrow_counts():
  def general(claimed):  # our reading, written as causal-learn edges
    nodes = [GraphNode(f"X{i}") for i in range(len(claimed))]
    g = GeneralGraph(nodes)
    for i, j in zip(*np.nonzero(np.triu(claimed | claimed.T, 1))):
      if claimed[i, j] and claimed[j, i]:
        g.add_edge(Edge(nodes[i], nodes[j], Endpoint.TAIL, Endpoint.TAIL))
      else:
        a, b = (i, j) if claimed[i, j] else (j, i)
        g.add_directed_edge(nodes[a], nodes[b])
    return g

  rng = np.random.default_rng(0)
  for trial in range(40):
    k = 6
    true = np.triu(rng.random((k, k)) < 0.3, 1)
    perm = rng.permutation(k)
    true = true[np.ix_(perm, perm)]
    learned = rng.choice([0.0, 0.05, 0.1, -0.3], size=(k, k), p=[0.6, 0.1, 0.1, 0.2])
    if trial % 2:  # DAG estimates: causal-learn's arrow counts are our directed edge counts
      learned = np.triu(learned, 1)[np.ix_(perm, perm)]
    m = graph_metrics(learned, true.astype(float))
    claimed = (np.abs(learned) >= EDGE_THRESHOLD) & ~np.eye(k, dtype=bool)
    assert m["shd"] == SHD(general(true), general(claimed)).get_shd()
    if trial % 2:
      arrows = ArrowConfusion(general(true), general(claimed))
      tp, fp, fn = (arrows.get_arrows_tp(), arrows.get_arrows_fp(), arrows.get_arrows_fn())
      assert m["precision"] == (tp / (tp + fp) if tp + fp else None)
      assert m["recall"] == (tp / (tp + fn) if tp + fn else None)


def test_graph_metrics_rejects_a_bad_threshold():
  with pytest.raises(ValueError, match="threshold must be a finite number > 0, got 0"):
    graph_metrics(np.eye(2), TRUE_01, threshold=0)


# --- relation recovery: graph_recovery, the JSON helpers, the checks ------------------------


def _recovery_case():
  """Somers' D over c, a, b, d against a truth over a..e: a -> b (0.8, strong), b -> c (-0.5,
  weak); independent pairs a-d, c-d (and a-e, e not scored)."""
  w = np.zeros((5, 5))
  w[0, 1], w[1, 2] = 0.8, -0.5
  truth = RelationTruth("t", ("a", "b", "c", "d", "e"), w, (("a", "d"), ("c", "d"), ("a", "e")))
  s = np.array([[1.0, 0.25, -0.5, 0.123456],    # rows and columns: c, a, b, d
                [0.3, 1.0, 0.4, -0.15],
                [0.1, 0.1, 1.0, 0.0],
                [0.02, 0.45, 0.01, 1.0]])
  return s, ["c", "a", "b", "d"], truth


def test_graph_recovery_hand_worked():
  s, names, truth = _recovery_case()
  r = graph_recovery(s, names, truth)
  assert r == {
      "attributes": ["c", "a", "b", "d"],
      "true_graph": [[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.8, 0.0], [-0.5, 0.0, 0.0, 0.0],
                     [0.0, 0.0, 0.0, 0.0]],
      "edges": [
          {"from": "a", "to": "b", "weight": 0.8, "S_from_to": 0.4, "S_to_from": 0.1,
           "sign_agrees": True, "stronger_in_causal_direction": True},
          {"from": "b", "to": "c", "weight": -0.5, "S_from_to": 0.1, "S_to_from": -0.5,
           "sign_agrees": False, "stronger_in_causal_direction": False}],
      "sign_agreement": 0.5,
      "direction_agreement": 0.5,
      "num_true_edges": 2,
      "independent_pairs": [["a", "d"], ["c", "d"]],
      # undirected: a-b 0.4 and c-b 0.5 against a-d 0.45 and c-d 0.1235: 3 of 4 wins;
      # directed: |S_ab| 0.4 and |S_bc| 0.1 against 0.15, 0.45, 0.1235, 0.02: 4 of 8;
      # strong (|w| >= 0.7): a -> b alone.
      "auroc_undirected": 0.75,
      "auroc_directed": 0.5,
      "auroc_undirected_strong": 0.5,
      "auroc_directed_strong": 0.75,
      "strong_threshold": 0.7,
      "max_abs_S_independent_pairs": 0.45,
      "min_max_abs_S_true_edges": 0.4,
      "pairs_ranked": [
          {"pair": ["c", "b"], "max_abs_S": 0.5, "kind": "edge"},
          {"pair": ["a", "d"], "max_abs_S": 0.45, "kind": "independent"},
          {"pair": ["a", "b"], "max_abs_S": 0.4, "kind": "edge"},
          {"pair": ["c", "a"], "max_abs_S": 0.3, "kind": "indirect"},
          {"pair": ["c", "d"], "max_abs_S": 0.1235, "kind": "independent"},
          {"pair": ["b", "d"], "max_abs_S": 0.01, "kind": "indirect"}],
  }
  both = graph_recovery(s, names, truth, strong_threshold=0.5)   # |w| = 0.5 counts
  assert (both["auroc_undirected_strong"], both["auroc_directed_strong"]) == (0.75, 0.5)
  tie = s.copy()
  tie[2, 1] = -0.4   # |S_ba| = |S_ab|: the causal direction is not weaker
  assert graph_recovery(tie, names, truth)["edges"][0]["stronger_in_causal_direction"]


def test_graph_recovery_without_edges_or_pairs():
  s, names, truth = _recovery_case()
  r = graph_recovery(s[np.ix_([0, 3], [0, 3])], ["c", "d"],
                     dataclasses.replace(truth, independent_pairs=()))
  assert r["edges"] == [] and r["num_true_edges"] == 0
  assert r["sign_agreement"] is r["direction_agreement"] is None
  assert r["max_abs_S_independent_pairs"] is r["min_max_abs_S_true_edges"] is None
  assert r["auroc_undirected"] is r["auroc_directed"] is None
  assert r["pairs_ranked"] == [{"pair": ["c", "d"], "max_abs_S": 0.1235, "kind": "indirect"}]


def test_json_float_and_matrix_round_to_four_digits_and_drop_non_finite():
  assert json_float(1.234567) == 1.2346 and type(json_float(1.234567)) is float
  assert json_float(1.234567, 2) == 1.23
  assert json_float(None) is json_float(np.nan) is json_float(np.inf) is None
  assert json_matrix(np.array([[1.234567, np.nan], [-np.inf, 2]], np.float32)) == [
      [1.2346, None], [None, 2.0]]
  assert json_matrix([[0.123456]], 3) == [[0.123]]


_THREE = np.array([[0.0, 0.9, 0.0], [0.0, 0.0, -0.4], [0.0, 0.0, 0.0]])   # 0 -> 1 -> 2


def test_recovery_checks_name_what_is_wrong():
  with pytest.raises(ValueError, match=r"^learned must be a square \[k, k\] matrix, got shape "
                     r"\(2, 3\)$"):
    relation_recovery(np.zeros((2, 3)), np.zeros((2, 3)))
  with pytest.raises(ValueError, match=r"^need at least 2 nodes, got k = 1$"):
    relation_recovery(np.zeros((1, 1)), np.zeros((1, 1)))
  for learned, true in ((np.full((3, 3), np.nan), _THREE), (_THREE, np.full((3, 3), np.inf))):
    with pytest.raises(ValueError, match=r"^learned and true_graph must be finite \(no NaN or "
                       r"inf\)$"):
      relation_recovery(learned, true)
  with pytest.raises(ValueError, match=r"^independent_pairs must hold \(i, j\) index pairs, got "
                     r"\(0, 1, 2\)$"):
    relation_recovery(_THREE, _THREE, independent_pairs=[(0, 1, 2)])
  for pair in ((0, 3), (3, 0), (-1, 2)):
    with pytest.raises(ValueError, match=rf"^independent pair \({pair[0]}, {pair[1]}\) is not "
                       r"two distinct node indices in \[0, 3\)$"):
      relation_recovery(_THREE, _THREE, independent_pairs=[pair])


def test_recovery_reads_boolean_graphs_as_zero_one_weights():
  adjacency = _THREE != 0
  assert relation_recovery(adjacency, adjacency) == relation_recovery(
      adjacency.astype(float), adjacency.astype(float))


def test_orientation_and_spearman_edge_cases():
  reversed_ = _THREE.T.copy()   # every true edge learned the other way round
  assert relation_recovery(reversed_, _THREE)["orientation_accuracy"] == 0.0
  assert relation_recovery(np.zeros((3, 3)), np.zeros((3, 3)))["orientation_accuracy"] is None
  assert relation_recovery(np.eye(3), _THREE)["spearman"] is None      # learned constant
  assert relation_recovery(_THREE, np.zeros((3, 3)))["spearman"] is None   # truth constant


def test_alignment_repr_lists_every_latent():
  alignment = Alignment(("a", "b"), (2, 0), (1.0, -1.0), np.zeros((3, 2)))
  assert repr(alignment) == "Alignment(z0: b (-), z1: free, z2: a (+))"


def test_the_range_of_device_arrays_is_checked_after_the_jitted_call():
  """A concrete jax.Array is range-checked from the min/max computed inside the jitted call."""
  bad = jnp.array([[0, 7], [-1, 2]])
  message = r"^scores must lie in 0..5 or be -1 \(missing\); found values in \[-1, 7\]$"
  for call in (lambda: contingency_tables(bad), lambda: somers_d(bad),
               lambda: somers_d_bootstrap(bad, jax.random.PRNGKey(0), num_resamples=2)):
    with pytest.raises(ValueError, match=message):
      call()
  with pytest.raises(ValueError, match=r"found values in \[-2, 1\]$"):
    contingency_tables(jnp.array([[0, -2], [1, 1]]))
  with pytest.raises(ValueError, match=r"^scores must lie in 0..5 .* found values in \[0, 6\]$"):
    somers_d_bootstrap(np.array([[0, 6], [1, 2]]), jax.random.PRNGKey(0))   # default L = 6
  assert contingency_tables(np.array([[0, 1], [1, 2]])).shape == (2, 2, 6, 6)


def test_weights_of_the_wrong_length_are_named():
  with pytest.raises(ValueError, match=r"^weights must have shape \[N\] = \(5,\), got \(4,\)$"):
    contingency_tables(np.zeros((5, 2), int), weights=np.ones(4))


def test_bootstrap_arguments_at_their_edges():
  scores = np.random.default_rng(3).integers(0, 6, size=(40, 3))
  key = jax.random.PRNGKey(1)
  point, lower, upper = somers_d_bootstrap(scores, key, num_resamples=1, batch_size=1)
  np.testing.assert_array_equal(lower, upper)   # one resample: both quantiles are it
  default = somers_d_bootstrap(scores, key)
  for a, b in zip(default, somers_d_bootstrap(scores, key, num_resamples=200), strict=True):
    np.testing.assert_array_equal(a, b)   # the default is 200 resamples
  for confidence in (0.0, 1.0):
    with pytest.raises(ValueError, match=rf"^confidence must be in \(0, 1\), got {confidence}$"):
      somers_d_bootstrap(scores, key, confidence=confidence)
  for batch_size in (0, 1.5):
    with pytest.raises(ValueError, match=rf"^batch_size must be None or a positive integer, got "
                       rf"{batch_size}$"):
      somers_d_bootstrap(scores, key, batch_size=batch_size)


def test_graph_metrics_counts_pairs_as_integers():
  m = graph_metrics(TRUE_GRAPH + np.eye(6), TRUE_GRAPH)
  assert type(m["num_pairs"]) is int and m["num_pairs"] == 15


def test_one_chunk_and_a_remainder_are_both_counted():
  # 40,000 rows = one full 32,768-row chunk (the scan) + a 7,232-row remainder
  scores = np.random.default_rng(13).integers(-1, 3, size=(40_000, 2))
  tables = np.asarray(contingency_tables(scores, num_levels=3))
  valid = (scores[:, 0] >= 0) & (scores[:, 1] >= 0)
  expected = np.zeros((3, 3))
  np.add.at(expected, (scores[valid, 0], scores[valid, 1]), 1)
  np.testing.assert_array_equal(tables[0, 1], expected)


def test_plain_lists_single_rows_and_no_rows():
  np.testing.assert_allclose(somers_d([[0, 1], [1, 2], [2, 2]]),
                             somers_d(np.array([[0, 1], [1, 2], [2, 2]])), atol=0)
  for bad in (np.array([[0, 9]]), np.array([[9], [0]]), jnp.array([[7]])):
    with pytest.raises(ValueError, match="or be -1 \\(missing\\); found values in"):
      somers_d(bad)
  np.testing.assert_array_equal(somers_d(np.zeros((0, 3), int)), np.eye(3))
  np.testing.assert_array_equal(somers_d(jnp.zeros((0, 3), jnp.int32)), np.eye(3))
