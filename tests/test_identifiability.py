"""Whether the data can tell the graph A apart from the decoder (docs/design.md, "What was
measured about the graph").

In the paper's form A reaches the losses only through z_rel = A^T z and the decoder's first
layer is dense: (A, W1) -> (A G, G^-1 W1) changes nothing. With G = A^-1 this folds A into the
first layer and leaves the graph at I.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gem_jax
from experiments.configs import synthetic_gem
from gem_jax import gem_pipeline, objectives
from gem_jax.models import VAE, DisGraph, JointDiscriminator, fold_into_decoder, relate
from gem_jax.objectives import (
  GemObjective,
  GemRelconObjective,
  GemScmObjective,
  GemSparseObjective,
  LossContext,
  StepInputs,
  losses,
)
from gem_jax.objectives.base import AXIS
from gem_jax.objectives.gem_relcon import relation_consistency
from gem_jax.objectives.gem_scm import scm_kl
from gem_jax.train import make_graph_state, train_and_evaluate
from gem_jax.train.state import create_train_state
from gem_jax.trained_model import TrainedModel

D, SIZE, BATCH = 3, 16, 4


def _modules_and_params():
  vae = VAE(latent_dim=D, image_size=SIZE, width=4, hidden=8)
  disc = JointDiscriminator(latent_dim=D, width=4, hidden=8)
  keys = jax.random.split(jax.random.PRNGKey(0), 4)
  x = jax.random.uniform(keys[0], (BATCH, SIZE, SIZE, 3))
  vae_params = vae.init(keys[1], x, jnp.zeros((BATCH, D)), jnp.eye(D))
  disc_params = disc.init(keys[2], x, jnp.zeros((BATCH, D)))
  return vae, disc, vae_params, disc_params, x


def _graph_a() -> np.ndarray:
  """A learned-looking graph: A_0 (signed, unit diagonal) refined by a perturbed learner."""
  a0 = jnp.array([[1.0, 0.6, 0.0], [-0.3, 1.0, 0.5], [0.0, 0.2, 1.0]])
  learner = DisGraph(latent_dim=D, num_layers=2)
  params = learner.init(jax.random.PRNGKey(1), a0)
  params = jax.tree.map(lambda p: p + 0.3 * jax.random.normal(jax.random.PRNGKey(2), p.shape),
                        params)
  a = np.asarray(learner.apply(params, a0))
  assert np.abs(a - np.asarray(a0)).max() > 0.05  # the learner moved A away from A_0
  return a


def _loss_terms(objective, vae, disc, vae_params, disc_params, x, a,
                terms=("recon", "kl", "adv_generator", "l_dis")) -> dict:
  """The objective's loss terms, computed as the train step does (under a 1-device batch axis,
  so that objectives which gather over devices run)."""
  keys = jax.random.split(jax.random.PRNGKey(3), 3)
  inputs = StepInputs(x=x, eps=jax.random.normal(keys[0], (BATCH, D)),
                      prior_eps=jax.random.normal(keys[1], (BATCH, D)), perm_key=keys[2],
                      labels=None)
  out = vae.apply(vae_params, x, inputs.eps, jnp.asarray(a))
  graph = {"edge_mask": jnp.asarray(~np.eye(D, dtype=bool), jnp.float32)}
  ctx = LossContext(params={"vae": vae_params, "graph": {}}, disc_params=disc_params,
                    graph=graph, inputs=inputs, out=out, a=jnp.asarray(a), vae=vae, disc=disc)
  loss = jax.vmap(lambda _: objective.generator_loss(ctx)[:2], axis_name=AXIS)
  total, metrics = jax.tree.map(lambda v: v[0], loss(jnp.zeros(1)))
  return {"total": float(total), **{k: float(metrics[k]) for k in terms}}


def test_paper_form_is_unchanged_when_a_is_folded_into_the_decoder():
  objective = GemObjective(beta=4.0, adversarial=True, lambda_dis=0.6, lambda_adv=0.8)
  vae, disc, vae_params, disc_params, x = _modules_and_params()
  a = _graph_a()
  with_graph = _loss_terms(objective, vae, disc, vae_params, disc_params, x, a)
  folded = _loss_terms(objective, vae, disc, fold_into_decoder(vae_params, a),
                       disc_params, x, np.eye(D, dtype=np.float32))
  for term, value in with_graph.items():
    assert folded[term] == pytest.approx(value, rel=1e-5, abs=1e-5), term
  # ... and A = I with the unfolded decoder is a different model (the check is not vacuous).
  unfolded = _loss_terms(objective, vae, disc, vae_params, disc_params, x, np.eye(D))
  assert unfolded["recon"] != pytest.approx(with_graph["recon"], rel=1e-5)


def test_compensated_start_keeps_the_warmup_function():
  vae, _, vae_params, _, _ = _modules_and_params()
  a0 = np.array([[1.0, 0.6, 0.0], [-0.3, 1.0, 0.5], [0.0, 0.2, 1.0]], np.float32)
  z = np.asarray(jax.random.normal(jax.random.PRNGKey(4), (BATCH, D)))
  warmup = vae.apply(vae_params, z, method=VAE.decode)          # A = I
  start = gem_pipeline.compensated_start(vae_params, a0)
  stage4 = vae.apply(start, relate(z, a0), method=VAE.decode)  # A = A_0
  np.testing.assert_allclose(stage4, warmup, rtol=1e-4, atol=1e-4)
  plain = vae.apply(vae_params, relate(z, a0), method=VAE.decode)
  assert np.abs(plain - warmup).max() > 1e-3  # without compensation A_0 changes the decoding


def test_compensated_start_refuses_a_singular_a0():
  _, _, vae_params, _, _ = _modules_and_params()
  singular = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]], np.float32)
  with pytest.raises(ValueError, match="needs an invertible A_0.*compensate_a0=False"):
    gem_pipeline.compensated_start(vae_params, singular)


def test_gem_paper_token_trains_the_papers_form():
  config = synthetic_gem.get_config("tiny,gem_paper")
  assert isinstance(objectives.from_config(config), GemObjective)
  assert (config.model.name, config.model.graph_learner, config.model.adversarial) == (
      "gem_paper", True, True)
  assert not objectives.get(config.model.objective).trains_once(config)  # the pipeline


def test_scm_kl_is_the_beta_vae_kl_without_edges():
  mu = jax.random.normal(jax.random.PRNGKey(5), (BATCH, D))
  logvar = 0.3 * jax.random.normal(jax.random.PRNGKey(6), (BATCH, D))
  np.testing.assert_allclose(scm_kl(mu, logvar, jnp.zeros((D, D))),
                             losses.kl_per_latent(mu, logvar).sum(1), rtol=1e-6)


def test_scm_kl_is_the_gaussian_kl_of_the_noise():
  mu = np.asarray(jax.random.normal(jax.random.PRNGKey(5), (BATCH, D)), np.float64)
  logvar = np.asarray(0.3 * jax.random.normal(jax.random.PRNGKey(6), (BATCH, D)), np.float64)
  w = np.array([[0.0, 0.6, -0.2], [-0.3, 0.0, 0.5], [0.1, 0.2, 0.0]])
  m = np.eye(D) - w
  for b in range(BATCH):  # eps = z M ~ N(mu M, M^T S M); KL to N(0, I) from its covariance
    cov = m.T @ np.diag(np.exp(logvar[b])) @ m
    mean = mu[b] @ m
    want = 0.5 * (np.trace(cov) + mean @ mean - D - np.linalg.slogdet(cov)[1])
    got = float(scm_kl(jnp.asarray(mu[b:b + 1], jnp.float32),
                       jnp.asarray(logvar[b:b + 1], jnp.float32),
                       jnp.asarray(w, jnp.float32))[0])
    assert got == pytest.approx(want, rel=1e-4)


def test_scm_prior_form_changes_when_a_is_folded_into_the_decoder():
  objective = GemScmObjective(beta=4.0, adversarial=True, lambda_dis=0.6, lambda_adv=0.8)
  vae, disc, vae_params, disc_params, x = _modules_and_params()
  a = _graph_a()
  with_graph = _loss_terms(objective, vae, disc, vae_params, disc_params, x, a)
  folded = _loss_terms(objective, vae, disc, fold_into_decoder(vae_params, a), disc_params, x,
                       np.eye(D, dtype=np.float32))
  assert folded["recon"] == pytest.approx(with_graph["recon"], rel=1e-5)  # the decoder's part
  assert abs(folded["kl"] - with_graph["kl"]) > 1e-3  # ... but the KL sees A: identifiable


def test_relation_consistency_form_changes_when_a_is_folded_into_the_decoder():
  objective = GemRelconObjective(beta=4.0, adversarial=True, lambda_dis=0.6, lambda_adv=0.8)
  vae, disc, vae_params, disc_params, x = _modules_and_params()
  a = _graph_a()
  terms = ("recon", "kl", "relcon")
  with_graph = _loss_terms(objective, vae, disc, vae_params, disc_params, x, a, terms)
  folded = _loss_terms(objective, vae, disc, fold_into_decoder(vae_params, a), disc_params, x,
                       np.eye(D, dtype=np.float32), terms)
  assert folded["recon"] == pytest.approx(with_graph["recon"], rel=1e-5)
  assert folded["kl"] == pytest.approx(with_graph["kl"], rel=1e-5)
  assert abs(folded["relcon"] - with_graph["relcon"]) > 1e-3  # the term reads A: identifiable


def test_the_default_gem_fits_its_graph_to_the_codes():
  """`gem` (the default, chosen by experiments.known_graph_study) is gem_sparse on the PC
  prior: its graph is fitted to the concept codes (tests/test_scm_graph.py), not read through
  the decoder's input as in the paper's form."""
  config = synthetic_gem.get_config("tiny,gem")
  assert type(objectives.from_config(config)) is GemSparseObjective
  assert (config.model.graph_learner_kind, config.gem.prior) == ("scm", "pc")
  for tokens in ("", "demo", "tiny", "cpu30"):  # no variant token: the default GEM too
    c = synthetic_gem.get_config(tokens)
    assert (c.model.objective, c.model.graph_learner_kind, c.gem.prior) == (
        config.model.objective, "scm", "pc")


def test_gem_scm_is_identifiable():
  """`gem_scm` (the previous default) is not the paper's form: folding A into the decoder's
  first layer changes its loss."""
  config = synthetic_gem.get_config("tiny,gem_scm")
  objective = objectives.from_config(config)
  assert type(objective) is not GemObjective  # not the paper's (fold-invariant) form
  vae, disc, vae_params, disc_params, x = _modules_and_params()
  a = _graph_a()
  terms = ("recon", "l_dis")
  with_graph = _loss_terms(objective, vae, disc, vae_params, disc_params, x, a, terms)
  folded = _loss_terms(objective, vae, disc, fold_into_decoder(vae_params, a), disc_params, x,
                       np.eye(D, dtype=np.float32), terms)
  assert folded["recon"] == pytest.approx(with_graph["recon"], rel=1e-5)
  assert abs(folded["total"] - with_graph["total"]) > 1e-2


def test_relation_consistency_counts_the_masked_pairs_only():
  a = jnp.array([[1.0, 0.5, 0.2], [0.0, 1.0, -0.4], [0.3, 0.0, 1.0]])
  dep = jnp.array([[1.0, 0.1, 0.2], [0.2, 1.0, 0.0], [0.0, 0.0, 1.0]])
  mask = jnp.array([[0, 1, 0], [1, 0, 1], [0, 0, 0]], jnp.float32)
  want = 0.4**2 + 0.2**2 + 0.4**2
  assert float(relation_consistency(a, dep, mask)) == pytest.approx(want, rel=1e-6)


def test_gem_relcon_total_adds_the_weighted_term():
  objective = GemRelconObjective(beta=4.0, adversarial=False, lambda_dis=0.6, lambda_rel=7.0)
  vae, disc, vae_params, disc_params, x = _modules_and_params()
  t = _loss_terms(objective, vae, disc, vae_params, disc_params, x, _graph_a(),
                  ("l_dis", "relcon"))
  assert t["total"] == pytest.approx(0.6 * t["l_dis"] + 7.0 * t["relcon"], rel=1e-5)


def test_adv_scale_pixel_weighs_the_adversarial_term_per_pixel_value():
  vae, disc, vae_params, disc_params, x = _modules_and_params()
  a = _graph_a()
  terms = ("l_dis", "adv_generator")
  for scale, weight in (("batch", 0.8), ("pixel", 0.8 * SIZE * SIZE * 3)):
    objective = GemObjective(adversarial=True, lambda_dis=0.6, lambda_adv=0.8, adv_scale=scale)
    t = _loss_terms(objective, vae, disc, vae_params, disc_params, x, a, terms)
    assert t["total"] == pytest.approx(0.6 * t["l_dis"] + weight * t["adv_generator"],
                                       rel=1e-5)
  with pytest.raises(ValueError, match="unknown config.model.adv_scale 'pixels'"):
    GemObjective(adv_scale="pixels")


@pytest.mark.parametrize("token, cls", [("gem_scm", GemScmObjective),
                                        ("gem_relcon", GemRelconObjective)])
def test_identifiable_tokens_build_their_objective(token, cls):
  config = synthetic_gem.get_config(f"tiny,{token}")
  objective = objectives.from_config(config)
  assert type(objective) is cls
  assert objective.adv_scale == "batch" and objective.adversarial
  pixel = objectives.from_config(synthetic_gem.get_config(f"tiny,{token},adv_pixel"))
  assert pixel.adv_scale == "pixel"
  warm = gem_pipeline.warmup_config(config)
  assert warm.model.objective == "beta_vae"  # the warm-up is the β-VAE branch


@pytest.mark.slow
def test_gem_scm_trains_and_samples_from_its_scm_prior(tiny_config, tmp_path):
  config = synthetic_gem.get_config("tiny,gem_scm")
  config.data.data_dir = tiny_config.data.data_dir
  a0 = np.eye(6, dtype=np.float32)
  a0[1, 0], a0[2, 5], a0[3, 2] = 0.5, -0.4, 0.3
  mask = (a0 != 0) & ~np.eye(6, dtype=bool)
  state = train_and_evaluate(config, tmp_path, graph=make_graph_state(a0, mask))
  assert int(state.step) == config.train.num_steps
  model = gem_jax.load(str(tmp_path))
  w = np.asarray(model.adjacency) - np.eye(6)
  np.testing.assert_allclose(model._prior_weights, w, atol=1e-6)
  _assert_samples_from_the_scm(model, w)


def _assert_samples_from_the_scm(model, w):
  """model.sample(4, seed=3) [4, 64, 64, 3] decodes the SCM draw z = (I - W^T)^-1 eps of W
  [6, 6] (solved here: z = z W + eps row by row) from the seed's noise eps [4, 6], not eps."""
  eps = np.asarray(jax.random.normal(jax.random.PRNGKey(3), (4, 6)), np.float64)
  z = np.linalg.solve((np.eye(6) - w).T, eps.T).T
  np.testing.assert_allclose(z - z @ w, eps, atol=1e-9)
  assert np.abs(z - eps).max() > 0.1  # the graph's edges move the draw
  sample = model.sample(4, seed=3)
  assert sample.shape == (4, 64, 64, 3)
  np.testing.assert_allclose(sample, model.decode(z), atol=1e-5)
  assert np.abs(sample - model.decode(eps)).max() > 1e-3


def test_a_gem_scm_model_samples_from_its_scm_prior():
  """At initialisation (A = A_0 [6, 6], three masked edges) a gem_scm TrainedModel's samples
  decode the SCM draws of W = A_0 - I, not the noise."""
  config = synthetic_gem.get_config("tiny,gem_scm")
  a0 = np.eye(6, dtype=np.float32)
  a0[1, 0], a0[2, 5], a0[3, 2] = 0.5, -0.4, 0.3
  mask = (a0 != 0) & ~np.eye(6, dtype=bool)
  state = create_train_state(config, make_graph_state(a0, mask))
  model = TrainedModel.from_state(config, state)
  np.testing.assert_allclose(model.adjacency, a0, atol=1e-6)
  _assert_samples_from_the_scm(model, np.asarray(model.adjacency, np.float64) - np.eye(6))
