"""A PyTorch train step of the β-VAE branch's network, for a speed ratio with the JAX step.

    python -m experiments.torch_reference --batch_size 32 --steps 20     # prints one JSON line

The network matches `gem_jax.models.vae` (the Burgess arch) layer for layer: the encoder's four
DownConv (pad 1, space-to-depth, 2x2 conv) to `width` channels with ReLU, two dense layers of
`hidden` units and a dense 2d; the decoder's three dense layers (hidden, hidden, 4 x 4 x width),
four subpixel UpBlocks (2x2 conv to 4 x features, pad right/bottom, pixel shuffle), ReLU
between them. The step: Bernoulli NLL summed over pixels, beta * KL(q(z|x) || N(0, I)), both
averaged over the batch, one Adam update (lr 1e-4); no DisGraph (A = I). torch is optional:
without it the result is {"error": "torch not installed"}.
"""
from __future__ import annotations

import json
import time

import numpy as np
from absl import app, flags

_BATCH = flags.DEFINE_integer("batch_size", 64, "Batch size.")
_STEPS = flags.DEFINE_integer("steps", 20, "Timed steps (after 3 warm-up steps).")
_DEVICE = flags.DEFINE_string("device", None, "torch device (default: cuda if available).")
_LATENT_DIM = flags.DEFINE_integer("latent_dim", 6, "Latent size.")
_WIDTH = flags.DEFINE_integer("width", 32, "Conv width (tiny preset: 8).")
_HIDDEN = flags.DEFINE_integer("hidden", 256, "Dense width (tiny preset: 32).")
_BETA = 4.0


def _build(torch, latent_dim: int, width: int, hidden: int, image_size: int = 64):
  """(encoder, decoder) torch modules; encoder [B, 3, S, S] -> [B, 2d], decoder [B, d] ->
  logits [B, 3, S, S]."""
  nn, F = torch.nn, torch.nn.functional
  halvings = image_size.bit_length() - 3
  base = image_size // 2**halvings

  class DownConv(nn.Module):
    def __init__(self, cin: int, cout: int):
      super().__init__()
      self.conv = nn.Conv2d(4 * cin, cout, 2)

    def forward(self, x):
      return self.conv(F.pixel_unshuffle(F.pad(x, (1, 1, 1, 1)), 2))

  class UpBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
      super().__init__()
      self.conv = nn.Conv2d(cin, 4 * cout, 2)

    def forward(self, x):
      return F.pixel_shuffle(self.conv(F.pad(x, (0, 1, 0, 1))), 2)

  convs = [DownConv(3 if i == 0 else width, width) for i in range(halvings)]
  encoder = nn.Sequential(
      *[m for c in convs for m in (c, nn.ReLU())], nn.Flatten(),
      nn.Linear(base * base * width, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
      nn.Linear(hidden, 2 * latent_dim))
  ups = []
  for i in range(halvings):
    last = i == halvings - 1
    ups += [UpBlock(width, 3 if last else width)] + ([] if last else [nn.ReLU()])
  decoder = nn.Sequential(
      nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
      nn.Linear(hidden, base * base * width), nn.ReLU(), nn.Unflatten(1, (width, base, base)),
      *ups)
  return encoder, decoder


def benchmark_torch_step(batch_size: int, steps: int, device: str | None = None,
                         latent_dim: int = 6, width: int = 32, hidden: int = 256) -> dict:
  """Median time of the β-VAE train step in PyTorch over `steps` steps after 3 warm-up
  steps, on random uint8 images scaled to [0, 1]."""
  try:
    import torch
  except ImportError:
    return {"error": "torch not installed"}
  device = device or ("cuda" if torch.cuda.is_available() else "cpu")
  torch.manual_seed(0)
  encoder, decoder = _build(torch, latent_dim, width, hidden)
  encoder, decoder = encoder.to(device), decoder.to(device)
  params = [*encoder.parameters(), *decoder.parameters()]
  opt = torch.optim.Adam(params, lr=1e-4)
  images = np.random.default_rng(0).integers(0, 256, (batch_size, 3, 64, 64), dtype=np.uint8)
  x = torch.from_numpy(images).to(device).float() / 255.0

  def step():
    mu, logvar = encoder(x).chunk(2, dim=1)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    logits = decoder(z)
    nll = torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="sum")
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum()
    loss = (nll + _BETA * kl) / batch_size
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss

  def sync():
    if device.startswith("cuda"):
      torch.cuda.synchronize()

  for _ in range(3):
    step()
  sync()
  times = []
  for _ in range(steps):
    t = time.perf_counter()
    step()
    sync()
    times.append(time.perf_counter() - t)
  step_s = float(np.median(times))
  return {"model": "beta_vae", "framework": "torch", "torch_version": torch.__version__,
          "device": device, "batch_size": batch_size, "images_per_s": batch_size / step_s,
          "step_time_ms": step_s * 1e3, "timed_steps": steps,
          "param_count": int(sum(p.numel() for p in params))}


def main(argv):
  del argv
  print(json.dumps(benchmark_torch_step(_BATCH.value, _STEPS.value, _DEVICE.value,
                                        _LATENT_DIM.value, _WIDTH.value, _HIDDEN.value)))


if __name__ == "__main__":
  app.run(main)
