"""experiments/gpu_check.sh in its CPU smoke mode: every part runs and lands in one JSON."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from experiments import gpu_check

ROOT = Path(__file__).resolve().parents[1]


def test_the_gpu_mode_plans_both_networks_at_both_batches():
  names = [name for name, _ in gpu_check._benchmark_runs(smoke=False)]
  assert names == [f"{m}/{a}/b{b}" for m in ("beta_vae", "gem") for a in ("burgess", "paper")
                   for b in (32, 256)]
  assert [b for b, _ in gpu_check._torch_runs(smoke=False)] == [32, 256]
  seeds = dict(gpu_check._seed_runs(smoke=False))
  assert sorted(seeds) == sorted(f"{m}/{a}/s{s}" for m in ("beta_vae", "gem")
                                 for a in ("burgess", "paper") for s in (1, 4, 16))
  assert seeds["gem/paper/s16"][-4:] == ["--num_seeds", "16", "--run_tokens", "paper_arch"]


def test_ratio_pairs_jax_and_torch_at_the_same_batch():
  ratios = gpu_check._ratios({"beta_vae/burgess/b32": {"images_per_s": 300.0}},
                             {"b32": {"images_per_s": 100.0}, "b256": {"error": "x"}})
  assert ratios == {"b32": 3.0}


@pytest.mark.slow
def test_cpu_smoke_mode_writes_every_key(tmp_path, tfds_dir):
  out = tmp_path / "gpu_check.json"
  env = dict(os.environ, PY=sys.executable, PYTHONPATH=str(ROOT), TFDS_DATA_DIR=tfds_dir)
  proc = subprocess.run(["bash", "experiments/gpu_check.sh", "--cpu", str(out)], cwd=ROOT,
                        env=env, capture_output=True, text=True, timeout=1500)
  assert proc.returncode == 0, proc.stderr[-3000:]
  record = json.loads(out.read_text())
  assert set(record) >= {"mode", "note", "benchmarks", "torch", "ratios_jax_over_torch",
                         "batched_seeds", "input_pipeline", "synthetic_gem", "finished"}
  seeds = record["batched_seeds"]["gem/burgess/s2"]
  assert "error" not in seeds, seeds
  assert seeds["num_seeds"] == 2 and seeds["batched_over_sequential"] > 0
  assert record["mode"] == "cpu_smoke"
  assert sorted(record["benchmarks"]) == ["beta_vae/burgess/b8", "beta_vae/paper/b2",
                                          "gem/burgess/b8", "gem/paper/b2"]
  for name, result in record["benchmarks"].items():
    assert "error" not in result, (name, result)
    assert {"images_per_s", "param_count_total", "gflops_per_image",
            "forward_gflops_per_image", "arch"} <= set(result)
  assert record["benchmarks"]["gem/paper/b2"]["arch"] == "paper"
  torch_result = record["torch"]["b8"]
  assert torch_result.get("error") == "torch not installed" or "images_per_s" in torch_result
  assert record["input_pipeline"]["images_per_s"] > 0
  assert "error" not in record["synthetic_gem"], record["synthetic_gem"]
  assert record["synthetic_gem"]["last_metrics"]
