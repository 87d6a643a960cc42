"""gem_jax: GEM (NeurIPS 2024) in JAX/Flax.

`gem_jax.load(checkpoint_dir)` restores a trained model for encode/decode/traverse.
"""
from gem_jax.trained_model import TrainedModel, load

__all__ = ["TrainedModel", "load"]
