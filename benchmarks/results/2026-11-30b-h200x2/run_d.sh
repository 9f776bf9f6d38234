#!/usr/bin/env bash
# First device call of the second 2026-11-30 session (nvidia-h200-x2):
#   1. scale-out: the same optimizer work on GPU 0, then on GPUs 0 and 1 (benchmarks/scale_out.py);
#   2. the three level-5 tasks not yet measured, eager and compile, one lane per GPU.
# Every step has a cap well under the call's limit, and the results are packed into one
# file ($OUT/results.tgz) after each step, so a step that runs long loses nothing earlier.
set -u
out=${1:?usage: run_d.sh OUTDIR}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
{ nvidia-smi -L; python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"; date -u; } > "$out/machine.txt" 2>&1
pack() { tar -C "$out" -czf "$OUT/results.tgz" . ; }
step() {  # step GPUS SECONDS NAME COMMAND...
    local gpus=$1 cap=$2 name=$3; shift 3
    local start=$SECONDS
    CUDA_VISIBLE_DEVICES=$gpus timeout -s INT "$cap" "$@" > "$out/$name.log" 2>&1
    echo "$name: exit $? in $((SECONDS - start)) s" >> "$out/machine.txt"
}
step 0,1 300 scale_out python3 benchmarks/scale_out.py "$out/scale_out.json" --sets "0;0,1" --budget 4
pack
P="python3 -m pytest -p no:cacheprovider kernelbench_tasks --durations=0 --pike-max-time 1 --pike-trials 2 --pike-baselines eager,compile"
step 0 240 level5_3 $P -k "test_baseline and level5/3_" --benchmark-json="$out/level5_3.json" &
( step 1 110 level5_8 $P -k "test_baseline and level5/8_" --benchmark-json="$out/level5_8.json"
  step 1 130 level5_9 $P -k "test_baseline and level5/9_" --benchmark-json="$out/level5_9.json" ) &
wait
pack
cat "$out/machine.txt"
