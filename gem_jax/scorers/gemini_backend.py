"""Gemini scorer through `google-genai` (never the end-of-life `google-generativeai`).

    GeminiScorer(model="gemini-2.5-flash")              # key from $GEMINI_API_KEY
    GeminiScorer(base_url="http://127.0.0.1:8080")      # a proxy / fake server

base_url defaults to $GOOGLE_GEMINI_BASE_URL (as in google-genai), else Google's endpoint.
requests_per_minute=None (default) means GEMINI_REQUESTS_PER_MINUTE (500) on Google's endpoint
and no limit on any other base_url; 0 means no limit; a number always applies.

One `client.aio.models.generate_content` call per image: the image as an inline PNG
`Part`, the Figure 3 prompt, `response_mime_type="application/json"` and a
`response_schema` requiring an integer 0..5 per attribute. google-genai's own retries
are switched off (`HttpRetryOptions(attempts=1)`), as are automatic function calling
and automatic continuation, so one call is exactly one HTTP request and the shared
runner is the only retry layer. The request goes to
`{base_url}/{api_version}/models/{model}:generateContent` (google-genai 3.x uses
api_version "v1" by default; pass api_version="v1beta" for preview features).
"""

from __future__ import annotations

import os
import re
from typing import Any, Optional

from .prompt import Attribute, Prompt, gemini_response_schema
from .retry import (
    Classified,
    ErrorKind,
    RawAnswer,
    RetryPolicy,
    is_official_endpoint,
    parse_retry_after,
    resolve_rate_limit,
)
from .runner import APIScorer

__all__ = ["GeminiScorer", "DEFAULT_GEMINI_MODEL", "GEMINI_REQUESTS_PER_MINUTE"]

DEFAULT_GEMINI_MODEL = "gemini-2.5-flash"
GEMINI_REQUESTS_PER_MINUTE = 500  # default limit on Google's endpoint only
GEMINI_HOST = "googleapis.com"  # generativelanguage.googleapis.com
GEMINI_BASE_URL = "https://generativelanguage.googleapis.com"  # google-genai's default


def _transport_error_types() -> tuple[type, ...]:
  out: list[type] = []
  for mod in ("httpx2", "httpx"):
    try:
      m = __import__(mod)
      out.append(m.TransportError)  # timeouts, connect/read errors, protocol errors
    except (ImportError, AttributeError):
      pass
  try:
    import aiohttp  # type: ignore

    out.extend([aiohttp.ClientConnectionError, aiohttp.ServerTimeoutError])
  except ImportError:
    pass
  return tuple(out)


def _retry_info_delay(details: Any) -> Optional[float]:
  """Seconds from a google.rpc.RetryInfo `retryDelay` ("13s") in an error body."""
  try:
    err = details.get("error", details) if isinstance(details, dict) else {}
    for d in err.get("details", []) or []:
      if "RetryInfo" in str(d.get("@type", "")):
        m = re.match(r"^\s*([0-9.]+)s\s*$", str(d.get("retryDelay", "")))
        if m:
          return float(m.group(1))
  except (AttributeError, TypeError, ValueError):
    return None
  return None


class GeminiScorer(APIScorer):
  """Scores images with a Gemini model (Gemini Developer API, key in $GEMINI_API_KEY).

  thinking_budget: for thinking models (2.5 family) tokens the model may spend thinking
  (billed as output); 0 switches thinking off on Flash. None leaves the model default.
  requests_per_minute: None -> 500 on Google's endpoint (no base_url, or a googleapis.com
  host), no limit on any other base_url; 0 -> no limit; the limit in effect is
  `self.requests_per_minute` (None: none).
  """

  backend = "gemini"

  def __init__(
      self,
      model: str = DEFAULT_GEMINI_MODEL,
      api_key_env: str = "GEMINI_API_KEY",
      base_url: Optional[str] = None,
      api_version: Optional[str] = None,
      concurrency: int = 8,
      requests_per_minute: Optional[float] = None,
      timeout_s: float = 60.0,
      max_retries: Optional[int] = None,
      max_reasks: Optional[int] = None,
      retry: Optional[RetryPolicy] = None,
      temperature: Optional[float] = 0.0,
      max_output_tokens: Optional[int] = None,
      thinking_budget: Optional[int] = None,
      seed: Optional[int] = None,
      progress: bool = True,
      on_exhausted: str = "raise",
      price_per_mtok: Optional[tuple[float, float]] = None,
  ):
    self.base_url = base_url or os.environ.get("GOOGLE_GEMINI_BASE_URL") or None  # as the SDK
    self.custom_endpoint = not is_official_endpoint(self.base_url, GEMINI_HOST)
    super().__init__(
        model=model,
        concurrency=concurrency,
        requests_per_minute=resolve_rate_limit(
            requests_per_minute, GEMINI_REQUESTS_PER_MINUTE, not self.custom_endpoint),
        timeout_s=timeout_s,
        max_retries=max_retries,
        max_reasks=max_reasks,
        retry=retry,
        progress=progress,
        on_exhausted=on_exhausted,
        price_per_mtok=price_per_mtok,
    )
    try:
      from google import genai  # noqa: F401
    except ImportError as e:  # pragma: no cover
      raise ImportError(
          "the gemini scorer needs `google-genai` (pip install google-genai); "
          "the old `google-generativeai` package is not supported"
      ) from e
    self.api_key_env = api_key_env
    self.api_version = api_version
    self.temperature = temperature
    self.max_output_tokens = max_output_tokens
    self.thinking_budget = thinking_budget
    self.seed = seed
    self._api_key = self._read_key(self.custom_endpoint)

  def _default_price(self):
    return None if self.custom_endpoint else super()._default_price()

  def describe(self) -> dict:
    d = super().describe()
    d.update(custom_endpoint=self.custom_endpoint)
    return d

  def _make_client(self) -> Any:
    from google import genai
    from google.genai import types

    http_options = types.HttpOptions(
        base_url=self.base_url,
        api_version=self.api_version,
        timeout=max(1, int(round(self.timeout_s * 1000))),  # milliseconds
        retry_options=types.HttpRetryOptions(attempts=1),  # no SDK retries: ours only
    )
    return genai.Client(api_key=self._api_key, vertexai=False, http_options=http_options)

  async def _aclose(self, client: Any) -> None:
    aclose = getattr(client.aio, "aclose", None)
    if aclose is not None:
      await aclose()

  @property
  def endpoint(self) -> str:
    """The URL requests go to: base_url, else Google's."""
    return self.base_url or GEMINI_BASE_URL

  async def _list_models(self, client: Any) -> list[str]:
    """GET {base_url}/{api_version}/models: the first page's model names without the
    'models/' prefix (no tokens, no cost)."""
    pager = await client.aio.models.list(config={"page_size": 100})
    return [str(m.name).split("/")[-1] for m in pager.page]

  def build_config(self, prompt: Prompt, attributes: tuple[Attribute, ...]) -> Any:
    from google.genai import types

    kw: dict[str, Any] = dict(
        system_instruction=prompt.system,
        response_mime_type="application/json",
        response_schema=types.Schema.model_validate(gemini_response_schema(attributes)),
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )
    if "automatic_continuation" in types.GenerateContentConfig.model_fields:
      kw["automatic_continuation"] = False
    if self.temperature is not None:
      kw["temperature"] = self.temperature
    if self.max_output_tokens is not None:
      kw["max_output_tokens"] = self.max_output_tokens
    if self.seed is not None:
      kw["seed"] = self.seed
    if self.thinking_budget is not None:
      kw["thinking_config"] = types.ThinkingConfig(thinking_budget=self.thinking_budget)
    return types.GenerateContentConfig(**kw)

  async def _request(
      self, client: Any, png: bytes, prompt: Prompt, attributes: tuple[Attribute, ...]
  ) -> RawAnswer:
    from google.genai import types

    contents = [
        types.Content(
            role="user",
            parts=[
                types.Part.from_text(text=prompt.before_image),
                types.Part.from_bytes(data=png, mime_type="image/png"),
                types.Part.from_text(text=prompt.after_image),
            ],
        )
    ]
    resp = await client.aio.models.generate_content(
        model=self.model, contents=contents, config=self.build_config(prompt, attributes)
    )
    text = None
    try:
      cands = resp.candidates or []
      if cands and cands[0].content and cands[0].content.parts:
        text = "".join(
            p.text
            for p in cands[0].content.parts
            if getattr(p, "text", None) and not getattr(p, "thought", False)
        )
    except (AttributeError, TypeError):
      text = None
    u = resp.usage_metadata
    pt = int(getattr(u, "prompt_token_count", 0) or 0) if u else 0
    ct = 0
    if u:
      ct = int(getattr(u, "candidates_token_count", 0) or 0) + int(
          getattr(u, "thoughts_token_count", 0) or 0
      )
    return RawAnswer(text=text or None, prompt_tokens=pt, completion_tokens=ct)

  def _classify(self, exc: BaseException) -> Optional[Classified]:
    from google.genai import errors

    if isinstance(exc, errors.APIError):
      status = int(exc.code or 0)
      msg = str(exc.message or exc.status or exc)
      headers = getattr(getattr(exc, "response", None), "headers", None)
      retry_after = parse_retry_after(headers)
      if retry_after is None:
        retry_after = _retry_info_delay(exc.details)
      if status in (401, 403):
        return Classified(ErrorKind.AUTH, status, msg)
      bad_key = "API key not valid" in msg or "API_KEY_INVALID" in str(exc.details)
      if status == 400 and bad_key:
        return Classified(ErrorKind.AUTH, status, msg)  # Gemini's bad-key answer is a 400
      if status == 429:
        return Classified(ErrorKind.RATE_LIMIT, status, msg, retry_after)
      if status >= 500 or status in (408, 409):
        return Classified(ErrorKind.TRANSIENT, status, msg, retry_after)
      return Classified(ErrorKind.FATAL, status, msg)
    if isinstance(exc, _transport_error_types()):
      return Classified(ErrorKind.TRANSIENT, None, f"{type(exc).__name__}: {exc}")
    return None
