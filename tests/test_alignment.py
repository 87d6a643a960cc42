"""Tests for gem_jax.relations.alignment: Hungarian latent matching, signs, the initial graph."""

import dataclasses
import json
import re
import warnings

import numpy as np
import pytest
import scipy.stats

from gem_jax.relations import Alignment, align_latents, initial_graph, somers_d, spearman_matrix
from gem_jax.relations.alignment import fixed_alignment

NAMES = ("bangs", "bald", "gender", "beard")


def constructed(seed=0, num_rows=1500, missing=0.0):
  """scores [N, 4]; mu [N, 7]: z2 = -bangs, z0 = bald, z5 = gender, z3 = -beard (+ noise);
  z1, z4, z6 free (independent noise)."""
  rng = np.random.default_rng(seed)
  base = rng.normal(size=(num_rows, 2))
  raw = np.stack(
      [base[:, 0], -0.6 * base[:, 0] + base[:, 1], base[:, 1], rng.normal(size=num_rows)],
      axis=1,
  )
  scores = np.digitize(raw, [-1.5, -0.7, 0.0, 0.7, 1.5]).astype(np.int64)  # 0..5
  noise = lambda: 0.3 * rng.normal(size=num_rows)  # noqa: E731
  mu = rng.normal(size=(num_rows, 7))  # free latents: independent noise
  mu[:, 2] = -scores[:, 0] + noise()
  mu[:, 0] = scores[:, 1] + noise()
  mu[:, 5] = scores[:, 2] + noise()
  mu[:, 3] = -scores[:, 3] + noise()
  if missing:
    scores[rng.random(scores.shape) < missing] = -1
  return mu, scores


def test_hungarian_matching_and_signs_as_constructed():
  mu, scores = constructed()
  alignment = align_latents(mu, scores, NAMES)
  assert alignment.attribute_names == NAMES
  assert alignment.latent_of_attribute == (2, 0, 5, 3)
  assert alignment.signs == (-1.0, 1.0, 1.0, -1.0)
  assert alignment.correlations.shape == (7, 4)
  assert alignment.latent_dim == 7 and alignment.num_attributes == 4
  assert alignment.free_latents == (1, 4, 6)
  assert alignment.attribute_of_latent(2) == "bangs"
  assert alignment.attribute_of_latent(0) == "bald"
  assert alignment.attribute_of_latent(4) is None
  assert alignment.latent_label(2) == "z2: bangs (-)"
  assert alignment.latent_label(0) == "z0: bald (+)"
  assert alignment.latent_label(6) == "z6: free"
  assert len(alignment.latent_labels()) == 7
  with pytest.raises(IndexError):
    alignment.attribute_of_latent(7)


def test_hungarian_beats_greedy_matching():
  # |rho|: z0 ~ 1.1 a + b is the single best match (to a), but giving a to z0 leaves b with
  # z1 ~ a + noise (|rho(z1, b)| ~ 0). Hungarian maximises the total instead:
  # a -> z1, b -> z0.
  rng = np.random.default_rng(1)
  a = rng.integers(0, 6, 5000)
  b = rng.integers(0, 6, 5000)
  mu = np.stack([1.1 * a + b, a + 1.7 * rng.normal(size=5000)], axis=1)
  alignment = align_latents(mu, np.stack([a, b], 1), ("a", "b"))
  rho = np.abs(alignment.correlations)
  assert np.unravel_index(np.argmax(rho), rho.shape) == (0, 0)  # greedy would take (z0, a)
  assert rho[1, 0] + rho[0, 1] > rho[0, 0] + rho[1, 1]
  assert alignment.latent_of_attribute == (1, 0)
  assert alignment.signs == (1.0, 1.0)


def test_spearman_matches_scipy_with_missing_and_constant():
  mu, scores = constructed(seed=2, num_rows=400, missing=0.15)
  scores[:, 3] = np.where(scores[:, 3] >= 0, 2, -1)  # constant where present
  rho = spearman_matrix(mu, scores)
  assert rho.shape == (7, 4)
  for k in range(7):
    for a in range(3):
      valid = scores[:, a] >= 0
      ref = scipy.stats.spearmanr(mu[valid, k], scores[valid, a]).statistic
      assert rho[k, a] == pytest.approx(ref, abs=1e-12)
  np.testing.assert_array_equal(rho[:, 3], 0.0)  # constant attribute -> 0 (scipy: nan)


def test_alignment_with_missing_scores_still_exact():
  mu, scores = constructed(seed=3, missing=0.2)
  alignment = align_latents(mu, scores, NAMES)
  assert alignment.latent_of_attribute == (2, 0, 5, 3)
  assert alignment.signs == (-1.0, 1.0, 1.0, -1.0)


def test_initial_graph_positions_and_signs():
  mu, scores = constructed()
  alignment = align_latents(mu, scores, NAMES)
  S = np.asarray(somers_d(scores), dtype=np.float64)
  graph = initial_graph(S, alignment, 7)
  assert graph.shape == (7, 7)
  np.testing.assert_array_equal(np.diag(graph), 1.0)
  latents, signs = alignment.latent_of_attribute, alignment.signs
  for a in range(4):
    for b in range(4):
      if a != b:
        expected = signs[a] * signs[b] * S[a, b]
        assert graph[latents[a], latents[b]] == pytest.approx(expected, abs=1e-7)
  # bangs (z2, flipped) vs bald (z0): S[bangs, bald] < 0 by construction -> positive edge
  assert S[0, 1] < 0 and graph[2, 0] > 0 and graph[2, 0] == pytest.approx(-S[0, 1], abs=1e-7)
  # two flipped latents (bangs z2, beard z3): the signs cancel
  assert graph[2, 3] == pytest.approx(S[0, 3], abs=1e-7)
  # free latents: no edges at all
  for k in alignment.free_latents:
    row = np.delete(graph[k], k)
    col = np.delete(graph[:, k], k)
    np.testing.assert_array_equal(row, 0.0)
    np.testing.assert_array_equal(col, 0.0)


def test_initial_graph_sign_rule_agrees_with_somers_d_of_latents():
  # D(z_l | z_k) computed directly on oriented scores equals the graph entry.
  rng = np.random.default_rng(4)
  x = rng.integers(0, 6, 3000)
  y = np.clip(5 - x + rng.integers(-1, 2, 3000), 0, 5)
  scores = np.stack([x, y], axis=1)
  alignment = Alignment(("x", "y"), (1, 0), (-1.0, 1.0), np.zeros((3, 2)))
  graph = initial_graph(np.asarray(somers_d(scores)), alignment, 3)
  oriented = np.stack([5 - x, y], axis=1)  # latent 1 ~ -x (as levels reversed), latent 0 ~ y
  S_oriented = np.asarray(somers_d(oriented))
  assert graph[1, 0] == pytest.approx(S_oriented[0, 1], abs=1e-6)
  assert graph[0, 1] == pytest.approx(S_oriented[1, 0], abs=1e-6)
  assert graph[1, 0] > 0  # x and y are anti-related; flipping x makes the edge positive


def test_initial_graph_shape_errors():
  mu, scores = constructed()
  alignment = align_latents(mu, scores, NAMES)
  S = np.eye(4)
  with pytest.raises(ValueError, match="square"):
    initial_graph(np.zeros((4, 3)), alignment, 7)
  with pytest.raises(ValueError, match="square"):
    initial_graph(np.zeros(4), alignment, 7)
  with pytest.raises(ValueError, match="alignment has 4 attributes"):
    initial_graph(np.eye(3), alignment, 7)
  with pytest.raises(ValueError, match="latent_dim must be an integer >= n = 4"):
    initial_graph(S, alignment, 3)
  with pytest.raises(ValueError, match="differs from the alignment's latent_dim"):
    initial_graph(S, alignment, 8)
  with pytest.raises(ValueError, match="non-finite"):
    initial_graph(np.full((4, 4), np.nan), alignment, 7)


def test_align_latents_errors():
  mu, scores = constructed(num_rows=50)
  with pytest.raises(ValueError, match="attribute_names has 3 names"):
    align_latents(mu, scores, NAMES[:3])
  with pytest.raises(ValueError, match="same number of rows"):
    align_latents(mu[:10], scores, NAMES)
  with pytest.raises(ValueError, match="more attributes"):
    align_latents(mu[:, :3], scores, NAMES)
  with pytest.raises(ValueError, match="mu must be 2-D"):
    align_latents(mu[:, 0], scores, NAMES)
  with pytest.raises(TypeError, match="integer"):
    align_latents(mu, scores.astype(float), NAMES)
  bad = mu.copy()
  bad[0, 0] = np.nan
  with pytest.raises(ValueError, match="non-finite"):
    align_latents(bad, scores, NAMES)


def test_alignment_validation():
  corr = np.zeros((3, 2))
  with pytest.raises(ValueError, match="distinct indices"):
    Alignment(("a", "b"), (0, 0), (1.0, 1.0), corr)
  with pytest.raises(ValueError, match="distinct indices"):
    Alignment(("a", "b"), (0, 3), (1.0, 1.0), corr)
  with pytest.raises(ValueError, match="signs must be"):
    Alignment(("a", "b"), (0, 1), (1.0, 0.5), corr)
  with pytest.raises(ValueError, match="unique"):
    Alignment(("a", "a"), (0, 1), (1.0, 1.0), corr)
  with pytest.raises(ValueError, match=r"correlations must be \[d, n\]"):
    Alignment(("a", "b"), (0, 1), (1.0, 1.0), np.zeros((3, 3)))


def test_json_round_trip_and_immutability():
  mu, scores = constructed(missing=0.1)
  alignment = align_latents(mu, scores, NAMES)
  data = alignment.to_json()
  text = json.dumps(data)  # plain JSON types only
  assert isinstance(data, dict)
  restored = Alignment.from_json(json.loads(text))
  assert restored == alignment
  assert Alignment.from_json(text) == alignment
  assert isinstance(restored.latent_of_attribute, tuple)
  np.testing.assert_array_equal(restored.correlations, alignment.correlations)
  with pytest.raises(dataclasses.FrozenInstanceError):
    alignment.signs = (1.0,) * 4
  with pytest.raises(ValueError):
    alignment.correlations[0, 0] = 1.0  # read-only array
  with pytest.raises(ValueError, match="lacks fields"):
    Alignment.from_json({"attribute_names": []})


def test_alignments_differing_in_one_field_are_unequal_and_nan_equals_nan():
  corr = np.array([[0.5, np.nan], [0.1, -0.2], [0.0, 0.3]])
  base = Alignment(("a", "b"), (0, 1), (1.0, -1.0), corr)
  assert base == Alignment(("a", "b"), (0, 1), (1.0, -1.0), corr.copy())  # NaN == NaN here
  for changed in (dict(attribute_names=("a", "c")), dict(latent_of_attribute=(0, 2)),
                  dict(signs=(1.0, 1.0)), dict(correlations=np.where(np.isnan(corr), 0.0, corr))):
    assert base != dataclasses.replace(base, **changed), changed


def test_constant_columns_correlate_zero_without_a_warning():
  scores = np.array([[0, 1], [1, 1], [2, 1], [3, 1]])
  mu = np.stack([np.ones(4), np.arange(4.0), -np.arange(4.0)], axis=1)
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    rho = spearman_matrix(mu, scores)
  np.testing.assert_allclose(rho, [[0, 0], [1, 0], [-1, 0]])


def test_a_zero_correlation_keeps_the_sign_positive():
  """signs[a] = -1 iff rho < 0: an attribute whose best latent has rho = 0 is not flipped."""
  scores = np.array([[0, 0], [1, 0], [2, 0], [3, 0]])   # attribute 'b' is constant: rho = 0
  mu = np.stack([np.arange(4.0), np.array([3.0, 1.0, 2.0, 0.0])], axis=1)
  alignment = align_latents(mu, scores, ("a", "b"))
  assert alignment.latent_of_attribute == (0, 1) and alignment.signs == (1.0, 1.0)


def test_error_messages_in_full():
  mu, scores = constructed(num_rows=50)
  with pytest.raises(ValueError, match=r"^mu and scores must have the same number of rows, got "
                     r"10 and 50$"):
    align_latents(mu[:10], scores, NAMES)
  with pytest.raises(ValueError, match=r"^scores must be 2-D \[N, n\], got shape \(50,\)$"):
    align_latents(mu, scores[:, 0], NAMES)
  bad = mu.copy()
  bad[0, 0] = np.inf
  with pytest.raises(ValueError, match="^mu contains non-finite values$"):
    align_latents(bad, scores, NAMES)
  for bad_mu, bad_scores, names, got in (
      (mu[:, 0], scores, NAMES, "[50] and [50, 4]"),
      (mu, scores[:, 0], NAMES, "[50, 7] and [50]"),
      (mu[:10], scores, NAMES, "[10, 7] and [50, 4]"),
      (mu, scores, NAMES[:3], "[50, 7] and [50, 4]")):
    with pytest.raises(ValueError, match=re.escape(
        f"expected mu [N, d] and scores [N, {len(names)}] with the same N, got {got}")):
      fixed_alignment(mu=bad_mu, scores=bad_scores, attribute_names=names, latents=(0, 1, 2))


def test_spearman_is_exactly_one_for_a_perfect_ranking_and_needs_two_rows():
  # 17 rows: the unclipped Pearson correlation of the ranks is 1 + 2e-16.
  scores = np.arange(17)[:, None]
  mu = np.stack([np.arange(17.0), -np.arange(17.0)], axis=1)
  rho = spearman_matrix(mu, scores)
  assert rho[0, 0] == 1.0 and rho[1, 0] == -1.0
  two = np.array([[0, -1], [1, -1], [-1, 3], [-1, 3]])   # two rows for 'a', none for 'b'
  np.testing.assert_allclose(spearman_matrix(np.array([[0.0], [1.0], [5.0], [7.0]]), two),
                             [[1.0, 0.0]], atol=1e-12)
  gap = np.array([[-1, 0], [-1, 1], [-1, 2]])   # column 0 all missing, column 1 measured
  np.testing.assert_allclose(spearman_matrix(np.array([[0.0], [1.0], [2.0]]), gap),
                             [[0.0, 1.0]], atol=1e-12)


def test_alignment_normalises_its_fields_and_names_what_is_wrong():
  alignment = Alignment(["a", "b"], [np.int64(2), 0], [1, -1], np.zeros((3, 2), int))
  assert alignment.attribute_names == ("a", "b") and alignment.signs == (1.0, -1.0)
  assert alignment.latent_of_attribute == (2, 0)
  assert all(type(k) is int for k in alignment.latent_of_attribute)
  assert alignment.correlations.dtype == np.float64
  corr = np.zeros((2, 2))
  with pytest.raises(ValueError, match=r"^latent_of_attribute \(1\) and signs \(2\) must have one "
                     r"entry per attribute \(2\)$"):
    Alignment(("a", "b"), (0,), (1.0, 1.0), corr)
  with pytest.raises(ValueError, match=r"^more attributes \(2\) than latents \(1\)$"):
    Alignment(("a", "b"), (0, 1), (1.0, 1.0), np.zeros((1, 2)))
  with pytest.raises(ValueError, match=r"^latent_of_attribute must be distinct indices in 0..1, "
                     r"got \(0, 2\)$"):
    Alignment(("a", "b"), (0, 2), (1.0, 1.0), corr)
  for k in (3, -1):
    for method in (alignment.attribute_of_latent, alignment.sign_of_latent):
      with pytest.raises(IndexError, match=rf"^latent index {k} out of range 0..2$"):
        method(k)
  assert alignment.sign_of_latent(1) == 1.0 and alignment.attribute_of_latent(1) is None


def test_json_round_trip_without_attributes():
  for d in (0, 3):
    alignment = Alignment((), (), (), np.zeros((d, 0)))
    restored = Alignment.from_json(json.dumps(alignment.to_json()))
    assert restored == alignment and restored.latent_dim == d


def test_initial_graph_is_float32_and_allows_as_many_latents_as_attributes():
  alignment = Alignment(("a", "b"), (1, 0), (1.0, -1.0), np.zeros((2, 2)))
  graph = initial_graph(np.array([[1.0, 0.5], [0.25, 1.0]]), alignment, 2)
  assert graph.dtype == np.float32
  np.testing.assert_array_equal(graph, [[1.0, -0.25], [-0.5, 1.0]])
  with pytest.raises(ValueError, match="^S contains non-finite values$"):
    initial_graph(np.array([[1.0, np.nan], [0.25, 1.0]]), alignment, 2)
