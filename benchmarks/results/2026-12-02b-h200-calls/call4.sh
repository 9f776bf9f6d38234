#!/usr/bin/env bash
# Device call 4 (one H200): the sandbox on the GPU machine (issue 19), the audit of the
# kept and flagged solutions under three check policies (issue 18), then the level-3
# sweep resumed for the time left (issue 16). Everything comes back flat under $OUT.
# Run from the repository root with carry [".bwrap"].
set -u
D=benchmarks/results/2026-12-02b-h200-calls
python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1
log=$OUT/call4.log
{ nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
  python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
  date -u; } > "$log"
t0=$(date +%s); stamp() { echo "== $1 at $(( $(date +%s) - t0 )) s" >> "$log"; }
stamp sandbox
timeout 150 python3 benchmarks/sandbox_gpu.py "$OUT/sandbox" --debs .bwrap --repeats 3 --budget 90 >> "$log" 2>&1
stamp audit-level3
timeout 100 python3 -m pike_bench.cli audit level3 $D/audit-candidates/level3 --out "$OUT/audit3" \
    --max-time 1 --baselines eager >> "$log" 2>&1
stamp audit-level5
timeout 120 python3 -m pike_bench.cli audit level5 $D/audit-candidates/level5 --out "$OUT/audit5" \
    --max-time 1 --baselines eager >> "$log" 2>&1
stamp level3-sweep
L3=benchmarks/results/2026-12-02-h200-level3-sweep
left=$(( 390 - ($(date +%s) - t0) ))
[ $left -gt 60 ] && BUDGET=20 bash benchmarks/offline_sweep.sh $L3 $left -m pike > $L3/call4.log 2>&1
stamp end
tar czf "$OUT/l3.tgz" $L3/runs.sqlite $L3/call4.log $L3/solutions 2>/dev/null
ls -la "$OUT" "$OUT"/* >> "$log"
tail -30 "$log"
