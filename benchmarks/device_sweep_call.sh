#!/usr/bin/env bash
# One device call of a resumable offline sweep, with everything that must come back
# copied flat under $OUT (the device tool returns at most 8 files of 16 MiB, two folders
# down): the record, the log, the machine line, and the leaderboard and solutions as
# tarballs. The compile cache (git-ignored) stays on the machine while it is warm; a call
# on a fresh machine builds the compile baselines again.
#
#   BUDGET=4 bash benchmarks/device_sweep_call.sh RECORD_DIR SECONDS LOGNAME [pytest selection...]
set -u
dir=${1:?RECORD_DIR}; cap=${2:?SECONDS}; log=${3:?LOGNAME}; shift 3
python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1
mkdir -p "$dir"
{ nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
  python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
  date -u; } > "$dir/machine_$log.txt"
start=$(date +%s)
bash benchmarks/offline_sweep.sh "$dir" "$cap" "$@" > "$dir/$log.log" 2>&1
echo "wall_s $(( $(date +%s) - start ))" >> "$dir/machine_$log.txt"
tail -40 "$dir/$log.log"
cp "$dir/runs.sqlite" "$dir/$log.log" "$dir/machine_$log.txt" "$OUT/"
tar czf "$OUT/leaderboard.tgz" -C "$dir" leaderboard
[ -d "$dir/solutions" ] && tar czf "$OUT/solutions.tgz" -C "$dir" solutions
ls -la "$OUT"
