"""OpenAI chat-completions scorer (GPT-4o by default; any OpenAI-compatible server).

    OpenAIScorer(model="gpt-4o")                                     # api.openai.com
    OpenAIScorer(model="Qwen/Qwen2.5-VL-7B-Instruct",
                 base_url="http://localhost:8000/v1")                # vLLM
    OpenAIScorer(model="llava", base_url="http://localhost:11434/v1",
                 response_format="json_object")                      # Ollama

Uses the official `openai` client (`AsyncOpenAI`) with its own retries switched off
(`max_retries=0`): the shared runner (`runner.py`) is the only retry layer. Each image
goes as a base64 PNG data URL (`image_url` content part, detail "low" by default: 85
image tokens on GPT-4o; images up to 512x512 lose nothing at low detail).

The key is read only from the environment variable `api_key_env` (default
OPENAI_API_KEY). It is required for the real OpenAI endpoint; for a custom `base_url`
(local servers usually need none) a placeholder is sent when the variable is unset.
`base_url` defaults to $OPENAI_BASE_URL if set, else the OpenAI endpoint.

Request limit: requests_per_minute=None (default) means OPENAI_REQUESTS_PER_MINUTE (450) on
api.openai.com and no limit on a custom base_url; 0 means no limit; a number always applies.
The server's own limits are followed too: `retry-after` on a 429, and when an answer says
`x-ratelimit-remaining-requests: 0` no request starts before `x-ratelimit-reset-requests`.
"""

from __future__ import annotations

import base64
import os
from typing import Any, Optional

from .base import logger
from .prompt import Attribute, Prompt, openai_response_format
from .retry import (
    Classified,
    ErrorKind,
    RawAnswer,
    RetryPolicy,
    is_official_endpoint,
    parse_rate_limit_wait,
    parse_retry_after,
    resolve_rate_limit,
)
from .runner import APIScorer

__all__ = ["OpenAIScorer", "DEFAULT_OPENAI_MODEL", "OPENAI_REQUESTS_PER_MINUTE"]

DEFAULT_OPENAI_MODEL = "gpt-4o"
OPENAI_REQUESTS_PER_MINUTE = 450  # default limit on api.openai.com only
OPENAI_HOST = "api.openai.com"
OPENAI_BASE_URL = "https://api.openai.com/v1"  # the client's default endpoint
_RESPONSE_FORMATS = ("json_schema", "json_object", "none")


class OpenAIScorer(APIScorer):
  """Scores images through an OpenAI-compatible chat-completions endpoint.

  response_format: "json_schema" (structured outputs, strict; OpenAI, vLLM, LM Studio,
  recent Ollama), "json_object" (JSON mode) or "none" (rely on the prompt; the answer
  is validated either way). temperature=None / max_tokens=None / seed=None leave the
  parameter out of the request (some models accept only their defaults).
  price_per_mtok: (input, output) USD per 1M tokens for the cost estimate; by default
  taken from the price table for the real endpoint and unknown for a custom base_url.
  requests_per_minute: None -> 450 on api.openai.com, no limit on a custom base_url; 0 -> no
  limit; the limit in effect is `self.requests_per_minute` (None: none).
  """

  backend = "openai"

  def __init__(
      self,
      model: str = DEFAULT_OPENAI_MODEL,
      base_url: Optional[str] = None,
      api_key_env: str = "OPENAI_API_KEY",
      concurrency: int = 8,
      requests_per_minute: Optional[float] = None,
      timeout_s: float = 60.0,
      max_retries: Optional[int] = None,
      max_reasks: Optional[int] = None,
      retry: Optional[RetryPolicy] = None,
      image_detail: str = "low",
      response_format: str = "json_schema",
      temperature: Optional[float] = 0.0,
      max_tokens: Optional[int] = None,
      seed: Optional[int] = None,
      progress: bool = True,
      on_exhausted: str = "raise",
      price_per_mtok: Optional[tuple[float, float]] = None,
  ):
    self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
    self.custom_endpoint = not is_official_endpoint(self.base_url, OPENAI_HOST)
    super().__init__(
        model=model,
        concurrency=concurrency,
        requests_per_minute=resolve_rate_limit(
            requests_per_minute, OPENAI_REQUESTS_PER_MINUTE, not self.custom_endpoint),
        timeout_s=timeout_s,
        max_retries=max_retries,
        max_reasks=max_reasks,
        retry=retry,
        progress=progress,
        on_exhausted=on_exhausted,
        price_per_mtok=price_per_mtok,
    )
    try:
      import openai  # noqa: F401
    except ImportError as e:  # pragma: no cover
      raise ImportError(
          "the openai scorer needs the `openai` package " "(pip install openai)"
      ) from e
    if response_format not in _RESPONSE_FORMATS:
      raise ValueError(f"response_format must be one of {_RESPONSE_FORMATS}")
    if image_detail not in ("low", "high", "auto"):
      raise ValueError("image_detail must be 'low', 'high' or 'auto'")
    self.api_key_env = api_key_env
    self.image_detail = image_detail
    self.response_format = response_format
    self.temperature = temperature
    self.max_tokens = max_tokens
    self.seed = seed
    self._api_key = self._read_key(self.custom_endpoint)

  def _default_price(self):
    return None if self.custom_endpoint else super()._default_price()

  def describe(self) -> dict:
    d = super().describe()
    d.update(
        custom_endpoint=self.custom_endpoint,
        image_detail=self.image_detail,
        response_format=self.response_format,
    )
    return d

  # ---- client ---------------------------------------------------------------------
  def _make_client(self) -> Any:
    import openai

    return openai.AsyncOpenAI(
        api_key=self._api_key, base_url=self.base_url, max_retries=0, timeout=self.timeout_s
    )

  async def _aclose(self, client: Any) -> None:
    await client.close()

  @property
  def endpoint(self) -> str:
    """The URL requests go to: base_url, else OpenAI's."""
    return self.base_url or OPENAI_BASE_URL

  async def _list_models(self, client: Any) -> list[str]:
    """GET {base_url}/models: the model ids of the first page (no tokens, no cost)."""
    page = await client.models.list(timeout=self.timeout_s)
    return [m.id for m in page.data]

  def build_request(self, png: bytes, prompt: Prompt, attributes: tuple[Attribute, ...]) -> dict:
    """The keyword arguments of `chat.completions.create` for one image."""
    url = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    kwargs: dict[str, Any] = {
        "model": self.model,
        "messages": [
            {"role": "system", "content": prompt.system},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": prompt.before_image},
                    {"type": "image_url", "image_url": {"url": url, "detail": self.image_detail}},
                    {"type": "text", "text": prompt.after_image},
                ],
            },
        ],
    }
    if self.response_format == "json_schema":
      kwargs["response_format"] = openai_response_format(attributes)
    elif self.response_format == "json_object":
      kwargs["response_format"] = {"type": "json_object"}
    if self.temperature is not None:
      kwargs["temperature"] = self.temperature
    if self.max_tokens is not None:
      kwargs["max_tokens"] = self.max_tokens
    if self.seed is not None:
      kwargs["seed"] = self.seed
    return kwargs

  async def _request(
      self, client: Any, png: bytes, prompt: Prompt, attributes: tuple[Attribute, ...]
  ) -> RawAnswer:
    raw = await client.chat.completions.with_raw_response.create(
        **self.build_request(png, prompt, attributes), timeout=self.timeout_s
    )
    resp = raw.parse()
    text = None
    if resp.choices:
      msg = resp.choices[0].message
      text = msg.content
      if text is None and getattr(msg, "refusal", None):
        logger.info("openai:%s refused: %s", self.model, msg.refusal)
    u = resp.usage
    return RawAnswer(
        text=text,
        prompt_tokens=int(getattr(u, "prompt_tokens", 0) or 0),
        completion_tokens=int(getattr(u, "completion_tokens", 0) or 0),
        wait_s=parse_rate_limit_wait(raw.headers),
    )

  def _classify(self, exc: BaseException) -> Optional[Classified]:
    import openai

    if isinstance(exc, openai.APITimeoutError):
      return Classified(ErrorKind.TRANSIENT, None, "request timed out")
    if isinstance(exc, openai.APIConnectionError):
      return Classified(ErrorKind.TRANSIENT, None, f"connection error: {exc}")
    if isinstance(exc, openai.APIStatusError):
      status = exc.status_code
      msg = getattr(exc, "message", "") or str(exc)
      headers = getattr(exc.response, "headers", None)
      retry_after = parse_retry_after(headers)
      if retry_after is None:  # a 429 without retry-after: wait for the quota's reset
        retry_after = parse_rate_limit_wait(headers)
      if status in (401, 403):
        return Classified(ErrorKind.AUTH, status, msg)
      if status == 429:
        if getattr(exc, "code", None) == "insufficient_quota":
          return Classified(
              ErrorKind.FATAL,
              status,
              "insufficient_quota: the account has no credit left " f"({msg})",
          )
        return Classified(ErrorKind.RATE_LIMIT, status, msg, retry_after)
      if status >= 500 or status in (408, 409):
        return Classified(ErrorKind.TRANSIENT, status, msg, retry_after)
      return Classified(ErrorKind.FATAL, status, msg)
    return None
