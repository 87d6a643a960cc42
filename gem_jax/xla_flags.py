"""XLA:CPU flags the project runs with by default, chosen by measurement.

On jax 0.10.2's XLA:CPU, the YNNPACK/XNNPACK fusions made this project's conv train step
about 1.7x slower on the 2-core development machine (compare `python -m experiments.benchmark`
with and without GEM_JAX_XLA_DEFAULTS=0). `apply_cpu_flags()` must run
before JAX creates its backend (i.e. before the first computation); importing `experiments`
and the tests' conftest call it first thing. Set GEM_JAX_XLA_DEFAULTS=0 to leave XLA_FLAGS
untouched.
"""
import os

CPU_FLAGS = ("--xla_cpu_experimental_ynn_fusion_type=",
             "--xla_cpu_experimental_xnn_fusion_type=")


def apply_cpu_flags() -> None:
  """Appends CPU_FLAGS to $XLA_FLAGS unless the user set them or opted out."""
  if os.environ.get("GEM_JAX_XLA_DEFAULTS", "1") == "0":
    return
  flags = os.environ.get("XLA_FLAGS", "")
  extra = [f for f in CPU_FLAGS if f.split("=")[0] not in flags]
  os.environ["XLA_FLAGS"] = " ".join([flags, *extra]).strip()
