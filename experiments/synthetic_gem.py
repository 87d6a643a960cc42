"""GEM on the embedded synthetic_faces data (oracle scorer by default: a SIMULATION).

    python -m experiments.synthetic_gem --workdir runs/gem                 # full two-stage GEM
    python -m experiments.synthetic_gem --config experiments/configs/synthetic_gem.py:demo
    python -m experiments.synthetic_gem --config experiments/configs/synthetic_gem.py:beta_vae
    python -m experiments.synthetic_gem --config ...:gem_single --config.gem.scorer.backend=openai

GEM variants run the whole pipeline (warm-up, scoring, alignment, GEM) and always pick up where
a previous run in the same workdir stopped. The β-VAE branch alone (':beta_vae') trains once;
pass --resume to continue it.
"""
from absl import app

from experiments import cli

main = cli.define_experiment("synthetic_gem", "runs/synthetic_gem")

if __name__ == "__main__":
  app.run(main)
