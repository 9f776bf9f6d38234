#!/usr/bin/env bash
# The calls of this folder (one H200, carry [".bwrap"]): the level-5 kept solutions in one
# audit under audit/, resumed across calls (audit/audit.json was started from call 1's
# group 2: same code, its seed 444204471).
#
#   bash benchmarks/results/2026-12-02d-h200-calls/audit_kept.sh LOGNAME SECONDS
bash benchmarks/audit_kept.sh benchmarks/results/2026-12-02-h200-level5-sweep/solutions/level5 level5 \
    benchmarks/results/2026-12-02d-h200-calls/audit "$2" "$1"
