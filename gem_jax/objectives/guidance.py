"""MLLM-guided training: the scored images' scores as weak, noisy supervision of the latents
that carry the attributes (in the spirit of Locatello et al., ICLR 2020, "Disentangling factors
of variation using few labels"; docs/design.md, "MLLM-guided training").

A term added to any objective's generator loss, over a separate batch of *scored* images only:

    L = L_objective(batch) + weight * L_guide(scored batch),
    L_guide = mean_i  sum_a  m[i, a] * (mu_{k_a}(x_i) - t[i, a])^2

i runs over the scored images of the step (`GuideInputs`), never over the unscored batch;
mu_{k_a} is the posterior mean of the latent assigned to attribute a; t is the score mapped
linearly from the scorer's range 0..max_score onto [-SPAN, +SPAN] (SPAN = 2: latent value v
stands for score (1 + v / 2) * max_score / 2, so a traversal from -2 to +2 spans every
attribute's whole range, however skewed its levels are; a z-score would put the top level of
a rare attribute such as bald at +6); m = 0 where the scorer gave no answer (-1). Units:
squared latent units summed over attributes, per image (the scale of a KL in nats). It departs
from the paper's "fully unsupervised" claim; weight = 0 is the paper's form.
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple, Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np

from gem_jax.models.vae import VAE

__all__ = ["GuideInputs", "Guidance", "guidance_loss", "score_targets", "target_to_score",
           "GuidanceDataError", "SPAN"]

SPAN = 2.0  # scores 0..max_score <-> latent targets -SPAN..+SPAN


class GuidanceDataError(ValueError):
  """The scores cannot guide training (no valid answer, a constant column, too few images)."""


class GuideInputs(NamedTuple):
  """One device's share of the step's scored images: x [g, H, W, 3] in [0, 1]; target [g, n]
  standardised scores; mask [g, n] 1 where the score is valid, 0 where it is missing."""

  x: jax.Array
  target: jax.Array
  mask: jax.Array


def score_targets(scores: np.ndarray, names: Sequence[str], max_score: int
                  ) -> tuple[np.ndarray, np.ndarray]:
  """Scores int [N, n] in 0..max_score (-1 = missing) -> (targets float32 [N, n] in
  [-SPAN, SPAN], mask float32 [N, n]): t = SPAN * (2 s / max_score - 1); missing entries get
  target 0 and mask 0.

  Raises:
    GuidanceDataError: a score outside 0..max_score, or a column without two valid answers or
      with one value only (constant scores carry no information about which images have more
      of the attribute).
  """
  scores = np.asarray(scores)
  if scores.ndim != 2 or scores.shape[1] != len(names):
    raise GuidanceDataError(f"scores must be [N, {len(names)}] (one column per attribute: "
                            f"{', '.join(names)}), got shape {list(scores.shape)}")
  if (scores > max_score).any() or (scores < -1).any():
    raise GuidanceDataError(f"scores must be -1 (missing) or 0..{max_score}; got values "
                            f"{int(scores.min())}..{int(scores.max())}")
  valid = scores >= 0
  problems = []
  for a, name in enumerate(names):
    column = scores[valid[:, a], a]
    if len(column) < 2:
      problems.append(f"{name}: {len(column)} valid answers")
    elif (column == column[0]).all():
      problems.append(f"{name}: every valid score is {int(column[0])}")
  if problems:
    raise GuidanceDataError(
        "the scores cannot guide these attributes: " + "; ".join(problems)
        + ". Score more images (config.gem.num_scored_images), drop the attribute from "
        "config.gem.attributes, or train unguided (config.gem.guidance.weight=0).")
  targets = np.where(valid, SPAN * (2.0 * scores / max_score - 1.0), 0.0).astype(np.float32)
  return targets, valid.astype(np.float32)


def target_to_score(value, max_score: int):
  """The score a guided latent's value stands for: the inverse of `score_targets`' map."""
  return (1.0 + np.asarray(value) / SPAN) * max_score / 2.0


def guidance_loss(mu: jax.Array, target: jax.Array, mask: jax.Array) -> jax.Array:
  """mean over images of sum over attributes of mask * (mu - target)^2: [g, n] x3 -> scalar."""
  chex.assert_equal_shape([mu, target, mask])
  chex.assert_rank(mu, 2)
  return jnp.mean(jnp.sum(mask * jnp.square(mu - target), axis=1))


@dataclasses.dataclass(frozen=True)
class Guidance:
  """weight: of L_guide against the objective's loss; latents: the latent of each attribute,
  in the scores' column order (fixed up front: docs/design.md)."""

  weight: float
  latents: tuple[int, ...]

  def __post_init__(self):
    if self.weight < 0:
      raise ValueError(f"config.gem.guidance.weight must be >= 0, got {self.weight}")
    if len(set(self.latents)) != len(self.latents):
      raise ValueError(f"guided latents must be distinct, got {self.latents}")

  def loss(self, vae_params, vae: VAE, guide: GuideInputs) -> jax.Array:
    """L_guide of the scored images `guide` under the encoder of vae_params: scalar."""
    chex.assert_rank(guide.x, 4)
    mu, _ = vae.apply(vae_params, guide.x, method=VAE.encode)
    return guidance_loss(mu[:, jnp.asarray(self.latents)], guide.target, guide.mask)
