"""`OracleScorer`: an offline SIMULATION of an MLLM scorer from ground-truth labels.

It is not an MLLM: each image is found by `image_sha256` in `label_lookup` ({sha256: integer
levels over `attribute_names`}) and the true level of every requested attribute is corrupted
by a stated error model (the pixels are read only for the visibility errors' contrast and
brightness, `from_dataset`):

* with probability `accuracy` (default 0.884, the paper's average GPT-4o accuracy on
  CelebA, Section 4.4; one float, or {attribute: accuracy}) the true level is returned;
* otherwise a wrong level (never the true one) is returned:
  - error_model="uniform" (default): drawn uniformly from the other num_levels - 1 levels;
  - error_model="adjacent": a near miss, true level +1 or -1 with equal probability;
    at the ends of the scale (0 or num_levels - 1) the only in-range neighbour is used,
    so the stated accuracy holds exactly;
  - error_model="calibrated": the truth miscalibrated by `bias` and `compression`;
  - error_model="realistic": the preset `oracle_errors.REALISTIC`: per-attribute accuracies
    spread around `accuracy` (their mean), calibrated wrong answers, confusion with the most
    correlated attribute, visibility-dependent errors and missing answers.
  `confusion`, `visibility` and `missing_rate` apply to any error model (module
  `oracle_errors`; docs/scorers.md, "The oracle's error models", states each exactly).

The stated accuracy is P(answer == truth | answered), per attribute, on average over the
lookup images: what `scorer_accuracy`'s "exact" measures (missing answers left out).
The draw is a deterministic function of (seed, image sha256, attribute name) and the lookup:
the same image always gets the same answer, whatever the batch, its order or the other
attributes requested. Binary labels (CelebA's -1/+1, or 0/1 with binary=True) map to
levels 0 and num_levels - 1 (0 and 5).

`is_simulation` is True, `backend` is "oracle", `model` is f"oracle-acc{accuracy}" (with
"-adjacent" appended for that error model); with any other error model or option it is
f"oracle-acc{accuracy}-{error_model}-{digest of the parameters}" and the prompt version names
the lookup, so the answer cache never mixes them. Creating one logs a warning.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from . import oracle_errors as errs
from .base import MissingScoreError, OnResult, Scorer, logger
from .images import check_images, image_sha256
from .oracle_errors import Rates
from .prompt import Attribute

__all__ = ["OracleScorer", "labels_to_levels", "quantize_factors"]

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
  accuracy: one number in [0, 1] or {attribute: accuracy} (realistic: one number is the
    mean of per-attribute accuracies spread around it, `oracle_errors.preset_accuracies`).
  error_model: "uniform" | "adjacent" | "calibrated" | "realistic" (`oracle_errors`).
  bias, compression: the miscalibration of "calibrated" / "realistic" wrong answers (levels;
    None: the realistic preset's, -0.25 and 0.75).
  confusion: share in [0, 1] of wrong answers read from the most correlated attribute (one
    number or {attribute: share}); confusion_source: {a: b} overrides that attribute.
  visibility: in [0, 1): error-rate modulation by image contrast/brightness and weak levels.
  missing_rate: in [0, 1): share of images answered -1 for every attribute.
  image_stats: {sha256: (contrast, brightness)} (`oracle_errors.pixel_stats`), needed for
    visibility; `from_dataset` computes it.
  None means the realistic preset's value for error_model="realistic", off otherwise.
  """

  backend = "oracle"
  is_simulation = True

  def __init__(
      self,
      label_lookup: Mapping[str, Sequence[int]],
      attribute_names: Sequence[str],
      accuracy: Rates = 0.884,
      seed: int = 0,
      num_levels: int = 6,
      error_model: str = "uniform",
      *,
      bias: Optional[float] = None,
      compression: Optional[float] = None,
      confusion: Optional[Rates] = None,
      confusion_source: Optional[Mapping[str, str]] = None,
      visibility: Optional[float] = None,
      missing_rate: Optional[float] = None,
      image_stats: Optional[Mapping[str, Sequence[float]]] = None,
  ):
    if num_levels < 2:
      raise ValueError("num_levels must be >= 2")
    if error_model not in errs.ERROR_MODELS:
      raise ValueError(f"error_model must be one of {errs.ERROR_MODELS}, got {error_model!r}")
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
    self.seed = int(seed)
    self.num_levels = int(num_levels)
    self.error_model = error_model
    self._weak = np.array([errs.weakness(t, self.num_levels) for t in range(self.num_levels)])
    self._set_accuracies(accuracy)
    self.accuracy = dict(accuracy) if isinstance(accuracy, Mapping) else float(accuracy)
    self._set_calibration(bias, compression)
    self._set_options(confusion, confusion_source, visibility, missing_rate, image_stats)
    self.model, self.prompt_version = self._names(accuracy)
    logger.warning(
        "oracle scorer: SIMULATED scores from ground-truth labels "
        "(accuracy=%s, error_model=%s, seed=%d); this is not an MLLM",
        self.accuracy,
        error_model,
        self.seed,
    )

  # ------------------------------------------------------------------ the error model
  def _set_accuracies(self, accuracy: Rates) -> None:
    """self.accuracies {attribute: accuracy} (only those named, for a mapping)."""
    if isinstance(accuracy, Mapping):
      self.accuracies = errs.rates(accuracy, self.attribute_names, "accuracy")
      return
    single = errs.rates(accuracy, ["accuracy"], "accuracy")["accuracy"]
    if self.error_model == "realistic":
      spread = errs.REALISTIC["accuracy_spread"]
      self.accuracies = errs.preset_accuracies(self.attribute_names, single, spread)
    else:
      self.accuracies = {a: single for a in self.attribute_names}

  def _set_calibration(self, bias: Optional[float], compression: Optional[float]) -> None:
    """self.bias, self.compression (levels): the calibrated wrong answers' miscalibration."""
    calibrated = self.error_model in ("calibrated", "realistic")
    if not calibrated and (bias is not None or compression is not None):
      raise ValueError(f"bias and compression shape the wrong answers of error_model="
                       f"'calibrated' or 'realistic', not of {self.error_model!r}")
    preset = errs.REALISTIC
    self.bias = float(preset["bias"] if bias is None else bias) if calibrated else 0.0
    self.compression = (float(preset["compression"] if compression is None else compression)
                        if calibrated else 1.0)
    if not (np.isfinite(self.bias) and np.isfinite(self.compression) and self.compression >= 0):
      raise ValueError(f"bias must be finite and compression a finite number >= 0, got "
                       f"bias={bias!r}, compression={compression!r}")

  def _set_options(self, confusion, source, visibility, missing_rate, image_stats) -> None:
    """Confusion (rates, sources), visibility (per-attribute scales) and missing answers."""
    preset = errs.REALISTIC if self.error_model == "realistic" else {}
    pick = lambda value, key: preset.get(key, 0.0) if value is None else value
    self.confusion = errs.rates(pick(confusion, "confusion"), self.attribute_names, "confusion")
    self.visibility = errs.fraction(pick(visibility, "visibility"), "visibility")
    self.missing_rate = errs.fraction(pick(missing_rate, "missing_rate"), "missing_rate")
    self._shas = list(self.label_lookup)
    n = len(self.attribute_names)
    self._levels = (np.stack([self.label_lookup[h] for h in self._shas]) if self._shas
                    else np.zeros((0, n), np.int64))
    self.confusion_source = {}
    if source or any(self.confusion.values()):
      self.confusion_source = errs.confusion_sources(self._levels, self.attribute_names, source)
    self._scale: dict[str, float] = {}
    self._image_weight: dict[str, float] = {}
    if self.visibility:
      self._set_visibility(image_stats)

  def _set_visibility(self, image_stats: Optional[Mapping[str, Sequence[float]]]) -> None:
    """Error weights w = (1 + v (2 h - 1)) (1 + 2 v weakness(t)) and, per attribute, the
    scale k with mean(min(1, k w)) = 1 - accuracy over the lookup images."""
    if image_stats is None or any(h not in image_stats for h in self._shas):
      raise ValueError("visibility errors read each image's contrast and brightness: build the "
                       "oracle with OracleScorer.from_dataset(images, labels, ...) or pass "
                       "image_stats={sha256: (contrast, brightness)} for every lookup image")
    stats = np.array([image_stats[h] for h in self._shas], np.float64).reshape(-1, 2)
    v = self.visibility
    image_weight = 1.0 + v * (2.0 * errs.image_difficulty(stats) - 1.0)
    self._image_weight = dict(zip(self._shas, image_weight.tolist()))
    for a, acc in self.accuracies.items():
      level_weight = 1.0 + 2.0 * v * self._weak[self._levels[:, self._col[a]]]
      self._scale[a] = errs.error_scale(image_weight * level_weight, 1.0 - acc)

  def _is_legacy(self) -> bool:
    """The first oracle's model: uniform or adjacent errors at one accuracy, nothing else."""
    return (self.error_model in errs.LEGACY_ERROR_MODELS
            and not isinstance(self.accuracy, Mapping) and not any(self.confusion.values())
            and not self.visibility and not self.missing_rate)

  def error_parameters(self) -> dict:
    """Every parameter of the error model (JSON-ready; describe() and the model's digest)."""
    return {
        "accuracy_per_attribute": dict(self.accuracies),
        "bias": self.bias,
        "compression": self.compression,
        "confusion": {a: c for a, c in self.confusion.items() if c},
        "confusion_source": {a: list(s) for a, s in self.confusion_source.items()},
        "visibility": self.visibility,
        "missing_rate": self.missing_rate,
    }

  def _lookup_digest(self) -> str:
    h = hashlib.sha256("|".join(self.attribute_names).encode())
    for sha in sorted(self.label_lookup):
      h.update(sha.encode() + self.label_lookup[sha].astype("<i8").tobytes())
    return h.hexdigest()

  def _names(self, accuracy: Rates) -> tuple[str, str]:
    """(model, prompt_version): the legacy names for the first two models; otherwise a digest
    of the parameters in the model, and of the lookup in the version when answers depend on it
    (confusion's sources, visibility's quantiles)."""
    version = f"oracle-{self.error_model}-L{self.num_levels}-seed{self.seed}"
    if self._is_legacy():
      suffix = "" if self.error_model == "uniform" else "-adjacent"
      return f"oracle-acc{accuracy}{suffix}", version
    params = json.dumps({"error_model": self.error_model, **self.error_parameters()},
                        sort_keys=True)
    tag = hashlib.sha256(params.encode()).hexdigest()[:8]
    label = "map" if isinstance(accuracy, Mapping) else f"{accuracy}"
    if self.visibility or any(self.confusion.values()):
      version += f"-lookup{self._lookup_digest()[:12]}"
    return f"oracle-acc{label}-{self.error_model}-{tag}", version

  # ------------------------------------------------------------------ building and describing
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
    attributes: keep only these label columns (default: all). With visibility errors, the
    images' contrast and brightness (`oracle_errors.pixel_stats`) are read too."""
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
    first: dict[str, int] = {}
    for i, (im, lv) in enumerate(zip(imgs, levels)):
      h = image_sha256(im)
      if h in lookup and not np.array_equal(lookup[h], lv):
        logger.warning(
            "oracle: identical images with different labels (%s); keeping " "the first", h[:12]
        )
        continue
      lookup.setdefault(h, lv)
      first.setdefault(h, i)
    if errs.needs_pixels(kwargs) and kwargs.get("image_stats") is None:
      stats = errs.pixel_stats(imgs[list(first.values())])
      kwargs["image_stats"] = dict(zip(first, map(tuple, stats.tolist())))
    return cls(lookup, names, num_levels=num_levels, **kwargs)

  def describe(self) -> dict:
    d = super().describe()
    d.update(
        accuracy=self.accuracy,
        seed=self.seed,
        error_model=self.error_model,
        num_levels=self.num_levels,
    )
    if not self._is_legacy():
      d["error_parameters"] = self.error_parameters()
    return d

  # ------------------------------------------------------------------ the draws
  def _p_correct(self, sha: str, attr: str, level: int) -> float:
    """P(answer == truth) of this image and attribute (the stated accuracy on average)."""
    if not self.visibility:
      return self.accuracies[attr]
    weight = self._image_weight[sha] * (1.0 + 2.0 * self.visibility * self._weak[level])
    return 1.0 - min(1.0, self._scale[attr] * weight)

  def _draw(self, sha: str, attr: str, truth: np.ndarray) -> int:
    """The answer for one attribute of one image; truth: the image's levels [n]."""
    t = int(truth[self._col[attr]])
    d = hashlib.sha256(f"{self.seed}|{sha}|{attr}".encode()).digest()
    if errs.unit(d, 0) < self._p_correct(sha, attr, t):
      return t
    return self._wrong(sha, attr, t, truth, d)

  def _wrong(self, sha: str, attr: str, t: int, truth: np.ndarray, d: bytes) -> int:
    """A wrong level: a visibility miss, else a confusion, else the base error model's."""
    e = hashlib.sha256(f"{self.seed}|{sha}|{attr}|wrong".encode()).digest()
    if self.visibility and errs.unit(e, 0) < self._weak[t]:
      return int(errs.unit(e, 2) * t)  # read as absent or lower: uniform over 0..t-1
    source = self.confusion_source.get(attr)
    if source is not None and errs.unit(e, 1) < self.confusion.get(attr, 0.0):
      b, sign = source
      level = int(truth[self._col[b]])
      read = level if sign > 0 else self.num_levels - 1 - level
      if read != t:
        return read
    return self._base_wrong(t, d, e)

  def _base_wrong(self, t: int, d: bytes, e: bytes) -> int:
    top = self.num_levels - 1
    if self.error_model == "uniform":
      k = int.from_bytes(d[8:16], "little") % (self.num_levels - 1)
      return k if k < t else k + 1
    if self.error_model == "adjacent":
      if t == 0:
        return 1
      if t == top:
        return top - 1
      return t + (1 if int.from_bytes(d[8:16], "little") % 2 else -1)
    return errs.calibrated_wrong(t, self.bias, self.compression, self.num_levels,
                                 errs.unit(e, 2), errs.unit(e, 3))

  def _is_missing(self, sha: str) -> bool:
    """Whether the image gets no answer at all (-1 for every attribute)."""
    if not self.missing_rate:
      return False
    d = hashlib.sha256(f"{self.seed}|{sha}|missing".encode()).digest()
    return errs.unit(d, 0) < self.missing_rate

  def _score(
      self, images: np.ndarray, attributes: tuple[Attribute, ...], on_result: Optional[OnResult]
  ) -> np.ndarray:
    unknown = [a.name for a in attributes if a.name not in self._col]
    if unknown:
      raise MissingScoreError(
          f"oracle has no labels for attributes {unknown}; " f"it knows {self.attribute_names}"
      )
    no_accuracy = [a.name for a in attributes if a.name not in self.accuracies]
    if no_accuracy:
      raise MissingScoreError(f"oracle: the accuracy mapping has no entry for {no_accuracy}; "
                              f"it names {sorted(self.accuracies)}")
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
      if self._is_missing(h):
        out[i] = -1
      else:
        out[i] = [self._draw(h, a.name, truth) for a in attributes]
      if on_result is not None and h not in done:
        done.add(h)
        on_result(h, [int(v) for v in out[i]], {"simulated": True})
    return out
