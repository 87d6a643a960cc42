"""Config for `python -m experiments.known_graph`: GEM against a data set's known graph.

    python -m experiments.known_graph --data_dir data/pendulum --workdir runs/known_graph
    python -m experiments.known_graph --config experiments/configs/known_graph.py:quick ...

Runs GEM end to end on a labelled folder (images + labels.csv + graph.json; docs/data.md) with
the oracle scorer (a SIMULATION from the folder's levels), then writes <workdir>/report.json
(truth Spearman per concept; SHD, orientation, F1 and AUROC of A_0, GEM's learned A and the
score-only baselines PC, GES and DirectLiNGAM; their intervention errors) and graphs.png.
`--data_dir` may be left out with `--config.dataset=pendulum` or `synthetic_faces` (rendered
on first use).

Presets (the string after ':'):
  default  the demo's settings (synthetic_gem.py 'demo': d = 10, warm-up beta 0.5, guided;
           2,000 warm-up steps of 64, 1,000 GEM steps of 32), 256 images intervened on.
  quick    at most 20 minutes on 2 CPU cores (pendulum): 1,500 warm-up steps, 500 GEM steps,
           a 400-step local CNN.
  tiny     seconds; tests.
"""
import ml_collections
from ml_collections.config_dict import placeholder

PRESETS = ("default", "quick", "tiny")


def eval_config() -> ml_collections.ConfigDict:
  """What the known-graph report reads: the split, the images intervened on, and the local
  CNN that reads their levels (or the FID keys of `gem_jax.evaluation.make_extractor`)."""
  e = ml_collections.ConfigDict()
  e.split = "test"
  e.intervention_images = 256
  e.extractor_steps = 600
  e.extractor_examples = 20_000
  e.fid_weights = placeholder(str)
  e.inception_weights = placeholder(str)
  return e


def get_config(arg: str = "default") -> ml_collections.ConfigDict:
  preset = arg or "default"
  if preset not in PRESETS:
    raise ValueError(f"unknown known_graph preset {preset!r}; choose from {PRESETS}")
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.dataset = "labelled_folder"    # labelled_folder (--data_dir) | pendulum | synthetic_faces
  c.image_dir = placeholder(str)   # the labelled folder (--data_dir)
  c.data_dir = placeholder(str)    # tfds data_dir; unset: $TFDS_DATA_DIR or ~/tensorflow_datasets
  c.run_tokens = "demo"            # synthetic_gem.py tokens of the run's size
  c.variant = "gem"                # synthetic_gem.py tokens of the GEM variant ('-' joins them)
  c.seed = 0
  c.warmup_steps = 2_000
  c.stage4_steps = 1_000
  c.num_scored_images = 1_500     # the paper's N
  c.scorer_accuracy = 0.884        # the oracle's mean exact-level accuracy (paper: GPT-4o's)
  c.error_model = "uniform"        # uniform | adjacent | calibrated | realistic (docs/scorers.md)

  c.eval = eval_config()

  if preset == "quick":
    c.warmup_steps = 1_500
    c.stage4_steps = 500
    c.eval.extractor_steps = 400
  elif preset == "tiny":
    c.run_tokens = "tiny"
    c.warmup_steps = 4
    c.stage4_steps = 2
    c.num_scored_images = 120      # the score-only methods need 100 fully answered rows
    c.eval.intervention_images = 16
    c.eval.extractor_steps = 5
    c.eval.extractor_examples = 64
  return c
