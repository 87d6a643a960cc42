"""GEM on a labelled folder: images with a labels.csv of numeric concepts and a graph.json of
their relations, by default the pendulum (rendered into <tfds data_dir>/pendulum_folder on
first use). An MLLM scores the concepts (gpt-4o by default; 'oracle' simulates it from the
labels), and the learned graph is compared with graph.json.

    python -m experiments.labelled_gem --config experiments/configs/labelled_gem.py:oracle
    python -m experiments.labelled_gem --data_dir ~/data/mine --dry_run   # checks, cost

With --data_dir the attributes are the folder's concept columns unless
--config.gem.attributes names others.
"""
import sys

from absl import app, flags
from ml_collections import config_flags

from experiments import cli
from experiments.configs.labelled_gem import PENDULUM_ATTRIBUTES
from gem_jax.data import get_dataset

_CONFIG = config_flags.DEFINE_config_file("config", cli.config_path("labelled_gem"),
                                          "Config file, optionally with ':tokens'.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "A labelled folder (images + labels.csv).")
_WORKDIR = flags.DEFINE_string("workdir", "runs/labelled_gem", "Run folder.")
_DRY_RUN, _VERBOSE = cli.define_run_flags()


def main(argv):
  del argv
  cli.setup_logging()
  config = _CONFIG.value
  if _DATA_DIR.value:
    config.data.name, config.data.image_dir = "labelled_folder", _DATA_DIR.value
    if config.gem.attributes == ",".join(PENDULUM_ATTRIBUTES):
      try:
        config.gem.attributes = ",".join(get_dataset(config.data).attribute_names)
      except cli.DOMAIN_ERRORS as e:
        sys.exit(f"error: {e}")
  cli.run_experiment(config, _WORKDIR.value, resume=False, dry_run=_DRY_RUN.value,
                     verbose=_VERBOSE.value)


if __name__ == "__main__":
  app.run(main)
