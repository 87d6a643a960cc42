"""The package layout (docs/design.md, "Layout"): data flows one way, imports sit at the top.

Each package of gem_jax imports only from packages in lower layers (or from itself); nothing in
gem_jax imports `experiments`; no module imports form a cycle; project imports are at module
top, in the library and in experiments/ (lazy imports only for the optional third-party
clients and TensorFlow, see gem_jax/data/tf_cpu.py); no library file is over 450 lines.
"""
import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
PACKAGE = ROOT / "gem_jax"

# Bottom to top. A package may import from its own layer's package and any lower layer.
LAYERS = (
    ("xla_flags", "plots", "files"),
    ("stages",),
    ("data",),
    ("relations",),
    ("models",),
    ("objectives",),
    ("train",),
    ("trained_model",),
    ("scorers",),
    ("scoring",),
    ("metrics",),
    ("config_checks",),
    ("evaluation", "pipeline_figures", "pipeline_settings"),
    ("gem_pipeline",),
    ("graph_benchmark",),
    ("preflight",),
    ("__init__",),
)
# Optional third-party clients (and aiohttp, an optional transport of google-genai); TensorFlow
# and tfds, loaded on first use by gem_jax/data/tf_cpu.py only (see its docstring).
LAZY_ALLOWED = ("openai", "google", "keras", "matplotlib", "aiohttp", "tensorflow", "torch",
                "tensorflow_datasets")
MAX_LINES = 450


def _module_name(path: Path) -> str:
  parts = list(path.relative_to(ROOT).with_suffix("").parts)
  if parts[-1] == "__init__":
    parts = parts[:-1]
  return ".".join(parts)


def _imports(path: Path) -> list[tuple[str, bool, int]]:
  """(imported module, at module top?, line) for every import in `path`."""
  tree = ast.parse(path.read_text())
  top = {id(node) for node in tree.body}
  is_package = path.name == "__init__.py"
  here = _module_name(path).split(".")
  out = []
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      out += [(alias.name, id(node) in top, node.lineno) for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
      if node.level:
        base = here if is_package else here[:-1]
        base = base[:len(base) - node.level + 1]
        module = ".".join(base + ([node.module] if node.module else []))
      else:
        module = node.module
      names = [f"{module}.{a.name}" for a in node.names]
      out += [(n, id(node) in top, node.lineno) for n in names]
  return out


def _sources() -> dict[str, Path]:
  return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
  """The gem_jax module `name` refers to ('gem_jax.models.VAE' -> 'gem_jax.models')."""
  while name and name not in modules:
    name = name.rpartition(".")[0]
  return name or None


def _project_graph() -> dict[str, set[str]]:
  modules = _sources()
  graph = {}
  for name, path in modules.items():
    graph[name] = {target for imported, _, _ in _imports(path)
                   if imported.startswith("gem_jax")
                   and (target := _resolve(imported, modules)) and target != name}
  return graph


def _layer_of(module: str) -> int:
  parts = module.split(".")
  top = parts[1] if len(parts) > 1 else "__init__"
  for i, layer in enumerate(LAYERS):
    if top in layer:
      return i
  raise AssertionError(f"{module} belongs to no layer of tests/test_layering.py: add its "
                       "package to LAYERS (and to the README's Layout section)")


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
  """Strongly connected components with more than one module (Tarjan)."""
  index, low, stack, on_stack, out = {}, {}, [], set(), []

  def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in graph.get(v, ()):
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      component = []
      while True:
        w = stack.pop()
        on_stack.discard(w)
        component.append(w)
        if w == v:
          break
      if len(component) > 1:
        out.append(sorted(component))

  for v in sorted(graph):
    if v not in index:
      visit(v)
  return out


def test_cycle_finder_finds_a_cycle():
  assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
  assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_modules():
  assert _cycles(_project_graph()) == []


def test_packages_import_only_from_lower_layers():
  wrong = [f"{src} -> {dst}" for src, targets in _project_graph().items() for dst in targets
           if _layer_of(dst) > _layer_of(src)
           or (_layer_of(dst) == _layer_of(src) and src.split(".")[:2] != dst.split(".")[:2]
               and src != "gem_jax")]
  assert wrong == []


def test_the_library_never_imports_experiments():
  found = [f"{name}:{line}" for name, path in _sources().items()
           for imported, _, line in _imports(path) if imported.split(".")[0] == "experiments"]
  assert found == []


def test_imports_are_at_module_top():
  paths = [*_sources().values(), *sorted((ROOT / "experiments").rglob("*.py"))]
  lazy = [f"{path.relative_to(ROOT)}:{line} {imported}" for path in paths
          for imported, at_top, line in _imports(path)
          if not at_top and imported.split(".")[0] not in LAZY_ALLOWED]
  assert lazy == []


def test_no_library_file_is_over_the_line_limit():
  long = {str(p.relative_to(ROOT)): n for p in PACKAGE.rglob("*.py")
          if (n := len(p.read_text().splitlines())) > MAX_LINES}
  assert long == {}


def test_importing_the_library_does_not_load_tensorflow():
  # TensorFlow loads on first data use (gem_jax/data/tf_cpu.py): sampling a checkpoint or
  # timing the train step never needs it.
  code = ("import sys, gem_jax, gem_jax.gem_pipeline, gem_jax.evaluation, gem_jax.train; "
          "print(sorted(m for m in ('tensorflow', 'tensorflow_datasets') if m in sys.modules))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       cwd=ROOT, env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert out.stdout.strip() == "[]"
