"""GEM's two-stage pipeline in one call, each stage resumable (docs/design.md stages 2-7).

    <workdir>/warmup/   stage 1: the β-VAE branch with A = I (checkpoints, samples, metrics)
    <workdir>/scores/   stage 2: MLLM (or oracle SIMULATION) scores of the first N images,
                        through the append-only answer cache
    <workdir>/graph/    stage 3: alignment.json, somers_d.npy, a0.npy and their heatmaps
    <workdir>/gem/      stage 4: full GEM from the warm-up weights and A_0 (checkpoints, ...)
    <workdir>/figures/  traversals labelled with the aligned attributes, A_0 vs learned A

A restart skips what is done: a finished warm-up is not retrained, cached answers are not
asked again, a saved alignment is reused, and GEM resumes from its last checkpoint. Each stage
folder records what produced it (stage.json, gem_jax/stages.py): a stage made by other settings
or inputs is refused with the changed keys named, an incomplete one (e.g. scoring with too few
valid answers) is redone. One run at a time holds the workdir (gem_jax/train/run_lock.py); the
alignment, S and A_0 are written atomically. When the scorer is remote (openai, gemini) scoring
runs in a thread alongside the warm-up.

Multi-process runs (`gem_jax.train.distributed`): every process trains the warm-up and GEM
(their steps span all processes' devices) and restores checkpoints; process 0 alone decides
whether a stage is done (its answer is broadcast), scores, writes the stage records, the
alignment, S, A_0 and the figures; the others read those from the shared workdir once it says
they are written. A failure on process 0 stops the others with a DistributedError naming the
stage.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from gem_jax.config_checks import validate_config
from gem_jax.data import DatasetSpec, get_dataset, load_examples
from gem_jax.files import atomic_save_npy, atomic_write_json
from gem_jax.models import fold_into_decoder
from gem_jax.models.disgraph import edge_mask, node_mask_from_alignment
from gem_jax.plots import Panel, save_relation_panels, save_traversal_figure
from gem_jax.relations import Alignment, align_latents, initial_graph, somers_d
from gem_jax.scoring import ScoringOptions, parse_attribute_list, score_images
from gem_jax.stages import StageMismatchError, check_stage, config_values, write_stage
from gem_jax.train import checkpoints, distributed, train_and_evaluate
from gem_jax.train.run_lock import run_lock
from gem_jax.train.state import make_graph_state
from gem_jax.trained_model import TrainedModel, load

__all__ = ["run_gem", "run_shared_stages", "run_stage4", "Stage4Start", "warmup_config",
           "compensated_start", "ScoringIncompleteError", "StageMismatchError"]

REMOTE_BACKENDS = ("openai", "gemini")
# What each stage's record names (gem_jax/stages.py): the settings its outputs depend on.
WARMUP_KEYS = ("seed", "data.name", "data.config", "data.split", "model.arch", "model.latent_dim",
               "model.image_size", "model.width", "model.hidden", "model.upsample",
               "model.likelihood", "model.sigma", "model.beta", "train.batch_size",
               "train.learning_rate", "train.adam_b1", "train.adam_b2", "train.grad_clip_norm")
SCORING_KEYS = ("data.name", "data.config", "data.split", "gem.num_scored_images",
                "gem.attributes", "gem.scorer.backend", "gem.scorer.model",
                "gem.scorer.base_url")
SCORING_BACKEND_KEYS = {"oracle": ("seed", "gem.scorer.accuracy"),
                        "replay": ("gem.scorer.replay_path",)}
GRAPH_KEYS = ("gem.attributes", "model.latent_dim")
# Keys added to the records after they first existed, with the value older records were made
# with (so that a run recorded before a key existed still matches).
ADDED_STAGE_KEYS = {"model.arch": "burgess"}
# Settings that do not change what stage 4 computes (num_steps: a longer run continues it).
STAGE4_IGNORED = ("data.data_dir", "train.num_steps", "train.log_every", "train.sample_every",
                  "train.checkpoint_every", "train.keep_checkpoints", "train.num_devices")


class ScoringIncompleteError(RuntimeError):
  """Too few scored images got a valid answer (config.gem.min_valid_fraction)."""


def scoring_values(config) -> dict:
  """The settings the scores depend on (the oracle's also on the seed and its accuracy)."""
  keys = SCORING_KEYS + SCORING_BACKEND_KEYS.get(config.gem.scorer.backend, ())
  return config_values(config, keys)


def stage4_values(config) -> dict:
  """Every setting of stage 4's config except the pipeline's own (gem.*, recorded by the
  shared stages; gem.compensate_a0 kept) and STAGE4_IGNORED."""
  flat = {}

  def walk(node, prefix):
    for k, v in node.items():
      if isinstance(v, dict):
        walk(v, f"{prefix}{k}.")
      else:
        flat[f"{prefix}{k}"] = v
  walk(config.to_dict(), "")
  return {k: v for k, v in sorted(flat.items()) if k not in STAGE4_IGNORED
          and (not k.startswith("gem.") or k == "gem.compensate_a0")}


def array_digest(array) -> str:
  """sha256 of an array's dtype, shape and bytes (hex, 16 characters)."""
  a = np.ascontiguousarray(array)
  head = f"{a.dtype}{a.shape}".encode()
  return hashlib.sha256(head + a.tobytes()).hexdigest()[:16]


def warmup_config(config):
  """The β-VAE branch alone (objective 'beta_vae', A = I, no discriminator) for
  config.gem.warmup_steps, with beta = config.gem.warmup_beta where set."""
  c = config.copy_and_resolve_references()
  c.model.name, c.model.graph_learner, c.model.adversarial = "warmup", False, False
  c.model.objective = "beta_vae"
  c.model.lambda_dis = 1.0
  c.train.num_steps = config.gem.warmup_steps
  c.train.batch_size = config.gem.warmup_batch_size
  c.train.learning_rate = config.gem.warmup_learning_rate
  if config.gem.get("warmup_beta") is not None:
    c.model.beta = float(config.gem.warmup_beta)
  return c


def attribute_names(config) -> list[str]:
  """The n attributes of config.gem.attributes ('bangs,bald,...'), at most one per latent."""
  names = parse_attribute_list(config.gem.attributes)
  if len(names) > config.model.latent_dim:
    raise ValueError(f"{len(names)} attributes but latent_dim={config.model.latent_dim}: "
                     "each attribute needs its own latent")
  return names


def warmup_id(config) -> str:
  """Names the warm-up a later stage was built on: its recorded settings and final step."""
  wc = warmup_config(config)
  values = {k: v for k, v in config_values(wc, WARMUP_KEYS).items()
            if k not in ADDED_STAGE_KEYS or v != ADDED_STAGE_KEYS[k]}
  values = json.dumps(values, sort_keys=True)
  return hashlib.sha256(values.encode()).hexdigest()[:16] + f"@{wc.train.num_steps}"


def _is_done(stage_dir: Path, name: str, values: dict, inputs: dict, has_outputs: bool,
             **kwargs) -> bool:
  """`check_stage` on process 0 (it may record a legacy folder), its answer everywhere."""
  return distributed.main_decides(
      lambda: check_stage(stage_dir, name, values, inputs, has_outputs=has_outputs, **kwargs),
      f"checking the {name} stage in {stage_dir}")


def _record(stage_dir: Path, name: str, values: dict, inputs: dict, complete: bool,
            **extra) -> None:
  """`write_stage` by process 0; the others go on once it is written."""
  distributed.on_main(lambda: write_stage(stage_dir, name, values, inputs, complete, **extra),
                      f"recording the {name} stage in {stage_dir}")


def run_warmup(config, workdir: Path) -> None:
  """Stage 1 into workdir (resumed; skipped when its record says done by these settings)."""
  wc = warmup_config(config)
  values = config_values(wc, WARMUP_KEYS)
  finished = checkpoints.reached(workdir, wc.train.num_steps)  # every process reads
  if _is_done(workdir, "warm-up", values, {}, finished, added=ADDED_STAGE_KEYS):
    logging.info("warm-up done (%s), skipping", workdir)
    return
  _record(workdir, "warm-up", values, {}, complete=False)
  train_and_evaluate(wc, workdir, resume=True)
  _record(workdir, "warm-up", values, {}, complete=True)


def run_scoring(config, workdir: Path, examples: dict) -> np.ndarray:
  """Scores int32 [N, n] of the N images in `examples` (the first of config.data.split):
  `gem_jax.scoring.score_images`, through the answer cache <workdir>/score_cache.jsonl, into
  <workdir>/scores.npy and scores.json (the schema of docs/scorers.md). The oracle reads the
  data set's labels (`DatasetSpec.oracle_labels`)."""
  sc = config.gem.scorer
  labels, label_names = get_dataset(config.data).oracle_labels(examples)
  options = ScoringOptions(
      backend=sc.backend, out=str(workdir), model=sc.model, base_url=sc.base_url,
      dataset=config.data.name, data_config=config.data.get("config"),
      split=config.data.split, attributes=attribute_names(config),
      num_images=len(examples["image"]), accuracy=sc.accuracy, seed=config.seed,
      concurrency=sc.concurrency, replay_path=sc.replay_path)
  return score_images(options, examples["image"], labels, label_names).scores


def run_alignment(config, workdir: Path, warmup_dir: Path, images: np.ndarray,
                  scores: np.ndarray) -> tuple[Alignment, np.ndarray, np.ndarray]:
  """(alignment, S [n, n], A_0 [d, d]); reuses a saved alignment made from the same warm-up
  and scores (its stage record says which)."""
  names = attribute_names(config)
  values = config_values(config, GRAPH_KEYS)
  inputs = {"warmup": warmup_id(config), "scores": array_digest(scores)}
  if _is_done(workdir, "alignment", values, inputs, (workdir / "alignment.json").exists()):
    alignment = Alignment.from_json((workdir / "alignment.json").read_text())
    return alignment, np.load(workdir / "somers_d.npy"), np.load(workdir / "a0.npy")
  mu, _ = load(str(warmup_dir)).encode(images)  # on every process, as all restore
  alignment = align_latents(mu, scores, names)
  s = np.asarray(somers_d(scores))
  a0 = initial_graph(s, alignment, config.model.latent_dim)

  def save():
    atomic_save_npy(workdir / "somers_d.npy", s)
    atomic_save_npy(workdir / "a0.npy", a0)
    atomic_write_json(workdir / "alignment.json", alignment.to_json())
    write_stage(workdir, "alignment", values, inputs, complete=True)

  distributed.on_main(save, f"saving the alignment in {workdir}")
  return alignment, s, a0


@dataclasses.dataclass(frozen=True)
class Stage4Start:
  """What stages 1-3 hand to stage 4: graph (TrainState.graph: A_0, edge mask, anchor),
  vae_params (the warm-up's), extra_meta (alignment, S, scorer; saved with the checkpoints),
  examples (the scored images, {'image': uint8 [N, H, W, 3], ...}), inputs (what names the
  warm-up and A_0 in stage 4's record)."""

  graph: dict
  vae_params: Any
  extra_meta: dict
  examples: dict
  inputs: dict


def run_scoring_stage(config, workdir: Path, examples: dict) -> np.ndarray:
  """Stage 2: `run_scoring`, recorded; fails when fewer than config.gem.min_valid_fraction of
  the images got a valid answer for every attribute (a rerun asks only those again: valid
  answers are in the cache). Multi-process: process 0 alone calls it."""
  values = scoring_values(config)
  write_stage(workdir, "scoring", values, {}, complete=False)
  scores = run_scoring(config, workdir, examples)
  valid, total = int((scores >= 0).all(axis=1).sum()), len(scores)
  need = float(config.gem.get("min_valid_fraction", 0.9))
  complete = valid >= need * total
  write_stage(workdir, "scoring", values, {}, complete=complete, valid_images=valid,
              num_images=total)
  if not complete:
    raise ScoringIncompleteError(
        f"scoring in {workdir}: {valid} of {total} images ({valid / max(total, 1):.1%}) got a "
        f"valid answer for every attribute, fewer than config.gem.min_valid_fraction="
        f"{need}; see {workdir}/scores.json and the log for the failures. Rerunning asks only "
        "the images without a valid answer again.")
  return scores


def run_shared_stages(config, root: str | Path) -> Stage4Start:
  """Stages 1-3 under root (warmup/, scores/, graph/), each resumed or skipped when its record
  says done by the same settings. They depend on the warm-up and scorer settings only, so GEM
  variants can share them."""
  root = Path(root)
  examples = load_examples(config.data, config.data.split, config.gem.num_scored_images)
  scores_dir = root / "scores"
  scored = _is_done(scores_dir, "scoring", scoring_values(config), {},
                    (scores_dir / "scores.npy").exists(), redo_incomplete=True)
  main = distributed.is_main()  # scores alone, alongside the warm-up when remote
  with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
    scoring = None
    if main and not scored and config.gem.scorer.backend in REMOTE_BACKENDS:
      scoring = pool.submit(run_scoring_stage, config, scores_dir, examples)
    run_warmup(config, root / "warmup")
    if not scored:
      distributed.on_main(scoring.result if scoring is not None else
                          lambda: run_scoring_stage(config, scores_dir, examples),
                          f"the scoring stage in {scores_dir}")
  scores = np.load(scores_dir / "scores.npy")
  alignment, s, a0 = run_alignment(config, root / "graph", root / "warmup",
                                   examples["image"], scores)
  warm = checkpoints.restore_raw(root / "warmup")[0]
  mask = edge_mask(node_mask_from_alignment(alignment), config.model.latent_dim)
  graph = make_graph_state(a0, np.asarray(mask, np.float32))
  extra = {"alignment": alignment.to_json(), "somers_d": np.asarray(s).tolist(),
           "scorer": json.loads((scores_dir / "scores.json").read_text())}
  return Stage4Start(graph=graph, vae_params=warm["params"]["vae"], extra_meta=extra,
                     examples=examples,
                     inputs={"warmup": warmup_id(config), "a0": array_digest(a0)})


def run_stage4(config, start: Stage4Start, out: str | Path) -> TrainedModel:
  """Stage 4 (GEM) into `out` from the shared stages' start, resumed from its last checkpoint;
  the decoder's first layer is compensated for A_0 when config.gem.compensate_a0. Refuses a
  folder whose record names other settings or another warm-up or A_0."""
  out = Path(out)
  values = stage4_values(config)
  finished = checkpoints.reached(out, config.train.num_steps)  # every process reads
  if not _is_done(out, "GEM", values, start.inputs, finished, added=ADDED_STAGE_KEYS):
    vae_params = start.vae_params
    if config.gem.compensate_a0:
      vae_params = compensated_start(vae_params, np.asarray(start.graph["a0"]))
    _record(out, "GEM", values, start.inputs, complete=False)
    train_and_evaluate(config, out, resume=True, graph=start.graph, vae_params=vae_params,
                       extra_meta=start.extra_meta)
    _record(out, "GEM", values, start.inputs, complete=True)
  return load(str(out))


def run_gem(config, workdir: str | Path) -> TrainedModel:
  """All four stages under one run lock on workdir (the config checked first:
  `gem_jax.config_checks.validate_config`); returns the trained GEM."""
  validate_config(config)
  root = Path(workdir)
  with run_lock(root):
    start = run_shared_stages(config, root)
    model = run_stage4(config, start, root / "gem")
    distributed.on_main(lambda: write_figures(config, model, root / "figures",
                                              start.examples["image"][0]), "the figures")
  return model


def compensated_start(vae_params, a0: np.ndarray):
  """Warm-up VAE params for stage 4 whose decoder, fed z_rel = A_0^T z, computes what the
  warm-up's computed from z (first dense layer A_0^-1 W1), so that switching A from I to A_0
  does not by itself push the learner back towards I (config.gem.compensate_a0).

  Raises:
    ValueError: A_0 [d, d] is singular (numerically: condition number over 1e6).
  """
  cond = np.linalg.cond(a0)
  if not np.isfinite(cond) or cond > 1e6:
    raise ValueError(f"config.gem.compensate_a0 needs an invertible A_0; this A_0 has condition "
                     f"number {cond:.3g}. Set config.gem.compensate_a0=False to start stage 4 "
                     "from the warm-up weights as they are.")
  return fold_into_decoder(vae_params, np.linalg.inv(a0).astype(np.float32))


def write_figures(config, model: TrainedModel, out: Path, image: np.ndarray) -> None:
  """Traversals labelled by attribute; A_0 next to the learned A (and the truth)."""
  values = np.linspace(-2.5, 2.5, 9)
  save_traversal_figure(out / "traversals.png", model.traverse_all(image, values), values,
                        model.latent_labels(), title=f"{config.model.name} @ {model.step}")
  labels = model.latent_labels()
  a0 = np.asarray(model.graph_state["a0"])
  panels = [Panel(a0, "A_0 (from Somers' D)"), Panel(np.asarray(model.adjacency), "learned A")]
  truth = latent_order_truth(get_dataset(config.data), model)
  if truth is not None:
    panels.append(Panel(truth, "true graph (latent order)"))
  save_relation_panels(out / "graphs.png", panels, labels, title="DisGraph, row -> column",
                       subtitle=_simulation_note(model))


def latent_order_truth(spec: DatasetSpec, model: TrainedModel) -> np.ndarray | None:
  """The data set's true graph permuted into latent order with the alignment's signs, or None
  (no true graph, or a model without alignment)."""
  if spec.true_graph is None or model.alignment is None:
    return None
  names = list(spec.attribute_names)
  al = model.alignment
  out = np.eye(model.latent_dim, dtype=np.float32)
  index = {name: names.index(name) for name in al.attribute_names}
  for a, name_a in enumerate(al.attribute_names):
    for b, name_b in enumerate(al.attribute_names):
      if a != b:
        k, l = al.latent_of_attribute[a], al.latent_of_attribute[b]
        out[k, l] = al.signs[a] * al.signs[b] * spec.true_graph[index[name_a], index[name_b]]
  return out


def _simulation_note(model: TrainedModel) -> str:
  scorer = (model.meta or {}).get("scorer", {})
  return "scores: SIMULATED (oracle)" if scorer.get("is_simulation") else ""
