"""DisGraph, its weighted GCN on jraph, and the SUBLIME anchor (Eq. 9, docs/design.md stage 7)."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gem_jax.models import disgraph
from gem_jax.models.disgraph import (
  DisGraph,
  GraphLearner,
  WeightedGCNLayer,
  anchor_loss,
  graphs_tuple_from_adjacency,
  normalized_adjacency,
  update_anchor,
)

D = 5


def _random_a0(seed=0, d=D, free=()):
  """A signed A_0 with diagonal 1, off-diagonal in (-0.9, 0.9), free latents without edges."""
  rng = np.random.default_rng(seed)
  a = rng.uniform(-0.9, 0.9, size=(d, d)).astype(np.float32)
  np.fill_diagonal(a, 1.0)
  for k in free:
    a[k, :] = 0.0
    a[:, k] = 0.0
    a[k, k] = 1.0
  return jnp.asarray(a)


def _node_mask(free, d=D):
  m = np.ones(d, bool)
  m[list(free)] = False
  return jnp.asarray(m)


def test_normalisation_uses_abs_degrees_of_a_plus_i():
  a = _random_a0(1)
  a_tilde = np.asarray(a) + np.eye(D)
  mag = np.abs(a_tilde)
  deg = 0.5 * (mag.sum(1) + mag.sum(0))
  expected = a_tilde / np.sqrt(deg[:, None] * deg[None, :])
  np.testing.assert_allclose(normalized_adjacency(a), expected, rtol=1e-6)
  # symmetric A~: the degree is Kipf & Welling's row sum
  s = (a + a.T) / 2
  s_mag = np.abs(np.asarray(s) + np.eye(D))
  np.testing.assert_allclose(normalized_adjacency(s),
                             (np.asarray(s) + np.eye(D)) / np.sqrt(
                                 s_mag.sum(1)[:, None] * s_mag.sum(1)[None, :]), rtol=1e-6)


def test_graphs_tuple_edge_layout():
  a = _random_a0(2)
  g = graphs_tuple_from_adjacency(a)
  assert g.edges.shape == g.senders.shape == g.receivers.shape == (D * D,)
  n = np.asarray(normalized_adjacency(a))
  for k in [0, 3, 7, D * D - 1]:
    i, j = int(g.senders[k]), int(g.receivers[k])
    assert k == i * D + j
    assert g.edges[k] == pytest.approx(n[i, j])
  np.testing.assert_array_equal(g.nodes, a)


@pytest.mark.parametrize("activation", [None, jax.nn.relu, jnp.tanh])
def test_weighted_gcn_layer_equals_dense_formula(activation):
  a = _random_a0(3)
  t = jax.random.normal(jax.random.PRNGKey(0), (D, D))
  layer = WeightedGCNLayer(4, activation=activation)
  graph = graphs_tuple_from_adjacency(a, nodes=t)
  params = layer.init(jax.random.PRNGKey(1), graph)
  out = jax.jit(layer.apply)(params, graph).nodes
  omega = params["params"]["omega"]["kernel"]
  assert omega.shape == (D, 4)
  dense = disgraph.dense_gcn_propagate(a, t, omega)
  # messages flow along out-edges: the transpose of Eq. 9's N T Omega
  n = np.asarray(normalized_adjacency(a))
  np.testing.assert_allclose(dense, n.T @ np.asarray(t) @ np.asarray(omega), rtol=1e-5,
                             atol=1e-6)
  act = (lambda v: v) if activation is None else activation
  np.testing.assert_allclose(out, act(dense), rtol=1e-5, atol=1e-6)


def test_message_flows_along_out_edge():
  # one edge 0 -> 1: node 1 receives node 0's feature, node 0 receives nothing from 1
  a = jnp.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
  t = jnp.array([[1.0], [0.0], [0.0]])
  layer = WeightedGCNLayer(1, activation=None, kernel_init=jax.nn.initializers.ones)
  graph = graphs_tuple_from_adjacency(a, nodes=t)
  out = layer.apply(layer.init(jax.random.PRNGKey(0), graph), graph).nodes
  assert out[1, 0] > 0
  t_back = jnp.array([[0.0], [1.0], [0.0]])
  back = layer.apply(layer.init(jax.random.PRNGKey(0), graph), graph._replace(nodes=t_back))
  assert back.nodes[0, 0] == 0.0


def test_graph_learner_starts_at_a0_with_structure():
  free = (3,)
  a0 = _random_a0(4, free=free)
  learner = GraphLearner(num_layers=2)
  params = learner.init(jax.random.PRNGKey(0), a0, _node_mask(free))
  a = jax.jit(learner.apply)(params, a0, _node_mask(free))
  assert a.shape == (D, D) and a.dtype == jnp.float32
  np.testing.assert_array_equal(np.diag(a), np.ones(D))
  off = np.asarray(a)[~np.eye(D, dtype=bool)]
  assert np.all(np.abs(off) < 1.0)
  np.testing.assert_array_equal(np.asarray(a)[3, [0, 1, 2, 4]], 0.0)
  np.testing.assert_array_equal(np.asarray(a)[[0, 1, 2, 4], 3], 0.0)
  np.testing.assert_allclose(a, a0, atol=1e-6)


def test_graph_learner_edge_mask_and_no_mask():
  a0 = _random_a0(5)
  mask = np.ones((D, D), bool)
  mask[0, 2] = False  # drop one directed edge only
  learner = GraphLearner()
  params = learner.init(jax.random.PRNGKey(0), a0, jnp.asarray(mask))
  a = learner.apply(params, a0, jnp.asarray(mask))
  assert a[0, 2] == 0.0 and a[2, 0] != 0.0
  np.testing.assert_allclose(learner.apply(params, a0), a0, atol=1e-6)


def test_graph_learner_clips_unit_weights():
  """A_0 [5, 5] with the unit weights A_0[0, 1] = 1 and A_0[1, 0] = -1 (atanh(+-1) is
  infinite): the learner starts them at +-(1 - 1e-3), the clip, and every other entry at A_0's."""
  a0 = _random_a0(6).at[0, 1].set(1.0).at[1, 0].set(-1.0)
  learner = GraphLearner()
  a = np.asarray(learner.apply(learner.init(jax.random.PRNGKey(0), a0), a0))
  assert np.all(np.isfinite(a))
  assert a[0, 1] == pytest.approx(1.0 - 1e-3, rel=1e-6)
  assert a[1, 0] == pytest.approx(-(1.0 - 1e-3), rel=1e-6)
  rest = np.ones((D, D), bool)
  rest[0, 1] = rest[1, 0] = False
  np.testing.assert_allclose(a[rest], np.asarray(a0)[rest], atol=1e-6)


def test_graph_learner_gradients_and_toy_fit():
  free = (4,)
  a0 = _random_a0(7, free=free)
  node = _node_mask(free)
  target = jnp.where(jnp.eye(D, dtype=bool), 1.0, -0.5 * a0)
  learner = GraphLearner(num_layers=2)
  params = learner.init(jax.random.PRNGKey(0), a0, node)

  def loss_fn(p):
    return jnp.sum(jnp.square(learner.apply(p, a0, node) - target))

  grads = jax.grad(loss_fn)(params)
  # at init only the zero-initialised last layer sees a gradient (see the module docstring)
  assert float(jnp.abs(grads["params"]["gcn_1"]["omega"]["kernel"]).sum()) > 0
  tx = optax.adam(3e-2)
  opt_state = tx.init(params)

  @jax.jit
  def step(p, s):
    loss, g = jax.value_and_grad(loss_fn)(p)
    updates, s = tx.update(g, s, p)
    return optax.apply_updates(p, updates), s, loss

  first = None
  for _ in range(60):
    params, opt_state, loss = step(params, opt_state)
    first = loss if first is None else first
  grads = jax.grad(loss_fn)(params)
  for name in ("gcn_0", "gcn_1"):
    assert float(jnp.abs(grads["params"][name]["omega"]["kernel"]).sum()) > 0, name
  final = loss_fn(params)
  assert final < 0.5 * first
  a = learner.apply(params, a0, node)
  np.testing.assert_array_equal(np.diag(a), np.ones(D))
  np.testing.assert_array_equal(np.asarray(a)[4, :4], 0.0)


def test_disgraph_without_learner_is_a0_and_has_no_params():
  a0 = _random_a0(8, free=(2,))
  model = DisGraph(latent_dim=D, learn=False)
  variables = model.init(jax.random.PRNGKey(0), a0)
  assert jax.tree.leaves(variables) == []
  out = model.apply(variables, a0)
  np.testing.assert_array_equal(out, a0)
  np.testing.assert_array_equal(model.apply(variables, a0, _node_mask((2,))), a0)


def test_disgraph_with_learner():
  a0 = _random_a0(9, free=(1,))
  model = DisGraph(latent_dim=D, num_layers=3, learn=True)
  variables = model.init(jax.random.PRNGKey(0), a0, _node_mask((1,)))
  assert len(variables["params"]["learner"]) == 3
  out = model.apply(variables, a0, _node_mask((1,)))
  np.testing.assert_allclose(out, a0, atol=1e-6)
  with pytest.raises(AssertionError):
    model.apply(variables, jnp.eye(D + 1))


def test_anchor_update_and_loss():
  anchor = jnp.zeros((2, 2))
  a = jnp.array([[1.0, 0.5], [-0.2, 1.0]])
  new = update_anchor(anchor, a, tau=0.9)
  np.testing.assert_allclose(new, 0.1 * a, rtol=1e-6)
  # off-diagonal only: 0.5^2 + 0.2^2
  assert float(anchor_loss(a, anchor)) == pytest.approx(0.29)
  assert float(anchor_loss(a, jnp.eye(2))) == pytest.approx(0.29)
  grad = jax.grad(lambda x: update_anchor(anchor, x).sum())(a)
  np.testing.assert_array_equal(grad, jnp.zeros_like(a))
  grad_loss = jax.grad(anchor_loss)(a, anchor)
  np.testing.assert_allclose(grad_loss, [[0.0, 1.0], [-0.4, 0.0]], rtol=1e-6)


def test_node_mask_from_alignment():
  class FakeAlignment:
    latent_dim = 4
    free_latents = (1, 3)

  np.testing.assert_array_equal(disgraph.node_mask_from_alignment(FakeAlignment()),
                                [True, False, True, False])
