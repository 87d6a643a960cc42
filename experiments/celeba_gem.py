"""The paper's CelebA run: six attributes Bangs, Bald, Male, Beard (No_Beard inverted),
Blond_Hair, Heavy_Makeup; GPT-4o scores by default (OPENAI_API_KEY from the environment).

    python -m experiments.celeba_gem --config.data.celeba_dir ~/data/celeba
    python -m experiments.celeba_gem --config experiments/configs/celeba_gem.py:oracle  # offline
"""
from absl import app

from experiments import cli

main = cli.define_experiment("celeba_gem", "runs/celeba_gem")

if __name__ == "__main__":
  app.run(main)
