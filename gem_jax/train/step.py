"""One generic training step, pmapped over devices: any objective of `gem_jax.objectives`.

`train_step(state, batch) -> (state, metrics)` is pure. Per step, on each device:
  1. A = DisGraph(A_0) (the graph learner's refinement, or A_0 itself; I for the baselines);
  2. z = mu + sigma * eps with eps drawn per global example index from the state's RNG, so
     the same global batch gives the same update on one device or several;
  3. the objective's generator loss (`Objective.generator_loss`), plus
     lambda_anchor * ||A - A_anchor||^2 when the graph learner is on, plus the guided term
     on the step's scored images when training is MLLM-guided (`Guidance`; batch
     'guide_image', 'guide_target', 'guide_mask');
  4. the discriminator, if the objective has one, learns its positives against its negatives
     with its own optimizer (optionally with an R1 penalty on its real inputs);
  5. gradients are averaged over devices (lax.pmean) and the anchor moves towards A.
A step whose loss, gradients or new state (parameters, optimizer states, graph, on any device)
are not finite leaves the state as it was (step + 1 aside) and reports metrics['nonfinite'] = 1,
so NaN never reaches the weights: not from a NaN loss, nor from a NaN learning rate or moment.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from gem_jax.models import VAE
from gem_jax.models.disgraph import anchor_loss, update_anchor
from gem_jax.objectives import LossContext, Objective, StepInputs, losses
from gem_jax.objectives import from_config as objective_from_config
from gem_jax.objectives.base import AXIS
from gem_jax.objectives.guidance import Guidance, GuideInputs
from gem_jax.objectives.steering import Steering, steering_draws
from gem_jax.train.state import (
  TrainState,
  make_disc_optimizer,
  make_discriminator,
  make_graph_module,
  make_model,
  make_optimizer,
)


@dataclasses.dataclass(frozen=True)
class StepConfig:
  """What the step reads besides the modules: the objective and the generic switches.

  lambda_anchor: weight of ||A - A_anchor||^2 (0 without the graph learner); anchor_tau: the
  anchor's moving-average rate; disc_r1_gamma: R1 penalty on the discriminator's real inputs
  (0: off); disc_r1_stride: R1 on every stride-th real pair of each device's share;
  disc_r1_interval: R1 on every interval-th step only, its weight times the interval (lazy R1,
  as StyleGAN2: the schedule is a function of the step, so a resumed run keeps it); guidance:
  the MLLM-guided term (weight, guided latents) or None (unguided: the paper's form);
  steering: the decoder's steering term (`gem_jax.objectives.steering`) or None.
  """

  objective: Objective
  lambda_anchor: float = 0.0
  anchor_tau: float = 0.999
  disc_r1_gamma: float = 0.0
  disc_r1_stride: int = 1
  disc_r1_interval: int = 1
  guidance: Guidance | None = None
  steering: Steering | None = None

  @classmethod
  def from_config(cls, config, guide_latents: Sequence[int] | None = None) -> "StepConfig":
    """guide_latents: the guided latents when the run is fed scored images (weight
    config.gem.guidance.weight); None: unguided."""
    mc = config.model
    guidance = None
    if guide_latents is not None:
      guidance = Guidance(weight=float(config.gem.guidance.weight),
                          latents=tuple(int(k) for k in guide_latents))
    gem = config.get("gem")
    steer = gem.get("steer") if gem is not None else None
    steering = None
    if guide_latents is not None and steer is not None and steer.get("weight"):
      steering = Steering(weight=float(steer.weight),
                          latents=tuple(int(k) for k in guide_latents),
                          stride=int(steer.get("stride", 4)))
    cfg = cls(objective=objective_from_config(config),
              lambda_anchor=mc.lambda_anchor if mc.graph_learner else 0.0,
              anchor_tau=mc.anchor_tau, disc_r1_gamma=float(mc.disc_r1_gamma),
              disc_r1_stride=int(mc.disc_r1_stride),
              disc_r1_interval=int(mc.get("disc_r1_interval", 1)), guidance=guidance,
              steering=steering)
    for key in ("disc_r1_stride", "disc_r1_interval"):
      if getattr(cfg, key) < 1:
        raise ValueError(f"config.model.{key} must be >= 1, got {getattr(cfg, key)}")
    return cfg


def replicate(tree, devices: Sequence[jax.Device]):
  """Stacks one copy of `tree` per local device of `devices` (this process's share of the
  pmapped step's devices), laid out exactly as the pmapped step returns its outputs (mesh axis
  AXIS), so the step compiles once rather than again on its second call."""
  local = [d for d in devices if d.process_index == jax.process_index()]
  mesh = jax.sharding.Mesh(np.asarray(local), (AXIS,))
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(AXIS))
  stack = lambda x: np.stack([np.asarray(x)] * len(local))
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
  """int32 [b]: the global batch rows of this device's share. The axis spans every process's
  devices, ordered by (process, local device) as `gem_jax.data.make_train_iterator` assigns
  rows, so the index does not depend on how many processes share the batch."""
  return jax.lax.axis_index(AXIS) * per_device_batch + jnp.arange(per_device_batch)


def step_inputs(state: TrainState, batch: dict, latent_dim: int) -> StepInputs:
  """The step's inputs from this device's share of the batch: images in [0, 1], the noise of
  each global example index, the permutation key, labels and the guide batch where fed."""
  chex.assert_rank(batch["image"], 4)
  x = images_to_float(batch["image"])
  step_key = jax.random.fold_in(state.rng, state.step)
  index = _global_index(x.shape[0])
  guide = None
  if "guide_image" in batch:
    guide = GuideInputs(x=images_to_float(batch["guide_image"]), target=batch["guide_target"],
                        mask=batch["guide_mask"])
  return StepInputs(x=x, eps=example_noise(jax.random.fold_in(step_key, 0), index, latent_dim),
                    prior_eps=example_noise(jax.random.fold_in(step_key, 1), index, latent_dim),
                    perm_key=jax.random.fold_in(step_key, 2), labels=batch.get("labels"),
                    step=state.step, guide=guide)


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
  """bool []: every element of every leaf finite (integer leaves always are; True if empty)."""
  checks = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
  return jnp.all(jnp.stack(checks)) if checks else jnp.array(True)


def _on_all_devices(ok: jax.Array) -> jax.Array:
  """bool []: `ok` on every device, so that the replicas keep or drop a step together."""
  return jax.lax.pmin(ok.astype(jnp.int32), AXIS).astype(bool)


def _keep_if(ok, new, old):
  return jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)


def generator_loss(params, disc_params, state: TrainState, inputs: StepInputs, *, vae: VAE,
                   graph_module, disc, cfg: StepConfig):
  """The generator objective and what the discriminator step needs from it. An objective with
  a joint discriminator gets its prior draws decoded in the reconstructions' decoder call."""
  a = graph_module.apply(params["graph"], state.graph["a0"], state.graph["edge_mask"])
  # An objective whose graph learns from its own term decodes through A without moving it.
  a_read = jax.lax.stop_gradient(a) if cfg.objective.graph_from_codes else a
  prior_z = None
  if cfg.objective.discriminator == "joint":
    prior_z = cfg.objective.prior_sample(params, state.graph, a_read, inputs.prior_eps)
  out = vae.apply(params["vae"], inputs.x, inputs.eps, a_read, prior_z)
  ctx = LossContext(params=params, disc_params=disc_params, graph=state.graph, inputs=inputs,
                    out=out, a=a, vae=vae, disc=disc)
  total, metrics, disc_batch = cfg.objective.generator_loss(ctx)
  if cfg.guidance is not None:
    if inputs.guide is None:
      raise ValueError("MLLM-guided training needs the step's scored images (batch "
                       "'guide_image', 'guide_target', 'guide_mask'); none were fed")
    l_guide = cfg.guidance.loss(params["vae"], vae, inputs.guide)
    total = total + cfg.guidance.weight * l_guide
    metrics["guide"] = l_guide
  if cfg.steering is not None:
    attribute, value = steering_draws(jax.random.fold_in(inputs.perm_key, 1),
                                      _global_index(inputs.x.shape[0]),
                                      len(cfg.steering.latents))
    l_steer = cfg.steering.loss(params["vae"], vae, a, out["mu"], attribute, value)
    total = total + cfg.steering.weight * l_steer
    metrics["steer"] = l_steer
  if cfg.lambda_anchor:
    l_anchor = anchor_loss(a, state.graph["anchor"])
    total = total + cfg.lambda_anchor * l_anchor
    metrics["anchor"] = l_anchor
  metrics["loss"] = total
  return total, (metrics, a, disc_batch)


def _both_losses(params, disc_params, state, inputs, *, vae, graph_module, disc, cfg):
  """((generator loss, discriminator loss), aux): one forward pass for both updates. The
  discriminator's loss reads the logits the generator loss computed (DiscBatch logits) where it
  has them; its gradient is only ever taken with respect to disc_params."""
  total, (metrics, a, disc_batch) = generator_loss(
      params, disc_params, state, inputs, vae=vae, graph_module=graph_module, disc=disc,
      cfg=cfg)
  if disc_batch is None:
    return (total, jnp.zeros((), total.dtype)), (metrics, a, None)
  if disc_batch.real_logits is not None:
    real, fake = disc_batch.real_logits, disc_batch.fake_logits
  else:
    real, fake = disc.apply(disc_params, *disc_batch.real), disc.apply(disc_params,
                                                                        *disc_batch.fake)
  return (total, losses.discriminator_loss(real, fake)), (metrics, a, disc_batch)


def _r1_gradients(disc_params, disc_batch, *, disc, cfg: StepConfig, step):
  """(R1 penalty, its gradient w.r.t. disc_params times 0.5 gamma * interval) on this step's
  real pairs (every disc_r1_stride-th), or zeros on the steps a lazy R1 skips (step not a
  multiple of disc_r1_interval; StyleGAN2's lazy regularisation)."""
  real = _r1_subset(disc_batch.real, cfg.disc_r1_stride)
  weight = 0.5 * cfg.disc_r1_gamma * cfg.disc_r1_interval

  def penalty(p):
    return losses.r1_penalty(lambda *a: disc.apply(p, *a), real)

  def on(p):
    r1, g = jax.value_and_grad(penalty)(p)
    return r1, jax.tree.map(lambda x: weight * x, g)

  if cfg.disc_r1_interval == 1:
    return on(disc_params)
  off = lambda p: (jnp.zeros(()), jax.tree.map(jnp.zeros_like, p))
  return jax.lax.cond(step % cfg.disc_r1_interval == 0, on, off, disc_params)


def step_gradients(state: TrainState, inputs: StepInputs, *, vae: VAE, graph_module, disc,
                   cfg: StepConfig):
  """This device's gradients of one step, before the mean over devices: (generator grads,
  discriminator grads or None, metrics, A). The discriminator's gradient is that of its loss
  on the shared forward pass (`_both_losses`) plus, where gamma > 0, the R1 penalty's."""
  both = functools.partial(_both_losses, state=state, inputs=inputs, vae=vae,
                           graph_module=graph_module, disc=disc, cfg=cfg)
  (total, l_disc), pullback, (metrics, a, disc_batch) = jax.vjp(
      both, state.params, state.disc_params, has_aux=True)
  one, zero = jnp.ones_like(total), jnp.zeros_like(l_disc)
  grads = pullback((one, zero))[0]
  if disc_batch is None:
    return grads, None, metrics, a
  disc_grads = pullback((jnp.zeros_like(total), jnp.ones_like(l_disc)))[1]
  metrics = {**metrics, cfg.objective.disc_metric: l_disc}
  if cfg.disc_r1_gamma:
    r1, r1_grads = _r1_gradients(state.disc_params, disc_batch, disc=disc, cfg=cfg,
                                 step=state.step)
    disc_grads = jax.tree.map(jnp.add, disc_grads, r1_grads)
    metrics["disc_r1"] = r1
  return grads, disc_grads, metrics, a


def train_step(state: TrainState, batch: dict, *, vae: VAE, graph_module, disc, tx, disc_tx,
               cfg: StepConfig) -> tuple[TrainState, dict]:
  """Per-device body. batch['image']: uint8 [b, H, W, 3] (this device's share); batch
  ['labels'] [b, k] where the objective needs them (DEAR); guided training: batch
  ['guide_image'] uint8 [g, H, W, 3], ['guide_target'] float32 [g, n], ['guide_mask'] [g, n]."""
  inputs = step_inputs(state, batch, vae.latent_dim)
  grads, disc_grads, metrics, a = step_gradients(state, inputs, vae=vae,
                                                 graph_module=graph_module, disc=disc, cfg=cfg)
  grads = jax.lax.pmean(grads, AXIS)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  ok = (jnp.isfinite(metrics["loss"]) & _all_finite(grads) & _all_finite(params)
        & _all_finite(opt_state))

  disc_params, disc_opt_state = state.disc_params, state.disc_opt_state
  if disc_grads is not None:
    disc_grads = jax.lax.pmean(disc_grads, AXIS)
    updates, disc_opt_state = disc_tx.update(disc_grads, state.disc_opt_state,
                                             state.disc_params)
    disc_params = optax.apply_updates(state.disc_params, updates)
    ok = (ok & jnp.isfinite(metrics[cfg.objective.disc_metric]) & _all_finite(disc_grads)
          & _all_finite(disc_params) & _all_finite(disc_opt_state))

  graph = dict(state.graph)
  if cfg.lambda_anchor:
    graph["anchor"] = update_anchor(state.graph["anchor"], a, cfg.anchor_tau)
  ok = _on_all_devices(ok & _all_finite(graph))
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


def make_pmapped_step(config, devices: Sequence[jax.Device] | None = None,
                      cfg: StepConfig | None = None) -> Callable:
  """jit + pmap of `train_step` over `devices` (default: all devices of every process; in a
  multi-process run each process passes the same global list, `training_devices`).

  The returned function takes a replicated state and a batch {'image': uint8 [local_devices,
  per_device_batch, H, W, 3]} (DEAR: also 'labels' [local_devices, per_device_batch, k]) and
  returns (state, metrics), both replicated over this process's devices. cfg: the run's
  StepConfig when the caller has built it already (default: from config).
  """
  body = step_body(config, cfg or StepConfig.from_config(config))
  return jax.pmap(body, axis_name=AXIS, devices=devices, donate_argnums=(0,))


def step_body(config, cfg: StepConfig) -> Callable:
  """`train_step` with the run's modules and optimizers bound: (state, batch) -> (state,
  metrics), to be mapped over the AXIS of devices (and, for batched seeds, vmapped)."""
  mc = config.model
  return functools.partial(train_step, vae=make_model(mc), graph_module=make_graph_module(mc),
                           disc=make_discriminator(mc, cfg.objective.discriminator),
                           tx=make_optimizer(config.train),
                           disc_tx=make_disc_optimizer(config.train), cfg=cfg)
