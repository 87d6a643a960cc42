"""The pmapped train step: one vs two devices, the non-finite guard, a loss decrease."""
import jax
from flax.jax_utils import replicate
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import synthetic_gem
from gem_jax.train_state import create_train_state, make_model, make_optimizer
from gem_jax.train_step import make_pmapped_step


def _setup(lr=1e-3):
  config = synthetic_gem.get_config("tiny")
  config.train.learning_rate = lr
  model, tx = make_model(config.model), make_optimizer(config.train)
  return config, model, tx, create_train_state(config, model, tx)


def _run(config, model, tx, state, images, num_devices, steps):
  devices = jax.local_devices()[:num_devices]
  step_fn = make_pmapped_step(model, tx, config.model, devices)
  rstate = replicate(state, devices)
  batch = {"image": images.reshape(num_devices, -1, *images.shape[1:])}
  losses = []
  for _ in range(steps):
    rstate, metrics = step_fn(rstate, batch)
    losses.append(float(metrics["loss"][0]))
  return jax.tree.map(lambda x: np.asarray(x[0]), rstate), losses


def _images(n=8, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)


def test_two_devices_match_one_device():
  assert jax.local_device_count() >= 2, "conftest sets two host devices"
  config, model, tx, state = _setup()
  images = _images()
  one, losses1 = _run(config, model, tx, state, images, 1, 3)
  two, losses2 = _run(config, model, tx, state, images, 2, 3)
  np.testing.assert_allclose(losses1, losses2, rtol=1e-5)
  for a, b in zip(jax.tree.leaves(one.params), jax.tree.leaves(two.params)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
  assert int(one.step) == int(two.step) == 3


def test_loss_decreases_on_a_fixed_batch():
  config, model, tx, state = _setup(lr=3e-3)
  _, losses = _run(config, model, tx, state, _images(), 1, 15)
  assert losses[-1] < losses[0]


def test_nonfinite_step_leaves_weights_untouched():
  config, model, tx, state = _setup()
  # A NaN in the graph makes z_rel and the loss NaN.
  state = state.replace(adjacency=state.adjacency.at[0, 0].set(jnp.nan))
  devices = jax.local_devices()[:1]
  step_fn = make_pmapped_step(model, tx, config.model, devices)
  before = jax.tree.map(np.asarray, state.params)
  rstate, metrics = step_fn(replicate(state, devices),
                            {"image": _images()[None]})
  assert int(metrics["nonfinite"][0]) == 1
  after = jax.tree.map(lambda x: np.asarray(x[0]), rstate.params)
  for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after)):
    np.testing.assert_array_equal(a, b)
