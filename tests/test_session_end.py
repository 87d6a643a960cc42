"""The end of a test session (tests/conftest.py; docs/decisions.md, "The end-of-suite abort"):
once pytest has given its verdict, a crash while the interpreter tears down cannot change it."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow  # subprocess runs of pytest

# A passing test whose process aborts at interpreter exit, as a C++ thread or static destructor
# of XLA, TensorFlow or tensorstore can; and a failing one.
TESTS = """import atexit
import os


def test_passes_then_aborts_at_exit():
  atexit.register(os.abort)


def test_fails():
  assert {fail}
"""


def _pytest(folder: Path, fail: bool, **env) -> subprocess.CompletedProcess:
  shutil.copy(ROOT / "tests" / "conftest.py", folder)
  (folder / "test_exit.py").write_text(TESTS.format(fail=not fail))
  return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "."],
                        cwd=folder, env=dict(os.environ, PYTHONPATH=str(ROOT), **env),
                        capture_output=True, text=True, timeout=120)


def test_an_abort_at_interpreter_exit_leaves_the_verdict(tmp_path):
  green = _pytest(tmp_path, fail=False)
  assert green.returncode == 0, green.stdout + green.stderr
  assert "2 passed" in green.stdout
  red = _pytest(tmp_path, fail=True)
  assert red.returncode == 1 and "1 failed, 1 passed" in red.stdout


def test_without_the_guard_the_abort_turns_a_green_run_red(tmp_path):
  out = _pytest(tmp_path, fail=False, GEM_JAX_TEST_HARD_EXIT="0")
  assert "2 passed" in out.stdout
  assert out.returncode == -6   # SIGABRT
