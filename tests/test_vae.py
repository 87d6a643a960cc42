"""Shapes and the z_rel = A^T z contract of the β-VAE modules."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gem_jax.models import VAE, relate
from gem_jax.models.layers import depth_to_space


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
