#!/bin/sh
# hardening_diskfull.sh - eddyd with --dir on a 64 MB tmpfs that fills up: writes get a
# clear error reply (no crash, no hang), reads and PING keep working, writes work again
# once space is freed (after a restart if RocksDB stays read-only: the output says
# which), and nothing acknowledged is lost across the restart. Part two: a write that
# fails appending to the WAL while every memtable is empty leaves writes refused until
# a restart, with a clear error, instead of an abort once space is back. Parts one and
# two run with --min-free-disk 0, to reach RocksDB's own errors. Part three: with
# --min-free-disk 16mb, writes are refused with "disk space low" before RocksDB sees a
# full disk (the free space less what was let through since the cron measured it and
# the write's size, a rewritten value's and a function's staged writes included), reads
# go on, and writes run again without a restart once space is freed.
# Part four: a start after kill -9 with 2 MB free and more WAL than that to replay
# (RocksDB's default flush at recovery needs the space; eddy keeps it in memtables).
# Part five: the threshold's edges (the largest value; 1 GB above it, a pipeline).
# Needs root (mount); without it, or if mount fails, prints a SKIP note and no FAIL.
# Env: EDDYD (default bin/eddyd). Talks to 127.0.0.1 only; cleans up with a trap.
EDDYD=${EDDYD:-bin/eddyd}
CLI=$(command -v redis-cli || true)
[ -n "$CLI" ] || CLI=${EDDY_CLI:-bin/eddy-cli}

mnt=$(mktemp -d /tmp/eddy-full.XXXXXX)
log=$mnt.log # off the tmpfs, so that eddyd's lines about the full disk are kept
pid=
cleanup() {
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    umount "$mnt" 2>/dev/null
    rm -rf "$mnt" "$log"
}
trap cleanup EXIT INT TERM

if [ "$(id -u)" != 0 ] || ! mount -t tmpfs -o size=64m tmpfs "$mnt" 2>/dev/null; then
    echo "SKIP hardening_disk_full: cannot mount a tmpfs (needs root)"
    exit 0
fi

pick_port() { port=$(( 20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 30000 )); }
pick_port
cli() { "$CLI" -h 127.0.0.1 -p "$port" "$@"; }
pass() { echo "PASS hardening_disk_full_$1"; }
fail() { echo "FAIL hardening_disk_full_$1: $2"; tail -5 "$log" 2>/dev/null | sed 's/^/  eddyd: /' >&2; }

# Starts eddyd on $port and waits until it answers as itself (INFO's process_id: the
# random port may be taken, by another server or a connection's local end); if it
# exits because the port is taken, tries another port (5 attempts in all). Arguments:
# more eddyd flags (default --min-free-disk 0).
start() {
    [ $# -gt 0 ] || set -- --min-free-disk 0
    tries=0
    while [ $tries -lt 5 ]; do
        tries=$((tries + 1))
        : >>"$log"
        seen=$(wc -l <"$log")
        "$EDDYD" --port "$port" --bind 127.0.0.1 --dir "$mnt/data" --appendfsync always \
            --memtable-size 4mb --threads 2 "$@" >>"$log" 2>&1 &
        pid=$!
        i=0
        while [ $i -lt 100 ]; do
            [ "$(timeout 2 "$CLI" -h 127.0.0.1 -p "$port" INFO server 2>/dev/null |
                tr -d '\r' | grep '^process_id:')" = "process_id:$pid" ] && return 0
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
            i=$((i + 1))
        done
        kill -0 "$pid" 2>/dev/null && return 1  # alive but silent: a real failure
        wait "$pid" 2>/dev/null
        tail -n +$((seen + 1)) "$log" | grep -q 'Address already in use' || return 1
        pick_port
    done
    return 1
}

# Stops eddyd with SIGTERM; it must exit by itself, with status 0 (an abort at shutdown,
# say on a WAL writer that failed, would be 134).
stop() {
    kill "$pid" 2>/dev/null
    i=0
    while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    if kill -0 "$pid" 2>/dev/null; then
        echo "  eddyd ignored SIGTERM for 10 s on a full disk: kill -9" >&2
        kill -9 "$pid"
    fi
    wait "$pid" 2>/dev/null
    rc=$?
    [ $rc -eq 0 ] || fail "stop_$stops" "eddyd exited with status $rc after SIGTERM"
    stops=$((stops + 1))
    pid=
}
stops=1

# SETs 256 kB values to keys $1:1, $1:2 ... until one is refused (at most $2): acked is
# the last acknowledged, err the refusal.
fill() {
    acked=0
    err=
    n=0
    while [ $n -lt "$2" ]; do
        n=$((n + 1))
        out=$(timeout 20 "$CLI" -h 127.0.0.1 -p "$port" -x SET "$1:$n" <"$val" 2>&1)
        if [ $? -eq 124 ]; then
            err="SET hung for 20 s"
            break
        fi
        if [ "$out" = OK ]; then
            acked=$n
        else
            err=$out
            break
        fi
    done
}

# A filler file gives 8 MB back later.
dd if=/dev/zero of="$mnt/filler" bs=1M count=8 2>/dev/null
val=$(dirname "$mnt")/eddy-full-val.$$
trap 'cleanup; rm -f "$val"' EXIT INT TERM
head -c 262144 /dev/urandom | od -An -tx1 | tr -d ' \n' | head -c 262144 >"$val"

if ! start; then
    fail setup "eddyd did not start on the tmpfs"
    exit 0
fi

# Fill until a write is refused. Every acknowledged key is recorded.
fill full 1000
echo "  disk full after $acked acknowledged 256 kB writes; error: $err" >&2
if ! kill -0 "$pid" 2>/dev/null; then
    fail clear_error "eddyd exited when the disk filled up (last reply: $err)"
    pid=
    start || { fail restart "eddyd does not start again after the disk filled up"; exit 0; }
else
    case "$err" in
    *"storage error"*|*"No space"*|*"OOM"*|*"ERR"*) pass clear_error ;;
    *) fail clear_error "after $acked writes: '$err'" ;;
    esac
    # A failed background flush (the error names a table or blob file) is counted in
    # INFO and logged by eddyd within a second (RocksDB's own LOG keeps no messages).
    case "$err" in
    *.sst*|*.blob*)
        sleep 1.5
        nbg=$(cli INFO persistence | tr -d '\r' | sed -n 's/^engine_background_errors://p')
        if [ "${nbg:-0}" -ge 1 ] && grep -q 'RocksDB background flush or compaction' "$log"; then
            pass background_error_reported
        else
            fail background_error_reported "engine_background_errors '$nbg', or no log line"
        fi ;;
    esac
    # A second write is refused quickly too, reads and PING work.
    out=$(timeout 20 "$CLI" -h 127.0.0.1 -p "$port" SET small x 2>&1)
    echo "  a small SET on the full disk: $out" >&2
    if [ "$(cli PING)" = PONG ] && [ "$(cli STRLEN full:1)" = 262144 ] &&
        [ "$(cli STRLEN "full:$acked")" = 262144 ]; then
        pass reads_and_ping
    else
        fail reads_and_ping "PING or GET of an acknowledged key failed on the full disk"
    fi
fi

# Space comes back.
rm -f "$mnt/filler"
# RocksDB's own recovery from out-of-space errors polls the free space every 5 s, so
# writes come back within a few seconds of the space: retry for up to 20 s.
w=0
while :; do
    out=$(timeout 20 "$CLI" -h 127.0.0.1 -p "$port" SET after:free 1 2>&1)
    [ "$out" = OK ] && break
    w=$((w + 1))
    [ $w -ge 20 ] && break
    sleep 1
done
if [ "$out" = OK ]; then
    echo "  after freeing 8 MB: writes work again without a restart after ${w} s" >&2
    pass writes_resume_without_restart
else
    echo "  after freeing 8 MB: '$out' (RocksDB stays in its background-error state until restart)" >&2
    fail writes_resume_without_restart "SET after freeing space: '$out'"
fi

stop
if ! start; then
    fail restart "eddyd does not start after the disk was full"
    exit 0
fi
out=$(cli SET after:restart 1 2>&1)
[ "$out" = OK ] && pass writes_after_restart || fail writes_after_restart "'$out'"

# Nothing acknowledged is lost.
missing=$(i=1; while [ $i -le "$acked" ]; do echo "STRLEN full:$i"; i=$((i + 1)); done |
    cli 2>&1 | grep -vc '^262144$')
if [ "$missing" = 0 ]; then
    echo "  $acked acknowledged writes checked after restart" >&2
    pass nothing_lost
else
    fail nothing_lost "$missing of $acked acknowledged keys missing or wrong after restart"
fi
stop

# Part two: a write fails appending to the WAL while every memtable is empty (the first
# write to a new store; eddy's start keeps what it recovers in memtables). RocksDB 7.8
# then recovers, once space is back, without a new WAL file, and the next write aborted
# eddyd (Debian's assertion); eddy refuses writes itself until a restart instead.
rm -rf "$mnt/data" "$mnt/filler"
big=$(dirname "$mnt")/eddy-full-big.$$
trap 'cleanup; rm -f "$val" "$big"' EXIT INT TERM
head -c 3000000 /dev/urandom | od -An -tx1 | tr -d ' \n' | head -c 3000000 >"$big"
start || { fail wal_setup "eddyd did not start on the emptied tmpfs"; exit 0; }
avail=$(df -B1 --output=avail "$mnt" | tail -1)
dd if=/dev/zero of="$mnt/filler" bs=4096 count=$(( (avail - 65536) / 4096 )) 2>/dev/null
out=$(timeout 20 "$CLI" -h 127.0.0.1 -p "$port" -x SET wal:big <"$big" 2>&1)
echo "  a 3 MB SET with 64 kB free: $out" >&2
case "$out" in
*".log: "*) ;;
*) fail wal_append_error "the 3 MB SET did not fail appending to the WAL: '$out'" ;;
esac
rm -f "$mnt/filler"
# RocksDB's recovery polls every 5 s: 8 s of writes, one a second, must be refused
# cleanly, and the server must stay up.
w=0
refused=0
while [ $w -lt 8 ]; do
    out=$(timeout 20 "$CLI" -h 127.0.0.1 -p "$port" SET wal:after 1 2>&1)
    case "$out" in *"refused until eddyd restarts"*) refused=$((refused + 1)) ;; esac
    kill -0 "$pid" 2>/dev/null || break
    sleep 1
    w=$((w + 1))
done
info=$(cli INFO persistence | tr -d '\r' | sed -n 's/^engine_writes_refused_until_restart://p')
if [ "$refused" = 8 ] && [ "$info" = 1 ] && [ "$(cli EXISTS wal:big)" = 0 ] &&
    grep -q 'RocksDB would reuse this WAL file' "$log"; then
    pass wal_failed_writes_refused
elif ! kill -0 "$pid" 2>/dev/null; then
    fail wal_failed_writes_refused "eddyd exited after space came back (last reply: '$out')"
    pid=
else
    fail wal_failed_writes_refused "$refused of 8 writes refused, INFO says '$info', last: '$out'"
fi
[ -n "$pid" ] && stop
if start && [ "$(cli SET wal:restart 1)" = OK ] && [ "$(cli GET wal:restart)" = 1 ]; then
    pass wal_writes_after_restart
else
    fail wal_writes_after_restart "no write after the restart"
fi
stop

# Part three: --min-free-disk 16mb. Refused before the disk is full, with nothing of
# RocksDB's errors; freeing space lets writes run again, without a restart.
rm -rf "$mnt/data" "$mnt/filler"
dd if=/dev/zero of="$mnt/filler" bs=1M count=8 2>/dev/null
start --min-free-disk 16mb || { fail threshold_setup "eddyd did not start"; exit 0; }
fill low 400
avail=$(df -B1 --output=avail "$mnt" | tail -1)
echo "  min-free-disk 16mb: refused after $acked 256 kB writes with $((avail >> 20)) MB free: $err" >&2
info=$(cli INFO persistence | tr -d '\r')
# The refusal comes when the free space measured by the last tick, less what was written
# since and the write's size, would go below 16 MB; disk_space_low (the measure alone)
# may still be 0 then, and then it was not logged either.
case "$err" in
*"disk space low"*"below min-free-disk (16.0 MB)"*)
    if [ "$(echo "$info" | sed -n 's/^engine_background_errors://p')" = 0 ] &&
        [ "$(echo "$info" | sed -n 's/^disk_space_low_refused://p')" -ge 1 ] &&
        [ "$avail" -gt $((2 << 20)) ] && [ "$(cli GET low:1 | head -c 16)" = "$(head -c 16 "$val")" ] &&
        [ "$(cli DEL low:1)" = 1 ]; then
        pass threshold_refuses_before_full
    else
        fail threshold_refuses_before_full "INFO, free space ($avail), GET or DEL is wrong"
    fi ;;
*) fail threshold_refuses_before_full "after $acked writes: '$err'" ;;
esac
logged_low=0
grep -q 'Disk space low' "$log" && logged_low=1
rm -f "$mnt/filler"
w=0
out=
while [ $w -lt 30 ]; do
    out=$(cli -x SET low:again <"$val" 2>&1)
    [ "$out" = OK ] && break
    sleep 0.1
    w=$((w + 1))
done
if [ "$out" = OK ] && [ "$(cli INFO persistence | tr -d '\r' | sed -n 's/^disk_space_low://p')" = 0 ] &&
    { [ $logged_low = 0 ] || grep -q 'Disk space back above min-free-disk' "$log"; }; then
    pass threshold_writes_resume
else
    fail threshold_writes_resume "a 256 kB SET after freeing 8 MB: '$out'"
fi
# A function's staged writes stay counted across the cron's ticks until the call ends
# (50 SETs of 1 MB, 150 ms apart: more ticks than SETs before the margin is used), and what
# a command writes beyond its arguments counts too (SETRANGE to a 60 MB offset: more
# than the 64 MB tmpfs has above the threshold): both refused, nothing of the
# function's writes applied.
cli CONFIG SET udf-time-limit 30000 >/dev/null
out=$(cli EVAL "local function us() local t = redis.call('TIME') return t[1] * 1000000 + t[2] end
    for i = 1, 50 do redis.call('SET', 'fn:' .. i, string.rep('x', 1048576))
    local t0 = us(); repeat until us() - t0 > 150000 end; return 'done'" 0 2>&1)
cli CONFIG SET udf-time-limit 5000 >/dev/null
case "$out" in
*"disk space low"*) [ "$(cli EXISTS fn:1)" = 0 ] && pass threshold_counts_function_writes ||
    fail threshold_counts_function_writes "EVAL refused, but its first write is there" ;;
*) fail threshold_counts_function_writes "EVAL staging 50 MB across ticks: '$out'" ;;
esac
out=$(cli SETRANGE big:range 62914560 x 2>&1)
case "$out" in
*"disk space low"*) [ "$(cli EXISTS big:range)" = 0 ] && pass threshold_counts_rewrite ||
    fail threshold_counts_rewrite "SETRANGE refused, but the key exists" ;;
*) fail threshold_counts_rewrite "SETRANGE to 60 MB with 64 MB of tmpfs: '$out'" ;;
esac
stop

# Part four: kill -9 with about 4 MB in the WAL (a 64 MB memtable budget keeps it
# there), then 2 MB free: the start must not need to write the WAL's data out.
rm -rf "$mnt/data" "$mnt/filler"
start --min-free-disk 0 --memtable-size 64mb || { fail crash_start_setup "eddyd did not start"; exit 0; }
fill crash 48
kill -9 "$pid"
wait "$pid" 2>/dev/null
pid=
wal=$(du -cb "$mnt"/data/*.log | tail -1 | cut -f1)
avail=$(df -B1 --output=avail "$mnt" | tail -1)
dd if=/dev/zero of="$mnt/filler" bs=4096 count=$(( (avail - (2 << 20)) / 4096 )) 2>/dev/null
echo "  kill -9 after $acked 256 kB writes, $((wal >> 10)) kB of WAL, start with $(( $(df -B1 --output=avail "$mnt" | tail -1) >> 10 )) kB free" >&2
if [ "$acked" -lt 16 ] || [ "$wal" -lt $((3 << 20)) ]; then
    fail crash_start_full_disk "setup: $acked writes acknowledged, $wal bytes of WAL"
elif start --min-free-disk 0 --memtable-size 64mb; then
    missing=0
    i=1
    while [ $i -le "$acked" ]; do
        [ "$(cli GET "crash:$i" | head -c 64)" = "$(head -c 64 "$val")" ] || missing=$((missing + 1))
        i=$((i + 1))
    done
    [ $missing = 0 ] && pass crash_start_full_disk ||
        fail crash_start_full_disk "$missing of $acked acknowledged keys missing after the start"
    stop
else
    fail crash_start_full_disk "eddyd did not start: $(grep Fatal "$log" | tail -1)"
fi

# Part five: the threshold's edges. On the 64 MB tmpfs, the largest threshold the
# option takes must refuse a value larger than the free space (the margin's arithmetic
# wrapped around once). Then on the tmpfs grown to 1200 MB, more than 1 GB above a
# 100 MB threshold (where small writes are not counted), a pipeline of twelve 100 MB
# SETRANGEs: those past the margin refused, not the disk filled.
rm -rf "$mnt/data" "$mnt/filler"
start --min-free-disk 9223372036854775807 || { fail edges_setup "eddyd did not start"; exit 0; }
head -c 100000000 /dev/zero | tr '\0' 'e' >"$val.big"
out=$(cli -x SET huge <"$val.big" 2>&1)
rm -f "$val.big"
case "$out" in
*"disk space low"*"below min-free-disk"*) pass threshold_largest_refuses ;;
*) fail threshold_largest_refuses "SET of 100 MB (more than the tmpfs has) with min-free-disk 2^63-1: '$out'" ;;
esac
stop
rm -rf "$mnt/data"
if mount -o remount,size=1200m "$mnt" 2>/dev/null; then
    start --min-free-disk 100mb || { fail edges_setup "eddyd did not start on 1200 MB"; exit 0; }
    from=$(wc -l <"$log")
    i=1
    cmds=
    while [ $i -le 12 ]; do
        cmds="${cmds}SETRANGE far:$i 104857599 x\r\n"
        i=$((i + 1))
    done
    out=$(printf "$cmds" | timeout 120 "$CLI" -h 127.0.0.1 -p "$port" --pipe 2>&1 | tail -1)
    avail=$(df -B1 --output=avail "$mnt" | tail -1)
    refused=$(cli INFO persistence | tr -d '\r' | sed -n 's/^engine_writes_refused_until_restart://p')
    echo "  12 pipelined SETRANGEs of 100 MB, 1200 MB tmpfs, 100 MB threshold: $out; $((avail >> 20)) MB free after" >&2
    case "$out" in
    *"errors: 0,"*) fail threshold_far_pipeline "none refused: '$out'" ;;
    *"errors: "*)
        if [ "$avail" -gt $((50 << 20)) ] && [ "$refused" = 0 ] &&
            ! tail -n +$((from + 1)) "$log" | grep -q 'No space left'; then
            pass threshold_far_pipeline
        else
            fail threshold_far_pipeline "$((avail >> 20)) MB free, refused_until_restart $refused"
        fi ;;
    *) fail threshold_far_pipeline "redis-cli --pipe: '$out'" ;;
    esac
    stop
else
    fail threshold_far_pipeline "cannot grow the tmpfs to 1200 MB"
fi
exit 0
