"""One training step of GEM, of its β-VAE branch alone, and of the Table 1 baselines, pmapped
over devices.

`train_step(state, batch) -> (state, metrics)` is pure. Per step, on each device:
  1. A = DisGraph(A_0) (the graph learner's refinement, or A_0 itself; I for the baselines);
  2. z = mu + sigma * eps with eps drawn per global example index from the state's RNG, so
     the same global batch gives the same update on one device or several;
  3. the generator objective of config.model.objective (one function each, below):
     beta_vae    lambda_dis * L_dis [+ lambda_adv * L_adv,G], L_dis = recon(x, D_rec(A^T z))
                 + beta * KL (GEM, its ablations, VAE and β-VAE);
     beta_tcvae  recon + MI + beta * TC + dimension-wise KL (`gem_jax.tc_vae`, MWS over the
                 global batch gathered from all devices);
     factor_vae  recon + beta * KL + factor_gamma * TC, TC = mean D(z) (`gem_jax.factor_vae`);
     dear        recon + lambda_adv * L_adv,G + lambda_sup * supervised loss, with the joint
                 discriminator's negatives drawn from the SCM prior (`gem_jax.scm_prior`);
     plus lambda_anchor * ||A - A_anchor||^2 when the graph learner is on;
  4. the discriminator, if the objective has one, learns its positives against its negatives
     with its own optimizer: the joint D(x, z) (x, z ~ q(z|x)) against (D_rec(A^T z'), z'),
     z' from the prior; FactorVAE's D(z) z ~ q(z) against z permuted dimension-wise over the
     global batch;
  5. gradients are averaged over devices (lax.pmean) and the anchor moves towards A.
A step whose loss or gradients are not finite leaves the state as it was (step + 1 aside)
and reports metrics['nonfinite'] = 1, so NaN never reaches the weights.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Callable, NamedTuple, Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from gem_jax import adversarial, factor_vae, losses, scm_prior, tc_vae
from gem_jax.disgraph import anchor_loss, update_anchor
from gem_jax.train_state import (TrainState, make_disc_optimizer, make_discriminator,
                                 make_graph_module, make_model, make_optimizer, objective_of)
from gem_jax.vae import VAE, relate

AXIS = "batch"


@dataclasses.dataclass(frozen=True)
class StepConfig:
  """The objective, loss weights and switches the step reads (config.model, config.data)."""

  beta: float
  likelihood: str
  sigma: float
  adversarial: bool
  lambda_dis: float
  lambda_adv: float
  lambda_anchor: float
  anchor_tau: float
  objective: str = "beta_vae"
  dataset_size: int = 0          # β-TCVAE: N of the MWS estimator
  mi_weight: float = 1.0         # β-TCVAE: alpha
  dimwise_kl_weight: float = 1.0  # β-TCVAE: gamma
  factor_gamma: float = 6.4      # FactorVAE: weight of the TC estimate
  lambda_sup: float = 1.0        # DEAR: weight of the supervised loss
  dear_num_factors: int = 6      # DEAR: supervised latents k
  label_max: float = 5.0         # DEAR: labels run 0..label_max
  disc_r1_gamma: float = 0.0     # R1 penalty on the discriminator's real inputs (0: off)
  disc_r1_stride: int = 1        # R1 on every stride-th real pair of each device's share

  @classmethod
  def from_config(cls, config) -> "StepConfig":
    mc = config.model
    objective = objective_of(mc)
    if objective in ("beta_tcvae", "factor_vae") and mc.adversarial:
      raise ValueError(f"objective {objective!r} has no joint adversarial term; set "
                       "config.model.adversarial=False (it pairs with 'beta_vae' for GEM; "
                       "'dear' always uses it)")
    cfg = cls(beta=mc.beta, likelihood=mc.likelihood, sigma=mc.sigma,
              adversarial=mc.adversarial, lambda_dis=mc.lambda_dis, lambda_adv=mc.lambda_adv,
              lambda_anchor=mc.lambda_anchor if mc.graph_learner else 0.0,
              anchor_tau=mc.anchor_tau, objective=objective,
              disc_r1_gamma=float(mc.get("disc_r1_gamma", 0.0)),
              disc_r1_stride=int(mc.get("disc_r1_stride", 1)))
    if cfg.disc_r1_stride < 1:
      raise ValueError(f"config.model.disc_r1_stride must be >= 1, got {cfg.disc_r1_stride}")
    if objective == "beta_tcvae":
      if mc.dataset_size <= 0:
        raise ValueError("objective 'beta_tcvae' needs config.model.dataset_size, the number of "
                         "training images (gem_jax.train.train_and_evaluate fills it in from the "
                         "data set when it is 0)")
      cfg = dataclasses.replace(cfg, dataset_size=int(mc.dataset_size),
                                mi_weight=mc.mi_weight, dimwise_kl_weight=mc.dimwise_kl_weight)
    elif objective == "factor_vae":
      cfg = dataclasses.replace(cfg, factor_gamma=mc.factor_gamma)
    elif objective == "dear":
      cfg = dataclasses.replace(cfg, lambda_sup=mc.lambda_sup,
                                dear_num_factors=mc.dear_num_factors,
                                label_max=float(config.data.label_max))
    return cfg


class StepInputs(NamedTuple):
  """One device's share of a step: x [b, H, W, 3] in [0, 1]; eps, prior_eps [b, d] ~ N(0, I)
  (reparameterisation and prior noise, per global example index); perm_key: the step's key
  for FactorVAE's permutation (the same on every device); labels [b, k] or None."""

  x: jax.Array
  eps: jax.Array
  prior_eps: jax.Array
  perm_key: jax.Array
  labels: jax.Array | None


class DiscBatch(NamedTuple):
  """The discriminator's inputs (gradients stopped): disc.apply(p, *real) are positives,
  disc.apply(p, *fake) negatives."""

  real: tuple
  fake: tuple


# Metric name of each objective's discriminator loss.
_DISC_METRIC = {"beta_vae": "adv_discriminator", "dear": "adv_discriminator",
                "factor_vae": "tc_discriminator"}


def replicate(tree, devices: Sequence[jax.Device]):
  """Stacks one copy of `tree` per device, laid out exactly as the pmapped step returns its
  outputs (mesh axis AXIS), so the step compiles once rather than again on its second call."""
  mesh = jax.sharding.Mesh(np.asarray(devices), (AXIS,))
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(AXIS))
  stack = lambda x: np.stack([np.asarray(x)] * len(devices))
  return jax.device_put(jax.tree.map(stack, tree), sharding)


def unreplicate(tree):
  """The first device's copy of a replicated tree."""
  return jax.tree.map(lambda x: x[0], tree)


def images_to_float(images: jax.Array) -> jax.Array:
  """uint8 [..., H, W, 3] in 0..255 -> float32 in [0, 1]."""
  return images.astype(jnp.float32) / 255.0


def example_noise(key: jax.Array, global_index: jax.Array, latent_dim: int) -> jax.Array:
  """N(0, I) noise [B, d], one independent draw per global example index [B]."""
  draw = lambda i: jax.random.normal(jax.random.fold_in(key, i), (latent_dim,))
  return jax.vmap(draw)(global_index)


def _global_index(per_device_batch: int) -> jax.Array:
  return jax.lax.axis_index(AXIS) * per_device_batch + jnp.arange(per_device_batch)


def _r1_subset(real: tuple, stride: int) -> tuple:
  """Every stride-th pair of this device's share: with shares that are multiples of the stride,
  the devices together take the global batch's every stride-th pair, as one device would."""
  share = real[0].shape[0]
  if share % stride:
    raise ValueError(f"config.model.disc_r1_stride={stride} does not divide the {share} images "
                     "each device gets (config.train.batch_size / devices); choose a stride "
                     "that does, or 1")
  return tuple(t[::stride] for t in real)


def _all_finite(tree) -> jax.Array:
  leaves = jax.tree.leaves(tree)
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def _keep_if(ok, new, old):
  return jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)


def _joint_adversarial(params, disc_params, x, z, z_prior, a, *, vae: VAE, disc):
  """The joint discriminator's generator loss L_adv,G and its DiscBatch: positives (x, z),
  negatives (sigmoid(D_rec(A^T z')), z')."""
  x_fake = jax.nn.sigmoid(vae.apply(params["vae"], relate(z_prior, a), method=VAE.decode))
  d_real = disc.apply(disc_params, x, z)
  d_fake = disc.apply(disc_params, x_fake, z_prior)
  sg = jax.lax.stop_gradient
  return (adversarial.generator_loss(d_real, d_fake),
          DiscBatch(real=(x, sg(z)), fake=(sg(x_fake), sg(z_prior))))


def beta_vae_objective(params, disc_params, state, inputs: StepInputs, out, a, *, vae, disc,
                       cfg: StepConfig):
  """GEM's generator side: lambda_dis * L_dis (+ lambda_adv * L_adv,G, z' ~ N(0, I))."""
  l_dis, metrics = losses.beta_vae_loss(out, inputs.x, cfg.beta, cfg.likelihood, cfg.sigma)
  total = cfg.lambda_dis * l_dis
  metrics["l_dis"] = l_dis
  disc_batch = None
  if cfg.adversarial:
    l_adv_g, disc_batch = _joint_adversarial(params, disc_params, inputs.x, out["z"],
                                             inputs.prior_eps, a, vae=vae, disc=disc)
    total = total + cfg.lambda_adv * l_adv_g
    metrics["adv_generator"] = l_adv_g
  return total, metrics, disc_batch


def beta_tcvae_objective(params, disc_params, state, inputs: StepInputs, out, a, *, vae, disc,
                         cfg: StepConfig):
  """β-TCVAE with the MWS estimate of q(z) over the global batch: every device scores its
  samples against the posteriors of all devices, so the step does not depend on the device
  count (the gather's gradient returns each device's share to it)."""
  gather = lambda v: jax.lax.all_gather(v, AXIS, tiled=True)
  loss, metrics = tc_vae.beta_tcvae_loss(
      out, inputs.x, dataset_size=cfg.dataset_size, beta=cfg.beta, mi_weight=cfg.mi_weight,
      dimwise_kl_weight=cfg.dimwise_kl_weight, likelihood=cfg.likelihood, sigma=cfg.sigma,
      batch_mu=gather(out["mu"]), batch_logvar=gather(out["logvar"]))
  return loss, metrics, None


def factor_vae_objective(params, disc_params, state, inputs: StepInputs, out, a, *, vae, disc,
                         cfg: StepConfig):
  """FactorVAE: recon + beta * KL + factor_gamma * mean D(z). D's negatives are the global
  batch's codes permuted dimension-wise (one permutation for all devices), this device's rows."""
  vae_loss, metrics = losses.beta_vae_loss(out, inputs.x, cfg.beta, cfg.likelihood, cfg.sigma)
  tc = factor_vae.total_correlation_estimate(disc.apply(disc_params, out["z"]))
  metrics["tc"] = tc
  z = jax.lax.stop_gradient(out["z"])
  permuted = factor_vae.permute_dims(jax.lax.all_gather(z, AXIS, tiled=True), inputs.perm_key)
  local = jax.lax.dynamic_slice_in_dim(permuted, jax.lax.axis_index(AXIS) * z.shape[0],
                                       z.shape[0])
  return vae_loss + cfg.factor_gamma * tc, metrics, DiscBatch(real=(z,), fake=(local,))


def dear_objective(params, disc_params, state, inputs: StepInputs, out, a, *, vae, disc,
                   cfg: StepConfig):
  """DEAR-style: recon + lambda_adv * L_adv,G + lambda_sup * supervised loss on the first k
  means; the joint discriminator's negatives come from the SCM prior z' = (I - A^T)^-1 eps."""
  labels = inputs.labels
  if labels is None or labels.ndim != 2 or labels.shape[1] != cfg.dear_num_factors:
    got = "no labels" if labels is None else f"labels of shape {list(labels.shape)}"
    raise ValueError(f"objective 'dear' needs batch['labels'] [b, k={cfg.dear_num_factors}] "
                     f"(config.model.dear_num_factors) but the batch has {got}; set "
                     "config.data.label_key (e.g. 'attributes') so the input pipeline feeds "
                     "the data set's labels")
  recon = losses.reconstruction_nll(out["logits"], inputs.x, cfg.likelihood, cfg.sigma).mean()
  a_scm = scm_prior.masked_weights(params["scm"]["a"], state.graph["edge_mask"])
  z_prior = scm_prior.scm_sample(inputs.prior_eps, a_scm)
  l_adv_g, disc_batch = _joint_adversarial(params, disc_params, inputs.x, out["z"], z_prior, a,
                                           vae=vae, disc=disc)
  sup = scm_prior.supervised_loss(out["mu"], labels, cfg.label_max)
  total = recon + cfg.lambda_adv * l_adv_g + cfg.lambda_sup * sup
  return total, dict(recon=recon, adv_generator=l_adv_g, supervised=sup), disc_batch


OBJECTIVE_FNS = {"beta_vae": beta_vae_objective, "beta_tcvae": beta_tcvae_objective,
                 "factor_vae": factor_vae_objective, "dear": dear_objective}


def generator_loss(params, disc_params, state: TrainState, inputs: StepInputs, *, vae: VAE,
                   graph_module, disc, cfg: StepConfig):
  """The generator objective and what the discriminator step needs from it."""
  a = graph_module.apply(params["graph"], state.graph["a0"], state.graph["edge_mask"])
  out = vae.apply(params["vae"], inputs.x, inputs.eps, a)
  total, metrics, disc_batch = OBJECTIVE_FNS[cfg.objective](
      params, disc_params, state, inputs, out, a, vae=vae, disc=disc, cfg=cfg)
  if cfg.lambda_anchor:
    l_anchor = anchor_loss(a, state.graph["anchor"])
    total = total + cfg.lambda_anchor * l_anchor
    metrics["anchor"] = l_anchor
  metrics["loss"] = total
  return total, (metrics, a, disc_batch)


def train_step(state: TrainState, batch: dict, *, vae: VAE, graph_module, disc, tx, disc_tx,
               cfg: StepConfig) -> tuple[TrainState, dict]:
  """Per-device body. batch['image']: uint8 [b, H, W, 3] (this device's share); batch
  ['labels'] [b, k] where the objective needs them (DEAR)."""
  chex.assert_rank(batch["image"], 4)
  x = images_to_float(batch["image"])
  d = vae.latent_dim
  step_key = jax.random.fold_in(state.rng, state.step)
  index = _global_index(x.shape[0])
  inputs = StepInputs(x=x, eps=example_noise(jax.random.fold_in(step_key, 0), index, d),
                      prior_eps=example_noise(jax.random.fold_in(step_key, 1), index, d),
                      perm_key=jax.random.fold_in(step_key, 2), labels=batch.get("labels"))

  grad_fn = jax.value_and_grad(generator_loss, has_aux=True)
  (_, (metrics, a, disc_batch)), grads = grad_fn(
      state.params, state.disc_params, state, inputs, vae=vae, graph_module=graph_module,
      disc=disc, cfg=cfg)
  grads = jax.lax.pmean(grads, AXIS)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  ok = jnp.isfinite(metrics["loss"]) & _all_finite(grads)

  disc_params, disc_opt_state = state.disc_params, state.disc_opt_state
  if disc_batch is not None:
    def disc_loss(p):
      loss = adversarial.discriminator_loss(disc.apply(p, *disc_batch.real),
                                            disc.apply(p, *disc_batch.fake))
      if not cfg.disc_r1_gamma:
        return loss, (loss, None)
      real = _r1_subset(disc_batch.real, cfg.disc_r1_stride)
      r1 = adversarial.r1_penalty(lambda *a: disc.apply(p, *a), real)
      return loss + 0.5 * cfg.disc_r1_gamma * r1, (loss, r1)

    (_, (l_disc, r1)), disc_grads = jax.value_and_grad(disc_loss, has_aux=True)(
        state.disc_params)
    if r1 is not None:
      metrics["disc_r1"] = r1
    disc_grads = jax.lax.pmean(disc_grads, AXIS)
    disc_updates, disc_opt_state = disc_tx.update(disc_grads, state.disc_opt_state,
                                                  state.disc_params)
    disc_params = optax.apply_updates(state.disc_params, disc_updates)
    metrics[_DISC_METRIC[cfg.objective]] = l_disc
    ok = ok & jnp.isfinite(l_disc) & _all_finite(disc_grads)

  graph = dict(state.graph)
  if cfg.lambda_anchor:
    graph["anchor"] = update_anchor(state.graph["anchor"], a, cfg.anchor_tau)
  metrics = jax.lax.pmean(metrics, AXIS)
  new_state = state.replace(
      step=state.step + 1,
      params=_keep_if(ok, params, state.params),
      opt_state=_keep_if(ok, opt_state, state.opt_state),
      graph=_keep_if(ok, graph, state.graph),
      disc_params=_keep_if(ok, disc_params, state.disc_params),
      disc_opt_state=_keep_if(ok, disc_opt_state, state.disc_opt_state))
  metrics["nonfinite"] = 1 - ok.astype(jnp.int32)
  return new_state, metrics


def make_pmapped_step(config, devices: Sequence[jax.Device] | None = None) -> Callable:
  """jit + pmap of `train_step` over `devices` (default: all local devices).

  The returned function takes a replicated state and a batch {'image': uint8 [num_devices,
  per_device_batch, H, W, 3]} (DEAR: also 'labels' [num_devices, per_device_batch, k]) and
  returns (state, metrics), both replicated.
  """
  mc = config.model
  body = functools.partial(train_step, vae=make_model(mc), graph_module=make_graph_module(mc),
                           disc=make_discriminator(mc), tx=make_optimizer(config.train),
                           disc_tx=make_disc_optimizer(config.train),
                           cfg=StepConfig.from_config(config))
  return jax.pmap(body, axis_name=AXIS, devices=devices, donate_argnums=(0,))
