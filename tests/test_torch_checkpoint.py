"""The torch-free PyTorch checkpoint reader (gem_jax/metrics/torch_checkpoint.py) on files written
here the way `torch.save` writes them (torch's pickle globals, persistent storage ids, the zip
and the legacy layouts) without torch, so that every path of the reader, its refusals included,
is tested where torch is not installed (tests/test_fid_inception.py compares with torch.save
itself where it is)."""
import collections
import io
import pickle
import struct
import sys
import types
import zipfile

import numpy as np
import pytest

from gem_jax.metrics import torch_checkpoint as tc
from gem_jax.metrics.torch_checkpoint import TorchCheckpointError

STORAGE_NAMES = {np.dtype(v).name: k for k, v in tc.STORAGE_DTYPES.items()}


class _Storage:
  """One torch storage while pickling: `key` and its flat elements."""

  def __init__(self, key: str, flat: np.ndarray):
    self.key, self.flat = key, np.ascontiguousarray(flat).ravel()


class _Tensor:
  """Pickles as torch does: _rebuild_tensor_v2(storage, offset, size, stride, ...)."""

  def __init__(self, rebuild, storage, offset=0, size=None, stride=None):
    size = tuple(storage.flat.shape if size is None else size)
    stride = tuple(np.cumprod((1,) + size[:0:-1])[::-1]) if stride is None else stride
    self.args = (storage, offset, size, tuple(int(s) for s in stride))
    self.rebuild = rebuild

  def __reduce__(self):
    if self.rebuild.__name__ == "_rebuild_tensor":   # torch 0.4: four arguments
      return self.rebuild, self.args
    return self.rebuild, self.args + (False, collections.OrderedDict())


@pytest.fixture()
def torch(monkeypatch):
  """A stand-in `torch` module holding just the globals a state dict pickles."""
  torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")
  for name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
    function = lambda *args: None   # never called: only pickled by reference
    function.__module__, function.__name__, function.__qualname__ = "torch._utils", name, name
    setattr(utils, name, function)
  for name in tc.STORAGE_DTYPES:
    setattr(torch, name, type(name, (), {"__module__": "torch", "__qualname__": name}))
  torch._utils = utils
  monkeypatch.setitem(sys.modules, "torch", torch)
  monkeypatch.setitem(sys.modules, "torch._utils", utils)
  return torch


class _Pickler(pickle.Pickler):
  def __init__(self, file, torch, pid=None):
    super().__init__(file, protocol=2)
    self.torch, self.pid = torch, pid

  def persistent_id(self, obj):
    if not isinstance(obj, _Storage):
      return None
    storage_type = getattr(self.torch, STORAGE_NAMES[obj.flat.dtype.name])
    default = ("storage", storage_type, obj.key, "cpu", obj.flat.size)
    return default if self.pid is None else self.pid(obj, default)


def _pickled(obj, torch, pid=None) -> bytes:
  buf = io.BytesIO()
  _Pickler(buf, torch, pid).dump(obj)
  return buf.getvalue()


def _storages(obj) -> list[_Storage]:
  seen = {}
  for value in (obj.values() if isinstance(obj, dict) else obj):
    if isinstance(value, _Tensor):
      seen.setdefault(value.args[0].key, value.args[0])
  return list(seen.values())


def _write_zip(path, obj, torch, byteorder="little", pid=None, extra=()):
  with zipfile.ZipFile(path, "w") as z:
    z.writestr("archive/data.pkl", _pickled(obj, torch, pid))
    if byteorder is not None:
      z.writestr("archive/byteorder", byteorder)
    for s in _storages(obj):
      dtype = s.flat.dtype.newbyteorder("<" if byteorder != "big" else ">")
      z.writestr(f"archive/data/{s.key}", s.flat.astype(dtype).tobytes())
    for name, data in extra:
      z.writestr(name, data)


def _write_legacy(path, obj, torch, keys=None, numel=None, magic=tc.LEGACY_MAGIC, pid=None):
  storages = {s.key: s for s in _storages(obj)}
  keys = list(storages) if keys is None else keys
  with open(path, "wb") as f:
    for header in (magic, tc.LEGACY_PROTOCOL, {"little_endian": True}):
      pickle.dump(header, f, protocol=2)
    f.write(_pickled(obj, torch, pid))
    pickle.dump(keys, f, protocol=2)
    for key in keys:
      s = storages[key]
      f.write(struct.pack("<q", s.flat.size if numel is None else numel))
      f.write(s.flat.astype(s.flat.dtype.newbyteorder("<")).tobytes())


def _state(torch, rebuild="_rebuild_tensor_v2"):
  """A state dict of tensors of several dtypes, a transposed view, an offset slice, a scalar
  and an empty tensor; and the arrays they hold."""
  rebuild = getattr(torch._utils, rebuild)
  rng = np.random.default_rng(0)
  a = _Storage("0", rng.normal(size=60).astype(np.float32))
  b = _Storage("1", rng.normal(size=42).astype(np.float64))
  c = _Storage("2", np.arange(10, dtype=np.int64))
  h = _Storage("3", rng.normal(size=4).astype(np.float16))
  m = _Storage("4", np.array([True, False, True]))
  e = _Storage("5", np.zeros(0, np.float32))
  state = collections.OrderedDict([
      ("a", _Tensor(rebuild, a, size=(3, 4, 5))),
      ("b", _Tensor(rebuild, b, size=(7, 6), stride=(1, 7))),   # a transpose
      ("c", _Tensor(rebuild, c, offset=2, size=(6,))),
      ("n", _Tensor(rebuild, c, offset=5, size=(), stride=())),
      ("h", _Tensor(rebuild, h)),
      ("m", _Tensor(rebuild, m)),
      ("e", _Tensor(rebuild, e, size=(0, 3), stride=(3, 1)))])
  want = {"a": a.flat.reshape(3, 4, 5), "b": b.flat.reshape(6, 7).T, "c": c.flat[2:8],
          "n": np.array(5), "h": h.flat, "m": m.flat, "e": np.zeros((0, 3), np.float32)}
  return state, want


@pytest.mark.parametrize("layout", ["zip", "zip-big-endian", "zip-no-byteorder", "legacy"])
def test_round_trip(torch, tmp_path, layout):
  state, want = _state(torch)
  path = tmp_path / "x.pth"
  if layout == "legacy":
    _write_legacy(path, state, torch)
  else:
    byteorder = {"zip": "little", "zip-big-endian": "big", "zip-no-byteorder": None}[layout]
    _write_zip(path, state, torch, byteorder)
  got = tc.read_state_dict(path)
  assert list(got) == list(want)
  for key, value in want.items():
    assert got[key].dtype == value.dtype and got[key].dtype.isnative, key
    assert got[key].shape == value.shape and got[key].flags.c_contiguous, key
    np.testing.assert_array_equal(got[key], value, err_msg=key)


def test_torch_0_4_rebuild_tensor(torch, tmp_path):
  state, want = _state(torch, rebuild="_rebuild_tensor")
  _write_zip(tmp_path / "x.pth", state, torch)
  np.testing.assert_array_equal(tc.read_state_dict(tmp_path / "x.pth")["a"], want["a"])


def _global(module: str, name: str) -> bytes:
  """A pickle of the global module.name alone (protocol 0's GLOBAL opcode)."""
  return f"c{module}\n{name}\n.".encode()


@pytest.mark.parametrize("module, name", [
    ("collections", "Counter"), ("builtins", "OrderedDict"), ("torch._utils", "_rebuild_parameter"),
    ("torch", "load"), ("torch.nn", "FloatStorage"), ("numpy", "_rebuild_tensor_v2")])
def test_any_other_global_is_refused_by_name(tmp_path, module, name):
  with zipfile.ZipFile(tmp_path / "x.pth", "w") as z:
    z.writestr("archive/data.pkl", _global(module, name))
  with pytest.raises(TorchCheckpointError) as info:
    tc.read_state_dict(tmp_path / "x.pth")
  assert str(info.value) == (
      f"the checkpoint refers to {module}.{name}, which this restricted reader does not load "
      "(only a plain state dict of tensors: collections.OrderedDict, "
      "torch._utils._rebuild_tensor_v2, torch.*Storage)")


def _refused(path, message: str):
  with pytest.raises(TorchCheckpointError) as info:
    tc.read_state_dict(path)
  assert str(info.value) == message.format(path=path)


def test_storage_ids_that_are_not_plain_storages(torch, tmp_path):
  state, _ = _state(torch)
  path = tmp_path / "x.pth"
  cases = [
      (lambda s, d: ("file", s.key), "unknown persistent id ('file', '0') (not a tensor storage)"),
      (lambda s, d: ("storage",) + d[1:4], "unknown persistent id ('storage', "
       "_StorageType(name='FloatStorage'), '0', 'cpu') (not a tensor storage)"),
      (lambda s, d: "storage", "unknown persistent id 'storage' (not a tensor storage)"),
      (lambda s, d: ("storage", "FloatStorage") + d[2:], "storage '0' has no storage type"),
      (lambda s, d: d + ((s.key, 0, 4),), "storage '0' is a view; not supported"),
  ]
  for pid, message in cases:
    _write_zip(path, state, torch, pid=pid)
    _refused(path, message)
  _write_zip(path, state, torch, pid=lambda s, d: d + (None,))   # an explicit 'no view'
  assert list(tc.read_state_dict(path)) == list(state)


def test_the_legacy_layout_is_checked(torch, tmp_path):
  state, _ = _state(torch)
  path = tmp_path / "x.pth"
  _write_legacy(path, state, torch, magic=tc.LEGACY_MAGIC + 1)
  _refused(path, "{path} is neither a zip nor a legacy (protocol 1001) PyTorch checkpoint")
  _write_legacy(path, state, torch, keys=["0", "1", "2", "3", "4"])   # storage '5' left out
  _refused(path, "storage '5' has no data in {path}")
  _write_legacy(path, {"a": state["a"]}, torch, numel=59)
  _refused(path, "storage '0' holds 59 elements; 60 expected")
  one = {"a": state["a"]}
  _write_legacy(path, one, torch)
  with open(path, "r+b") as f:
    f.truncate(path.stat().st_size - 4)
  _refused(path, "storage '0' holds 236 bytes; 60 x 4 expected (truncated file?)")
  data = path.read_bytes()
  keys_at = data.rindex(pickle.dumps(["0"], protocol=2))
  path.write_bytes(data[:keys_at] + pickle.dumps(["9"], protocol=2))
  _refused(path, "storage '9' is listed but never used")


def test_zip_archives_without_one_data_pickle(torch, tmp_path):
  path = tmp_path / "x.pth"
  with zipfile.ZipFile(path, "w") as z:
    z.writestr("archive/weights.bin", b"")
  _refused(path, "{path} is a zip file without exactly one data.pkl: not a PyTorch checkpoint")
  state, want = _state(torch)
  _write_zip(path, state, torch, extra=[("other/data.pkl", b"")])
  _refused(path, "{path} is a zip file without exactly one data.pkl: not a PyTorch checkpoint")
  with zipfile.ZipFile(path, "w") as z:   # a pickle at the archive's root
    z.writestr("data.pkl", _pickled({"a": state["a"]}, torch))
    z.writestr("data/0", state["a"].args[0].flat.tobytes())
  np.testing.assert_array_equal(tc.read_state_dict(path)["a"], want["a"])


def test_tensors_and_state_dicts_that_do_not_fit(torch, tmp_path):
  state, _ = _state(torch)
  path = tmp_path / "x.pth"
  rebuild, storage = torch._utils._rebuild_tensor_v2, state["a"].args[0]
  for tensor, message in (
      (_Tensor(rebuild, storage, offset=1, size=(60,)),
       "tensor of size [60] reaches past its storage '0' (60 elements)"),
      (_Tensor(rebuild, storage, offset=-1, size=(3,)),
       "tensor of size [3] reaches past its storage '0' (60 elements)"),
      (_Tensor(rebuild, storage, size=(3,), stride=(-1,)),
       "tensor with negative size or stride [3], [-1]"),
      (_Tensor(rebuild, storage, size=(-1,), stride=(1,)),
       "tensor with negative size or stride [-1], [1]")):
    _write_zip(path, {"t": tensor}, torch)
    _refused(path, message)
  _write_zip(path, [state["a"]], torch)
  _refused(path, "the checkpoint holds a list, not a state dict")
  _write_zip(path, {"a": state["a"], "step": 3}, torch)
  _refused(path, "entry 'step' is a int, not a tensor")
  with zipfile.ZipFile(path, "w") as z:
    z.writestr("archive/data.pkl", pickle.dumps(None, protocol=2)[:2] + b"ctorch._utils\n"
               b"_rebuild_tensor_v2\n(K\x01K\x00)K\x00tR.")
  _refused(path, "_rebuild_tensor_v2 got no storage")


def test_a_damaged_pickle_is_named(torch, tmp_path):
  state, _ = _state(torch)
  path = tmp_path / "x.pth"
  with zipfile.ZipFile(path, "w") as z:
    z.writestr("archive/data.pkl", _pickled({"a": state["a"]}, torch)[:-9])
  with pytest.raises(TorchCheckpointError, match=r"^.*x\.pth is not a readable PyTorch "
                     r"checkpoint: (UnpicklingError|EOFError): "):
    tc.read_state_dict(path)
