#!/usr/bin/env bash
# Eager, compile (and graph for level 3) of the tasks not yet measured, at full size,
# spread over two GPUs: one pytest run per lane, each lane on its own GPU.
#
#   bash benchmarks/suite_baselines.sh OUTDIR
#
# Each pytest run is stopped with SIGINT at its time cap, so that pytest still prints
# its summary and pytest-benchmark still writes its JSON for the tasks that finished.
set -u
out=${1:?usage: suite_baselines.sh OUTDIR}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
{ nvidia-smi -L; python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"; date -u; } > "$out/machine.txt" 2>&1

run() {  # run GPU SECONDS NAME PYTEST-ARGS...
    local gpu=$1 cap=$2 name=$3; shift 3
    CUDA_VISIBLE_DEVICES=$gpu timeout -s INT "$cap" python3 -m pytest -p no:cacheprovider kernelbench_tasks \
        --pike-max-time 1 --pike-trials 2 --benchmark-json="$out/$name.json" "$@" > "$out/$name.log" 2>&1
    echo "$name: exit $? after ${SECONDS}s" >> "$out/machine.txt"
}

L5_LIGHT="level5/5_ or level5/10_ or level5/11_ or level5/12_ or level5/14_ or level5/7_ or level5/13_"
L5_HEAVY="level5/2_ or level5/1_ or level5/4_ or level5/3_ or level5/9_ or level5/6_ or level5/8_"

(
    run 0 "${CAP_L3:-210}" level3_rest -m "not pike" -k "test_baseline and level3"
    run 0 "${CAP_L5A:-330}" level5_light -k "test_baseline and ($L5_LIGHT)" --pike-baselines eager,compile
) &
run 1 "${CAP_L5B:-545}" level5_heavy -k "test_baseline and ($L5_HEAVY)" --pike-baselines eager,compile &
wait
cat "$out/machine.txt"
