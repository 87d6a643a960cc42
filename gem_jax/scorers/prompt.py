"""The scoring prompt (the paper's Figure 3), its JSON answer format and a strict parser.

One request per image carries ALL attributes. The model is asked for a JSON object
`{"<attr>": <int 0..5>, ...}`; `parse_answer` accepts exactly that (optionally inside
a ```json fence) and raises `MalformedAnswer` otherwise.

`PROMPT_VERSION` names the template. It is part of every cache key: change it whenever
the wording, the answer format or the structured-output schema changes, so that old
answers are never mistaken for answers to the new question.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

__all__ = [
    "PROMPT_VERSION",
    "SYSTEM_TEXT",
    "MIN_SCORE",
    "MAX_SCORE",
    "Attribute",
    "AttributesLike",
    "Prompt",
    "MalformedAnswer",
    "normalize_attributes",
    "attribute_names",
    "build_prompt",
    "answer_schema",
    "openai_response_format",
    "gemini_response_schema",
    "parse_answer",
]

PROMPT_VERSION = "fig3-v1"
MIN_SCORE, MAX_SCORE = 0, 5

# Figure 3, first paragraph, verbatim (the <BOS>/<EOS> markers are the model's own tokens).
SYSTEM_TEXT = (
    "You are an AI assistant to evaluate the specific attributes based on given prompts and "
    "images. Please assign a score ranging from 0 to 5 for each attribute, where 0 indicates "
    "the absence of the attribute, and 5 signifies the highest expression of the attribute."
)


@dataclasses.dataclass(frozen=True)
class Attribute:
  """A targeted attribute: its name (the JSON key of the answer) and an optional one-line
  description shown to the model (e.g. Attribute("bangs", "hair covering the forehead"))."""

  name: str
  description: Optional[str] = None


AttributesLike = Union[
    Sequence[str], Sequence[Attribute], Mapping[str, Optional[str]], Sequence[tuple]
]


def normalize_attributes(attributes: Any) -> tuple[Attribute, ...]:
  """Accept names, `Attribute`s, (name, description) pairs or a {name: description} dict."""
  if isinstance(attributes, str):
    raise TypeError(
        "attributes must be a sequence of names, not a single string "
        f"(did you mean [{attributes!r}]?)"
    )
  items: Iterable[Any]
  if isinstance(attributes, Mapping):
    items = [Attribute(str(k), v) for k, v in attributes.items()]
  else:
    items = attributes
  out: list[Attribute] = []
  for a in items:
    if isinstance(a, Attribute):
      att = a
    elif isinstance(a, str):
      att = Attribute(a)
    elif isinstance(a, (tuple, list)) and len(a) in (1, 2):
      att = Attribute(str(a[0]), a[1] if len(a) == 2 else None)
    else:
      raise TypeError(
          f"cannot use {a!r} as an attribute (want a name, an Attribute or a "
          "(name, description) pair)"
      )
    name = att.name.strip() if isinstance(att.name, str) else att.name
    if not isinstance(name, str) or not name or "\n" in name or '"' in name:
      raise ValueError(
          f"bad attribute name {att.name!r}: want a non-empty one-line "
          "string without double quotes"
      )
    desc = att.description
    if desc is not None:
      desc = " ".join(str(desc).split()) or None  # one line
    out.append(Attribute(name, desc))
  if not out:
    raise ValueError("at least one attribute is needed")
  names = [a.name for a in out]
  dupes = sorted({n for n in names if names.count(n) > 1})
  if dupes:
    raise ValueError(f"duplicate attribute names: {dupes}")
  return tuple(out)


def attribute_names(attributes: Any) -> list[str]:
  return [a.name for a in normalize_attributes(attributes)]


@dataclasses.dataclass(frozen=True)
class Prompt:
  """system: the model's instructions; the user turn is `before_image`, the image,
  `after_image`."""

  system: str
  before_image: str
  after_image: str

  @property
  def text(self) -> str:
    return "\n".join([self.system, self.before_image, "<image>", self.after_image])


def build_prompt(attributes: Any, reask_reason: Optional[str] = None) -> Prompt:
  """The Figure 3 template for a list of attributes (all in one request).

  reask_reason: set when re-asking after a malformed answer; a short note saying why
  the previous answer was rejected is appended (the previous answer itself is not sent).
  """
  attrs = normalize_attributes(attributes)
  lines = [f"- {a.name}: {a.description}" if a.description else f"- {a.name}" for a in attrs]
  example = "{" + ", ".join(f'"{a.name}": <score>' for a in attrs) + "}"
  after = (
      "Targeted attributes:\n" + "\n".join(lines) + "\n\n"
      "Please assign a <score> that accurately reflects the expressive level to which each "
      "targeted <attribute> is exhibited in the <image>. Ensure that you consider and score "
      "each <attribute> independently and provide only the numerical <score> (an integer "
      "from 0 to 5) for each attribute as your final answer.\n\n"
      "Response: a JSON object with exactly these keys, each mapped to an integer score from "
      f"0 to 5: {example}. Output nothing but the JSON object."
  )
  if reask_reason:
    reason = " ".join(str(reask_reason).split())[:300]
    after += (
        f"\n\nYour previous answer could not be used ({reason}). Reply again with only "
        "the JSON object described above."
    )
  return Prompt(system=SYSTEM_TEXT, before_image="Input image:", after_image=after)


def answer_schema(attributes: Any) -> dict:
  """JSON Schema of the answer (OpenAI structured outputs, strict mode compatible)."""
  attrs = normalize_attributes(attributes)
  props = {}
  for a in attrs:
    p: dict[str, Any] = {"type": "integer", "enum": list(range(MIN_SCORE, MAX_SCORE + 1))}
    if a.description:
      p["description"] = a.description
    props[a.name] = p
  return {
      "type": "object",
      "properties": props,
      "required": [a.name for a in attrs],
      "additionalProperties": False,
  }


def openai_response_format(attributes: Any) -> dict:
  """`response_format` for chat completions: `{"type": "json_schema", ...}` (strict)."""
  return {
      "type": "json_schema",
      "json_schema": {
          "name": "attribute_scores",
          "strict": True,
          "schema": answer_schema(attributes),
      },
  }


def gemini_response_schema(attributes: Any) -> dict:
  """`response_schema` for Gemini (its OpenAPI subset: integer ranges via minimum/maximum,
  since Gemini enums are strings only); use with response_mime_type="application/json"."""
  attrs = normalize_attributes(attributes)
  props = {}
  for a in attrs:
    p: dict[str, Any] = {"type": "INTEGER", "minimum": MIN_SCORE, "maximum": MAX_SCORE}
    if a.description:
      p["description"] = a.description
    props[a.name] = p
  names = [a.name for a in attrs]
  return {"type": "OBJECT", "properties": props, "required": names, "property_ordering": names}


class MalformedAnswer(ValueError):
  """The model's text is not a JSON object with an integer 0..5 for every attribute."""


_FENCE = re.compile(r"^```[ \t]*(?:json|JSON)?[ \t]*\n?(.*?)\n?[ \t]*```$", re.S)


def parse_answer(text: Optional[str], attributes: Any) -> list[int]:
  """Strictly parse an answer into one integer 0..5 per attribute, in `attributes` order.

  Accepted: a JSON object (optionally wrapped in a ```json fence) holding every requested
  attribute name exactly as a key, each with a JSON integer 0..5. Keys that were not asked
  for are ignored. Anything else raises `MalformedAnswer`.
  """
  names = attribute_names(attributes)
  if text is None or not str(text).strip():
    raise MalformedAnswer("empty answer")
  s = str(text).strip()
  m = _FENCE.match(s)
  if m:
    s = m.group(1).strip()
  try:
    obj = json.loads(s)
  except ValueError as e:
    raise MalformedAnswer(f"answer is not valid JSON ({e.msg})") from None
  if not isinstance(obj, dict):
    raise MalformedAnswer(f"answer is JSON but not an object (got {type(obj).__name__})")
  missing = [n for n in names if n not in obj]
  if missing:
    raise MalformedAnswer(f"answer lacks attributes {missing}")
  out = []
  for n in names:
    v = obj[n]
    if isinstance(v, bool) or not isinstance(v, int):
      raise MalformedAnswer(f"score for {n!r} is not an integer: {v!r}")
    if not MIN_SCORE <= v <= MAX_SCORE:
      raise MalformedAnswer(f"score for {n!r} is outside {MIN_SCORE}..{MAX_SCORE}: {v}")
    out.append(int(v))
  return out
