"""Write a traversal grid (one labelled row per latent) from a checkpoint.

    python -m experiments.sample --checkpoint runs/synthetic_gem --out traversals.png
"""
import sys

import numpy as np
from absl import app, flags

import gem_jax
from gem_jax.data import load_examples
from gem_jax.plots import save_traversal_figure
from gem_jax.train import CheckpointError

_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "Run workdir or its checkpoints/.",
                                  required=True)
_OUT = flags.DEFINE_string("out", "traversals.png", "Output PNG.")
_IMAGE_INDEX = flags.DEFINE_integer("image_index", 0, "Test image whose code is traversed.")
_RANGE = flags.DEFINE_float("range", 2.5, "Traverse each latent over [-range, range].")
_STEPS = flags.DEFINE_integer("steps", 9, "Values per latent.")


def main(argv):
  del argv
  try:
    model = gem_jax.load(_CHECKPOINT.value)
  except CheckpointError as e:
    sys.exit(f"error: {e}")
  image = load_examples(model.config.data, model.config.data.eval_split,
                        _IMAGE_INDEX.value + 1)["image"][-1]
  values = np.linspace(-_RANGE.value, _RANGE.value, _STEPS.value)
  save_traversal_figure(_OUT.value, model.traverse_all(image, values), values,
                        model.latent_labels(),
                        title=f"{_CHECKPOINT.value} @ step {model.step}")
  print(f"wrote {_OUT.value}")


if __name__ == "__main__":
  app.run(main)
