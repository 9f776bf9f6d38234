#!/usr/bin/env bash
# One device call of a resumable offline sweep, with everything that must come back
# copied flat under $OUT (the device tool returns at most 8 files of 16 MiB, two folders
# down): the record gzipped (runs.sqlite.gz: level 3's record passed 16 MiB in call 12
# and did not come back), the log, record.tgz (machine line, leaderboard, solutions) and
# inductor-cache.tgz (the compile baselines' code of the unfinished tasks, git-ignored)
# where it fits. Carry RECORD_DIR/inductor-cache.tgz into the next call: it is unpacked
# here, so that the baselines load instead of compiling again.
#
#   BUDGET=4 bash benchmarks/device_sweep_call.sh RECORD_DIR SECONDS LOGNAME [pytest selection...]
set -u
dir=${1:?RECORD_DIR}; cap=${2:?SECONDS}; log=${3:?LOGNAME}; shift 3
python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1
source benchmarks/device_bwrap.sh
mkdir -p "$dir"
# A record kept gzipped in the repository (its working tree must stay under 64 MiB to
# travel) is unpacked here; the gzipped file is the truth, over any copy left on the machine.
[ -f "$dir/runs.sqlite.gz" ] && gunzip -c "$dir/runs.sqlite.gz" > "$dir/runs.sqlite"
[ -f "$dir/inductor-cache.tgz" ] && [ ! -d "$dir/inductor-cache" ] && tar xzf "$dir/inductor-cache.tgz" -C "$dir"
{ nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
  python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
  date -u; echo "started_at $(date +%s)"; } > "$dir/machine_$log.txt"
start=$(date +%s)
bash benchmarks/offline_sweep.sh "$dir" "$cap" "$@" > "$dir/$log.log" 2>&1
echo "wall_s $(( $(date +%s) - start ))" >> "$dir/machine_$log.txt"
tail -40 "$dir/$log.log"
gzip -c "$dir/runs.sqlite" > "$OUT/runs.sqlite.gz"
cp "$dir/$log.log" "$OUT/"
tar czf "$OUT/record.tgz" -C "$dir" "machine_$log.txt" leaderboard $( [ -d "$dir/solutions" ] && echo solutions)
# The compile baselines' code comes back when it fits the device tool's 16 MiB per file,
# one folder per task (LEVEL/NAME); a task without an unfinished run in the record never
# builds its baselines again (a resumed run, at the same or another budget, is unfinished),
# so its folder stays behind.
if [ -d "$dir/inductor-cache" ]; then
    python3 - "$dir" <<'PRUNE'
import json, shutil, sqlite3, sys
from pathlib import Path
record = Path(sys.argv[1])
with sqlite3.connect(record / "runs.sqlite") as db:
    unfinished = {json.loads(config)["task"] for config, in db.execute("select config from runs where finished_at is null")}
for folder in (record / "inductor-cache").glob("*/*/"):
    if folder.relative_to(record / "inductor-cache").as_posix() not in unfinished:
        shutil.rmtree(folder)
PRUNE
    du -sh "$dir/inductor-cache"
    tar czf /tmp/inductor-cache.tgz -C "$dir" inductor-cache
    [ "$(stat -c %s /tmp/inductor-cache.tgz)" -lt 16000000 ] && cp /tmp/inductor-cache.tgz "$OUT/"
fi
ls -la "$OUT"
# Said in the output, which always comes back: a file over the tool's limit does not.
for f in "$OUT"/*; do
    [ "$(stat -c %s "$f")" -ge 16777216 ] && echo "device_sweep_call: $(basename "$f") is over 16 MiB and will not come back"
done
true
