"""Train on the embedded synthetic_faces data (the β-VAE branch for now).

    python -m experiments.synthetic_gem --workdir runs/synthetic_gem
    python -m experiments.synthetic_gem --config experiments/configs/synthetic_gem.py:demo
    python -m experiments.synthetic_gem --workdir runs/synthetic_gem --resume
"""
from absl import app, flags
from ml_collections import config_flags

from experiments import cli

cli.quiet_tensorflow()
_CONFIG = config_flags.DEFINE_config_file("config", cli.config_path("synthetic_gem"),
                                          "Config file, optionally with ':preset'.")
_WORKDIR = flags.DEFINE_string("workdir", "runs/synthetic_gem", "Run folder.")
_RESUME = flags.DEFINE_bool("resume", False, "Continue from the last checkpoint in workdir.")


def main(argv):
  del argv
  cli.setup_logging()
  from gem_jax.train import train_and_evaluate
  train_and_evaluate(_CONFIG.value, _WORKDIR.value, resume=_RESUME.value)


if __name__ == "__main__":
  app.run(main)
