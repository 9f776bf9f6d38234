#!/usr/bin/env bash
# Device call 2 of the evening (one H200), carry [".bwrap"]: the throughput of the optimizer
# with one task in flight and with two (issue 16, item 1), benchmarks/throughput.py's default
# mixed selection of small and large level-3 tasks, budget 5, at most 235 s per setting.
set -u
python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1
source benchmarks/device_bwrap.sh
{ nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
  python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
  python3 -c 'from pike_bench.evaluate.sandbox import Sandbox; s = Sandbox.choose("auto"); print("sandbox", s.tool, s.why_not)'
  date -u; } > "$OUT/machine.txt" 2>&1
export PYTHONUNBUFFERED=1
D=/tmp/throughput
python3 benchmarks/throughput.py $D --budget 5 --cap 235 > "$OUT/stdout.log" 2>&1
cp $D/throughput.json $D/throughput.log "$OUT/"
for n in 1 2; do cp $D/in-flight-$n/runs.sqlite "$OUT/runs-in-flight-$n.sqlite"; done
tail -8 "$OUT/stdout.log"
