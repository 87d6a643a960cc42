"""Config for `python -m experiments.lsun_gem`: GEM on a folder of images (no labels)."""
import ml_collections
from ml_collections.config_dict import placeholder

from experiments.configs import synthetic_gem


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  c = synthetic_gem.get_config(arg)
  c.data.name = "image_folder"
  c.data.image_dir = placeholder(str)
  c.data.image_size = 64
  c.data.skip_bad = False
  c.data.config = "default"
  c.gem.attributes = "brown,white,black,saddle,rider,grass"
  # scorer.model stays unset: openai applies its default (gpt-4o), and a replay
  # (--config.gem.scorer.backend=replay) reads whichever model its file holds.
  c.gem.scorer.backend = "openai"
  return c
