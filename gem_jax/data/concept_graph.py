"""The relation graph over a labelled folder's concepts: graph.json, read and checked.

    {"edges": [["parent", "child"], ["parent", "other child", -0.5], ...]}

Each edge names two concepts (columns of labels.csv) and optionally a signed weight (a finite
non-zero number; default 1.0); other keys of the file are ignored. The graph is returned as a
float32 matrix [k, k] over the concepts in column order, row = parent, column = child (the
convention of every `DatasetSpec.true_graph`). It must be acyclic: a cycle is an error that
names its nodes in order.
"""
from __future__ import annotations

import json
import math
import numbers
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from gem_jax.data.errors import LabelsError

GRAPH_FORMAT = '{"edges": [["parent", "child"], ["parent", "child", weight], ...]}'


def read_graph(path, names: Sequence[str], labels_csv) -> np.ndarray:
  """graph.json -> signed weights float32 [k, k] over `names` (row = parent).

  Raises:
    LabelsError: malformed JSON or edges, a concept that is not a column of `labels_csv`
      (named, with the known ones), an edge given twice, or a cycle (its nodes in order).
  """
  path = Path(path)
  try:
    data = json.loads(path.read_text(encoding="utf-8"))
  except json.JSONDecodeError as err:
    raise LabelsError(f"{path}: not valid JSON ({err.msg} at line {err.lineno}, column "
                      f"{err.colno}); expected {GRAPH_FORMAT}") from None
  edges = data.get("edges") if isinstance(data, dict) else None
  if not isinstance(edges, list):
    raise LabelsError(f"{path}: expected {GRAPH_FORMAT}")
  graph = np.zeros((len(names), len(names)), np.float32)
  for number, edge in enumerate(edges, start=1):
    parent, child, weight = _edge(path, number, edge, names, labels_csv)
    i, j = names.index(parent), names.index(child)
    if graph[i, j]:
      raise LabelsError(f"{path}: edge {number} ({parent} -> {child}) is given twice")
    graph[i, j] = weight
  cycle = find_cycle(graph, names)
  if cycle:
    raise LabelsError(f"{path}: the edges form a cycle {' -> '.join(cycle)}; a relation graph "
                      "must be acyclic: remove one of these edges")
  return graph


def _edge(path: Path, number: int, edge, names: Sequence[str], labels_csv
          ) -> tuple[str, str, float]:
  """(parent, child, weight) of the number-th edge; LabelsError when malformed."""
  if (not isinstance(edge, list) or len(edge) not in (2, 3)
      or not all(isinstance(n, str) for n in edge[:2])):
    raise LabelsError(f"{path}: edge {number} is {json.dumps(edge)}; expected [\"parent\", "
                      "\"child\"] or [\"parent\", \"child\", weight]")
  parent, child = edge[0], edge[1]
  for name in (parent, child):
    if name not in names:
      raise LabelsError(f"{path}: edge {number} ({parent} -> {child}) names {name!r}, which is "
                        f"not a concept of {labels_csv}; its concepts: {', '.join(names)}")
  weight = edge[2] if len(edge) == 3 else 1.0
  if (not isinstance(weight, numbers.Real) or isinstance(weight, bool)
      or not math.isfinite(weight) or weight == 0):
    raise LabelsError(f"{path}: edge {number} ({parent} -> {child}) has weight "
                      f"{json.dumps(weight)}; expected a finite non-zero number")
  return parent, child, float(weight)


def find_cycle(graph: np.ndarray, names: Sequence[str]) -> list[str]:
  """The first directed cycle of graph [k, k] (row -> column) as names, first node repeated at
  the end (['a', 'b', 'a']), searching depth first from each node in column order; [] if none."""
  children = [np.flatnonzero(row).tolist() for row in np.asarray(graph)]
  state = [0] * len(names)  # 0 unseen, 1 on the current path, 2 done

  def visit(node: int, path: list[int]) -> list[int]:
    state[node] = 1
    path.append(node)
    for child in children[node]:
      if state[child] == 1:
        return path[path.index(child):] + [child]
      if state[child] == 0:
        found = visit(child, path)
        if found:
          return found
    state[node] = 2
    path.pop()
    return []

  for start in range(len(names)):
    if state[start] == 0:
      found = visit(start, [])
      if found:
        return [names[i] for i in found]
  return []


def descendants(graph: np.ndarray, sources: Iterable[int]) -> set[int]:
  """Nodes reachable from `sources` along edges of graph [k, k] (row -> column), by a path of
  at least one edge."""
  graph = np.asarray(graph)
  found, frontier = set(), list(sources)
  while frontier:
    for child in np.flatnonzero(graph[frontier.pop()]).tolist():
      if child not in found:
        found.add(child)
        frontier.append(child)
  return found
