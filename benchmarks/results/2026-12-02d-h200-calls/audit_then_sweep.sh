#!/usr/bin/env bash
# One device call (one H200, carry [".bwrap"]): the rest of the level-5 audit, then the
# level-3 sweep (issue 16) in the time left, so that one machine start serves both.
#
#   bash benchmarks/results/2026-12-02d-h200-calls/audit_then_sweep.sh LOGNAME AUDIT_SECONDS SWEEP_SECONDS
set -u
bash benchmarks/results/2026-12-02d-h200-calls/audit_kept.sh "$1-audit" "$2"
IN_FLIGHT=2 BUDGET=20 bash benchmarks/device_sweep_call.sh benchmarks/results/2026-12-02-h200-level3-sweep "$3" "$1" -m pike
