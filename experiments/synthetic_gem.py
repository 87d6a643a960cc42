"""GEM on the embedded synthetic_faces data (oracle scorer by default: a SIMULATION).

    python -m experiments.synthetic_gem --workdir runs/gem                 # full two-stage GEM
    python -m experiments.synthetic_gem --config experiments/configs/synthetic_gem.py:demo
    python -m experiments.synthetic_gem --config experiments/configs/synthetic_gem.py:beta_vae
    python -m experiments.synthetic_gem --config ...:gem_single --config.gem.scorer.backend=openai

GEM variants run the whole pipeline (warm-up, scoring, alignment, GEM) and always pick up where
a previous run in the same workdir stopped. The β-VAE branch alone (':beta_vae') trains once;
pass --resume to continue it.
"""
from absl import app, flags
from ml_collections import config_flags

from experiments import cli

cli.quiet_tensorflow()
_CONFIG = config_flags.DEFINE_config_file("config", cli.config_path("synthetic_gem"),
                                          "Config file, optionally with ':tokens'.")
_WORKDIR = flags.DEFINE_string("workdir", "runs/synthetic_gem", "Run folder.")
_RESUME = flags.DEFINE_bool("resume", False,
                            "β-VAE only: continue from the last checkpoint in workdir.")


def main(argv):
  del argv
  cli.setup_logging()
  cli.run_experiment(_CONFIG.value, _WORKDIR.value, _RESUME.value)


if __name__ == "__main__":
  app.run(main)
