#!/usr/bin/env bash
# Third device call of the second 2026-11-30 session (nvidia-h200-x2), after the offline
# proposer's second move was changed (max-autotune-no-cudagraphs under a CUDA graph gave
# wrong outputs and failed captures in the first sweep call):
#   1. scale-out on four quick PIKE-set tasks, budget 3, GPU 0 then GPUs 0 and 1;
#   2. the PIKE-set sweep resumed from its record (sweep/), for what is left of the call.
# Results packed into one file after each step.
# Note, written after this call: the failures blamed on max-autotune above were all on
# GPU 1, whose worker did not make its GPU current (see the README beside this file).
set -u
out=${1:?usage: run_e.sh OUTDIR}
here=benchmarks/results/2026-11-30b-h200x2
mkdir -p "$out"
export PYTHONUNBUFFERED=1
{ nvidia-smi -L; python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"; date -u; } > "$out/machine.txt" 2>&1
pack() { tar -czf "$OUT/results.tgz" "$out" "$here/sweep"; }
start=$SECONDS
timeout -s INT 220 python3 benchmarks/scale_out.py "$out/scale_out.json" --sets "0;0,1" --budget 3 \
    --tasks level3/1_MLP,level3/2_ShallowWideMLP,level3/4_LeNet5,level3/8_ResNetBasicBlock > "$out/scale_out.log" 2>&1
echo "scale_out: exit $? in $((SECONDS - start)) s" >> "$out/machine.txt"
pack
start=$SECONDS
BUDGET=3 bash benchmarks/offline_sweep.sh "$here/sweep" 290 -m pike > "$here/sweep/sweep_2.log" 2>&1
echo "sweep: exit $? in $((SECONDS - start)) s" >> "$out/machine.txt"
pack
cat "$out/machine.txt"
