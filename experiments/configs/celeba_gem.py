"""Config for `python -m experiments.celeba_gem`: the paper's CelebA run (64x64, d = 6).

Tokens as in synthetic_gem.py, plus 'oracle' (offline SIMULATION from CelebA's labels). DEAR
('dear') is supervised by the six GEM attributes (`gem_labels`, 0/1) over the 'full'
super-graph, CelebA having no known true graph.
"""
import ml_collections
from ml_collections.config_dict import placeholder

from experiments.configs import synthetic_gem

CELEBA_ATTRIBUTES = ("Bangs", "Bald", "Male", "Beard", "Blond_Hair", "Heavy_Makeup")


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  tokens = [t for t in arg.split(",") if t]
  oracle = "oracle" in tokens
  c = synthetic_gem.get_config(",".join(t for t in tokens if t != "oracle"))
  c.data.name = "celeba"
  c.data.config = "crop64"
  c.data.celeba_dir = placeholder(str)  # unset: $CELEBA_DIR or ~/data/celeba
  c.data.eval_split = "validation"
  c.gem.attributes = ",".join(CELEBA_ATTRIBUTES)
  c.gem.scorer.backend = "oracle" if oracle else "openai"
  c.gem.scorer.model = None if oracle else "gpt-4o"
  if c.model.objective == "dear":  # weak supervision by the six GEM attributes, 0/1
    c.data.label_key, c.data.label_max = "gem_labels", 1
    c.model.dear_supergraph = "full"  # CelebA has no known true graph
  return c
