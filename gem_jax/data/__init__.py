"""Data sets and the input pipeline."""
from gem_jax.data.errors import DataNotFoundError
from gem_jax.data.pipeline import load_examples, make_train_iterator
from gem_jax.data.registry import DATASETS, get_builder

__all__ = ["DATASETS", "DataNotFoundError", "get_builder", "load_examples",
           "make_train_iterator"]
