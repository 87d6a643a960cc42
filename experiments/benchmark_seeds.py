"""Batched seeds: S seeds' train steps `vmap`ped into one step against S sequential steps.

    python -m experiments.benchmark --model gem --batch_size 32 --num_seeds 8

Both run on one device with the same random batch for every seed; the batched step stacks the
S TrainStates (each from its own seed) along a new leading axis. Per-seed weights turn every
convolution into a grouped one, which XLA's CPU backend runs poorly; on a GPU batching small
networks is the usual way to fill the device. This only measures: no trainer uses it yet
(`experiments/gpu_check.sh` runs it for S = 1, 4, 16 so that the first GPU lent answers
whether one is worth building).
"""
from __future__ import annotations

import time

import jax
import numpy as np

from gem_jax.objectives.base import AXIS
from gem_jax.train.state import create_train_state
from gem_jax.train.step import StepConfig, replicate, step_body


def _median_s(fn, steps: int) -> float:
  times = []
  for _ in range(steps):
    t = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t)
  return float(np.median(times))


def benchmark_seeds(config, batch_size: int, steps: int, num_seeds: int,
                    labels: np.ndarray | None = None) -> dict:
  """Images/s of S seeds' steps batched (vmap) and sequential, and their ratio (> 1: batching
  pays). images_per_s counts every seed's images: S x batch_size per (batched) step."""
  device = jax.local_devices()[:1]
  cfg = StepConfig.from_config(config)
  body = step_body(config, cfg)
  size = config.model.image_size
  images = np.random.default_rng(0).integers(0, 256, (1, batch_size, size, size, 3),
                                             dtype=np.uint8)
  batch = {"image": images} if labels is None else {"image": images, "labels": labels}
  states = []
  for seed in range(num_seeds):
    c = config.copy_and_resolve_references()
    c.seed = seed
    states.append(create_train_state(c, objective=cfg.objective))
  stacked = jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *states)
  batched = jax.pmap(jax.vmap(body, in_axes=(0, None)), axis_name=AXIS, devices=device)
  single = jax.pmap(body, axis_name=AXIS, devices=device)
  rstacked = replicate(stacked, device)
  rstates = [replicate(s, device) for s in states]

  def run_batched():
    nonlocal rstacked
    rstacked, metrics = batched(rstacked, batch)
    return metrics

  def run_sequential():
    out = []
    for i, s in enumerate(rstates):
      rstates[i], metrics = single(s, batch)
      out.append(metrics)
    return out

  t = time.perf_counter()
  jax.block_until_ready(run_batched())
  compile_batched_s = time.perf_counter() - t
  t = time.perf_counter()
  jax.block_until_ready(run_sequential())
  compile_sequential_s = time.perf_counter() - t
  batched_s, sequential_s = _median_s(run_batched, steps), _median_s(run_sequential, steps)
  images = num_seeds * batch_size
  return {"model": config.model.name, "arch": config.model.arch, "num_seeds": num_seeds,
          "batch_size": batch_size, "platform": device[0].platform,
          "device_kind": device[0].device_kind,
          "batched_images_per_s": images / batched_s,
          "sequential_images_per_s": images / sequential_s,
          "batched_over_sequential": sequential_s / batched_s,
          "batched_step_ms": batched_s * 1e3, "sequential_steps_ms": sequential_s * 1e3,
          "compile_batched_s": compile_batched_s,
          "compile_sequential_s": compile_sequential_s, "timed_steps": steps}
