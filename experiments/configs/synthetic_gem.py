"""Config for `python -m experiments.synthetic_gem` on the embedded synthetic_faces data.

    python -m experiments.synthetic_gem --workdir runs/demo \
        --config experiments/configs/synthetic_gem.py:demo --config.train.num_steps=500

Presets (the string after ':'): '' (the paper's settings), 'demo' (a few CPU minutes),
'tiny' (seconds; tests and notebooks).
"""
import ml_collections
from ml_collections.config_dict import placeholder


def get_config(preset: str = "") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0

  c.data = ml_collections.ConfigDict()
  c.data.name = "synthetic_faces"
  c.data.config = "default"        # synthetic_faces builder config: default | small | tiny
  c.data.data_dir = placeholder(str)  # unset: $TFDS_DATA_DIR or ~/tensorflow_datasets
  c.data.split = "train"
  c.data.eval_split = "test"
  c.data.shuffle_buffer = 10_000

  c.model = ml_collections.ConfigDict()
  c.model.latent_dim = 6
  c.model.image_size = 64
  c.model.width = 32               # Burgess et al. (2018) conv width
  c.model.hidden = 256
  c.model.upsample = "subpixel"    # subpixel | resize_conv | conv_transpose (see benchmark)
  c.model.likelihood = "bernoulli"  # bernoulli | gaussian
  c.model.sigma = 0.1              # gaussian likelihood scale, pixels in [0, 1]
  c.model.beta = 4.0

  c.train = ml_collections.ConfigDict()
  c.train.batch_size = 64          # global, over all devices
  c.train.learning_rate = 1e-4     # DESIGN.md: Adam 1e-4
  c.train.adam_b1 = 0.9
  c.train.adam_b2 = 0.999
  c.train.grad_clip_norm = 0.0     # 0: off
  c.train.num_steps = 30_000
  c.train.num_devices = 0          # 0: all local devices
  c.train.log_every = 50
  c.train.sample_every = 1_000
  c.train.checkpoint_every = 1_000
  c.train.keep_checkpoints = 3

  if preset == "demo":
    c.train.learning_rate = 1e-3
    c.train.num_steps = 3_000
    c.train.sample_every = 500
    c.train.checkpoint_every = 500
  elif preset == "tiny":
    c.data.config = "tiny"
    c.data.shuffle_buffer = 512
    c.model.width = 8
    c.model.hidden = 32
    c.train.batch_size = 8
    c.train.learning_rate = 1e-3
    c.train.num_steps = 6
    c.train.log_every = 2
    c.train.sample_every = 3
    c.train.checkpoint_every = 3
  elif preset:
    raise ValueError(f"unknown preset {preset!r}; expected '', 'demo' or 'tiny'")
  return c
