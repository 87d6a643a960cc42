"""House style that ruff does not check: blocks are indented by two spaces (`make lint`)."""
import io
import tokenize
from pathlib import Path

ROOT = Path(__file__).parent.parent
SOURCES = sorted(p for d in ("gem_jax", "experiments", "tests") for p in (ROOT / d).rglob("*.py")
                 if "fixtures" not in p.parts)


def _indent_steps(source: str) -> list[tuple[int, int]]:
  """(line, step) of every block indentation whose step from the enclosing block is not 2."""
  bad, stack = [], [0]
  for token in tokenize.generate_tokens(io.StringIO(source).readline):
    if token.type == tokenize.INDENT:
      width = len(token.string.expandtabs(8))
      if width - stack[-1] != 2 or "\t" in token.string:
        bad.append((token.start[0], width - stack[-1]))
      stack.append(width)
    elif token.type == tokenize.DEDENT:
      stack.pop()
  return bad


def test_the_indentation_checker_finds_four_space_blocks():
  assert _indent_steps("def f():\n    return 1\n") == [(2, 4)]
  assert _indent_steps("def f():\n  if x:\n    return 1\n") == []


def test_blocks_are_indented_by_two_spaces():
  offenders = {str(p.relative_to(ROOT)): steps for p in SOURCES
               if (steps := _indent_steps(p.read_text()))}
  assert not offenders, f"blocks must be indented by 2 spaces: {offenders}"
