#!/bin/bash
# Checkpoint engine benchmark: `slurm-resilience ckpt save` against cp and
# rsync on the same tree, warm page cache, medians of RUNS runs.
#
#   bash bench/ckpt.sh
#   NSMALL=5000 SMALL_KB=16 NBIG=4 BIG_MB=64 RUNS=5 CHANGE_PCT=1 \
#   BENCH_DIR=/var/tmp RS_CLI=build/slurm-resilience bash bench/ckpt.sh
#
# Full save      vs  cp -a && sync (the floor), rsync -a --fsync, rsync -a
# Incremental    vs  rsync -a --fsync --link-dest=PREV, rsync -a --delete
#                    (in place), after changing CHANGE_PCT % of the small
#                    files before each run
# Targets (issue 3, 2 cores, warm cache): full <= 1.2x cp -a && sync,
# >= 3x faster than rsync -a --fsync; incremental >= 4x faster than
# rsync --link-dest.  Results and where the time goes: docs/performance.md.
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
CLI=${RS_CLI:-$here/build/slurm-resilience}
NSMALL=${NSMALL:-5000}
SMALL_KB=${SMALL_KB:-16}
NBIG=${NBIG:-4}
BIG_MB=${BIG_MB:-64}
RUNS=${RUNS:-5}
CHANGE_PCT=${CHANGE_PCT:-1}
BENCH_DIR=${BENCH_DIR:-${TMPDIR:-/tmp}}

[ -x "$CLI" ] || { echo "bench: no CLI at $CLI (make, or set RS_CLI)" >&2; exit 1; }
command -v rsync >/dev/null || { echo "bench: rsync is not installed" >&2; exit 1; }

W=$(mktemp -d "$BENCH_DIR/rs-bench.XXXXXX")
trap 'rm -rf "$W"' EXIT
SRC=$W/src

now() { date +%s.%N; }
# t VAR CMD...: run CMD, append its wall time to array VAR
t() {
	local var=$1 t0 t1
	shift
	t0=$(now)
	"$@" >/dev/null
	t1=$(now)
	eval "$var+=(\$(echo \"$t1 - $t0\" | bc -l))"
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
fmt() { printf '%8.3f s' "$1"; }
# spread VAR: "min .. max" of an array, so noise is visible
spread() {
	local -n a=$1
	printf '(%.3f .. %.3f)' "$(printf '%s\n' "${a[@]}" | sort -g | head -1)" \
		"$(printf '%s\n' "${a[@]}" | sort -g | tail -1)"
}
# pmedian A B: median over runs of A[i] / B[i]; each pair ran back to
# back, so a neighbour's load drifting between runs cancels out
pmedian() {
	local -n a=$1 b=$2
	local i out=()
	for i in "${!a[@]}"; do out+=("$(echo "${a[$i]} / ${b[$i]}" | bc -l)"); done
	median "${out[@]}"
}
ratio() { echo "$1 / $2" | bc -l; }
# Every timed run writes into a new directory and nothing is deleted until
# a phase ends.  Deleting thousands of files right before a run would bill
# the next tool for it: on an ext4 without a journal (this machine's root
# file system) every new inode then skips the inodes deleted in the last
# 60 s one by one (ext4 recently_deleted()), which made cp -a 6x slower
# here.  sync before each run: no tool pays for the previous one's data.
settle() { sync; }

echo "== tree: $NSMALL x $SMALL_KB KiB + $NBIG x $BIG_MB MiB in $W ($(df -T "$W" | awk 'NR==2 {print $2}'), $(nproc) cores)"
mkdir -p "$SRC"
per_dir=100
for ((i = 0; i < NSMALL; i++)); do
	d=$SRC/d$((i / per_dir))
	[ -d "$d" ] || mkdir "$d"
	head -c $((SMALL_KB * 1024)) /dev/urandom > "$d/f$i"
done
for ((i = 0; i < NBIG; i++)); do
	head -c $((BIG_MB * 1024 * 1024)) /dev/urandom > "$SRC/big$i"
done
cat $(find "$SRC" -type f) > /dev/null   # warm the page cache
sync
echo "   $(du -sh "$SRC" | cut -f1), $(find "$SRC" | wc -l) entries"

# ------------------------------------------------------------- full save
declare -a T_CKPT=() T_FSYNC=() T_CP=() T_RSF=() T_RS=()
mkdir -p "$W/full"
for ((r = 0; r < RUNS; r++)); do
	F=$W/full/$r
	settle; t T_CKPT "$CLI" ckpt save "$SRC" "$F/ck" --keep 1
	settle; t T_FSYNC env RS_CKPT_SYNC=fsync "$CLI" ckpt save "$SRC" "$F/ckf" --keep 1
	settle; t T_CP sh -c "cp -a '$SRC' '$F/cp' && sync"
	settle; t T_RSF rsync -a --fsync "$SRC/" "$F/rf/"
	settle; t T_RS rsync -a "$SRC/" "$F/rs/"
done
m_ckpt=$(median "${T_CKPT[@]}"); m_fsync=$(median "${T_FSYNC[@]}")
m_cp=$(median "${T_CP[@]}"); m_rsf=$(median "${T_RSF[@]}"); m_rs=$(median "${T_RS[@]}")

echo "== full save, median of $RUNS"
echo "   ckpt save (syncfs, default)     $(fmt "$m_ckpt") $(spread T_CKPT)"
echo "   ckpt save (RS_CKPT_SYNC=fsync)  $(fmt "$m_fsync") $(spread T_FSYNC)"
echo "   cp -a && sync                   $(fmt "$m_cp") $(spread T_CP)"
echo "   rsync -a --fsync                $(fmt "$m_rsf") $(spread T_RSF)"
echo "   rsync -a (not durable)          $(fmt "$m_rs") $(spread T_RS)"

# ------------------------------------------------------ incremental save
# (the full-save copies stay until the end, for the reason above)
nchange=$(( NSMALL * CHANGE_PCT / 100 )); [ $nchange -ge 1 ] || nchange=1
"$CLI" ckpt save "$SRC" "$W/ck" --keep 1000 >/dev/null
rsync -a "$SRC/" "$W/ld0/"
rsync -a "$SRC/" "$W/inplace/"
sync
declare -a I_CKPT=() I_PRUNE=() I_LD=() I_IP=()
prev=$W/ld0
for ((r = 1; r <= RUNS; r++)); do
	# a different CHANGE_PCT % of the small files each run, same size,
	# new content and mtime, as an application rewriting its state
	for ((k = 0; k < nchange; k++)); do
		i=$(( (r * 7919 + k * (NSMALL / nchange)) % NSMALL ))
		head -c $((SMALL_KB * 1024)) /dev/urandom > "$SRC/d$((i / per_dir))/f$i"
	done
	sync
	t I_CKPT "$CLI" ckpt save "$SRC" "$W/ck" --keep 1000
	t I_LD rsync -a --fsync --link-dest="$prev" "$SRC/" "$W/ld$r/"
	prev=$W/ld$r
	t I_IP rsync -a --delete "$SRC/" "$W/inplace/"
	sync
done
# the same incremental save with pruning of the oldest generation
"$CLI" ckpt save "$SRC" "$W/ckp" --keep 2 >/dev/null
"$CLI" ckpt save "$SRC" "$W/ckp" --keep 2 >/dev/null
for ((r = 1; r <= RUNS; r++)); do
	i=$(( (r * 104729) % NSMALL ))
	head -c $((SMALL_KB * 1024)) /dev/urandom > "$SRC/d$((i / per_dir))/f$i"
	sync
	t I_PRUNE "$CLI" ckpt save "$SRC" "$W/ckp" --keep 2
done
m_ickpt=$(median "${I_CKPT[@]}"); m_iprune=$(median "${I_PRUNE[@]}")
m_ild=$(median "${I_LD[@]}"); m_iip=$(median "${I_IP[@]}")

echo "== incremental save, $nchange files ($CHANGE_PCT %) changed, median of $RUNS"
echo "   ckpt save                       $(fmt "$m_ickpt") $(spread I_CKPT)"
echo "   ckpt save --keep 2 (prunes one) $(fmt "$m_iprune") $(spread I_PRUNE)"
echo "   rsync -a --fsync --link-dest    $(fmt "$m_ild") $(spread I_LD)"
echo "   rsync -a --delete (in place)    $(fmt "$m_iip") $(spread I_IP)"
"$CLI" ckpt list "$W/ck" | tail -3 | head -2 | sed 's/^/   /'

verdict() { if [ "$(echo "$1" | bc -l)" = 1 ]; then echo "meets target"; else echo "MISSES target"; fi; }
r1=$(ratio "$m_ckpt" "$m_cp"); r2=$(ratio "$m_rsf" "$m_ckpt"); r3=$(ratio "$m_rs" "$m_ckpt")
r4=$(ratio "$m_ild" "$m_ickpt"); r5=$(ratio "$m_iip" "$m_ickpt"); r6=$(ratio "$m_fsync" "$m_ckpt")
p1=$(pmedian T_CKPT T_CP); p2=$(pmedian T_RSF T_CKPT); p4=$(pmedian I_LD I_CKPT)
echo "== ratios (of medians; in brackets: median of per-run ratios)"
printf '   full: ckpt / (cp -a && sync)          = %5.2f [%5.2f]  (target <= 1.2: %s)\n' "$r1" "$p1" "$(verdict "$r1 <= 1.2")"
printf '   full: (rsync -a --fsync) / ckpt       = %5.2f [%5.2f]  (target >= 3: %s)\n' "$r2" "$p2" "$(verdict "$r2 >= 3")"
printf '   full: (rsync -a) / ckpt               = %5.2f          (reference)\n' "$r3"
printf '   full: ckpt fsync-per-file / syncfs    = %5.2f          (why syncfs is the default)\n' "$r6"
printf '   incr: (rsync --link-dest) / ckpt      = %5.2f [%5.2f]  (target >= 4: %s)\n' "$r4" "$p4" "$(verdict "$r4 >= 4")"
printf '   incr: (rsync -a --delete) / ckpt      = %5.2f          (reference)\n' "$r5"
