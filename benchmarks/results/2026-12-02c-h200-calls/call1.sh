#!/usr/bin/env bash
# Device call 1 of the evening (one H200), carry [".bwrap"]:
#  1. which sandbox `auto` takes on the GPU machine without bubblewrap and with it (the cuInit
#     probe of issue 19's fix), and what unshare's sandbox shows of the GPU;
#  2. the audit of the kept and flagged candidates under the three check policies (issue 18);
#     the 7_MOE grouped-GEMM candidate accepted into the level-5 record's solutions if every
#     policy passes it;
#  3. level 5's two tasks not yet reached (13, 14) at budget 4, for the time left (issue 15).
set -u
C=benchmarks/results/2026-12-02b-h200-calls/audit-candidates
L5=benchmarks/results/2026-12-02-h200-level5-sweep
python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1
log=$OUT/call1.log; A=/tmp/audit; mkdir -p $A
{ nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
  python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
  date -u; } > "$log"
t0=$(date +%s); stamp() { echo "== $1 at $(( $(date +%s) - t0 )) s" >> "$log"; }
choose='from pike_bench.evaluate.sandbox import Sandbox; s = Sandbox.choose("auto"); print("auto ->", s.tool, "|", s.why_not)'
stamp sandbox-choice
python3 -c "$choose" >> "$log" 2>&1
python3 - >> "$log" 2>&1 <<'PY'
# What the GPU driver finds inside unshare's sandbox.
import subprocess
from pike_bench.evaluate.sandbox import Sandbox, _CUDA_INIT
s = Sandbox("unshare", "/usr/bin/unshare")
probe = ("import os, glob, subprocess, sys; print('dev:', sorted(glob.glob('/dev/nvidia*')));"
         "print('proc driver:', os.path.exists('/proc/driver/nvidia'), os.listdir('/proc/driver/nvidia') if os.path.exists('/proc/driver/nvidia') else '');"
         "print('uvm:', os.access('/dev/nvidia-uvm', os.R_OK | os.W_OK));"
         f"print('cuInit:', subprocess.run([sys.executable, '-c', {_CUDA_INIT!r}]).returncode)")
c = s.prepare(["python3", "-c", probe])
r = subprocess.run(c.argv, env=c.env, capture_output=True, text=True, timeout=60)
print("unshare probe rc", r.returncode, r.stdout, r.stderr[-1500:])
PY
source benchmarks/device_bwrap.sh
python3 -c "$choose" >> "$log" 2>&1
stamp audit-level3
timeout 150 python3 -m pike_bench.cli audit level3 $C/level3 --out $A/audit3 --max-time 1 --baselines eager >> "$log" 2>&1
stamp audit-level5
timeout 150 python3 -m pike_bench.cli audit level5 $C/level5 --out $A/audit5 --max-time 1 --baselines eager >> "$log" 2>&1
stamp accept
if python3 - $A/audit5/audit.json <<'PY'
import json, sys
rows = [r for r in json.load(open(sys.argv[1]))["rows"] if "7_deepseekv3_MOE" in json.dumps(r)]
print(json.dumps(rows)[:2000])
sys.exit(0 if rows and all(v.get("status") in ("correct", "suspicious") for r in rows for v in r["results"].values()) else 1)
PY
then timeout 120 python3 -m pike_bench.cli accept $C/level5/7_deepseekv3_MOE_smallbatch.py --task level5/7_deepseekv3_MOE_smallbatch \
        --solutions $L5/solutions --store $L5/runs.sqlite --max-time 1 --baselines eager --name grouped-gemm >> "$log" 2>&1
else echo "7_MOE not accepted: a policy rejected it" >> "$log"; fi
tar czf "$OUT/audit.tgz" -C $A . 2>/dev/null
stamp level5
left=$(( 560 - ($(date +%s) - t0) ))
[ $left -gt 90 ] && BUDGET=4 bash benchmarks/device_sweep_call.sh $L5 $left call4 -k "level5 and (13_deepseekv3 or 14_llama2)" >> "$log" 2>&1
stamp end
tail -60 "$log"
