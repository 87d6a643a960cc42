"""The differentiable Somers' D of codes (gem_jax/relations/soft_somers_d.py)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from gem_jax.relations import somers_d
from gem_jax.relations.soft_somers_d import soft_somers_d


def _scores(n=200, seed=0):
  rng = np.random.default_rng(seed)
  a = rng.integers(0, 6, n)
  b = np.clip(a + rng.integers(-2, 3, n), 0, 5)
  c = (rng.random(n) < 0.1).astype(int) * 5   # rare: many ties
  return np.stack([a, b, np.clip(c + (a > 3), 0, 5)], 1)


def test_small_temperature_gives_somers_d_of_integer_scores():
  scores = _scores()
  got = np.asarray(soft_somers_d(jnp.asarray(scores, jnp.float32), temperature=1e-3))
  np.testing.assert_allclose(got, np.asarray(somers_d(scores)), atol=1e-5)
  want = scipy.stats.somersd(scores[:, 0], scores[:, 2]).statistic
  assert got[0, 2] == pytest.approx(want, abs=1e-5)


def test_asymmetric_with_unit_diagonal_and_bounded():
  codes = jnp.asarray(_scores(seed=1), jnp.float32) / 2.0
  d = np.asarray(soft_somers_d(codes, temperature=0.5))
  np.testing.assert_array_equal(np.diag(d), 1.0)
  assert np.all(np.abs(d) <= 1.0)
  assert abs(d[0, 2] - d[2, 0]) > 0.05  # the rare code has the larger impact


def test_continuous_codes_without_ties_give_kendall_tau_at_small_temperature():
  rng = np.random.default_rng(2)
  x = rng.normal(size=300)
  codes = np.stack([x, x + rng.normal(size=300)], 1)
  d = np.asarray(soft_somers_d(jnp.asarray(codes, jnp.float32), temperature=1e-4))
  tau = scipy.stats.kendalltau(codes[:, 0], codes[:, 1]).statistic
  assert d[0, 1] == pytest.approx(tau, abs=1e-3) and d[1, 0] == pytest.approx(tau, abs=1e-3)


def test_constant_code_has_a_zero_row_and_finite_gradients():
  codes = jnp.stack([jnp.zeros(8), jnp.arange(8.0)], 1)
  d = soft_somers_d(codes)
  np.testing.assert_array_equal(np.asarray(d), [[1.0, 0.0], [0.0, 1.0]])
  grad = jax.grad(lambda c: soft_somers_d(c)[1, 0] + soft_somers_d(c)[0, 1])(codes)
  assert np.isfinite(np.asarray(grad)).all()


def test_bad_inputs_are_refused():
  with pytest.raises(ValueError, match="at least 2 rows"):
    soft_somers_d(jnp.zeros((1, 3)))
  with pytest.raises(ValueError, match="temperature must be > 0"):
    soft_somers_d(jnp.zeros((4, 3)), temperature=0.0)


def test_two_rows_are_enough_and_the_default_temperature_is_a_half():
  codes = jnp.array([[0.0, 1.0], [0.3, -2.0], [1.0, 0.5]])
  np.testing.assert_array_equal(soft_somers_d(codes), soft_somers_d(codes, 0.5))
  # one pair: D[0, 1] = s_1 / s_0 = tanh(6) / -tanh(0.6) (clipped to -1), D[1, 0] = s_0 / s_1
  np.testing.assert_allclose(soft_somers_d(codes[:2]),
                             [[1.0, -1.0], [-np.tanh(0.6) / np.tanh(6.0), 1.0]], rtol=1e-6)


def test_clipping_both_ways_small_spreads_and_float32_output():
  # one pair: D[0, 1] = s_1 / s_0 with |s_1| > |s_0|, clipped to +1 (same signs) or -1
  np.testing.assert_allclose(soft_somers_d(jnp.array([[0.0, 1.0], [0.3, 4.0]])),
                             [[1.0, 1.0], [np.tanh(0.6) / np.tanh(6.0), 1.0]], rtol=1e-6)
  # codes 0.01 apart: soft-untied counts of ~1e-3, still measured (not 'constant')
  d = soft_somers_d(jnp.array([[0.0, 0.0], [0.01, 0.02]]))
  np.testing.assert_allclose(d, [[1.0, 1.0], [0.5, 1.0]], rtol=1e-3)
  assert soft_somers_d(jnp.array([[0.0, 1.0], [1.0, 0.0]], jnp.float16)).dtype == jnp.float32
  with pytest.raises(ValueError, match=r"^soft_somers_d needs at least 2 rows, got 1$"):
    soft_somers_d(jnp.zeros((1, 3)))
