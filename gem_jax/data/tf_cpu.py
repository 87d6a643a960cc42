"""TensorFlow and tensorflow-datasets, for data work only and kept off every GPU (JAX owns them).

The one place the project imports them: the input pipeline, the tfds builders, the TensorBoard
writer and the Keras feature extractor call `tensorflow()` / `tensorflow_datasets()`, which
import TensorFlow once and hide every GPU from it before it can initialise one. They load on
first use, not when gem_jax is imported: TensorFlow costs seconds and hundreds of MB (measured
on the 2-core machine: `import gem_jax` 1.3 s and 200 MB without it, 5.3 s and 735 MB with it),
which sampling from a checkpoint or timing the train step never needs.
"""
import functools


@functools.cache
def tensorflow():
  """The `tensorflow` module, with GPUs hidden (a no-op once its devices are initialised)."""
  import tensorflow as tf
  try:
    tf.config.set_visible_devices([], "GPU")
  except (RuntimeError, ValueError):  # devices already initialised, or no GPU support
    pass
  return tf


@functools.cache
def tensorflow_datasets():
  """The `tensorflow_datasets` module, imported after `tensorflow()` has hidden the GPUs."""
  tensorflow()
  import tensorflow_datasets as tfds
  return tfds


__all__ = ["tensorflow", "tensorflow_datasets"]
