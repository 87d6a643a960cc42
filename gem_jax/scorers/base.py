"""The scorer protocol and the errors every scorer raises.

    score(images: uint8[B, H, W, 3], attributes) -> np.ndarray int32 [B, n]

Values are levels 0..5 (0 = attribute absent, 5 = strongest expression) and -1 for a
missing answer (the MLLM never gave a valid one). `attributes` is a list of names, of
`Attribute(name, description)`, or a {name: description} dict; column j of the result
belongs to the j-th attribute.

Every scorer names itself with `backend` ("openai", "gemini", "oracle", "replay"), `model`
and `is_simulation` (True for scores that did not come from an MLLM looking at the image,
e.g. the oracle). `prompt_version` is the question's version, part of the cache key.
"""

from __future__ import annotations

import abc
import logging
from typing import Any, Callable, Optional, Protocol, Sequence, runtime_checkable

import numpy as np

from .images import check_images
from .prompt import PROMPT_VERSION, Attribute, normalize_attributes

__all__ = [
    "Scorer",
    "ScorerLike",
    "OnResult",
    "ScorerError",
    "ScorerAuthError",
    "ScorerRequestError",
    "MissingScoreError",
    "redact",
    "logger",
]

logger = logging.getLogger("gem_jax.scorers")

# Called once per unique image as soon as its answer is known, before it is used:
# on_result(image_sha256, levels (list of n ints, -1 = missing), info dict).
OnResult = Callable[[str, list, dict], None]


class ScorerError(RuntimeError):
  """Base class of scorer failures."""


class ScorerAuthError(ScorerError):
  """The API key is absent, invalid or lacks permission (HTTP 401/403). Never retried."""


class ScorerRequestError(ScorerError):
  """A request failed for good: a non-retryable HTTP error, or retries exhausted."""


class MissingScoreError(ScorerError, KeyError):
  """A replay/oracle scorer was asked about an image (or attribute) it has no score for."""

  def __str__(self) -> str:  # KeyError would repr() the message
    return str(self.args[0]) if self.args else ""


def redact(text: Any, *secrets: Optional[str]) -> str:
  """`str(text)` with every given secret replaced by '***'."""
  s = str(text)
  for secret in secrets:
    if secret and len(secret) >= 4:
      s = s.replace(secret, "***")
  return s


@runtime_checkable
class ScorerLike(Protocol):
  """Structural type of anything usable as a scorer."""

  backend: str
  model: str
  is_simulation: bool

  def score(self, images: np.ndarray, attributes: Sequence[Any]) -> np.ndarray:
    ...


class Scorer(abc.ABC):
  """Abstract base of all scorers; subclasses implement `_score`."""

  backend: str = "abstract"
  model: str = ""
  is_simulation: bool = False
  prompt_version: str = PROMPT_VERSION
  num_levels: int = 6

  def score(
      self, images: Any, attributes: Any, *, on_result: Optional[OnResult] = None
  ) -> np.ndarray:
    """Scores int32 [B, n] (-1 = missing) for uint8 images [B, H, W, 3].

    on_result(sha256, levels, info) is called once per unique image as soon as its
    answer is known (this is how `CachedScorer` persists answers before they are used).
    """
    imgs = check_images(images)
    attrs = normalize_attributes(attributes)
    if imgs.shape[0] == 0:
      return np.zeros((0, len(attrs)), np.int32)
    out = np.asarray(self._score(imgs, attrs, on_result), dtype=np.int32)
    if out.shape != (imgs.shape[0], len(attrs)):
      raise AssertionError(
          f"{type(self).__name__} returned shape {out.shape}, "
          f"expected {(imgs.shape[0], len(attrs))}"
      )
    if out.size and (out.min() < -1 or out.max() > self.num_levels - 1):
      raise AssertionError(
          f"{type(self).__name__} returned levels outside " f"-1..{self.num_levels - 1}"
      )
    return out

  @abc.abstractmethod
  def _score(
      self, images: np.ndarray, attributes: tuple[Attribute, ...], on_result: Optional[OnResult]
  ) -> np.ndarray:
    """images: validated uint8 [B, H, W, 3] (B >= 1); return int [B, n]."""

  def describe(self) -> dict:
    """What to save with a run (never contains credentials)."""
    return {
        "backend": self.backend,
        "model": self.model,
        "is_simulation": bool(self.is_simulation),
        "prompt_version": self.prompt_version,
    }

  def __repr__(self) -> str:
    sim = ", SIMULATION" if self.is_simulation else ""
    return f"{type(self).__name__}(backend={self.backend!r}, model={self.model!r}{sim})"
