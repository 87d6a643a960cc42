"""`OracleScorer`: an offline SIMULATION of an MLLM scorer from ground-truth labels.

It is not an MLLM and never looks at pixels beyond hashing them: each image is found
by `image_sha256` in `label_lookup` ({sha256: integer levels over `attribute_names`}),
and the true level of every requested attribute is corrupted by a stated error model:

* with probability `accuracy` (default 0.884, the paper's average GPT-4o accuracy on
  CelebA, Section 4.4) the true level is returned;
* otherwise a wrong level is returned:
  - error_model="uniform" (default): drawn uniformly from the other num_levels - 1 levels;
  - error_model="adjacent": a near miss, true level +1 or -1 with equal probability;
    at the ends of the scale (0 or num_levels - 1) the only in-range neighbour is used,
    so the stated accuracy holds exactly.

The draw is a deterministic function of (seed, image sha256, attribute name): the same
image always gets the same answer, whatever the batch, its order or the other
attributes requested. Binary labels (CelebA's -1/+1, or 0/1 with binary=True) map to
levels 0 and num_levels - 1 (0 and 5).

`is_simulation` is True, `backend` is "oracle", `model` is f"oracle-acc{accuracy}"
(with "-adjacent" appended for that error model), and creating one logs a warning.
"""

from __future__ import annotations

import hashlib
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from .base import MissingScoreError, OnResult, Scorer, logger
from .images import check_images, image_sha256
from .prompt import Attribute

__all__ = ["OracleScorer", "labels_to_levels", "quantize_factors"]

_ERROR_MODELS = ("uniform", "adjacent")


def labels_to_levels(
    labels: np.ndarray, num_levels: int = 6, binary: Optional[bool] = None
) -> np.ndarray:
  """Integer levels [N, n] in 0..num_levels-1 from data-set labels [N, n].

  binary=None: a label matrix whose values are all in {-1, +1} is binary (CelebA); else a
  column holding -1 and only -1/+1 is binary; other columns must already hold integer
  levels. binary=True: every column is binary
  ({-1, +1} or {0, 1}). Binary columns map to 0 and num_levels - 1.
  """
  labels = np.asarray(labels)
  if labels.ndim != 2:
    raise ValueError(f"labels must be [N, n_attributes], got shape {labels.shape}")
  if not (np.issubdtype(labels.dtype, np.integer) or np.issubdtype(labels.dtype, np.bool_)):
    if not np.all(np.equal(np.mod(labels, 1), 0)):
      raise ValueError(
          "labels are not integers; quantize continuous factors first " "(see quantize_factors)"
      )
  labels = labels.astype(np.int64)
  out = labels.copy()
  top = num_levels - 1
  if binary is None and labels.size and set(np.unique(labels).tolist()) <= {-1, 1}:
    binary = True  # a whole -1/+1 label matrix (CelebA), even if a column is constant
  for j in range(labels.shape[1]):
    col = labels[:, j]
    vals = set(np.unique(col).tolist())
    is_bin = binary if binary is not None else (vals <= {-1, 1} and -1 in vals)
    if is_bin:
      if not vals <= {-1, 0, 1} or (-1 in vals and 0 in vals):
        raise ValueError(f"column {j} is not binary: values {sorted(vals)}")
      out[:, j] = np.where(col > 0, top, 0)
    elif col.min() < 0 or col.max() > top:
      raise ValueError(f"column {j} has levels outside 0..{top}: {sorted(vals)[:10]}")
  return out


def quantize_factors(values: np.ndarray, num_levels: int = 6) -> np.ndarray:
  """Continuous ground-truth factors [N, n] -> levels 0..num_levels-1 by per-column quantiles."""
  values = np.asarray(values, np.float64)
  out = np.zeros(values.shape, np.int64)
  for j in range(values.shape[1]):
    edges = np.quantile(values[:, j], np.linspace(0, 1, num_levels + 1)[1:-1])
    out[:, j] = np.searchsorted(edges, values[:, j], side="right")
  return out


class OracleScorer(Scorer):
  """SIMULATED scores from ground-truth labels (see the module docstring for the error model).

  label_lookup: {image sha256: levels [len(attribute_names)]}; attribute_names: the
  names of those label columns. `score` accepts any subset of them, in any order.
  """

  backend = "oracle"
  is_simulation = True

  def __init__(
      self,
      label_lookup: Mapping[str, Sequence[int]],
      attribute_names: Sequence[str],
      accuracy: float = 0.884,
      seed: int = 0,
      num_levels: int = 6,
      error_model: str = "uniform",
  ):
    if not 0.0 <= accuracy <= 1.0:
      raise ValueError("accuracy must be in [0, 1]")
    if num_levels < 2:
      raise ValueError("num_levels must be >= 2")
    if error_model not in _ERROR_MODELS:
      raise ValueError(f"error_model must be one of {_ERROR_MODELS}")
    self.attribute_names = [str(a) for a in attribute_names]
    self._col = {a: j for j, a in enumerate(self.attribute_names)}
    if len(self._col) != len(self.attribute_names):
      raise ValueError("duplicate attribute names")
    self.label_lookup = {str(k): np.asarray(v, np.int64) for k, v in label_lookup.items()}
    for k, v in self.label_lookup.items():
      if v.shape != (len(self.attribute_names),):
        raise ValueError(
            f"labels of image {k[:12]} have shape {v.shape}, "
            f"expected ({len(self.attribute_names)},)"
        )
      if v.min() < 0 or v.max() >= num_levels:
        raise ValueError(f"labels of image {k[:12]} are outside 0..{num_levels - 1}")
    self.accuracy = float(accuracy)
    self.seed = int(seed)
    self.num_levels = int(num_levels)
    self.error_model = error_model
    self.model = f"oracle-acc{accuracy}" + ("" if error_model == "uniform" else "-adjacent")
    self.prompt_version = f"oracle-{error_model}-L{num_levels}-seed{seed}"
    logger.warning(
        "oracle scorer: SIMULATED scores from ground-truth labels "
        "(accuracy=%s, error_model=%s, seed=%d); this is not an MLLM",
        self.accuracy,
        error_model,
        self.seed,
    )

  @classmethod
  def from_dataset(
      cls,
      images: np.ndarray,
      labels: np.ndarray,
      label_names: Sequence[str],
      attributes: Optional[Sequence[str]] = None,
      *,
      binary: Optional[bool] = None,
      num_levels: int = 6,
      **kwargs: Any,
  ) -> "OracleScorer":
    """Build the lookup from a data set: images uint8 [N, H, W, 3], labels [N, n_all]
    over `label_names` (binary -1/+1 columns become 0/5, see `labels_to_levels`).
    attributes: keep only these label columns (default: all)."""
    imgs = check_images(images)
    levels = labels_to_levels(labels, num_levels=num_levels, binary=binary)
    if levels.shape[0] != imgs.shape[0] or levels.shape[1] != len(label_names):
      raise ValueError(
          f"labels {levels.shape} do not match images ({imgs.shape[0]}) "
          f"and label_names ({len(label_names)})"
      )
    names = [str(n) for n in label_names]
    if attributes is not None:
      cols = []
      for a in attributes:
        if a not in names:
          raise ValueError(f"attribute {a!r} is not among the labels {names}")
        cols.append(names.index(a))
      levels, names = levels[:, cols], [names[c] for c in cols]
    lookup: dict[str, np.ndarray] = {}
    for im, lv in zip(imgs, levels):
      h = image_sha256(im)
      if h in lookup and not np.array_equal(lookup[h], lv):
        logger.warning(
            "oracle: identical images with different labels (%s); keeping " "the first", h[:12]
        )
        continue
      lookup.setdefault(h, lv)
    return cls(lookup, names, num_levels=num_levels, **kwargs)

  def describe(self) -> dict:
    d = super().describe()
    d.update(
        accuracy=self.accuracy,
        seed=self.seed,
        error_model=self.error_model,
        num_levels=self.num_levels,
    )
    return d

  def _draw(self, sha: str, attr: str, true_level: int) -> int:
    d = hashlib.sha256(f"{self.seed}|{sha}|{attr}".encode()).digest()
    u = int.from_bytes(d[:8], "little") / 2.0**64
    if u < self.accuracy:
      return int(true_level)
    r = int.from_bytes(d[8:16], "little")
    top = self.num_levels - 1
    if self.error_model == "uniform":
      k = r % (self.num_levels - 1)
      return k if k < true_level else k + 1
    if true_level == 0:
      return 1
    if true_level == top:
      return top - 1
    return true_level + (1 if r % 2 else -1)

  def _score(
      self, images: np.ndarray, attributes: tuple[Attribute, ...], on_result: Optional[OnResult]
  ) -> np.ndarray:
    unknown = [a.name for a in attributes if a.name not in self._col]
    if unknown:
      raise MissingScoreError(
          f"oracle has no labels for attributes {unknown}; " f"it knows {self.attribute_names}"
      )
    cols = [self._col[a.name] for a in attributes]
    out = np.empty((len(images), len(attributes)), np.int32)
    done: set[str] = set()
    for i, im in enumerate(images):
      h = image_sha256(im)
      truth = self.label_lookup.get(h)
      if truth is None:
        raise MissingScoreError(
            f"oracle: image {i} (sha256 {h[:12]}...) is not in the label lookup; the "
            "oracle can only score images of the data set it was built from (pixels "
            "must be identical, e.g. the same crop and resize)"
        )
      out[i] = [self._draw(h, a.name, truth[c]) for a, c in zip(attributes, cols)]
      if on_result is not None and h not in done:
        done.add(h)
        on_result(h, [int(v) for v in out[i]], {"simulated": True})
    return out
