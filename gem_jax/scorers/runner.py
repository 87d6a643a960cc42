"""Shared async request runner of the API scorers (OpenAI-compatible, Gemini).

What it does for every image (one request carrying all attributes):
* concurrency limit (`asyncio.Semaphore(concurrency)`) and a requests-per-minute limiter
  (requests are spaced 60/rpm seconds apart; by default only on the vendor's endpoint);
* an answer whose rate-limit headers say the request quota is used up (OpenAI's
  x-ratelimit-remaining-requests: 0) holds every new request until the quota resets;
* the very first request goes out alone: a bad key, a wrong model name or an unsupported
  option costs exactly one request, whatever the concurrency;
* retries with exponential backoff and jitter on HTTP 429, 408, 409, 5xx, timeouts and
  connection errors; a `Retry-After` header (or Gemini's RetryInfo) is honoured as a
  minimum wait and pauses every worker, not just the one that got the 429;
* a bounded re-ask (default 2) when the answer is not valid JSON with every attribute,
  then -1 for that image (logged);
* HTTP 401/403: an immediate `ScorerAuthError` naming the environment variable, no retry;
  other 4xx (bad request, unknown model, exhausted quota): an immediate
  `ScorerRequestError`. Retries exhausted: `ScorerRequestError` (or -1 with
  on_exhausted="missing"). Answers already delivered through `on_result` (the cache)
  are kept, so a rerun resumes where it stopped;
* a tqdm progress bar with requests, retries, re-asks, tokens and the ESTIMATED cost.

The retry policy, rate limiter, usage counters and `run_sync` are in `retry.py`.
"""

from __future__ import annotations

import abc
import asyncio
import dataclasses
import os
from typing import Any, Optional

import numpy as np
from tqdm import tqdm  # plain text bar: works in terminals, logs and notebooks

from .base import OnResult, Scorer, ScorerAuthError, ScorerRequestError, logger, redact
from .cost import DryRunEstimate, dry_run, price_for
from .images import check_images, encode_png, image_sha256
from .prompt import (
    Attribute,
    MalformedAnswer,
    Prompt,
    build_prompt,
    normalize_attributes,
    parse_answer,
)
from .retry import (
    Classified,
    ErrorKind,
    FirstRequestGate,
    RateLimiter,
    RawAnswer,
    RetryPolicy,
    UsageStats,
    run_sync,
)

__all__ = ["APIScorer"]


class APIScorer(Scorer):
  """Base of the network scorers. Subclasses provide the client and one request:

  * `_make_client()` -> a client object (created inside the event loop of each run)
  * `async _aclose(client)`
  * `async _request(client, png: bytes, prompt: Prompt, attributes) -> RawAnswer`
  * `_classify(exc) -> Classified | None` (None: not a request error -> re-raised)
  """

  api_key_env: str = ""
  is_simulation = False

  def __init__(
      self,
      *,
      model: str,
      concurrency: int = 8,
      requests_per_minute: Optional[float] = None,
      timeout_s: float = 60.0,
      max_retries: Optional[int] = None,
      max_reasks: Optional[int] = None,
      retry: Optional[RetryPolicy] = None,
      progress: bool = True,
      on_exhausted: str = "raise",
      price_per_mtok: Optional[tuple[float, float]] = None,
  ):
    if concurrency < 1:
      raise ValueError("concurrency must be >= 1")
    if on_exhausted not in ("raise", "missing"):
      raise ValueError("on_exhausted must be 'raise' or 'missing'")
    self.model = model
    self.concurrency = int(concurrency)
    self.requests_per_minute = requests_per_minute
    self.timeout_s = float(timeout_s)
    self.retry = dataclasses.replace(retry) if retry is not None else RetryPolicy()
    if max_retries is not None:
      self.retry.max_retries = int(max_retries)
    if max_reasks is not None:
      self.retry.max_reasks = int(max_reasks)
    self.progress = progress
    self.on_exhausted = on_exhausted
    self.price = price_per_mtok
    self.usage = UsageStats()  # cumulative over this scorer's lifetime
    self.last_usage = UsageStats()  # the latest score() call
    self._api_key: Optional[str] = None  # set by subclasses; never logged or stored

  # ---- to implement -----------------------------------------------------------
  @abc.abstractmethod
  def _make_client(self) -> Any:
    ...

  @abc.abstractmethod
  async def _aclose(self, client: Any) -> None:
    ...

  @abc.abstractmethod
  async def _request(
      self, client: Any, png: bytes, prompt: Prompt, attributes: tuple[Attribute, ...]
  ) -> RawAnswer:
    ...

  @abc.abstractmethod
  def _classify(self, exc: BaseException) -> Optional[Classified]:
    ...

  @property
  def endpoint(self) -> str:
    """The URL the requests go to (for messages); backends name their default."""
    return ""

  async def _list_models(self, client: Any) -> list[str]:
    """The endpoint's model names from one cheap request (`probe.list_models`)."""
    raise NotImplementedError(f"{type(self).__name__} cannot list models")

  # ---- helpers for subclasses -------------------------------------------------------
  def _read_key(self, custom_endpoint: bool, placeholder: str = "not-needed") -> str:
    """The key from `self.api_key_env`; a clear error if absent for the vendor endpoint."""
    key = os.environ.get(self.api_key_env, "").strip()
    if key:
      return key
    if custom_endpoint:
      logger.info(
          "%s: %s is not set; sending a placeholder key to the custom base_url",
          self.backend,
          self.api_key_env,
      )
      return placeholder
    raise ScorerAuthError(
        f"{self.backend} scorer: no API key. Set the environment variable "
        f"{self.api_key_env} (keys are read only from the environment), or use "
        "backend='oracle' explicitly for an offline SIMULATION."
    )

  def dry_run(self, num_images: int, attributes: Any, image_size=(64, 64)) -> DryRunEstimate:
    return dry_run(
        num_images,
        attributes,
        self.model,
        backend=self.backend,
        image_size=image_size,
        detail=getattr(self, "image_detail", "low"),
        price_per_mtok=self._price(),
    )

  def _price(self) -> Optional[tuple[float, float]]:
    return self.price if self.price is not None else self._default_price()

  def _default_price(self) -> Optional[tuple[float, float]]:
    return price_for(self.model)

  def _auth_error(self, c: Classified) -> ScorerAuthError:
    return ScorerAuthError(
        f"{self.backend} scorer: HTTP {c.status} from the server for model {self.model!r}: "
        f"the API key in the environment variable {self.api_key_env} is absent, invalid or "
        f"not allowed to use this model. Set {self.api_key_env} to a valid key. "
        f"Server said: {redact(c.message, self._api_key)[:300]}"
    )

  # ---- the run --------------------------------------------------------------------
  def _score(
      self, images: np.ndarray, attributes: tuple[Attribute, ...], on_result: Optional[OnResult]
  ) -> np.ndarray:
    return run_sync(lambda: self.ascore(images, attributes, on_result=on_result))

  async def ascore(
      self, images: np.ndarray, attributes: Any, on_result: Optional[OnResult] = None
  ) -> np.ndarray:
    """Async version of `score` (for callers that already run an event loop)."""
    images = check_images(images)
    attrs = normalize_attributes(attributes)
    hashes = [image_sha256(im) for im in images]
    first: dict[str, int] = {}
    for i, h in enumerate(hashes):
      first.setdefault(h, i)
    usage = UsageStats(images=len(first))
    results: dict[str, list[int]] = {}
    price = self._price()
    limiter = self._rate_limiter()
    sem = asyncio.Semaphore(self.concurrency)
    gate = FirstRequestGate()
    pbar = None
    if self.progress:
      pbar = tqdm(total=len(first), desc=f"{self.backend}:{self.model}", unit="img", leave=False)
    client = self._make_client()
    try:
      tasks = [
          asyncio.create_task(
              self._one(
                  client,
                  h,
                  images[i],
                  attrs,
                  usage,
                  price,
                  limiter,
                  sem,
                  gate,
                  results,
                  on_result,
                  pbar,
              )
          )
          for h, i in first.items()
      ]
      try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
      finally:
        for t in tasks:
          if not t.done():
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
      for t in tasks:  # the first failure, in submission order
        if t.done() and not t.cancelled() and t.exception() is not None:
          raise t.exception()  # type: ignore[misc]
    finally:
      if pbar is not None:
        pbar.close()
      self.last_usage = usage
      self.usage.merge(usage)
      try:
        await self._aclose(client)
      except Exception:  # noqa: BLE001  closing must not mask the real error
        pass
    n = len(attrs)
    out = np.full((len(images), n), -1, np.int32)
    for i, h in enumerate(hashes):
      out[i] = results[h]
    logger.info("%s:%s scored %d images: %s", self.backend, self.model, len(first), usage.postfix())
    return out

  async def _one(
      self,
      client,
      h,
      image,
      attrs,
      usage: UsageStats,
      price,
      limiter: RateLimiter,
      sem: asyncio.Semaphore,
      gate: FirstRequestGate,
      results,
      on_result,
      pbar,
  ):
    png = encode_png(image)
    prompt = build_prompt(attrs)
    failures = 0
    reasks = 0
    pt_total = ct_total = 0
    policy = self.retry
    while True:
      delay = None
      async with sem:
        is_probe = await gate.enter()
        probe_ok = False  # the gate stays shut when the first request fails for good
        try:
          await limiter.acquire()
          usage.requests += 1
          try:
            raw = await asyncio.wait_for(
                self._request(client, png, prompt, attrs), timeout=self.timeout_s + 5.0
            )  # backstop for the client's timeout
          except asyncio.CancelledError:
            raise
          except BaseException as e:  # noqa: BLE001
            c = self._classify(e)
            if c is None:
              if isinstance(e, asyncio.TimeoutError):
                c = Classified(ErrorKind.TRANSIENT, None, "request timed out")
              else:
                raise
            if c.kind is ErrorKind.AUTH:
              raise self._auth_error(c) from None
            if c.kind is ErrorKind.FATAL:
              raise ScorerRequestError(
                  f"{self.backend}:{self.model}: request failed with HTTP "
                  f"{c.status}, not retried: {redact(c.message, self._api_key)[:500]}"
              ) from None
            failures += 1
            what = f"HTTP {c.status}" if c.status else redact(c.message, self._api_key)[:120]
            if failures > policy.max_retries:
              msg = (
                  f"{self.backend}:{self.model}: giving up on image "
                  f"{h[:12]} after {failures} failed attempts (last: {what})"
              )
              if self.on_exhausted == "raise":
                raise ScorerRequestError(
                    msg + ". Answers received so far are kept by the cache; " "rerun to resume."
                ) from None
              logger.warning("%s; scoring it -1", msg)
              usage.missing += 1
              levels = [-1] * len(attrs)
              self._deliver(
                  h,
                  levels,
                  attrs,
                  results,
                  on_result,
                  pt_total,
                  ct_total,
                  failures,
                  reasks,
                  valid=False,
              )
              self._tick(pbar, usage)
              probe_ok = True
              return
            delay = policy.backoff(failures, c.retry_after)
            if c.kind is ErrorKind.RATE_LIMIT:
              limiter.pause_for(delay)
            usage.retries += 1
            logger.info(
                "%s:%s: %s, retrying in %.2f s (retry %d of %d)",
                self.backend,
                self.model,
                what,
                delay,
                failures,
                policy.max_retries,
            )
          probe_ok = True
        finally:
          if is_probe and probe_ok:
            gate.open()
      if delay is not None:
        self._tick(pbar, usage, advance=0)
        await self._retry_sleep(delay)
        continue
      # got an answer
      self._hold_if_asked(limiter, raw.wait_s)
      pt_total += raw.prompt_tokens
      ct_total += raw.completion_tokens
      usage.add_tokens(raw.prompt_tokens, raw.completion_tokens, price)
      try:
        levels = parse_answer(raw.text, attrs)
        valid = True
      except MalformedAnswer as e:
        if reasks < policy.max_reasks:
          reasks += 1
          usage.reasks += 1
          logger.info(
              "%s:%s: malformed answer for image %s (%s); re-asking (%d of %d)",
              self.backend,
              self.model,
              h[:12],
              e,
              reasks,
              policy.max_reasks,
          )
          prompt = build_prompt(attrs, reask_reason=str(e))
          continue
        logger.warning(
            "%s:%s: no valid answer for image %s after %d re-asks (%s); " "scoring it -1 (missing)",
            self.backend,
            self.model,
            h[:12],
            reasks,
            e,
        )
        usage.missing += 1
        levels, valid = [-1] * len(attrs), False
      self._deliver(
          h, levels, attrs, results, on_result, pt_total, ct_total, failures, reasks, valid=valid
      )
      self._tick(pbar, usage)
      return

  def _rate_limiter(self) -> RateLimiter:
    """The limiter of one run: `requests_per_minute` spacing and the pauses servers ask for."""
    return RateLimiter(self.requests_per_minute)

  async def _retry_sleep(self, seconds: float) -> None:
    """Waits out the backoff before a retry (tests replace it, and `_rate_limiter`'s clock, to
    record the delays asked for instead of waiting)."""
    await asyncio.sleep(seconds)

  def _hold_if_asked(self, limiter: RateLimiter, wait_s: Optional[float]) -> None:
    """Holds every new request for the `wait_s` seconds an answer asked for (request quota
    used up), capped at the retry policy's retry_after_max_s."""
    if wait_s is None or wait_s <= 0:
      return
    wait_s = min(wait_s, self.retry.retry_after_max_s)
    if limiter.pause_for(wait_s):
      logger.info("%s:%s: the server says its request quota is used up; holding new requests "
                  "for %.2f s", self.backend, self.model, wait_s)

  def _deliver(self, h, levels, attrs, results, on_result, pt, ct, failures, reasks, valid):
    if on_result is not None:
      on_result(
          h,
          list(levels),
          {
              "valid": valid,
              "prompt_tokens": pt,
              "completion_tokens": ct,
              "retries": failures,
              "reasks": reasks,
          },
      )
    results[h] = list(levels)

  @staticmethod
  def _tick(pbar, usage: UsageStats, advance: int = 1) -> None:
    if pbar is not None:
      if advance:
        pbar.update(advance)
      pbar.set_postfix(usage.postfix(), refresh=False)
