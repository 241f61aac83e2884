#!/bin/bash
# What the plugin costs slurmctld: RPCs per attempt by type and
# slurmctld's time per RPC type (sdiag), the same job array with and
# without --resilience on one private cluster (bench/ctld.py says how).
# Needs root.  Figures: docs/performance.md.
#
#   bash bench/ctld.sh            N=100 tasks, C=20 at a time
#   N=200 C=50 bash bench/ctld.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/ctld.sh: run as root" >&2; exit 1; }
. bench/build-head.inc ctld
echo "== $(nproc) cores, $(slurmctld -V)"
/usr/bin/python3 -u bench/ctld.py "$@"
