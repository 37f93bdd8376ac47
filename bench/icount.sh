#!/bin/sh
# icount.sh - instructions per request of eddyd, measured with callgrind: stable on a
# busy machine where wall-clock ratios are noise. Starts a fresh eddyd (--threads 1)
# under `valgrind --tool=callgrind`, loads 100k keys of 100 bytes, and for each row
# zeroes the counters, drives N requests with redis-benchmark (-c 50, -d 100,
# -r 100000) and dumps. Prints instructions per request of the worker thread (the
# request path; it is eddyd's main thread) and of all threads (RocksDB's background
# flushes and compactions included: they depend on when a memtable fills, so they
# make the write rows noisy).
#
# Usage: sh bench/icount.sh [-n N] [--keep DIR] [ROW ...]
#   -n N        requests per row (default 20000; MSET rows use N/4)
#   --keep DIR  copy each row's callgrind dump to DIR/callgrind.ROW (callgrind_annotate)
#   ROWS  any of: set1 set16 get1 get16 incr1 incr16 mset1 mset16 fcall1 fcall16
#         (default: all)
# Needs valgrind, redis-benchmark, redis-cli.
set -eu

cd "$(dirname "$0")/.."
ROOT=$(pwd)
N=20000
KEEPDIR=""
while [ $# -gt 0 ]; do
    case $1 in
    -n) N=$2; shift 2 ;;
    --keep) KEEPDIR=$2; shift 2 ;;
    *) break ;;
    esac
done
ROWS=${*:-set1 set16 get1 get16 incr1 incr16 mset1 mset16 fcall1 fcall16}
make -s bin/eddyd bin/eddy-bench >/dev/null

TMP=$(mktemp -d "${TMPDIR:-/tmp}/eddy-icount.XXXXXX")
PID=""
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

while :; do # a free port
    PORT=$(awk -v s="$$$(date +%N)" 'BEGIN { srand(s % 1000000007); print int(20000 + rand() * 40000) }')
    ss -Htln "sport = :$PORT" 2>/dev/null | grep -q . || break
done
wait_ready() {
    i=0
    while [ $i -lt 600 ]; do
        [ "$(redis-cli -p "$PORT" ping 2>/dev/null)" = PONG ] && return 0
        kill -0 "$PID" 2>/dev/null || { cat "$TMP/eddy.log" >&2; exit 1; }
        sleep 0.2
        i=$((i + 1))
    done
    echo "icount.sh: eddyd did not start" >&2
    exit 1
}
EDDY="$ROOT/bin/eddyd --port $PORT --bind 127.0.0.1 --dir $TMP/data --threads 1 --appendfsync everysec --logfile $TMP/eddy.log"

# Loaded under callgrind too, so the keys sit in the memtable, as in compare.sh.
# shellcheck disable=SC2086
valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$TMP/cg.%p" $EDDY 2>"$TMP/valgrind.log" &
PID=$!
wait_ready
"$ROOT/bin/eddy-bench" -p "$PORT" -w load -k 100000 -s 100 -c 8 --load-pipeline 64 -q
redis-cli -p "$PORT" -x FUNCTION LOAD REPLACE <"$ROOT/bench/cmplib.lua" >/dev/null

VALUE=$(awk 'BEGIN { for (i = 0; i < 100; i++) printf "v" }')
RB="redis-benchmark -p $PORT -c 50 -d 100 -r 100000 -q"
part=0
echo "row        worker  all-threads   (instructions per request)"
for row in $ROWS; do
    n=$N
    case $row in
    set1) args="-P 1 -t set" ;;        set16) args="-P 16 -t set" ;;
    get1) args="-P 1 -t get" ;;        get16) args="-P 16 -t get" ;;
    incr1) args="-P 1 -t incr" ;;      incr16) args="-P 16 -t incr" ;;
    mset1) args="-P 1 -t mset"; n=$((N / 4)) ;;
    mset16) args="-P 16 -t mset"; n=$((N / 4)) ;;
    fcall1) args="-P 1 FCALL rw 1 key:__rand_int__ $VALUE" ;;
    fcall16) args="-P 16 FCALL rw 1 key:__rand_int__ $VALUE" ;;
    *) echo "icount.sh: unknown row $row" >&2; exit 2 ;;
    esac
    callgrind_control -z "$PID" >/dev/null 2>&1
    # shellcheck disable=SC2086
    $RB -n $n $args >/dev/null
    callgrind_control -d "$row" "$PID" >/dev/null 2>&1
    part=$((part + 1))
    all=0
    worker=0
    for f in "$TMP"/cg.*."$part"-*; do
        ir=$(awk '/^(summary|totals):/ { print $2; exit }' "$f")
        all=$((all + ir))
        case $f in *-01) worker=$ir ;; esac
        if [ -n "$KEEPDIR" ]; then mkdir -p "$KEEPDIR" && cp "$f" "$KEEPDIR/callgrind.$row.${f##*-}"; fi
    done
    [ -n "${ICOUNT_DEBUG:-}" ] && ls -la "$TMP"/cg.* >&2
    awk -v r="$row" -v w="$worker" -v a="$all" -v n="$n" \
        'BEGIN { printf "%-8s %8.0f %8.0f\n", r, w / n, a / n }'
done
