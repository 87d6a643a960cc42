"""gem_sparse's DisGraph learner (`models.scm_graph.ScmGraph`): it starts at A_0 on A_0's
support, learns its mechanisms from the codes alone, prunes what the codes do not support, and
nothing but its own term moves it."""
import dataclasses

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
from gem_jax.objectives import losses
from gem_jax.objectives.base import AXIS, LossContext, LossOutput, StepInputs
from gem_jax.objectives.gem_scm import GemScmObjective, scm_kl
from gem_jax.objectives.gem_sparse import GemSparseObjective
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


# gem_sparse's objective, term by term, on a hand-made batch (no step to compile).
def _sparse_objective(**model):
  config = synthetic_gem.get_config("tiny,gem_sparse")
  config.model.update(model)
  return GemSparseObjective.from_config(config)


def _context(a0=A0, mask=None):
  rng = np.random.default_rng(3)
  if mask is None:
    mask = np.array([True, True, True, False])  # latent 4 free: no edges
  graph_params = DisGraph(latent_dim=4, kind="scm").init(jax.random.PRNGKey(2), a0)
  # Moved off the initial point (curvature Q starts at zero), so that every term is non-zero.
  graph_params = jax.tree.map(
      lambda v: v + 0.2 * jnp.asarray(rng.normal(size=v.shape), v.dtype), graph_params)
  params = {"graph": graph_params}
  graph = {"a0": jnp.asarray(a0), "edge_mask": jnp.asarray(mask)}
  x = jnp.asarray(rng.uniform(size=(6, 4, 4, 3)), jnp.float32)
  out = {"mu": jnp.asarray(_codes(6)), "logvar": jnp.asarray(rng.normal(size=(6, 4)) * 0.1,
                                                             jnp.float32),
         "logits": jnp.asarray(rng.normal(size=(6, 4, 4, 3)), jnp.float32)}
  inputs = StepInputs(x, None, None, None, None, jnp.int32(0))
  a = DisGraph(latent_dim=4, kind="scm").apply(params["graph"], graph["a0"], graph["edge_mask"])
  return LossContext(params, {}, graph, inputs, out, a, None, None)


def test_gem_sparse_reads_its_four_settings_and_keeps_gem_scms():
  objective = _sparse_objective(graph_fit_weight=2.5, graph_l1=0.05, graph_quadratic=False,
                                graph_acyclic=0.7, beta=3.0)
  assert (objective.fit_weight, objective.l1, objective.quadratic,
          objective.acyclic_weight) == (2.5, 0.05, False, 0.7)
  config = synthetic_gem.get_config("tiny,gem_sparse")
  config.model.beta = 3.0
  base = GemScmObjective.from_config(config)
  for field in dataclasses.fields(base):
    assert getattr(objective, field.name) == getattr(base, field.name), field.name
  old = synthetic_gem.get_config("tiny,gem_sparse")  # a run's config from before the four
  for key in ("graph_fit_weight", "graph_l1", "graph_quadratic", "graph_acyclic"):
    del old.model[key]
  defaults = type(objective).from_config(old)
  assert (defaults.fit_weight, defaults.l1, defaults.quadratic,
          defaults.acyclic_weight) == (1.0, 0.2, True, 0.0)
  old_pc = synthetic_gem.get_config("tiny,gem")  # saved before graph_l1: 0.2 on any prior
  del old_pc.model["graph_l1"]
  assert type(objective).from_config(old_pc).l1 == 0.2


@pytest.mark.parametrize("tokens,prior,want", [
    ("gem", None, 0.0), ("gem_sparse", None, 0.2), ("gem_sparse,pc_prior", None, 0.0),
    ("gem,somers_prior", None, 0.2), ("gem,ges_prior", None, 0.2),
    ("gem", "direct_lingam", 0.2), ("gem,lasso", None, 0.2), ("gem_sparse,no_sparsity", None,
                                                              0.0)])
def test_gem_sparse_lasso_is_the_priors_weight_unless_set(tokens, prior, want):
  """Unset, graph_l1 is the weight chosen on simulated SCMs for the prior (0 on PC's skeleton,
  0.2 on Somers' D and GES, 0.2 for a prior not simulated); 'lasso' and 'no_sparsity' set it."""
  config = synthetic_gem.get_config("tiny," + tokens)
  if prior is not None:
    config.gem.prior = prior
  assert GemSparseObjective.from_config(config).l1 == want
  config.model.graph_l1 = 0.05
  assert GemSparseObjective.from_config(config).l1 == 0.05


def test_gem_sparse_samples_its_prior_from_the_learned_effects_with_stopped_gradients():
  ctx = _context()
  w = GemSparseObjective.prior_weights(ctx.params, ctx.graph, ctx.a)
  expected = scm_effects(ctx.params["graph"], ctx.graph["a0"], ctx.graph["edge_mask"])
  np.testing.assert_allclose(np.asarray(w), np.asarray(expected), atol=1e-7)
  assert float(jnp.abs(w).sum()) > 0  # the effects are not A's off-diagonal zeros
  grad = jax.grad(lambda p: GemSparseObjective.prior_weights(p, ctx.graph, ctx.a).sum())(
      ctx.params)
  assert all(float(jnp.abs(g).sum()) == 0.0 for g in jax.tree.leaves(grad))


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_gem_sparse_dis_loss_is_recon_plus_beta_times_the_scm_kl_under_the_learned_effects(
    likelihood):
  objective = _sparse_objective(beta=3.0, likelihood=likelihood, sigma=0.3)
  ctx = _context()
  loss, metrics = objective.dis_loss(ctx)
  recon = losses.reconstruction_nll(ctx.out["logits"], ctx.inputs.x, likelihood, 0.3).mean()
  w = scm_effects(ctx.params["graph"], ctx.graph["a0"], ctx.graph["edge_mask"])
  kl = scm_kl(ctx.out["mu"], ctx.out["logvar"], w).mean()
  np.testing.assert_allclose(float(metrics["recon"]), float(recon), rtol=1e-6)
  np.testing.assert_allclose(float(metrics["kl"]), float(kl), rtol=1e-5)
  np.testing.assert_allclose(float(loss), float(recon + 3.0 * kl), rtol=1e-6)
  assert float(metrics["loss"]) == float(loss)


@pytest.mark.parametrize("acyclic", [0.0, 0.5])
def test_gem_sparse_adds_the_weighted_fit_to_gem_scms_total(monkeypatch, acyclic):
  """total = gem_scm's total + fit_weight * (fit + l1 * group [+ acyclic * h(A)]), the fit on
  the batch gathered over the devices (here one, under vmap's axis)."""
  monkeypatch.setattr(GemScmObjective, "generator_loss",  # gem_scm's terms: 7 + sum(A)
                      lambda self, ctx: LossOutput(7.0 + ctx.a.sum(), {"base": jnp.float32(1.0)},
                                                   {"d": jnp.float32(5.0)}))
  objective = _sparse_objective(graph_fit_weight=2.0, graph_l1=0.3, graph_quadratic=False,
                                graph_acyclic=acyclic)
  ctx = _context()
  out = jax.vmap(objective.generator_loss, axis_name=AXIS)(
      jax.tree.map(lambda v: v[None], ctx))
  fit, group = scm_fit_loss(ctx.params["graph"], ctx.graph["a0"], ctx.graph["edge_mask"],
                            ctx.out["mu"], False)
  h = acyclicity(ctx.a)
  assert float(h) > 0  # A_0 holds two-way edges
  expected = 7.0 + ctx.a.sum() + 2.0 * (fit + 0.3 * group + acyclic * h)
  np.testing.assert_allclose(float(out.total[0]), float(expected), rtol=1e-5)
  np.testing.assert_allclose(float(out.metrics["graph_fit"][0]), float(fit), rtol=1e-6)
  np.testing.assert_allclose(float(out.metrics["graph_group_norm"][0]), float(group), rtol=1e-6)
  assert float(out.metrics["base"][0]) == 1.0 and float(out.disc_batch["d"][0]) == 5.0
  assert ("graph_acyclicity" in out.metrics) == bool(acyclic)
  if acyclic:
    np.testing.assert_allclose(float(out.metrics["graph_acyclicity"][0]), float(h), rtol=1e-6)
  quadratic = scm_fit_loss(ctx.params["graph"], ctx.graph["a0"], ctx.graph["edge_mask"],
                           ctx.out["mu"], True)
  assert float(quadratic[0]) != float(fit)  # the switch is read: curvature changes the fit


def test_gem_sparse_fits_the_batch_of_every_device(monkeypatch):
  """Two devices' codes gathered: the fit equals the fit on the whole batch."""
  monkeypatch.setattr(GemScmObjective, "generator_loss",
                      lambda self, c: LossOutput(jnp.float32(0.0), {}, None))
  objective = _sparse_objective()
  ctx = _context()
  halves = jax.tree.map(lambda v: jnp.stack([v, v]), ctx)._replace(
      out={k: jnp.stack([v[:3], v[3:]]) for k, v in ctx.out.items()})
  out = jax.vmap(objective.generator_loss, axis_name=AXIS)(halves)
  fit, _ = scm_fit_loss(ctx.params["graph"], ctx.graph["a0"], ctx.graph["edge_mask"],
                        ctx.out["mu"], True)
  np.testing.assert_allclose(np.asarray(out.metrics["graph_fit"]), float(fit), rtol=1e-5)
