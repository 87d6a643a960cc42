"""A trained model restored for use: encode, decode, reconstruct, sample, traverse.

    model = gem_jax.load("runs/synthetic_gem")        # a pipeline root, a run folder, its
                                                       # checkpoints/ or one step folder
    mu, logvar = model.encode(images)                  # uint8 [B, 64, 64, 3]
    grid = model.traverse(images[:1], latent=2, values=np.linspace(-3, 3, 7))

Needs neither the training data nor the config file: everything comes from the checkpoint.
"""
from __future__ import annotations

import functools
import json
import logging
from pathlib import Path
from typing import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gem_jax import objectives
from gem_jax.models import VAE, relate
from gem_jax.objectives.base import scm_sample
from gem_jax.objectives.guidance import SPAN
from gem_jax.relations.alignment import Alignment
from gem_jax.relations.alignment_quality import (
  AlignmentQuality,
  labels_with_quality,
  quality_from_alignment,
  quality_from_json,
)
from gem_jax.relations.interventions import counterfactual_codes
from gem_jax.train import checkpoints
from gem_jax.train.checkpoints import MODEL_KIND
from gem_jax.train.state import make_graph_module, make_model

# The scorers' top level (0..5; gem_jax.scorers.prompt.MAX_SCORE, which this package may not
# import: tests/test_interventions.py pins the two equal).
MAX_LEVEL = 5


class TrainedModel:
  """Wraps a VAE module, its parameters and the graph A (adjacency [d, d]).

  `adjacency[i, j]` is the edge from latent i to latent j: row i holds i's out-edges, its
  parents are column j's nonzero rows, the diagonal is 1 (docs/design.md); every figure of the
  project draws it that way (rows are parents). `structural_weights` [d, d] are the same
  convention's structural equations that `intervene` propagates.

  `alignment` (a gem_jax.relations.Alignment or None) names the attribute of each latent.
  `scm_weights` [d, d]: a DEAR model's learned SCM prior (None otherwise); its decoder reads z
  itself (adjacency = I) and `sample` draws from that prior.
  """

  def __init__(self, module: VAE, params, adjacency: np.ndarray, config=None, step=None,
               alignment=None, graph_state: dict | None = None, meta: dict | None = None,
               scm_weights: np.ndarray | None = None, prior_weights: np.ndarray | None = None):
    self.module = module
    self._scm_weights = None if scm_weights is None else np.asarray(scm_weights, np.float32)
    prior_weights = self._scm_weights if prior_weights is None else prior_weights
    self._prior_weights = (None if prior_weights is None
                           else np.asarray(prior_weights, np.float32))
    self.graph_state = graph_state
    self.meta = meta
    self.params = params
    self.adjacency = jnp.asarray(adjacency, jnp.float32)
    self.config = config
    self.step = step
    self.alignment = alignment
    self._encode = jax.jit(functools.partial(module.apply, method=VAE.encode))
    self._decode = jax.jit(functools.partial(module.apply, method=VAE.decode))

  @classmethod
  def from_state(cls, config, state, alignment=None, meta=None) -> "TrainedModel":
    """From a (host) TrainState or its restored dict form: A = DisGraph(A_0)."""
    get = (lambda k: state[k]) if isinstance(state, dict) else (lambda k: getattr(state, k))
    params, graph = get("params"), get("graph")
    adjacency = make_graph_module(config.model).apply(params["graph"], graph["a0"],
                                                      graph["edge_mask"])
    prior = objectives.get(config.model.objective).prior_weights(params, graph, adjacency)
    prior = None if prior is None else np.asarray(prior)
    scm = prior if "scm" in params else None  # DEAR's prior is its learned SCM
    return cls(make_model(config.model), params["vae"], np.asarray(adjacency), config,
               int(get("step")), alignment, graph_state=dict(graph), meta=meta,
               scm_weights=scm, prior_weights=prior)

  @property
  def scm_weights(self) -> np.ndarray | None:
    """DEAR's learned SCM weights A [d, d] (A[i, j]: edge i -> j, zero outside its
    super-graph); None for models without an SCM prior."""
    return None if self._scm_weights is None else self._scm_weights.copy()

  def latent_labels(self) -> list[str]:
    """'z3: bald (-) ρ 0.82' for latents that carry their attribute (ρ: Spearman with the
    scores; ' steer 0.91' where the run measured its steerability), 'z1: gender? (+) weak ρ
    0.06' for one below the run's config.gem.min_alignment or whose runner-up orders the
    scores better, 'z5: free' for unaligned latents; 'z5' for models without an alignment
    (`gem_jax.relations.labels_with_quality`)."""
    if self.alignment is None:
      return [f"z{k}" for k in range(self.latent_dim)]
    return labels_with_quality(self.alignment, self.alignment_quality())

  def alignment_quality(self) -> AlignmentQuality | None:
    """How well each aligned latent carries its attribute (`gem_jax.relations.
    alignment_quality`): the run's saved table (Spearman with the held-out or all scores, the
    runner-up latent, the true levels where known), or, for runs saved before it, the table
    its alignment's own correlations support; None without an alignment."""
    if self.alignment is None:
      return None
    quality = quality_from_json((self.meta or {}).get("alignment_quality"))
    if quality is None:
      return quality_from_alignment(self.alignment)
    gem = None if self.config is None else self.config.get("gem")
    threshold = float(quality.min_alignment if gem is None
                      else gem.get("min_alignment", quality.min_alignment))
    return quality.with_threshold(threshold)

  @property
  def latent_dim(self) -> int:
    return self.module.latent_dim

  def _as_float(self, images) -> jax.Array:
    images = np.asarray(images)
    size = self.module.image_size
    if images.ndim == 3:
      images = images[None]
    if images.ndim != 4 or images.shape[1:] != (size, size, 3):
      raise ValueError(f"expected images of shape [B, {size}, {size}, 3], got "
                       f"{list(images.shape)}")
    if images.dtype == np.uint8:
      return jnp.asarray(images, jnp.float32) / 255.0
    if not np.issubdtype(images.dtype, np.floating):
      raise ValueError(f"expected uint8 images in 0..255 or floats in [0, 1], got dtype "
                       f"{images.dtype}")
    return jnp.asarray(images, jnp.float32)

  def encode(self, images) -> tuple[np.ndarray, np.ndarray]:
    """images uint8 [B, H, W, 3] (or float in [0, 1]) -> (mu [B, d], logvar [B, d])."""
    mu, logvar = self._encode(self.params, self._as_float(images))
    return np.array(mu), np.array(logvar)

  def decode(self, z) -> np.ndarray:
    """z [B, d] (independent factors) -> images float32 [B, H, W, 3] in [0, 1].

    The decoder reads z_rel = A^T z, so moving one factor moves its graph neighbours.
    """
    z = jnp.asarray(z, jnp.float32)
    if z.ndim != 2 or z.shape[1] != self.latent_dim:
      raise ValueError(f"expected z of shape [B, {self.latent_dim}], got {list(z.shape)}")
    return np.asarray(jax.nn.sigmoid(self._decode(self.params, relate(z, self.adjacency))))

  def reconstruct(self, images) -> np.ndarray:
    """Decodes the posterior means: images -> float32 [B, H, W, 3] in [0, 1]."""
    return self.decode(self.encode(images)[0])

  def sample(self, num: int, seed: int = 0) -> np.ndarray:
    """Decodes z from the objective's prior: N(0, I), or a linear SCM z = (I - W^T)^-1 eps
    (DEAR's learned weights; for 'gem_scm' the DisGraph's off-diagonal A): float32
    [num, H, W, 3]."""
    z = jax.random.normal(jax.random.PRNGKey(seed), (num, self.latent_dim))
    if self._prior_weights is not None:
      z = scm_sample(z, jnp.asarray(self._prior_weights))
    return self.decode(z)

  def traverse(self, image, latent: int, values: Sequence[float]) -> np.ndarray:
    """Sets latent `latent` of one image's code to each of `values`: [len(values), H, W, 3]."""
    if not 0 <= latent < self.latent_dim:
      raise ValueError(f"latent must be in 0..{self.latent_dim - 1}, got {latent}")
    mu = self.encode(image)[0][:1]
    z = np.repeat(mu, len(values), axis=0)
    z[:, latent] = np.asarray(values, np.float32)
    return self.decode(z)

  def latent_of(self, attribute: str) -> tuple[int, float]:
    """(latent index, sign) carrying `attribute`, from the saved alignment."""
    if self.alignment is None:
      raise ValueError("this model has no latent alignment (a β-VAE run); use traverse() "
                       "with a latent index instead")
    names = list(self.alignment.attribute_names)
    if attribute not in names:
      raise ValueError(f"unknown attribute {attribute!r}; this model's attributes: "
                       f"{', '.join(names)}")
    a = names.index(attribute)
    return self.alignment.latent_of_attribute[a], float(self.alignment.signs[a])

  def edit(self, images, attribute: str, delta: float) -> np.ndarray:
    """Moves each image's code along `attribute`'s latent by `delta` (in latent units, the
    sign following the alignment so that +delta means more of the attribute) and decodes
    through the graph, so related attributes follow: [B, H, W, 3] in [0, 1]."""
    k, sign = self.latent_of(attribute)
    mu = self.encode(images)[0]
    mu[:, k] += sign * float(delta)
    return self.decode(mu)

  @property
  def structural_weights(self) -> np.ndarray:
    """W [d, d] of the structural equations z_j = sum_i W[i, j] z_i + u_j that `intervene`
    propagates: the objective's SCM prior where it has one (gem_scm: A - I; gem_sparse: the
    linear effects of its fitted mechanisms; DEAR: its learned weights), else A - I; zero
    outside the aligned latents' edges."""
    if self._prior_weights is not None:
      w = self._prior_weights.copy()
    else:
      w = np.asarray(self.adjacency, np.float64) - np.eye(self.latent_dim)
    np.fill_diagonal(w, 0.0)
    return w

  def level_scale(self) -> tuple[float, float]:
    """(max score, latent units per level) of an MLLM-guided model, whose aligned latents hold
    their attribute's score on -SPAN..+SPAN (`gem_jax.objectives.guidance`); ValueError for a
    model whose latents have no such scale (unguided, or a β-VAE)."""
    gem = self.config.get("gem") if self.config is not None else None
    guidance = gem.get("guidance") if gem is not None else None
    if self.alignment is None or guidance is None or not guidance.get("weight"):
      raise ValueError("intervene() reads values in attribute levels, which only an MLLM-guided "
                       "GEM's latents carry (config.gem.guidance.weight > 0); use edit() with a "
                       "delta in latent units for this model")
    return float(MAX_LEVEL), 2.0 * SPAN / MAX_LEVEL

  def intervene(self, images, interventions: dict[str, float], shift: bool = False,
                weights: np.ndarray | None = None) -> np.ndarray:
    """The do-operator: decodings [B, H, W, 3] in [0, 1] of each image after do(attribute :=
    level) for every {attribute: level} (levels on the scorer's scale 0..5, clipped to it;
    shift=True: each image's own level plus the value), with every descendant of an
    intervened attribute moved through the learned structural equations
    (`structural_weights`) with the image's own noise, and every other latent as encoded
    (`gem_jax.relations.interventions.counterfactual_codes`). An MLLM-guided GEM only
    (`level_scale`). Beside `edit`, which moves one latent and lets the decoder's A carry it.
    weights: other structural weights [d, d] to propagate with (e.g. another method's graph
    judged with this decoder); default `structural_weights`."""
    max_score, per_level = self.level_scale()
    mu = self.encode(images)[0]
    targets = {}
    for attribute, value in interventions.items():
      k, sign = self.latent_of(attribute)
      level = (sign * mu[:, k] / per_level + max_score / 2) if shift else 0.0
      level = np.clip(level + float(value), 0.0, max_score)
      targets[k] = sign * (level - max_score / 2) * per_level
    w = self.structural_weights if weights is None else np.asarray(weights, np.float64)
    z = counterfactual_codes(mu, w, targets)
    return self.decode(z.astype(np.float32))

  def traverse_all(self, image, values: Sequence[float]) -> np.ndarray:
    """Every latent in turn: [d, len(values), H, W, 3]."""
    return np.stack([self.traverse(image, k, values) for k in range(self.latent_dim)])


# gem_jax.gem_pipeline's run folders that hold a model, in the order `load` prefers them:
# stage 4 (GEM), then stage 1 (the warm-up) while GEM has saved no checkpoint.
PIPELINE_STAGES = ("gem", "warmup")
# Written beside a GEM stage's checkpoints once it is trained: its alignment quality.
FINAL_QUALITY = "alignment_quality.json"


def checkpoint_source(path: str | Path) -> Path:
  """The folder `load` reads for `path`: a GEM pipeline root's gem/ (or warmup/ before GEM
  saved a checkpoint), else `path` itself (a run, checkpoints/ or step folder; see
  `checkpoints.locate`). Raises CheckpointError naming what was looked for."""
  path = Path(path).expanduser().absolute()
  root, step = checkpoints.locate(path)
  if step is not None or checkpoints.saved_steps(root):
    return path
  for stage in PIPELINE_STAGES:
    if (path / stage).is_dir() and checkpoints.saved_steps(checkpoints.locate(path / stage)[0]):
      logging.info("%s is a GEM pipeline root: loading its %s/ stage%s", path, stage,
                   "" if stage == PIPELINE_STAGES[0] else
                   f" (no {PIPELINE_STAGES[0]}/ checkpoint yet)")
      return path / stage
  raise checkpoints.CheckpointError(
      f"no checkpoint found in {path}: looked for a GEM pipeline root "
      f"({'/ or '.join(PIPELINE_STAGES)}/ run folders inside), {checkpoints.LOOKED_FOR}")


def load(checkpoint_dir: str | Path, step: int | None = None) -> TrainedModel:
  """Restores a TrainedModel from a GEM pipeline root (its gem/ stage, or warmup/ while GEM has
  no checkpoint), a run folder, its checkpoints/ folder or one step folder (that step).

  step: the step to load (default: the newest that reads; a damaged newer step folder is
  skipped with a warning naming it). Raises checkpoints.CheckpointError when the folder is
  missing or holds no checkpoint, the step asked for is damaged, the weights are not finite,
  or it is not a gem_jax model checkpoint.
  """
  source = checkpoint_source(checkpoint_dir)
  state, meta = checkpoints.restore_raw(source, step)
  measured = Path(source) / FINAL_QUALITY
  if step is None and measured.is_file():  # the pipeline's measurement of the final model
    meta = {**meta, "alignment_quality": json.loads(measured.read_text())}
  if meta.get("kind") != MODEL_KIND:
    raise checkpoints.CheckpointError(
        f"{checkpoint_dir} holds a checkpoint of kind {meta.get('kind')!r}, not a "
        f"{MODEL_KIND!r} model")
  config = ml_collections.ConfigDict(meta["config"])
  alignment = Alignment.from_json(meta["alignment"]) if meta.get("alignment") else None
  return TrainedModel.from_state(config, state, alignment, meta)
