"""The pendulum as a labelled folder: PNGs + labels.csv (with the published split) + graph.json.

    write_pendulum_folder("~/data/pendulum")              # all 7,308 scenes, ~10 s
    write_pendulum_folder(tmp, stride=97)                 # every 97th scene (76), for tests

A folder written here is read like any labelled folder (`labelled_folder.py`); the registry's
`pendulum` data set renders one on first use into `pendulum_dir(config.data)`.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from PIL import Image
from tqdm.auto import tqdm

from gem_jax.data.data_dir import data_dir_of
from gem_jax.data.folder_labels import GRAPH_FILE, LABELS_FILE
from gem_jax.data.pendulum.render import render_scene
from gem_jax.data.pendulum.scm import (
  CONCEPTS,
  GRAPH_EDGES,
  NUM_SCENES,
  angle_degrees,
  concept_values,
  is_test,
  light_position,
  scene_grid,
)

FOLDER_NAME = "pendulum_folder"
# graph.json's "scm": the folder was rendered from the pendulum's structural equations, so a
# labelled folder read from it knows its counterfactuals (gem_jax/data/folder_spec.py).
SCM_NAME = "pendulum"  # under the tfds data_dir, unless config.data.image_dir is set


def pendulum_dir(data_config) -> Path:
  """Where config.data's pendulum folder lives: config.data.image_dir when set, else
  <config.data.data_dir or $TFDS_DATA_DIR or ~/tensorflow_datasets>/pendulum_folder."""
  image_dir = data_config.get("image_dir")
  folder = image_dir if image_dir else os.path.join(data_dir_of(data_config), FOLDER_NAME)
  return Path(folder).expanduser().absolute()


def scene_filename(angle_index: int, light_index: int) -> str:
  """'pendulum_a-40_l060.png': the scene's grid indices (scm.py)."""
  return f"pendulum_a{angle_index:+03d}_l{light_index:03d}.png"


def write_pendulum_folder(out_dir, *, size: int = 64, stride: int = 1,
                          max_images: int | None = None, progress: bool = False) -> Path:
  """Renders pendulum scenes into out_dir: PNGs, labels.csv and graph.json.

  Args:
    out_dir: the folder to create (absent or empty); it appears complete or not at all.
    size: image side in pixels.
    stride: render every stride-th scene of the generation order (1: all 7,308).
    max_images: at most this many of those (None: no limit).
    progress: show a tqdm progress bar.
  Returns:
    out_dir as an absolute Path.
  labels.csv has the columns filename, split (the published split of each scene, whatever
  the stride), then scm.CONCEPTS; graph.json has scm.GRAPH_EDGES.

  Raises:
    FileExistsError: out_dir holds files.
    ValueError: stride < 1 or max_images < 1.
  """
  out = Path(out_dir).expanduser().absolute()
  if out.exists() and any(out.iterdir()):
    raise FileExistsError(f"{out} already holds files; delete it or choose another folder")
  if stride < 1 or (max_images is not None and max_images < 1):
    raise ValueError(f"stride={stride} and max_images={max_images}: both must be >= 1")
  scenes = list(range(0, NUM_SCENES, stride))[:max_images]
  out.parent.mkdir(parents=True, exist_ok=True)
  partial = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
  try:
    _write(partial, scenes, size, progress)
    if out.exists():
      out.rmdir()  # empty, checked above
    partial.rename(out)
  finally:
    shutil.rmtree(partial, ignore_errors=True)
  return out


def _write(folder: Path, scenes: list[int], size: int, progress: bool) -> None:
  """The images, labels.csv and graph.json of `scenes` (generation indices) into folder."""
  angles, lights = scene_grid()
  values = concept_values(angle_degrees(angles[scenes]), light_position(lights[scenes]))
  splits = ["test" if t else "train" for t in is_test(scenes)]
  rows = []
  for k, scene in enumerate(tqdm(scenes, desc="pendulum", unit="image", disable=not progress)):
    name = scene_filename(int(angles[scene]), int(lights[scene]))
    Image.fromarray(render_scene(values[k, 0], values[k, 1], size)).save(folder / name)
    rows.append(",".join([name, splits[k]] + [repr(float(v)) for v in values[k]]))
  header = ",".join(("filename", "split") + CONCEPTS)
  (folder / LABELS_FILE).write_text("\n".join([header] + rows) + "\n", encoding="utf-8")
  edges = ",\n".join(f"  {json.dumps(list(edge))}" for edge in GRAPH_EDGES)
  (folder / GRAPH_FILE).write_text(
      f'{{"scm": "{SCM_NAME}",\n "edges": [\n{edges}\n]}}\n', encoding="utf-8")
