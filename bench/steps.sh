#!/bin/bash
# Job steps: what the plugin adds to `srun -n1 true`, in one allocation on
# a private one-node Slurm cluster (started and torn down here), plus the
# supervisor's RSS in a running step.  Needs root (it starts slurmctld and
# slurmd; steps run as the test user rstest).
#
#   bash bench/steps.sh
#   ROUNDS=8 STEPS=40 WARMUP=2 RSS_SAMPLES=3 bash bench/steps.sh
#
# Configurations (round-robin): (a) plugin not loaded, (b) loaded, no
# --resilience, (c) --resilience=ckpt=,scratch=,lead=0 (supervisor); and,
# to find where the time goes, (d) --resilience=retries=1 (active, no
# supervisor), (e) an empty SPANK plugin, (f) the empty plugin linked to
# libcurl and json-c as resilience.so is.
# Targets (issue 4): (b)/(a) <= 1.01, (c)/(a) <= 1.05, supervisor VmRSS
# <= 2 MiB.  Results and where the time goes: docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/steps.sh: run as root" >&2; exit 1; }
. bench/build-head.inc steps
echo "== $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r), $(slurmctld -V)"
/usr/bin/python3 bench/steps.py "$@"
