"""A labelled folder's labels.csv: where it is, what it says, and how it matches the images.

    filename,split,pendulum_angle,light_position        <- header: filename, optional split,
    sub/a_001.png,train,-36.0,17.27                        then one column per concept
    sub/a_002.png,test,-35.1,16.83

`filename` is the image's path relative to config.data.image_dir (POSIX '/'); `split` is
'train' or 'test' (any case); without a split column the images are split by path hash like
`image_folder` (`folder_split.split_files`). Every other column is a concept whose cells are
finite numbers (anything `float()` reads: 3, -0.5, 1e-3). Numbers become levels 0..5 by the
quantile rule of `levels.py` over the train rows. Every image under the folder needs exactly
one row and every row an image; each problem is one `LabelsError` naming the file, line,
column and value.
"""
from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path, PurePosixPath

import numpy as np

from gem_jax.data.errors import DataNotFoundError, LabelsError
from gem_jax.data.folder_split import split_files
from gem_jax.data.levels import level_edges, to_levels

LABELS_FILE = "labels.csv"
GRAPH_FILE = "graph.json"
SPLITS = ("train", "test")
RESERVED = ("filename", "split")
HEADER_FORMAT = "filename[,split],<concept>,<concept>,..."
_NAMED = 5  # files named in a message before '... and N more'


@dataclasses.dataclass(frozen=True)
class LabelPaths:
  """Absolute paths of a labelled folder and its files (graph_json None: no graph)."""

  image_dir: str
  labels_csv: str
  graph_json: str | None

  @classmethod
  def from_config(cls, data_config) -> "LabelPaths":
    """config.data.image_dir, .labels_csv (default <image_dir>/labels.csv) and .graph_json
    (default <image_dir>/graph.json when present), checked to exist; relative paths are read
    from the current directory.

    Raises:
      DataNotFoundError: image_dir unset or absent, the labels file absent, or a graph_json
        that is set but absent; each names the path and the key to set.
    """
    image_dir = data_config.get("image_dir")
    if not image_dir:
      raise DataNotFoundError("config.data.image_dir is not set; point it at a folder of images "
                              f"with a {LABELS_FILE} (docs/data.md, 'labelled_folder')")
    root = _absolute(image_dir)
    if not root.is_dir():
      raise DataNotFoundError(f"labelled folder {root} does not exist; point "
                              "config.data.image_dir at the folder of images and its labels")
    return cls(str(root), str(_labels_csv(root, data_config.get("labels_csv"))),
               _graph_json(root, data_config.get("graph_json")))


def _absolute(path) -> Path:
  return Path(path).expanduser().absolute()


def _labels_csv(root: Path, given) -> Path:
  path = _absolute(given) if given else root / LABELS_FILE
  if path.is_file():
    return path
  if given:
    raise DataNotFoundError(f"config.data.labels_csv={given}: no such file ({path})")
  raise DataNotFoundError(f"labelled folder {root} has no {LABELS_FILE}; write one (header "
                          f"{HEADER_FORMAT}; docs/data.md) or point config.data.labels_csv at it")


def _graph_json(root: Path, given) -> str | None:
  if not given:
    default = root / GRAPH_FILE
    return str(default) if default.is_file() else None
  path = _absolute(given)
  if not path.is_file():
    raise DataNotFoundError(f"config.data.graph_json={given}: no such file ({path}); leave it "
                            f"unset to read {root / GRAPH_FILE} when present")
  return str(path)


@dataclasses.dataclass(frozen=True)
class LabelTable:
  """The rows of labels.csv, in file order.

  Attributes:
    path: the file.
    names: the concept columns, in header order.
    filenames: each row's image, relative to the folder (normalised POSIX path).
    lines: each row's line in the file.
    splits: each row's split ('train' / 'test'), or None without a split column.
    values: the concepts' numbers float64 [N, len(names)].
  """

  path: str
  names: tuple[str, ...]
  filenames: tuple[str, ...]
  lines: tuple[int, ...]
  splits: tuple[str, ...] | None
  values: np.ndarray = dataclasses.field(compare=False)


def read_header(path) -> tuple[str, ...]:
  """The concept columns of a labels file (its header less filename and split).

  Raises:
    LabelsError: an empty file, no filename column, a blank or repeated column name, or no
      concept column.
  """
  with open(path, newline="", encoding="utf-8-sig") as f:
    header = next(csv.reader(f), None)
  return _concepts(path, header)


def _concepts(path, header) -> tuple[str, ...]:
  if not header:
    raise LabelsError(f"{path} is empty; its first line must be the header {HEADER_FORMAT}")
  header = [h.strip() for h in header]
  shown = ",".join(header)
  if "filename" not in header:
    raise LabelsError(f"{path}: the header '{shown}' has no 'filename' column; expected "
                      f"{HEADER_FORMAT}")
  repeated = sorted({h for h in header if header.count(h) > 1})
  if "" in header or repeated:
    what = "a blank column name" if "" in header else f"the column {repeated[0]!r} twice"
    raise LabelsError(f"{path}: the header '{shown}' has {what}")
  names = tuple(h for h in header if h not in RESERVED)
  if not names:
    raise LabelsError(f"{path}: the header '{shown}' has no concept column; expected "
                      f"{HEADER_FORMAT}")
  return names


def read_labels(path) -> LabelTable:
  """Every row of a labels file, checked: one row per filename, a known split, numbers.

  Raises:
    LabelsError: as `read_header`; a row with the wrong number of fields, an empty or repeated
      filename, a split other than train/test, a cell that is not a finite number, no rows.
  """
  with open(path, newline="", encoding="utf-8-sig") as f:
    reader = csv.reader(f)
    header = [h.strip() for h in next(reader, None) or []]
    names = _concepts(path, header)
    rows = [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
  if not rows:
    raise LabelsError(f"{path} has a header but no rows")
  first_line, filenames, splits, values = {}, [], [], []
  for line, row in rows:
    if len(row) != len(header):
      raise LabelsError(f"{path}:{line}: {len(row)} fields; the header has {len(header)} "
                        f"({','.join(header)})")
    cells = dict(zip(header, (cell.strip() for cell in row)))
    name = _filename(path, line, cells["filename"])
    if name in first_line:
      raise LabelsError(f"{path}:{line}: {name!r} already has a row (line {first_line[name]}); "
                        "give each image one row")
    first_line[name] = line
    filenames.append(name)
    if "split" in cells:
      splits.append(_split(path, line, name, cells["split"]))
    values.append([_number(path, line, name, c, cells[c]) for c in names])
  return LabelTable(str(path), names, tuple(filenames), tuple(first_line.values()),  # row order
                    tuple(splits) if "split" in header else None, np.asarray(values, np.float64))


def _filename(path, line: int, cell: str) -> str:
  if not cell:
    raise LabelsError(f"{path}:{line}: the filename is empty")
  return PurePosixPath(cell).as_posix()


def _split(path, line: int, name: str, cell: str) -> str:
  if cell.lower() in SPLITS:
    return cell.lower()
  raise LabelsError(f"{path}:{line}: split {cell!r} of {name!r}; expected 'train' or 'test' "
                    "(or no split column: the images are then split by path hash)")


def _number(path, line: int, name: str, column: str, cell: str) -> float:
  try:
    value = float(cell)
  except ValueError:
    value = math.nan
  if not math.isfinite(value):
    raise LabelsError(f"{path}:{line}: column {column!r} of {name!r} is {cell!r}, not a finite "
                      "number")
  return value


def check_images(table: LabelTable, files: list[str], root) -> None:
  """Every image under root (`files`, relative paths) has a row and every row an image.

  Raises:
    LabelsError: naming the images without a row (and how many), else the rows whose file is
      not an image under root.
  """
  rows, present = set(table.filenames), set(files)
  unlabelled = [f for f in files if f not in rows]
  if unlabelled:
    raise LabelsError(f"{table.path}: {len(unlabelled)} image(s) under {root} have no row: "
                      f"{_listing(unlabelled)}; add a row for each or move them out of the "
                      "folder")
  orphans = [f"{f!r} (line {line})" for f, line in zip(table.filenames, table.lines)
             if f not in present]
  if orphans:
    raise LabelsError(f"{table.path}: {len(orphans)} row(s) name no image under {root}: "
                      f"{_listing(orphans)}; fix the filename or delete the row")


def _listing(items: list[str]) -> str:
  shown = ", ".join(items[:_NAMED])
  return shown + (f" and {len(items) - _NAMED} more" if len(items) > _NAMED else "")


def split_rows(table: LabelTable, test_fraction: float) -> dict[str, list[int]]:
  """{split: row indices}: the split column, else `split_files` of the filenames (path hash);
  empty splits are left out (tfds cannot write them).

  Raises:
    LabelsError: no train row (the levels are quantiles of the train rows).
  """
  if table.splits is None:
    by_name = split_files(list(table.filenames), test_fraction)
    index = {f: i for i, f in enumerate(table.filenames)}
    rows = {s: sorted(index[f] for f in by_name.get(s, [])) for s in SPLITS}
  else:
    rows = {s: [i for i, split in enumerate(table.splits) if split == s] for s in SPLITS}
  if not rows["train"]:
    raise LabelsError(f"{table.path}: no row has split 'train'; the levels 0..5 are quantiles "
                      "of the train rows, so at least one is needed")
  return {s: members for s, members in rows.items() if members}


def table_levels(table: LabelTable, rows: dict[str, list[int]]) -> tuple[np.ndarray, np.ndarray]:
  """(levels int64 [N, k] of every row, edges float64 [5, k] from the train rows)."""
  edges = level_edges(table.values[rows["train"]])
  return to_levels(table.values, edges), edges
