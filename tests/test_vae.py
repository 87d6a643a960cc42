"""Shapes and the z_rel = A^T z contract of the β-VAE modules."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import synthetic_gem
from gem_jax.models import VAE, relate
from gem_jax.models.layers import depth_to_space
from gem_jax.train import state as train_state


@pytest.mark.parametrize("form", ["subpixel", "resize_conv", "conv_transpose"])
def test_shapes_for_each_upsampling_form(form):
  model = VAE(latent_dim=4, width=8, hidden=16, upsample=form)
  x = jnp.zeros((2, 64, 64, 3))
  params = model.init(jax.random.PRNGKey(0), x, jnp.zeros((2, 4)), jnp.eye(4))
  out = model.apply(params, x, jnp.zeros((2, 4)), jnp.eye(4))
  assert out["logits"].shape == (2, 64, 64, 3)
  assert out["mu"].shape == out["logvar"].shape == out["z_rel"].shape == (2, 4)


def test_relate_reads_rows_as_out_edges():
  z = jnp.array([[1.0, 0.0, 0.0]])
  a = jnp.array([[1.0, -0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.3, 1.0]])
  # factor 0 sends -0.5 to factor 1: z_rel = A^T z
  np.testing.assert_allclose(relate(z, a), [[1.0, -0.5, 0.0]])


def test_decoder_reads_z_rel_not_z():
  model = VAE(latent_dim=2, width=4, hidden=8)
  x = jnp.zeros((1, 64, 64, 3))
  params = model.init(jax.random.PRNGKey(0), x, jnp.zeros((1, 2)), jnp.eye(2))
  swap = jnp.array([[0.0, 1.0], [1.0, 0.0]])
  noise = jnp.array([[0.3, -0.7]])
  out = model.apply(params, x, noise, swap)
  direct = model.apply(params, out["z_rel"], method=VAE.decode)
  np.testing.assert_allclose(out["logits"], direct, atol=1e-6)
  np.testing.assert_allclose(out["z_rel"], out["z"][:, ::-1], atol=1e-6)


def test_depth_to_space_layout():
  x = jnp.arange(8.0).reshape(1, 1, 2, 4)   # two pixels, 4 channels -> 2x2 blocks
  y = depth_to_space(x)
  assert y.shape == (1, 2, 4, 1)
  np.testing.assert_array_equal(y[0, :, :, 0], [[0, 1, 4, 5], [2, 3, 6, 7]])


def test_bad_image_shape_is_rejected():
  model = VAE(latent_dim=2, width=4, hidden=8)
  with pytest.raises(AssertionError):
    model.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)), jnp.zeros((1, 2)),
               jnp.eye(2))


def test_bad_image_size_config_is_rejected():
  with pytest.raises(ValueError, match="power of two"):
    VAE(image_size=48).init(jax.random.PRNGKey(0), jnp.zeros((1, 48, 48, 3)),
                            jnp.zeros((1, 6)), jnp.eye(6))


def test_the_compiled_init_gives_the_op_by_op_inits_parameters_bitwise():
  """create_train_state inits each network as one compiled program (train/state.py)."""
  mc = synthetic_gem.get_config("tiny,gem").model
  x, z = jnp.zeros((1, mc.image_size, mc.image_size, 3)), jnp.zeros((1, mc.latent_dim))
  key = jax.random.PRNGKey(7)
  for module, args in [(train_state.make_model(mc), (x, z, jnp.eye(mc.latent_dim))),
                       (train_state.make_discriminator(mc, "joint"), (x, z)),
                       (train_state.make_discriminator(mc, "z"), (z,))]:
    eager = jax.tree.leaves(module.init(key, *args))
    compiled = jax.tree.leaves(train_state._jitted_init(module)(key, *args))
    assert len(eager) == len(compiled)
    for a, b in zip(eager, compiled):
      np.testing.assert_array_equal(a, b)
  assert train_state._jitted_init(train_state.make_model(mc)) is train_state._jitted_init(
      train_state.make_model(mc))  # equal modules share one compiled init
