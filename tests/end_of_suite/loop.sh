#!/usr/bin/env bash
# The end of the suite N times (default 20) in fresh processes (docs/decisions.md, "The
# end-of-suite abort"): the last three test files (test_kill_then_resume, 90 s of training in a
# subprocess of its own, left out), faulthandler on for the whole life of the interpreter, and
# abortprobe.py listing the threads alive and the orbax managers left open at the end.
#   OUT=build/end_of_suite bash tests/end_of_suite/loop.sh     # from the repository root
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
N=${N:-20}; OUT=${OUT:-build/end_of_suite}
mkdir -p "$OUT"
export XLA_FLAGS=--xla_force_host_platform_device_count=2 PYTHONPATH=$HERE
for i in $(seq 1 "$N"); do
  t0=$(date +%s.%N)
  ABORTPROBE_OUT=$OUT/probe$i.txt .venv/bin/python -X faulthandler -m pytest -q \
    -p no:faulthandler -p no:cacheprovider -p abortprobe \
    tests/test_training.py tests/test_traversal_effect.py tests/test_vae.py \
    --deselect tests/test_training.py::test_kill_then_resume > "$OUT/run$i.log" 2>&1
  rc=$?
  t1=$(date +%s.%N)
  printf "%d %d %.1f\n" "$i" "$rc" "$(echo "$t1 - $t0" | bc)" | tee -a "$OUT/table.txt"
done
