"""Write a traversal figure (one labelled row per latent, a few contrasting faces) from a
checkpoint.

    python -m experiments.sample --checkpoint runs/synthetic_gem --out traversals.png
    python -m experiments.sample --checkpoint runs/demo/gem --out /tmp/t.png --num_faces 4 \
        --extractor_dir runs/feature_extractors     # steerability read by the local CNN

Faces: `--num_faces` images of the eval split chosen for contrast (brightness quartiles of the
first 256, gem_jax/pipeline_figures.py), or the one at `--image_index`. Row labels: the
attribute, its Spearman with the true level where the run measured it (with the scores
otherwise) and its steerability: from the run's own table, or measured now on 256 eval images
with the local CNN cached in `--extractor_dir` (labelled data sets only).
"""
import sys

import numpy as np
from absl import app, flags

import gem_jax
from experiments.configs.table1 import get_config
from gem_jax.data import load_examples
from gem_jax.evaluation import TRAVERSAL_IMAGES, make_extractor, reader_steerability
from gem_jax.pipeline_figures import candidate_faces, write_traversals
from gem_jax.train import CheckpointError

_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "Run workdir or its checkpoints/.",
                                  required=True)
_OUT = flags.DEFINE_string("out", "traversals.png", "Output PNG.")
_NUM_FACES = flags.DEFINE_integer("num_faces", 4, "Faces side by side, chosen for contrast.")
_IMAGE_INDEX = flags.DEFINE_integer("image_index", None,
                                    "One eval image to traverse instead of --num_faces.")
_SPLIT = flags.DEFINE_string("split", None, "Split of the faces (default: config.data."
                             "eval_split).")
_EXTRACTOR_DIR = flags.DEFINE_string(
    "extractor_dir", None, "Cache of the local CNN: measure the steerability in the labels now "
    "(default: the run's saved table).")


def _quality(model, images):
  """The run's quality table, with steerability measured by the local CNN when asked."""
  quality = model.alignment_quality()
  if not _EXTRACTOR_DIR.value or quality is None:
    return quality
  eval_config = get_config("small").eval
  extractor = make_extractor(model.config.data, eval_config, _EXTRACTOR_DIR.value)
  steer = reader_steerability(model, images[:TRAVERSAL_IMAGES], extractor)
  if steer is None:
    sys.exit(f"error: {extractor.name} has no head for each of "
             f"{list(model.alignment.attribute_names)}")
  on = f"{extractor.name}, {steer.num_images} images"
  return quality.with_steerability(*steer.by_attribute(), on)


def main(argv):
  del argv
  try:
    model = gem_jax.load(_CHECKPOINT.value)
  except CheckpointError as e:
    sys.exit(f"error: {e}")
  split = _SPLIT.value or model.config.data.eval_split
  images = candidate_faces(model.config.data, split)
  quality = _quality(model, images)
  faces, num = images, _NUM_FACES.value
  if _IMAGE_INDEX.value is not None:
    faces = load_examples(model.config.data, split, _IMAGE_INDEX.value + 1)["image"][-1:]
    num = 1
  write_traversals(_OUT.value, model, np.asarray(faces),
                   f"{_CHECKPOINT.value} @ step {model.step}", num, quality)
  print(f"wrote {_OUT.value}")


if __name__ == "__main__":
  app.run(main)
