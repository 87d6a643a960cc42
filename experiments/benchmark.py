"""Speed and memory benchmarks, printed as one JSON object.

    python -m experiments.benchmark --model beta_vae --batch-size 64
    python -m experiments.benchmark --model beta_vae --upsample conv_transpose
    python -m experiments.benchmark --model somers_d

beta_vae times the real pmapped train step (Adam update included) on random uint8 images
after a compile warm-up; peak memory is the process's peak resident set (CPU) and, on an
accelerator, the device's peak bytes in use.
"""
import json
import os
import resource
import time

from absl import app, flags

from experiments import cli

cli.prepare_process()
_MODEL = flags.DEFINE_enum("model", "beta_vae", ["beta_vae", "gem", "gem_single", "somers_d"],
                           "What to time: a model's train step, or Somers' D.")
_BATCH = flags.DEFINE_integer("batch_size", 64, "Global batch size.")
_STEPS = flags.DEFINE_integer("steps", 30, "Timed steps.")
_UPSAMPLE = flags.DEFINE_string("upsample", None, "Decoder upsampling form override.")
_DEVICES = flags.DEFINE_integer("num_devices", 0, "Devices to pmap over (0: all).")


def _peak_memory() -> dict:
  import jax
  out = {"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
  stats = jax.local_devices()[0].memory_stats() or {}
  if "peak_bytes_in_use" in stats:
    out["device_peak_mib"] = stats["peak_bytes_in_use"] / 2**20
  return out


def benchmark_train_step(config, batch_size: int, steps: int) -> dict:
  """Median step time over `steps` steps after one compile/warm-up step."""
  import jax
  import numpy as np
  from gem_jax.train_state import create_train_state
  from gem_jax.train_step import make_pmapped_step, replicate
  devices = jax.local_devices()[:config.train.num_devices or None]
  state = create_train_state(config)
  params = sum(x.size for x in jax.tree.leaves(state.params))
  disc_params = sum(x.size for x in jax.tree.leaves(state.disc_params))
  step_fn = make_pmapped_step(config, devices)
  size = config.model.image_size
  images = np.random.default_rng(0).integers(0, 256, (len(devices), batch_size // len(devices),
                                                      size, size, 3), dtype=np.uint8)
  batch = {"image": images}
  rstate = replicate(state, devices)
  t = time.perf_counter()
  rstate, metrics = step_fn(rstate, batch)
  jax.block_until_ready(metrics)
  compile_s = time.perf_counter() - t
  times = []
  for _ in range(steps):
    t = time.perf_counter()
    rstate, metrics = step_fn(rstate, batch)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - t)
  step_s = float(np.median(times))
  return {"model": config.model.name, "upsample": config.model.upsample, "batch_size": batch_size,
          "devices": len(devices), "platform": devices[0].platform,
          "device_kind": devices[0].device_kind, "images_per_s": batch_size / step_s,
          "step_time_ms": step_s * 1e3, "compile_s": compile_s, "param_count": int(params),
          "disc_param_count": int(disc_params),
          "timed_steps": steps, "xla_flags": os.environ.get("XLA_FLAGS", ""),
          **_peak_memory()}


def main(argv):
  del argv
  if _MODEL.value == "somers_d":
    from experiments.benchmark_relations import benchmark_somers_d
    print(json.dumps(benchmark_somers_d()))
    return
  from experiments.configs import synthetic_gem
  config = synthetic_gem.get_config(_MODEL.value)
  config.train.num_devices = _DEVICES.value
  if _UPSAMPLE.value:
    config.model.upsample = _UPSAMPLE.value
  print(json.dumps(benchmark_train_step(config, _BATCH.value, _STEPS.value)))


if __name__ == "__main__":
  app.run(main)
