"""tests/polling.py: a wait that fails saying what it awaited and what the process last logged."""
import subprocess
import sys

import pytest

try:
  from polling import wait_for
except ImportError:  # tests/ imported as a package
  from tests.polling import wait_for

LINES = "import sys\nfor i in range(30):\n  print('line', i)\nsys.stdout.flush()\n"


def _start(tmp_path, code):
  """A Python process running `code`, its output in a log file: (Popen, log path)."""
  log = tmp_path / "proc.log"
  with open(log, "w") as f:
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=f, stderr=subprocess.STDOUT)
  return proc, log


def test_a_process_that_exits_fails_the_wait_with_its_last_twenty_lines(tmp_path):
  proc, log = _start(tmp_path, LINES + "sys.exit(3)\n")
  with pytest.raises(pytest.fail.Exception) as e:
    wait_for(lambda: (tmp_path / "never").exists(), "the file never", 600, [(proc, log)],
             poll_s=0.05)
  text = str(e.value)
  assert text.startswith("a process exited while waiting for the file never\n")
  assert f"pid {proc.pid} (exited with status 3), last lines of {log}:" in text
  assert text.endswith("\n".join(f"line {i}" for i in range(10, 30)))
  assert "line 9\n" not in text


def test_the_deadline_fails_the_wait_and_kills_the_process(tmp_path):
  proc, log = _start(tmp_path, LINES + "import time\ntime.sleep(600)\n")
  with pytest.raises(pytest.fail.Exception, match=r"^gave up after 0.3 s while waiting for "
                     r"a checkpoint\n--- pid \d+ \(running\)"):
    wait_for(lambda: False, "a checkpoint", 0.3, [(proc, log)], poll_s=0.05)
  assert proc.poll() is not None  # killed, not left running


def test_the_wait_returns_what_the_condition_returned(tmp_path):
  (tmp_path / "3").mkdir()
  assert wait_for(lambda: sorted(p.name for p in tmp_path.iterdir()), "a folder", 1) == ["3"]
