"""The accelerator check behind `experiments/gpu_check.sh`: every measurement in one JSON file.

    python -m experiments.gpu_check --out docs/results/gpu_check.json    # on a CUDA machine
    python -m experiments.gpu_check --cpu --out /tmp/gpu_check.json      # smoke: tiny sizes

Runs, each in its own process (its own peak memory, its own compile) under a time limit:
  benchmarks      `experiments.benchmark` for beta_vae and gem, the Burgess networks and the
                  paper's (`paper_arch`), at batch 32 and 256 (--cpu: the tiny preset at batch
                  8, the paper's networks at batch 2, one or two steps)
  torch           `experiments.torch_reference`, the same β-VAE network's PyTorch step, and
                  the ratio JAX images/s / PyTorch images/s at each batch ("torch not
                  installed" where it is not)
  batched_seeds   `experiments.benchmark --num_seeds S`: S seeds' steps vmapped in one step
                  against S sequential steps, for beta_vae and gem, both networks, S = 1, 4,
                  16 at batch 32 (--cpu: gem, tiny, S = 2): whether a batched-seeds trainer
                  would pay on this device
  input_pipeline  the tf.data train iterator alone, images/s (`--model input_pipeline`)
  synthetic_gem   `experiments.synthetic_gem` end to end through the tfds pipeline: the demo
                  preset cut to 200 + 200 steps (--cpu: the tiny preset), wall time and its
                  last logged metrics
A run that fails or times out is recorded with its error and the tail of its stderr; the file is
rewritten after every run, so a killed check keeps what it measured. On a GPU the runs go one at
a time (each times itself); the CPU smoke, which checks that every part runs and reports but
times nothing, runs two at a time.
"""
from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from absl import app, flags

from gem_jax.files import atomic_write_text

_OUT = flags.DEFINE_string("out", "docs/results/gpu_check.json", "Where the JSON goes.")
_CPU = flags.DEFINE_boolean("cpu", False, "Smoke mode: tiny sizes, a minute or two on a CPU.")
_WORKDIR = flags.DEFINE_string("workdir", None, "synthetic_gem's run folder (default: a temp dir).")
_RUN_TIMEOUT = flags.DEFINE_integer("run_timeout_s", 240, "Time limit of one run.")
_NOTE = flags.DEFINE_string("note", "", "Free text recorded as 'note' (gpu_check.sh: install).")

GPU_BATCHES = (32, 256)
GPU_SEEDS = (1, 4, 16)
SMOKE_JOBS = 2  # the smoke's runs at once (each is a process)


def _run(args: list[str], timeout_s: int) -> dict:
  """Runs `python -m args...`: its last stdout line parsed as JSON where it is JSON, plus
  wall_s; an error, the command and stderr's tail where it fails or times out."""
  t = time.perf_counter()
  cmd = [sys.executable, "-m", *args]
  try:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
  except subprocess.TimeoutExpired:
    return {"error": f"timed out after {timeout_s} s", "command": " ".join(args)}
  wall = time.perf_counter() - t
  lines = [line for line in proc.stdout.splitlines() if line.strip()]
  if proc.returncode == 0:
    try:
      return {**json.loads(lines[-1]), "wall_s": wall}
    except (IndexError, json.JSONDecodeError, TypeError):
      return {"wall_s": wall}
  return {"error": f"exit status {proc.returncode}", "command": " ".join(args), "wall_s": wall,
          "stderr_tail": proc.stderr[-2000:]}


# The smoke's paper-arch runs: the same residual networks, narrow (the paper's widths compile
# for minutes on a CPU; the smoke checks that every piece runs and reports, not its speed).
SMOKE_PAPER_WIDTHS = {"width": 8, "hidden": 64, "disc_width": 8, "disc_hidden": 64}


def _benchmark_runs(smoke: bool) -> list[tuple[str, list[str]]]:
  runs = []
  for model in ("beta_vae", "gem"):
    for arch in ("burgess", "paper"):
      if smoke:
        batches, steps = (8,) if arch == "burgess" else (2,), 2 if arch == "burgess" else 1
      else:
        batches, steps = GPU_BATCHES, 20
      # Smoke: the tiny preset (its R1 stride 2 divides batch 2), networks on top of it.
      tokens = ("tiny" if arch == "burgess" else "tiny,paper_arch") if smoke else (
          "" if arch == "burgess" else "paper_arch")
      for batch in batches:
        args = ["experiments.benchmark", "--model", model, "--batch_size", str(batch),
                "--steps", str(steps), "--num_devices", "1"]
        if smoke and arch == "paper":  # the paper's residual networks at the smallest widths
          args += [f"--set=model.{k}={v}" for k, v in SMOKE_PAPER_WIDTHS.items()]
        runs.append((f"{model}/{arch}/b{batch}", args + (["--run_tokens", tokens] if tokens
                                                         else [])))
  return runs


def _seed_runs(smoke: bool) -> list[tuple[str, list[str]]]:
  if smoke:
    return [("gem/burgess/s2", ["experiments.benchmark", "--model", "gem", "--batch_size", "8",
                                "--steps", "1", "--num_seeds", "2", "--run_tokens", "tiny"])]
  runs = []
  for model in ("beta_vae", "gem"):
    for arch in ("burgess", "paper"):
      for seeds in GPU_SEEDS:
        args = ["experiments.benchmark", "--model", model, "--batch_size", "32", "--steps",
                "10", "--num_seeds", str(seeds)]
        runs.append((f"{model}/{arch}/s{seeds}",
                     args + (["--run_tokens", "paper_arch"] if arch == "paper" else [])))
  return runs


def _torch_runs(smoke: bool) -> list[tuple[int, list[str]]]:
  if smoke:
    return [(8, ["experiments.torch_reference", "--batch_size", "8", "--steps", "2",
                 "--width", "8", "--hidden", "32"])]
  return [(b, ["experiments.torch_reference", "--batch_size", str(b), "--steps", "20"])
          for b in GPU_BATCHES]


def _synthetic_gem_args(smoke: bool, workdir: str) -> list[str]:
  base = ["experiments.synthetic_gem", "--workdir", workdir]
  if smoke:
    return base + ["--config", "experiments/configs/synthetic_gem.py:tiny"]
  return base + ["--config", "experiments/configs/synthetic_gem.py:demo",
                 "--config.train.num_steps=200", "--config.gem.warmup_steps=200",
                 "--config.train.sample_every=200", "--config.train.checkpoint_every=200",
                 "--config.gem.num_scored_images=512"]


def _last_metrics(workdir: str) -> dict:
  """The last line of each stage's metrics.jsonl under workdir ({} where none)."""
  out = {}
  for path in sorted(Path(workdir).rglob("metrics.jsonl")):
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    if lines:
      try:
        out[str(path.parent.relative_to(workdir)) or "."] = json.loads(lines[-1])
      except json.JSONDecodeError:
        pass
  return out


def _ratios(benchmarks: dict, torch: dict) -> dict:
  """JAX β-VAE images/s over PyTorch's at the same batch (Burgess networks)."""
  out = {}
  for key, result in torch.items():
    jax_result = benchmarks.get(f"beta_vae/burgess/{key}", {})
    if "images_per_s" in result and "images_per_s" in jax_result:
      out[key] = jax_result["images_per_s"] / result["images_per_s"]
  return out


def run_check(out: Path, smoke: bool, workdir: str, timeout_s: int, note: str = "") -> dict:
  """Runs every measurement, rewriting `out` after each; returns the final record."""
  record = {"mode": "cpu_smoke" if smoke else "gpu", "note": note,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "benchmarks": {}, "torch": {},
            "ratios_jax_over_torch": {}, "batched_seeds": {}, "input_pipeline": {},
            "synthetic_gem": {}}

  def save():
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(record, indent=2) + "\n")

  batch, data = (8, "tiny") if smoke else (256, "default")
  runs = ([(("benchmarks", name), args, timeout_s) for name, args in _benchmark_runs(smoke)]
          + [(("torch", f"b{b}"), args, timeout_s) for b, args in _torch_runs(smoke)]
          + [(("batched_seeds", name), args, timeout_s) for name, args in _seed_runs(smoke)]
          + [(("input_pipeline", None),
              ["experiments.benchmark", "--model", "input_pipeline", "--batch_size", str(batch),
               "--steps", "5" if smoke else "50", "--num_devices", "1", "--data_config", data],
              timeout_s),
             (("synthetic_gem", None), _synthetic_gem_args(smoke, workdir), 2 * timeout_s)])
  if smoke:  # the longest first, so that the two workers finish together
    runs.sort(key=lambda run: run[0][0] != "synthetic_gem" and "/paper/" not in str(run[0][1]))
  lock = threading.Lock()

  def measure(run):
    (section, name), args, limit = run
    result = _run(args, limit)
    if section == "synthetic_gem":
      result["last_metrics"] = _last_metrics(workdir)
    with lock:
      if name is None:
        record[section] = result
      else:
        record[section][name] = result
      record["ratios_jax_over_torch"] = _ratios(record["benchmarks"], record["torch"])
      save()

  # A timing run has the machine to itself; the smoke, which times nothing, runs two at a time.
  with concurrent.futures.ThreadPoolExecutor(SMOKE_JOBS if smoke else 1) as pool:
    list(pool.map(measure, runs))
  record["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
  save()
  return record


def main(argv):
  del argv
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
    workdir = _WORKDIR.value or str(Path(tmp) / "synthetic_gem")
    record = run_check(Path(_OUT.value), _CPU.value, workdir, _RUN_TIMEOUT.value, _NOTE.value)
  failed = [k for k, v in record["benchmarks"].items() if "error" in v]
  print(f"wrote {_OUT.value}; {len(record['benchmarks']) - len(failed)} of "
        f"{len(record['benchmarks'])} benchmarks ran" + (f"; failed: {failed}" if failed else ""))


if __name__ == "__main__":
  app.run(main)
