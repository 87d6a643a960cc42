"""`make mutate`: mutmut (3.x) over one library package at a time, with that package's own fast
tests (docs/mutation.md). Not part of CI: a full pass takes hours on two CPU cores.

  python tests/mutate.py                      # every package of [tool.gem_jax.mutate]
  python tests/mutate.py relations metrics    # some of them
  python tests/mutate.py train --only 'gem_jax/train/state.py' --only 'gem_jax/train/step.py'
  python tests/mutate.py --table              # the counts of the last runs, as in docs/mutation.md
  python tests/mutate.py relations --again    # after adding tests: the survivors once more

mutmut reads one configuration per working directory, so each package runs in
build/mutate/<package>/: links to gem_jax/, experiments/, tests/ and setup.cfg (pytest's
settings), and a pyproject.toml whose [tool.mutmut] is the repository's [tool.mutmut] plus
`only_mutate` (the package's files) and `pytest_add_cli_args_test_selection` (its test files,
[tool.gem_jax.mutate]). mutmut's results stay there (`mutants/`), so a rerun only tests the
mutants of functions that changed; `cd build/mutate/<package> && mutmut show <mutant>` prints
one. Kill rate = killed / (killed + survived): mutants that time out, that no selected test
reaches, or that crash the test process are counted apart.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "build" / "mutate"
LINKED = ("gem_jax", "experiments", "tests", "setup.cfg")
# mutmut's exit-code statuses, folded into the table's columns.
COLUMNS = {"killed": "killed", "caught by type check": "killed", "survived": "survived",
           "timeout": "timeouts", "suspicious": "timeouts", "no tests": "no tests",
           "skipped": "skipped", "segfault": "crashed", "check was interrupted by user": "skipped",
           "not checked": "not checked"}


def settings() -> tuple[dict, dict[str, list[str]]]:
  """([tool.mutmut], {package: its test files}) of pyproject.toml."""
  tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]
  return tool["mutmut"], tool["gem_jax"]["mutate"]


def _toml(value) -> str:
  return json.dumps(value)  # lists of strings, numbers, booleans: JSON is valid TOML here


def prepare(package: str, only: list[str]) -> Path:
  """build/mutate/<package>/ with its links and pyproject.toml; returns it."""
  base, tests = settings()
  work = WORK / package
  work.mkdir(parents=True, exist_ok=True)
  for name in LINKED:
    link = work / name
    if not link.is_symlink():
      link.symlink_to(ROOT / name)
  patterns = only or [f"gem_jax/{package}/*.py"]
  for pattern in patterns:
    for source in ROOT.glob(pattern):
      _drop_unmutated_copy(work / "mutants" / source.relative_to(ROOT))
  mutmut = {**base, "only_mutate": patterns,
            "pytest_add_cli_args_test_selection": tests[package]}
  (work / "pyproject.toml").write_text(
      "[tool.mutmut]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in mutmut.items()))
  return work


def _drop_unmutated_copy(copy: Path) -> None:
  """Removes mutmut's plain copy of a file an earlier run's only_mutate left out: mutmut 3.8
  takes the copy for the file's mutants, unchanged, and would make none ('1 unmodified')."""
  if copy.is_file() and "mutmut" not in copy.read_text():
    copy.unlink()
    copy.with_name(copy.name + ".meta").unlink(missing_ok=True)


def run(package: str, only: list[str], max_children: int, again: bool = False) -> int:
  """mutmut run in build/mutate/<package>/; again: only the mutants that survived or that no
  test reached last time (after tests were added: mutmut keeps every other result)."""
  work = prepare(package, only)
  env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=str(WORK / "jax_cache"),
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", JAX_PLATFORMS="cpu")
  names = sorted(survivors(package)) if again else []
  if again and not names:
    print(f"== mutmut: {package}: no survivor to run again", flush=True)
    return 0
  print(f"== mutmut: {package} ({work}){f': {len(names)} mutants again' if again else ''}",
        flush=True)
  return subprocess.call([sys.executable, "-m", "mutmut", "run",
                          f"--max-children={max_children}", *names], cwd=work, env=env)


def _results(package: str):
  """(source file, mutant name, mutmut's status) of every mutant of the last run."""
  from mutmut.stats import status_by_exit_code  # a dev tool: not in requirements.txt
  for meta in sorted((WORK / package / "mutants").rglob("*.py.meta")):
    name = str(meta.relative_to(WORK / package / "mutants"))[:-len(".meta")]
    for mutant, code in json.loads(meta.read_text()).get("exit_code_by_key", {}).items():
      yield name, mutant, "not checked" if code is None else status_by_exit_code[code]


def survivors(package: str) -> list[str]:
  return [m for _, m, status in _results(package) if status in ("survived", "no tests")]


def counts(package: str) -> dict[str, collections.Counter]:
  """{source file: Counter of table columns} from mutmut's result files of `package`."""
  out = collections.defaultdict(collections.Counter)
  for name, _, status in _results(package):
    out[name][COLUMNS.get(status, status)] += 1
  return out


def table(packages: list[str]) -> str:
  lines = ["| file | mutants | killed | survived | timeouts | no tests / skipped / crashed "
           "| kill rate |", "|---|---|---|---|---|---|---|"]

  def row(name, c):
    rate = c["killed"] / max(1, c["killed"] + c["survived"])
    apart = c["no tests"] + c["skipped"] + c["crashed"] + c["not checked"]
    return (f"| {name} | {sum(c.values())} | {c['killed']} | {c['survived']} | "
            f"{c['timeouts']} | {apart} | {100 * rate:.1f}% |")

  for package in packages:
    total = collections.Counter()
    for name, c in counts(package).items():
      lines.append(row(name, c))
      total += c
    lines.append(row(f"**{package}**", total))
  return "\n".join(lines)


def main() -> int:
  _, tests = settings()
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("packages", nargs="*", help=f"some of {', '.join(tests)} (default: all)")
  parser.add_argument("--only", action="append", default=[],
                      help="mutate these files only (globs, e.g. gem_jax/train/state.py)")
  parser.add_argument("--max-children", type=int, default=os.cpu_count() or 1)
  parser.add_argument("--table", action="store_true", help="only print the counts")
  parser.add_argument("--again", action="store_true",
                      help="run only the mutants that survived or had no test last time")
  args = parser.parse_args()
  packages = args.packages or list(tests)
  unknown = sorted(set(packages) - set(tests))
  if unknown:
    parser.error(f"unknown packages {unknown}; known: {', '.join(tests)}")
  if not args.table:
    for package in packages:
      rc = run(package, args.only, args.max_children, args.again)
      if rc:
        return rc
  print(table(packages))
  return 0


if __name__ == "__main__":
  sys.exit(main())
