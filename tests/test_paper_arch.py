"""The `paper` networks (gem_jax/models/paper.py, token `paper_arch`): built at 64x64 and
initialised abstractly (jax.eval_shape: shapes and counts, no weights, no training)."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import synthetic_gem, table1
from gem_jax.config_checks import config_problems
from gem_jax.models import VAE, fold_into_decoder
from gem_jax.models.paper import channel_multipliers
from gem_jax.train.checkpoints import upgrade_config
from gem_jax.train.state import make_discriminator, make_graph_module, make_model

# Parameter counts at 64x64, d = 6 (the `gem,paper_arch` config); pinned exactly.
ENCODER, DECODER, DISCRIMINATOR, GRAPH = 14_776_044, 7_542_019, 23_776_451, 72
BATCH = 2


def _count(tree) -> int:
  return sum(x.size for x in jax.tree.leaves(tree))


@pytest.fixture(scope="module")
def paper_model():
  config = synthetic_gem.get_config("gem,paper_arch")
  mc = config.model
  d, size = mc.latent_dim, mc.image_size
  x, z, a = jnp.zeros((BATCH, size, size, 3)), jnp.zeros((BATCH, d)), jnp.eye(d)
  vae, disc, graph = make_model(mc), make_discriminator(mc, "joint"), make_graph_module(mc)
  key = jax.random.PRNGKey(0)
  vae_params = jax.eval_shape(vae.init, key, x[:1], z[:1], a)
  disc_params = jax.eval_shape(disc.init, key, x[:1], z[:1])
  graph_params = jax.eval_shape(graph.init, key, a, jnp.zeros((d, d)))
  return dict(config=config, vae=vae, disc=disc, x=x, z=z, a=a, vae_params=vae_params,
              disc_params=disc_params, graph_params=graph_params)


def test_paper_arch_token_sets_the_networks():
  mc = synthetic_gem.get_config("tiny,gem,paper_arch").model  # applied after the preset
  assert (mc.arch, mc.width, mc.hidden, mc.disc_width, mc.disc_hidden) == (
      "paper", 32, 2048, 32, 1024)
  assert synthetic_gem.get_config("gem").model.arch == "burgess"
  assert table1.get_config("full").run_tokens == "paper_arch"
  assert table1.get_config("small").run_tokens == "cpu30"


def test_paper_forward_shapes(paper_model):
  m = paper_model
  out = jax.eval_shape(m["vae"].apply, m["vae_params"], m["x"], m["z"], m["a"])
  d = m["config"].model.latent_dim
  chex.assert_shape([out["mu"], out["logvar"], out["z"], out["z_rel"]], (BATCH, d))
  chex.assert_shape(out["logits"], (BATCH, 64, 64, 3))
  logits = jax.eval_shape(m["disc"].apply, m["disc_params"], m["x"], m["z"])
  chex.assert_shape(logits, (BATCH,))


def test_paper_parameter_counts(paper_model):
  m = paper_model
  params = m["vae_params"]["params"]
  counts = (_count(params["encoder"]), _count(params["decoder"]), _count(m["disc_params"]),
            _count(m["graph_params"]))
  assert counts == (ENCODER, DECODER, DISCRIMINATOR, GRAPH)
  total = sum(counts)
  assert 45e6 <= total <= 50e6, total  # the paper's Table 2: 44.7 M (Single), 49.6 M (Full)


def test_paper_decoder_folds(paper_model):
  """fold_into_decoder turns the paper decoder's Dense_0 kernel W1 [d, 4 * 4 * 512] into G W1
  for a random W1 and a non-symmetric G [d, d] (so G W1 is told from G^T W1, a diagonal
  scaling or W1 alone); every other leaf is passed through untouched."""
  m = paper_model
  d = m["config"].model.latent_dim
  params = m["vae_params"]  # abstract shapes: fold_into_decoder reads only Dense_0
  dense = params["params"]["decoder"]["Dense_0"]
  keys = jax.random.split(jax.random.PRNGKey(7), 3)
  w1 = jax.random.normal(keys[0], dense["kernel"].shape, dense["kernel"].dtype)
  bias = jax.random.normal(keys[1], dense["bias"].shape, dense["bias"].dtype)
  g = jax.random.normal(keys[2], (d, d))
  assert np.abs(np.asarray(g) - np.asarray(g).T).max() > 0.5  # not symmetric
  decoder = {**params["params"]["decoder"], "Dense_0": {"kernel": w1, "bias": bias}}
  params = {**params, "params": {**params["params"], "decoder": decoder}}
  folded = fold_into_decoder(params, g)
  kernel = folded["params"]["decoder"]["Dense_0"]["kernel"]
  chex.assert_shape(kernel, (d, 4 * 4 * 16 * 32))
  assert kernel.dtype == w1.dtype
  want = np.asarray(g, np.float64) @ np.asarray(w1, np.float64)
  np.testing.assert_allclose(np.asarray(kernel), want, rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(kernel, jnp.asarray(g) @ w1)
  assert folded["params"]["decoder"]["Dense_0"]["bias"] is bias
  for name, leaf in params["params"]["decoder"].items():
    if name != "Dense_0":
      assert folded["params"]["decoder"][name] is leaf, name
  assert folded["params"]["encoder"] is params["params"]["encoder"]


def test_channel_multipliers():
  assert channel_multipliers(4) == [16, 8, 4, 2]
  assert channel_multipliers(6) == [16, 16, 16, 8, 4, 2]


def test_arch_key_checked_and_upgraded():
  config = synthetic_gem.get_config("tiny,beta_vae")
  config.model.arch = "resnet"
  assert any(p.startswith("config.model.arch='resnet'") for p in config_problems(config, 1))
  old = synthetic_gem.get_config("tiny,beta_vae").to_dict()
  del old["model"]["arch"]  # a config saved before the key existed
  assert upgrade_config(old).model.arch == "burgess"
  with pytest.raises(ValueError, match="unknown arch"):
    jax.eval_shape(VAE(arch="resnet").init, jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, 3)),
                   jnp.zeros((1, 6)), jnp.eye(6))
