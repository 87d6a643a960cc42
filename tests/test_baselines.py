"""The Table 1 baselines: β-TCVAE (MWS), FactorVAE (permuted-code discriminator), DEAR-style SCM
prior with weak supervision; their train steps, config tokens, input labels and entry point."""
import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gem_jax
from experiments.configs import celeba_gem, synthetic_gem
from gem_jax.data import make_train_iterator
from gem_jax.data.synthetic_faces import TRUE_GRAPH
from gem_jax.models import VAE, ZDiscriminator
from gem_jax.objectives import beta_tcvae as tc_vae
from gem_jax.objectives import dear as scm_prior
from gem_jax.objectives import factor_vae
from gem_jax.train import train_and_evaluate
from gem_jax.train.state import (
  create_train_state,
  make_disc_optimizer,
  make_discriminator,
  make_model,
)
from gem_jax.train.step import example_noise, make_pmapped_step, replicate
from gem_jax.trained_model import TrainedModel

ROOT = Path(__file__).resolve().parents[1]
OBJECTIVES = ("beta_tcvae", "factor_vae", "dear")
METRIC_KEYS = {
    "beta_tcvae": {"loss", "recon", "kl", "mi", "tc", "dimwise_kl", "nonfinite"},
    "factor_vae": {"loss", "recon", "kl", "kl_per_latent", "tc", "tc_discriminator",
                   "nonfinite"},
    "dear": {"loss", "recon", "adv_generator", "supervised", "adv_discriminator", "nonfinite"},
}
FULL_3 = np.array([[0, 1, 1, 0], [0, 0, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]], np.float32)


def _config(objective):
  config = synthetic_gem.get_config(f"tiny,{objective}")
  config.model.latent_dim = 4
  config.model.dataset_size = 512
  config.model.dear_num_factors = 3
  config.model.dear_supergraph = "full"
  return config


def _batch(n=8, seed=0, labels=True):
  rng = np.random.default_rng(seed)
  batch = {"image": rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)}
  if labels:
    batch["labels"] = rng.integers(0, 6, (n, 3)).astype(np.int32)
  return batch


def _run(config, state, batch, num_devices, steps):
  devices = jax.local_devices()[:num_devices]
  step_fn = make_pmapped_step(config, devices)
  rstate = replicate(state, devices)
  shard = {k: v.reshape(num_devices, -1, *v.shape[1:]) for k, v in batch.items()}
  history = []
  for _ in range(steps):
    rstate, metrics = step_fn(rstate, shard)
    history.append(jax.tree.map(lambda x: np.asarray(x[0]), metrics))
  return jax.tree.map(lambda x: np.asarray(x[0]), rstate), history


def _leaves(tree):
  return [np.asarray(x) for x in jax.tree.leaves(tree)]


@pytest.fixture(scope="module")
def runs():
  """Per objective: (config, initial state, 1-device run, 2-device run), 2 steps each."""
  out = {}
  for objective in OBJECTIVES:
    config = _config(objective)
    state = create_train_state(config)
    out[objective] = (config, state, _run(config, state, _batch(), 1, 2),
                      _run(config, state, _batch(), 2, 2))
  return out


# --- train steps -------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("objective", OBJECTIVES)
def test_steps_are_finite_with_the_expected_metrics(runs, objective):
  _, _, (_, history), _ = runs[objective]
  for metrics in history:
    assert set(metrics) == METRIC_KEYS[objective]
    assert metrics["nonfinite"] == 0
    assert all(np.all(np.isfinite(v)) for v in metrics.values())


@pytest.mark.slow
@pytest.mark.parametrize("objective", OBJECTIVES)
def test_two_devices_match_one_device(runs, objective):
  assert jax.local_device_count() >= 2, "conftest sets two host devices"
  _, _, (one, h1), (two, h2) = runs[objective]
  np.testing.assert_allclose([m["loss"] for m in h1], [m["loss"] for m in h2], rtol=1e-5)
  for key in ("params", "disc_params", "graph"):
    for a, b in zip(_leaves(getattr(one, key)), _leaves(getattr(two, key)), strict=True):
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


# --- β-TCVAE -----------------------------------------------------------------------------------

def _log_normal(x, mu, logvar):
  return -0.5 * (np.log(2 * np.pi) + logvar + (x - mu) ** 2 / np.exp(logvar))


def _mws_numpy(z, mu, logvar, n):
  """MI, TC, dimension-wise KL of Chen et al.'s MWS estimator, one sample at a time."""
  b, d = z.shape
  log_nm = np.log(n * b)
  mi = tc = dimkl = 0.0
  for i in range(b):
    dens = np.array([[_log_normal(z[i, k], mu[j, k], logvar[j, k]) for k in range(d)]
                     for j in range(b)])                         # [M, d]
    log_qz = np.log(np.sum(np.exp(dens.sum(1)))) - log_nm
    log_prod = sum(np.log(np.sum(np.exp(dens[:, k]))) - log_nm for k in range(d))
    log_qzx = _log_normal(z[i], mu[i], logvar[i]).sum()
    log_pz = _log_normal(z[i], 0.0, 0.0).sum()
    mi += (log_qzx - log_qz) / b
    tc += (log_qz - log_prod) / b
    dimkl += (log_prod - log_pz) / b
  return dict(mi=mi, tc=tc, dimwise_kl=dimkl)


def test_mws_estimator_matches_numpy():
  rng = np.random.default_rng(0)
  mu = rng.normal(size=(5, 3))
  logvar = rng.normal(scale=0.5, size=(5, 3))
  z = mu + np.exp(0.5 * logvar) * rng.normal(size=(5, 3))
  got = tc_vae.tcvae_terms(*(jnp.asarray(v, jnp.float32) for v in (z, mu, logvar)), 100)
  want = _mws_numpy(z, mu, logvar, 100)
  for key in want:
    np.testing.assert_allclose(float(got[key]), want[key], rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(float(tc_vae.total_correlation_mws(
      *(jnp.asarray(v, jnp.float32) for v in (z, mu, logvar)), 100)), want["tc"], rtol=1e-4)


@pytest.mark.slow
def test_tcvae_step_reports_the_mws_terms_of_its_batch(runs):
  """The 1-device step's MI/TC/dimension-wise KL equal the numpy MWS of the same z, mu,
  logvar and N (the metrics are computed before the update)."""
  config, state, (_, history), _ = runs["beta_tcvae"]
  x = jnp.asarray(_batch()["image"], jnp.float32) / 255.0
  mu, logvar = make_model(config.model).apply(state.params["vae"], x, method=VAE.encode)
  key = jax.random.fold_in(jax.random.fold_in(state.rng, 0), 0)
  eps = example_noise(key, jnp.arange(8), 4)
  z = mu + jnp.exp(0.5 * logvar) * eps
  want = _mws_numpy(*(np.asarray(v, np.float64) for v in (z, mu, logvar)), 512)
  for k in want:
    np.testing.assert_allclose(history[0][k], want[k], rtol=1e-3, atol=1e-3)
  metrics = history[0]
  np.testing.assert_allclose(
      metrics["loss"], metrics["recon"] + metrics["mi"] + 6.0 * metrics["tc"]
      + metrics["dimwise_kl"], rtol=1e-5)


def test_tcvae_needs_the_dataset_size():
  config = _config("beta_tcvae")
  config.model.dataset_size = 0
  with pytest.raises(ValueError, match="needs config.model.dataset_size"):
    make_pmapped_step(config, jax.local_devices()[:1])


# --- FactorVAE ---------------------------------------------------------------------------------

def test_permute_dims_keeps_each_column_and_changes_the_joint():
  z = jnp.arange(32 * 4, dtype=jnp.float32).reshape(32, 4)
  p = np.asarray(factor_vae.permute_dims(z, jax.random.PRNGKey(0)))
  for j in range(4):
    np.testing.assert_array_equal(np.sort(p[:, j]), np.asarray(z[:, j]))
  rows = {tuple(r) for r in np.asarray(z)}
  assert sum(tuple(r) in rows for r in p) < 4    # almost every row is a new combination
  order = (p - np.asarray(z[0])) // 4             # the permutation of each column
  assert len({tuple(order[:, j]) for j in range(4)}) == 4   # independent per dimension
  np.testing.assert_array_equal(p, factor_vae.permute_dims(z, jax.random.PRNGKey(0)))


@pytest.mark.slow
def test_factor_vae_trains_its_discriminator_and_penalises_tc(runs):
  """One FactorVAE step on one device: the reported TC is the mean of D's logits on the step's
  codes z [8, 4]; D's new weights are one Adam step (b1 0.5, b2 0.9, its own learning rate) of
  the gradient, computed here, of mean softplus(-D(z)) + mean softplus(D(z permuted per
  dimension with the step's key)); its loss on that batch falls."""
  config, state, (_, history), _ = runs["factor_vae"]
  assert config.train.disc_adam_b1 == 0.5 and config.train.disc_adam_b2 == 0.9
  assert config.model.disc_r1_gamma == 0.0
  m = history[0]
  np.testing.assert_allclose(m["loss"], m["recon"] + 1.0 * m["kl"] + 6.4 * m["tc"], rtol=1e-5)
  after, (first,) = _run(config, state, _batch(), 1, 1)
  np.testing.assert_allclose(first["tc"], m["tc"], rtol=1e-6)  # the same first step
  x = jnp.asarray(_batch()["image"], jnp.float32) / 255.0
  mu, logvar = make_model(config.model).apply(state.params["vae"], x, method=VAE.encode)
  key = jax.random.fold_in(state.rng, 0)
  z = mu + jnp.exp(0.5 * logvar) * example_noise(jax.random.fold_in(key, 0), jnp.arange(8), 4)
  fake = factor_vae.permute_dims(z, jax.random.fold_in(key, 2))
  disc = make_discriminator(config.model, "z")
  np.testing.assert_allclose(m["tc"], jnp.mean(disc.apply(state.disc_params, z)), rtol=1e-4,
                             atol=1e-6)

  def disc_loss(p):
    return jnp.mean(jax.nn.softplus(-disc.apply(p, z))) + jnp.mean(
        jax.nn.softplus(disc.apply(p, fake)))

  loss, grads = jax.value_and_grad(disc_loss)(state.disc_params)
  np.testing.assert_allclose(m["tc_discriminator"], loss, rtol=1e-5)
  tx = make_disc_optimizer(config.train)
  updates, _ = tx.update(grads, tx.init(state.disc_params), state.disc_params)
  want = optax.apply_updates(state.disc_params, updates)
  # Adam's first step moves a weight by about lr (1e-4) unless its gradient is near 0, where
  # float noise of either gradient shows: atol lr / 100.
  atol = 0.01 * config.train.disc_learning_rate
  for a, b in zip(_leaves(after.disc_params), _leaves(want), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=atol)
  assert float(disc_loss(after.disc_params)) < float(loss)


def test_z_discriminator_shape():
  disc = ZDiscriminator(num_layers=2, width=16)
  params = disc.init(jax.random.PRNGKey(0), jnp.zeros((3, 4)))
  assert disc.apply(params, jnp.ones((5, 4))).shape == (5,)


# --- DEAR --------------------------------------------------------------------------------------

def test_scm_sample_by_hand():
  eps = jnp.array([[1.0, 2.0], [-1.0, 0.5]])
  np.testing.assert_array_equal(scm_prior.scm_sample(eps, jnp.zeros((2, 2))), eps)
  a = jnp.array([[0.0, 0.5], [0.0, 0.0]])          # one edge z0 -> z1 of weight 0.5
  np.testing.assert_allclose(scm_prior.scm_sample(eps, a), [[1.0, 2.5], [-1.0, 0.0]],
                             rtol=1e-6)


@pytest.mark.parametrize("mask", [FULL_3, (TRUE_GRAPH != 0).astype(np.float32)])
def test_scm_sample_solves_the_scm(mask):
  """z = A^T z + eps holds sample by sample, and cov(z) = (I - A)^-T (I - A)^-1."""
  d = len(mask)
  a = jnp.asarray(np.random.default_rng(1).normal(size=(d, d)) * mask, jnp.float32)
  eps = jax.random.normal(jax.random.PRNGKey(0), (20_000, d))
  z = scm_prior.scm_sample(eps, a)
  np.testing.assert_allclose(z - z @ a, eps, atol=1e-4)
  b = np.linalg.inv(np.eye(d) - np.asarray(a))
  np.testing.assert_allclose(np.cov(np.asarray(z), rowvar=False), b.T @ b, rtol=0.05, atol=0.05)


def test_supergraph_masks():
  true = scm_prior.supergraph_mask("true", 8, 6, TRUE_GRAPH)
  np.testing.assert_array_equal(true[:6, :6], TRUE_GRAPH != 0)
  assert true[6:].sum() == true[:, 6:].sum() == 0
  np.testing.assert_array_equal(scm_prior.supergraph_mask("full", 4, 3), FULL_3)
  with pytest.raises(ValueError, match="has none"):
    scm_prior.supergraph_mask("true", 4, 3)
  config = synthetic_gem.get_config("tiny,dear")
  state = create_train_state(config)
  np.testing.assert_array_equal(state.graph["edge_mask"], TRUE_GRAPH != 0)
  np.testing.assert_array_equal(state.graph["a0"], np.eye(6))


@pytest.mark.slow
def test_scm_weights_stay_in_the_supergraph(runs):
  config, state, (after, history), _ = runs["dear"]
  np.testing.assert_array_equal(state.params["scm"]["a"], 0.0)
  a = after.params["scm"]["a"]
  assert np.all(a[FULL_3 == 0] == 0.0)               # exactly, not approximately
  assert np.all(np.abs(a[FULL_3 == 1]) > 0)           # the allowed edges learn
  model = TrainedModel.from_state(config, after)
  np.testing.assert_array_equal(model.scm_weights, a * FULL_3)
  np.testing.assert_array_equal(model.adjacency, np.eye(4))   # the decoder reads z itself
  assert model.sample(3).shape == (3, 64, 64, 3)
  assert TrainedModel.from_state(_config("factor_vae"),
                                 runs["factor_vae"][2][0]).scm_weights is None


def test_dear_supervised_loss_scales_labels():
  mu = jnp.array([[1.0, -1.0, 0.0, 9.0]])
  labels = jnp.array([[5, 0, 1]])        # -> [1, -1, -0.6]; latent 3 is unsupervised
  np.testing.assert_allclose(scm_prior.supervised_loss(mu, labels, 5), 0.36, rtol=1e-6)


def test_dear_without_labels_is_a_clear_error():
  config = _config("dear")
  with pytest.raises(ValueError, match=r"needs batch\['labels'\].*config.data.label_key"):
    _run(config, create_train_state(config), _batch(labels=False), 1, 1)


# --- config, input pipeline, entry point -------------------------------------------------------

def test_tokens_set_the_objectives():
  for token in OBJECTIVES:
    c = synthetic_gem.get_config(f"tiny,{token}")
    assert (c.model.name, c.model.objective, c.model.graph_learner) == (token, token, False)
    assert c.model.adversarial == (token == "dear")
  assert synthetic_gem.get_config("beta_tcvae").model.beta == 6.0
  assert synthetic_gem.get_config("factor_vae").train.batch_size == 64
  assert synthetic_gem.get_config("dear").data.label_key == "attributes"
  c = synthetic_gem.get_config("gem")  # the known-graph study's pick
  assert (c.model.objective, c.model.graph_learner_kind, c.gem.prior) == ("gem_sparse", "scm",
                                                                          "pc")
  assert synthetic_gem.get_config("gem_sparse").gem.prior == "somers_d"
  assert synthetic_gem.get_config("gem_paper").model.objective == "beta_vae"
  c = celeba_gem.get_config("dear")
  assert (c.data.label_key, c.data.label_max, c.model.dear_supergraph) == ("gem_labels", 1,
                                                                          "full")


def test_pipeline_feeds_labels_only_when_asked(tiny_config):
  kw = dict(global_batch=8, num_devices=2, seed=0)
  plain = next(make_train_iterator(tiny_config.data, **kw))
  assert set(plain) == {"image"}
  labelled = next(make_train_iterator(tiny_config.data, label_key="attributes", **kw))
  assert set(labelled) == {"image", "labels"}
  assert labelled["labels"].shape == (2, 4, 6)
  assert labelled["labels"].min() >= 0 and labelled["labels"].max() <= 5
  np.testing.assert_array_equal(labelled["image"], plain["image"])
  with pytest.raises(ValueError, match="not a label of data set"):
    make_train_iterator(tiny_config.data, label_key="colour", **kw)


@pytest.mark.slow
def test_entry_point_trains_beta_tcvae(tfds_dir, tmp_path):
  workdir = tmp_path / "run"
  cmd = [sys.executable, "-m", "experiments.baselines", "--method", "beta_tcvae",
         "--preset", "tiny", f"--workdir={workdir}", f"--config.data.data_dir={tfds_dir}",
         "--config.train.num_steps=2", "--config.train.checkpoint_every=2",
         "--config.train.sample_every=2", "--config.train.log_every=1"]
  done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stderr[-3000:]
  assert (workdir / "checkpoints" / "2").is_dir()
  saved = json.loads((workdir / "config.json").read_text())
  assert saved["model"]["objective"] == "beta_tcvae"
  assert saved["model"]["dataset_size"] == 512          # synthetic_faces/tiny's train split
  lines = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert [l["step"] for l in lines] == [1, 2]
  assert all(np.isfinite(l["tc"]) and np.isfinite(l["loss"]) for l in lines)


@pytest.mark.slow
def test_dear_trains_from_the_data_sets_labels(tfds_dir, tmp_path):
  """train_and_evaluate feeds config.data.label_key to DEAR; the checkpoint restores its A."""
  config = synthetic_gem.get_config("tiny,dear")
  config.data.data_dir = tfds_dir
  config.train.num_steps = config.train.checkpoint_every = config.train.sample_every = 1
  train_and_evaluate(config, tmp_path)
  model = gem_jax.load(str(tmp_path))
  mask = TRUE_GRAPH != 0
  assert np.all(model.scm_weights[~mask] == 0) and np.all(model.scm_weights[mask] != 0)
  assert model.sample(2).shape == (2, 64, 64, 3)
