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
# The device image has no bubblewrap: where the call carries .bwrap (Debian 12's packages of
# bubblewrap and its libraries: `mkdir .bwrap && cd .bwrap && apt-get download bubblewrap
# libcap2 libselinux1 libpcre2-8-0`), unpack it and put a bwrap on PATH, so that candidates
# run sandboxed there too (measured to work with CUDA on the H200 machine).
if [ -d .bwrap ]; then
    root=/tmp/pike-bwrap; mkdir -p "$root/wrapped"
    for deb in .bwrap/*.deb; do dpkg-deb -x "$deb" "$root"; done
    printf '#!/bin/sh\nLD_LIBRARY_PATH=%s exec %s "$@"\n' \
        "$root/lib/x86_64-linux-gnu:$root/usr/lib/x86_64-linux-gnu" "$root/usr/bin/bwrap" > "$root/wrapped/bwrap"
    chmod +x "$root/wrapped/bwrap"; export PATH="$root/wrapped:$PATH"
fi
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
