"""The standard FID network in Flax (gem_jax/metrics/fid_inception.py), its weights file checks
and the torch-free PyTorch checkpoint reader.

The tests at the end compare the network with pytorch-fid's own on the same weights, and run
only where torch and pytorch-fid are installed (`make install-fid-test`); elsewhere they are
skipped with the reason. pytorch-fid's side runs in its own process
(tests/pytorch_fid_reference.py): torchvision cannot be imported after TensorFlow.
"""
import collections
import hashlib
import importlib.util
import io
import json
import logging
import os
import pickle
import struct
import subprocess
import sys
import types
import zipfile
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import traverse_util

from gem_jax.evaluation import make_extractor
from gem_jax.metrics import features as feats_lib
from gem_jax.metrics import fid_inception, torch_checkpoint
from gem_jax.metrics.fid import frechet_distance

# sum(p.numel() for n, p in pytorch_fid.inception.fid_inception_v3().named_parameters()
#     if not n.startswith("fc.")): conv kernels + BN scales and biases; and the BN buffers.
TORCH_PARAM_COUNT = 21_785_568
TORCH_BN_BUFFER_COUNT = 34_432
SKIP_REASON = ("torch / pytorch-fid not installed: the equality test against pytorch-fid's "
               "network needs `make install-fid-test` (setup.cfg extra fid-test)")


def _random_variables(seed: int = 0) -> dict:
  """Random Flax variables of the network (He-scaled kernels, non-trivial BN), no compile."""
  rng = np.random.default_rng(seed)
  flat = {}
  for path, s in traverse_util.flatten_dict(fid_inception.variable_shapes()).items():
    leaf = path[-1]
    if leaf == "kernel":
      fan_in = int(np.prod(s.shape[:3]))
      flat[path] = (rng.standard_normal(s.shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
    elif leaf in ("scale", "var"):
      flat[path] = rng.uniform(0.5, 1.5, s.shape).astype(np.float32)
    else:
      flat[path] = rng.normal(0.0, 0.1, s.shape).astype(np.float32)
  return traverse_util.unflatten_dict(flat)


def _torch_state_dict(variables: dict) -> dict:
  """The Flax variables as pytorch-fid's state dict (torch layout, names and extras)."""
  out = {}
  for path, v in traverse_util.flatten_dict(variables).items():
    key = fid_inception._torch_key(path)
    out[key] = np.transpose(v, (3, 2, 0, 1)) if path[-1] == "kernel" else v
    if key.endswith("bn.weight"):
      out[key[:-len("weight")] + "num_batches_tracked"] = np.zeros((), np.int64)
  out["fc.weight"], out["fc.bias"] = np.zeros((1008, 2048)), np.zeros(1008)
  return out


# ------------------------------------------------------------------------------ the network

def test_parameter_count_equals_pytorch_fids_network():
  shapes = fid_inception.variable_shapes()
  assert sum(x.size for x in jax.tree.leaves(shapes["params"])) == TORCH_PARAM_COUNT
  assert sum(x.size for x in jax.tree.leaves(shapes["batch_stats"])) == TORCH_BN_BUFFER_COUNT
  assert fid_inception.PARAM_COUNT == TORCH_PARAM_COUNT


def test_network_at_299_gives_2048_features_batched_and_trimmed():
  extractor = feats_lib.FIDInceptionFeatures(_random_variables(), batch_size=2)
  images = np.random.default_rng(0).integers(0, 256, (3, 299, 299, 3), dtype=np.uint8)
  out = extractor(images)   # batches of 2: the second padded with zeros and trimmed
  assert out.shape == (3, 2048) and out.dtype == np.float32 and np.isfinite(out).all()
  assert (out >= 0).all() and out.std() > 0   # ReLU then the average pool
  assert isinstance(extractor, feats_lib.FeatureExtractor) and extractor.dim == 2048
  assert extractor(images[:0]).shape == (0, 2048)
  with pytest.raises(ValueError, match=r"expects uint8 images \[N, H, W, 3\]"):
    extractor(images.astype(np.float32))


def test_tf_average_pool_does_not_count_the_padding():
  ones = jnp.ones((1, 5, 6, 2))
  np.testing.assert_allclose(fid_inception._avg_pool_3x3(ones), ones, rtol=0, atol=1e-7)


def _numpy_bilinear(x: np.ndarray, out: int) -> np.ndarray:
  """torch's F.interpolate(mode='bilinear', align_corners=False) written out per output pixel:
  [N, H, W, C] -> [N, out, out, C]. As in torch's CPU kernel, scale = float32(in / out) and the
  source coordinate scale * (i + 0.5) - 0.5 is rounded once to float32 (clamped at 0); the
  blend is in float64."""
  def taps(n_in):
    scale = float(np.float32(n_in / out))
    res = []
    for i in range(out):
      src = max(float(np.float32(scale * (i + 0.5) - 0.5)), 0.0)
      i0 = min(int(np.floor(src)), n_in - 1)
      res.append((i0, min(i0 + 1, n_in - 1), src - i0))
    return res
  x = x.astype(np.float64)
  y = np.zeros((x.shape[0], out, out, x.shape[3]))
  for r, (h0, h1, lh) in enumerate(taps(x.shape[1])):
    for c, (w0, w1, lw) in enumerate(taps(x.shape[2])):
      y[:, r, c] = ((1 - lh) * ((1 - lw) * x[:, h0, w0] + lw * x[:, h0, w1])
                    + lh * ((1 - lw) * x[:, h1, w0] + lw * x[:, h1, w1]))
  return y


@pytest.mark.parametrize("height, width", [(64, 64), (512, 512), (37, 400)])
def test_resize_is_torchs_bilinear_without_antialiasing(height, width):
  x = np.random.default_rng(1).random((2, height, width, 3)).astype(np.float32)
  got = np.asarray(jax.jit(fid_inception.resize_bilinear)(x))
  assert got.shape == (2, 299, 299, 3)
  np.testing.assert_allclose(got, _numpy_bilinear(x, 299), rtol=0, atol=1e-6)
  if height == width:   # jax.image agrees up to its own float32 coordinates (~ulp(height))
    scale = jnp.array([299 / height, 299 / width])
    ref = jax.image.scale_and_translate(x, (2, 299, 299, 3), (1, 2), scale, jnp.zeros(2),
                                        "linear", antialias=False)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-4)
    if height < 299:
      ref = jax.image.resize(x, (2, 299, 299, 3), "bilinear")
      np.testing.assert_allclose(got, ref, rtol=0, atol=1e-4)


# ---------------------------------------------------------------- state dict -> variables

def test_variables_from_torch_transposes_kernels_and_ignores_fc():
  variables = _random_variables(2)
  got = fid_inception.variables_from_torch(_torch_state_dict(variables))
  for (path, want), (path2, have) in zip(sorted(traverse_util.flatten_dict(variables).items()),
                                         sorted(traverse_util.flatten_dict(got).items()),
                                         strict=True):
    assert path == path2
    np.testing.assert_array_equal(have, want)


def test_variables_from_torch_names_the_first_wrong_key():
  state = _torch_state_dict(_random_variables(3))
  missing = dict(state)
  del missing["Mixed_6b.branch7x7_2.conv.weight"]
  with pytest.raises(ValueError, match=r"lacks 'Mixed_6b.branch7x7_2.conv.weight'"):
    fid_inception.variables_from_torch(missing)
  wrong = dict(state)
  wrong["Mixed_6b.branch7x7_2.conv.weight"] = np.zeros((128, 128, 7, 1), np.float32)
  with pytest.raises(ValueError, match=r"'Mixed_6b.branch7x7_2.conv.weight' has shape "
                     r"\[128, 128, 7, 1\]; .* needs \[128, 128, 1, 7\]"):
    fid_inception.variables_from_torch(wrong)
  extra = {**state, "AuxLogits.conv0.conv.weight": np.zeros((128, 768, 1, 1))}
  with pytest.raises(ValueError, match=r"1 entries .* \(first: 'AuxLogits.conv0.conv.weight'"):
    fid_inception.variables_from_torch(extra)


# --------------------------------------------------------------------- weights file checks

def test_missing_weights_file_names_the_file_and_the_url(tmp_path):
  path = tmp_path / "nope.pth"
  with pytest.raises(FileNotFoundError) as err:
    feats_lib.FIDInceptionFeatures.from_file(path)
  msg = str(err.value)
  assert str(path) in msg and feats_lib.FID_WEIGHTS_FILE in msg and feats_lib.FID_WEIGHTS_URL \
      in msg
  assert feats_lib.FID_WEIGHTS_URL == ("https://github.com/mseitzer/pytorch-fid/releases/"
                                       "download/fid_weights/pt_inception-2015-12-05-"
                                       "6726825d.pth")


def test_wrong_or_truncated_weights_file_names_both_digests(tmp_path):
  path = tmp_path / feats_lib.FID_WEIGHTS_FILE
  path.write_bytes(b"\x80\x02 the first bytes of a truncated download")
  actual = hashlib.sha256(path.read_bytes()).hexdigest()
  with pytest.raises(feats_lib.WeightsChecksumError) as err:
    feats_lib.FIDInceptionFeatures.from_file(path)
  msg = str(err.value)
  assert str(path) in msg and "6726825d" in msg and actual in msg and feats_lib.FID_WEIGHTS_URL \
      in msg
  pinned = "ab" * 32
  with pytest.raises(feats_lib.WeightsChecksumError, match=f"expected sha256 {pinned}.*{actual}"):
    feats_lib.FIDInceptionFeatures.from_file(path, expected_sha256=pinned)
  # A pinned digest that matches passes the check; then the reader refuses the content.
  with pytest.raises(torch_checkpoint.TorchCheckpointError, match=str(path)):
    feats_lib.FIDInceptionFeatures.from_file(path, expected_sha256=actual.upper())


def test_a_weights_file_that_checks_is_read_and_its_digest_logged(tmp_path, monkeypatch, caplog):
  path = tmp_path / "w.pth"
  path.write_bytes(b"weights")
  digest = hashlib.sha256(b"weights").hexdigest()
  read = []
  monkeypatch.setattr(torch_checkpoint, "read_state_dict", lambda p: read.append(p) or {"s": 1})
  monkeypatch.setattr(fid_inception, "variables_from_torch",
                      lambda state: {"marker": np.arange(3) + state["s"]})
  with caplog.at_level(logging.INFO):
    pinned = feats_lib.FIDInceptionFeatures.from_file(path, expected_sha256=digest)
  assert read == [path] and (pinned.batch_size, pinned.sha256) == (50, digest)
  np.testing.assert_array_equal(pinned.variables["marker"], [1, 2, 3])
  assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
      (logging.INFO, f"FID Inception weights {path}: sha256 {digest}")]
  caplog.clear()
  monkeypatch.setattr(feats_lib, "FID_WEIGHTS_SHA256_PREFIX", digest[:8])
  with caplog.at_level(logging.INFO):
    feats_lib.FIDInceptionFeatures.from_file(path, batch_size=7)
  assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
      (logging.WARNING, f"FID Inception weights {path}: sha256 {digest} (only its prefix "
       f"{digest[:8]} is published and was checked; pin the full digest with expected_sha256 / "
       "eval.fid_weights_sha256)")]


def test_make_extractor_prefers_fid_weights(tmp_path):
  eval_config = ml_collections.ConfigDict(dict(
      fid_weights=str(tmp_path / "fid.pth"), fid_weights_sha256=None,
      inception_weights=str(tmp_path / "keras.h5"), extractor_steps=1, extractor_examples=1))
  with pytest.raises(FileNotFoundError, match="pt_inception-2015-12-05-6726825d.pth"):
    make_extractor(None, eval_config, str(tmp_path))


def test_only_the_fid_network_is_labelled_fid():
  assert feats_lib.metric_label("fid_inception_v3") == "FID"
  assert feats_lib.metric_label("fid_inception_v3", "kd") == "KID"
  assert feats_lib.metric_label("inception_v3_keras") == "FD (Keras InceptionV3)"
  assert feats_lib.metric_label("inception_v3_keras", "kd") == "KD (Keras InceptionV3)"
  assert feats_lib.metric_label("local_cnn[synthetic_faces/small]") == "FD (local CNN)"


# ---------------------------------------------------------- the restricted checkpoint reader

def _legacy_file(path, payload: bytes):
  with open(path, "wb") as f:
    for header in (torch_checkpoint.LEGACY_MAGIC, torch_checkpoint.LEGACY_PROTOCOL, {}):
      pickle.dump(header, f, protocol=2)
    f.write(payload)


def test_reader_refuses_any_other_global(tmp_path):
  evil = pickle.dumps({"x": os.system}, protocol=2)   # a reference to os.system / posix.system
  _legacy_file(tmp_path / "legacy.pth", evil)
  with pytest.raises(torch_checkpoint.TorchCheckpointError, match=r"refers to \w+\.system"):
    torch_checkpoint.read_state_dict(tmp_path / "legacy.pth")
  buf = io.BytesIO()
  with zipfile.ZipFile(buf, "w") as z:
    z.writestr("archive/data.pkl", evil)
  (tmp_path / "zip.pth").write_bytes(buf.getvalue())
  with pytest.raises(torch_checkpoint.TorchCheckpointError, match=r"refers to \w+\.system"):
    torch_checkpoint.read_state_dict(tmp_path / "zip.pth")


def test_reader_refuses_other_files(tmp_path):
  (tmp_path / "text.pth").write_text("hello")
  with pytest.raises(torch_checkpoint.TorchCheckpointError, match="neither a zip nor"):
    torch_checkpoint.read_state_dict(tmp_path / "text.pth")
  (tmp_path / "cut.pth").write_bytes(b"PK\x03\x04 cut short")
  with pytest.raises(torch_checkpoint.TorchCheckpointError, match="truncated or damaged"):
    torch_checkpoint.read_state_dict(tmp_path / "cut.pth")


# ------------------------------ the reader on files written as torch.save writes them, no torch
# torch's pickle globals come from a stand-in module (`fake_torch`), so that every path of the
# reader, its refusals included, is tested where torch is not installed.

STORAGE_NAMES = {np.dtype(v).name: k for k, v in torch_checkpoint.STORAGE_DTYPES.items()}


class _SavedStorage:
  """One torch storage while pickling: `key` and its flat elements."""

  def __init__(self, key: str, flat: np.ndarray):
    self.key, self.flat = key, np.ascontiguousarray(flat).ravel()


class _SavedTensor:
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
def fake_torch(monkeypatch):
  """A stand-in `torch` module holding just the globals a state dict pickles."""
  fake, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")
  for name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
    function = lambda *args: None   # never called: only pickled by reference
    function.__module__, function.__name__, function.__qualname__ = "torch._utils", name, name
    setattr(utils, name, function)
  for name in torch_checkpoint.STORAGE_DTYPES:
    setattr(fake, name, type(name, (), {"__module__": "torch", "__qualname__": name}))
  fake._utils = utils
  monkeypatch.setitem(sys.modules, "torch", fake)
  monkeypatch.setitem(sys.modules, "torch._utils", utils)
  return fake


class _TorchPickler(pickle.Pickler):
  def __init__(self, file, fake, pid=None):
    super().__init__(file, protocol=2)
    self.fake, self.pid = fake, pid

  def persistent_id(self, obj):
    if not isinstance(obj, _SavedStorage):
      return None
    storage_type = getattr(self.fake, STORAGE_NAMES[obj.flat.dtype.name])
    default = ("storage", storage_type, obj.key, "cpu", obj.flat.size)
    return default if self.pid is None else self.pid(obj, default)


def _pickled(obj, fake, pid=None) -> bytes:
  buf = io.BytesIO()
  _TorchPickler(buf, fake, pid).dump(obj)
  return buf.getvalue()


def _storages(obj) -> list[_SavedStorage]:
  seen = {}
  for value in (obj.values() if isinstance(obj, dict) else obj):
    if isinstance(value, _SavedTensor):
      seen.setdefault(value.args[0].key, value.args[0])
  return list(seen.values())


def _write_zip(path, obj, fake, byteorder="little", pid=None, extra=()):
  with zipfile.ZipFile(path, "w") as z:
    z.writestr("archive/data.pkl", _pickled(obj, fake, pid))
    if byteorder is not None:
      z.writestr("archive/byteorder", byteorder)
    for s in _storages(obj):
      dtype = s.flat.dtype.newbyteorder("<" if byteorder != "big" else ">")
      z.writestr(f"archive/data/{s.key}", s.flat.astype(dtype).tobytes())
    for name, data in extra:
      z.writestr(name, data)


def _write_legacy(path, obj, fake, keys=None, numel=None, magic=torch_checkpoint.LEGACY_MAGIC,
                  pid=None):
  storages = {s.key: s for s in _storages(obj)}
  keys = list(storages) if keys is None else keys
  with open(path, "wb") as f:
    for header in (magic, torch_checkpoint.LEGACY_PROTOCOL, {"little_endian": True}):
      pickle.dump(header, f, protocol=2)
    f.write(_pickled(obj, fake, pid))
    pickle.dump(keys, f, protocol=2)
    for key in keys:
      s = storages[key]
      f.write(struct.pack("<q", s.flat.size if numel is None else numel))
      f.write(s.flat.astype(s.flat.dtype.newbyteorder("<")).tobytes())


def _saved_state(fake, rebuild="_rebuild_tensor_v2"):
  """A state dict of tensors of several dtypes, a transposed view, an offset slice, a scalar
  and an empty tensor; and the arrays they hold."""
  rebuild = getattr(fake._utils, rebuild)
  rng = np.random.default_rng(0)
  a = _SavedStorage("0", rng.normal(size=60).astype(np.float32))
  b = _SavedStorage("1", rng.normal(size=42).astype(np.float64))
  c = _SavedStorage("2", np.arange(10, dtype=np.int64))
  h = _SavedStorage("3", rng.normal(size=4).astype(np.float16))
  m = _SavedStorage("4", np.array([True, False, True]))
  e = _SavedStorage("5", np.zeros(0, np.float32))
  state = collections.OrderedDict([
      ("a", _SavedTensor(rebuild, a, size=(3, 4, 5))),
      ("b", _SavedTensor(rebuild, b, size=(7, 6), stride=(1, 7))),   # a transpose
      ("c", _SavedTensor(rebuild, c, offset=2, size=(6,))),
      ("n", _SavedTensor(rebuild, c, offset=5, size=(), stride=())),
      ("h", _SavedTensor(rebuild, h)),
      ("m", _SavedTensor(rebuild, m)),
      ("e", _SavedTensor(rebuild, e, size=(0, 3), stride=(3, 1)))])
  want = {"a": a.flat.reshape(3, 4, 5), "b": b.flat.reshape(6, 7).T, "c": c.flat[2:8],
          "n": np.array(5), "h": h.flat, "m": m.flat, "e": np.zeros((0, 3), np.float32)}
  return state, want


@pytest.mark.parametrize("layout", ["zip", "zip-big-endian", "zip-no-byteorder", "legacy"])
def test_reader_round_trip_without_torch(fake_torch, tmp_path, layout):
  state, want = _saved_state(fake_torch)
  path = tmp_path / "x.pth"
  if layout == "legacy":
    _write_legacy(path, state, fake_torch)
  else:
    byteorder = {"zip": "little", "zip-big-endian": "big", "zip-no-byteorder": None}[layout]
    _write_zip(path, state, fake_torch, byteorder)
  got = torch_checkpoint.read_state_dict(path)
  assert list(got) == list(want)
  for key, value in want.items():
    assert got[key].dtype == value.dtype and got[key].dtype.isnative, key
    assert got[key].shape == value.shape and got[key].flags.c_contiguous, key
    np.testing.assert_array_equal(got[key], value, err_msg=key)


def test_reader_takes_torch_0_4_rebuild_tensor(fake_torch, tmp_path):
  state, want = _saved_state(fake_torch, rebuild="_rebuild_tensor")
  _write_zip(tmp_path / "x.pth", state, fake_torch)
  np.testing.assert_array_equal(torch_checkpoint.read_state_dict(tmp_path / "x.pth")["a"],
                                want["a"])


def _global(module: str, name: str) -> bytes:
  """A pickle of the global module.name alone (protocol 0's GLOBAL opcode)."""
  return f"c{module}\n{name}\n.".encode()


@pytest.mark.parametrize("module, name", [
    ("collections", "Counter"), ("builtins", "OrderedDict"), ("torch._utils", "_rebuild_parameter"),
    ("torch", "load"), ("torch.nn", "FloatStorage"), ("numpy", "_rebuild_tensor_v2")])
def test_reader_names_any_other_global(tmp_path, module, name):
  with zipfile.ZipFile(tmp_path / "x.pth", "w") as z:
    z.writestr("archive/data.pkl", _global(module, name))
  with pytest.raises(torch_checkpoint.TorchCheckpointError) as info:
    torch_checkpoint.read_state_dict(tmp_path / "x.pth")
  assert str(info.value) == (
      f"the checkpoint refers to {module}.{name}, which this restricted reader does not load "
      "(only a plain state dict of tensors: collections.OrderedDict, "
      "torch._utils._rebuild_tensor_v2, torch.*Storage)")


def _refused(path, message: str):
  with pytest.raises(torch_checkpoint.TorchCheckpointError) as info:
    torch_checkpoint.read_state_dict(path)
  assert str(info.value) == message.format(path=path)


def test_storage_ids_that_are_not_plain_storages(fake_torch, tmp_path):
  state, _ = _saved_state(fake_torch)
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
    _write_zip(path, state, fake_torch, pid=pid)
    _refused(path, message)
  _write_zip(path, state, fake_torch, pid=lambda s, d: d + (None,))   # an explicit 'no view'
  assert list(torch_checkpoint.read_state_dict(path)) == list(state)


def test_the_legacy_layout_is_checked(fake_torch, tmp_path):
  state, _ = _saved_state(fake_torch)
  path = tmp_path / "x.pth"
  _write_legacy(path, state, fake_torch, magic=torch_checkpoint.LEGACY_MAGIC + 1)
  _refused(path, "{path} is neither a zip nor a legacy (protocol 1001) PyTorch checkpoint")
  _write_legacy(path, state, fake_torch, keys=["0", "1", "2", "3", "4"])   # storage '5' left out
  _refused(path, "storage '5' has no data in {path}")
  _write_legacy(path, {"a": state["a"]}, fake_torch, numel=59)
  _refused(path, "storage '0' holds 59 elements; 60 expected")
  one = {"a": state["a"]}
  _write_legacy(path, one, fake_torch)
  with open(path, "r+b") as f:
    f.truncate(path.stat().st_size - 4)
  _refused(path, "storage '0' holds 236 bytes; 60 x 4 expected (truncated file?)")
  data = path.read_bytes()
  keys_at = data.rindex(pickle.dumps(["0"], protocol=2))
  path.write_bytes(data[:keys_at] + pickle.dumps(["9"], protocol=2))
  _refused(path, "storage '9' is listed but never used")


def test_zip_archives_without_one_data_pickle(fake_torch, tmp_path):
  path = tmp_path / "x.pth"
  with zipfile.ZipFile(path, "w") as z:
    z.writestr("archive/weights.bin", b"")
  _refused(path, "{path} is a zip file without exactly one data.pkl: not a PyTorch checkpoint")
  state, want = _saved_state(fake_torch)
  _write_zip(path, state, fake_torch, extra=[("other/data.pkl", b"")])
  _refused(path, "{path} is a zip file without exactly one data.pkl: not a PyTorch checkpoint")
  with zipfile.ZipFile(path, "w") as z:   # a pickle at the archive's root
    z.writestr("data.pkl", _pickled({"a": state["a"]}, fake_torch))
    z.writestr("data/0", state["a"].args[0].flat.tobytes())
  np.testing.assert_array_equal(torch_checkpoint.read_state_dict(path)["a"], want["a"])


def test_tensors_and_state_dicts_that_do_not_fit(fake_torch, tmp_path):
  state, _ = _saved_state(fake_torch)
  path = tmp_path / "x.pth"
  rebuild, storage = fake_torch._utils._rebuild_tensor_v2, state["a"].args[0]
  for tensor, message in (
      (_SavedTensor(rebuild, storage, offset=1, size=(60,)),
       "tensor of size [60] reaches past its storage '0' (60 elements)"),
      (_SavedTensor(rebuild, storage, offset=-1, size=(3,)),
       "tensor of size [3] reaches past its storage '0' (60 elements)"),
      (_SavedTensor(rebuild, storage, size=(3,), stride=(-1,)),
       "tensor with negative size or stride [3], [-1]"),
      (_SavedTensor(rebuild, storage, size=(-1,), stride=(1,)),
       "tensor with negative size or stride [-1], [1]")):
    _write_zip(path, {"t": tensor}, fake_torch)
    _refused(path, message)
  _write_zip(path, [state["a"]], fake_torch)
  _refused(path, "the checkpoint holds a list, not a state dict")
  _write_zip(path, {"a": state["a"], "step": 3}, fake_torch)
  _refused(path, "entry 'step' is a int, not a tensor")
  with zipfile.ZipFile(path, "w") as z:
    z.writestr("archive/data.pkl", pickle.dumps(None, protocol=2)[:2] + b"ctorch._utils\n"
               b"_rebuild_tensor_v2\n(K\x01K\x00)K\x00tR.")
  _refused(path, "_rebuild_tensor_v2 got no storage")


def test_a_damaged_pickle_is_named(fake_torch, tmp_path):
  state, _ = _saved_state(fake_torch)
  path = tmp_path / "x.pth"
  with zipfile.ZipFile(path, "w") as z:
    z.writestr("archive/data.pkl", _pickled({"a": state["a"]}, fake_torch)[:-9])
  with pytest.raises(torch_checkpoint.TorchCheckpointError,
                     match=r"^.*x\.pth is not a readable PyTorch checkpoint: "
                           r"(UnpicklingError|EOFError): "):
    torch_checkpoint.read_state_dict(path)


# -------------------------------------------------- against pytorch-fid (optional: torch)

@pytest.fixture(scope="module")
def torch():
  """torch itself (safe beside TensorFlow; torchvision and so pytorch-fid are not: see
  tests/pytorch_fid_reference.py)."""
  return pytest.importorskip("torch", reason=SKIP_REASON)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_reader_round_trips_torch_save(torch, tmp_path, legacy):
  g = torch.Generator().manual_seed(0)
  state = {"a": torch.randn(3, 4, 5, generator=g), "b": torch.randn(6, 7, generator=g).t(),
           "c": torch.arange(10)[2:8], "n": torch.tensor(5), "h": torch.randn(4).half(),
           "e": torch.zeros(0, 3)}
  path = tmp_path / "x.pth"
  torch.save(state, path, _use_new_zipfile_serialization=not legacy)
  assert zipfile.is_zipfile(path) != legacy
  got = torch_checkpoint.read_state_dict(path)
  assert list(got) == list(state)
  for k, v in state.items():
    assert got[k].dtype == v.numpy().dtype and got[k].shape == tuple(v.shape), k
    np.testing.assert_array_equal(got[k], v.numpy())
  torch.save({"m": torch.nn.Linear(2, 2)}, path, _use_new_zipfile_serialization=not legacy)
  with pytest.raises(torch_checkpoint.TorchCheckpointError, match="torch.nn.modules.linear"):
    torch_checkpoint.read_state_dict(path)


@pytest.mark.parametrize("height, width", [(64, 64), (512, 512), (37, 400)])
def test_resize_equals_torch_interpolate(torch, height, width):
  x = np.random.default_rng(1).random((2, height, width, 3)).astype(np.float32)
  want = torch.nn.functional.interpolate(torch.from_numpy(x).permute(0, 3, 1, 2),
                                         size=(299, 299), mode="bilinear", align_corners=False)
  got = np.asarray(jax.jit(fid_inception.resize_bilinear)(x))
  diff = np.abs(got - want.permute(0, 2, 3, 1).numpy()).max()
  print(f"{height}x{width}: max |resize - F.interpolate| {diff:.3g}")
  assert diff < 1e-6


@pytest.fixture(scope="module")
def pytorch_fid_side(tmp_path_factory):
  """tests/pytorch_fid_reference.py's outputs (state dicts, images, pytorch-fid's features and
  FID), made in a process without TensorFlow."""
  if importlib.util.find_spec("pytorch_fid") is None or importlib.util.find_spec("torch") is None:
    pytest.skip(SKIP_REASON)
  out = tmp_path_factory.mktemp("pytorch_fid")
  done = subprocess.run([sys.executable, str(Path(__file__).with_name("pytorch_fid_reference.py")),
                         str(out)], capture_output=True, text=True, timeout=900)
  assert done.returncode == 0, done.stderr[-3000:]
  return out


@pytest.mark.slow
def test_features_and_fid_equal_pytorch_fids(pytorch_fid_side):
  side = pytorch_fid_side
  small, large = np.load(side / "images_small.npy"), np.load(side / "images_large.npy")
  want_small, want_large = np.load(side / "feats_small.npy"), np.load(side / "feats_large.npy")
  assert small.shape == (8, 64, 64, 3) and large.shape == (3, 400, 320, 3)
  scale = max(np.abs(want_small).max(), np.abs(want_large).max())
  assert 0.5 < want_small.std() < 5 and scale < 50   # O(1) features, not 1e-6 or 1e3
  for fmt in ("zip", "legacy"):
    path = side / f"{fmt}.pth"
    extractor = feats_lib.FIDInceptionFeatures.from_file(
        path, expected_sha256=feats_lib.file_sha256(path), batch_size=4)
    got_small, got_large = extractor(small), extractor(large)
    diff = max(np.abs(got_small - want_small).max(), np.abs(got_large - want_large).max())
    print(f"{fmt}: max |feature difference| {diff:.3g} (largest |feature| {scale:.3g})")
    # float32 rounding (different summation orders in XLA's and oneDNN's convolutions) grows
    # by ~1.4x per block: 3e-7 of the activations' scale after the first conv, ~2.6e-5 after
    # Mixed_7c (measured block by block). With features up to ~15 that is up to ~3e-4
    # absolute, so the check is 1e-4 absolute plus 1e-4 relative to each feature.
    np.testing.assert_allclose(got_small, want_small, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got_large, want_large, rtol=1e-4, atol=1e-4)
    assert diff < 1e-4 * scale
    # FID within 1e-3 at the size of real FIDs (hundreds); a FID of thousands (random
    # images of two sizes) holds the same ~1e-6 relative rounding, so there 1e-3 + 2e-6 FID.
    for label, a, b, ta, tb, tol in (("4 vs 4 upsampled", got_small[:4], got_small[4:],
                                      want_small[:4], want_small[4:], 0.0),
                                     ("8 upsampled vs 3 downsampled", got_small, got_large,
                                      want_small, want_large, 2e-6)):
      fid_flax, fid_torch = frechet_distance(a, b), frechet_distance(ta, tb)
      print(f"{fmt}, {label}: FID flax {fid_flax:.6f} torch {fid_torch:.6f} difference "
            f"{abs(fid_flax - fid_torch):.3g}")
      assert abs(fid_flax - fid_torch) < 1e-3 + tol * fid_torch
  reference = json.loads((side / "reference.json").read_text())["fid_small_vs_large"]
  ours = frechet_distance(want_small, want_large)
  print(f"pytorch_fid.calculate_frechet_distance on the torch features {reference:.6f}, "
        f"gem_jax's frechet_distance {ours:.6f}")
  np.testing.assert_allclose(ours, reference, rtol=1e-5)
