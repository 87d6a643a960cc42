"""GEM on any folder of images (LSUN horse/bedroom exports, ...): an MLLM scores the
attributes you name, since such folders carry no labels.

    python -m experiments.lsun_gem --data_dir ~/data/lsun_horse \
        --config.gem.attributes=brown,white,saddle,rider,grass,running
    python -m experiments.lsun_gem --data_dir ~/data/lsun_horse --dry_run   # checks, cost

The folder is counted before anything is prepared: it must give the training split a batch
and the scored images, and the test split (5% of the files) the 8 images of the sample grids.
"""
from absl import app, flags
from ml_collections import config_flags

from experiments import cli

_CONFIG = config_flags.DEFINE_config_file("config", cli.config_path("lsun_gem"),
                                          "Config file, optionally with ':tokens'.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Folder of images (searched recursively).")
_WORKDIR = flags.DEFINE_string("workdir", "runs/lsun_gem", "Run folder.")
_DRY_RUN, _VERBOSE = cli.define_run_flags()


def main(argv):
  del argv
  cli.setup_logging()
  config = _CONFIG.value
  if _DATA_DIR.value:
    config.data.image_dir = _DATA_DIR.value
  cli.run_experiment(config, _WORKDIR.value, resume=False, dry_run=_DRY_RUN.value,
                     verbose=_VERBOSE.value)


if __name__ == "__main__":
  app.run(main)
