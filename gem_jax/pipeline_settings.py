"""What each stage of GEM's pipeline depends on: the settings its stage record names
(gem_jax/stages.py), the warm-up's config, the attributes and which stages are MLLM-guided.
`gem_jax.gem_pipeline` runs the stages; this module only reads configs."""
from __future__ import annotations

import hashlib
import json

import numpy as np

from gem_jax.scoring import parse_attribute_list
from gem_jax.stages import config_values
from gem_jax.train.guide_batches import holdout_split

REMOTE_BACKENDS = ("openai", "gemini")
# What each stage's record names (gem_jax/stages.py): the settings its outputs depend on.
WARMUP_KEYS = ("seed", "data.name", "data.config", "data.split", "model.arch", "model.latent_dim",
               "model.image_size", "model.width", "model.hidden", "model.upsample",
               "model.likelihood", "model.sigma", "model.beta", "model.capacity_max",
               "model.capacity_steps", "train.batch_size", "train.learning_rate",
               "train.adam_b1", "train.adam_b2", "train.grad_clip_norm")
# The settings of MLLM-guided training, recorded by the stages it guides.
WARMUP_GUIDANCE_KEYS = ("gem.guidance.weight", "gem.guidance.batch_size",
                        "gem.guidance.holdout_fraction", "gem.guidance.stages")
GUIDANCE_KEYS = WARMUP_GUIDANCE_KEYS + ("gem.guidance.stage4_weight",)
# The steering term's settings (gem_jax/objectives/steering.py), recorded by the stages it
# steers.
STEER_KEYS = ("gem.steer.weight", "gem.steer.stride", "gem.steer.stages")
SCORING_KEYS = ("data.name", "data.config", "data.split", "gem.num_scored_images",
                "gem.attributes", "gem.scorer.backend", "gem.scorer.model",
                "gem.scorer.base_url")
SCORING_BACKEND_KEYS = {"oracle": ("seed", "gem.scorer.accuracy", "gem.scorer.error_model"),
                        "replay": ("gem.scorer.replay_path",)}
GRAPH_KEYS = ("gem.attributes", "model.latent_dim", "gem.prior")
# Keys added to the records after they first existed, with the value older records were made
# with (so that a run recorded before a key existed still matches).
ADDED_STAGE_KEYS = {"model.arch": "burgess", "model.capacity_max": 0.0,
                    "model.disc_r1_interval": 1,
                    "model.capacity_steps": 1, "gem.guidance.weight": 0.0,
                    "gem.guidance.stage4_weight": None,
                    "gem.guidance.batch_size": 16, "gem.guidance.holdout_fraction": 0.2,
                    "gem.guidance.stages": "warmup,gem", "gem.prior": "somers_d",
                    "gem.scorer.error_model": "uniform", "gem.steer.weight": 0.0,
                    "gem.steer.stride": 4, "gem.steer.stages": "gem",
                    "model.graph_learner_kind": "gcn", "model.graph_fit_weight": 1.0,
                    "model.graph_l1": 0.2, "model.graph_quadratic": True,
                    "model.graph_acyclic": 0.0, "train.graph_learning_rate": None,
                    "model.disc_input_pool": 1}
# Settings that do not change what stage 4 computes (num_steps: a longer run continues it).
# data.validation_images: which images are set aside to choose settings on (training reads the
# whole split either way).
STAGE4_IGNORED = ("data.data_dir", "data.validation_images", "train.num_steps",
                  "train.log_every", "train.sample_every", "train.checkpoint_every",
                  "train.keep_checkpoints", "train.num_devices")


def scoring_values(config) -> dict:
  """The settings the scores depend on (the oracle's also on the seed, its accuracy and its
  error model)."""
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
  config.gem.warmup_steps, with beta = config.gem.warmup_beta where set and a capacity ramp to
  config.gem.warmup_capacity nats over the warm-up where set."""
  c = config.copy_and_resolve_references()
  c.model.name, c.model.graph_learner, c.model.adversarial = "warmup", False, False
  c.model.objective = "beta_vae"
  c.model.lambda_dis = 1.0
  c.train.num_steps = config.gem.warmup_steps
  c.train.batch_size = config.gem.warmup_batch_size
  c.train.learning_rate = config.gem.warmup_learning_rate
  if config.gem.get("warmup_beta") is not None:
    c.model.beta = float(config.gem.warmup_beta)
  steer = config.gem.get("steer")
  if steer is not None and "warmup" not in steered_stages(config):
    c.gem.steer.weight = 0.0
  if config.gem.get("warmup_capacity") is not None:
    c.model.capacity_max = float(config.gem.warmup_capacity)
    c.model.capacity_steps = int(config.gem.warmup_steps)
  return c


def prior_method(config) -> str:
  """config.gem.prior, the graph A_0 is built from (gem_jax.relations.discovery.PRIORS);
  'somers_d' (the paper's) for a config made before the key existed."""
  return config.gem.get("prior") or ADDED_STAGE_KEYS["gem.prior"]


def graph_values(config) -> dict:
  """The alignment stage's recorded settings: GRAPH_KEYS (gem.prior as `prior_method` reads
  it), with the warm-up's guidance keys when the warm-up is guided."""
  keys = GRAPH_KEYS + (WARMUP_GUIDANCE_KEYS if "warmup" in guided_stages(config) else ())
  return {**config_values(config, keys), "gem.prior": prior_method(config)}


def attribute_names(config) -> list[str]:
  """The n attributes of config.gem.attributes ('bangs,bald,...'), at most one per latent."""
  names = parse_attribute_list(config.gem.attributes)
  if len(names) > config.model.latent_dim:
    raise ValueError(f"{len(names)} attributes but latent_dim={config.model.latent_dim}: "
                     "each attribute needs its own latent")
  return names


def guided_stages(config) -> tuple[str, ...]:
  """The stages MLLM-guided training supervises ('warmup', 'gem'); () when unguided
  (config.gem.guidance.weight = 0, the paper's form)."""
  guidance = config.gem.get("guidance")
  if guidance is None or not guidance.weight:
    return ()
  return tuple(s.strip() for s in guidance.stages.split(",") if s.strip())


def steered_stages(config) -> tuple[str, ...]:
  """The stages the steering term trains ('warmup', 'gem'); () when it is off
  (config.gem.steer.weight = 0) or the run is unguided (steering reads the guided latents)."""
  steer = config.gem.get("steer")
  if steer is None or not steer.weight or not guided_stages(config):
    return ()
  return tuple(s.strip() for s in steer.stages.split(",") if s.strip())


def stage4_config(config):
  """The config stage 4 trains with: config.gem.guidance.weight set to stage4_weight where
  that is set (the warm-up keeps weight)."""
  guidance = config.gem.get("guidance")
  if guidance is None or not guidance.weight or guidance.get("stage4_weight") is None:
    return config
  c = config.copy_and_resolve_references()
  c.gem.guidance.weight = float(guidance.stage4_weight)
  return c


def truth_split(config) -> str:
  """The split whose images check the alignment against the true levels and measure
  steerability: config.gem.truth_split where set ('validation' while choosing settings), else
  config.data.eval_split (the reporting split)."""
  return config.gem.get("truth_split") or config.data.eval_split


def guided_latents(config) -> tuple[int, ...]:
  """The latent of each attribute under guidance, fixed up front: latent a for the a-th
  attribute of config.gem.attributes (docs/design.md, "MLLM-guided training")."""
  return tuple(range(len(attribute_names(config))))


def guide_rows(config, num_scored: int) -> tuple[np.ndarray, np.ndarray]:
  """(guided, held-out) rows of the scored images (`holdout_split` by config.seed)."""
  return holdout_split(num_scored, float(config.gem.guidance.holdout_fraction), config.seed)


def warmup_values(config) -> dict:
  """The warm-up's recorded settings (with the guidance keys when the warm-up is guided)."""
  keys = WARMUP_KEYS + (WARMUP_GUIDANCE_KEYS if "warmup" in guided_stages(config) else ())
  keys += STEER_KEYS if "warmup" in steered_stages(config) else ()
  return config_values(warmup_config(config), keys)


def warmup_id(config) -> str:
  """Names the warm-up a later stage was built on: its recorded settings and final step."""
  values = {k: v for k, v in warmup_values(config).items()
            if k not in ADDED_STAGE_KEYS or v != ADDED_STAGE_KEYS[k]}
  values = json.dumps(values, sort_keys=True)
  return hashlib.sha256(values.encode()).hexdigest()[:16] + f"@{config.gem.warmup_steps}"


def alignment_hints(config) -> tuple[str, ...]:
  """What may carry the attributes better, given what this run did (docs/design.md)."""
  hints = []
  if not guided_stages(config):
    hints.append("MLLM-guided training (--config.gem.guidance.weight=10)")
  else:
    hints.append(f"a longer guided warm-up (--config.gem.warmup_steps, now "
                 f"{config.gem.warmup_steps}) or more scored images "
                 f"(--config.gem.num_scored_images, now {config.gem.num_scored_images})")
  if config.model.latent_dim <= len(attribute_names(config)):
    hints.append("free latents for the nuisance factors (--config.model.latent_dim=10)")
  beta = config.gem.get("warmup_beta")
  if (config.model.beta if beta is None else beta) > 1:
    hints.append("a lower warm-up beta (--config.gem.warmup_beta=0.5)")
  hints.append("a lower threshold where the scorer is noisy (its errors shrink every "
               "correlation with its scores: --config.gem.min_alignment)")
  return tuple(hints)
