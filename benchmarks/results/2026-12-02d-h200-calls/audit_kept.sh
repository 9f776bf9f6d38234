#!/usr/bin/env bash
# One device call (one H200, carry [".bwrap"]) of issue 18's item 5: the level-5 kept
# solutions under strict, pike and kernelbench, in one resumable audit. The audit is
# written to audit/ after every verdict; a call cut off by its time cap leaves what it
# judged there, and the next call (with audit/ committed and carried in the tree) resumes.
# audit/audit.json was started from call 1's group 2 (same code, its seed 444204471).
#
#   bash benchmarks/results/2026-12-02d-h200-calls/audit_kept.sh LOGNAME SECONDS
set -u
here=benchmarks/results/2026-12-02d-h200-calls
log=$OUT/$1.log; cap=$2
K=benchmarks/results/2026-12-02-h200-level5-sweep/solutions/level5
python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1
source benchmarks/device_bwrap.sh
{ nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
  python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
  python3 -c 'from pike_bench.evaluate.sandbox import Sandbox; s = Sandbox.choose("auto"); print("sandbox", s.tool, s.why_not)'
  date -u; } > "$log" 2>&1
A=/tmp/audit5-kept; rm -rf $A; mkdir -p $A
for dir in $K/*/; do cp "$(ls $dir*.py | head -1)" $A/$(basename $dir).py; done
t0=$(date +%s)
timeout $cap python3 -m pike_bench.cli audit level5 $A --out $here/audit --max-time 1 --baselines eager \
    --suspicious-over 1000 >> "$log" 2>&1
echo "== exit $? at $(( $(date +%s) - t0 )) s" >> "$log"
cp $here/audit/audit.json $OUT/; [ -f $here/audit/audit.md ] && cp $here/audit/audit.md $OUT/
tail -40 "$log"
