"""`preflight`: what a run needs beyond its config, checked in seconds before any work.

    lines = preflight(config, workdir)                # raises at the first missing piece
    lines = preflight(config, workdir, dry_run=True)  # no request: the scorer's estimated cost

1. Data (`check_data`): the data set is there (`DatasetSpec.survey` reads split sizes without
   preparing anything and raises the builders' DataNotFoundError messages) and large enough:
   config.data.split and eval_split exist; the training split holds each stage's batch and,
   for GEM, the config.gem.num_scored_images images to score; the evaluation split holds the
   SAMPLE_IMAGES images of the sample grids; its images are config.model.image_size pixels
   wide. Every shortfall is one line of a ConfigError.
2. GEM's scorer (`check_scorer`), unless <workdir>/scores/ already holds complete scores:
   the oracle needs labels for every attribute, replay its file; openai and gemini are built
   (ScorerAuthError naming the key's environment variable when it is unset) and their endpoint
   must answer one models-list request (`gem_jax.scorers.list_models`: no image, no tokens;
   ScorerRequestError naming the endpoint when it does not). A dry run sends nothing and
   reports the estimated cost of the scoring instead.
Nothing is written; the returned lines say what was found.
"""
from __future__ import annotations

import os
from pathlib import Path

from gem_jax.config_checks import ConfigError, is_two_stage, lookup, problem
from gem_jax.data import DataConfigError, DataSurvey, get_dataset
from gem_jax.gem_pipeline import REMOTE_BACKENDS
from gem_jax.scorers import ScorerAuthError, default_model, list_models, make_scorer
from gem_jax.scoring import (
  ScoringError,
  ScoringOptions,
  check_options,
  estimate_request_cost,
  parse_attribute_list,
  validate_attributes,
)
from gem_jax.stages import read_stage

__all__ = ["SAMPLE_IMAGES", "check_data", "check_scorer", "preflight", "split_problems"]

SAMPLE_IMAGES = 8  # evaluation images of the sample grids (gem_jax/train/loop.py, _fixed_images)
SCORES_FILE = Path("scores") / "scores.npy"  # a GEM run's scores (gem_jax/gem_pipeline.py)


def _sizes_text(survey: DataSurvey) -> str:
  """'train 15, test 1 images (image folder /x, 16 files)'."""
  sizes = ", ".join(f"{name} {n}" for name, n in survey.split_sizes.items())
  return f"{sizes} images ({survey.source})"


def _batch_keys(config) -> tuple[str, ...]:
  return ("train.batch_size", "gem.warmup_batch_size") if is_two_stage(config) else (
      "train.batch_size",)


def _missing_splits(config, survey: DataSurvey) -> list[str]:
  return [problem(key, lookup(config, key), f"no such split; the data set has "
                  f"{_sizes_text(survey)}")
          for key in ("data.split", "data.eval_split")
          if lookup(config, key) not in survey.split_sizes]


def _training_split_problems(config, survey: DataSurvey) -> list[str]:
  """Each stage's batch and GEM's scored images must fit in the training split."""
  split = config.data.split
  size = survey.split_sizes.get(split)
  if size is None:
    return []
  keys = _batch_keys(config) + (("gem.num_scored_images",) if is_two_stage(config) else ())
  want = f"must be at most the {size} images of the {split!r} split ({survey.source})"
  values = {key: lookup(config, key) for key in keys}
  return [problem(key, value, want) for key, value in values.items()
          if isinstance(value, int) and value > size]


def split_problems(config, survey: DataSurvey) -> list[str]:
  """What the data set cannot give the run (one line each, `check_data`); [] when it can."""
  out = _missing_splits(config, survey) + _training_split_problems(config, survey)
  evaluation = survey.split_sizes.get(config.data.eval_split)
  if evaluation is not None and evaluation < SAMPLE_IMAGES:
    out.append(problem("data.eval_split", config.data.eval_split,
                       f"must hold >= {SAMPLE_IMAGES} images (the sample grids'); it holds "
                       f"{evaluation} ({survey.source})"))
  if survey.image_size != config.model.image_size:
    out.append(problem("model.image_size", config.model.image_size,
                       f"must be the data set's image size, {survey.image_size} "
                       f"({survey.source})"))
  return out


def check_data(config) -> DataSurvey:
  """The data set's survey; raises DataNotFoundError (absent files), CelebaFormatError (a
  malformed partition list) or ConfigError (`split_problems`, an unknown builder config)."""
  try:
    survey = get_dataset(config.data).survey(config.data)
  except DataConfigError as e:
    raise ConfigError([str(e)]) from None
  problems = split_problems(config, survey)
  if problems:
    raise ConfigError(problems)
  return survey


def _check_offline(config, attributes: list[str]) -> list[str]:
  """The oracle: the data set's labels name every attribute; replay: its file exists."""
  sc = config.gem.scorer
  spec = get_dataset(config.data)
  if sc.backend == "oracle" and not spec.attribute_names:
    raise ConfigError([problem("gem.scorer.backend", "oracle", "the oracle SIMULATION reads "
                               f"the data set's labels and {spec.name} has none; use openai, "
                               "gemini or replay")])
  options = ScoringOptions(backend=sc.backend, out="scores", dataset=spec.name,
                           attributes=attributes, num_images=config.gem.num_scored_images)
  try:
    check_options(options)
    if sc.backend == "oracle":  # a labelled folder's concepts are known from config.data only
      validate_attributes(attributes, spec.attribute_names, spec.name)
  except ScoringError as e:
    raise ConfigError([problem("gem.attributes", config.gem.attributes, str(e))]) from None
  if sc.backend == "replay" and not os.path.exists(os.path.expanduser(sc.replay_path)):
    raise ConfigError([problem("gem.scorer.replay_path", sc.replay_path, "no such file")])
  kind = "an offline SIMULATION" if sc.backend == "oracle" else "recorded scores"
  return [f"scorer: {sc.backend} ({kind}; no network)"]


def _estimate(config, attributes: list[str]) -> list[str]:
  """The dry run's lines: the scoring's estimated cost, and whether the key is set."""
  sc = config.gem.scorer
  size = config.model.image_size
  est = estimate_request_cost(sc.backend, default_model(sc.backend, sc.model),
                              config.gem.num_scored_images, attributes, base_url=sc.base_url,
                              image_size=(size, size))
  lines = [f"scorer: {est}; answers already in the run's cache are not sent again"]
  try:
    make_scorer(sc.backend, sc.model, base_url=sc.base_url, progress=False)
  except ScorerAuthError as e:
    lines.append(f"scorer: a real run would stop here: {e}")
  return lines


def _probe(config) -> list[str]:
  """Builds the API scorer (its key) and sends it one models-list request."""
  sc = config.gem.scorer
  scorer = make_scorer(sc.backend, sc.model, base_url=sc.base_url,
                       concurrency=sc.concurrency, progress=False)
  models = list_models(scorer)
  line = f"scorer: {scorer.backend}:{scorer.model} at {scorer.endpoint} answered"
  if models is None:
    return [line + " (without a models list)"]
  if scorer.model not in models:
    return [line + f"; its models list does not name {scorer.model!r} (it names "
            f"{', '.join(models[:5]) or 'none'}): scoring may fail"]
  return [line + f" and lists {scorer.model!r}"]


def check_scorer(config, workdir, dry_run: bool = False) -> list[str]:
  """GEM's scorer can score (module docstring); lines saying what was checked."""
  scores = Path(workdir) / SCORES_FILE
  record = read_stage(scores.parent)
  if scores.exists() and record.get("complete", True):  # no record: written before records
    return [f"scorer: not needed, the scores in {scores} are reused"]
  attributes = parse_attribute_list(config.gem.attributes)
  if config.gem.scorer.backend not in REMOTE_BACKENDS:
    return _check_offline(config, attributes)
  return _estimate(config, attributes) if dry_run else _probe(config)


def preflight(config, workdir, dry_run: bool = False, scorer: bool = True) -> list[str]:
  """Checks the data and, for GEM, the scorer (module docstring) for a config that passed
  `validate_config`; returns what was found, one line each. Writes nothing.

  Args:
    config: the run's ConfigDict.
    workdir: the run folder (GEM: scores already there are reused, the scorer is not needed).
    dry_run: send no request; report the scorer's estimated cost.
    scorer: check GEM's scorer (False on the processes of a multi-process run that do not
      score: all but process 0).
  """
  lines = [f"data: {_sizes_text(check_data(config))}"]
  if is_two_stage(config) and scorer:
    lines += check_scorer(config, workdir, dry_run)
  return lines
