"""The pmapped train step: one vs two devices, the non-finite guard, a loss decrease, and the
GEM switches (graph learner, adversarial strategy) doing what they claim."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import synthetic_gem
from gem_jax.train.state import create_train_state, make_graph_module, make_graph_state
from gem_jax.train.step import make_pmapped_step, replicate

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


def _run(config, state, images, num_devices, steps):
  devices = jax.local_devices()[:num_devices]
  step_fn = make_pmapped_step(config, devices)
  rstate = replicate(state, devices)
  batch = {"image": images.reshape(num_devices, -1, *images.shape[1:])}
  history = []
  for _ in range(steps):
    rstate, metrics = step_fn(rstate, batch)
    history.append(jax.tree.map(lambda x: np.asarray(x[0]), metrics))
  return jax.tree.map(lambda x: np.asarray(x[0]), rstate), history


def _images(n=8, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)


def _assert_trees_close(a, b, **kw):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
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
  config = _config(lr=3e-3)
  _, history = _run(config, _state(config), _images(), 1, 15)
  assert history[-1]["loss"] < history[0]["loss"]


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
  config = _config("gem,no_learner")
  after, history = _run(config, _state(config), _images(), 1, 3)
  np.testing.assert_array_equal(_learned_graph(config, after), A0)
  np.testing.assert_array_equal(after.graph["anchor"], A0)
  assert "anchor" not in history[0]


def test_learner_moves_a_and_keeps_free_latents_edgeless():
  config = _config("gem")
  config.train.learning_rate = 1e-2
  state = _state(config)
  np.testing.assert_allclose(_learned_graph(config, state), A0, atol=1e-6)
  after, history = _run(config, state, _images(), 1, 5)
  a = _learned_graph(config, after)
  assert np.abs(a - A0).max() > 1e-4                 # the learner changed the graph
  np.testing.assert_array_equal(a[3, :3], 0.0)        # latent 3 is free: no edges
  np.testing.assert_array_equal(a[:3, 3], 0.0)
  np.testing.assert_array_equal(np.diag(a), 1.0)
  assert not np.array_equal(after.graph["anchor"], A0)  # the anchor follows A
  assert "anchor" in history[0]


def test_no_adversarial_leaves_discriminator_unused():
  config = _config("gem,no_adversarial")
  state = _state(config)
  assert state.disc_params == {}
  _, history = _run(config, state, _images(), 1, 2)
  assert "adv_generator" not in history[0] and "adv_discriminator" not in history[0]


def test_adversarial_updates_the_discriminator():
  config = _config("gem_single")
  state = _state(config)
  after, history = _run(config, state, _images(), 1, 2)
  assert np.isfinite(history[0]["adv_discriminator"]) and np.isfinite(history[0]["adv_generator"])
  before = jax.tree.leaves(jax.tree.map(np.asarray, state.disc_params))
  assert any(not np.array_equal(x, y) for x, y in zip(before, jax.tree.leaves(after.disc_params)))


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
             zip(jax.tree.leaves(after_on.disc_params), jax.tree.leaves(after_off.disc_params)))
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
