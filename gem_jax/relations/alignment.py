"""Latent <-> attribute alignment and the initial DisGraph (docs/design.md stages 6 and 7).

The paper leaves implicit which latent dimension carries which MLLM attribute. GEM's recipe
here: warm up the beta-VAE branch with ``A = I``, encode the scored images to their posterior
means ``mu`` (``[N, d]``), compute the Spearman correlation between every latent ``k`` and every
attribute ``a`` (pairwise deletion of missing scores), and match attributes to distinct latents
with the Hungarian method maximising ``sum |rho|``. A matched latent whose correlation is negative
is *flipped*: it encodes the attribute with reversed orientation (``z_k ~ -A_a``). Latents left
without an attribute (``d > n``) are *free* nodes of the graph: no edges.

Sign convention of the initial graph. Somers' D is odd under reversing the order of either
variable (reversing ``Y`` swaps concordant and discordant pairs, reversing ``X`` does too, and
neither changes which pairs are tied on ``X``). Latent ``k`` behaves like ``sign_a * A_a`` and
latent ``l`` like ``sign_b * A_b``, hence

    ``D(z_l | z_k) = sign_a * sign_b * D(A_b | A_a) = sign_a * sign_b * S[a, b]``,

which is the entry ``A_0[k, l]`` (row ``k`` = out-edges of latent ``k``, the decoder sees
``A^T z``). Example: ``S[bald, bangs] = -0.8`` with the bald latent flipped (``z ~ -bald``) and
the bangs latent not flipped gives ``A_0[k_bald, k_bangs] = +0.8``: more ``z_k`` = less bald =
more bangs.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import scipy.optimize
import scipy.stats

__all__ = ["Alignment", "spearman_matrix", "align_latents", "fixed_alignment", "initial_graph"]


@dataclasses.dataclass(frozen=True, eq=False)
class Alignment:
  """Which latent carries which attribute, and with which orientation.

  Attributes:
    attribute_names: ``n`` attribute names, in the column order of the scores / of ``S``.
    latent_of_attribute: ``n`` distinct latent indices in ``0 .. d-1``; attribute ``a`` is
      carried by latent ``latent_of_attribute[a]``.
    signs: ``n`` values in ``{+1.0, -1.0}``; ``-1`` means the latent is flipped
      (``z_k ~ -A_a``), i.e. its Spearman correlation with the attribute is negative.
    correlations: float64 ``[d, n]`` signed Spearman correlation of latent ``k`` with
      attribute ``a`` (read-only).
  """

  attribute_names: Tuple[str, ...]
  latent_of_attribute: Tuple[int, ...]
  signs: Tuple[float, ...]
  correlations: np.ndarray

  def __post_init__(self):
    names = tuple(str(a) for a in self.attribute_names)
    latents = tuple(int(k) for k in self.latent_of_attribute)
    signs = tuple(float(s) for s in self.signs)
    corr = np.array(self.correlations, dtype=np.float64)
    n = len(names)
    if len(set(names)) != n:
      raise ValueError(f"attribute_names must be unique, got {names}")
    if len(latents) != n or len(signs) != n:
      raise ValueError(
          f"latent_of_attribute ({len(latents)}) and signs ({len(signs)}) must have one "
          f"entry per attribute ({n})"
      )
    if corr.ndim != 2 or corr.shape[1] != n:
      raise ValueError(f"correlations must be [d, n] with n = {n}, got {corr.shape}")
    d = corr.shape[0]
    if n > d:
      raise ValueError(f"more attributes ({n}) than latents ({d})")
    if any(not 0 <= k < d for k in latents) or len(set(latents)) != n:
      raise ValueError(f"latent_of_attribute must be distinct indices in 0..{d - 1}, got {latents}")
    if any(s not in (1.0, -1.0) for s in signs):
      raise ValueError(f"signs must be +1 or -1, got {signs}")
    corr.setflags(write=False)
    object.__setattr__(self, "attribute_names", names)
    object.__setattr__(self, "latent_of_attribute", latents)
    object.__setattr__(self, "signs", signs)
    object.__setattr__(self, "correlations", corr)

  @property
  def latent_dim(self) -> int:
    """``d``, the number of latents."""
    return int(self.correlations.shape[0])

  @property
  def num_attributes(self) -> int:
    """``n``, the number of attributes."""
    return len(self.attribute_names)

  @property
  def free_latents(self) -> Tuple[int, ...]:
    """Latents that carry no attribute (graph nodes without edges), ascending."""
    used = set(self.latent_of_attribute)
    return tuple(k for k in range(self.latent_dim) if k not in used)

  def attribute_of_latent(self, k: int) -> Optional[str]:
    """Name of the attribute carried by latent ``k``, or ``None`` for a free latent."""
    if not 0 <= k < self.latent_dim:
      raise IndexError(f"latent index {k} out of range 0..{self.latent_dim - 1}")
    for a, latent in enumerate(self.latent_of_attribute):
      if latent == k:
        return self.attribute_names[a]
    return None

  def sign_of_latent(self, k: int) -> float:
    """``+1``/``-1`` orientation of latent ``k``; ``+1`` for a free latent."""
    if not 0 <= k < self.latent_dim:
      raise IndexError(f"latent index {k} out of range 0..{self.latent_dim - 1}")
    for a, latent in enumerate(self.latent_of_attribute):
      if latent == k:
        return self.signs[a]
    return 1.0

  def latent_label(self, k: int) -> str:
    """Plot label: ``"z3: bald (-)"``, ``"z1: bangs (+)"``, ``"z5: free"``."""
    name = self.attribute_of_latent(k)
    if name is None:
      return f"z{k}: free"
    return f"z{k}: {name} ({'-' if self.sign_of_latent(k) < 0 else '+'})"

  def latent_labels(self) -> Tuple[str, ...]:
    """:meth:`latent_label` for every latent ``0 .. d-1``."""
    return tuple(self.latent_label(k) for k in range(self.latent_dim))

  def to_json(self) -> dict:
    """Plain JSON-able dict (lists, str, int, float) to save with a run."""
    return {
        "attribute_names": list(self.attribute_names),
        "latent_of_attribute": list(self.latent_of_attribute),
        "signs": list(self.signs),
        "correlations": self.correlations.tolist(),
    }

  @classmethod
  def from_json(cls, data: Union[Mapping[str, Any], str]) -> "Alignment":
    """Inverse of :meth:`to_json`; also accepts the ``json.dumps`` string of that dict."""
    if isinstance(data, str):
      data = json.loads(data)
    missing = {"attribute_names", "latent_of_attribute", "signs", "correlations"} - set(data)
    if missing:
      raise ValueError(f"alignment JSON lacks fields {sorted(missing)}")
    corr = np.asarray(data["correlations"], dtype=np.float64)
    if corr.ndim == 1 and corr.size == 0:  # d = 0: json.dumps writes [] for a (0, 0) array
      corr = corr.reshape(0, len(data["attribute_names"]))
    return cls(
        attribute_names=tuple(data["attribute_names"]),
        latent_of_attribute=tuple(data["latent_of_attribute"]),
        signs=tuple(data["signs"]),
        correlations=corr,
    )

  def __eq__(self, other: object) -> bool:
    if not isinstance(other, Alignment):
      return NotImplemented
    return (
        self.attribute_names == other.attribute_names
        and self.latent_of_attribute == other.latent_of_attribute
        and self.signs == other.signs
        and self.correlations.shape == other.correlations.shape
        and bool(np.array_equal(self.correlations, other.correlations, equal_nan=True))
    )

  __hash__ = None  # holds an array

  def __repr__(self) -> str:
    pairs = ", ".join(self.latent_label(k) for k in range(self.latent_dim))
    return f"Alignment({pairs})"


def _pearson_columns(x: np.ndarray, y: np.ndarray) -> np.ndarray:
  """Pearson correlation of every column of ``x`` [m, d] with ``y`` [m]; 0 if constant."""
  xc = x - x.mean(axis=0)
  yc = y - y.mean()
  sx = np.sqrt((xc * xc).sum(axis=0))
  sy = np.sqrt((yc * yc).sum())
  denom = sx * sy
  with np.errstate(invalid="ignore", divide="ignore"):
    r = (xc * yc[:, None]).sum(axis=0) / denom
  r = np.where(denom > 0, r, 0.0)
  return np.clip(r, -1.0, 1.0)


def spearman_matrix(mu: np.ndarray, scores: np.ndarray) -> np.ndarray:
  """Signed Spearman correlation of every latent with every attribute.

  Args:
    mu: float ``[N, d]`` latent codes (posterior means).
    scores: int ``[N, n]``, negative = missing.

  Returns:
    float64 ``[d, n]``: ``rho[k, a]`` = Spearman correlation (average ranks for ties) of
    ``mu[:, k]`` and ``scores[:, a]`` over the rows where ``scores[:, a]`` is present; ``0``
    where either side is constant on those rows or fewer than 2 rows remain (scipy would give
    ``nan``). Matches ``scipy.stats.spearmanr`` otherwise.
  """
  mu = np.asarray(mu, dtype=np.float64)
  scores = np.asarray(scores)
  num_latents = mu.shape[1]
  rho = np.zeros((num_latents, scores.shape[1]), dtype=np.float64)
  for a in range(scores.shape[1]):
    valid = scores[:, a] >= 0
    if valid.sum() < 2:
      continue
    ranks_mu = scipy.stats.rankdata(mu[valid], axis=0)
    ranks_a = scipy.stats.rankdata(scores[valid, a])
    rho[:, a] = _pearson_columns(ranks_mu, ranks_a)
  return rho


def align_latents(mu, scores, attribute_names: Sequence[str]) -> Alignment:
  """Matches attributes to latents by the Hungarian method on ``|Spearman|``.

  Args:
    mu: float ``[N, d]`` encoder means of the scored images (finite).
    scores: int ``[N, n]`` MLLM scores, ``-1`` = missing (left out pairwise), ``n <= d``.
    attribute_names: ``n`` names, in the column order of ``scores``.

  Returns:
    :class:`Alignment` with ``latent_of_attribute`` maximising ``sum_a |rho[k_a, a]|`` over
    one-to-one assignments, ``signs[a] = -1`` iff ``rho[k_a, a] < 0`` (``+1`` for ``0``), and
    the full signed ``[d, n]`` correlation matrix.
  """
  mu = np.asarray(mu)
  scores = np.asarray(scores)
  names = tuple(attribute_names)
  if mu.ndim != 2:
    raise ValueError(f"mu must be 2-D [N, d], got shape {mu.shape}")
  if scores.ndim != 2:
    raise ValueError(f"scores must be 2-D [N, n], got shape {scores.shape}")
  if mu.shape[0] != scores.shape[0]:
    raise ValueError(
        f"mu and scores must have the same number of rows, got {mu.shape[0]} and "
        f"{scores.shape[0]}"
    )
  if len(names) != scores.shape[1]:
    raise ValueError(
        f"attribute_names has {len(names)} names but scores has {scores.shape[1]} columns"
    )
  if scores.shape[1] > mu.shape[1]:
    raise ValueError(
        f"more attributes ({scores.shape[1]}) than latents ({mu.shape[1]}): need n <= d"
    )
  if not np.issubdtype(scores.dtype, np.integer):
    raise TypeError(f"scores must be an integer array (-1 = missing), got {scores.dtype}")
  if not np.all(np.isfinite(mu)):
    raise ValueError("mu contains non-finite values")

  rho = spearman_matrix(mu, scores)
  latents, attrs = scipy.optimize.linear_sum_assignment(np.abs(rho), maximize=True)
  latent_of_attribute = [0] * len(names)
  signs = [1.0] * len(names)
  for k, a in zip(latents, attrs):
    latent_of_attribute[a] = int(k)
    signs[a] = -1.0 if rho[k, a] < 0 else 1.0
  return Alignment(
      attribute_names=names,
      latent_of_attribute=tuple(latent_of_attribute),
      signs=tuple(signs),
      correlations=rho,
  )


def initial_graph(S, alignment: Alignment, latent_dim: int) -> np.ndarray:
  """``A_0 = I + offdiag(S)`` permuted into latent order, with orientation signs.

  Args:
    S: ``[n, n]`` Somers' D between attributes, ``S[a, b]`` = impact of ``a`` on ``b``
      (e.g. from :func:`gem_jax.relations.somers_d`); its diagonal is ignored.
    alignment: the latent <-> attribute matching for the same ``n`` attributes, same order.
    latent_dim: ``d``; must equal ``alignment.latent_dim`` and be ``>= n``.

  Returns:
    float32 ``[d, d]``: ``A_0[k_a, k_b] = signs[a] * signs[b] * S[a, b]`` for ``a != b``
    (``k_a = latent_of_attribute[a]``; see the module docstring for why the signs multiply),
    ``A_0[k, k] = 1``, and all off-diagonal entries of a free latent's row and column are 0.
  """
  S = np.asarray(S, dtype=np.float64)
  n = alignment.num_attributes
  if S.ndim != 2 or S.shape[0] != S.shape[1]:
    raise ValueError(f"S must be a square [n, n] matrix, got shape {S.shape}")
  if S.shape[0] != n:
    raise ValueError(f"S is {S.shape[0]}x{S.shape[1]} but the alignment has {n} attributes")
  if not isinstance(latent_dim, (int, np.integer)) or latent_dim < n:
    raise ValueError(f"latent_dim must be an integer >= n = {n}, got {latent_dim!r}")
  if latent_dim != alignment.latent_dim:
    raise ValueError(
        f"latent_dim ({latent_dim}) differs from the alignment's latent_dim "
        f"({alignment.latent_dim})"
    )
  if not np.all(np.isfinite(S)):
    raise ValueError("S contains non-finite values")

  latents = np.asarray(alignment.latent_of_attribute, dtype=np.int64)
  signs = np.asarray(alignment.signs, dtype=np.float64)
  weights = signs[:, None] * signs[None, :] * S
  np.fill_diagonal(weights, 0.0)
  graph = np.eye(latent_dim, dtype=np.float64)
  graph[np.ix_(latents, latents)] += weights
  return graph.astype(np.float32)


def fixed_alignment(mu, scores, attribute_names: Sequence[str],
                    latents: Sequence[int]) -> Alignment:
  """The alignment fixed up front (MLLM-guided training: attribute a is trained into latent
  latents[a], increasing with the attribute): signs +1, and the measured ``[d, n]`` Spearman
  correlations of ``mu`` [N, d] with ``scores`` [N, n] (-1 = missing) beside it."""
  mu, scores = np.asarray(mu), np.asarray(scores)
  names = tuple(attribute_names)
  if mu.ndim != 2 or scores.ndim != 2 or len(mu) != len(scores) or scores.shape[1] != len(names):
    raise ValueError(f"expected mu [N, d] and scores [N, {len(names)}] with the same N, got "
                     f"{list(mu.shape)} and {list(scores.shape)}")
  return Alignment(attribute_names=names, latent_of_attribute=tuple(int(k) for k in latents),
                   signs=(1.0,) * len(names), correlations=spearman_matrix(mu, scores))
