"""The pmapped train step: one vs two devices, the non-finite guard, a loss decrease, and the
GEM switches (graph learner, adversarial strategy) doing what they claim."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from experiments.configs import synthetic_gem
from gem_jax import objectives
from gem_jax.objectives import LossContext, StepInputs, losses
from gem_jax.objectives.base import AXIS
from gem_jax.train.state import (
  create_train_state,
  make_disc_optimizer,
  make_discriminator,
  make_graph_module,
  make_graph_state,
  make_model,
)
from gem_jax.train.step import example_noise, images_to_float, make_pmapped_step, replicate

A0 = np.array([[1.0, -0.5, 0.0, 0.0], [0.3, 1.0, 0.0, 0.0], [0.0, 0.4, 1.0, 0.0],
               [0.0, 0.0, 0.0, 1.0]], np.float32)
MASK = np.array([[0, 1, 1, 0], [1, 0, 1, 0], [1, 1, 0, 0], [0, 0, 0, 0]], np.float32)


def _config(variant="beta_vae", lr=1e-3):
  config = synthetic_gem.get_config(f"tiny,{variant}")
  config.train.learning_rate = lr
  config.model.latent_dim = 4
  return config


def _state(config):
  graph = None if config.model.name == "beta_vae" else make_graph_state(A0, MASK)
  return create_train_state(config, graph)


def _run(config, state, images, num_devices, steps, states=None):
  """`steps` steps on the same batch: (host state after them, each step's metrics). `states`,
  a list, receives the host state after every step."""
  devices = jax.local_devices()[:num_devices]
  step_fn = make_pmapped_step(config, devices)
  rstate = replicate(state, devices)
  batch = {"image": images.reshape(num_devices, -1, *images.shape[1:])}
  history = []
  for _ in range(steps):
    rstate, metrics = step_fn(rstate, batch)
    history.append(jax.tree.map(lambda x: np.asarray(x[0]), metrics))
    if states is not None:
      states.append(jax.tree.map(lambda x: np.array(x[0]), rstate))
  return jax.tree.map(lambda x: np.asarray(x[0]), rstate), history


def _images(n=8, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)


def _assert_trees_close(a, b, **kw):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_allclose(x, y, **kw)


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["beta_vae", "gem"])
def test_two_devices_match_one_device(variant):
  assert jax.local_device_count() >= 2, "conftest sets two host devices"
  config = _config(variant)
  state, images = _state(config), _images()
  one, h1 = _run(config, state, images, 1, 3)
  two, h2 = _run(config, state, images, 2, 3)
  np.testing.assert_allclose([m["loss"] for m in h1], [m["loss"] for m in h2], rtol=1e-5)
  _assert_trees_close(one.params, two.params, rtol=1e-4, atol=1e-6)
  _assert_trees_close(one.disc_params, two.disc_params, rtol=1e-4, atol=1e-6)
  _assert_trees_close(one.graph, two.graph, rtol=1e-4, atol=1e-6)
  assert int(one.step) == int(two.step) == 3


def test_loss_decreases_on_a_fixed_batch():
  """15 β-VAE steps (lr 3e-3) on one batch of 8 random images [8, 64, 64, 3]: the loss and its
  reconstruction term fall by at least 5 nats per image. A recorded run fell from 8527.2 to
  8516.9 (recon 8527.0 to 8516.9): near 12288 log 2 = 8517.3, the floor for uniform noise."""
  config = _config(lr=3e-3)
  _, history = _run(config, _state(config), _images(), 1, 15)
  assert history[-1]["loss"] < history[0]["loss"] - 5.0, [float(m["loss"]) for m in history]
  assert history[-1]["recon"] < history[0]["recon"] - 5.0, [float(m["recon"]) for m in history]


def test_nonfinite_step_leaves_weights_untouched():
  config = _config()
  state = _state(config)
  # A NaN edge in the graph makes z_rel and the loss NaN.
  graph = dict(state.graph, a0=state.graph["a0"].at[0, 1].set(jnp.nan),
               edge_mask=jnp.ones_like(state.graph["edge_mask"]))
  state = state.replace(graph=graph)
  after, history = _run(config, state, _images(), 1, 1)
  assert history[0]["nonfinite"] == 1
  _assert_trees_close(jax.tree.map(np.asarray, state.params), after.params, rtol=0, atol=0)


def _learned_graph(config, state):
  return np.asarray(make_graph_module(config.model).apply(
      state.params["graph"], state.graph["a0"], state.graph["edge_mask"]))


def test_no_learner_keeps_a_at_a0():
  config = _config("gem_scm,no_learner")
  after, history = _run(config, _state(config), _images(), 1, 3)
  np.testing.assert_array_equal(_learned_graph(config, after), A0)
  np.testing.assert_array_equal(after.graph["anchor"], A0)
  assert "anchor" not in history[0]


def test_learner_moves_a_and_keeps_free_latents_edgeless():
  """Five steps one at a time (lr 1e-2, anchor_tau 0.8; A_0 [4, 4], latent 3 free): each step
  moves the anchor to tau * anchor + (1 - tau) * A, A the graph the step read, and reports
  ||offdiag(A - anchor)||^2; A drifts from A_0 by more than 1e-3 and less than 0.1 (a recorded
  run: 0.026), with no edge of the free latent and a unit diagonal."""
  config = _config("gem_scm")  # the GCN learner and its anchor
  config.train.learning_rate = 1e-2
  config.model.anchor_tau = 0.8  # a step the check can see (0.999 in the presets)
  state = _state(config)
  np.testing.assert_allclose(_learned_graph(config, state), A0, atol=1e-6)
  states = [jax.tree.map(np.asarray, state)]
  after, history = _run(config, state, _images(), 1, 5, states=states)
  off = ~np.eye(4, dtype=bool)
  for before, now, metrics in zip(states[:-1], states[1:], history, strict=True):
    a = _learned_graph(config, before)
    np.testing.assert_allclose(now.graph["anchor"], 0.8 * before.graph["anchor"] + 0.2 * a,
                               rtol=1e-5, atol=1e-7)
    want = np.sum(np.square((a - before.graph["anchor"])[off]), dtype=np.float64)
    np.testing.assert_allclose(metrics["anchor"], want, rtol=1e-4, atol=1e-9)
  a = _learned_graph(config, after)
  assert 1e-3 < np.abs(a - A0).max() < 0.1, a - A0
  np.testing.assert_array_equal(a[3, :3], 0.0)        # latent 3 is free: no edges
  np.testing.assert_array_equal(a[:3, 3], 0.0)
  np.testing.assert_array_equal(np.diag(a), 1.0)


def test_no_adversarial_leaves_discriminator_unused():
  config = _config("gem,no_adversarial")
  state = _state(config)
  assert state.disc_params == {}
  _, history = _run(config, state, _images(), 1, 2)
  assert "adv_generator" not in history[0] and "adv_discriminator" not in history[0]


def _disc_batch(config, state, images):
  """The joint discriminator's (real, fake) inputs of the first step on `images` [8, 64, 64, 3]
  (one device), from the objective: real (x, z) [8, 64, 64, 3], [8, d]; fake likewise."""
  mc = config.model
  objective = objectives.from_config(config)
  vae, disc = make_model(mc), make_discriminator(mc, objective.discriminator)
  x = images_to_float(jnp.asarray(images))
  key = jax.random.fold_in(state.rng, 0)  # the step's key at step 0
  index = jnp.arange(x.shape[0])
  inputs = StepInputs(x=x, eps=example_noise(jax.random.fold_in(key, 0), index, mc.latent_dim),
                      prior_eps=example_noise(jax.random.fold_in(key, 1), index, mc.latent_dim),
                      perm_key=jax.random.fold_in(key, 2), labels=None)
  a = make_graph_module(mc).apply(state.params["graph"], state.graph["a0"],
                                  state.graph["edge_mask"])
  ctx = LossContext(params=state.params, disc_params=state.disc_params, graph=state.graph,
                    inputs=inputs, out=vae.apply(state.params["vae"], x, inputs.eps, a), a=a,
                    vae=vae, disc=disc)
  batch = jax.vmap(lambda _: objective.generator_loss(ctx).disc_batch, axis_name=AXIS)(
      jnp.zeros(1))
  return disc, jax.tree.map(lambda v: v[0], batch)


def test_adversarial_updates_the_discriminator():
  """One step of GEM (Single): the discriminator's new weights are one Adam step (its own
  learning rate) of the gradient, computed here, of mean softplus(-D(real)) + mean
  softplus(D(fake)) + gamma / 2 * R1 on the step's batch (R1: the mean over every stride-th
  real pair of |dD/dx|^2 + |dD/dz|^2); its loss on that batch falls, and the reported loss is
  the unpenalised one before the step."""
  config = _config("gem_single")
  gamma, stride = config.model.disc_r1_gamma, config.model.disc_r1_stride
  assert (gamma, stride) == (10.0, 2)  # the tiny preset's R1
  state, images = _state(config), _images()
  after, history = _run(config, state, images, 1, 1)
  disc, batch = _disc_batch(config, state, images)

  def disc_loss(p):
    return losses.discriminator_loss(disc.apply(p, *batch.real), disc.apply(p, *batch.fake))

  def penalised(p):
    x, z = (t[::stride] for t in batch.real)
    gx, gz = jax.grad(lambda x, z: jnp.sum(disc.apply(p, x, z)), argnums=(0, 1))(x, z)
    r1 = jnp.mean(jnp.sum(jnp.square(gx), axis=(1, 2, 3)) + jnp.sum(jnp.square(gz), axis=1))
    return disc_loss(p) + 0.5 * gamma * r1

  disc_loss = jax.jit(disc_loss)  # one compile, not op-by-op dispatch of the conv tower
  loss = disc_loss(state.disc_params)
  grads = jax.jit(jax.grad(penalised))(state.disc_params)
  tx = make_disc_optimizer(config.train)
  updates, _ = tx.update(grads, tx.init(state.disc_params), state.disc_params)
  want = optax.apply_updates(state.disc_params, updates)
  # Adam's first step moves a weight by about lr (1e-4) unless its gradient is near 0, where
  # float noise of either gradient shows: atol lr / 100.
  _assert_trees_close(after.disc_params, want, rtol=1e-5,
                      atol=0.01 * config.train.disc_learning_rate)
  np.testing.assert_allclose(history[0]["adv_discriminator"], loss, rtol=1e-5)
  assert float(disc_loss(after.disc_params)) < float(loss)
  assert np.isfinite(history[0]["adv_generator"])


def test_wrong_a0_size_is_a_clear_error():
  config = _config("gem")
  with pytest.raises(ValueError, match=r"A_0 has shape \(6, 6\) but the model has latent_dim=4"):
    create_train_state(config, make_graph_state(np.eye(6), np.zeros((6, 6))))


def test_r1_penalty_only_changes_the_discriminator_update():
  off = _config("gem")
  off.model.disc_r1_gamma = 0.0
  on = _config("gem")
  on.model.disc_r1_gamma = 10.0
  state, images = _state(off), _images()
  after_off, h_off = _run(off, state, images, 1, 1)
  after_on, h_on = _run(on, state, images, 1, 1)
  assert "disc_r1" not in h_off[0] and h_on[0]["disc_r1"] > 0
  # Same first step for the generator; the reported D loss is the unpenalised one.
  np.testing.assert_allclose(h_on[0]["adv_discriminator"], h_off[0]["adv_discriminator"],
                             rtol=1e-6)
  _assert_trees_close(after_on.params, after_off.params, rtol=1e-6, atol=1e-7)
  diff = max(float(np.max(np.abs(a - b))) for a, b in
             zip(jax.tree.leaves(after_on.disc_params), jax.tree.leaves(after_off.disc_params),
                 strict=True))
  assert diff > 1e-6


def test_r1_stride_that_does_not_divide_a_share_is_a_clear_error():
  config = _config("gem")
  config.model.disc_r1_stride = 3
  with pytest.raises(ValueError, match=r"disc_r1_stride=3 does not divide the 4 images"):
    _run(config, _state(config), _images(), 2, 1)


def _assert_trees_equal(a, b):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_nan_learning_rate_leaves_params_and_optimizer_state_untouched():
  # The loss and gradients of the first step are finite; only the update is NaN.
  config = _config(lr=float("nan"))
  state = _state(config)
  after, history = _run(config, state, _images(), 2, 2)
  assert [int(m["nonfinite"]) for m in history] == [1, 1]
  assert np.isfinite(history[0]["loss"])
  _assert_trees_equal(state.params, after.params)
  _assert_trees_equal(state.opt_state, after.opt_state)
  assert int(after.step) == 2


def test_nan_discriminator_learning_rate_leaves_the_discriminator_untouched():
  config = _config("gem_single")
  config.train.disc_learning_rate = float("nan")
  state = _state(config)
  after, history = _run(config, state, _images(), 1, 1)
  assert int(history[0]["nonfinite"]) == 1
  assert np.isfinite(history[0]["adv_discriminator"])
  _assert_trees_equal(state.disc_params, after.disc_params)
  _assert_trees_equal(state.disc_opt_state, after.disc_opt_state)
  _assert_trees_equal(state.params, after.params)
