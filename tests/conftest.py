"""Test set-up: two CPU devices for the multi-device tests, quiet TensorFlow."""
import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
from gem_jax.xla_flags import apply_cpu_flags  # noqa: E402

apply_cpu_flags()

import pytest  # noqa: E402


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
