"""TensorFlow for data work only: it is kept off every GPU, which JAX owns.

Modules of the data layer import TensorFlow from here (`from gem_jax.data.tf_cpu import tf`),
so GPUs are hidden from it before it can initialise them.
"""
import tensorflow as tf


def hide_gpus() -> None:
  """Makes GPUs invisible to TensorFlow; too late (a no-op) once its devices are initialised."""
  try:
    tf.config.set_visible_devices([], "GPU")
  except (RuntimeError, ValueError):  # devices already initialised, or no GPU support
    pass


hide_gpus()

__all__ = ["hide_gpus", "tf"]
