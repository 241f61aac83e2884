#!/bin/bash
# Cost of the task supervisor per task start, without Slurm: many runs of
# `true` directly vs under build/resilience-supervisor, plus its RSS.
# (The Slurm step benchmark, srun -n1 true with and without the plugin, is
# tests/integration's / docs/performance.md's.)
#
# Usage: bench/supervisor.sh [RUNS]      (default 300 runs per variant)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${RS_BUILD:-$PWD/build}
RUNS=${1:-300}
SUP=$B/resilience-supervisor
make --no-print-directory B="$B" "$SUP" >/dev/null
mkdir -p "$B/tests"
${CC:-cc} -std=gnu11 -D_GNU_SOURCE -O2 -o "$B/tests/supervisor-adopt" tests/supervisor/adopt.c
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/scratch"
TRUE=$(type -P true)
SAVER="--ckpt $tmp/ckpt --scratch $tmp/scratch --ready $tmp/ready --status $tmp/status"

if command -v hyperfine >/dev/null; then
	hyperfine -N --warmup 20 --runs "$RUNS" --export-json "$tmp/h.json" \
		-n direct "$TRUE" \
		-n "supervised (forward, -- mode)" "$SUP --role forward -- $TRUE" \
		-n "supervised (saver, -- mode)" "$SUP $SAVER -- $TRUE" \
		-n "adopt launcher alone (fork + exec true, no supervisor)" "$B/tests/supervisor-adopt $TRUE -- $TRUE" \
		-n "supervised (saver, --pid mode via adopt)" "$B/tests/supervisor-adopt $SUP $SAVER -- $TRUE" \
		>"$tmp/h.out" 2>&1 || { cat "$tmp/h.out"; exit 1; }
	/usr/bin/python3 - "$tmp/h.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
base = r[0]["median"]
print(f"{'variant':58} {'median':>10} {'ratio':>7}")
for x in r:
    print(f"{x['command']:58} {x['median']*1e3:8.3f}ms {x['median']/base:6.2f}x")
PY
else
	# Fallback without hyperfine: total wall time of a loop.
	t() { local s e; s=$(date +%s%N); for ((i = 0; i < RUNS; i++)); do "$@"; done; e=$(date +%s%N); echo $(( (e - s) / RUNS / 1000 )); }
	d=$(t "$TRUE"); s=$(t "$SUP" --role forward -- "$TRUE")
	echo "direct: ${d} us/run, supervised: ${s} us/run"
fi

# Resident memory of a supervisor that is waiting (saver role: the engine
# is linked in), and just after it took a checkpoint.
head -c 1000000 /dev/urandom >"$tmp/scratch/blob"
"$SUP" $SAVER --grace 0 -- sleep 1 &
pid=$!
sleep 0.3
idle=$(awk '/^VmRSS/ {print $2}' /proc/$pid/status)
wait $pid
"$SUP" $SAVER --grace 0 -- sh -c 'trap "" USR1; sleep 1.5' &
pid=$!
sleep 0.3
kill -USR1 $pid
for _ in $(seq 100); do [ -e "$tmp/ckpt/latest" ] && break; sleep 0.02; done
after=$(awk '/^VmRSS/ {print $2}' /proc/$pid/status)
wait $pid 2>/dev/null || true
echo "supervisor VmRSS: ${idle} KiB waiting, ${after} KiB after a checkpoint (target <= 2048 KiB)"
