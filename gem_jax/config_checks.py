"""`validate_config`: every number and name a run reads, checked before the run does any work.

    validate_config(config)                        # ConfigError listing every problem
    problems = config_problems(config, num_devices=2)

One line per problem, `config.<key>=<value>: <what is valid>`, e.g.
`config.train.batch_size=7: must be a positive integer divisible by the device count (2)`.
Checked: batch sizes (train.batch_size; gem.warmup_batch_size) against the device count,
sizes and counts (latent_dim, widths, steps, intervals: integers >= 1), image_size (a power
of two >= 8), the data paths (image_dir, labels_csv, graph_json: unset or a non-empty string),
learning rates (finite, > 0), weights (beta, lambdas, disc_r1_gamma: >= 0), Adam's betas
([0, 1)), probabilities (anchor_tau, scorer accuracy: [0, 1]), the names
(data set, objective, likelihood, upsample, arch, adv_scale, dear_supergraph, scorer backend,
oracle error model, GEM's prior), and what keys say together: latent_dim >= GEM's attributes,
disc_r1_stride dividing each device's share, the objective's own checks (e.g. DEAR's
dear_num_factors <= latent_dim).
The gem.* keys are checked for runs of GEM's two-stage pipeline only (the objective's
`trains_once` is False). Keys absent from a config (saved before the key existed) are not
checked. What needs the data or the network (split sizes, the data set's image size, the
scorer's key and endpoint) is `gem_jax.preflight`'s; only a labelled folder's header and
graph.json are read here, by `get_dataset(config.data)` (their errors are raised as they are:
DataNotFoundError, LabelsError).
"""
from __future__ import annotations

import math
import numbers
import typing
from typing import Any, Callable, Optional

import jax

from gem_jax import objectives
from gem_jax.data import DATASETS, get_dataset
from gem_jax.models.layers import Arch, Upsample, num_halvings
from gem_jax.objectives.dear import SUPERGRAPHS
from gem_jax.objectives.gem import ADV_SCALES
from gem_jax.relations.discovery import MIN_COMPLETE_ROWS, PRIORS
from gem_jax.scorers import BACKENDS, ORACLE_ERROR_MODELS
from gem_jax.scoring import ScoringError, parse_attribute_list

__all__ = ["ConfigError", "config_problems", "device_count", "is_two_stage", "validate_config"]

LIKELIHOODS = ("bernoulli", "gaussian")  # gem_jax.objectives.losses.reconstruction_nll
ABSENT = object()  # a key the config does not have
Check = Callable[[Any], Optional[str]]  # value -> None when valid, else what valid values are


class ConfigError(ValueError):
  """Config values a run cannot use. `problems`: one line each, naming the key, its value and
  the valid range; the message is the one line, or a count followed by the indented lines."""

  def __init__(self, problems):
    self.problems = list(problems)
    if len(self.problems) == 1:
      message = self.problems[0]
    else:
      lines = "\n".join(f"  {p}" for p in self.problems)
      message = f"{len(self.problems)} problems with the config:\n{lines}"
    super().__init__(message)


def _is_int(value) -> bool:
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value) -> bool:
  return isinstance(value, numbers.Real) and not isinstance(value, bool)


def integer(low: int | None = None) -> Check:
  """An integer >= low (any integer when low is None)."""
  want = "must be an integer" + ("" if low is None else f" >= {low}")
  return lambda v: None if _is_int(v) and (low is None or v >= low) else want


def number(low: float, high: float | None = None, low_open: bool = False,
           high_open: bool = False) -> Check:
  """A finite real number in the interval (low, high) with the given open ends."""
  if high is None:
    want = f"must be a finite number {'>' if low_open else '>='} {low:g}"
  else:
    want = (f"must be a number in {'(' if low_open else '['}{low:g}, {high:g}"
            f"{')' if high_open else ']'}")

  def check(v):
    ok = (_is_real(v) and math.isfinite(v) and (v > low if low_open else v >= low)
          and (high is None or (v < high if high_open else v <= high)))
    return None if ok else want
  return check


def choice(options) -> Check:
  want = "must be one of " + ", ".join(repr(o) for o in options)
  return lambda v: None if v in tuple(options) else want


def path(value) -> Optional[str]:
  """A file or folder name: a non-empty string."""
  return None if isinstance(value, str) and value.strip() else "must be a path (a non-empty string)"


def optional(check: Check) -> Check:
  """None (unset) or a value `check` accepts."""
  return lambda v: None if v is None else check(v)


def image_size(value) -> Optional[str]:
  """What the encoder and decoder support (`gem_jax.models.layers.num_halvings`)."""
  if _is_int(value):
    try:
      num_halvings(int(value))
      return None
    except ValueError:
      pass
  return "must be a power of two >= 8 (e.g. 64)"


POSITIVE = number(0, low_open=True)
NON_NEGATIVE = number(0)
ADAM_BETA = number(0, 1, high_open=True)

RULES: tuple[tuple[str, Check], ...] = (
    ("seed", integer()),
    ("data.name", choice(DATASETS)),
    ("data.shuffle_buffer", integer(1)),
    ("data.validation_images", integer(1)),
    ("data.label_max", POSITIVE),
    ("data.image_size", image_size),
    ("data.image_dir", optional(path)),
    ("data.labels_csv", optional(path)),
    ("data.graph_json", optional(path)),
    ("model.latent_dim", integer(1)),
    ("model.image_size", image_size),
    ("model.width", integer(1)),
    ("model.hidden", integer(1)),
    ("model.upsample", choice(typing.get_args(Upsample))),
    ("model.arch", choice(typing.get_args(Arch))),
    ("model.likelihood", choice(LIKELIHOODS)),
    ("model.sigma", POSITIVE),
    ("model.beta", NON_NEGATIVE),
    ("model.gcn_layers", integer(1)),
    ("model.lambda_anchor", NON_NEGATIVE),
    ("model.anchor_tau", number(0, 1)),
    ("model.lambda_dis", NON_NEGATIVE),
    ("model.lambda_adv", NON_NEGATIVE),
    ("model.adv_scale", choice(ADV_SCALES)),
    ("model.lambda_rel", NON_NEGATIVE),
    ("model.relcon_temperature", POSITIVE),
    ("model.disc_width", integer(1)),
    ("model.disc_hidden", integer(1)),
    ("model.disc_r1_gamma", NON_NEGATIVE),
    ("model.disc_r1_stride", integer(1)),
    ("model.disc_r1_interval", integer(1)),
    ("model.capacity_max", NON_NEGATIVE),
    ("model.capacity_steps", integer(1)),
    ("model.objective", choice(tuple(objectives.OBJECTIVES))),
    ("model.dataset_size", integer(0)),
    ("model.mi_weight", NON_NEGATIVE),
    ("model.dimwise_kl_weight", NON_NEGATIVE),
    ("model.factor_gamma", NON_NEGATIVE),
    ("model.factor_disc_layers", integer(1)),
    ("model.factor_disc_width", integer(1)),
    ("model.dear_supergraph", choice(SUPERGRAPHS)),
    ("model.dear_num_factors", integer(1)),
    ("model.lambda_sup", NON_NEGATIVE),
    ("train.learning_rate", POSITIVE),
    ("train.disc_learning_rate", POSITIVE),
    ("train.adam_b1", ADAM_BETA),
    ("train.adam_b2", ADAM_BETA),
    ("train.disc_adam_b1", optional(ADAM_BETA)),
    ("train.disc_adam_b2", optional(ADAM_BETA)),
    ("train.grad_clip_norm", NON_NEGATIVE),
    ("train.num_steps", integer(1)),
    ("train.num_devices", integer(0)),
    ("train.log_every", integer(1)),
    ("train.sample_every", integer(1)),
    ("train.checkpoint_every", integer(1)),
    ("train.keep_checkpoints", integer(1)),
)
GEM_RULES: tuple[tuple[str, Check], ...] = (
    ("gem.warmup_steps", integer(1)),
    ("gem.warmup_learning_rate", POSITIVE),
    ("gem.warmup_beta", optional(NON_NEGATIVE)),
    ("gem.warmup_capacity", optional(NON_NEGATIVE)),
    ("gem.min_alignment", number(0, 1)),
    ("gem.accept_weak_alignment", choice((True, False))),
    ("gem.steerability_images", integer(0)),
    ("gem.steerability_reader_steps", integer(1)),
    ("gem.guidance.weight", NON_NEGATIVE),
    ("gem.guidance.stage4_weight", optional(NON_NEGATIVE)),
    ("gem.guidance.holdout_fraction", number(0, 1, high_open=True)),
    ("gem.steer.weight", NON_NEGATIVE),
    ("gem.steer.stride", integer(1)),
    ("gem.num_scored_images", integer(2)),
    ("gem.scorer.backend", choice(BACKENDS)),
    ("gem.scorer.accuracy", number(0, 1)),
    ("gem.prior", choice(PRIORS)),
    ("gem.scorer.error_model", choice(ORACLE_ERROR_MODELS)),
    ("gem.scorer.concurrency", integer(1)),
)


def lookup(config, key: str):
  """config's value at a dotted key ('train.batch_size'), or ABSENT."""
  node = config
  for part in key.split("."):
    try:
      node = node[part]
    except (KeyError, TypeError, AttributeError):
      return ABSENT
  return node


def problem(key: str, value, want: str) -> str:
  """One problem line: 'config.<key>=<value>: <want>'."""
  return f"config.{key}={value!r}: {want}"


def _table_problems(config, rules) -> list[str]:
  out = []
  for key, check in rules:
    value = lookup(config, key)
    want = None if value is ABSENT else check(value)
    if want:
      out.append(problem(key, value, want))
  return out


def is_two_stage(config) -> bool:
  """Whether the run is GEM's two-stage pipeline (warm-up, scoring, alignment, GEM) rather
  than one training run; False for an unknown objective (reported by the checks)."""
  name = lookup(config, "model.objective")
  if name not in objectives.OBJECTIVES:
    return False
  return not objectives.get(name).trains_once(config)


def device_count(config, num_devices: int | None = None) -> tuple[int, list[str]]:
  """(devices the run trains on, problems): num_devices if given, else
  config.train.num_devices (0: all local devices) on each of the run's processes."""
  if num_devices is not None:
    return num_devices, []
  local = jax.local_device_count()
  wanted = lookup(config, "train.num_devices")
  if not _is_int(wanted) or wanted < 0:
    return local, []
  if wanted > local:
    return local, [problem("train.num_devices", wanted,
                           f"must be at most the {local} local devices (0: all of them)")]
  return (wanted or local) * jax.process_count(), []


def _batch_problems(config, keys, devices: int) -> list[str]:
  want = f"must be a positive integer divisible by the device count ({devices})"
  out = []
  for key in keys:
    value = lookup(config, key)
    if value is not ABSENT and not (_is_int(value) and value > 0 and value % devices == 0):
      out.append(problem(key, value, want))
  return out


def _build_objective(config) -> tuple[Any, list[str]]:
  """(the run's objective or None, problems its own checks found: from_config and
  initial_graph, e.g. DEAR's dear_num_factors <= latent_dim)."""
  name = config.model.objective
  cls = objectives.get(name)
  if cls.needs_dataset_size and not config.model.get("dataset_size"):
    config = config.copy_and_resolve_references()
    config.model.dataset_size = 1  # the run fills it in from the training split
  spec = get_dataset(config.data)  # a labelled folder's own errors are not the objective's
  try:
    objective = cls.from_config(config)
    objective.initial_graph(config.model.latent_dim, spec)
  except ValueError as e:
    return None, [problem("model.objective", name, str(e))]
  except (KeyError, AttributeError):  # an old saved config without the objective's keys
    return None, []
  return objective, []


def _r1_problems(config, objective, devices: int) -> list[str]:
  """disc_r1_stride must divide each device's share of the batch when R1 is on."""
  stride, gamma = lookup(config, "model.disc_r1_stride"), lookup(config, "model.disc_r1_gamma")
  batch = lookup(config, "train.batch_size")
  if objective is None or objective.discriminator is None or ABSENT in (stride, gamma):
    return []
  if not gamma or batch % devices:
    return []
  share = batch // devices
  if share % stride == 0:
    return []
  return [problem("model.disc_r1_stride", stride,
                  f"must divide each device's share of config.train.batch_size ({batch} / "
                  f"{devices} devices = {share} images), or config.model.disc_r1_gamma=0")]


def _gem_problems(config) -> list[str]:
  """The attributes (one latent each) and the scorer options that must go together."""
  out = []
  attributes = lookup(config, "gem.attributes")
  try:
    names = parse_attribute_list(attributes) if attributes is not ABSENT else []
  except ScoringError as e:
    names, out = [], [problem("gem.attributes", attributes, str(e))]
  latent_dim = lookup(config, "model.latent_dim")
  if _is_int(latent_dim) and 1 <= latent_dim < len(names):
    out.append(problem("model.latent_dim", latent_dim,
                       f"must be >= the {len(names)} attributes of config.gem.attributes "
                       "(GEM aligns one latent per attribute)"))
  backend, model = lookup(config, "gem.scorer.backend"), lookup(config, "gem.scorer.model")
  if backend == "oracle" and model not in (None, ABSENT):
    out.append(problem("gem.scorer.model", model, "must be unset for the oracle, which names "
                       "itself from config.gem.scorer.accuracy"))
  if backend == "replay" and not lookup(config, "gem.scorer.replay_path"):
    out.append(problem("gem.scorer.replay_path", None, "must name a score cache (.jsonl) or "
                       "an .npz of scores for the replay backend"))
  return out + _prior_problems(config) + _guidance_problems(config)


def _prior_problems(config) -> list[str]:
  """A discovery prior needs MIN_COMPLETE_ROWS fully answered scored images."""
  prior, num = lookup(config, "gem.prior"), lookup(config, "gem.num_scored_images")
  if prior in PRIORS[1:] and _is_int(num) and num < MIN_COMPLETE_ROWS:
    return [problem("gem.prior", prior, f"needs at least {MIN_COMPLETE_ROWS} fully answered "
                    f"scored images, more than config.gem.num_scored_images={num}; or use "
                    "'somers_d'")]
  return []


GUIDED_STAGES = ("warmup", "gem")


def _guidance_problems(config) -> list[str]:
  """The guided stages are known names; the guide batch fits the guided scored images."""
  for key in ("gem.steer.stages", "gem.guidance.stages"):
    stages = lookup(config, key)
    names = [] if stages is ABSENT else [s.strip() for s in str(stages).split(",") if s.strip()]
    if any(s not in GUIDED_STAGES for s in names):
      return [problem(key, stages, "must be a comma-separated list of "
                      + " and ".join(repr(s) for s in GUIDED_STAGES) + " (or empty)")]
  stages = lookup(config, "gem.guidance.stages")
  if stages is ABSENT:
    return []
  names = [s.strip() for s in str(stages).split(",") if s.strip()]
  weight, batch = (lookup(config, f"gem.guidance.{k}") for k in ("weight", "batch_size"))
  num, held = lookup(config, "gem.num_scored_images"), lookup(config,
                                                              "gem.guidance.holdout_fraction")
  if (not (_is_real(weight) and weight > 0 and names) or not _is_int(num) or num < 2
      or not _is_real(held)):
    return []
  guided = num - int(round(held * num))
  if not _is_int(batch) or not 1 <= batch <= guided:
    return [problem("gem.guidance.batch_size", batch, f"must be an integer in 1..{guided}, the "
                    "scored images that guide (gem.num_scored_images less the held-out ones)")]
  return []


def config_problems(config, num_devices: int | None = None) -> list[str]:
  """Every problem of `config`, one line each (module docstring); [] when it is usable.

  num_devices: the devices the run trains on; None: config.train.num_devices (0: all local
  devices), itself checked against the local devices.
  """
  devices, out = device_count(config, num_devices)
  two_stage = is_two_stage(config)
  out = _table_problems(config, RULES) + out
  batches = ("train.batch_size", "gem.warmup_batch_size") if two_stage else ("train.batch_size",)
  weight = lookup(config, "gem.guidance.weight")
  if two_stage and _is_real(weight) and weight:
    batches += ("gem.guidance.batch_size",)
  out += _batch_problems(config, batches, devices)
  if two_stage:
    out += _table_problems(config, GEM_RULES) + _gem_problems(config)
  if not any(p.startswith(("config.model.", "config.data.")) for p in out):
    objective, found = _build_objective(config)
    out += found
    if not found and not any(p.startswith("config.train.batch_size=") for p in out):
      out += _r1_problems(config, objective, devices)
  return out


def validate_config(config, num_devices: int | None = None) -> None:
  """Raises ConfigError listing every problem of `config` (`config_problems`); reads no data,
  writes nothing.

  Args:
    config: a run's ml_collections.ConfigDict (experiments/configs/*.py, or a saved one).
    num_devices: the devices the run trains on; None: from config.train.num_devices.
  """
  problems = config_problems(config, num_devices)
  if problems:
    raise ConfigError(problems)
