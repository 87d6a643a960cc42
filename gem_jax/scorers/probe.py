"""`list_models`: one cheap request showing that an API scorer's endpoint answers and takes
the key, sent before a long run relies on it.

    names = list_models(make_scorer("openai", base_url="http://localhost:8000/v1"))

The request is the endpoint's models list: GET {base_url}/models (OpenAI-compatible) or
GET {base_url}/{api_version}/models (Gemini). It carries no image and costs no tokens; it is
sent once, never retried, and given PROBE_TIMEOUT_S seconds. An HTTP 404 (a server without a
models list) or 429 (busy, yet it answered and took the key) counts as an answer.
"""

from __future__ import annotations

import asyncio
from typing import Optional

from .base import ScorerRequestError, redact
from .retry import Classified, ErrorKind, run_sync
from .runner import APIScorer

__all__ = ["PROBE_TIMEOUT_S", "list_models"]

PROBE_TIMEOUT_S = 10.0


def list_models(scorer: APIScorer, timeout_s: float = PROBE_TIMEOUT_S) -> Optional[list[str]]:
  """The model names the scorer's endpoint lists (first page), or None when it answers 404
  or 429 without a list.

  Raises:
    ScorerAuthError: HTTP 401/403 (Gemini: its bad-key 400), naming the key's variable.
    ScorerRequestError: a refused connection, no answer within `timeout_s` seconds or another
      HTTP error (e.g. OpenAI's insufficient_quota), naming the endpoint.
  """
  return run_sync(lambda: _list(scorer, timeout_s))


async def _list(scorer: APIScorer, timeout_s: float) -> Optional[list[str]]:
  client = scorer._make_client()
  try:
    return await asyncio.wait_for(scorer._list_models(client), timeout_s)
  except asyncio.CancelledError:
    raise
  except Exception as e:  # noqa: BLE001  classified below; unknown errors are re-raised
    _raise_unless_answered(scorer, e, timeout_s)
    return None
  finally:
    try:
      await scorer._aclose(client)
    except Exception:  # noqa: BLE001  closing must not mask the real error
      pass


def _raise_unless_answered(scorer: APIScorer, exc: Exception, timeout_s: float) -> None:
  """Returns for a 404/429 answer; raises the scorer error `exc` stands for."""
  c = scorer._classify(exc)
  if c is None and isinstance(exc, asyncio.TimeoutError):
    c = Classified(ErrorKind.TRANSIENT, None, f"no answer within {timeout_s:g} s")
  if c is None:
    raise exc
  if c.kind is ErrorKind.AUTH:
    raise scorer._auth_error(c) from None
  if c.status == 404 or c.kind is ErrorKind.RATE_LIMIT:  # it answered and took the key
    return
  said = redact(c.message, scorer._api_key)[:300]
  what = (f"answered a models-list request with HTTP {c.status} ({said})" if c.status else
          f"did not answer a models-list request ({said})")
  raise ScorerRequestError(f"{scorer.backend} scorer: {scorer.endpoint} {what}. Check base_url "
                           "and that the server is running.") from None
