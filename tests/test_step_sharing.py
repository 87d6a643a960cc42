"""The restructured train step computes what the step before it did.

The step now runs the discriminator once for both updates (its logits feed the generator's
adversarial loss and, through a second pullback of the same forward pass, the discriminator's
own loss), decodes the reconstructions and the prior draws in one decoder call, and can take the
R1 penalty lazily (every k-th step, weight x k). Each test recomputes the gradients the way the
step before the change did (separate decodes, separate discriminator passes for each update,
R1 on every step) and compares them with `step_gradients`.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import synthetic_gem
from gem_jax import objectives
from gem_jax.models import VAE, relate
from gem_jax.models.disgraph import anchor_loss
from gem_jax.objectives import LossContext, losses
from gem_jax.objectives.base import AXIS
from gem_jax.objectives.dear import supervised_loss
from gem_jax.objectives.factor_vae import permute_dims
from gem_jax.train.state import (
  create_train_state,
  make_discriminator,
  make_graph_module,
  make_graph_state,
  make_model,
)
from gem_jax.train.step import StepConfig, step_gradients, step_inputs

A0 = np.array([[1.0, -0.5, 0.0, 0.0], [0.3, 1.0, 0.0, 0.0], [0.0, 0.4, 1.0, 0.0],
               [0.0, 0.0, 0.0, 1.0]], np.float32)
MASK = np.array([[0, 1, 1, 0], [1, 0, 1, 0], [1, 1, 0, 0], [0, 0, 0, 0]], np.float32)
sg = jax.lax.stop_gradient


def _config(token):
  config = synthetic_gem.get_config(f"tiny,{token}")
  config.model.latent_dim = 4
  config.model.dear_num_factors = 4
  config.model.dear_supergraph = "full"
  return config


def _setup(token):
  config = _config(token)
  graph = make_graph_state(A0, MASK) if token.startswith("gem") else None
  state = create_train_state(config, graph)
  rng = np.random.default_rng(0)
  batch = {"image": rng.integers(0, 256, (8, 64, 64, 3), dtype=np.uint8)}
  if token == "dear":
    batch["labels"] = rng.integers(0, 6, (8, 4), dtype=np.int32)
  return config, state, batch


def _modules(config, cfg):
  mc = config.model
  return (make_model(mc), make_graph_module(mc),
          make_discriminator(mc, cfg.objective.discriminator))


def _old_generator(params, state, inputs, config, cfg):
  """The generator loss as the step before the change computed it: the prior decoded in a
  decoder call of its own, D run on the real and the fake pairs separately."""
  vae, graph_module, disc = _modules(config, cfg)
  objective = cfg.objective
  a = graph_module.apply(params["graph"], state.graph["a0"], state.graph["edge_mask"])
  out = vae.apply(params["vae"], inputs.x, inputs.eps, a)
  ctx = LossContext(params=params, disc_params=state.disc_params, graph=state.graph,
                    inputs=inputs, out=out, a=a, vae=vae, disc=disc)
  if objective.name == "factor_vae":
    vae_loss, _ = losses.beta_vae_loss(out, inputs.x, objective.beta)
    z = sg(out["z"])
    perm = permute_dims(jax.lax.all_gather(z, AXIS, tiled=True), inputs.perm_key)
    tc = jnp.mean(disc.apply(state.disc_params, out["z"]))
    return vae_loss + objective.factor_gamma * tc, ((z,), (perm,))
  z_prior = objective.prior_sample(params, state.graph, a, inputs.prior_eps)
  x_fake = jax.nn.sigmoid(vae.apply(params["vae"], relate(z_prior, a), method=VAE.decode))
  l_adv = losses.generator_loss(disc.apply(state.disc_params, inputs.x, out["z"]),
                                disc.apply(state.disc_params, x_fake, z_prior))
  real, fake = (inputs.x, sg(out["z"])), (sg(x_fake), sg(z_prior))
  if objective.name == "dear":
    recon = losses.reconstruction_nll(out["logits"], inputs.x, "bernoulli").mean()
    sup = supervised_loss(out["mu"], inputs.labels, objective.label_max)
    return recon + objective.lambda_adv * l_adv + objective.lambda_sup * sup, (real, fake)
  l_dis, _ = objective.dis_loss(ctx)
  total = objective.lambda_dis * l_dis + objective.adv_weight(inputs.x) * l_adv
  if cfg.lambda_anchor:
    total = total + cfg.lambda_anchor * anchor_loss(a, state.graph["anchor"])
  return total, (real, fake)


def _old_gradients(state, inputs, config, cfg, r1_weight):
  """(generator grads, discriminator grads) of the step before the change; r1_weight: the R1
  term's weight on this step (0.5 gamma (x the lazy interval), or 0 where it is skipped)."""
  (_, (real, fake)), grads = jax.value_and_grad(_old_generator, has_aux=True)(
      state.params, state, inputs, config, cfg)
  _, _, disc = _modules(config, cfg)

  def disc_loss(p):
    loss = losses.discriminator_loss(disc.apply(p, *real), disc.apply(p, *fake))
    if cfg.disc_r1_gamma:
      subset = tuple(t[::cfg.disc_r1_stride] for t in real)
      loss = loss + r1_weight * losses.r1_penalty(lambda *a: disc.apply(p, *a), subset)
    return loss
  return grads, jax.grad(disc_loss)(state.disc_params)


_COMPILED = {}


def _both(token, r1_interval=1, step=0):
  """(new, old) gradients of one step from the same state and batch, on one device (one
  compile per token and interval: the step number is traced)."""
  config, state, batch = _setup(token)
  config.model.disc_r1_interval = r1_interval
  cfg = StepConfig.from_config(config)
  state = state.replace(step=jnp.asarray(step, jnp.int32))
  if (token, r1_interval) not in _COMPILED:
    vae, graph_module, disc = _modules(config, cfg)

    def body(state, batch):
      inputs = step_inputs(state, batch, config.model.latent_dim)
      new = step_gradients(state, inputs, vae=vae, graph_module=graph_module, disc=disc,
                           cfg=cfg)[:2]
      on = (state.step % r1_interval == 0).astype(jnp.float32)
      weight = 0.5 * cfg.disc_r1_gamma * r1_interval * on
      return new, _old_gradients(state, inputs, config, cfg, weight)

    _COMPILED[token, r1_interval] = jax.pmap(body, axis_name=AXIS,
                                             devices=jax.local_devices()[:1])
  stack = functools.partial(jax.tree.map, lambda x: np.asarray(x)[None])
  new, old = _COMPILED[token, r1_interval](stack(state), stack(batch))
  return jax.tree.map(lambda x: np.asarray(x[0]), (new, old))


def _assert_close(a, b):
  leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
  assert len(leaves_a) == len(leaves_b) > 0
  for x, y in zip(leaves_a, leaves_b, strict=True):
    np.testing.assert_allclose(x, y, rtol=2e-4, atol=2e-6)


@pytest.mark.parametrize("token", ["gem_scm", "gem_paper", "dear", "factor_vae"])
def test_the_shared_forward_pass_gives_the_old_steps_gradients(token):
  (grads, disc_grads), (old_grads, old_disc_grads) = _both(token)
  _assert_close(grads, old_grads)
  _assert_close(disc_grads, old_disc_grads)
  assert max(np.abs(x).max() for x in jax.tree.leaves(disc_grads)) > 0


@pytest.mark.parametrize("step", [8, 9])
def test_lazy_r1_is_the_full_penalty_times_the_interval_on_every_interval_th_step(step):
  (grads, disc_grads), (old_grads, old_disc_grads) = _both("gem_scm", r1_interval=4, step=step)
  _assert_close(grads, old_grads)
  _assert_close(disc_grads, old_disc_grads)  # step 8: R1 x 4; step 9: no R1


def test_lazy_r1_interval_must_be_positive():
  config = _config("gem_scm")
  config.model.disc_r1_interval = 0
  with pytest.raises(ValueError, match="disc_r1_interval must be >= 1"):
    StepConfig.from_config(config)


def test_the_prior_decoded_with_the_reconstructions_equals_its_own_decode():
  config, state, _ = _setup("gem_scm")
  vae = make_model(config.model)
  rng = np.random.default_rng(1)
  x = rng.uniform(size=(3, 64, 64, 3)).astype(np.float32)
  eps, prior = (rng.normal(size=(n, 4)).astype(np.float32) for n in (3, 5))

  @jax.jit
  def decodes(params):
    together = vae.apply(params, x, eps, A0, prior)
    alone = vae.apply(params, relate(prior, A0), method=VAE.decode)
    return together["prior_logits"], alone, together["logits"], vae.apply(params, x, eps,
                                                                          A0)["logits"]
  together, alone, recon_together, recon_alone = decodes(state.params["vae"])
  assert together.shape == (5, 64, 64, 3) and recon_together.shape == (3, 64, 64, 3)
  np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(recon_together, recon_alone, rtol=1e-5, atol=1e-5)
  assert objectives.from_config(config).discriminator == "joint"
