"""Reads a PyTorch state dict (`torch.save(model.state_dict(), path)`) into numpy, without torch.

Two on-disk formats are understood:

* zip (torch >= 1.6, the default): a zip archive `<root>/data.pkl` (the pickled state dict),
  `<root>/data/<key>` (the raw bytes of each storage) and `<root>/byteorder`.
* legacy (`_use_new_zipfile_serialization=False`, and every file written by torch < 1.6): five
  pickles in a row (magic number, protocol version 1001, system info, the state dict, the list
  of storage keys), then for each storage key in that order an int64 element count and the raw
  little-endian bytes.

In both, tensors are pickled as `torch._utils._rebuild_tensor_v2(storage, offset, size,
stride, ...)` and storages as persistent ids `('storage', torch.<Type>Storage, key, location,
numel[, view])`. The unpickler here is restricted: it resolves only `collections.OrderedDict`,
`torch._utils._rebuild_tensor_v2` (and torch 0.4's `_rebuild_tensor`) and the `torch.*Storage`
types (to dtype markers), and raises `TorchCheckpointError` naming any other global, so a
checkpoint cannot run code on load.
"""
from __future__ import annotations

import collections
import dataclasses
import io
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
STORAGE_DTYPES = {
    "DoubleStorage": np.float64, "FloatStorage": np.float32, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class TorchCheckpointError(ValueError):
  """A file that is not a PyTorch state dict this reader can read safely."""


@dataclasses.dataclass(frozen=True)
class _StorageType:
  """Stands for `torch.<name>`: only its element dtype matters here."""
  name: str

  @property
  def dtype(self) -> np.dtype:
    return np.dtype(STORAGE_DTYPES[self.name])


@dataclasses.dataclass
class _Storage:
  """A storage as read from the file: `data` is filled once its bytes are read."""
  key: str
  dtype: np.dtype
  numel: int
  data: np.ndarray | None = None


@dataclasses.dataclass
class _LazyTensor:
  """A tensor whose storage bytes may come after the pickle (legacy format)."""
  storage: _Storage
  offset: int
  size: tuple[int, ...]
  stride: tuple[int, ...]

  def to_numpy(self) -> np.ndarray:
    """The tensor [*size] as a fresh C-contiguous numpy array."""
    flat = self.storage.data
    if min(self.size + self.stride, default=0) < 0:
      raise TorchCheckpointError(f"tensor with negative size or stride {list(self.size)}, "
                                 f"{list(self.stride)}")
    if 0 in self.size:
      return np.zeros(self.size, flat.dtype)
    last = self.offset + sum((s - 1) * t for s, t in zip(self.size, self.stride))
    if self.offset < 0 or last >= len(flat):
      raise TorchCheckpointError(f"tensor of size {list(self.size)} reaches past its storage "
                                 f"{self.storage.key!r} ({len(flat)} elements)")
    view = np.lib.stride_tricks.as_strided(
        flat[self.offset:], shape=self.size, strides=[t * flat.itemsize for t in self.stride])
    return np.array(view, order="C")


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
  """torch._utils._rebuild_tensor_v2 (torch >= 1.0); `_rebuild_tensor`, the 0.4 form, takes the
  first four arguments only."""
  del requires_grad, backward_hooks, metadata
  if not isinstance(storage, _Storage):
    raise TorchCheckpointError("_rebuild_tensor_v2 got no storage")
  return _LazyTensor(storage, int(storage_offset), tuple(map(int, size)),
                     tuple(map(int, stride)))


class _RestrictedUnpickler(pickle.Unpickler):
  """Resolves only the globals a state dict needs; storages become `_Storage` records."""

  def __init__(self, file, storages: dict[str, _Storage]):
    super().__init__(file)
    self.storages = storages

  def find_class(self, module: str, name: str):
    if (module, name) == ("collections", "OrderedDict"):
      return collections.OrderedDict
    if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
      return _rebuild_tensor_v2
    if module == "torch" and name in STORAGE_DTYPES:
      return _StorageType(name)
    raise TorchCheckpointError(
        f"the checkpoint refers to {module}.{name}, which this restricted reader does not "
        "load (only a plain state dict of tensors: collections.OrderedDict, "
        "torch._utils._rebuild_tensor_v2, torch.*Storage)")

  def persistent_load(self, pid):
    if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] in ("storage", b"storage")):
      raise TorchCheckpointError(f"unknown persistent id {pid!r:.80} (not a tensor storage)")
    storage_type, key, _, numel = pid[1:5]
    if not isinstance(storage_type, _StorageType):
      raise TorchCheckpointError(f"storage {key!r} has no storage type")
    if len(pid) > 5 and pid[5] is not None:
      raise TorchCheckpointError(f"storage {key!r} is a view; not supported")
    key = key.decode() if isinstance(key, bytes) else str(key)
    if key not in self.storages:
      self.storages[key] = _Storage(key, storage_type.dtype, int(numel))
    return self.storages[key]


def _materialise(obj) -> dict[str, np.ndarray]:
  if not isinstance(obj, dict):
    raise TorchCheckpointError(f"the checkpoint holds a {type(obj).__name__}, not a state dict")
  out = {}
  for key, value in obj.items():
    if not isinstance(value, _LazyTensor):
      raise TorchCheckpointError(f"entry {key!r} is a {type(value).__name__}, not a tensor")
    out[str(key)] = value.to_numpy()
  return out


def _read_zip(path: Path) -> dict[str, np.ndarray]:
  with zipfile.ZipFile(path) as archive:
    pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
    if len(pickles) != 1:
      raise TorchCheckpointError(f"{path} is a zip file without exactly one data.pkl: not a "
                                 "PyTorch checkpoint")
    root = pickles[0][:-len("data.pkl")]
    storages: dict[str, _Storage] = {}
    obj = _RestrictedUnpickler(io.BytesIO(archive.read(pickles[0])), storages).load()
    names = set(archive.namelist())
    order = (archive.read(f"{root}byteorder").decode() if f"{root}byteorder" in names
             else "little")
    for s in storages.values():
      dtype = s.dtype.newbyteorder("<" if order == "little" else ">")
      raw = archive.read(f"{root}data/{s.key}")
      s.data = _from_bytes(raw, dtype, s)
  return _materialise(obj)


def _from_bytes(raw: bytes, dtype: np.dtype, storage: _Storage) -> np.ndarray:
  if len(raw) < storage.numel * dtype.itemsize:
    raise TorchCheckpointError(f"storage {storage.key!r} holds {len(raw)} bytes; "
                               f"{storage.numel} x {dtype.itemsize} expected (truncated file?)")
  data = np.frombuffer(raw, dtype, count=storage.numel)
  return data.astype(dtype.newbyteorder("="))


def _read_legacy(path: Path) -> dict[str, np.ndarray]:
  with open(path, "rb") as f:
    header = []
    for _ in range(3):
      header.append(_RestrictedUnpickler(f, {}).load())
    if header[0] != LEGACY_MAGIC or header[1] != LEGACY_PROTOCOL:
      raise TorchCheckpointError(f"{path} is neither a zip nor a legacy (protocol "
                                 f"{LEGACY_PROTOCOL}) PyTorch checkpoint")
    storages: dict[str, _Storage] = {}
    obj = _RestrictedUnpickler(f, storages).load()
    keys = _RestrictedUnpickler(f, {}).load()
    for key in keys:
      if key not in storages:
        raise TorchCheckpointError(f"storage {key!r} is listed but never used")
      s = storages[key]
      (numel,) = struct.unpack("<q", f.read(8))
      if numel != s.numel:
        raise TorchCheckpointError(f"storage {key!r} holds {numel} elements; {s.numel} "
                                   "expected")
      # Legacy storages are written little-endian.
      s.data = _from_bytes(f.read(numel * s.dtype.itemsize), s.dtype.newbyteorder("<"), s)
  missing = [k for k, s in storages.items() if s.data is None]
  if missing:
    raise TorchCheckpointError(f"storage {missing[0]!r} has no data in {path}")
  return _materialise(obj)


def read_state_dict(path: str | Path) -> dict[str, np.ndarray]:
  """A PyTorch state dict file (zip or legacy format) -> {name: numpy array}, torch's layout.

  Raises:
    TorchCheckpointError: for another kind of file, a global other than a tensor's or a
      storage's (nothing else is ever imported or called), or truncated storage data.
  """
  path = Path(path)
  with open(path, "rb") as f:
    head = f.read(4)
  try:
    if zipfile.is_zipfile(path):
      return _read_zip(path)
    if head.startswith(b"PK"):
      raise TorchCheckpointError(f"{path} starts like a zip archive but is not a readable one "
                                 "(truncated or damaged download?)")
    if not head.startswith(b"\x80"):
      raise TorchCheckpointError(f"{path} is neither a zip nor a legacy PyTorch checkpoint "
                                 f"(first bytes {head!r})")
    return _read_legacy(path)
  except (pickle.UnpicklingError, EOFError, struct.error, zipfile.BadZipFile, KeyError) as e:
    raise TorchCheckpointError(f"{path} is not a readable PyTorch checkpoint: "
                               f"{type(e).__name__}: {e}") from e
