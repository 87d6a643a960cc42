"""The scored images of MLLM-guided training, and the batch of them each step reads.

    rows, held = holdout_split(len(scores), 0.2, seed=0)
    guide = GuideSet.from_scores(images, scores, names, latents, max_score=5, rows=rows)
    batch.update(guide.batch(step, global_batch=16, num_devices=2, seed=0))

A fraction of the scored images is held out: the guided term never sees them, so that the
alignment's quality can be measured on scores the encoder was not fitted to
(`holdout_split`). Each step draws `global_batch` of the others without replacement, as a pure
function of (seed, step): a resumed run reads the batches it would have read. In a
multi-process run every process draws the same global batch and keeps its own rows, as
`gem_jax.data.make_train_iterator` does.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import numpy as np

from gem_jax.objectives.guidance import GuidanceDataError, score_targets

__all__ = ["GuideSet", "holdout_split"]


def holdout_split(num: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """(guided, held-out) sorted row indices of `num` scored images: round(fraction * num) of
  them, drawn by `seed`, are held out."""
  if not 0 <= fraction < 1:
    raise ValueError(f"config.gem.guidance.holdout_fraction must be in [0, 1), got {fraction}")
  order = np.random.default_rng([seed, 20_201]).permutation(num)
  held = int(round(fraction * num))
  return np.sort(order[held:]), np.sort(order[:held])


@dataclasses.dataclass(frozen=True)
class GuideSet:
  """images uint8 [M, H, W, 3], targets float32 [M, n] (the scores mapped onto the latent
  range, `score_targets`), mask float32 [M, n] (1 = valid answer), latents: the latent of each
  of the n attributes."""

  images: np.ndarray
  targets: np.ndarray
  mask: np.ndarray
  latents: tuple[int, ...]

  @classmethod
  def from_scores(cls, images: np.ndarray, scores: np.ndarray, names: Sequence[str],
                  latents: Sequence[int], max_score: int,
                  rows: np.ndarray | None = None) -> "GuideSet":
    """The guide set of the scored `images` [N, H, W, 3] and `scores` int [N, n] in
    0..max_score (-1 = missing), restricted to `rows` (default all).

    Raises:
      GuidanceDataError: fewer scored images than attributes, or scores that cannot guide
        (`score_targets`).
    """
    rows = np.arange(len(scores)) if rows is None else np.asarray(rows)
    names = list(names)
    if len(rows) < len(names):
      raise GuidanceDataError(
          f"{len(rows)} scored images guide {len(names)} attributes; at least one image per "
          "attribute is needed (and hundreds for a useful guide): raise "
          "config.gem.num_scored_images or lower config.gem.guidance.holdout_fraction")
    targets, mask = score_targets(np.asarray(scores)[rows], names, max_score)
    return cls(images=np.asarray(images)[rows], targets=targets, mask=mask,
               latents=tuple(int(k) for k in latents))

  def __len__(self) -> int:
    return len(self.images)

  def batch(self, step: int, global_batch: int, num_devices: int, seed: int) -> dict:
    """This process's rows of step `step`'s guide batch: {'guide_image': uint8
    [num_devices, g, H, W, 3], 'guide_target', 'guide_mask': float32 [num_devices, g, n]},
    g = global_batch / (processes * num_devices)."""
    processes, index = jax.process_count(), jax.process_index()
    if global_batch % (processes * num_devices) or global_batch > len(self):
      raise ValueError(f"config.gem.guidance.batch_size={global_batch} must divide over "
                       f"{processes * num_devices} devices and be at most the {len(self)} "
                       "guided images")
    pick = np.random.default_rng([seed, step, 31_337]).choice(len(self), global_batch,
                                                                replace=False)
    share = global_batch // processes
    pick = pick[index * share:(index + 1) * share]
    shape = lambda a: a[pick].reshape(num_devices, share // num_devices, *a.shape[1:])
    return {"guide_image": shape(self.images), "guide_target": shape(self.targets),
            "guide_mask": shape(self.mask)}
