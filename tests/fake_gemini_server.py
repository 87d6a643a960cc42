"""A local fake Gemini generateContent server for tests (see fake_servers.py for the base,
the scripting with `Reply` and the default answers).

    with GeminiFakeServer(api_key="g-test") as srv:
        client = genai.Client(api_key="g-test",
                              http_options=types.HttpOptions(base_url=srv.base_url))
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any, Optional

try:
  from fake_servers import FakeServer, Reply, attributes_from_text
except ImportError:  # tests/ imported as a package
  from tests.fake_servers import FakeServer, Reply, attributes_from_text

__all__ = ["GeminiFakeServer"]


def _b64decode_any(data: str) -> bytes:
  """Standard or URL-safe base64, padded or not (google-genai sends URL-safe)."""
  data = data.strip().replace("-", "+").replace("_", "/")
  return base64.b64decode(data + "=" * (-len(data) % 4))


_GEMINI_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


class GeminiFakeServer(FakeServer):
  """POST {base_url}/{api_version}/models/{model}:generateContent and GET
  {base_url}/{api_version}/models, `x-goog-api-key` auth.

  google-genai 3.x uses api_version "v1" by default for the Gemini Developer API
  ("v1beta" when GOOGLE_GENAI_API_VERSION=beta or HttpOptions(api_version="v1beta"));
  both are accepted.
  """

  DEFAULT_MODELS = ("gemini-2.5-flash",)

  @property
  def base_url(self) -> str:
    return self.root_url

  def _check_auth(self, rec):
    if self.api_key is None:
      return None
    if rec.headers.get("x-goog-api-key") != self.api_key:
      return Reply.error(
          400 if not rec.headers.get("x-goog-api-key") else 403,
          "API key not valid. Please pass a valid API key.",
      )
    return None

  @staticmethod
  def model_of(path: str) -> Optional[str]:
    """Model name from `/{v1|v1beta|...}/models/{model}:generateContent`."""
    m = re.match(r"^/v1[a-z0-9]*/models/([^/:?]+):generateContent", path)
    return m.group(1) if m else None

  @staticmethod
  def request_parts(body: Any) -> tuple[Optional[bytes], list[str], str]:
    image, texts = None, []
    for content in (body or {}).get("contents", []):
      for part in content.get("parts", []):
        if "text" in part:
          texts.append(part["text"])
        inline = part.get("inlineData") or part.get("inline_data")
        if inline:
          image = _b64decode_any(inline["data"])
    si = (body or {}).get("systemInstruction") or {}
    for part in si.get("parts", []):
      if "text" in part:
        texts.append(part["text"])
    text = "\n".join(texts)
    gc = (body or {}).get("generationConfig") or {}
    schema = gc.get("responseSchema") or gc.get("responseJsonSchema") or {}
    attrs = list(schema.get("required", []))
    if not attrs:
      attrs = attributes_from_text(text)
    return image, attrs, text

  def _respond(self, rec, reply):
    if reply.kind == "error":
      err = {
          "error": {
              "code": reply.status,
              "message": reply.message,
              "status": _GEMINI_STATUS.get(reply.status, "UNKNOWN"),
          }
      }
      return reply.status, err, reply.headers
    if rec.method == "GET" and re.match(r"^/v1[a-z0-9]*/models/?(\?|$)", rec.path):
      models = [{"name": f"models/{m}", "displayName": m,
                 "supportedGenerationMethods": ["generateContent"]} for m in self.models]
      return 200, {"models": models}, reply.headers
    model = self.model_of(rec.path)
    if model is None:
      return (
          404,
          {"error": {"code": 404, "message": f"unknown path {rec.path}", "status": "NOT_FOUND"}},
          {},
      )
    if reply.kind == "text":
      text = reply.text
    else:
      image, attrs, _ = self.request_parts(rec.body)
      text = json.dumps(self.answer_fn(image or b"", attrs))
    pt, ct = self.usage
    payload = {
        "candidates": [
            {
                "content": {"parts": [{"text": text}], "role": "model"},
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {
            "promptTokenCount": pt,
            "candidatesTokenCount": ct,
            "totalTokenCount": pt + ct,
        },
        "modelVersion": model,
        "responseId": f"fake-{len(self.requests)}",
    }
    return 200, payload, reply.headers
