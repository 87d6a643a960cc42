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

from experiments.configs import synthetic_gem
from gem_jax import gem_pipeline, objectives
from gem_jax.models import VAE, DisGraph, JointDiscriminator, fold_into_decoder, relate
from gem_jax.objectives import GemObjective, LossContext, StepInputs

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


def _loss_terms(objective, vae, disc, vae_params, disc_params, x, a) -> dict:
  keys = jax.random.split(jax.random.PRNGKey(3), 3)
  inputs = StepInputs(x=x, eps=jax.random.normal(keys[0], (BATCH, D)),
                      prior_eps=jax.random.normal(keys[1], (BATCH, D)), perm_key=keys[2],
                      labels=None)
  out = vae.apply(vae_params, x, inputs.eps, jnp.asarray(a))
  ctx = LossContext(params={"vae": vae_params, "graph": {}}, disc_params=disc_params,
                    graph={}, inputs=inputs, out=out, a=jnp.asarray(a), vae=vae, disc=disc)
  total, metrics, _ = objective.generator_loss(ctx)
  return {"total": float(total), **{k: float(metrics[k])
                                    for k in ("recon", "kl", "adv_generator", "l_dis")}}


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
