"""The standard FID network in Flax (gem_jax/metrics/fid_inception.py), its weights file checks
and the torch-free PyTorch checkpoint reader.

The tests at the end compare the network with pytorch-fid's own on the same weights, and run
only where torch and pytorch-fid are installed (`make install-fid-test`); elsewhere they are
skipped with the reason. pytorch-fid's side runs in its own process
(tests/pytorch_fid_reference.py): torchvision cannot be imported after TensorFlow.
"""
import hashlib
import importlib.util
import io
import json
import os
import pickle
import subprocess
import sys
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
