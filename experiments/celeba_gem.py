"""The paper's CelebA run: six attributes Bangs, Bald, Male, Beard (No_Beard inverted),
Blond_Hair, Heavy_Makeup; GPT-4o scores by default (OPENAI_API_KEY from the environment).

    python -m experiments.celeba_gem --config.data.celeba_dir ~/data/celeba
    python -m experiments.celeba_gem --config experiments/configs/celeba_gem.py:oracle  # offline
"""
from absl import app, flags
from ml_collections import config_flags

from experiments import cli

cli.quiet_tensorflow()
_CONFIG = config_flags.DEFINE_config_file("config", cli.config_path("celeba_gem"),
                                          "Config file, optionally with ':tokens'.")
_WORKDIR = flags.DEFINE_string("workdir", "runs/celeba_gem", "Run folder.")
_RESUME = flags.DEFINE_bool("resume", False,
                            "β-VAE only: continue from the last checkpoint in workdir.")


def main(argv):
  del argv
  cli.setup_logging()
  cli.run_experiment(_CONFIG.value, _WORKDIR.value, _RESUME.value)


if __name__ == "__main__":
  app.run(main)
