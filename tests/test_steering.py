"""The steering term (`gem_jax.objectives.steering`): decoded traversals must read back as the
codes that were decoded; only the decoder learns from it; it reads no label."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import synthetic_gem
from gem_jax.models import VAE, relate
from gem_jax.objectives.base import AXIS
from gem_jax.objectives.steering import Steering, steering_draws
from gem_jax.pipeline_settings import steered_stages, warmup_config
from gem_jax.train.state import (
  create_train_state,
  make_discriminator,
  make_graph_module,
  make_model,
)
from gem_jax.train.step import StepConfig, generator_loss, step_inputs

D, LATENTS = 4, (0, 1, 2)


def _vae():
  vae = VAE(latent_dim=D, image_size=16, width=4, hidden=8)
  params = vae.init(jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 3)), jnp.zeros((1, D)),
                    jnp.eye(D))
  return vae, params


def _inputs(b: int = 8):
  rng = np.random.default_rng(0)
  mu = jnp.asarray(rng.normal(size=(b, D)), jnp.float32)
  a = jnp.eye(D).at[0, 1].set(0.4)
  attribute, value = steering_draws(jax.random.PRNGKey(3), jnp.arange(b), len(LATENTS))
  return mu, a, attribute, value


def test_draws_follow_the_global_index_not_the_device():
  key = jax.random.PRNGKey(1)
  whole = steering_draws(key, jnp.arange(8), 3)
  halves = [steering_draws(key, jnp.arange(4) + 4 * d, 3) for d in range(2)]
  for part, full in zip(zip(*halves), whole):
    np.testing.assert_array_equal(np.concatenate(part), full)
  assert set(np.asarray(whole[0]).tolist()) <= {0, 1, 2}
  assert np.all(np.abs(np.asarray(whole[1])) <= 2.0)


def test_draws_cover_every_attribute_and_the_whole_span():
  attribute, value = steering_draws(jax.random.PRNGKey(0), jnp.arange(600), 3)
  assert attribute.shape == value.shape == (600,)
  assert sorted(set(np.asarray(attribute).tolist())) == [0, 1, 2]
  assert float(value.min()) < -1.9 and float(value.max()) > 1.9  # uniform on -2..2


def test_weight_zero_and_stride_one_are_allowed_and_below_them_a_clear_error():
  Steering(weight=0.0, latents=LATENTS, stride=1)  # off, and every image: both valid
  with pytest.raises(ValueError) as e:
    Steering(weight=-0.5, latents=LATENTS)
  assert str(e.value) == "config.gem.steer.weight must be >= 0, got -0.5"
  with pytest.raises(ValueError) as e:
    Steering(weight=1.0, latents=LATENTS, stride=0)
  assert str(e.value) == "config.gem.steer.stride must be >= 1, got 0"


@pytest.mark.parametrize("stride", [1, 2])  # codes [8, 4] and [4, 4]
def test_the_loss_is_the_judges_reading_of_the_decoded_intervention(stride):
  vae, params = _vae()
  mu, a, attribute, value = _inputs()
  steer = Steering(weight=1.0, latents=LATENTS, stride=stride)
  z = np.asarray(mu)[::stride].copy()
  rows = np.arange(len(z))
  z[rows, np.asarray(LATENTS)[np.asarray(attribute)[::stride]]] = np.asarray(value)[::stride]
  logits = vae.apply(params, relate(jnp.asarray(z), a), method=VAE.decode)
  read, _ = vae.apply(params, jax.nn.sigmoid(logits), method=VAE.encode)
  expected = np.mean(np.sum((np.asarray(read)[:, :3] - z[:, :3]) ** 2, axis=1))
  np.testing.assert_allclose(float(steer.loss(params, vae, a, mu, attribute, value)), expected,
                             rtol=1e-5)


def test_only_the_decoder_learns_from_it():
  vae, params = _vae()
  mu, a, attribute, value = _inputs()
  steer = Steering(weight=1.0, latents=LATENTS, stride=2)
  grads = jax.grad(lambda p, m, g: steer.loss(p, vae, g, m, attribute, value),
                   argnums=(0, 1, 2))(params, mu, a)
  norm = lambda tree: sum(float(jnp.sum(jnp.abs(x))) for x in jax.tree.leaves(tree))
  assert norm(grads[0]["params"]["decoder"]) > 0
  assert norm(grads[0]["params"]["encoder"]) == 0.0  # the judge is stopped
  assert norm(grads[1]) == 0.0 and norm(grads[2]) == 0.0  # codes and A are stopped


def test_a_stride_that_does_not_divide_the_share_is_an_error():
  vae, params = _vae()
  mu, a, attribute, value = _inputs(6)
  with pytest.raises(ValueError, match="steer.stride=4 does not divide the 6 images"):
    Steering(weight=1.0, latents=LATENTS, stride=4).loss(params, vae, a, mu, attribute, value)


def test_steering_is_on_in_stage_4_only_when_weighted_and_guided():
  config = synthetic_gem.get_config("tiny,gem,steer")
  assert steered_stages(config) == ("gem",)
  assert StepConfig.from_config(config, guide_latents=(0, 1)).steering.weight == 10.0
  assert StepConfig.from_config(config).steering is None  # unguided run: nothing to steer
  assert warmup_config(config).gem.steer.weight == 0.0    # the warm-up is not steered
  off = synthetic_gem.get_config("tiny,gem")
  assert steered_stages(off) == () and StepConfig.from_config(off, (0, 1)).steering is None
  unguided = synthetic_gem.get_config("tiny,gem,steer,unsupervised")
  assert steered_stages(unguided) == ()


@pytest.mark.slow
def test_the_steps_steering_term_reads_no_label(tfds_dir):
  """In the train step the term's value depends on the images, not on batch['labels'] (a
  data set's labels): changing the labels leaves it as it was."""
  config = synthetic_gem.get_config("tiny,gem,steer")
  config.data.data_dir = tfds_dir
  cfg = StepConfig.from_config(config, guide_latents=tuple(range(6)))
  cfg = dataclasses.replace(cfg, guidance=None)  # the term alone, no guide batch needed
  state = create_train_state(config)
  images = np.random.default_rng(0).integers(0, 256, (1, 8, 64, 64, 3), dtype=np.uint8)
  vae, graph = make_model(config.model), make_graph_module(config.model)
  disc = make_discriminator(config.model, cfg.objective.discriminator)

  def steer(labels):
    def body(batch):
      inputs = step_inputs(state, batch, config.model.latent_dim)
      _, (metrics, _, _) = generator_loss(state.params, state.disc_params, state, inputs,
                                          vae=vae, graph_module=graph, disc=disc, cfg=cfg)
      return metrics["steer"]
    batch = {"image": jnp.asarray(images), "labels": jnp.asarray(labels)}
    return float(jax.vmap(body, axis_name=AXIS)(batch)[0])

  rng = np.random.default_rng(1)
  first = steer(rng.integers(0, 6, (1, 8, 6)))
  assert first > 0
  assert steer(rng.integers(0, 6, (1, 8, 6))) == first
