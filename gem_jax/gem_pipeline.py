"""GEM's two-stage pipeline in one call, each stage resumable (docs/design.md stages 2-7).

    <workdir>/warmup/   stage 1: the β-VAE branch with A = I (checkpoints, samples, metrics)
    <workdir>/scores/   stage 2: MLLM (or oracle SIMULATION) scores of the first N images,
                        through the append-only answer cache
    <workdir>/graph/    stage 3: alignment.json, somers_d.npy, prior.npy and prior.json (the
                        graph A_0 is built from: config.gem.prior), a0.npy and their heatmaps
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
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from gem_jax.config_checks import validate_config
from gem_jax.data import VALIDATION, get_dataset, load_examples, validation_rows
from gem_jax.data.pipeline import split_size
from gem_jax.data.validation import has_own_validation
from gem_jax.evaluation import reader_steerability
from gem_jax.files import atomic_save_npy, atomic_write_json
from gem_jax.metrics.score_reader import score_reader
from gem_jax.models import fold_into_decoder
from gem_jax.models.disgraph import edge_mask, node_mask_from_alignment
from gem_jax.pipeline_figures import latent_order_truth, write_figures
from gem_jax.pipeline_settings import (
  ADDED_STAGE_KEYS,
  GUIDANCE_KEYS,
  REMOTE_BACKENDS,
  STEER_KEYS,
  alignment_hints,
  array_digest,
  attribute_names,
  graph_values,
  guide_rows,
  guided_latents,
  guided_stages,
  prior_method,
  scoring_values,
  stage4_config,
  stage4_values,
  steered_stages,
  truth_split,
  warmup_config,
  warmup_id,
  warmup_values,
)
from gem_jax.relations import (
  Alignment,
  AlignmentQuality,
  WeakAlignmentError,
  align_latents,
  alignment_quality,
  fixed_alignment,
  initial_graph,
  quality_from_json,
  somers_d,
)
from gem_jax.relations.discovery import Prior, find_prior
from gem_jax.scorers.prompt import MAX_SCORE
from gem_jax.scoring import ScoringOptions, score_images
from gem_jax.stages import StageMismatchError, check_stage, config_values, write_stage
from gem_jax.train import checkpoints, distributed, train_and_evaluate
from gem_jax.train.guide_batches import GuideSet
from gem_jax.train.run_lock import run_lock
from gem_jax.train.state import make_graph_state
from gem_jax.trained_model import TrainedModel, load

__all__ = ["run_gem", "run_shared_stages", "run_stage4", "Stage4Start", "warmup_config",
           "compensated_start", "ScoringIncompleteError", "StageMismatchError",
           "WeakAlignmentError", "check_alignment", "guided_stages", "latent_order_truth",
           "write_figures", "attribute_names", "REMOTE_BACKENDS", "make_guide",
           "stage4_config"]

TRUTH_IMAGES = 1_000  # test images on which the alignment is checked against true levels


class ScoringIncompleteError(RuntimeError):
  """Too few scored images got a valid answer (config.gem.min_valid_fraction)."""


def make_guide(config, examples: dict, scores: np.ndarray) -> GuideSet:
  """The guided rows of the scored images and their scores."""
  rows, _ = guide_rows(config, len(scores))
  return GuideSet.from_scores(examples["image"], scores, attribute_names(config),
                              guided_latents(config), MAX_SCORE, rows)


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


def run_warmup(config, workdir: Path, guide: GuideSet | None = None,
               inputs: dict | None = None) -> None:
  """Stage 1 into workdir (resumed; skipped when its record says done by these settings);
  guided by `guide` (the scored images, named in `inputs`) when given."""
  wc = warmup_config(config)
  values, inputs = warmup_values(config), inputs or {}
  finished = checkpoints.reached(workdir, wc.train.num_steps)  # every process reads
  if _is_done(workdir, "warm-up", values, inputs, finished, added=ADDED_STAGE_KEYS):
    logging.info("warm-up done (%s), skipping", workdir)
    return
  _record(workdir, "warm-up", values, inputs, complete=False)
  train_and_evaluate(wc, workdir, resume=True, guide=guide)
  _record(workdir, "warm-up", values, inputs, complete=True)


def run_scoring(config, workdir: Path, examples: dict) -> np.ndarray:
  """Scores int32 [N, n] of the N images in `examples` (the first of config.data.split):
  `gem_jax.scoring.score_images`, through the answer cache <workdir>/score_cache.jsonl, into
  <workdir>/scores.npy and scores.json (the schema of docs/scorers.md). The oracle (a
  SIMULATION) reads the data set's labels (`DatasetSpec.oracle_labels`) and errs as
  config.gem.scorer.accuracy and error_model say (docs/scorers.md)."""
  sc = config.gem.scorer
  labels, label_names = get_dataset(config.data).oracle_labels(examples)
  options = ScoringOptions(
      backend=sc.backend, out=str(workdir), model=sc.model, base_url=sc.base_url,
      dataset=config.data.name, data_config=config.data.get("config"),
      split=config.data.split, attributes=attribute_names(config),
      num_images=len(examples["image"]), accuracy=sc.accuracy,
      error_model=sc.get("error_model", "uniform"), seed=config.seed,
      concurrency=sc.concurrency, replay_path=sc.replay_path)
  return score_images(options, examples["image"], labels, label_names).scores


def run_alignment(config, workdir: Path, warmup_dir: Path, images: np.ndarray,
                  scores: np.ndarray) -> tuple[Alignment, np.ndarray, np.ndarray, AlignmentQuality]:
  """(alignment, S [n, n], A_0 [d, d], quality); reuses a saved alignment made from the same
  warm-up and scores (its stage record says which). Unguided: the Hungarian match on all scored
  images, checked on them; guided: the latents fixed up front, checked on the held-out scored
  images; both checked against the true levels of TRUTH_IMAGES test images where the data set
  knows them (`alignment_quality`)."""
  names = attribute_names(config)
  guided = "warmup" in guided_stages(config)
  values = graph_values(config)
  inputs = {"warmup": warmup_id(config), "scores": array_digest(scores)}
  path = workdir / "alignment.json"
  model = None
  if _is_done(workdir, "alignment", values, inputs, path.exists(), added=ADDED_STAGE_KEYS):
    saved = json.loads(path.read_text())
    alignment, quality = Alignment.from_json(saved), quality_from_json(saved.get("quality"))
    s, a0 = np.load(workdir / "somers_d.npy"), np.load(workdir / "a0.npy")
    if quality is None:  # saved by an earlier version: measure it, keep the rest
      logging.info("%s holds no alignment quality (an earlier version): measuring it", path)
      model = load(str(warmup_dir))
      quality = _quality(config, model, alignment, model.encode(images)[0], scores, guided)
      distributed.on_main(lambda: atomic_write_json(path, {**saved,
                                                           "quality": quality.to_json()}),
                          f"saving the alignment quality in {workdir}")
    return alignment, s, a0, quality
  model = load(str(warmup_dir))  # on every process, as all restore
  mu, _ = model.encode(images)
  alignment = (fixed_alignment(mu, scores, names, guided_latents(config)) if guided
               else align_latents(mu, scores, names))
  quality = _quality(config, model, alignment, mu, scores, guided)
  s, prior, a0 = prior_and_a0(config, scores, alignment)

  def save():
    atomic_save_npy(workdir / "somers_d.npy", s)
    atomic_save_npy(workdir / "prior.npy", prior.matrix.astype(np.float32))
    atomic_write_json(workdir / "prior.json", prior.to_json(names))
    atomic_save_npy(workdir / "a0.npy", a0)
    atomic_write_json(path, {**alignment.to_json(), "quality": quality.to_json()})
    write_stage(workdir, "alignment", values, inputs, complete=True)

  distributed.on_main(save, f"saving the alignment in {workdir}")
  return alignment, s, a0, quality


def prior_and_a0(config, scores: np.ndarray,
                 alignment: Alignment) -> tuple[np.ndarray, Prior, np.ndarray]:
  """(S [n, n], the prior [n, n] config.gem.prior picks (`find_prior`: S itself, or S on the
  skeleton PC / GES / DirectLiNGAM find in the scores), A_0 [d, d] = `initial_graph` of it)
  from int scores [N, n] (-1 = missing) and the latent <-> attribute alignment."""
  s = np.asarray(somers_d(scores))
  prior = find_prior(scores, prior_method(config), s, seed=config.seed)
  if prior.graph is not None:
    kept = np.count_nonzero(prior.matrix[~np.eye(len(s), dtype=bool)])
    logging.info("prior %s (%s) on %d complete rows (%d dropped), %.2f s: S kept on %d of %d "
                 "ordered pairs", prior.method, prior.settings, prior.rows_used,
                 prior.rows_dropped, prior.seconds, kept, len(s) * (len(s) - 1))
  return s, prior, initial_graph(prior.matrix, alignment, config.model.latent_dim)


def _quality(config, model: TrainedModel, alignment: Alignment, mu: np.ndarray,
             scores: np.ndarray, guided: bool) -> AlignmentQuality:
  """`alignment_quality` on the held-out scored images (guided) or all of them (unguided: the
  Hungarian match's own), and on the true levels where the data set knows them."""
  if guided:
    rows = guide_rows(config, len(scores))[1]
    checked_on = f"{len(rows)} held-out scored images (never guided)"
  else:
    rows = np.arange(len(scores))
    checked_on = f"all {len(scores)} scored images (the Hungarian match's own)"
  return alignment_quality(alignment, mu[rows], scores[rows], config.gem.min_alignment,
                           checked_on, *_truth_codes(config, model,
                                                     list(alignment.attribute_names)))


def _truth_images(config, num: int) -> dict:
  """The first `num` (at most the split's) examples of `truth_split(config)`; a carved
  validation split is checked to miss the scored images (`validation_rows`)."""
  split = truth_split(config)
  if split == VALIDATION and not has_own_validation(config.data):
    validation_rows(config.data, config.gem.num_scored_images)
  return load_examples(config.data, split, min(num, split_size(config.data, split)))


def _truth_codes(config, model: TrainedModel, names: list[str]) -> tuple:
  """(mu [M, d], true levels [M, n], description) of TRUTH_IMAGES images of the truth split
  (`truth_split`) where the data set knows its true factors, else (None, None, None)."""
  spec = get_dataset(config.data)
  if not spec.labels_are_factors:
    return None, None, None
  examples = _truth_images(config, TRUTH_IMAGES)
  levels = spec.true_levels(examples, names)
  if levels is None:
    return None, None, None
  return (model.encode(examples["image"])[0], levels,
          f"true levels of {len(levels)} '{truth_split(config)}' images")


def check_alignment(config, quality: AlignmentQuality) -> tuple[str, ...]:
  """The attributes whose latent does not carry them (`is_carried`: a Spearman with the scores
  below config.gem.min_alignment, or a runner-up latent that orders the scores better), logged
  with the quality table; raises their WeakAlignmentError unless
  config.gem.accept_weak_alignment (then they are returned, to be recorded)."""
  quality = quality.with_threshold(float(config.gem.min_alignment))
  logging.info("%s", quality.table())
  weak = tuple(r.attribute for r in quality.weak)
  if weak and not config.gem.get("accept_weak_alignment", False):
    raise quality.error(alignment_hints(config))
  if weak:
    reasons = [f"{r.attribute} ({r.weak_reason(quality.min_alignment)})" for r in quality.weak]
    logging.warning("weak alignment accepted (config.gem.accept_weak_alignment): %s; their "
                    "labels say so", "; ".join(reasons))
  return weak


@dataclasses.dataclass(frozen=True)
class Stage4Start:
  """What stages 1-3 hand to stage 4: graph (TrainState.graph: A_0, edge mask, anchor),
  vae_params (the warm-up's), extra_meta (alignment, its quality, S, scorer; saved with the
  checkpoints), examples (the scored images, {'image': uint8 [N, H, W, 3], ...}), inputs
  (what names the warm-up and A_0 in stage 4's record), scores int [N, n], weak: attributes
  accepted below config.gem.min_alignment (recorded)."""

  graph: dict
  vae_params: Any
  extra_meta: dict
  examples: dict
  inputs: dict
  scores: np.ndarray | None = None
  weak: tuple[str, ...] = ()


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
  variants can share them. A guided warm-up needs the scores first; an unguided one runs beside
  a remote scorer. Stops with WeakAlignmentError when an attribute's latent does not carry it
  (`check_alignment`), after everything up to the alignment is saved."""
  root = Path(root)
  examples = load_examples(config.data, config.data.split, config.gem.num_scored_images)
  scores_dir = root / "scores"
  scored = _is_done(scores_dir, "scoring", scoring_values(config), {},
                    (scores_dir / "scores.npy").exists(), redo_incomplete=True,
                    added=ADDED_STAGE_KEYS)
  main = distributed.is_main()  # scores alone, alongside the warm-up when remote
  score_now = lambda: distributed.on_main(lambda: run_scoring_stage(config, scores_dir, examples),
                                          f"the scoring stage in {scores_dir}")
  if "warmup" in guided_stages(config):
    if not scored:
      score_now()
    scores = np.load(scores_dir / "scores.npy")
    run_warmup(config, root / "warmup", make_guide(config, examples, scores),
               {"scores": array_digest(scores)})
  else:
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
      scoring = None
      if main and not scored and config.gem.scorer.backend in REMOTE_BACKENDS:
        scoring = pool.submit(run_scoring_stage, config, scores_dir, examples)
      run_warmup(config, root / "warmup")
      if scoring is not None:
        distributed.on_main(scoring.result, f"the scoring stage in {scores_dir}")
      elif not scored:
        score_now()
    scores = np.load(scores_dir / "scores.npy")
  alignment, s, a0, quality = run_alignment(config, root / "graph", root / "warmup",
                                            examples["image"], scores)
  weak = check_alignment(config, quality)
  warm = checkpoints.restore_raw(root / "warmup")[0]
  mask = edge_mask(node_mask_from_alignment(alignment), config.model.latent_dim)
  graph = make_graph_state(a0, np.asarray(mask, np.float32))
  extra = {"alignment": alignment.to_json(), "alignment_quality": quality.to_json(),
           "accepted_weak_alignment": list(weak), "somers_d": np.asarray(s).tolist(),
           "scorer": json.loads((scores_dir / "scores.json").read_text())}
  return Stage4Start(graph=graph, vae_params=warm["params"]["vae"], extra_meta=extra,
                     examples=examples, scores=scores, weak=weak,
                     inputs={"warmup": warmup_id(config), "a0": array_digest(a0)})


def run_stage4(config, start: Stage4Start, out: str | Path) -> TrainedModel:
  """Stage 4 (GEM) into `out` from the shared stages' start, resumed from its last checkpoint;
  the decoder's first layer is compensated for A_0 when config.gem.compensate_a0; guided when
  'gem' is in config.gem.guidance.stages. Refuses a folder whose record names other settings
  or another warm-up or A_0."""
  out = Path(out)
  config = stage4_config(config)
  guided = "gem" in guided_stages(config)
  values = {**stage4_values(config), **(config_values(config, GUIDANCE_KEYS) if guided else {}),
            **(config_values(config, STEER_KEYS) if "gem" in steered_stages(config) else {})}
  finished = checkpoints.reached(out, config.train.num_steps)  # every process reads
  extra = {"accepted_weak_alignment": list(start.weak)} if start.weak else {}
  if not _is_done(out, "GEM", values, start.inputs, finished, added=ADDED_STAGE_KEYS):
    vae_params = start.vae_params
    if config.gem.compensate_a0:
      vae_params = compensated_start(vae_params, np.asarray(start.graph["a0"]))
    guide = make_guide(config, start.examples, start.scores) if guided else None
    _record(out, "GEM", values, start.inputs, complete=False, **extra)
    train_and_evaluate(config, out, resume=True, graph=start.graph, vae_params=vae_params,
                       extra_meta=start.extra_meta, guide=guide)
    _record(out, "GEM", values, start.inputs, complete=True, **extra)
  return load(str(out))


def run_gem(config, workdir: str | Path) -> TrainedModel:
  """All four stages under one run lock on workdir (the config checked first:
  `gem_jax.config_checks.validate_config`); returns the trained GEM."""
  validate_config(config)
  root = Path(workdir)
  with run_lock(root):
    start = run_shared_stages(config, root)
    model = run_stage4(config, start, root / "gem")
    final_alignment_quality(config, model, start, root / "gem")
    distributed.on_main(lambda: write_figures(config, model, root / "figures"), "the figures")
  return model


def final_alignment_quality(config, model: TrainedModel, start: Stage4Start,
                            out: Path) -> AlignmentQuality:
  """The alignment's quality measured again on the trained GEM (stage 4 trains the encoder
  further): logged and written to out/alignment_quality.json, which `gem_jax.load` reads."""
  mu = model.encode(start.examples["image"])[0]
  quality = _quality(config, model, model.alignment, mu, start.scores,
                     "warmup" in guided_stages(config))
  steered = distributed.on_main(lambda: _with_steerability(config, model, start, quality,
                                                           out.parent), "steerability")
  quality = steered or quality
  logging.info("after GEM (step %d): %s", model.step, quality.table())
  distributed.on_main(lambda: atomic_write_json(out / "alignment_quality.json",
                                                quality.to_json()),
                      f"saving the final alignment quality in {out}")
  model.meta = {**(model.meta or {}), "alignment_quality": quality.to_json()}
  return quality


def _with_steerability(config, model: TrainedModel, start: Stage4Start,
                       quality: AlignmentQuality, root: Path) -> AlignmentQuality:
  """`quality` with each attribute's steerability on config.gem.steerability_images images of
  the truth split, read by the run's score reader (trained on the scored images and scores
  alone, cached in root/score_reader; gem_jax/metrics/score_reader.py); `quality` when it is
  0."""
  num = int(config.gem.get("steerability_images") or 0)
  if not num or start.scores is None:
    return quality
  begin = time.perf_counter()
  reader = score_reader(start.examples["image"], start.scores, attribute_names(config),
                        root / "score_reader", f"score_reader[{len(start.scores)} scored "
                        f"images]", steps=int(config.gem.steerability_reader_steps),
                        seed=config.seed)
  images = _truth_images(config, num)["image"]
  steer = reader_steerability(model, images, reader)
  if steer is None:
    return quality
  on = (f"{reader.name}, {len(images)} '{truth_split(config)}' images, -2 -> +2, >= 1 level; "
        f"{time.perf_counter() - begin:.0f} s with the reader")
  return quality.with_steerability(*steer.by_attribute(), on)


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
