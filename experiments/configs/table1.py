"""Config for `python -m experiments.table1`: every method x seeds on one data set, one table.

    python -m experiments.table1 --config experiments/configs/table1.py:small --workdir runs/table1

Presets (the string after ':'):
  small  the CPU preset: d = 10, 500 steps of 64 images per baseline, GEM = the β-VAE's
         step-250 checkpoint as warm-up + 500 GEM steps of 32 images (the same 32,000
         images), 3 seeds, evaluation on 2,000 test images. Under an hour on 2 CPU cores
         (README: measured wall time).
  full   the paper's scale, for a GPU: the paper-sized networks (token `paper_arch`, about
         46 M parameters), 25,000 steps of 64 (GEM: 10,000 warm-up + 30,000 of 32), 10,000
         evaluation images.
  tiny   seconds; for tests.
Methods are keys of METHOD_TOKENS: the tokens of experiments/configs/synthetic_gem.py each
method's run config is built from.
"""
import ml_collections
from ml_collections.config_dict import placeholder

from experiments.configs.synthetic_gem import METHOD_TOKENS  # noqa: F401  (re-exported)

PRESETS = ("small", "full", "tiny")


def get_config(arg: str = "small") -> ml_collections.ConfigDict:
  preset = arg or "small"
  if preset not in PRESETS:
    raise ValueError(f"unknown table1 preset {preset!r}; choose from {PRESETS}")
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.dataset = "synthetic_faces"
  c.data_config = "default"
  c.data_dir = placeholder(str)
  c.methods = "vae,beta_vae,beta_tcvae,factor_vae,dear,gem"
  c.seeds = "0,1,2"
  c.run_tokens = "cpu30"           # size preset of synthetic_gem.py shared by every run
  c.latent_dim = 10
  c.num_steps = 500                # baselines, batch 64
  c.learning_rate = 1e-3           # baselines and GEM's warm-up (the same run)
  c.gem_steps = 500                # GEM stage, batch 32, after the β-VAE's checkpoint at
  c.gem_warmup_steps = 250         # this step (GEM sees as many images as a baseline)

  c.eval = ml_collections.ConfigDict()
  c.eval.split = "test"
  c.eval.num_images = 2_000
  c.eval.num_samples = 2_000
  c.eval.dci_max_train = 600       # GradientBoosting is slow: ~2 s per factor at 600 rows
  c.eval.kid_subset_size = 500
  c.eval.kid_subsets = 50
  c.eval.fid_weights = placeholder(str)        # pt_inception-2015-12-05-6726825d.pth: FID
  c.eval.fid_weights_sha256 = placeholder(str) # its full sha256, to pin (default: the prefix)
  c.eval.inception_weights = placeholder(str)  # a local Keras InceptionV3 .h5 (docs/metrics.md)
  c.eval.extractor_steps = 600
  c.eval.extractor_examples = 20_000

  c.benchmark_steps = 20           # timed train steps per method for the Table 2 columns

  if preset == "full":
    c.run_tokens = "paper_arch"
    c.latent_dim = 10
    c.num_steps = 25_000           # = 10,000 x 64 + 30,000 x 32 images, as GEM
    c.learning_rate = 1e-4
    c.gem_steps = 30_000
    c.gem_warmup_steps = 10_000
    c.eval.num_images = 10_000
    c.eval.num_samples = 10_000
    c.eval.dci_max_train = 10_000
    c.eval.kid_subset_size = 1_000
    c.eval.kid_subsets = 100
  elif preset == "tiny":
    c.data_config = "tiny"
    c.run_tokens = "tiny"
    c.latent_dim = 6
    c.methods = "beta_vae,gem"
    c.seeds = "0"
    c.num_steps = 4
    c.gem_steps = 4
    c.gem_warmup_steps = 2
    c.eval.num_images = 64
    c.eval.num_samples = 64
    c.eval.dci_max_train = 48
    c.eval.kid_subset_size = 32
    c.eval.kid_subsets = 5
    c.eval.extractor_steps = 5
    c.eval.extractor_examples = 128
    c.benchmark_steps = 2
  return c
