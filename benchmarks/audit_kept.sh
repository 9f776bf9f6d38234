#!/usr/bin/env bash
# One device call's audit of a sweep's kept solutions under strict, pike and kernelbench
# (issue 18), resumable: `pike audit` writes OUT_DIR/audit.{json,md} after every verdict,
# and a rerun into the same OUT_DIR (committed and carried in the tree) keeps the verdicts
# of unchanged files and judges only new or changed ones. So the same command, after each
# sweep call, audits what the sweep kept since.
#
#   bash benchmarks/audit_kept.sh SOLUTIONS_DIR LEVEL OUT_DIR SECONDS LOGNAME
#   bash benchmarks/audit_kept.sh benchmarks/results/2026-12-02-h200-level3-sweep/solutions/level3 level3 \
#       benchmarks/results/2026-12-02-h200-level3-sweep/audit 300 audit3
#
# The first .py of each task's folder is judged (a kept solution: best.py, or the name it
# was accepted under). Eager is the only baseline: the policies compare verdicts and the
# speedup over eager, so the suspicious flag is set out of reach (without compile and graph
# baselines it would be measured against eager alone).
set -u
solutions=${1:?SOLUTIONS_DIR}; level=${2:?LEVEL}; out=${3:?OUT_DIR}; cap=${4:?SECONDS}; log=$OUT/${5:?LOGNAME}.log
python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1
source benchmarks/device_bwrap.sh
{ nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
  python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
  python3 -c 'from pike_bench.evaluate.sandbox import Sandbox; s = Sandbox.choose("auto"); print("sandbox", s.tool, s.why_not)'
  date -u; } > "$log" 2>&1
gathered=/tmp/audit-kept-$level; rm -rf "$gathered"; mkdir -p "$gathered" "$out"
for dir in "$solutions"/*/; do cp "$(ls "$dir"*.py | head -1)" "$gathered/$(basename "$dir").py"; done
start=$(date +%s)
timeout "$cap" python3 -m pike_bench.cli audit "$level" "$gathered" --out "$out" --max-time 1 --baselines eager \
    --suspicious-over 1000 >> "$log" 2>&1
echo "== exit $? at $(( $(date +%s) - start )) s" >> "$log"
cp "$out/audit.json" "$OUT/"; [ -f "$out/audit.md" ] && cp "$out/audit.md" "$OUT/"
tail -40 "$log"
