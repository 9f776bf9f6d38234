#!/usr/bin/env bash
# Second device call of 2026-11-30 (nvidia-h200-x2): two lanes, one GPU each.
#   lane 0: the adversarial suite and defense cost (benchmarks/adversarial.py), then
#           level-5 tasks 4 and 6 (eager, compile) and 3 (eager only: its compile did
#           not finish in the first call);
#   lane 1: level-5 tasks 9 and 8, then the offline proposer on light level-5 tasks.
# Every step has a cap (SIGINT, so pytest still writes its summary and JSON).
set -u
out=${1:?usage: run_b.sh OUTDIR}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
P="python3 -m pytest -p no:cacheprovider kernelbench_tasks --durations=0 --pike-max-time 1 --pike-trials 2"
step() {  # step GPU SECONDS NAME COMMAND...
    local gpu=$1 cap=$2 name=$3; shift 3
    local start=$SECONDS
    CUDA_VISIBLE_DEVICES=$gpu timeout -s INT "$cap" "$@" > "$out/$name.log" 2>&1
    echo "$name: exit $? in $((SECONDS - start)) s" >> "$out/steps.txt"
}
(
    step 0 260 adversarial python3 benchmarks/adversarial.py "$out/adversarial.json"
    step 0 90 l5_4 $P -k "test_baseline and level5/4_" --pike-baselines eager,compile --benchmark-json="$out/l5_4.json"
    step 0 100 l5_6 $P -k "test_baseline and level5/6_" --pike-baselines eager,compile --benchmark-json="$out/l5_6.json"
    step 0 90 l5_3 $P -k "test_baseline and level5/3_" --pike-baselines eager --benchmark-json="$out/l5_3.json"
) &
(
    step 1 140 l5_9 $P -k "test_baseline and level5/9_" --pike-baselines eager,compile --benchmark-json="$out/l5_9.json"
    step 1 120 l5_8 $P -k "test_baseline and level5/8_" --pike-baselines eager,compile --benchmark-json="$out/l5_8.json"
    step 1 280 l5_optimize $P -k "test_optimize and (level5/10_ or level5/11_ or level5/5_ or level5/12_ or level5/14_ or level5/1_)" \
        --pike-optimize --pike-llm offline --pike-strategy pike-b-no-iba --pike-budget 3 \
        --pike-baselines eager,compile --pike-store "$out/l5opt/runs.sqlite" --pike-solutions "$out/l5opt/solutions"
) &
wait
cat "$out/steps.txt"
