"""The joint discriminator D(x, z) and the adversarial losses (Eq. 5-6, docs/design.md)."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gem_jax.models import JointDiscriminator
from gem_jax.objectives.losses import discriminator_loss, generator_loss, r1_penalty


def _model_and_params(image_size=32, latent_dim=3, **kw):
  model = JointDiscriminator(latent_dim=latent_dim, width=4, hidden=8, **kw)
  x = jnp.zeros((2, image_size, image_size, 3))
  z = jnp.zeros((2, latent_dim))
  return model, model.init(jax.random.PRNGKey(0), x, z)


def test_logits_shape_and_jit():
  model, params = _model_and_params()
  x = jax.random.uniform(jax.random.PRNGKey(1), (5, 32, 32, 3))
  z = jax.random.normal(jax.random.PRNGKey(2), (5, 3))
  logits = jax.jit(model.apply)(params, x, z)
  assert logits.shape == (5,)
  assert np.all(np.isfinite(logits))
  np.testing.assert_allclose(logits, model.apply(params, x, z), atol=1e-5)


def test_logits_depend_on_z_and_on_x():
  model, params = _model_and_params()
  x = jax.random.uniform(jax.random.PRNGKey(1), (2, 32, 32, 3))
  z1 = jax.random.normal(jax.random.PRNGKey(2), (2, 3))
  z2 = jax.random.normal(jax.random.PRNGKey(3), (2, 3))
  assert np.all(np.abs(model.apply(params, x, z1) - model.apply(params, x, z2)) > 1e-6)
  assert np.all(np.abs(model.apply(params, x, z1) - model.apply(params, 1.0 - x, z1)) > 1e-6)


def test_downsamples_follow_image_size():
  _, params = _model_and_params(image_size=16)
  assert sum(name.startswith("DownConv") for name in params["params"]) == 2
  _, params = _model_and_params(image_size=64)
  assert sum(name.startswith("DownConv") for name in params["params"]) == 4


def test_dropout_needs_rng_only_when_on():
  model, params = _model_and_params(dropout_rate=0.5)
  x = jnp.ones((2, 32, 32, 3)) * 0.5
  z = jnp.ones((2, 3))
  det = model.apply(params, x, z)
  noisy = model.apply(params, x, z, deterministic=False,
                      rngs={"dropout": jax.random.PRNGKey(4)})
  assert det.shape == noisy.shape == (2,)
  assert not np.allclose(det, noisy)


def test_bad_latent_shape_is_rejected():
  model, params = _model_and_params()
  with pytest.raises(AssertionError):
    model.apply(params, jnp.zeros((2, 32, 32, 3)), jnp.zeros((2, 4)))


def test_adversarial_losses_hand_values():
  zero = jnp.zeros(4)
  assert float(discriminator_loss(zero, zero)) == pytest.approx(2 * math.log(2), rel=1e-6)
  assert float(generator_loss(zero, zero)) == pytest.approx(2 * math.log(2), rel=1e-6)
  real, fake = jnp.array([2.0, 0.0]), jnp.array([-1.0, 3.0])
  sp = lambda v: math.log1p(math.exp(v))
  expected_d = (sp(-2.0) + sp(0.0)) / 2 + (sp(-1.0) + sp(3.0)) / 2
  expected_g = (sp(2.0) + sp(0.0)) / 2 + (sp(1.0) + sp(-3.0)) / 2
  assert float(discriminator_loss(real, fake)) == pytest.approx(expected_d, rel=1e-6)
  assert float(generator_loss(real, fake)) == pytest.approx(expected_g, rel=1e-6)


def test_adversarial_losses_move_in_opposite_directions():
  base_r, base_f = jnp.zeros(3), jnp.zeros(3)
  better_d = (base_r + 1.0, base_f - 1.0)  # D more confident: real up, fake down
  assert discriminator_loss(*better_d) < discriminator_loss(base_r, base_f)
  assert generator_loss(*better_d) > generator_loss(base_r, base_f)
  g_r, g_f = jax.grad(discriminator_loss, argnums=(0, 1))(base_r, base_f)
  assert np.all(g_r < 0) and np.all(g_f > 0)
  g_r, g_f = jax.grad(generator_loss, argnums=(0, 1))(base_r, base_f)
  assert np.all(g_r > 0) and np.all(g_f < 0)


def test_r1_penalty_of_a_linear_discriminator_is_its_squared_weight_norm():
  # D(x, z) = <w, x> + <v, z>: grad_x = w, grad_z = v for every example.
  w = jnp.arange(12.0).reshape(2, 2, 3) / 10.0
  v = jnp.array([1.0, -2.0])
  d_fn = lambda x, z: jnp.sum(x * w, axis=(1, 2, 3)) + z @ v
  x, z = jnp.ones((5, 2, 2, 3)), jnp.zeros((5, 2))
  expected = float(jnp.sum(w ** 2) + jnp.sum(v ** 2))
  assert float(r1_penalty(d_fn, (x, z))) == pytest.approx(expected, rel=1e-6)
  # A quadratic D has a per-example gradient 2x: the penalty averages 4 ||x_i||^2.
  xs = jnp.stack([jnp.zeros((2, 2, 3)), jnp.ones((2, 2, 3))])
  quad = lambda x: jnp.sum(x ** 2, axis=(1, 2, 3))
  assert float(r1_penalty(quad, (xs,))) == pytest.approx((0.0 + 4.0 * 12) / 2, rel=1e-6)


@pytest.mark.parametrize("pool", [2, 4])
def test_a_pooled_input_is_the_full_tower_on_the_average_pooled_image(pool):
  """input_pool = k: D(x) is the tower of an image k times smaller applied to x averaged over
  k x k blocks ('d_half', 'd_quarter'); the tower then has fewer downsampling convolutions."""
  pooled, params = _model_and_params(image_size=32, input_pool=pool)
  small = JointDiscriminator(latent_dim=3, width=4, hidden=8)
  x = jax.random.uniform(jax.random.PRNGKey(1), (2, 32, 32, 3))
  z = jax.random.normal(jax.random.PRNGKey(2), (2, 3))
  blocks = x.reshape(2, 32 // pool, pool, 32 // pool, pool, 3).mean(axis=(2, 4))
  np.testing.assert_allclose(pooled.apply(params, x, z), small.apply(params, blocks, z),
                             rtol=1e-5, atol=1e-6)
  full = _model_and_params(image_size=32)[1]
  assert (len(jax.tree.leaves(full)) - len(jax.tree.leaves(params))
          == 2 * int(math.log2(pool)))  # one conv (kernel, bias) fewer per halving


def test_gem_pools_the_joint_discriminators_input_and_the_tokens_choose_it():
  from experiments.configs import synthetic_gem
  assert synthetic_gem.get_config("demo,gem").model.disc_input_pool == 4  # GEM's default
  assert synthetic_gem.get_config("demo,gem_paper").model.disc_input_pool == 1  # the paper's
  assert synthetic_gem.get_config("demo,gem,paper_arch").model.disc_input_pool == 1
  for token, pool in (("d_full", 1), ("d_half", 2), ("d_quarter", 4)):
    config = synthetic_gem.get_config(f"demo,gem,{token}")
    assert config.model.disc_input_pool == pool and config.model.name == f"gem-{token}"
