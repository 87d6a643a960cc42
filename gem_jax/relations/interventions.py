"""The do-operator on a linear SCM over latent codes: abduction, action, prediction.

    z_cf = counterfactual_codes(z, w, {2: 1.6})   # do(z_2 := 1.6) for every row of z

A GEM model's aligned latents are the concept variables (MLLM-guided training puts attribute
a's level, on the scale -2..+2, into latent a), and its DisGraph A = I + W reads as the linear
structural equations z_j = sum_i W[i, j] z_i + u_j (row i of W: the out-edges of latent i,
docs/design.md). An intervention on one image's code then takes Pearl's three steps:

1. abduction: the exogenous noise of the image, u = z (I - W) (row-wise; what the graph does
   not explain of each latent);
2. action: do(z_a := v) removes a's structural equation: W' = W with column a set to 0, and
   u'_a = v;
3. prediction: z' = u' (I - W')^{-1}, i.e. z'_j = sum_i W'[i, j] z'_i + u'_j.

Every latent that the graph W' does not reach from an intervened latent keeps its value exactly
(its equation and noise are unchanged and none of its causes moves); a descendant moves by the
path products of W. A cyclic W (A_0 of Somers' D is two-way) works as long as I - W' is
invertible: the value is then the fixed point of the equations; a singular I - W' is an error
naming the latents.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

__all__ = ["counterfactual_codes", "descendants"]

# I - W' with a condition number above this is treated as singular.
MAX_CONDITION = 1e8


def descendants(w: np.ndarray, sources, threshold: float = 0.0) -> set[int]:
  """Latents reachable from `sources` along edges i -> j with |W[i, j]| > threshold (the
  sources themselves excluded unless a cycle returns to them). w: [d, d]."""
  w = np.abs(np.asarray(w)) > threshold
  np.fill_diagonal(w, False)
  seen, frontier = set(), list(sources)
  while frontier:
    i = frontier.pop()
    for j in np.nonzero(w[i])[0].tolist():
      if j not in seen:
        seen.add(j)
        frontier.append(j)
  return seen


def counterfactual_codes(z: np.ndarray, w: np.ndarray,
                         interventions: Mapping[int, float | np.ndarray]) -> np.ndarray:
  """Codes after do(z_a := v) for each {latent a: value v}, with each row's own noise.

  Args:
    z: codes float [B, d] (e.g. posterior means).
    w: structural weights [d, d], W[i, j] the edge i -> j; the diagonal is ignored.
    interventions: {latent index: value}, the value a float or float [B] (one per row).

  Returns:
    float64 [B, d]: the intervened latents at their values, their descendants in W (with the
    intervened latents' incoming edges cut) moved through the structural equations, every
    other latent exactly as in z.

  Raises:
    ValueError: a latent index out of range, a value of the wrong shape, or I - W' singular.
  """
  z = np.asarray(z, np.float64)
  w = np.array(w, np.float64)
  if z.ndim != 2 or w.shape != (z.shape[1], z.shape[1]):
    raise ValueError(f"expected codes [B, d] and weights [d, d]; got {list(z.shape)} and "
                     f"{list(w.shape)}")
  d = z.shape[1]
  np.fill_diagonal(w, 0.0)
  eye = np.eye(d)
  u = z @ (eye - w)
  w_cut = w.copy()
  for a, value in interventions.items():
    if not 0 <= int(a) < d:
      raise ValueError(f"latent {a} is out of range 0..{d - 1}")
    value = np.asarray(value, np.float64)
    if value.ndim not in (0, 1) or (value.ndim == 1 and value.shape != (len(z),)):
      raise ValueError(f"the value of latent {a} must be a float or one per row [{len(z)}]; "
                       f"got shape {list(value.shape)}")
    w_cut[:, int(a)] = 0.0
    u[:, int(a)] = value
  m = eye - w_cut
  if not np.isfinite(np.linalg.cond(m)) or np.linalg.cond(m) > MAX_CONDITION:
    raise ValueError("the graph's structural equations have no unique solution after the "
                     f"intervention on latents {sorted(int(a) for a in interventions)} "
                     "(I - W is singular): a cycle with gain 1")
  out = np.linalg.solve(m.T, u.T).T
  # Latents the intervention cannot reach keep their value bit for bit.
  moved = descendants(w_cut, [int(a) for a in interventions]) | {int(a) for a in interventions}
  keep = [j for j in range(d) if j not in moved]
  out[:, keep] = z[:, keep]
  return out
