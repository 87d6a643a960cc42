"""Tests for gem_jax.relations.somers_d: contingency-table Somers' D against scipy.stats.somersd."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from gem_jax.relations import (
    contingency_tables,
    somers_d,
    somers_d_bootstrap,
    somers_d_from_tables,
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
