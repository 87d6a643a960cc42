"""Config for `python -m experiments.alignment_study`: in which regime do the latents carry the
attributes they are named after?

    python -m experiments.alignment_study --workdir runs/alignment_study
    python -m experiments.alignment_study --config experiments/configs/alignment_study.py:guided

Each setting is the demo's GEM config (synthetic_gem.py:demo) with the overrides in SETTINGS;
per setting and seed the shared stages run (warm-up, oracle scoring: a SIMULATION, alignment)
and the warm-up is measured: for every attribute the Spearman of its latent with the TRUE level
on 1,000 test images and the traversal effect (local CNN, levels). Same budget everywhere
unless a setting changes it: 2,000 warm-up steps of 64 images.

Presets (the string after ':'):
  unsupervised (default) latent_dim, warm-up beta and its capacity ramp (3 seeds), and
               latent_dim 12, beta 2, warm-up length, learning rate (`screen`: 1 seed): the
               paper's fully unsupervised form.
  guided       MLLM-guided warm-ups against the best unsupervised setting at the same budget,
               with the oracle at the paper's accuracy (0.884) and at a poor one (0.6).
  all          both.
  tiny         seconds; for tests.
"""
import ml_collections
from ml_collections.config_dict import placeholder

PRESETS = ("unsupervised", "guided", "all", "tiny")
# name -> overrides of synthetic_gem.py:demo,gem (dotted keys). Each setting names its latent
# size, warm-up beta and guidance weight, whatever the demo preset's defaults are.
def _unsupervised(d: int, beta: float | None, **more) -> dict:
  return {"model.latent_dim": d, "gem.warmup_beta": beta, "gem.guidance.weight": 0.0, **more}


SETTINGS = {
    "d6_b4": _unsupervised(6, None),  # the demo before this study: d = 6, beta 4
    "d6_b0.5": _unsupervised(6, 0.5),
    "d10_b0.5": _unsupervised(10, 0.5),
    "d12_b0.5": _unsupervised(12, 0.5),
    "d10_b1": _unsupervised(10, 1.0),
    "d10_b2": _unsupervised(10, 2.0),
    "d10_b0.5_w4k": _unsupervised(10, 0.5, **{"gem.warmup_steps": 4_000}),
    "d10_b0.5_lr3e-4": _unsupervised(10, 0.5, **{"gem.warmup_learning_rate": 3e-4}),
    # Burgess et al. (2018): beta * |KL - C(t)|, C(t) rising linearly to C nats over the warm-up.
    "d10_cap25": _unsupervised(10, 50.0, **{"gem.warmup_capacity": 25.0}),
}
GUIDED = {
    "d10_b0.5_guided": {"model.latent_dim": 10, "gem.warmup_beta": 0.5,
                        "gem.guidance.weight": 10.0},
    "d10_b0.5_guided_acc0.6": {"model.latent_dim": 10, "gem.warmup_beta": 0.5,
                               "gem.guidance.weight": 10.0, "gem.scorer.accuracy": 0.6},
    "d6_b4_guided": {"model.latent_dim": 6, "gem.warmup_beta": None,
                     "gem.guidance.weight": 10.0},
}
SETTINGS.update(GUIDED)
UNSUPERVISED = "d6_b4,d6_b0.5,d10_b0.5,d10_b1,d10_cap25"
# Settings screened on fewer seeds (the CPU's budget): the tables give their seed count.
SCREEN = "d12_b0.5,d10_b2,d10_b0.5_w4k,d10_b0.5_lr3e-4"


def get_config(arg: str = "unsupervised") -> ml_collections.ConfigDict:
  preset = arg or "unsupervised"
  if preset not in PRESETS:
    raise ValueError(f"unknown alignment_study preset {preset!r}; choose from {PRESETS}")
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.run_tokens = "demo"            # synthetic_gem.py size preset under every setting
  c.data_config = "default"
  c.data_dir = placeholder(str)
  c.settings = {"unsupervised": UNSUPERVISED, "guided": ",".join(GUIDED),
                "all": UNSUPERVISED + "," + ",".join(GUIDED), "tiny": "tiny_d6,tiny_guided"
                }[preset]
  c.seeds = "0,1,2"
  c.screen = "" if preset in ("guided", "tiny") else SCREEN  # run on screen_seeds only
  c.screen_seeds = "0"
  c.carried_spearman = 0.6         # the bar: |Spearman| with the true level ...
  c.carried_levels = 2.0           # ... and a traversal that moves the attribute this far
  c.results = "docs/results/alignment_study.json"  # and .md beside it

  c.eval = ml_collections.ConfigDict()
  c.eval.split = "test"
  c.eval.num_images = 1_000        # true-level Spearman; the first 256 are traversed
  c.eval.extractor_steps = 600
  c.eval.extractor_examples = 20_000
  if preset == "tiny":
    c.run_tokens = "tiny"
    c.data_config = "tiny"
    c.seeds = "0,1"
    c.results = placeholder(str)   # tests pass a path
    c.eval.num_images = 64
    c.eval.extractor_steps = 5
    c.eval.extractor_examples = 128
  return c


def setting_overrides(name: str) -> dict:
  """The overrides of a setting; the tiny ones for tests."""
  tiny = {"tiny_d6": {"gem.guidance.weight": 0.0}, "tiny_guided": {"gem.guidance.weight": 10.0}}
  if name in tiny:
    return tiny[name]
  if name not in SETTINGS:
    raise ValueError(f"unknown alignment_study setting {name!r}; known: {', '.join(SETTINGS)}")
  return SETTINGS[name]
