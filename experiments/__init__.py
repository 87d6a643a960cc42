"""Entry points (`python -m experiments.<name>`) and their configs.

Importing this package prepares the process before TensorFlow or JAX start: TensorFlow only
feeds data (its C++ logs are silenced) and XLA:CPU gets the project's measured defaults
(`gem_jax.xla_flags`).
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from gem_jax.xla_flags import apply_cpu_flags  # noqa: E402

apply_cpu_flags()
