"""Executes the notebooks with the tiny preset so they cannot rot."""
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow  # executes the notebook

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name, checkpoints", [
    ("quickstart.ipynb", "checkpoints"),          # one training run
    ("gem_walkthrough.ipynb", "gem/checkpoints"),  # the GEM pipeline: warmup/, ..., gem/
])
def test_notebook_runs(name, checkpoints, tfds_dir, tmp_path, monkeypatch):
  monkeypatch.setenv("GEM_JAX_NOTEBOOK_PRESET", "tiny")
  monkeypatch.setenv("GEM_JAX_NOTEBOOK_WORKDIR", str(tmp_path / "run"))
  monkeypatch.setenv("TFDS_DATA_DIR", tfds_dir)
  monkeypatch.setenv("PYTHONPATH", str(ROOT))
  notebook = nbformat.read(ROOT / "notebooks" / name, as_version=4)
  NotebookClient(notebook, timeout=600, kernel_name="python3",
                 resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
  assert (tmp_path / "run" / checkpoints).is_dir()
