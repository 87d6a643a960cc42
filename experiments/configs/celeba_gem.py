"""Config for `python -m experiments.celeba_gem`: the paper's CelebA run (64x64, d = 6)."""
import ml_collections
from ml_collections.config_dict import placeholder

from experiments.configs import synthetic_gem


def get_config(preset: str = "") -> ml_collections.ConfigDict:
  c = synthetic_gem.get_config(preset)
  c.data.name = "celeba"
  c.data.config = "default"
  c.data.celeba_dir = placeholder(str)  # unset: $CELEBA_DIR or ~/data/celeba
  c.data.eval_split = "validation"
  c.train.batch_size = 32          # DESIGN.md: batch 32
  return c
