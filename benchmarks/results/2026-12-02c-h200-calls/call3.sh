#!/usr/bin/env bash
# Device call 3 of the evening (one H200), carry [".bwrap"]: call 2 with 400 s for the level-5 audit and no throughput.
# more time (call 1's stopped at 150 s), the 7_MOE candidate accepted if every policy passes
# it, then the throughput of the optimizer with one task in flight and with two (issue 16,
# item 1) on throughput.py's mixed level-3 selection, budget 5, for the time left.
set -u
C=benchmarks/results/2026-12-02b-h200-calls/audit-candidates
L5=benchmarks/results/2026-12-02-h200-level5-sweep
python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1
source benchmarks/device_bwrap.sh
log=$OUT/call3.log; A=/tmp/audit; mkdir -p $A
{ nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
  python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
  python3 -c 'from pike_bench.evaluate.sandbox import Sandbox; s = Sandbox.choose("auto"); print("sandbox", s.tool, s.why_not)'
  date -u; } > "$log" 2>&1
t0=$(date +%s); stamp() { echo "== $1 at $(( $(date +%s) - t0 )) s" >> "$log"; }
stamp audit-level5
timeout 400 python3 -m pike_bench.cli audit level5 $C/level5 --out $A/audit5 --max-time 1 --baselines eager >> "$log" 2>&1
stamp accept
if python3 - $A/audit5/audit.json >> "$log" 2>&1 <<'PY'
import json, sys
rows = [r for r in json.load(open(sys.argv[1]))["rows"] if "7_deepseekv3_MOE" in r["task"]]
sys.exit(0 if rows and all(v["status"] in ("correct", "suspicious") for r in rows for v in r["results"].values()) else 1)
PY
then timeout 90 python3 -m pike_bench.cli accept $C/level5/7_deepseekv3_MOE_smallbatch.py --task level5/7_deepseekv3_MOE_smallbatch \
        --solutions $L5/solutions --store $L5/runs.sqlite --max-time 1 --baselines eager --name grouped-gemm >> "$log" 2>&1
        cp $L5/runs.sqlite "$OUT/runs-level5.sqlite"; tar czf "$OUT/level5-solutions.tgz" -C $L5 solutions
else echo "7_MOE not accepted: a policy rejected it, or the audit did not finish" >> "$log"; fi
tar czf "$OUT/audit.tgz" -C $A . 2>/dev/null
stamp throughput
cap=0
export PYTHONUNBUFFERED=1
D=/tmp/throughput
[ $cap -gt 60 ] && python3 benchmarks/throughput.py $D --budget 5 --cap $cap > "$OUT/throughput-stdout.log" 2>&1
tar czf "$OUT/throughput.tgz" -C $D throughput.json throughput.log in-flight-1/runs.sqlite in-flight-2/runs.sqlite 2>/dev/null
stamp end
tail -40 "$log"; tail -5 "$OUT/throughput-stdout.log"
