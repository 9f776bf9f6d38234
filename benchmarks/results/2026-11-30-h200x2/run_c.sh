#!/usr/bin/env bash
# Third device call of 2026-11-30 (nvidia-h200-x2): the same optimizer work (offline
# proposer, PIKE-B without IBA, 3 queries on each of 4 PIKE-set tasks) on GPU 0 alone,
# then on GPUs 0 and 1; each run with its own empty compile caches, so neither reuses
# the other's builds. Evaluations per minute come from the two records.
set -u
out=${1:?usage: run_c.sh OUTDIR}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
TASKS="level3/1_MLP or level3/4_LeNet5 or level3/8_ResNetBasicBlock or level3/48_Mamba2ReturnY"
opt() {  # opt NAME DEVICES SECONDS
    local start=$SECONDS
    TORCHINDUCTOR_CACHE_DIR=/tmp/inductor_$1 TRITON_CACHE_DIR=/tmp/triton_$1 timeout -s INT "$3" \
        python3 -m pytest -p no:cacheprovider kernelbench_tasks -k "test_optimize and ($TASKS)" \
        --pike-optimize --pike-llm offline --pike-strategy pike-b-no-iba --pike-budget 3 --pike-devices "$2" \
        --pike-max-time 1 --pike-trials 2 --pike-baselines eager,compile \
        --pike-store "$out/$1/runs.sqlite" --pike-solutions "$out/$1/solutions" > "$out/$1.log" 2>&1
    echo "$1 (devices $2): exit $? in $((SECONDS - start)) s" >> "$out/steps.txt"
}
nvidia-smi -L > "$out/steps.txt"
opt gpu1 0 130
opt gpu2 0,1 95
cat "$out/steps.txt"
