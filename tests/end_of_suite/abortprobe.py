"""Repro probe: threads alive at session end / exit, orbax CheckpointManagers never closed."""
import atexit
import os
import threading
import weakref

OUT = os.environ.get("ABORTPROBE_OUT", "/tmp/abortprobe.txt")
_open = {}


def _log(msg):
  with open(OUT, "a") as f:
    f.write(msg + "\n")


def _threads(where):
  ts = threading.enumerate()
  _log(f"{where}: {len(ts)} threads: " + ", ".join(
      f"{t.name}{'(d)' if t.daemon else ''}" for t in ts))


def pytest_configure(config):
  import orbax.checkpoint as ocp
  cls = ocp.CheckpointManager
  init, close = cls.__init__, cls.close

  def tracked_init(self, directory, *a, **k):
    init(self, directory, *a, **k)
    _open[id(self)] = (weakref.ref(self), str(directory))

  def tracked_close(self):
    _open.pop(id(self), None)
    return close(self)

  cls.__init__, cls.close = tracked_init, tracked_close


def pytest_sessionfinish(session, exitstatus):
  alive = [(d, r()) for r, d in _open.values() if r() is not None]
  _log(f"sessionfinish exitstatus={exitstatus}: {len(_open)} managers never closed, "
       f"{len(alive)} still alive: {[d for d, _ in alive]}")
  _threads("sessionfinish")
  atexit.register(_threads, "atexit(last registered)")
