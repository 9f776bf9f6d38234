#!/usr/bin/env bash
# One device call of a resumable offline sweep, with everything that must come back
# copied under $OUT: the record, the log, the leaderboard, the solutions and the compile
# cache (as inductor-cache.tgz, to be unpacked here and carried into the next call).
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
mkdir -p "$OUT/$dir"
cp -r "$dir/runs.sqlite" "$dir/$log.log" "$dir/machine_$log.txt" "$dir/leaderboard" "$OUT/$dir/"
[ -d "$dir/solutions" ] && cp -r "$dir/solutions" "$OUT/$dir/"
[ -d "$dir/inductor-cache" ] && tar czf "$OUT/$dir/inductor-cache.tgz" -C "$dir" inductor-cache
ls -la "$OUT/$dir"
