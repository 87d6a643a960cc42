"""Append-only JSONL answer cache and `CachedScorer`, which puts it in front of any scorer.

One line per answer, written, flushed and fsync'd as soon as the answer arrives and
before it is used, so a killed run loses nothing it paid for and resumes with zero
repeated requests:

    {"v": 1, "sha256": "<image sha256>", "backend": "openai", "model": "gpt-4o",
     "prompt_version": "fig3-v1", "attributes": ["bangs", "bald"],
     "descriptions": {"bangs": "hair covering the forehead"},
     "scores": {"bangs": 3, "bald": 0}, "is_simulation": false,
     "usage": {"prompt_tokens": 312, "completion_tokens": 14}, "time": "2026-11-25T16:40:00Z"}

Key: (sha256, backend, model, prompt_version). Answers are stored per attribute, so a
later request for a subset of the attributes is served from the cache, and a request
with new attributes asks the model only for the missing ones. An answer is reused only
if the attribute's description (shown to the model) is the same as when it was asked.
Only valid answers are stored: an image that got -1 (no valid answer) is asked again
on the next run. A half-written last line (a crash mid-write) is skipped with a warning
and the next append starts on a fresh line. No credential, base URL or header is ever
written: entries hold only the fields above.
"""

from __future__ import annotations

import datetime
import json
import os
import threading
from typing import Any, Iterator, Optional, Union

import numpy as np

from .base import OnResult, Scorer, ScorerLike, logger
from .images import image_sha256
from .prompt import Attribute, normalize_attributes

__all__ = ["ScoreCache", "CachedScorer", "CACHE_FORMAT_VERSION", "read_jsonl_entries"]

CACHE_FORMAT_VERSION = 1

Key = tuple[str, str, str, str]  # (sha256, backend, model, prompt_version)


def read_jsonl_entries(path: str) -> Iterator[dict]:
  """Valid JSON-object lines of a JSONL file; broken lines are skipped with a warning."""
  with open(path, "rb") as f:
    data = f.read()
  lines = data.split(b"\n")
  for lineno, line in enumerate(lines, 1):
    if not line.strip():
      continue
    try:
      obj = json.loads(line)
      if not isinstance(obj, dict):
        raise ValueError("not an object")
    except ValueError:
      where = (
          "last line (half-written, e.g. a crash mid-write)"
          if lineno >= len(lines) - 1
          else f"line {lineno}"
      )
      logger.warning("score cache %s: skipping unreadable %s", path, where)
      continue
    yield obj


class ScoreCache:
  """The JSONL file plus an in-memory index {key: {attribute: (score, description)}}."""

  def __init__(self, path: Union[str, os.PathLike]):
    self.path = os.fspath(path)
    self._index: dict[Key, dict[str, tuple[int, Optional[str]]]] = {}
    self._sim: dict[tuple[str, str], bool] = {}
    self._lock = threading.Lock()
    self._fh = None
    self.num_entries = 0
    if os.path.exists(self.path):
      for e in read_jsonl_entries(self.path):
        self._add(e)

  def _add(self, e: dict) -> None:
    try:
      key = (str(e["sha256"]), str(e["backend"]), str(e["model"]), str(e["prompt_version"]))
      scores = {str(k): int(v) for k, v in e["scores"].items()}
    except (KeyError, TypeError, ValueError, AttributeError):
      logger.warning("score cache %s: skipping an entry without the expected fields", self.path)
      return
    desc = e.get("descriptions") or {}
    slot = self._index.setdefault(key, {})
    for k, v in scores.items():
      if v >= -1:
        slot[k] = (v, desc.get(k))
    self._sim[(key[1], key[2])] = bool(e.get("is_simulation", False))
    self.num_entries += 1

  def __len__(self) -> int:
    return self.num_entries

  def keys(self) -> list[Key]:
    return list(self._index)

  def lookup(
      self, sha: str, backend: str, model: str, prompt_version: str, attributes: Any
  ) -> dict[str, int]:
    """{name: score} for the requested attributes already answered (same description)."""
    slot = self._index.get((sha, backend, model, prompt_version))
    if not slot:
      return {}
    out = {}
    for a in normalize_attributes(attributes):
      hit = slot.get(a.name)
      if hit is not None and hit[1] == a.description and hit[0] >= 0:
        out[a.name] = hit[0]
    return out

  def append(
      self,
      sha: str,
      backend: str,
      model: str,
      prompt_version: str,
      attributes: Any,
      levels: list[int],
      *,
      is_simulation: bool = False,
      usage: Optional[dict] = None,
      fsync: bool = True,
  ) -> None:
    """Write one answer durably (flush + fsync) and index it. fsync=False only flushes
    (used for free, re-computable simulated scores; call `sync()` at the end)."""
    attrs = normalize_attributes(attributes)
    entry: dict[str, Any] = {
        "v": CACHE_FORMAT_VERSION,
        "sha256": sha,
        "backend": backend,
        "model": model,
        "prompt_version": prompt_version,
        "attributes": [a.name for a in attrs],
    }
    descs = {a.name: a.description for a in attrs if a.description}
    if descs:
      entry["descriptions"] = descs
    entry["scores"] = {a.name: int(v) for a, v in zip(attrs, levels)}
    entry["is_simulation"] = bool(is_simulation)
    tokens = {
        k: int(usage[k]) for k in ("prompt_tokens", "completion_tokens") if usage and k in usage
    }
    if tokens:
      entry["usage"] = tokens
    entry["time"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    line = (json.dumps(entry, separators=(",", ":")) + "\n").encode("utf-8")
    with self._lock:
      if self._fh is None:
        self._open_for_append()
      self._fh.write(line)
      self._fh.flush()
      if fsync:
        os.fsync(self._fh.fileno())
      self._add(entry)

  def sync(self) -> None:
    with self._lock:
      if self._fh is not None:
        self._fh.flush()
        os.fsync(self._fh.fileno())

  def _open_for_append(self) -> None:
    d = os.path.dirname(os.path.abspath(self.path))
    os.makedirs(d, exist_ok=True)
    fh = open(self.path, "ab")
    # A crash mid-write can leave a last line without its newline: start on a fresh line.
    if fh.tell() > 0:
      with open(self.path, "rb") as r:
        r.seek(-1, os.SEEK_END)
        if r.read(1) != b"\n":
          fh.write(b"\n")
          fh.flush()
    self._fh = fh

  def close(self) -> None:
    with self._lock:
      if self._fh is not None:
        self._fh.close()
        self._fh = None

  def __del__(self):  # pragma: no cover
    try:
      self.close()
    except Exception:  # noqa: BLE001
      pass


class CachedScorer(Scorer):
  """Wraps any scorer: answers come from the cache when present; only misses are sent,
  and each new answer is written to the cache the moment it arrives."""

  def __init__(self, scorer: ScorerLike, cache: Union[str, os.PathLike, ScoreCache]):
    self.inner = scorer
    self.cache = cache if isinstance(cache, ScoreCache) else ScoreCache(cache)
    self.backend = scorer.backend
    self.model = scorer.model
    self.is_simulation = bool(scorer.is_simulation)
    self.prompt_version = getattr(scorer, "prompt_version", "unversioned")
    self.num_levels = getattr(scorer, "num_levels", 6)
    self.last_hits = 0
    self.last_misses = 0

  def describe(self) -> dict:
    d = self.inner.describe() if hasattr(self.inner, "describe") else super().describe()
    d["cache_path"] = self.cache.path
    return d

  def __getattr__(self, name: str) -> Any:  # usage, last_usage, dry_run... of the inner scorer
    if name == "inner":
      raise AttributeError(name)
    return getattr(self.inner, name)

  def _score(
      self, images: np.ndarray, attributes: tuple[Attribute, ...], on_result: Optional[OnResult]
  ) -> np.ndarray:
    key = (self.backend, self.model, self.prompt_version)
    hashes = [image_sha256(im) for im in images]
    names = [a.name for a in attributes]
    found: dict[str, dict[str, int]] = {}
    # group the images that still need answers by the set of attributes they miss
    groups: dict[tuple[str, ...], list[int]] = {}
    seen: set[str] = set()
    for i, h in enumerate(hashes):
      if h in seen:
        continue
      seen.add(h)
      found[h] = self.cache.lookup(h, *key, attributes)
      missing = tuple(n for n in names if n not in found[h])
      if missing:
        groups.setdefault(missing, []).append(i)
      elif on_result is not None:
        on_result(h, [found[h][n] for n in names], {"cached": True})
    n_miss = sum(len(v) for v in groups.values())
    self.last_hits, self.last_misses = len(seen) - n_miss, n_miss
    logger.info(
        "%s:%s cache %s: %d hits, %d to request",
        self.backend,
        self.model,
        self.cache.path,
        self.last_hits,
        self.last_misses,
    )
    by_name = {a.name: a for a in attributes}
    for missing, idx in groups.items():
      sub_attrs = [by_name[n] for n in missing]

      written: set[str] = set()

      def write(h: str, levels: list, info: dict, _attrs=sub_attrs, _w=written) -> None:
        if h in _w:
          return
        _w.add(h)
        if all(0 <= v for v in levels):  # only valid answers are cached
          # paid answers are fsync'd one by one; free simulated ones once at the end
          self.cache.append(
              h,
              *key,
              _attrs,
              levels,
              is_simulation=self.is_simulation,
              usage=info,
              fsync=not self.is_simulation,
          )
        found[h].update({a.name: int(v) for a, v in zip(_attrs, levels)})

      sub = images[idx]
      if isinstance(self.inner, Scorer):
        res = self.inner.score(sub, sub_attrs, on_result=write)
      else:  # a foreign scorer without on_result: write once the batch returns
        res = self.inner.score(sub, [a.name for a in sub_attrs])
      res = np.asarray(res)
      for j, i in enumerate(idx):
        write(hashes[i], [int(v) for v in res[j]], {})
      self.cache.sync()
    out = np.full((len(images), len(names)), -1, np.int32)
    for i, h in enumerate(hashes):
      out[i] = [found[h].get(n, -1) for n in names]
    if on_result is not None:
      for missing, idx in groups.items():
        for i in idx:
          on_result(hashes[i], [int(v) for v in out[i]], {"cached": False})
    return out
