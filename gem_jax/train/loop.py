"""The training loop: input pipeline -> pmapped train step -> metrics, samples, checkpoints."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import jax
import numpy as np
from tqdm.auto import tqdm

from gem_jax import objectives
from gem_jax.data import load_examples, make_train_iterator
from gem_jax.data.pipeline import split_size
from gem_jax.files import atomic_write_json
from gem_jax.objectives.gem_sparse import graph_l1
from gem_jax.plots import save_image
from gem_jax.train import checkpoints, distributed
from gem_jax.train.checkpoints import MODEL_KIND
from gem_jax.train.guide_batches import GuideSet
from gem_jax.train.metric_writer import MetricWriter, NullWriter
from gem_jax.train.run_lock import run_lock
from gem_jax.train.samples import sample_grid
from gem_jax.train.state import TrainState, create_train_state
from gem_jax.train.step import StepConfig, make_pmapped_step, replicate, unreplicate


class NonFiniteLossError(FloatingPointError):
  """A step's loss, gradients or updated weights were NaN/inf; the message names the step and
  the last good checkpoint."""


class RunExistsError(FileExistsError):
  """The workdir already holds checkpoints and --resume was not given."""


def training_devices(train_config) -> list[jax.Device]:
  """The devices the pmapped step spans: config.train.num_devices (0: all) local devices of
  every process, ordered by (process, local device); the same list on every process."""
  local = jax.local_device_count()
  wanted = train_config.num_devices or local
  if wanted > local:
    raise ValueError(f"config.train.num_devices={wanted} but only {local} local devices exist")
  ordered = sorted(jax.devices(), key=lambda d: (d.process_index, d.id))
  by_process = {}
  for d in ordered:
    by_process.setdefault(d.process_index, []).append(d)
  return [d for group in by_process.values() for d in group[:wanted]]


def checkpoint_meta(config, extra: dict | None = None) -> dict:
  """What a checkpoint records beside the state: enough to rebuild the model alone."""
  return {"kind": MODEL_KIND, "model": config.model.to_dict(), "config": config.to_dict(),
          **(extra or {})}


def resolve_config(config):
  """The config with what the data set and the prior decide filled in: β-TCVAE's dataset_size
  N (when 0) from the training split; an unset model.graph_l1 as the prior's weight
  (`gem_sparse.graph_l1`), so that checkpoints record the weight trained with. Returns a copy
  when something changed."""
  if "graph_l1" in config.model and config.model.graph_l1 is None:
    config = config.copy_and_resolve_references()
    config.model.graph_l1 = graph_l1(config)
  objective = objectives.get(config.model.objective)
  if objective.needs_dataset_size and not config.model.dataset_size:
    config = config.copy_and_resolve_references()
    config.model.dataset_size = split_size(config.data)
    logging.info("%s: config.model.dataset_size = %d (the %r split)", objective.name,
                 config.model.dataset_size, config.data.split)
  return config


def _fixed_images(config, num: int = 8) -> np.ndarray:
  return load_examples(config.data, config.data.eval_split, num)["image"]


def _open_or_resume(config, workdir: Path, resume: bool, state: TrainState, manager):
  """`state` for a fresh run, or the newest readable checkpoint's (resume; the damaged newer
  step folders it skipped are moved to <workdir>/damaged_checkpoints/)."""
  latest = manager.latest_step()
  if latest is not None and not resume:
    raise RunExistsError(f"{workdir} already holds checkpoints (latest step {latest}); pass "
                         "--resume to continue that run or choose another --workdir")
  if latest is None:
    logging.info("%s holds no checkpoint yet: starting a fresh run at step 0", workdir)
    return state
  restored, _ = checkpoints.restore_state(manager.directory, state,
                                          expected_meta={"kind": MODEL_KIND,
                                                         "model": config.model.to_dict()})
  distributed.barrier("gem_jax: restored")  # every process has read before any folder moves
  if distributed.is_main():
    checkpoints.set_aside_newer(manager, int(restored.step))
  distributed.barrier("gem_jax: set aside")
  manager.reload()
  logging.info("resumed %s at step %d", workdir, int(restored.step))
  return restored


def train_and_evaluate(config, workdir: str | Path, resume: bool = False,
                       graph: dict | None = None, vae_params=None,
                       extra_meta: dict | None = None,
                       guide: GuideSet | None = None) -> TrainState:
  """Trains for config.train.num_steps; returns the final (unreplicated) state.

  graph / vae_params: see `create_train_state` (A_0 and warm-up weights for GEM).
  extra_meta: JSON saved with every checkpoint (e.g. the latent alignment).
  guide: the scored images of MLLM-guided training (each step also reads
  config.gem.guidance.batch_size of them; `gem_jax.objectives.guidance`); None: unguided.
  Writes <workdir>/config.json, metrics.jsonl, tensorboard/, samples/ and checkpoints/ (and
  damaged_checkpoints/ when a resume skipped a damaged step). resume: continue from the newest
  checkpoint that reads; without it a workdir holding checkpoints is a RunExistsError. The run
  holds <workdir>/.run.lock throughout (a second run on it is a RunLockedError at once).
  Multi-process (`gem_jax.train.distributed`): every process calls this with the same
  arguments; process 0 writes all but the checkpoints, which all processes save together.
  """
  workdir = Path(workdir)
  with run_lock(workdir):
    config = resolve_config(config)
    manager = checkpoints.make_manager(workdir / "checkpoints",
                                       max_to_keep=config.train.keep_checkpoints,
                                       save_interval_steps=config.train.checkpoint_every)
    peer_lost = False
    try:
      return _train(config, workdir, resume, graph, vae_params, extra_meta, guide, manager)
    except Exception as e:
      # When another process is gone, orbax's closing barrier would wait for it until its
      # heartbeat times out; the checkpoint in flight is left unfinished.
      peer_lost = distributed.is_lost_peer(e)
      raise
    finally:
      if not peer_lost:  # waits for the checkpoint in flight, then stops orbax's threads
        manager.close()


def _train(config, workdir: Path, resume: bool, graph, vae_params, extra_meta,
           guide: GuideSet | None, manager) -> TrainState:
  """train_and_evaluate's body, under the run lock; the caller closes `manager`."""
  # The objective and step switches, built once.
  cfg = StepConfig.from_config(config, None if guide is None else guide.latents)
  state = _open_or_resume(config, workdir, resume,
                          create_train_state(config, graph, vae_params, cfg.objective),
                          manager)
  main = distributed.is_main()  # process 0 writes everything but the checkpoints
  if main:
    atomic_write_json(workdir / "config.json", config.to_dict())
  devices = training_devices(config.train)
  step_fn = make_pmapped_step(config, devices, cfg)
  start = int(state.step)
  batches = make_train_iterator(config.data, global_batch=config.train.batch_size,
                                num_devices=len(devices) // jax.process_count(),
                                seed=config.seed,
                                start_step=start, image_size=config.model.image_size,
                                label_key=config.data.get("label_key"))
  if guide is not None:
    batches = _with_guide(batches, guide, config, start, len(devices) // jax.process_count())
  fixed = _fixed_images(config) if main else None
  writer = MetricWriter(workdir, resume_step=start) if main else NullWriter()
  meta = checkpoint_meta(config, extra_meta)
  rstate = replicate(state, devices)
  pending = None
  t0, last_log_step = time.perf_counter(), start
  try:
    for step in tqdm(range(start + 1, config.train.num_steps + 1), initial=start,
                     total=config.train.num_steps, desc="train", unit="step",
                     disable=not main):
      rstate, metrics = step_fn(rstate, next(batches))
      if pending is not None:
        _check_finite(pending, step - 1, manager)
      pending = metrics
      if step % config.train.log_every == 0 or step == config.train.num_steps:
        _check_finite(pending, step, manager)
        elapsed = time.perf_counter() - t0
        scalars = dict(unreplicate(jax.device_get(metrics)))
        scalars["images_per_s"] = (step - last_log_step) * config.train.batch_size / elapsed
        writer.write_scalars(step, scalars)
        t0, last_log_step = time.perf_counter(), step
      if main and (step % config.train.sample_every == 0 or step == config.train.num_steps):
        _write_samples(config, cfg, unreplicate(rstate), fixed, workdir, step, writer)
      if step % config.train.checkpoint_every == 0 or step == config.train.num_steps:
        _check_finite(pending, step, manager)
        checkpoints.save(manager, step, unreplicate(rstate), meta,
                         force=step == config.train.num_steps)
  finally:
    writer.close()
  return unreplicate(rstate)


def _with_guide(batches, guide: GuideSet, config, start: int, num_devices: int):
  """The data batches, each with step's guide batch (`GuideSet.batch`) added."""
  for step, batch in enumerate(batches, start=start + 1):
    yield {**batch, **guide.batch(step, config.gem.guidance.batch_size, num_devices,
                                  config.seed)}


def _write_samples(config, cfg: StepConfig, state: TrainState, fixed: np.ndarray,
                   workdir: Path, step: int, writer: MetricWriter) -> None:
  """samples/step_<step>.png and its TensorBoard image: the grid of `sample_grid`."""
  grid = sample_grid(config, cfg.objective, state, fixed, config.seed)
  save_image(workdir / "samples" / f"step_{step:07d}.png", grid)
  writer.write_image(step, "samples", grid)


def _check_finite(metrics, step: int, manager) -> None:
  """Stops the run when `step` was non-finite (metrics['nonfinite'], replicated)."""
  if int(np.asarray(jax.device_get(metrics["nonfinite"]))[0]):
    manager.wait_until_finished()
    last = manager.latest_step()
    where = f"{manager.directory}/{last}" if last is not None else "none saved yet"
    raise NonFiniteLossError(
        f"training became non-finite at step {step} (its loss, gradients or updated weights "
        "held NaN or inf); training stopped and the weights were not updated by that step "
        f"nor saved after it. Last good checkpoint: {where}. "
        "Try a lower config.train.learning_rate or config.train.grad_clip_norm.")
