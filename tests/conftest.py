"""Test set-up: two CPU devices for the multi-device tests, quiet TensorFlow; the end of the
session (docs/decisions.md, "The end-of-suite abort"): orbax managers left open are closed and
named, and a crash while the interpreter tears down cannot change the verdict."""
import atexit
import logging
import os
import sys

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
from gem_jax.xla_flags import apply_cpu_flags  # noqa: E402

apply_cpu_flags()

import pytest  # noqa: E402

# id -> (manager, directory) of every orbax CheckpointManager opened and not yet closed (tracked
# from the end of collection on, when the test modules have imported orbax). Held, not weakly
# referenced: a manager dropped unclosed is still found, and closed at the end of the session.
_OPEN_MANAGERS: dict[int, tuple[object, str]] = {}
_SESSION = []


def _track_checkpoint_managers() -> None:
  if "orbax.checkpoint" not in sys.modules:
    return
  cls = sys.modules["orbax.checkpoint"].CheckpointManager
  if getattr(cls, "_gem_jax_tracked", False):
    return
  init, close = cls.__init__, cls.close

  def tracked_init(self, directory, *args, **kwargs):
    init(self, directory, *args, **kwargs)
    _OPEN_MANAGERS[id(self)] = (self, str(directory))

  def tracked_close(self):
    _OPEN_MANAGERS.pop(id(self), None)
    return close(self)

  cls.__init__, cls.close, cls._gem_jax_tracked = tracked_init, tracked_close, True


def open_checkpoint_managers() -> list[str]:
  """The directories of the orbax CheckpointManagers opened since tracking began and not
  closed, dropped ones included."""
  return [directory for _, directory in _OPEN_MANAGERS.values()]


def pytest_collection_finish(session):
  _track_checkpoint_managers()


def pytest_sessionstart(session):
  _SESSION.append(session)


def pytest_sessionfinish(session):
  """Closes the orbax managers still open (their async writers and metadata threads finish
  now, not while the interpreter tears down) and names them."""
  left = open_checkpoint_managers()
  for manager, _ in list(_OPEN_MANAGERS.values()):
    manager.close()
  if left:
    print(f"\nconftest: closed {len(left)} orbax CheckpointManager(s) left open: {left}",
          file=sys.stderr)


def _pytest_is_the_program() -> bool:
  """Whether this process is `pytest` / `python -m pytest`, not a tool that calls pytest.main
  and goes on afterwards (mutmut, an IDE) or that saves its data at exit (coverage)."""
  main = sys.modules.get("__main__")
  spec = getattr(main, "__spec__", None)
  runs_pytest = (getattr(spec, "name", "") in ("pytest", "pytest.__main__")
                 or os.path.basename(sys.argv[0]) in ("pytest", "py.test"))
  coverage = sys.modules.get("coverage")
  measured = coverage is not None and coverage.Coverage.current() is not None
  return runs_pytest and not measured


def _exit_now() -> None:
  """The last thing of a pytest process: its verdict is out, so the interpreter's teardown
  (XLA's, TensorFlow's and tensorstore's C++ threads and static destructors) is skipped."""
  logging.shutdown()
  for stream in (sys.stdout, sys.stderr):
    try:
      stream.flush()
    except (OSError, ValueError):
      pass
  os._exit(int(_SESSION[0].exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
  # atexit runs its handlers last registered first: this one before jax's, TensorFlow's and
  # orbax's; Python has already joined its non-daemon threads by then.
  # GEM_JAX_TEST_HARD_EXIT=0: tear down as usual (to look into a crash at exit).
  hard_exit = os.environ.get("GEM_JAX_TEST_HARD_EXIT", "1") != "0"
  if _SESSION and hard_exit and _pytest_is_the_program():
    atexit.register(_exit_now)


@pytest.fixture()
def open_managers():
  """`open_checkpoint_managers`, for tests that check a code path closes its managers."""
  _track_checkpoint_managers()
  return open_checkpoint_managers


@pytest.fixture(scope="session")
def tfds_dir(tmp_path_factory):
  """One tfds data_dir per test session (synthetic_faces/tiny is rendered once)."""
  return str(tmp_path_factory.mktemp("tfds"))


@pytest.fixture()
def tiny_config(tfds_dir):
  from experiments.configs import synthetic_gem
  config = synthetic_gem.get_config("tiny,beta_vae")
  config.data.data_dir = tfds_dir
  return config
