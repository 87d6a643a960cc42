"""Loss values on hand-computed cases."""
import jax.numpy as jnp
import numpy as np
import pytest

from gem_jax.objectives import losses


def test_kl_is_zero_at_the_prior_and_matches_closed_form():
  mu = jnp.array([[0.0, 1.0]])
  logvar = jnp.array([[0.0, jnp.log(4.0)]])
  # 0.5 * (mu^2 + var - 1 - log var) per latent: 0 and 0.5 * (1 + 4 - 1 - log 4).
  expected = np.array([[0.0, 0.5 * (4.0 - np.log(4.0))]])
  np.testing.assert_allclose(losses.kl_per_latent(mu, logvar), expected, rtol=1e-6)


def test_bernoulli_nll_hand_case():
  logits = jnp.zeros((1, 2, 2, 1))   # p = 0.5 everywhere
  x = jnp.array([[[[0.0], [1.0]], [[1.0], [0.0]]]])
  np.testing.assert_allclose(losses.bernoulli_nll(logits, x), [4 * np.log(2.0)], rtol=1e-6)


def test_gaussian_nll_hand_case():
  logits = jnp.zeros((1, 1, 1, 2))   # sigmoid(0) = 0.5
  x = jnp.array([[[[0.5, 0.7]]]])
  # (0.2^2) / (2 * 0.1^2) = 2
  np.testing.assert_allclose(losses.gaussian_nll(logits, x, sigma=0.1), [2.0], rtol=1e-5)


def test_gaussian_nll_sums_each_image_with_sigma_one_tenth_by_default():
  logits = jnp.zeros((2, 1, 3, 1))   # 2 images of 1 x 3 pixels, sigmoid = 0.5
  x = jnp.array([0.5, 0.7, 0.5, 0.6, 0.4, 0.5]).reshape(2, 1, 3, 1)
  # image 0: 0.2^2 / 0.02 = 2; image 1: (0.1^2 + 0.1^2) / 0.02 = 1
  np.testing.assert_allclose(losses.gaussian_nll(logits, x), [2.0, 1.0], rtol=1e-5)


def test_the_gaussian_likelihood_passes_its_sigma_and_defaults_to_one_tenth():
  logits = jnp.zeros((2, 1, 3, 1))
  x = jnp.array([0.5, 0.7, 0.5, 0.6, 0.4, 0.5]).reshape(2, 1, 3, 1)
  np.testing.assert_allclose(losses.reconstruction_nll(logits, x, "gaussian"), [2.0, 1.0],
                             rtol=1e-5)
  np.testing.assert_allclose(losses.reconstruction_nll(logits, x, "gaussian", 0.2), [0.5, 0.25],
                             rtol=1e-5)
  outputs = dict(logits=logits, mu=jnp.zeros((2, 3)), logvar=jnp.zeros((2, 3)))
  for sigma, recon in ((None, 1.5), (0.2, 0.375)):
    kwargs = {} if sigma is None else {"sigma": sigma}
    loss, metrics = losses.beta_vae_loss(outputs, x, beta=1.0, likelihood="gaussian", **kwargs)
    np.testing.assert_allclose([loss, metrics["recon"]], [recon, recon], rtol=1e-5)


def test_beta_vae_loss_reports_exactly_its_four_metrics():
  outputs = dict(logits=jnp.zeros((2, 1, 1, 1)), mu=jnp.array([[1.0, 0.0], [1.0, 2.0]]),
                 logvar=jnp.zeros((2, 2)))
  loss, metrics = losses.beta_vae_loss(outputs, jnp.full((2, 1, 1, 1), 0.5), beta=2.0)
  assert sorted(metrics) == ["kl", "kl_per_latent", "loss", "recon"]
  np.testing.assert_allclose(metrics["kl_per_latent"], [0.5, 1.0], rtol=1e-6)
  np.testing.assert_allclose(metrics["loss"], loss, rtol=0)


def test_beta_vae_loss_combines_terms():
  outputs = dict(logits=jnp.zeros((2, 1, 1, 1)), mu=jnp.ones((2, 3)),
                 logvar=jnp.zeros((2, 3)))
  x = jnp.full((2, 1, 1, 1), 0.5)
  loss, metrics = losses.beta_vae_loss(outputs, x, beta=4.0)
  # recon: BCE(0, 0.5) = log 2 per image; KL: 3 latents * 0.5 * 1 = 1.5 per image.
  np.testing.assert_allclose(metrics["recon"], np.log(2.0), rtol=1e-6)
  np.testing.assert_allclose(metrics["kl"], 1.5, rtol=1e-6)
  np.testing.assert_allclose(loss, np.log(2.0) + 4.0 * 1.5, rtol=1e-6)


def test_unknown_likelihood_is_a_clear_error():
  with pytest.raises(ValueError, match="unknown likelihood 'poisson'"):
    losses.reconstruction_nll(jnp.zeros((1, 1)), jnp.zeros((1, 1)), "poisson")
