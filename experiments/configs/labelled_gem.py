"""Config for `python -m experiments.labelled_gem`: GEM on a labelled folder (images with a
labels.csv and a graph.json), by default the pendulum (rendered on first use).

Tokens as in synthetic_gem.py, plus 'oracle' (offline SIMULATION from the folder's levels).
DEAR ('dear') is supervised by the pendulum's four levels over its graph's support; for another
folder set --config.model.dear_num_factors to its number of concepts.
Keys of config.data (docs/data.md):
  name        'pendulum' (default) or 'labelled_folder' (set by --data_dir)
  image_dir   the folder; pendulum: default <data_dir>/pendulum_folder
  labels_csv  default <image_dir>/labels.csv
  graph_json  default <image_dir>/graph.json when present
gem.attributes defaults to the pendulum's concepts; `experiments.labelled_gem --data_dir`
replaces them by the folder's concept columns unless --config.gem.attributes names others.
scorer.model stays unset: openai applies its default (gpt-4o), and a replay
(--config.gem.scorer.backend=replay) reads whichever model its file holds.
"""
import ml_collections
from ml_collections.config_dict import placeholder

from experiments.configs import synthetic_gem

PENDULUM_ATTRIBUTES = ("pendulum_angle", "light_position", "shadow_length", "shadow_position")


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  tokens = [t for t in arg.split(",") if t]
  oracle = "oracle" in tokens
  c = synthetic_gem.get_config(",".join(t for t in tokens if t != "oracle"))
  c.data.name = "pendulum"
  c.data.image_dir = placeholder(str)
  c.data.labels_csv = placeholder(str)
  c.data.graph_json = placeholder(str)
  c.data.image_size = 64
  c.data.skip_bad = False
  c.data.config = "default"
  c.gem.attributes = ",".join(PENDULUM_ATTRIBUTES)
  c.gem.scorer.backend = "oracle" if oracle else "openai"
  if c.model.objective == "dear":  # supervised by the levels ('attributes') over graph.json
    c.model.dear_num_factors = len(PENDULUM_ATTRIBUTES)
  return c
