"""The paper's CelebA run. Needs the CelebA files locally (see DESIGN.md, Data).

    python -m experiments.celeba_gem --config.data.celeba_dir ~/data/celeba
"""
import sys

from absl import app, flags
from ml_collections import config_flags

from experiments import cli

cli.quiet_tensorflow()
_CONFIG = config_flags.DEFINE_config_file("config", cli.config_path("celeba_gem"),
                                          "Config file, optionally with ':preset'.")
_WORKDIR = flags.DEFINE_string("workdir", "runs/celeba_gem", "Run folder.")
_RESUME = flags.DEFINE_bool("resume", False, "Continue from the last checkpoint in workdir.")


def main(argv):
  del argv
  cli.setup_logging()
  from gem_jax.data import DataNotFoundError
  from gem_jax.data.celeba_files import check_celeba_files
  try:
    check_celeba_files(_CONFIG.value.data.celeba_dir)
  except DataNotFoundError as e:
    sys.exit(f"error: {e}")
  sys.exit("error: CelebA files found, but the CelebA reader is not implemented yet "
           "(it arrives with the full-GEM issue).")


if __name__ == "__main__":
  app.run(main)
