"""Where a train step's time goes: XLA cost and time of each part, and an optional trace.

    python -m experiments.profile_step --model gem --batch_size 32
    python -m experiments.profile_step --model gem --trace_dir /tmp/gem_trace   # TensorBoard

Each part is jit-compiled alone on one device with the step's shapes (b = --batch_size) and
timed (median of --steps calls after a warm-up call); GFLOPs are XLA's cost analysis (a
multiply-add counts two). Parts: the encoder forward+backward on b images; the decoder
forward+backward on b latents (the reconstructions) and on 2b (reconstructions and prior draws
in one call, as the step decodes them); the discriminator forward on 2b pairs, and its
forward+backward w.r.t. its inputs and w.r.t. its parameters (what the generator's and the
discriminator's updates each need); the R1 penalty's gradient (a gradient of a gradient) on
b / disc_r1_stride real pairs; and the whole pmapped train step. The parts overlap and XLA
fuses across them in the step, so they do not sum to it exactly. `--trace_dir` writes a
`jax.profiler` trace of --steps whole steps.
"""
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from experiments.configs import synthetic_gem
from experiments.configs.synthetic_gem import METHOD_TOKENS
from gem_jax import objectives
from gem_jax.objectives import losses
from gem_jax.train.state import create_train_state, make_discriminator, make_model
from gem_jax.train.step import make_pmapped_step, replicate

_MODEL = flags.DEFINE_string("model", "gem", "A method of METHOD_TOKENS.")
_BATCH = flags.DEFINE_integer("batch_size", 32, "The step's batch (one device).")
_STEPS = flags.DEFINE_integer("steps", 20, "Timed calls per part.")
_RUN_TOKENS = flags.DEFINE_string("run_tokens", "", "Extra synthetic_gem.py config tokens.")
_TRACE = flags.DEFINE_string("trace_dir", None, "Write a jax.profiler trace of whole steps.")


def _cost_and_time(fn, args, steps: int) -> dict:
  """XLA GFLOPs of jit(fn)(*args) and its median wall time in ms."""
  compiled = jax.jit(fn).lower(*args).compile()
  analysis = compiled.cost_analysis()
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0] if analysis else {}
  jax.block_until_ready(compiled(*args))
  times = []
  for _ in range(steps):
    t = time.perf_counter()
    jax.block_until_ready(compiled(*args))
    times.append(time.perf_counter() - t)
  return {"gflops": float((analysis or {}).get("flops", 0.0)) / 1e9,
          "ms": float(np.median(times)) * 1e3}


def profile_parts(config, batch: int, steps: int) -> dict:
  """{part: {'gflops', 'ms'}} for the parts of the module docstring."""
  mc = config.model
  objective = objectives.from_config(config)
  state = create_train_state(config, objective=objective)
  vae, d = make_model(mc), mc.latent_dim
  rng = np.random.default_rng(0)
  x = rng.uniform(size=(batch, mc.image_size, mc.image_size, 3)).astype(np.float32)
  z = rng.normal(size=(batch, d)).astype(np.float32)
  vp = state.params["vae"]
  encode = lambda p, x: jnp.sum(vae.apply(p, x, method=vae.encode)[0])
  decode = lambda p, z: jnp.sum(vae.apply(p, z, method=vae.decode))
  parts = {
      "encoder_fwd_bwd": _cost_and_time(jax.value_and_grad(encode), (vp, x), steps),
      "decoder_fwd_bwd_b": _cost_and_time(jax.value_and_grad(decode), (vp, z), steps),
      "decoder_fwd_bwd_2b": _cost_and_time(jax.value_and_grad(decode),
                                           (vp, np.concatenate([z, z])), steps),
  }
  if objective.discriminator == "joint":
    disc, dp = make_discriminator(mc, "joint"), state.disc_params
    x2, z2 = np.concatenate([x, x]), np.concatenate([z, z])
    d_sum = lambda p, x, z: jnp.sum(disc.apply(p, x, z))
    parts["disc_fwd_2b"] = _cost_and_time(d_sum, (dp, x2, z2), steps)
    parts["disc_fwd_bwd_inputs_2b"] = _cost_and_time(jax.grad(d_sum, argnums=(1, 2)),
                                                     (dp, x2, z2), steps)
    parts["disc_fwd_bwd_params_2b"] = _cost_and_time(jax.grad(d_sum), (dp, x2, z2), steps)
    stride = int(mc.disc_r1_stride)
    r1 = lambda p, x, z: losses.r1_penalty(lambda *a: disc.apply(p, *a), (x, z))
    parts[f"r1_grad_{batch // stride}_pairs"] = _cost_and_time(
        jax.grad(r1), (dp, x[::stride], z[::stride]), steps)
  devices = jax.local_devices()[:1]
  step_fn = make_pmapped_step(config, devices)
  rstate = replicate(state, devices)
  images = rng.integers(0, 256, (1, batch, mc.image_size, mc.image_size, 3), dtype=np.uint8)
  step_batch = {"image": images}
  analysis = step_fn.lower(rstate, step_batch).compile().cost_analysis()
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0] if analysis else {}
  rstate, metrics = step_fn(rstate, step_batch)
  jax.block_until_ready(metrics)
  times = []
  for _ in range(steps):
    t = time.perf_counter()
    rstate, metrics = step_fn(rstate, step_batch)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - t)
  parts["train_step"] = {"gflops": float((analysis or {}).get("flops", 0.0)) / 1e9,
                         "ms": float(np.median(times)) * 1e3}
  if _TRACE.value:
    with jax.profiler.trace(_TRACE.value):
      for _ in range(steps):
        rstate, metrics = step_fn(rstate, step_batch)
      jax.block_until_ready(metrics)
  return parts


def main(argv):
  del argv
  if _MODEL.value not in METHOD_TOKENS:
    raise app.UsageError(f"unknown --model {_MODEL.value!r}; choose from "
                         f"{sorted(METHOD_TOKENS)}")
  config = synthetic_gem.get_config(",".join(t for t in (METHOD_TOKENS[_MODEL.value],
                                                         _RUN_TOKENS.value) if t))
  config.train.num_devices = 1
  if "dataset_size" in config.model and not config.model.dataset_size:
    config.model.dataset_size = 60_000
  parts = profile_parts(config, _BATCH.value, _STEPS.value)
  print(json.dumps({"model": _MODEL.value, "batch_size": _BATCH.value,
                    "platform": jax.devices()[0].platform, "parts": parts,
                    "trace_dir": _TRACE.value}))


if __name__ == "__main__":
  app.run(main)
