"""The request machinery under `APIScorer`: retry policy, rate limiter (and which default limit
applies to which endpoint), usage counters, error classes, Retry-After and rate-limit header
parsing, the first-request gate and `run_sync`.

`run_sync` runs a coroutine from synchronous code, also inside Jupyter (where an event
loop is already running: the coroutine then runs on a fresh loop in a worker thread).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import email.utils
import enum
import random
import re
import time
import urllib.parse
from typing import Any, Awaitable, Callable, Optional, TypeVar

from .cost import estimate_cost

__all__ = [
    "RetryPolicy",
    "UsageStats",
    "RateLimiter",
    "RawAnswer",
    "ErrorKind",
    "Classified",
    "FirstRequestGate",
    "run_sync",
    "parse_retry_after",
    "parse_duration",
    "parse_rate_limit_wait",
    "is_official_endpoint",
    "resolve_rate_limit",
]

T = TypeVar("T")


def run_sync(make_coro: Callable[[], Awaitable[T]]) -> T:
  """Run `make_coro()` to completion from sync code, with or without a running loop."""
  try:
    asyncio.get_running_loop()
  except RuntimeError:
    return asyncio.run(make_coro())  # type: ignore[arg-type]
  # A loop is running in this thread (Jupyter, or sync code called from async code):
  # asyncio.run would refuse, so run on a fresh loop in a worker thread and wait.
  with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="gem-scorer") as ex:
    return ex.submit(lambda: asyncio.run(make_coro())).result()  # type: ignore[arg-type]


@dataclasses.dataclass
class RetryPolicy:
  """max_retries: failed attempts retried per image (429/5xx/timeouts/connection errors).
  Backoff before retry k (k = 1, 2, ...): min(backoff_max_s, backoff_initial_s *
  backoff_multiplier**(k-1)) scaled by a uniform factor in [1 - jitter, 1 + jitter];
  a Retry-After of R seconds makes the wait at least R (plus up to 10% jitter),
  capped at retry_after_max_s. max_reasks: re-asks after a malformed answer."""

  max_retries: int = 6
  backoff_initial_s: float = 1.0
  backoff_max_s: float = 60.0
  backoff_multiplier: float = 2.0
  jitter: float = 0.25
  retry_after_max_s: float = 300.0
  max_reasks: int = 2

  def backoff(self, attempt: int, retry_after: Optional[float] = None) -> float:
    d = self.backoff_initial_s * self.backoff_multiplier ** (attempt - 1)
    d = min(self.backoff_max_s, d)
    d *= random.uniform(1.0 - self.jitter, 1.0 + self.jitter)
    if retry_after is not None and retry_after > 0:
      ra = min(retry_after, self.retry_after_max_s)
      d = ra + random.uniform(0.0, 0.1 * ra)
    return max(0.0, d)


@dataclasses.dataclass
class UsageStats:
  """Counters of one scorer (cumulative) or one run. cost_usd is an ESTIMATE from
  `gem_jax.scorers.cost.PRICES_PER_MTOK`; None when the model's price is unknown."""

  images: int = 0
  requests: int = 0
  retries: int = 0
  reasks: int = 0
  missing: int = 0
  prompt_tokens: int = 0
  completion_tokens: int = 0
  cost_usd: Optional[float] = None

  def add_tokens(self, pt: int, ct: int, price: Optional[tuple[float, float]]) -> None:
    self.prompt_tokens += pt
    self.completion_tokens += ct
    c = estimate_cost(pt, ct, price)
    if c is not None:
      self.cost_usd = (self.cost_usd or 0.0) + c

  def merge(self, other: "UsageStats") -> None:
    for f in dataclasses.fields(self):
      a, b = getattr(self, f.name), getattr(other, f.name)
      if f.name == "cost_usd":
        setattr(self, f.name, None if a is None and b is None else (a or 0.0) + (b or 0.0))
      else:
        setattr(self, f.name, a + b)

  def postfix(self) -> dict:
    cost = "n/a" if self.cost_usd is None else f"~${self.cost_usd:.3f}"
    return {
        "req": self.requests,
        "retry": self.retries,
        "reask": self.reasks,
        "tok": self.prompt_tokens + self.completion_tokens,
        "cost": cost,
    }

  def as_dict(self) -> dict:
    return dataclasses.asdict(self)


def is_official_endpoint(base_url: Optional[str], host: str) -> bool:
  """True for the vendor's own endpoint: no base_url, or one whose host is `host` or a
  sub-domain of it ("api.openai.com", "googleapis.com"); False for any other server."""
  if base_url is None:
    return True
  name = (urllib.parse.urlsplit(base_url).hostname or "").lower()
  return name == host or name.endswith("." + host)


def resolve_rate_limit(requested: Optional[float], official_default: float,
                       official: bool) -> Optional[float]:
  """The requests-per-minute limit to apply (None: no limit).

  requested: None -> `official_default` on the vendor's endpoint and no limit on a custom
  base_url (a local server is not throttled by the vendor's quota); 0 -> no limit; else as is.
  """
  if requested is None:
    return float(official_default) if official else None
  return float(requested) if requested > 0 else None


class RateLimiter:
  """At most `requests_per_minute` request starts per minute (evenly spaced); `pause_for`
  holds every caller back (Retry-After on 429, a used-up quota in the rate-limit headers).
  None/0 = no rate limit. `clock` (seconds) and `sleep` are injectable for tests."""

  def __init__(self, requests_per_minute: Optional[float],
               clock: Callable[[], float] = time.monotonic,
               sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep):
    self.interval = 60.0 / requests_per_minute if requests_per_minute else 0.0
    self._clock, self._sleep = clock, sleep
    self._next = 0.0
    self._paused_until = 0.0
    self._lock = asyncio.Lock()

  def pause_for(self, seconds: float) -> bool:
    """No request starts for `seconds` from now; True when no pause was running before."""
    now = self._clock()
    was_paused = self._paused_until > now
    self._paused_until = max(self._paused_until, now + seconds)
    return not was_paused

  async def acquire(self) -> None:
    while True:
      async with self._lock:
        now = self._clock()
        start = max(now, self._next, self._paused_until)
        self._next = start + self.interval
      if start > now:
        await self._sleep(start - now)
      if self._clock() >= self._paused_until - 1e-3:
        return


@dataclasses.dataclass
class RawAnswer:
  """One answer. wait_s: seconds the server asks to hold the next request (its request quota
  is used up, e.g. OpenAI's x-ratelimit-remaining-requests: 0); None when it says nothing."""

  text: Optional[str]
  prompt_tokens: int = 0
  completion_tokens: int = 0
  wait_s: Optional[float] = None


class ErrorKind(enum.Enum):
  AUTH = "auth"  # 401/403: bad or absent key -> immediate error
  RATE_LIMIT = "rate_limit"  # 429 -> retry after Retry-After / backoff, pause everyone
  TRANSIENT = "transient"  # 5xx, 408, 409, timeouts, connection errors -> retry
  FATAL = "fatal"  # other 4xx -> immediate error


@dataclasses.dataclass
class Classified:
  kind: ErrorKind
  status: Optional[int] = None
  message: str = ""
  retry_after: Optional[float] = None


def parse_retry_after(headers: Any) -> Optional[float]:
  """Seconds from `retry-after-ms` / `Retry-After` (seconds or HTTP date); None if absent."""
  if headers is None:
    return None
  try:
    ms = headers.get("retry-after-ms")
    if ms is not None:
      return max(0.0, float(ms) / 1000.0)
  except (TypeError, ValueError):
    pass
  ra = headers.get("retry-after")
  if ra is None:
    return None
  try:
    return max(0.0, float(ra))
  except (TypeError, ValueError):
    pass
  try:
    dt = email.utils.parsedate_to_datetime(ra)
    return max(0.0, dt.timestamp() - time.time())
  except (TypeError, ValueError, IndexError):
    return None


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def parse_duration(text: Any) -> Optional[float]:
  """Seconds from a Go-style duration ("1s", "6m0s", "20ms", "1h2m3.5s") or a bare number of
  seconds; None when absent or unparsable."""
  if text is None:
    return None
  text = str(text).strip()
  try:
    return max(0.0, float(text))
  except ValueError:
    pass
  parts = _DURATION_PART.findall(text)
  if not parts or "".join(n + u for n, u in parts) != text:
    return None
  return sum(float(n) * _UNIT_S[u] for n, u in parts)


def parse_rate_limit_wait(headers: Any) -> Optional[float]:
  """Seconds to hold new requests: `x-ratelimit-reset-requests` when
  `x-ratelimit-remaining-requests` is 0 (OpenAI's headers); None otherwise."""
  if headers is None:
    return None
  try:
    remaining = float(headers.get("x-ratelimit-remaining-requests"))
  except (TypeError, ValueError):
    return None
  return parse_duration(headers.get("x-ratelimit-reset-requests")) if remaining <= 0 else None


class FirstRequestGate:
  """Lets the first request out alone; the others wait until it has an outcome."""

  def __init__(self) -> None:
    self._started = False
    self._open = asyncio.Event()

  async def enter(self) -> bool:
    if not self._started:
      self._started = True
      return True
    await self._open.wait()
    return False

  def open(self) -> None:
    self._open.set()
