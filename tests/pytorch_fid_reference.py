"""pytorch-fid's side of tests/test_fid_inception.py, run in its own process.

    python tests/pytorch_fid_reference.py OUT_DIR

torch and TensorFlow cannot share a process here: importing torchvision (which pytorch-fid
does) after tensorflow segfaults in triton's native module. So this script, which imports
neither TensorFlow nor JAX, builds pytorch-fid's InceptionV3([3], resize_input=True,
normalize_input=True, use_fid_inception=True) from a generated state dict (nothing is
downloaded) and writes into OUT_DIR:

  zip.pth, legacy.pth   that state dict, by torch.save in both formats;
  images_small.npy      uint8 [8, 64, 64, 3] (upsampled to 299), images_large.npy uint8
                        [3, 400, 320, 3] (downsampled), both seeded;
  feats_small.npy, feats_large.npy
                        pytorch-fid's features [N, 2048] of those images;
  reference.json        pytorch_fid.fid_score.calculate_frechet_distance of the two.

The state dict is torch's own seeded init with random BN scales/biases and BN running
statistics measured on calibration images of both sizes, so that every BN normalises its input
to O(1) and the features are O(1) (torch's init with identity BN statistics gives ~1e-6).
"""
import json
import sys
from pathlib import Path

import numpy as np
import torch
from pytorch_fid import fid_score
from pytorch_fid import inception as inception_mod


def to_torch(images: np.ndarray) -> torch.Tensor:
  """uint8 [N, H, W, 3] -> float [N, 3, H, W] in [0, 1], as pytorch-fid's ToTensor."""
  return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255)


def blocks(net) -> list:
  pool = torch.nn.MaxPool2d(3, 2)
  return [net.Conv2d_1a_3x3, net.Conv2d_2a_3x3, net.Conv2d_2b_3x3, pool, net.Conv2d_3b_1x1,
          net.Conv2d_4a_3x3, pool, net.Mixed_5b, net.Mixed_5c, net.Mixed_5d, net.Mixed_6a,
          net.Mixed_6b, net.Mixed_6c, net.Mixed_6d, net.Mixed_6e, net.Mixed_7a, net.Mixed_7b,
          net.Mixed_7c]


def calibrated_state_dict(batches: list[np.ndarray]) -> dict:
  """fid_inception_v3() at torch's seeded init, BN statistics averaged over `batches`."""
  torch.manual_seed(0)
  load_url = inception_mod.load_state_dict_from_url
  inception_mod.load_state_dict_from_url = lambda *a, **k: None
  original_load = inception_mod.torchvision.models.inception.Inception3.load_state_dict
  inception_mod.torchvision.models.inception.Inception3.load_state_dict = lambda *a, **k: None
  try:
    net = inception_mod.fid_inception_v3()
  finally:
    inception_mod.load_state_dict_from_url = load_url
    inception_mod.torchvision.models.inception.Inception3.load_state_dict = original_load
  for mod in net.modules():
    if isinstance(mod, torch.nn.BatchNorm2d):
      with torch.no_grad():
        mod.weight.uniform_(0.5, 1.5)
        mod.bias.normal_(0.1, 0.2)
      mod.reset_running_stats()
      mod.momentum = None   # cumulative average over the calibration batches
  net.train()
  with torch.no_grad():   # InceptionV3.forward's input path, then every block
    for images in batches:
      x = torch.nn.functional.interpolate(to_torch(images), size=(299, 299), mode="bilinear",
                                          align_corners=False) * 2 - 1
      for layer in blocks(net):
        x = layer(x)
  return net.eval().state_dict()


def main(out: Path) -> None:
  out.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(7)
  calibration = [rng.integers(0, 256, (4, 64, 64, 3), dtype=np.uint8),
                 rng.integers(0, 256, (2, 400, 320, 3), dtype=np.uint8)]
  state = calibrated_state_dict(calibration)
  torch.save(state, out / "zip.pth")
  torch.save(state, out / "legacy.pth", _use_new_zipfile_serialization=False)
  load_url = inception_mod.load_state_dict_from_url
  inception_mod.load_state_dict_from_url = lambda *a, **k: torch.load(out / "zip.pth",
                                                                      weights_only=True)
  try:   # pytorch-fid's own (strict) load path
    model = inception_mod.InceptionV3([3], resize_input=True, normalize_input=True,
                                      use_fid_inception=True).eval()
  finally:
    inception_mod.load_state_dict_from_url = load_url
  rng = np.random.default_rng(8)
  images = {"small": rng.integers(0, 256, (8, 64, 64, 3), dtype=np.uint8),
            "large": rng.integers(0, 256, (3, 400, 320, 3), dtype=np.uint8)}
  feats = {}
  for name, x in images.items():
    np.save(out / f"images_{name}.npy", x)
    with torch.no_grad():
      feats[name] = model(to_torch(x))[0][:, :, 0, 0].numpy()
    np.save(out / f"feats_{name}.npy", feats[name])
  stats = [(f.mean(0), np.cov(f, rowvar=False)) for f in (feats["small"], feats["large"])]
  fid = float(fid_score.calculate_frechet_distance(*stats[0], *stats[1]))
  (out / "reference.json").write_text(json.dumps({"fid_small_vs_large": fid}))


if __name__ == "__main__":
  main(Path(sys.argv[1]))
