"""How gem_sparse's group lasso (config.model.graph_l1) was chosen: on SIMULATED SCMs, never on
the benchmarks that report the result (docs/design.md, "A graph the codes can support").

    python -m experiments.simulated_graph_l1 --seeds 16 --l1 0,0.05,0.1,0.2,0.3,0.5
    python -m experiments.simulated_graph_l1 --seeds 32 --scorer realistic

Each seed draws a random 6-node DAG (edge probability 0.35; mechanisms linear, quadratic,
|x|, tanh, sin, step or cubic; unit Gaussian noise), standardises it, and gives:
  codes   the values on the guided scale (x 0.8, clipped to +-2.4) plus N(0, 0.1) encoder
          noise, 12,800 rows (400 steps of 32, stage 4's budget);
  scores  the values rounded to levels 0..5, 1,500 rows, read by the oracle at mean accuracy
          0.884 (a SIMULATION): `--scorer uniform` (each wrong answer another level uniformly)
          or `realistic` (the MLLM-like preset of docs/scorers.md: per-attribute accuracies,
          biased and compressed wrong answers, confusion with the most correlated variable,
          errors that depend on each row's "image" (random pixels) and on weak levels, 2% of
          rows unanswered).
The prior (Somers' D of the scores, or its PC / GES skeleton) is A_0; the learner
(`gem_jax.models.scm_graph`) fits it to the codes with Adam (1e-2, batch 32) on its own loss,
as stage 4 does. Prints the SHD (at the 0.1 threshold) of each prior and of the learned graph
at each group-lasso weight, mean ± std over seeds, as JSON lines.
"""
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app, flags

from gem_jax.models import DisGraph
from gem_jax.models.scm_graph import scm_fit_loss
from gem_jax.relations import graph_metrics, somers_d
from gem_jax.relations.discovery import prior_matrix
from gem_jax.scorers.oracle import OracleScorer

_SEEDS = flags.DEFINE_integer("seeds", 16, "Random SCMs.")
_L1 = flags.DEFINE_list("l1", ["0", "0.05", "0.1", "0.2", "0.3", "0.5"], "Weights to try.")
_PRIORS = flags.DEFINE_list("priors", ["somers_d", "pc", "ges"], "Priors (config.gem.prior).")
_SCORER = flags.DEFINE_enum("scorer", "uniform", ["uniform", "realistic"],
                            "The oracle's error model for the scores.")

MECHANISMS = {"lin": lambda x: x, "quad": lambda x: x ** 2 - 1, "abs": lambda x: np.abs(x) - 0.8,
              "tanh": lambda x: np.tanh(2 * x), "sin": lambda x: np.sin(2 * x),
              "step": np.sign, "cube": lambda x: x ** 3 / 3}


def simulate(seed: int, d: int = 6, n: int = 12_800, p: float = 0.35,
             scorer: str = "uniform"):
  """(true graph [d, d], codes float32 [n, d], scores int [1500, d], -1 = missing) of one
  random SCM."""
  rng = np.random.default_rng(seed)
  order = rng.permutation(d)
  graph, x = np.zeros((d, d)), np.zeros((n, d))
  for t, j in enumerate(order):
    column = rng.normal(size=n)
    for i in order[:t]:
      if rng.random() < p:
        kind = rng.choice(list(MECHANISMS))
        sign = rng.choice([-1, 1]) * rng.uniform(0.5, 1.2)
        parent = (x[:, i] - x[:, i].mean()) / x[:, i].std()
        column += sign * MECHANISMS[kind](parent)
        graph[i, j] = sign
    x[:, j] = column
  x = (x - x.mean(0)) / x.std(0)
  codes = np.clip(0.8 * x, -2.4, 2.4) + rng.normal(0, 0.1, x.shape)
  levels = np.clip(np.rint(x + 2.5), 0, 5).astype(int)[:1500]
  if scorer == "realistic":
    return graph, codes.astype(np.float32), realistic_scores(levels, seed)
  wrong = rng.random(levels.shape) > 0.884
  scores = np.where(wrong, (levels + rng.integers(1, 6, levels.shape)) % 6, levels)
  return graph, codes.astype(np.float32), scores


def realistic_scores(levels: np.ndarray, seed: int) -> np.ndarray:
  """int [N, d]: `levels` read by the oracle's `realistic` preset at mean accuracy 0.884, each
  row standing for one "image" of random pixels (its contrast and brightness set how hard the
  row is to read)."""
  rng = np.random.default_rng([seed, 1])
  images = rng.integers(0, 256, (len(levels), 8, 8, 3), dtype=np.uint8)
  names = [f"x{j}" for j in range(levels.shape[1])]
  oracle = OracleScorer.from_dataset(images, levels, names, accuracy=0.884,
                                     error_model="realistic", seed=seed)
  return oracle.score(images, names)


def learn(codes: np.ndarray, a0: np.ndarray, l1: float, steps: int = 400, seed: int = 0):
  """The learner's graph [d, d] after `steps` Adam steps of batch 32 on codes."""
  module = DisGraph(latent_dim=a0.shape[0], kind="scm")
  a0 = jnp.asarray(a0, jnp.float32)
  params = module.init(jax.random.PRNGKey(0), a0)
  tx = optax.adam(1e-2)
  state = tx.init(params)

  @jax.jit
  def step(params, state, batch):
    grads = jax.grad(lambda p: jnp.dot(jnp.array([1.0, l1]),
                                       jnp.stack(scm_fit_loss(p, a0, None, batch))))(params)
    updates, state = tx.update(grads, state)
    return optax.apply_updates(params, updates), state

  rng = np.random.default_rng(seed)
  for _ in range(steps):
    params, state = step(params, state, jnp.asarray(codes[rng.integers(0, len(codes), 32)]))
  return np.asarray(module.apply(params, a0))


def main(argv):
  del argv
  shd = {}
  for seed in range(_SEEDS.value):
    truth, codes, scores = simulate(100 + seed, scorer=_SCORER.value)
    s = np.asarray(somers_d(scores), np.float64)
    for prior in _PRIORS.value:
      p = prior_matrix(scores, prior, s)
      a0 = p - np.diag(np.diag(p)) + np.eye(len(p))
      shd.setdefault((prior, "prior"), []).append(graph_metrics(a0, truth)["shd"])
      for l1 in _L1.value:
        graph = learn(codes, a0, float(l1))
        shd.setdefault((prior, l1), []).append(graph_metrics(graph, truth)["shd"])
  for (prior, l1), values in shd.items():
    # Paired with the default weight on the same SCMs: the seed-to-seed spread cancels.
    paired = np.asarray(values) - np.asarray(shd.get((prior, "0.2"), values))
    print(json.dumps({"scorer": _SCORER.value, "prior": prior, "graph_l1": l1,
                      "shd_mean": float(np.mean(values)),
                      "shd_std": float(np.std(values, ddof=1)), "seeds": len(values),
                      "minus_l1_0.2_mean": float(paired.mean()),
                      "minus_l1_0.2_sem": float(paired.std(ddof=1) / np.sqrt(len(paired)))}))


if __name__ == "__main__":
  app.run(main)
