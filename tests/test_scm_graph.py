"""gem_sparse's DisGraph learner (`models.scm_graph.ScmGraph`): it starts at A_0 on A_0's
support, learns its mechanisms from the codes alone, prunes what the codes do not support, and
nothing but its own term moves it."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from experiments.configs import synthetic_gem
from gem_jax.models import DisGraph
from gem_jax.models.scm_graph import (
  ScmGraph,
  acyclicity,
  scm_effects,
  scm_fit_loss,
  signed_strength,
)
from gem_jax.train.state import create_train_state, make_graph_state
from gem_jax.train.step import StepConfig, make_pmapped_step, replicate, unreplicate

A0 = np.array([[1.0, 0.3, 0.2, 0.1],
               [0.3, 1.0, 0.0, 0.1],
               [0.2, 0.0, 1.0, 0.1],
               [0.1, 0.1, 0.1, 1.0]], np.float32)


def test_the_learner_starts_at_a0_on_its_support():
  mask = np.ones(4, bool)
  mask[3] = False  # a free latent: no edges
  a = ScmGraph().apply(ScmGraph().init(jax.random.PRNGKey(0), A0, mask), A0, mask)
  expected = np.where(np.outer(mask, mask), A0, 0.0) + np.diag([0.0, 0.0, 0.0, 1.0])
  np.testing.assert_allclose(np.asarray(a), expected, atol=1e-7)


def test_strength_is_signed_by_the_slope_and_has_a_finite_gradient_at_zero():
  w, q = jnp.array([[0.0, -0.6], [0.0, 0.0]]), jnp.array([[0.0, 0.8], [0.0, 0.0]])
  np.testing.assert_allclose(np.asarray(signed_strength(w, q)), [[0.0, -1.0], [0.0, 0.0]],
                             atol=1e-7)
  grad = jax.grad(lambda v: signed_strength(v, q).sum())(w)
  assert np.all(np.isfinite(np.asarray(grad)))


def test_acyclicity_is_zero_exactly_without_a_cycle():
  dag = jnp.array([[0.0, 0.5], [0.0, 0.0]])
  assert float(acyclicity(dag)) == 0.0
  # S * S of the 2-cycle has eigenvalues +-0.25: h = e^0.25 + e^-0.25 - 2
  np.testing.assert_allclose(float(acyclicity(dag + dag.T)), 2 * np.cosh(0.25) - 2, rtol=1e-5)


def _codes(n: int = 4000, seed: int = 0) -> np.ndarray:
  """z1 ~ N(0, 1); z2 = 0.8 z1 + noise; z3 = 0.6 z1^2 / 2 + noise (an effect that changes
  sign: curvature, no slope); z4 independent."""
  rng = np.random.default_rng(seed)
  z1 = rng.normal(size=n)
  z2 = 0.8 * z1 + 0.3 * rng.normal(size=n)
  z3 = 0.6 * (z1 ** 2 / 2) + 0.3 * rng.normal(size=n)
  return np.stack([z1, z2, z3, rng.normal(size=n)], axis=1).astype(np.float32)


def _fit(codes: np.ndarray, a0: np.ndarray, l1: float, steps: int = 600) -> np.ndarray:
  """The learner's parameters after `steps` Adam steps on its own loss (fit + l1 * group)."""
  module = DisGraph(latent_dim=4, kind="scm")
  params = module.init(jax.random.PRNGKey(0), a0)
  tx = optax.adam(1e-2)
  state = tx.init(params)

  @jax.jit
  def step(params, state, batch):
    def loss(p):
      fit, group = scm_fit_loss(p, a0, None, batch)
      return fit + l1 * group
    updates, state = tx.update(jax.grad(loss)(params), state)
    return optax.apply_updates(params, updates), state

  rng = np.random.default_rng(1)
  for _ in range(steps):
    params, state = step(params, state, jnp.asarray(codes[rng.integers(0, len(codes), 64)]))
  return np.asarray(module.apply(params, a0)), params


def test_the_learner_fits_slopes_and_curvature_and_prunes_what_the_codes_do_not_hold():
  full = np.full((4, 4), 0.3, np.float32)
  np.fill_diagonal(full, 1.0)
  a, params = _fit(_codes(), full, l1=0.2)
  assert 0.6 < a[0, 1] < 0.9, a  # the slope 0.8 (shrunk a little by the group lasso)
  assert abs(a[0, 2]) > 0.3, a  # curvature only: the slope reads ~0, the strength does not
  assert abs(float(scm_effects(params, full, None)[0, 2])) < 0.15  # ... its average effect
  for j in range(3):
    assert abs(a[3, j]) < 0.1 and abs(a[j, 3]) < 0.1, a  # the independent latent: no edge


def test_the_fit_never_moves_the_codes():
  params = DisGraph(latent_dim=4, kind="scm").init(jax.random.PRNGKey(0), A0)
  grad = jax.grad(lambda c: sum(scm_fit_loss(params, A0, None, c)))(jnp.asarray(_codes(64)))
  np.testing.assert_array_equal(np.asarray(grad), 0.0)


def test_the_learner_never_adds_an_edge_the_prior_lacks():
  a, _ = _fit(_codes(), A0, l1=0.0, steps=200)
  assert a[1, 2] == 0.0 and a[2, 1] == 0.0


@pytest.mark.slow
def test_the_train_step_moves_the_graph_by_its_fit_and_nothing_else(tfds_dir):
  """gem_sparse's graph parameters change over a few real train steps; with the fit's weight
  at 0 their gradient is exactly 0 (the decoder, the KL and the prior read A stopped)."""
  config = synthetic_gem.get_config("tiny,gem_sparse")
  config.data.data_dir = tfds_dir
  d = config.model.latent_dim
  a0 = np.full((d, d), 0.2, np.float32)
  np.fill_diagonal(a0, 1.0)
  graph = make_graph_state(a0, np.ones((d, d), np.float32) - np.eye(d, dtype=np.float32))
  images = np.random.default_rng(0).integers(0, 256, (2, 4, 64, 64, 3), dtype=np.uint8)
  devices = jax.local_devices()[:2]
  start = create_train_state(config, graph=graph)
  for weight, moves in ((1.0, True), (0.0, False)):
    config.model.graph_fit_weight = weight
    step = make_pmapped_step(config, devices, StepConfig.from_config(config))
    state = replicate(start, devices)
    for _ in range(3):
      state, _ = step(state, {"image": images})
    before = start.params["graph"]["params"]["learner"]["w"]
    after = unreplicate(state).params["graph"]["params"]["learner"]["w"]
    assert (not np.allclose(before, after)) == moves, (weight, np.abs(after - before).max())
