"""Local fake MLLM servers for tests: OpenAI chat-completions here, Gemini generateContent in
fake_gemini_server.py (both on the `FakeServer` base of this module).

Both servers listen on 127.0.0.1 with an ephemeral port, run in a daemon thread
(`http.server.ThreadingHTTPServer`, one thread per request) and speak the real wire
protocols, so the official clients (`openai`, `google-genai`) can be pointed at them:

    with OpenAIFakeServer(api_key="sk-test") as srv:
        client = openai.AsyncOpenAI(base_url=srv.base_url, api_key="sk-test")

    with GeminiFakeServer(api_key="g-test") as srv:
        client = genai.Client(api_key="g-test",
                              http_options=types.HttpOptions(base_url=srv.base_url))

Behaviour is scripted per request. `script` is a list of `Reply` objects consumed in
arrival order (thread-safe); once it is exhausted every request gets `default`
(a good answer). A `Reply` can be an error (status, body, headers), a good answer,
a fixed text answer, or any of those after a delay (`delay_s`). A callable
`script_fn(n, request) -> Reply | None` may be given instead (n = 0-based arrival
index; None means "default").

Good answers: the attributes are read from the request's structured-output schema
(OpenAI `response_format.json_schema.schema.required`, Gemini
`generationConfig.responseSchema.required`), or, failing that, from the
"- name" lines of the prompt. Scores come from `answer_fn(image_bytes, attributes)`;
the default is `default_scores`, a deterministic function of the image bytes that
tests can recompute.

Every request is recorded (`srv.requests`: path, headers, parsed JSON body, arrival
time, method), and `srv.max_in_flight` tracks the largest number of requests being handled
at the same time. A GET of the models list (OpenAI `{base_url}/models`, Gemini
`/{version}/models`) answers with `models` (the preflight's probe, gem_jax/scorers/probe.py);
a scripted error reply applies to it as to any request.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional, Sequence

__all__ = [
    "Reply",
    "RecordedRequest",
    "FakeServer",
    "OpenAIFakeServer",
    "attributes_from_text",
    "default_scores",
]


def default_scores(image_bytes: bytes, attributes: Sequence[str]) -> dict[str, int]:
  """Deterministic scores 0..5 from the (encoded) image bytes and attribute names."""
  out = {}
  for a in attributes:
    h = hashlib.sha256(image_bytes + b"|" + a.encode()).digest()
    out[a] = h[0] % 6
  return out


@dataclasses.dataclass
class Reply:
  """One scripted reply.

  kind: "answer" (a good JSON answer computed by the server), "text" (a fixed
  assistant text), "error" (HTTP status + error body), "drop" (close the
  connection without answering).
  """

  kind: str = "answer"
  status: int = 200
  text: Optional[str] = None
  headers: dict = dataclasses.field(default_factory=dict)
  message: str = ""
  delay_s: float = 0.0

  @staticmethod
  def answer(delay_s: float = 0.0) -> "Reply":
    return Reply(kind="answer", delay_s=delay_s)

  @staticmethod
  def content(text: str, delay_s: float = 0.0) -> "Reply":
    return Reply(kind="text", text=text, delay_s=delay_s)

  @staticmethod
  def error(
      status: int, message: str = "", headers: Optional[dict] = None, delay_s: float = 0.0
  ) -> "Reply":
    return Reply(
        kind="error",
        status=status,
        message=message or f"error {status}",
        headers=dict(headers or {}),
        delay_s=delay_s,
    )

  @staticmethod
  def drop(delay_s: float = 0.0) -> "Reply":
    return Reply(kind="drop", delay_s=delay_s)


@dataclasses.dataclass
class RecordedRequest:
  path: str
  headers: dict
  body: Any
  raw: bytes
  t: float
  method: str = "POST"


class _Handler(BaseHTTPRequestHandler):
  protocol_version = "HTTP/1.1"
  server: "_Server"

  def log_message(self, format, *args):  # noqa: A002  (silence stderr logging)
    pass

  def do_POST(self):  # noqa: N802
    self.server.owner._handle(self)

  def do_GET(self):  # noqa: N802
    self.server.owner._handle(self)


class _Server(ThreadingHTTPServer):
  daemon_threads = True
  block_on_close = False
  owner: "FakeServer"

  def handle_error(self, request, client_address):
    # Clients that time out close the socket while the handler sleeps; the
    # late write then fails. That is expected in tests: stay quiet.
    pass


class FakeServer:
  """Common machinery; subclasses implement `_respond`."""

  DEFAULT_MODELS: tuple[str, ...] = ()  # what the models list names

  def __init__(
      self,
      *,
      api_key: Optional[str] = None,
      script: Optional[Sequence[Reply]] = None,
      script_fn: Optional[Callable[[int, RecordedRequest], Optional[Reply]]] = None,
      default: Optional[Reply] = None,
      answer_fn: Callable[[bytes, Sequence[str]], dict] = default_scores,
      usage: tuple[int, int] = (120, 20),
      models: Optional[Sequence[str]] = None,
  ):
    self.api_key = api_key
    self._script = list(script or [])
    self._script_fn = script_fn
    self.default = default or Reply.answer()
    self.answer_fn = answer_fn
    self.usage = usage
    self.models = list(models if models is not None else self.DEFAULT_MODELS)
    self.requests: list[RecordedRequest] = []
    self.handler_errors: list[str] = []  # exceptions of the fake server's own code
    self.in_flight = 0
    self.max_in_flight = 0
    self._lock = threading.Lock()
    self._httpd: Optional[_Server] = None
    self._thread: Optional[threading.Thread] = None

  # ---- lifecycle -------------------------------------------------------------
  def start(self) -> "FakeServer":
    self._httpd = _Server(("127.0.0.1", 0), _Handler)
    self._httpd.owner = self
    self._thread = threading.Thread(
        target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    self._thread.start()
    return self

  def stop(self) -> None:
    if self._httpd is not None:
      self._httpd.shutdown()
      self._httpd.server_close()
      self._httpd = None

  def __enter__(self):
    return self.start()

  def __exit__(self, *exc):
    self.stop()

  @property
  def port(self) -> int:
    assert self._httpd is not None, "server not started"
    return self._httpd.server_address[1]

  @property
  def root_url(self) -> str:
    return f"http://127.0.0.1:{self.port}"

  @property
  def num_requests(self) -> int:
    with self._lock:
      return len(self.requests)

  def set_script(self, script: Sequence[Reply]) -> None:
    with self._lock:
      self._script = list(script)

  # ---- request handling ------------------------------------------------------
  def _next_reply(self, n: int, rec: RecordedRequest) -> Reply:
    if self._script_fn is not None:
      r = self._script_fn(n, rec)
      if r is not None:
        return r
      return self.default
    with self._lock:
      if self._script:
        return self._script.pop(0)
    return self.default

  def _handle(self, h: _Handler) -> None:
    length = int(h.headers.get("Content-Length") or 0)
    raw = h.rfile.read(length) if length else b""
    try:
      body = json.loads(raw) if raw else None
    except ValueError:
      body = None
    rec = RecordedRequest(
        path=h.path,
        headers={k.lower(): v for k, v in h.headers.items()},
        body=body,
        raw=raw,
        t=time.monotonic(),
        method=h.command,
    )
    with self._lock:
      n = len(self.requests)
      self.requests.append(rec)
      self.in_flight += 1
      self.max_in_flight = max(self.max_in_flight, self.in_flight)
    try:
      auth_error = self._check_auth(rec)
      reply = auth_error or self._next_reply(n, rec)
      if reply.delay_s:
        time.sleep(reply.delay_s)
      if reply.kind == "drop":
        h.close_connection = True
        try:
          h.connection.shutdown(2)
        except OSError:
          pass
        return
      try:
        status, payload, headers = self._respond(rec, reply)
      except Exception as e:  # a bug of the fake server itself: answer 500, keep it
        with self._lock:
          self.handler_errors.append(repr(e))
        status, headers = 500, {}
        payload = {"error": {"message": f"fake server bug: {e!r}"}}
      data = json.dumps(payload).encode()
      try:
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
          h.send_header(k, str(v))
        h.end_headers()
        h.wfile.write(data)
        h.wfile.flush()
      except OSError:
        pass  # client gave up (timeout test)
    finally:
      with self._lock:
        self.in_flight -= 1

  # ---- to be provided by subclasses -------------------------------------------
  def _check_auth(self, rec: RecordedRequest) -> Optional[Reply]:
    raise NotImplementedError

  def _respond(self, rec: RecordedRequest, reply: Reply) -> tuple[int, Any, dict]:
    raise NotImplementedError


_BULLET = re.compile(r"^- ([^:\n]+?)(?::.*)?$", re.M)


def attributes_from_text(text: str) -> list[str]:
  """The names of the '- name' (or '- name: description') lines of a prompt."""
  return [m.group(1).strip() for m in _BULLET.finditer(text)]


class OpenAIFakeServer(FakeServer):
  """POST {base_url}/chat/completions and GET {base_url}/models, Bearer auth; `base_url` ends
  in /v1."""

  DEFAULT_MODELS = ("gpt-4o", "gpt-4o-mini")

  @property
  def base_url(self) -> str:
    return self.root_url + "/v1"

  def _check_auth(self, rec):
    if self.api_key is None:
      return None
    if rec.headers.get("authorization") != f"Bearer {self.api_key}":
      return Reply.error(401, "Incorrect API key provided.")
    return None

  @staticmethod
  def request_parts(body: Any) -> tuple[Optional[bytes], list[str], str]:
    """(decoded image bytes, attribute names, all text) of a chat-completions body."""
    image, texts = None, []
    for msg in (body or {}).get("messages", []):
      content = msg.get("content")
      if isinstance(content, str):
        texts.append(content)
        continue
      for part in content or []:
        if part.get("type") == "text":
          texts.append(part.get("text", ""))
        elif part.get("type") == "image_url":
          url = part["image_url"]["url"]
          image = base64.b64decode(url.split(",", 1)[1])
    text = "\n".join(texts)
    attrs: list[str] = []
    rf = (body or {}).get("response_format") or {}
    if rf.get("type") == "json_schema":
      attrs = list(rf["json_schema"]["schema"].get("required", []))
    if not attrs:
      attrs = attributes_from_text(text)
    return image, attrs, text

  def _respond(self, rec, reply):
    if reply.kind == "error":
      err = {
          "error": {
              "message": reply.message,
              "type": "invalid_request_error" if reply.status < 500 else "server_error",
              "param": None,
              "code": None,
          }
      }
      return reply.status, err, reply.headers
    if rec.method == "GET" and rec.path.split("?")[0].rstrip("/").endswith("/v1/models"):
      data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.models]
      return 200, {"object": "list", "data": data}, reply.headers
    if not rec.path.rstrip("/").endswith("/chat/completions"):
      return (
          404,
          {
              "error": {
                  "message": f"unknown path {rec.path}",
                  "type": "invalid_request_error",
                  "param": None,
                  "code": None,
              }
          },
          {},
      )
    if reply.kind == "text":
      text = reply.text
    else:
      image, attrs, _ = self.request_parts(rec.body)
      text = json.dumps(self.answer_fn(image or b"", attrs))
    pt, ct = self.usage
    payload = {
        "id": f"chatcmpl-fake-{len(self.requests)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": (rec.body or {}).get("model", "fake"),
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "logprobs": None,
                "message": {"role": "assistant", "content": text, "refusal": None},
            }
        ],
        "usage": {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct},
    }
    return 200, payload, reply.headers
