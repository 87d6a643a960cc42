"""Renders the CausalVAE pendulum into a labelled folder: PNGs, labels.csv, graph.json.

    python -m experiments.render_pendulum --out ~/data/pendulum            # all 7,308 scenes
    python -m experiments.render_pendulum --out /tmp/p --stride 97         # every 97th

The geometry and the published split are described in docs/data.md ('pendulum').
"""
import sys

from absl import app, flags

from gem_jax.data.pendulum import write_pendulum_folder

_OUT = flags.DEFINE_string("out", None, "Folder to create (absent or empty).", required=True)
_SIZE = flags.DEFINE_integer("size", 64, "Image side in pixels.")
_STRIDE = flags.DEFINE_integer("stride", 1, "Render every stride-th scene.")
_MAX_IMAGES = flags.DEFINE_integer("max_images", None, "At most this many images.")


def main(argv):
  del argv
  try:
    out = write_pendulum_folder(_OUT.value, size=_SIZE.value, stride=_STRIDE.value,
                                max_images=_MAX_IMAGES.value, progress=True)
  except (FileExistsError, ValueError) as e:
    sys.exit(f"error: {e}")
  print(f"wrote {out}")


if __name__ == "__main__":
  app.run(main)
