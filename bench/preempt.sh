#!/bin/sh
# preempt.sh - GET latency while a long CPU-bound Lua call runs, eddy vs Redis.
#
# eddy preempts a long call (its coroutine yields every 2 ms slice) so other clients
# keep being served; Redis runs a script to completion and, past busy-reply-threshold
# (lua-time-limit, 5 s by default), answers BUSY to everyone. This measures it:
#   1. eddyd (temp dir, free port, loopback): redis-benchmark -t get, (a) idle, (b) while
#      a 10 s CPU-bound FCALL runs (udf-time-limit raised to 20000 ms);
#      the same with --threads 1, where every GET shares the thread of the long call;
#   2. redis-server (--save '' --appendonly no, temp dir): (a) idle, (b) while an
#      equivalent 10 s EVAL busy loop runs (busy-reply-threshold left at its default).
# For each case: p50 and p99 in ms and requests/s from redis-benchmark's CSV output,
# and errors: the replies to 500 GETs sent one by one by a probe client (redis-cli -r)
# during the same time that were errors (BUSY...), plus for Redis the BUSY count of
# INFO errorstats over the whole run (benchmark and probe).
# Prints a table, the machine, versions, date and the commands. Not part of make test.
# Usage: sh bench/preempt.sh [requests]     (default 50000, so that the benchmark fits
# inside the 10 s call even at the slowest rate; the table says if it did not; EDDYD=bin/eddyd)
EDDYD=${EDDYD:-bin/eddyd}
N=${1:-50000}
CALL_S=10
# The busy loop, the same for both: pure Lua arithmetic, with redis.call('TIME') every
# 10,000 additions to stop after ARGV[1] seconds of wall time (Redis 7.0's Lua has no os
# library). Returns how many rounds of 10,000 additions it did.
LOOP="local t = redis.call('TIME') local stop = (t[1] + t[2] / 1e6) + tonumber(ARGV[1]) local n, x = 0, 0
while true do
  for i = 1, 10000 do x = x + i end
  n = n + 1
  t = redis.call('TIME')
  if t[1] + t[2] / 1e6 >= stop then return n end
end"

for t in redis-benchmark redis-cli; do
    command -v $t >/dev/null 2>&1 || { echo "preempt.sh: $t is required (Debian: redis-tools)" >&2; exit 1; }
done
[ -x "$EDDYD" ] || { echo "preempt.sh: $EDDYD is not built (make)" >&2; exit 1; }
have_redis=yes
command -v redis-server >/dev/null 2>&1 || have_redis=no

tmp=$(mktemp -d /tmp/eddy-preempt.XXXXXX) || exit 1
pids=
cleanup() {
    for p in $pids; do
        kill "$p" 2>/dev/null
    done
    for p in $pids; do
        wait "$p" 2>/dev/null
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
    else
        echo $((($$ * 7 + $(date +%s) + $1 * 7919) % 40000 + 20000))
    fi
}

wait_ready() { # port pid
    i=0
    while [ $i -lt 100 ]; do
        kill -0 "$2" 2>/dev/null || return 1
        [ "$(redis-cli -p "$1" PING 2>/dev/null)" = PONG ] && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

# start_eddy NAME THREADS: sets port and spid.
start_eddy() {
    port=$(free_port 1)
    "$EDDYD" --port "$port" --bind 127.0.0.1 --dir "$tmp/$1" --threads "$2" \
        --udf-time-limit 20000 >"$tmp/$1.log" 2>&1 &
    spid=$!
    pids="$pids $spid"
    wait_ready "$port" "$spid" || { echo "preempt.sh: eddyd did not start" >&2; cat "$tmp/$1.log" >&2; exit 1; }
}

start_redis() {
    port=$(free_port 2)
    mkdir -p "$tmp/redis"
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$tmp/redis" --daemonize no >"$tmp/redis.log" 2>&1 &
    spid=$!
    pids="$pids $spid"
    wait_ready "$port" "$spid" || { echo "preempt.sh: redis-server did not start" >&2; exit 1; }
}

stop_server() {
    kill "$spid" 2>/dev/null
    wait "$spid" 2>/dev/null
}

rows=
# bench NAME: redis-benchmark on $port; sets p50 p99 rps.
bench() {
    redis-benchmark -h 127.0.0.1 -p "$port" -t get -n "$N" -c 10 -r 1000 --csv \
        >"$tmp/$1.csv" 2>"$tmp/$1.err"
    line=$(grep '^"GET' "$tmp/$1.csv" | tail -n 1 | tr -d '"')
    rps=$(echo "$line" | cut -d, -f2)
    p50=$(echo "$line" | cut -d, -f5)
    p99=$(echo "$line" | cut -d, -f7)
    bench_err=
    if [ -z "$rps" ]; then
        rps=-
        p50=-
        p99=-
        # redis-benchmark stops at the first error reply (BUSY): say what it printed.
        bench_err="; redis-benchmark: $(tr '\r' '\n' <"$tmp/$1.err" | grep -i -E 'busy|error' | head -n 1 | cut -c1-90)"
    fi
}

# probe NAME: 500 GETs one by one, 10 ms apart, in the background; errors counted later.
probe_start() {
    redis-cli -h 127.0.0.1 -p "$port" -r 500 -i 0.01 GET key:1 >"$tmp/$1.probe" 2>&1 &
    probe_pid=$!
}
probe_errors() {
    wait "$probe_pid" 2>/dev/null
    n=$(grep -c -E '^(\(error\)|ERR|BUSY|Error)' "$tmp/$1.probe")
    total=$(wc -l <"$tmp/$1.probe" | tr -d ' ')
    echo "$n/$total"
}

row() { # case p50 p99 rps errors note
    rows="$rows$(printf '%-34s %9s %9s %10s %10s  %s' "$1" "$2" "$3" "$4" "$5" "$6")
"
}

# run_eddy LABEL THREADS
run_eddy() {
    start_eddy "eddy$2" "$2"
    redis-cli -p "$port" SET key:1 v >/dev/null
    redis-cli -p "$port" FUNCTION LOAD "#!lua name=bench
redis.register_function('spin', function(KEYS, ARGV)
$LOOP
end)" >/dev/null
    probe_start "$1-idle"
    bench "$1-idle"
    row "$1 idle" "$p50" "$p99" "$rps" "$(probe_errors "$1-idle")" ""
    start=$(date +%s.%N)
    (redis-cli -p "$port" FCALL spin 0 "$CALL_S" >"$tmp/$1.call" 2>&1; date +%s.%N >"$tmp/$1.end") &
    cpid=$!
    sleep 0.3
    probe_start "$1-busy"
    bench "$1-busy"
    bend=$(date +%s.%N)
    running=no
    kill -0 "$cpid" 2>/dev/null && running=yes
    errs=$(probe_errors "$1-busy")
    wait "$cpid"
    cend=$(cat "$tmp/$1.end")
    note=$(awk -v s="$start" -v b="$bend" -v e="$cend" -v r="$running" -v reply="$(head -c 60 "$tmp/$1.call")" \
        'BEGIN { printf "bench %.1fs, call %.1fs (reply: %s), call still running at bench end: %s", b - s, e - s, reply, r }')
    row "$1 during ${CALL_S} s FCALL" "$p50" "$p99" "$rps" "$errs" "$note$bench_err"
    stop_server
}

run_redis() {
    start_redis
    redis-cli -p "$port" SET key:1 v >/dev/null
    probe_start redis-idle
    bench redis-idle
    row "redis idle" "$p50" "$p99" "$rps" "$(probe_errors redis-idle)" ""
    busy0=$(redis-cli -p "$port" INFO errorstats | sed -n 's/^errorstat_BUSY:count=\([0-9]*\).*/\1/p')
    start=$(date +%s.%N)
    (redis-cli -p "$port" EVAL "$LOOP" 0 "$CALL_S" >"$tmp/redis.call" 2>&1; date +%s.%N >"$tmp/redis.end") &
    cpid=$!
    sleep 0.3
    probe_start redis-busy
    bench redis-busy
    bend=$(date +%s.%N)
    running=no
    kill -0 "$cpid" 2>/dev/null && running=yes
    errs=$(probe_errors redis-busy)
    wait "$cpid"
    cend=$(cat "$tmp/redis.end")
    busy1=$(redis-cli -p "$port" INFO errorstats | sed -n 's/^errorstat_BUSY:count=\([0-9]*\).*/\1/p')
    note=$(awk -v s="$start" -v b="$bend" -v e="$cend" -v r="$running" -v b0="${busy0:-0}" -v b1="${busy1:-0}" -v reply="$(head -c 60 "$tmp/redis.call")" \
        'BEGIN { printf "bench %.1fs, call %.1fs (reply: %s), still running at bench end: %s; BUSY replies (errorstats): %d", b - s, e - s, reply, r, b1 - b0 }')
    row "redis during ${CALL_S} s EVAL" "$p50" "$p99" "$rps" "$errs" "$note$bench_err"
    stop_server
}

echo "preempt.sh: GET latency during a ${CALL_S} s CPU-bound Lua call (this takes about a minute)" >&2
run_eddy eddy "$(nproc)"
run_eddy "eddy --threads 1" 1
if [ $have_redis = yes ]; then
    run_redis
else
    echo "preempt.sh: redis-server not installed, Redis rows skipped" >&2
fi

echo "== GET latency while a ${CALL_S} s CPU-bound Lua call runs"
printf '%-34s %9s %9s %10s %10s  %s\n' case p50_ms p99_ms req/s errors note
printf '%s' "$rows"
echo
echo "errors: error replies among the probe's GETs (redis-cli -r 500 -i 0.01) during the run"
echo "call reply: rounds of 10,000 Lua additions the call did in ${CALL_S} s (its share of a CPU)"
echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
echo "versions: $("$EDDYD" --version 2>/dev/null | head -n 1); $(redis-server --version 2>/dev/null | cut -d' ' -f1-3); $(redis-benchmark --version 2>/dev/null | head -n 1)"
echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "command: redis-benchmark -t get -n $N -c 10 -r 1000 --csv; the call: FCALL spin 0 $CALL_S (eddy, udf-time-limit 20000) / EVAL of the same loop (Redis, busy-reply-threshold default); the loop:"
echo "$LOOP" | sed 's/^/    /'
