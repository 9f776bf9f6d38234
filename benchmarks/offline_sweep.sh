#!/usr/bin/env bash
# The offline proposer over a suite on every GPU of the machine, resumable across calls.
#
#   bash benchmarks/offline_sweep.sh RECORD_DIR SECONDS [pytest selection...]
#   bash benchmarks/offline_sweep.sh benchmarks/results/offline-h200 540 -m pike
#   BUDGET=3 bash benchmarks/offline_sweep.sh ...   (queries per task; default 20)
#   IN_FLIGHT=2 bash benchmarks/offline_sweep.sh ... (tasks at once, a worker each per GPU; default 1)
#
# RECORD_DIR keeps the record (runs.sqlite), the kept solutions, the leaderboard (with
# PIKE's set on its own) and inductor-cache/, the compile baseline's compiled code, which
# git ignores: carry it to the next call and the compile baselines load instead of compiling.
# The run is stopped with Ctrl-C (SIGINT) after SECONDS; the same command resumes it
# from the record, without asking a query or making an evaluation twice. Keep the same
# machine kind between calls: the record names its runs by their devices.
set -u
dir=${1:?usage: offline_sweep.sh RECORD_DIR SECONDS [pytest selection...]}
cap=${2:?usage: offline_sweep.sh RECORD_DIR SECONDS [pytest selection...]}
shift 2
mkdir -p "$dir"
timeout -s INT "$cap" python3 -m pytest -p no:cacheprovider kernelbench_tasks \
    --pike-optimize --pike-llm offline --pike-budget "${BUDGET:-20}" --pike-devices all \
    --pike-max-time 1 --pike-trials 2 --pike-baselines eager,compile,graph --pike-in-flight "${IN_FLIGHT:-1}" \
    --pike-store "$dir/runs.sqlite" --pike-solutions "$dir/solutions" "$@"
python3 -m pike_bench.cli leaderboard --store "$dir/runs.sqlite" --out "$dir/leaderboard" --mark pike
