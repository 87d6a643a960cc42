"""Speed and memory benchmarks, printed as one JSON object.

    python -m experiments.benchmark --model beta_vae --batch_size 64
    python -m experiments.benchmark --model beta_vae --upsample conv_transpose
    python -m experiments.benchmark --model somers_d
    python -m experiments.benchmark --model factor_vae --latent_dim 10 --run_tokens cpu30
    python -m experiments.benchmark --model gem --run_tokens paper_arch --batch_size 8 --steps 3
    python -m experiments.benchmark --model input_pipeline --batch_size 256
    python -m experiments.benchmark --model fid_inception --batch_size 50 --steps 5
    python -m experiments.benchmark --model gem --batch_size 32 --num_seeds 8
    python -m experiments.benchmark --model gem --batch_size 32 --set model.disc_r1_interval=8

A model is a method of METHOD_TOKENS in experiments/configs/synthetic_gem.py (vae, beta_vae,
beta_tcvae, factor_vae, dear, gem_single, gem), built from its tokens plus --run_tokens.

A model's figure times the real pmapped train step (Adam updates included) on random uint8
images after a compile warm-up; GFLOPs are XLA's cost analysis of the compiled step (summed
over devices); peak memory is the process's peak resident set (CPU) and, on an accelerator, the
device's peak bytes in use; seconds_per_epoch = --epoch_size / images_per_s.
forward_gflops_per_image is XLA's cost analysis of one image's forward pass, counting a
multiply and an add as two FLOPs: the VAE (encode, sample, decode) plus, where the method has
one, the discriminator on one pair. `--model input_pipeline` times the tf.data train iterator
alone (`gem_jax.data.pipeline.make_train_iterator`, the run's data config) in images/s.
`--model fid_inception` times the FID feature extractor (`FIDInceptionFeatures`: resize to
299 x 299 and the FID Inception network, jit-compiled on JAX's first device) on random uint8
images of --image_size, with random weights (the speed does not depend on them).
"""
import json
import os
import resource
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from experiments.benchmark_relations import benchmark_somers_d
from experiments.benchmark_seeds import benchmark_seeds
from experiments.configs import synthetic_gem
from experiments.configs.synthetic_gem import METHOD_TOKENS
from gem_jax import objectives
from gem_jax.data.pipeline import make_train_iterator
from gem_jax.metrics import fid_inception
from gem_jax.metrics.features import FIDInceptionFeatures
from gem_jax.train.state import create_train_state, make_discriminator, make_model
from gem_jax.train.step import make_pmapped_step, replicate

_MODEL = flags.DEFINE_string("model", "beta_vae",
                             "What to time: a method's train step (see experiments/configs/"
                             "synthetic_gem.py METHOD_TOKENS), somers_d, input_pipeline or "
                             "fid_inception.")
_BATCH = flags.DEFINE_integer("batch_size", 64, "Global batch size.")
_STEPS = flags.DEFINE_integer("steps", 30, "Timed steps.")
_UPSAMPLE = flags.DEFINE_string("upsample", None, "Decoder upsampling form override.")
_DEVICES = flags.DEFINE_integer("num_devices", 0, "Devices to pmap over (0: all).")
_LATENT_DIM = flags.DEFINE_integer("latent_dim", None, "Latent size override.")
_RUN_TOKENS = flags.DEFINE_string("run_tokens", "", "Extra synthetic_gem.py config tokens.")
_EPOCH = flags.DEFINE_integer("epoch_size", 60_000, "Images per epoch (synthetic_faces: 60k).")
_DATA_CONFIG = flags.DEFINE_string("data_config", None,
                                   "input_pipeline: synthetic_faces builder config override.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 64, "fid_inception: input image side.")
_SET = flags.DEFINE_multi_string("set", [], "A config override key=value (repeatable), e.g. "
                                  "--set model.disc_r1_interval=8.")
_SEEDS = flags.DEFINE_integer("num_seeds", 0, "> 0: time this many seeds' steps vmapped in "
                              "one step against as many sequential steps (one device).")


def _peak_rss_mib() -> float:
  """This process's own peak resident set. Linux's VmHWM belongs to the process's current
  address space; ru_maxrss also keeps the peak of whatever ran before an exec (a parent that
  spawned this benchmark), so it is only the fallback where /proc is missing."""
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith("VmHWM:"):
          return int(line.split()[1]) / 1024
  except OSError:
    pass
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _peak_memory() -> dict:
  out = {"peak_rss_mib": _peak_rss_mib()}
  stats = jax.local_devices()[0].memory_stats() or {}
  if "peak_bytes_in_use" in stats:
    out["device_peak_mib"] = stats["peak_bytes_in_use"] / 2**20
  return out


def _step_flops(compiled, num_devices: int) -> float | None:
  """XLA's cost-analysis FLOPs of one compiled train step over all devices (None where XLA
  gives none): the pmapped program is costed per device, so its figure is scaled by the count."""
  analysis = compiled.cost_analysis()
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0] if analysis else {}
  flops = (analysis or {}).get("flops")
  return float(flops) * num_devices if flops and flops > 0 else None


def _cost_flops(fn, *args) -> float:
  analysis = jax.jit(fn).lower(*args).compile().cost_analysis()
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0] if analysis else {}
  return float((analysis or {}).get("flops") or 0.0)


def forward_gflops_per_image(config, state) -> dict:
  """XLA's FLOPs of one image's forward pass: the VAE [1, S, S, 3] -> logits, and the
  discriminator the objective trains on one pair (0 when it has none)."""
  mc = config.model
  d, size = mc.latent_dim, mc.image_size
  x, z, a = jnp.zeros((1, size, size, 3)), jnp.zeros((1, d)), jnp.eye(d)
  vae = make_model(mc)
  vae_flops = _cost_flops(lambda p: vae.apply(p, x, z, a)["logits"], state.params["vae"])
  disc_flops = 0.0
  kind = objectives.from_config(config).discriminator
  if kind is not None:
    disc = make_discriminator(mc, kind)
    inputs = (z,) if kind == "z" else (x, z)
    disc_flops = _cost_flops(lambda p: disc.apply(p, *inputs), state.disc_params)
  return {"forward_gflops_per_image": (vae_flops + disc_flops) / 1e9,
          "vae_forward_gflops_per_image": vae_flops / 1e9,
          "disc_forward_gflops_per_image": disc_flops / 1e9}


def benchmark_input_pipeline(config, batch_size: int, steps: int) -> dict:
  """Images/s the tf.data train iterator delivers alone (median over `steps` batches after
  the first, which fills the cache and starts the prefetch)."""
  devices = jax.local_devices()[:config.train.num_devices or None]
  t = time.perf_counter()
  it = make_train_iterator(config.data, global_batch=batch_size, num_devices=len(devices),
                           seed=0, image_size=config.model.image_size)
  next(it)
  first_s = time.perf_counter() - t
  times = []
  for _ in range(steps):
    t = time.perf_counter()
    next(it)
    times.append(time.perf_counter() - t)
  batch_s = float(np.median(times))
  return {"model": "input_pipeline", "data": f"{config.data.name}/{config.data.config}",
          "batch_size": batch_size, "images_per_s": batch_size / max(batch_s, 1e-9),
          "batch_time_ms": batch_s * 1e3, "first_batch_s": first_s, "timed_batches": steps,
          **_peak_memory()}


def _random_fid_variables(seed: int = 0) -> dict:
  """Random FID Inception variables (He-scaled kernels, positive BN variances), no compile."""
  rng = np.random.default_rng(seed)

  def leaf(path, s):
    name = path[-1].key
    if name == "kernel":
      return (rng.standard_normal(s.shape) * np.sqrt(2 / np.prod(s.shape[:3]))).astype(
          np.float32)
    return np.ones(s.shape, np.float32) if name in ("scale", "var") else np.zeros(
        s.shape, np.float32)
  return jax.tree_util.tree_map_with_path(leaf, fid_inception.variable_shapes())


def benchmark_fid_inception(batch_size: int, steps: int, image_size: int) -> dict:
  """Images/s of FIDInceptionFeatures on uint8 [batch_size, image_size, image_size, 3]: median
  over `steps` batches after one compile/warm-up batch; XLA's GFLOPs of one batch."""
  extractor = FIDInceptionFeatures(_random_fid_variables(), batch_size=batch_size)
  images = np.random.default_rng(0).integers(0, 256, (batch_size, image_size, image_size, 3),
                                             dtype=np.uint8)
  t = time.perf_counter()
  extractor(images)
  compile_s = time.perf_counter() - t
  times = []
  for _ in range(steps):
    t = time.perf_counter()
    extractor(images)   # returns numpy: the device work is done
    times.append(time.perf_counter() - t)
  batch_s = float(np.median(times))
  flops = _cost_flops(extractor._apply, extractor.variables, images)
  device = jax.devices()[0]
  return {"model": "fid_inception", "batch_size": batch_size, "image_size": image_size,
          "platform": device.platform, "device_kind": device.device_kind,
          "images_per_s": batch_size / batch_s, "batch_time_ms": batch_s * 1e3,
          "compile_s": compile_s, "param_count": fid_inception.PARAM_COUNT,
          "gflops_per_image": flops / 1e9 / batch_size if flops else None,
          "timed_batches": steps, "xla_flags": os.environ.get("XLA_FLAGS", ""),
          **_peak_memory()}


def _override(config, item: str) -> None:
  """Sets `key=value` (a dotted config key; the value parsed as the key's current type)."""
  key, sep, value = item.partition("=")
  *path, last = key.split(".")
  node = config
  try:
    for part in path:
      node = node[part]
    current = node[last]
  except KeyError as e:
    raise app.UsageError(f"--set {item!r}: no config key {key!r}") from e
  if not sep:
    raise app.UsageError(f"--set {item!r}: expected key=value")
  if isinstance(current, bool):
    node[last] = value.lower() in ("1", "true", "yes")
  else:
    node[last] = type(current)(value) if current is not None else value


def _labels(config, shape: tuple) -> np.ndarray | None:
  """Random labels [*shape, k] 0..label_max where the method reads them (DEAR), else None."""
  if not config.data.get("label_key"):
    return None
  return np.random.default_rng(1).integers(0, int(config.data.label_max) + 1,
                                           shape + (config.model.dear_num_factors,),
                                           dtype=np.int32)


def benchmark_train_step(config, batch_size: int, steps: int) -> dict:
  """Median step time over `steps` steps after one compile/warm-up step; the mean beside it
  (`mean_images_per_s`), which is what a lazy R1 penalty (every k-th step) saves: the median
  step then skips it. Time a multiple of k steps for that."""
  devices = jax.local_devices()[:config.train.num_devices or None]
  state = create_train_state(config)
  params = sum(x.size for x in jax.tree.leaves(state.params))
  disc_params = sum(x.size for x in jax.tree.leaves(state.disc_params))
  step_fn = make_pmapped_step(config, devices)
  size = config.model.image_size
  images = np.random.default_rng(0).integers(0, 256, (len(devices), batch_size // len(devices),
                                                      size, size, 3), dtype=np.uint8)
  batch = {"image": images}
  labels = _labels(config, images.shape[:2])
  if labels is not None:
    batch["labels"] = labels
  rstate = replicate(state, devices)
  # One ahead-of-time compile, timed and costed; the steps below run that executable.
  t = time.perf_counter()
  step_fn = step_fn.lower(rstate, batch).compile()
  rstate, metrics = step_fn(rstate, batch)
  jax.block_until_ready(metrics)
  compile_s = time.perf_counter() - t
  flops = _step_flops(step_fn, len(devices))
  times = []
  for _ in range(steps):
    t = time.perf_counter()
    rstate, metrics = step_fn(rstate, batch)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - t)
  step_s = float(np.median(times))
  forward = forward_gflops_per_image(config, state)
  return {"model": config.model.name, "arch": config.model.arch,
          "upsample": config.model.upsample, "batch_size": batch_size,
          "devices": len(devices), "platform": devices[0].platform,
          "device_kind": devices[0].device_kind, "images_per_s": batch_size / step_s,
          "step_time_ms": step_s * 1e3, "mean_images_per_s": batch_size / float(np.mean(times)),
          "compile_s": compile_s, "param_count": int(params),
          "disc_param_count": int(disc_params), "param_count_total": int(params + disc_params),
          "gflops_per_step": flops / 1e9 if flops else None,
          "gflops_per_image": flops / 1e9 / batch_size if flops else None, **forward,
          "timed_steps": steps, "xla_flags": os.environ.get("XLA_FLAGS", ""),
          **_peak_memory()}


def main(argv):
  del argv
  if _MODEL.value == "somers_d":
    print(json.dumps(benchmark_somers_d()))
    return
  if _MODEL.value == "fid_inception":
    print(json.dumps(benchmark_fid_inception(_BATCH.value, _STEPS.value, _IMAGE_SIZE.value)))
    return
  if _MODEL.value == "input_pipeline":
    config = synthetic_gem.get_config(_RUN_TOKENS.value)
    config.train.num_devices = _DEVICES.value
    if _DATA_CONFIG.value:
      config.data.config = _DATA_CONFIG.value
    print(json.dumps(benchmark_input_pipeline(config, _BATCH.value, _STEPS.value)))
    return
  if _MODEL.value not in METHOD_TOKENS:
    others = ["somers_d", "input_pipeline", "fid_inception"]
    raise app.UsageError(f"unknown --model {_MODEL.value!r}; choose from "
                         f"{sorted(METHOD_TOKENS) + others}")
  tokens = ",".join(t for t in (METHOD_TOKENS[_MODEL.value], _RUN_TOKENS.value) if t)
  config = synthetic_gem.get_config(tokens)
  config.train.num_devices = _DEVICES.value
  if _LATENT_DIM.value:
    config.model.latent_dim = _LATENT_DIM.value
  if _UPSAMPLE.value:
    config.model.upsample = _UPSAMPLE.value
  if "dataset_size" in config.model and not config.model.dataset_size:
    config.model.dataset_size = _EPOCH.value  # β-TCVAE's MWS estimate needs N
  for item in _SET.value:
    _override(config, item)
  if _SEEDS.value:
    result = benchmark_seeds(config, _BATCH.value, _STEPS.value, _SEEDS.value,
                             _labels(config, (1, _BATCH.value)))
    print(json.dumps({**result, "method": _MODEL.value}))
    return
  result = benchmark_train_step(config, _BATCH.value, _STEPS.value)
  result["method"] = _MODEL.value
  result["seconds_per_epoch"] = _EPOCH.value / result["images_per_s"]
  print(json.dumps(result))


if __name__ == "__main__":
  app.run(main)
