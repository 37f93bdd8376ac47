#!/bin/sh
# compare.sh - eddy and redis-server side by side, on this machine, in one run, with the
# same clients: redis-benchmark for SET/GET/INCR/MSET/FCALL and eddy-bench for YCSB A and
# B. Writes the eddy/redis throughput ratios (min/median/max over the repetitions) into
# bench/RESULTS.md (between its compare.sh markers) and a plot into bench/plot/ratios.svg.
#
# Usage: sh bench/compare.sh [--quick] [--reps N] [--keep] [--eddy-args "ARGS"]
#   --quick   one repetition with fewer operations (about 30 seconds)
#   --reps N  repetitions (default 3; a full run takes about 2 minutes)
#   --keep    keep the temporary directory (logs, raw results) and print its path
#   --eddy-args "ARGS"  more eddyd options (e.g. "--threads 2"), shown in the table
# Needs redis-server, redis-benchmark and redis-cli (Debian redis-server, redis-tools;
# `make deps` installs them). Everything listens on 127.0.0.1 and is stopped on exit.
set -eu

cd "$(dirname "$0")/.."
ROOT=$(pwd)
REPS=3
QUICK=0
KEEP=0
EDDY_ARGS=""
while [ $# -gt 0 ]; do
    case $1 in
    --quick) QUICK=1; REPS=1 ;;
    --reps) shift; REPS=$1 ;;
    --reps=*) REPS=${1#*=} ;;
    --keep) KEEP=1 ;;
    --eddy-args) shift; EDDY_ARGS=$1 ;;
    --eddy-args=*) EDDY_ARGS=${1#*=} ;;
    -h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "compare.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
case $REPS in '' | *[!0-9]*) echo "compare.sh: bad --reps" >&2; exit 2 ;; esac

for t in redis-server redis-benchmark redis-cli; do
    command -v $t >/dev/null 2>&1 || { echo "compare.sh: $t not found (make deps)" >&2; exit 1; }
done
echo "== building"
make -s bin/eddyd bin/eddy-bench >/dev/null
# The tree as measured (before this script writes its plot and RESULTS.md).
GITREV=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain 2>/dev/null | head -1)" ]; then GITREV="$GITREV (with uncommitted changes)"; fi

if [ $QUICK = 1 ]; then N1=30000; N16=150000; YDUR=3; else N1=50000; N16=250000; YDUR=5; fi
KEYS=100000
VSIZE=100
CONNS=50

TMP=$(mktemp -d "${TMPDIR:-/tmp}/eddy-compare.XXXXXX")
RPID=""
EPID=""
cleanup() {
    [ -n "$RPID" ] && kill "$RPID" 2>/dev/null && wait "$RPID" 2>/dev/null
    [ -n "$EPID" ] && kill "$EPID" 2>/dev/null && wait "$EPID" 2>/dev/null
    if [ $KEEP = 1 ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A free port: random in 20000-59999, checked with a connection attempt.
pick_port() {
    while :; do
        p=$(awk -v s="$$$(date +%N)" 'BEGIN { srand(s % 1000000007); print int(20000 + rand() * 40000) }')
        redis-cli -h 127.0.0.1 -p "$p" ping >/dev/null 2>&1 || { echo "$p"; return; }
    done
}

wait_ready() { # port pid name
    i=0
    while [ $i -lt 100 ]; do
        [ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" = PONG ] && return 0
        kill -0 "$2" 2>/dev/null || break
        sleep 0.1
        i=$((i + 1))
    done
    echo "compare.sh: $3 did not start; its log:" >&2
    cat "$TMP/$3.log" >&2
    exit 1
}

echo "== starting redis-server and eddyd"
RPORT=$(pick_port)
mkdir -p "$TMP/redis" "$TMP/eddy"
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly yes \
    --appendfsync everysec --dir "$TMP/redis" --logfile "$TMP/redis.log" &
RPID=$!
wait_ready "$RPORT" "$RPID" redis
EPORT=$(pick_port)
"$ROOT/bin/eddyd" --port "$EPORT" --bind 127.0.0.1 --dir "$TMP/eddy" --appendfsync everysec \
    --logfile "$TMP/eddy.log" $EDDY_ARGS &
EPID=$!
wait_ready "$EPORT" "$EPID" eddy

# The FCALL library (bench/cmplib.lua): one function that reads and writes one key.
VALUE=$(awk -v n=$VSIZE 'BEGIN { while (n-- > 0) printf "v"; }')

echo "== loading $KEYS keys of $VSIZE bytes into both"
for port in $RPORT $EPORT; do
    "$ROOT/bin/eddy-bench" -p "$port" -w load -k $KEYS -s $VSIZE -c 8 --load-pipeline 64 -q
    redis-cli -h 127.0.0.1 -p "$port" -x FUNCTION LOAD REPLACE <"$ROOT/bench/cmplib.lua" >/dev/null
    [ "$(redis-cli -h 127.0.0.1 -p "$port" DBSIZE)" -ge $KEYS ] || { echo "load failed on $port" >&2; exit 1; }
done

# The rows: name, then the command with PORT where the port goes.
RB="redis-benchmark -h 127.0.0.1 -p PORT -c $CONNS -d $VSIZE -r $KEYS --csv"
EB="$ROOT/bin/eddy-bench -h 127.0.0.1 -p PORT -c $CONNS -k $KEYS -s $VSIZE -d $YDUR -q --json JSON"
cat >"$TMP/rows" <<EOF
SET P1|$RB -n $N1 -P 1 -t set
SET P16|$RB -n $N16 -P 16 -t set
GET P1|$RB -n $N1 -P 1 -t get
GET P16|$RB -n $N16 -P 16 -t get
INCR P1|$RB -n $N1 -P 1 -t incr
INCR P16|$RB -n $N16 -P 16 -t incr
MSET(10) P1|$RB -n $((N1 / 4)) -P 1 -t mset
MSET(10) P16|$RB -n $((N16 / 10)) -P 16 -t mset
FCALL rw P1|$RB -n $N1 -P 1 FCALL rw 1 key:__rand_int__ $VALUE
FCALL rw P16|$RB -n $N16 -P 16 FCALL rw 1 key:__rand_int__ $VALUE
YCSB-A zipf0.99|$EB -w ycsb-a --theta 0.99
YCSB-B zipf0.99|$EB -w ycsb-b --theta 0.99
EOF

# Runs one row against one port; prints ops/s.
run_one() { # command port
    cmd=$(printf '%s' "$1" | sed "s|PORT|$2|; s|JSON|$TMP/out.json|")
    case $cmd in
    redis-benchmark*)
        # shellcheck disable=SC2086
        $cmd 2>/dev/null | awk -F'"' 'NR == 2 { print $4 }' ;;
    *)
        rm -f "$TMP/out.json"
        # shellcheck disable=SC2086
        $cmd >/dev/null
        awk -F': ' '/"ops_per_sec"/ { sub(/,$/, "", $2); print $2; exit }' "$TMP/out.json" ;;
    esac
}

: >"$TMP/results"
START=$(date +%s)
rep=1
while [ $rep -le "$REPS" ]; do
    echo "== repetition $rep of $REPS"
    while IFS='|' read -r name cmd; do
        # Alternate which server goes first, so drift over time favours neither.
        if [ $((rep % 2)) = 1 ]; then order="redis eddy"; else order="eddy redis"; fi
        for server in $order; do
            if [ $server = redis ]; then port=$RPORT; else port=$EPORT; fi
            ops=$(run_one "$cmd" "$port")
            [ -n "$ops" ] || ops=0
            printf '%s\t%s\t%s\t%s\n' "$name" "$rep" "$server" "$ops" >>"$TMP/results"
            printf '  %-18s %-6s %12.0f ops/s\n' "$name" "$server" "$ops"
        done
    done <"$TMP/rows"
    rep=$((rep + 1))
done
ELAPSED=$(($(date +%s) - START))

# ---- Table -------------------------------------------------------------------------------
# For each row: the ratio eddy/redis per repetition, then min/median/max, and the median
# throughput of each server.
awk -F'\t' '
    { v[$1, $2, $3] = $4; if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 } if ($2 > reps) reps = $2 }
    function sort(a, k,   i, j, t) { for (i = 2; i <= k; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t } }
    function med(a, k) { sort(a, k); return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2 }
    END {
        for (i = 1; i <= n; i++) {
            r = order[i]; k = 0
            for (j = 1; j <= reps; j++) {
                k++; red[k] = v[r, j, "redis"]; edd[k] = v[r, j, "eddy"]
                rat[k] = red[k] > 0 ? edd[k] / red[k] : 0
            }
            mr = med(red, k); me = med(edd, k); sort(rat, k)
            printf "%s\t%.0f\t%.0f\t%.2f\t%.2f\t%.2f\n", r, mr, me, rat[1], med(rat, k), rat[k]
        }
    }' "$TMP/results" >"$TMP/table"

# ---- Plot --------------------------------------------------------------------------------
mkdir -p bench/plot
awk -F'\t' -v title="eddy / redis-server throughput (min-median-max over $REPS run(s))" '
    { name[NR] = $1; lo[NR] = $4; md[NR] = $5; hi[NR] = $6; if ($6 > top) top = $6 }
    END {
        n = NR; if (top < 1.2) top = 1.2; top = int(top * 5 + 1) / 5
        L = 150; W = 560; H = 26; T = 40
        h = T + n * H + 40
        sx = W / top
        printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"12\">\n", L + W + 60, h
        printf "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
        printf "<text x=\"%d\" y=\"20\" font-size=\"14\">%s</text>\n", 10, title
        for (t = 0; t <= top + 1e-9; t += 0.2) {
            x = L + t * sx
            printf "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#ddd\"/>\n", x, T - 5, x, T + n * H
            printf "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" fill=\"#555\">%.1f</text>\n", x, T + n * H + 15, t
        }
        for (i = 1; i <= n; i++) {
            y = T + (i - 1) * H
            col = md[i] >= 1 ? "#4a9a4a" : "#c0504d"
            printf "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s</text>\n", L - 8, y + 16, name[i]
            printf "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"16\" fill=\"%s\" opacity=\"0.8\"/>\n", L, y + 4, md[i] * sx, col
            printf "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"black\"/>\n", L + lo[i] * sx, y + 12, L + hi[i] * sx, y + 12
            printf "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"black\"/>\n", L + lo[i] * sx, y + 7, L + lo[i] * sx, y + 17
            printf "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"black\"/>\n", L + hi[i] * sx, y + 7, L + hi[i] * sx, y + 17
            printf "<text x=\"%.1f\" y=\"%d\" fill=\"#333\">%.2f</text>\n", L + hi[i] * sx + 6, y + 16, md[i]
        }
        printf "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#333\" stroke-dasharray=\"4 3\"/>\n", L + sx, T - 5, L + sx, T + n * H
        printf "<text x=\"%d\" y=\"%d\" fill=\"#555\">ratio (1.0 = parity; right of the line, eddy is faster)</text>\n", L, T + n * H + 32
        printf "</svg>\n"
    }' "$TMP/table" >bench/plot/ratios.svg

# ---- RESULTS.md ----------------------------------------------------------------------------
CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || echo unknown)
OS=$( (. /etc/os-release 2>/dev/null && printf '%s' "$PRETTY_NAME") || uname -s)
ROCKS=$(dpkg-query -W -f='${Version}' librocksdb-dev 2>/dev/null || pkg-config --modversion rocksdb 2>/dev/null || echo unknown)
EDDYV=$("$ROOT/bin/eddyd" --version 2>&1 | head -1)
REDISV=$(redis-server --version | head -1)

{
    echo "<!-- compare.sh:begin (generated by sh bench/compare.sh; edits here are overwritten) -->"
    echo "## Last run"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $REPS repetition(s)$([ $QUICK = 1 ] && echo ', --quick'), $ELAPSED s of measurement."
    echo
    echo "| | |"
    echo "|---|---|"
    echo "| machine | $(nproc) CPUs, $CPU, $(uname -r) |"
    echo "| OS | $OS |"
    echo "| eddy | $EDDYV, git $GITREV |"
    echo "| redis | $REDISV |"
    echo "| RocksDB | $ROCKS |"
    echo "| durability | both append-only with fsync every second; redis without RDB snapshots |"
    echo
    echo "Throughput in ops/s (median over the repetitions) and the ratio eddy/redis"
    echo "(min / median / max over the repetitions; above 1.0 eddy is faster)."
    echo
    echo "| workload | redis ops/s | eddy ops/s | ratio min | ratio median | ratio max |"
    echo "|---|---:|---:|---:|---:|---:|"
    awk -F'\t' '{ printf "| %s | %s | %s | %s | **%s** | %s |\n", $1, $2, $3, $4, $5, $6 }' "$TMP/table"
    echo
    echo "![ratios](plot/ratios.svg)"
    echo
    echo "Commands (PORT is redis-server's or eddyd's; each row ran against both, alternating"
    echo "which went first; $KEYS keys of $VSIZE bytes loaded first with"
    echo "\`eddy-bench -w load -k $KEYS -s $VSIZE -c 8 --load-pipeline 64\`):"
    echo
    echo '```'
    echo "redis-server --port PORT --bind 127.0.0.1 --save '' --appendonly yes --appendfsync everysec --dir TMP"
    echo "bin/eddyd --port PORT --bind 127.0.0.1 --dir TMP --appendfsync everysec${EDDY_ARGS:+ $EDDY_ARGS}"
    echo "redis-cli -p PORT -x FUNCTION LOAD REPLACE < bench/cmplib.lua   # rw(key, value) = GET then SET"
    sed "s|$ROOT/||; s|--json JSON|--json out.json|; s|$VALUE|<$VSIZE-byte value>|" "$TMP/rows" |
        awk -F'|' '{ printf "%-16s %s\n", $1 ":", $2 }'
    echo '```'
    echo "<!-- compare.sh:end -->"
} >"$TMP/generated.md"

RES=bench/RESULTS.md
if [ -f $RES ] && grep -q '^<!-- compare.sh:begin' $RES && grep -q '^<!-- compare.sh:end' $RES; then
    awk -v gen="$TMP/generated.md" '
        /^<!-- compare.sh:begin/ { while ((getline l < gen) > 0) print l; skip = 1; next }
        /^<!-- compare.sh:end/ { skip = 0; next }
        !skip' $RES >"$TMP/RESULTS.md"
else
    { echo "# Benchmarks: eddy side by side with redis-server"; echo; cat "$TMP/generated.md"; } >"$TMP/RESULTS.md"
fi
cp "$TMP/RESULTS.md" $RES
echo
cat "$TMP/table" | awk -F'\t' 'BEGIN { printf "%-18s %12s %12s %6s %6s %6s\n", "workload", "redis", "eddy", "min", "median", "max" }
    { printf "%-18s %12s %12s %6s %6s %6s\n", $1, $2, $3, $4, $5, $6 }'
echo "wrote $RES and bench/plot/ratios.svg"
