"""Data sets, the facts about them (`DatasetSpec`, `get_dataset`) and the input pipeline.

The tfds builders (`synthetic_faces`, `celeba_local`, `image_folder`, `labelled_folder`, which
also reads the rendered `pendulum`) are registered when a data set's builder is first asked for
(`DatasetSpec.builder`), so importing this package does not load TensorFlow
(`gem_jax.data.tf_cpu`).
"""
from gem_jax.data.errors import DataConfigError, DataNotFoundError, LabelsError
from gem_jax.data.pipeline import load_examples, make_train_iterator
from gem_jax.data.registry import DATASETS, DatasetSpec, DataSurvey, get_builder, get_dataset
from gem_jax.data.validation import VALIDATION, validation_rows

__all__ = ["DATASETS", "DataConfigError", "DataNotFoundError", "DataSurvey", "DatasetSpec",
           "LabelsError", "VALIDATION", "get_builder", "get_dataset", "load_examples",
           "make_train_iterator", "validation_rows"]
