"""Tests of gem_jax.metrics.disentanglement (DCI, MIG, SAP, FactorVAE) and relation recovery
(gem_jax.relations.recovery).

The factors are a full grid over levels (2, 2, 3, 4) repeated 10 times (480 rows): exactly
independent in the sample, so the MI and correlation between different factors is exactly 0
and the ideal scores are known exactly.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
from sklearn import metrics as sk_metrics

from gem_jax.metrics import disentanglement as dis
from gem_jax.relations.recovery import relation_recovery

LEVELS = (2, 2, 3, 4)
PERMUTATION = [2, 0, 3, 1]


def _grid_factors(repeats: int = 10) -> np.ndarray:
  grid = np.array(list(itertools.product(*[range(n) for n in LEVELS])), np.int64)
  return np.tile(grid, (repeats, 1))


FACTORS = _grid_factors()
PERFECT = FACTORS + 0.01 * np.random.default_rng(0).standard_normal(FACTORS.shape)
# Every code is +-1/2 times the sum of all standardised factors (a Hadamard rotation).
ENTANGLED = (FACTORS - FACTORS.mean(0)) / FACTORS.std(0) @ scipy.linalg.hadamard(4) / 2
CONSTANT = np.ones(FACTORS.shape)


@pytest.fixture(scope="module")
def dci_results():
  return {
      name: dis.dci(codes, FACTORS)
      for name, codes in [
          ("perfect", PERFECT),
          ("permuted", PERFECT[:, PERMUTATION]),
          ("entangled", ENTANGLED),
          ("constant", CONSTANT),
      ]
  }


# ----------------------------------------------------------------------------- DCI


def test_importance_aggregation_hand_values():
  eye = np.eye(4)
  assert dis.disentanglement_from_importance(eye) == 1.0
  assert dis.completeness_from_importance(eye) == 1.0
  equal = np.ones((3, 4))
  assert dis.disentanglement_from_importance(equal) == pytest.approx(0.0, abs=1e-15)
  assert dis.completeness_from_importance(equal) == pytest.approx(0.0, abs=1e-15)
  assert dis.disentanglement_from_importance(np.zeros((3, 2))) == 0.0
  # Code 0 informs about factor 0 only, code 1 equally about both: rho = (1/3, 2/3).
  r = np.array([[1.0, 0.0], [1.0, 1.0]])
  assert dis.disentanglement_from_importance(r) == pytest.approx(1 / 3, abs=1e-15)
  assert dis.completeness_from_importance(r) == pytest.approx(1 / 3, abs=1e-15)
  # A code without importance weighs nothing.
  assert dis.disentanglement_from_importance([[2.0, 0.0], [0.0, 3.0], [0.0, 0.0]]) == 1.0


def test_importance_aggregation_matches_disentanglement_lib_within_1e9():
  r = np.random.default_rng(1).random((5, 3)) ** 3
  r[1] = [1.0, 0.0, 0.0]
  # disentanglement_lib's formula, with its 1e-11 added to every entry.
  per_code = 1 - scipy.stats.entropy(r.T + 1e-11, base=3)
  per_factor = 1 - scipy.stats.entropy(r + 1e-11, base=5)
  expected_d = np.sum(per_code * r.sum(1) / r.sum())
  expected_c = np.sum(per_factor * r.sum(0) / r.sum())
  assert dis.disentanglement_from_importance(r) == pytest.approx(expected_d, abs=1e-9)
  assert dis.completeness_from_importance(r) == pytest.approx(expected_c, abs=1e-9)


def test_importance_aggregation_rejects_bad_matrices():
  with pytest.raises(ValueError, match="non-negative"):
    dis.disentanglement_from_importance([[1.0, -0.1], [0.0, 1.0]])
  with pytest.raises(ValueError, match=r"\[d, k\]"):
    dis.completeness_from_importance(np.ones(3))


def test_dci_perfect_codes(dci_results):
  r = dci_results["perfect"]
  assert r["disentanglement"] > 0.999  # observed 1 - 3e-14
  assert r["completeness"] > 0.999
  assert r["informativeness_train"] == 1.0
  assert r["informativeness_test"] == 1.0
  importance = np.array(r["importance_matrix"])
  assert importance.shape == (4, 4)
  np.testing.assert_allclose(importance, np.eye(4), atol=1e-6)
  assert (r["num_train"], r["num_test"]) == (384, 96)


def test_dci_is_permutation_invariant(dci_results):
  perfect, permuted = dci_results["perfect"], dci_results["permuted"]
  for key in ("disentanglement", "completeness", "informativeness_train", "informativeness_test"):
    assert permuted[key] == pytest.approx(perfect[key], abs=1e-12)
  np.testing.assert_allclose(
      np.array(permuted["importance_matrix"]),
      np.array(perfect["importance_matrix"])[PERMUTATION],
      atol=1e-12,
  )


def test_dci_entangled_codes(dci_results):
  r = dci_results["entangled"]
  assert r["disentanglement"] < 0.05  # observed 0.004
  assert r["completeness"] < 0.05  # observed 0.005
  assert r["informativeness_test"] > 0.95  # the information is there, only entangled


def test_dci_constant_codes_score_chance(dci_results):
  r = dci_results["constant"]
  assert r["disentanglement"] == 0.0
  assert r["completeness"] == 0.0
  # The trees cannot split: each classifier predicts its training split's majority class.
  train, test = dis._train_test_split(len(FACTORS), 0.8, 0)
  chance = [
      np.mean(FACTORS[test, j] == np.argmax(np.bincount(FACTORS[train, j])))
      for j in range(len(LEVELS))
  ]
  assert r["informativeness_test"] == pytest.approx(np.mean(chance), abs=1e-12)


def test_dci_subsamples_training_rows():
  r = dis.dci(PERFECT[:, :2], FACTORS[:, :2], max_train=50)
  assert r["num_train"] == 50
  assert r["informativeness_test"] == 1.0


# ----------------------------------------------------------------------------- MIG


def test_mig_perfect_codes_is_one():
  details = dis.mig_details(FACTORS.astype(float), FACTORS)
  # 20 bins over a factor's range keep its <= 4 levels apart: MI = H; MI with the others is 0.
  assert details["mig"] == pytest.approx(1.0, abs=1e-12)
  np.testing.assert_allclose(details["per_factor_gap"], 1.0, atol=1e-12)
  assert dis.mig(PERFECT, FACTORS) > 0.99  # noise: still one bin per level, small extra MI


def test_mig_duplicated_code_has_no_gap():
  codes = np.concatenate([FACTORS, FACTORS[:, :1]], axis=1).astype(float)
  details = dis.mig_details(codes, FACTORS)
  assert details["per_factor_gap"][0] == pytest.approx(0.0, abs=1e-12)
  assert details["mig"] == pytest.approx(3 / 4, abs=1e-12)


def test_mig_matches_sklearn_and_scipy():
  rng = np.random.default_rng(2)
  codes = FACTORS @ rng.standard_normal((4, 3)) + rng.standard_normal((len(FACTORS), 3))
  details = dis.mig_details(codes, FACTORS)
  for i in range(3):
    binned = np.digitize(codes[:, i], np.histogram(codes[:, i], 20)[1][:-1])
    for j in range(4):
      expected = sk_metrics.mutual_info_score(FACTORS[:, j], binned)
      assert details["mutual_info"][i][j] == pytest.approx(expected, abs=1e-12)
  for j in range(4):
    _, counts = np.unique(FACTORS[:, j], return_counts=True)
    assert details["entropy"][j] == pytest.approx(scipy.stats.entropy(counts), abs=1e-12)
  mi = np.sort(np.array(details["mutual_info"]), axis=0)
  gaps = (mi[-1] - mi[-2]) / np.array(details["entropy"])
  assert details["mig"] == pytest.approx(np.mean(gaps), abs=1e-12)


def test_mig_permuted_entangled_and_constant_codes():
  assert dis.mig(PERFECT[:, PERMUTATION], FACTORS) == dis.mig(PERFECT, FACTORS)
  assert dis.mig(ENTANGLED, FACTORS) < 0.05  # observed 0.0
  assert dis.mig(CONSTANT, FACTORS) == 0.0


def test_mig_skips_constant_factors():
  factors = np.concatenate([FACTORS, np.zeros((len(FACTORS), 1), np.int64)], axis=1)
  details = dis.mig_details(PERFECT, factors)
  assert details["skipped_factors"] == [4]
  assert details["per_factor_gap"][4] is None
  assert details["mig"] == dis.mig(PERFECT, FACTORS)
  with pytest.raises(ValueError, match="every factor is constant"):
    dis.mig(PERFECT, np.zeros((len(FACTORS), 2), np.int64))


# ----------------------------------------------------------------------------- SAP


def test_sap_perfect_permuted_entangled_constant():
  perfect = dis.sap(PERFECT, FACTORS)
  score, scored = dis._sap_score_matrix(PERFECT, FACTORS, 0.8, 0, False)
  assert scored == [0, 1, 2, 3]
  # A binary factor is read perfectly from its code; multi-class factors are not (a single
  # linear SVC per code with C = 0.01), which caps SAP well below 1 (observed 0.49).
  assert score[0, 0] == 1.0 and score[1, 1] == 1.0
  assert perfect > 0.4
  assert dis.sap(PERFECT[:, PERMUTATION], FACTORS) == perfect
  assert dis.sap(ENTANGLED, FACTORS) < 0.1  # observed 0.02
  assert dis.sap(CONSTANT, FACTORS) == 0.0


def test_sap_continuous_factors_is_r2_gap():
  # Exactly independent factors: R^2 is 1 with the own code and 0 with the others.
  assert dis.sap(FACTORS.astype(float), FACTORS, continuous_factors=True) == pytest.approx(
      1.0, abs=1e-12
  )
  assert dis.sap(CONSTANT, FACTORS.astype(float), continuous_factors=True) == 0.0


# ----------------------------------------------------------------------------- FactorVAE

_FV_SMALL = {"num_train": 1000, "num_eval": 500, "num_variance_estimate": 480}


def test_factor_vae_perfect_and_permuted_codes():
  r = dis.factor_vae_score(PERFECT, FACTORS, **_FV_SMALL)
  assert r == {"train_accuracy": 1.0, "eval_accuracy": 1.0, "num_active_dims": 4}
  assert dis.factor_vae_score(PERFECT[:, PERMUTATION], FACTORS, **_FV_SMALL) == r


def test_factor_vae_entangled_and_constant_codes():
  r = dis.factor_vae_score(ENTANGLED, FACTORS, **_FV_SMALL)
  assert r["eval_accuracy"] < 0.4  # chance 1/4; observed 0.25
  r = dis.factor_vae_score(CONSTANT, FACTORS, **_FV_SMALL)
  assert r == {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0}


def test_factor_vae_prunes_collapsed_dims_and_is_seeded():
  codes = PERFECT.copy()
  codes[:, 3] *= 0.001  # std ~0.001 < 0.05: collapsed
  r = dis.factor_vae_score(codes, FACTORS, seed=3, **_FV_SMALL)
  assert r["num_active_dims"] == 3
  # Votes fixing factor 3 go to one of the other dims: at most 3 of 4 factors are predicted.
  assert r["eval_accuracy"] < 0.9
  assert dis.factor_vae_score(codes, FACTORS, seed=3, **_FV_SMALL) == r


# ----------------------------------------------------------------------------- bad input


def test_bad_inputs_raise():
  with pytest.raises(ValueError, match="same number of rows"):
    dis.mig(PERFECT[:-1], FACTORS)
  with pytest.raises(ValueError, match="integer"):
    dis.dci(PERFECT, FACTORS.astype(float))
  with pytest.raises(ValueError, match="NaN"):
    bad = PERFECT.copy()
    bad[3, 1] = np.nan
    dis.sap(bad, FACTORS)
  with pytest.raises(ValueError, match="at least 10 rows"):
    dis.factor_vae_score(PERFECT[:5], FACTORS[:5])
  with pytest.raises(ValueError, match="at least 2 code dimensions"):
    dis.mig(PERFECT[:, :1], FACTORS)
  with pytest.raises(ValueError, match="train_fraction"):
    dis.sap(PERFECT, FACTORS, train_fraction=1.0)
  with pytest.raises(ValueError, match="batch_size"):
    dis.factor_vae_score(PERFECT, FACTORS, batch_size=1)


# ----------------------------------------------------------------------------- relations

TRUE_GRAPH = np.array(
    [
        [0.0, 0.8, 0.0, 0.4],
        [0.0, 0.0, -0.6, 0.0],
        [0.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 0.0],
    ]
)


def test_relation_recovery_of_the_true_graph():
  r = relation_recovery(TRUE_GRAPH + np.eye(4), TRUE_GRAPH)
  assert r == {
      "sign_accuracy": 1.0,
      "auroc": 1.0,
      "directed_auroc": 1.0,
      "auroc_all_pairs": 1.0,
      "orientation_accuracy": 1.0,
      "spearman": pytest.approx(1.0, abs=1e-12),
      "weight_mae": 0.0,
      "num_true_edges": 3,
      "num_negative_pairs": 3,
  }


def test_relation_recovery_of_the_sign_flipped_graph():
  r = relation_recovery(-TRUE_GRAPH, TRUE_GRAPH)
  assert r["sign_accuracy"] == 0.0
  assert r["auroc"] == 1.0  # magnitudes are unchanged
  assert r["spearman"] == pytest.approx(-1.0, abs=1e-12)
  learned = TRUE_GRAPH.copy()
  learned[0, 1] = 0.0  # a zero weight has no sign: wrong
  assert relation_recovery(learned, TRUE_GRAPH)["sign_accuracy"] == pytest.approx(2 / 3)


def test_relation_recovery_hand_worked_three_nodes():
  true = np.zeros((3, 3))
  true[0, 1] = 0.8  # the only edge: 0 -> 1
  learned = np.array([[1.0, 0.5, 0.1], [0.2, 1.0, 0.2], [0.5, -0.3, 1.0]])
  r = relation_recovery(learned, true)
  # Pairs: {0,1} max(.5,.2) = .5 (edge); {0,2} max(.1,.5) = .5 and {1,2} max(.2,.3) = .3 (no
  # edge). The edge ties with {0,2} (1/2) and beats {1,2} (1): (1/2 + 1) / 2.
  assert r["auroc"] == 0.75
  # |L01| = .5 against the ordered non-edges .2, .1, .5, .2, .3: (4 + 1/2) / 5.
  assert r["directed_auroc"] == pytest.approx(0.9)
  assert r["sign_accuracy"] == 1.0
  off = ~np.eye(3, dtype=bool)
  expected = scipy.stats.spearmanr(learned[off], true[off]).statistic
  assert r["spearman"] == pytest.approx(expected, abs=1e-12)
  # |L01| = .5 > |L10| = .2: the one edge is oriented right.
  assert r["orientation_accuracy"] == 1.0
  # |L - W| off the diagonal: .3, .1, .2, .2, .5, .3.
  assert r["weight_mae"] == pytest.approx(1.6 / 6)
  assert relation_recovery(learned, true, independent_pairs=[(2, 1)])["auroc"] == 1.0
  restricted = relation_recovery(learned, true, independent_pairs=[(0, 2)])
  assert restricted["auroc"] == 0.5
  assert restricted["auroc_all_pairs"] == r["auroc"] == 0.75  # every pair, whatever is given
  reversed_edge = learned.copy()
  reversed_edge[1, 0] = 0.5  # a tie between the two directions counts 1/2
  assert relation_recovery(reversed_edge, true)["orientation_accuracy"] == 0.5


def test_relation_recovery_empty_classes_and_bad_input():
  r = relation_recovery(np.eye(3), np.zeros((3, 3)))
  assert r["sign_accuracy"] is None and r["auroc"] is None and r["spearman"] is None
  with pytest.raises(ValueError, match="same shape"):
    relation_recovery(np.eye(3), TRUE_GRAPH)
  with pytest.raises(ValueError, match="joined by a true edge"):
    relation_recovery(TRUE_GRAPH, TRUE_GRAPH, independent_pairs=[(1, 0)])
  with pytest.raises(ValueError, match="distinct node indices"):
    relation_recovery(TRUE_GRAPH, TRUE_GRAPH, independent_pairs=[(2, 2)])


# ------------------------------------------------------------- FactorVAE: its votes, its defaults


def test_factor_vae_votes_draw_rows_sharing_the_fixed_factors_value():
  """Blocks of 1, 2 and 3 rows per value: every vote's rows share the anchor's value of the
  fixed factor, and over many votes every row of every block is drawn."""
  factors = np.array([[0, 5], [0, 6], [1, 6], [1, 7], [1, 7], [2, 7]])
  fixed, rows = dis._vote_batches(factors, 2000, 4, np.random.default_rng(0))
  assert fixed.shape == (2000,) and rows.shape == (2000, 4)
  values = factors[rows, fixed[:, None]]
  np.testing.assert_array_equal(values, np.repeat(values[:, :1], 4, axis=1))
  for j in range(2):
    assert set(rows[fixed == j].ravel().tolist()) == set(range(6))


def test_factor_vae_casts_one_vote_per_draw_over_several_chunks():
  rng = np.random.default_rng(0)
  variance = np.var(PERFECT, axis=0, ddof=1)
  votes = dis._votes(PERFECT, FACTORS, 2500, 8, rng, variance, np.ones(4, bool))  # 3 chunks
  assert votes.dtype == np.int64 and votes.sum() == 2500
  # Perfect codes vote for the fixed factor, but for the few draws in which another factor
  # happens to be constant over the 8 rows too (3 of 2,500 here).
  assert np.trace(votes) >= 0.99 * 2500


def test_factor_vae_is_invariant_to_each_codes_scale():
  scaled = PERFECT * np.array([100.0, 0.2, 1.0, 1.0])
  assert dis.factor_vae_score(scaled, FACTORS, **_FV_SMALL) == dis.factor_vae_score(
      PERFECT, FACTORS, **_FV_SMALL)


def test_factor_vae_defaults_and_argument_edges():
  factors = _grid_factors(repeats=250)   # 12,000 rows: more than the 10,000 variance rows
  codes = (factors - factors.mean(0)) / factors.std(0) @ scipy.linalg.hadamard(4) / 2
  codes = codes + 0.3 * np.random.default_rng(1).standard_normal(codes.shape)
  explicit = dict(batch_size=64, num_train=10_000, num_eval=5_000, num_variance_estimate=10_000,
                  prune_threshold=0.05, seed=0)
  assert dis.factor_vae_score(codes, factors) == dis.factor_vae_score(codes, factors, **explicit)
  assert dis.factor_vae_score(PERFECT, FACTORS, batch_size=2, **_FV_SMALL)["num_active_dims"] == 4
  with pytest.raises(ValueError, match=r"^num_train and num_eval must be >= 1 and "
                     r"num_variance_estimate >= 2, got 1000, 0, 480$"):
    dis.factor_vae_score(PERFECT, FACTORS, **{**_FV_SMALL, "num_eval": 0})
