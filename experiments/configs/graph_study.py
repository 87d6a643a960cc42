"""Config for `python -m experiments.graph_study`: does GEM's graph learner beat its MLLM prior?

    python -m experiments.graph_study --workdir runs/graph_study          # the CPU study
    python -m experiments.graph_study --config experiments/configs/graph_study.py:long ...

Per seed, one warm-up, one scoring (oracle at the paper's accuracy 0.884, a SIMULATION) and one
alignment are shared by every variant; each variant is a stage-4 run from that start, then
evaluated (relation recovery of A and of A_0, traversal effect, DCI, MIG, FD of samples under
the local CNN). Variants are synthetic_gem.py tokens joined by '-', e.g. 'gem_scm-no_adversarial';
'beta_vae' continues the warm-up as a β-VAE (A = I, no discriminator) for the same steps,
batch and learning rate as the GEM stage.

Presets (the string after ':'):
  small  (default) the CPU study, about an hour on 2 cores: the 'demo' run settings (d = 10,
         warm-up beta 0.5, MLLM-guided; 2,000 warm-up steps of 64), 400 stage-4 steps of 32,
         3 seeds, 1,000 test images. Weakly aligned attributes are accepted (and reported).
  long   for a GPU: 10,000 warm-up steps, 5,000 stage-4 steps, 5 seeds, 5,000 test images.
  tiny   seconds; for tests.
"""
import ml_collections
from ml_collections.config_dict import placeholder

PRESETS = ("small", "long", "tiny")
VARIANTS = ("gem_scm,gem_relcon,gem_paper,gem_single,gem_scm-no_adversarial,"
            "gem_scm-adv_pixel,beta_vae")


def get_config(arg: str = "small") -> ml_collections.ConfigDict:
  preset = arg or "small"
  if preset not in PRESETS:
    raise ValueError(f"unknown graph_study preset {preset!r}; choose from {PRESETS}")
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.data_config = "default"        # synthetic_faces builder config
  c.data_dir = placeholder(str)
  c.variants = VARIANTS
  c.seeds = "0,1,2"
  c.run_tokens = "demo"            # size preset of synthetic_gem.py shared by every run
  c.warmup_steps = 2_000
  c.stage4_steps = 400
  c.scorer_accuracy = 0.884        # the oracle's error model: the paper's GPT-4o average
  c.results = "docs/results/graph_study.json"  # relative to the current directory

  c.eval = ml_collections.ConfigDict()
  c.eval.split = "test"
  c.eval.num_images = 1_000
  c.eval.num_samples = 1_000
  c.eval.dci_max_train = 500
  c.eval.kid_subset_size = 250
  c.eval.kid_subsets = 20
  c.eval.fid_weights = placeholder(str)        # pt_inception-2015-12-05-6726825d.pth: FID
  c.eval.fid_weights_sha256 = placeholder(str) # its full sha256, to pin (default: the prefix)
  c.eval.inception_weights = placeholder(str)  # a local Keras InceptionV3 .h5: FD, not FID
  c.eval.extractor_steps = 600
  c.eval.extractor_examples = 20_000

  if preset == "long":
    c.seeds = "0,1,2,3,4"
    c.warmup_steps = 10_000
    c.stage4_steps = 5_000
    c.results = "docs/results/graph_study_long.json"
    c.eval.num_images = 5_000
    c.eval.num_samples = 5_000
    c.eval.dci_max_train = 2_000
    c.eval.kid_subset_size = 1_000
    c.eval.kid_subsets = 50
  elif preset == "tiny":
    c.data_config = "tiny"
    c.run_tokens = "tiny"
    c.variants = "gem_relcon,gem_paper,beta_vae"
    c.seeds = "0,1"
    c.warmup_steps = 4
    c.stage4_steps = 2
    c.results = placeholder(str)   # tests pass a path
    c.eval.num_images = 64
    c.eval.num_samples = 64
    c.eval.dci_max_train = 48
    c.eval.kid_subset_size = 32
    c.eval.kid_subsets = 5
    c.eval.extractor_steps = 5
    c.eval.extractor_examples = 128
  return c
