#!/bin/sh
# redis_cli.sh - eddyd driven by the stock Redis tools (redis-cli, redis-benchmark from
# Debian's redis-tools) and by eddy-cli. Starts its own eddyd on a free port with a
# temporary directory, and prints one "PASS name" or "FAIL name: why" line per check.
# Usage: EDDYD=bin/eddyd EDDY_CLI=bin/eddy-cli sh tests/integration/redis_cli.sh
# Without redis-cli (or redis-benchmark) those checks print nothing; a note goes to stderr.
EDDYD=${EDDYD:-bin/eddyd}
EDDY_CLI=${EDDY_CLI:-bin/eddy-cli}
tmp=$(mktemp -d /tmp/eddy-cli-test.XXXXXX) || exit 1
pid=
cleanup() {
    if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

pass() { echo "PASS $1"; }
fail() {
    echo "FAIL $1: $2"
    [ -f "$tmp/eddyd.log" ] && tail -n 5 "$tmp/eddyd.log" | sed 's/^/  eddyd: /' >&2
}

have_rcli=no
have_bench=no
command -v redis-cli >/dev/null 2>&1 && have_rcli=yes
command -v redis-benchmark >/dev/null 2>&1 && have_bench=yes
[ $have_rcli = yes ] || echo "redis_cli.sh: redis-cli not installed, skipping its checks" >&2
[ $have_bench = yes ] || echo "redis_cli.sh: redis-benchmark not installed, skipping it" >&2

# Talks to the server with eddy-cli (always built) so readiness does not need redis-cli.
ecli() { "$EDDY_CLI" -p "$port" "$@"; }
rcli() { redis-cli -p "$port" "$@"; }

# Starts eddyd on a random free-looking port; retries on another port if it fails.
start_server() {
    tries=0
    while [ $tries -lt 5 ]; do
        tries=$((tries + 1))
        port=$((($$ * 7 + $(date +%s) + tries * 7919) % 40000 + 20000))
        "$EDDYD" --port "$port" --bind 127.0.0.1 --dir "$tmp/data" --threads 2 \
            >>"$tmp/eddyd.log" 2>&1 &
        pid=$!
        i=0
        while [ $i -lt 100 ]; do
            kill -0 "$pid" 2>/dev/null || break
            [ "$(ecli PING 2>/dev/null)" = PONG ] && return 0
            sleep 0.1
            i=$((i + 1))
        done
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        pid=
    done
    return 1
}

if [ ! -x "$EDDYD" ] || [ ! -x "$EDDY_CLI" ]; then
    echo "FAIL redis_cli_setup: $EDDYD or $EDDY_CLI is not built"
    exit 1
fi
if ! start_server; then
    fail redis_cli_setup "eddyd did not start"
    exit 1
fi

# check NAME EXPECTED ACTUAL
check() {
    if [ "$2" = "$3" ]; then
        pass "$1"
    else
        want=$(printf '%s' "$2" | tr '\n' '|')
        fail "$1" "expected '$want', got '$(printf '%s' "$3" | tr '\n' '|')'"
    fi
}

# A binary file: every byte value, CR LF pairs, NULs, and 100 KB of random bytes.
awk 'BEGIN { for (i = 1; i < 256; i++) printf "%c", i; printf "\r\n\r\n" }' >"$tmp/bin"
printf '\000\000\r\n\000' >>"$tmp/bin"
head -c 100000 /dev/urandom >>"$tmp/bin"
printf '\r\n' >>"$tmp/bin"
binsize=$(wc -c <"$tmp/bin" | tr -d ' ')

# same_bytes NAME FILE: FILE must be $tmp/bin plus the newline --raw output adds.
same_bytes() {
    got=$(wc -c <"$2" | tr -d ' ')
    if [ "$got" -ne $((binsize + 1)) ]; then
        fail "$1" "$got bytes back for $binsize sent (+1 newline)"
    elif ! head -c "$binsize" "$2" | cmp -s - "$tmp/bin"; then
        fail "$1" "the bytes differ: $(head -c "$binsize" "$2" | cmp - "$tmp/bin" 2>&1)"
    elif [ "$(tail -c 1 "$2" | od -An -c | tr -d ' ')" != '\n' ]; then
        fail "$1" "no trailing newline"
    else
        pass "$1"
    fi
}

# ---- eddy-cli ----------------------------------------------------------------------------
check eddy_cli_set "OK" "$(ecli SET ec:k 'hello world')"
check eddy_cli_get "hello world" "$(ecli GET ec:k)"
check eddy_cli_incr "1" "$(ecli INCR ec:n)"
check eddy_cli_no_raw_incr "(integer) 2" "$(ecli --no-raw INCR ec:n)"
check eddy_cli_mget_raw "hello world

2" "$(ecli MGET ec:k ec:nokey ec:n)"
check eddy_cli_no_raw_mget '1) "hello world"
2) (nil)
3) "2"' "$(ecli --no-raw MGET ec:k ec:nokey ec:n)"
check eddy_cli_error "ERR wrong number of arguments for 'get' command" "$(ecli GET 2>&1)"
check eddy_cli_x_set "OK" "$(ecli -x SET ec:bin <"$tmp/bin")"
ecli --raw GET ec:bin >"$tmp/out.eddy"
same_bytes eddy_cli_x_binary_roundtrip "$tmp/out.eddy"
check eddy_cli_strlen "$binsize" "$(ecli STRLEN ec:bin)"
check eddy_cli_stdin_commands "OK
5
5" "$(printf 'SET ec:s 4\nINCR ec:s\nGET ec:s\n' | ecli)"

# ---- redis-cli ---------------------------------------------------------------------------
if [ $have_rcli = yes ]; then
    check redis_cli_ping "PONG" "$(rcli PING)"
    check redis_cli_set "OK" "$(rcli SET rc:k v1)"
    check redis_cli_get "v1" "$(rcli GET rc:k)"
    check redis_cli_get_missing "" "$(rcli GET rc:nokey)"
    check redis_cli_incr "1
2
3" "$(rcli INCR rc:n; rcli INCR rc:n; rcli INCR rc:n)"
    check redis_cli_no_raw "(integer) 4" "$(rcli --no-raw INCR rc:n)"
    check redis_cli_mset "OK" "$(rcli MSET rc:a 1 rc:b 2)"
    check redis_cli_mget "1
2

v1" "$(rcli MGET rc:a rc:b rc:nokey rc:k)"
    check redis_cli_mget_no_raw '1) "1"
2) "2"
3) (nil)' "$(rcli --no-raw MGET rc:a rc:b rc:nokey)"
    check redis_cli_raw_multiline "a
b" "$(rcli --raw ECHO 'a
b')"
    check redis_cli_error "ERR unknown command 'nosuch', with args beginning with: 'x' " \
        "$(rcli nosuch x 2>&1)"
    check redis_cli_ttl "OK
100" "$(rcli SET rc:t v EX 100; rcli TTL rc:t)"
    check redis_cli_x_set "OK" "$(rcli -x SET rc:bin <"$tmp/bin")"
    rcli --raw GET rc:bin >"$tmp/out.redis"
    same_bytes redis_cli_x_binary_roundtrip "$tmp/out.redis"
    # Written by one client, read by the other.
    ecli --raw GET rc:bin >"$tmp/out.cross"
    same_bytes redis_cli_to_eddy_cli_binary "$tmp/out.cross"
    rcli --raw GET ec:bin >"$tmp/out.cross2"
    same_bytes eddy_cli_to_redis_cli_binary "$tmp/out.cross2"
    check redis_cli_stdin_commands "OK
2
2" "$(printf 'SET rc:s 1\nINCR rc:s\nGET rc:s\n' | rcli)"
    # Mass insertion with --pipe (raw RESP on stdin, then its ECHO marker).
    awk 'BEGIN { for (i = 0; i < 10000; i++) {
        k = "pipe:" i; v = "v" i
        printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", length(k), k, length(v), v } }' \
        >"$tmp/pipe"
    out=$(rcli --pipe <"$tmp/pipe" 2>&1)
    case "$out" in
    *"errors: 0, replies: 10000"*) pass redis_cli_pipe_10000 ;;
    *) fail redis_cli_pipe_10000 "$(printf '%s' "$out" | tail -n 1)" ;;
    esac
    check redis_cli_pipe_values "v9999" "$(rcli GET pipe:9999)"
    n=$(rcli --scan --pattern 'pipe:*' | wc -l | tr -d ' ')
    check redis_cli_scan_pattern 10000 "$n"
    check redis_cli_info "redis_version:7.0.0" \
        "$(rcli INFO server | tr -d '\r' | grep '^redis_version:')"
    check redis_cli_dbsize 10011 "$(rcli DBSIZE)"
fi

# ---- redis-benchmark ---------------------------------------------------------------------
# bench NAME EXTRA-ARGS: the four tests finish, no error reply (redis-benchmark 7 prints
# "Error from server" and exits at the first one), and the INCR counter is exact.
bench() {
    rcli FLUSHALL >/dev/null
    redis-benchmark -p "$port" -t set,get,incr,mset -n 20000 -c 50 -q $2 >"$tmp/bench" 2>&1
    status=$?
    out=$(tr '\r' '\n' <"$tmp/bench")
    done_tests=$(printf '%s\n' "$out" | grep -c 'requests per second')
    errs=$(printf '%s\n' "$out" | grep -i -m 3 'error\|ERR ')
    ctr=$(rcli GET counter:__rand_int__)
    if [ $status -ne 0 ]; then
        fail "$1" "redis-benchmark exited with $status"
    elif [ -n "$errs" ]; then
        fail "$1" "error replies: $(printf '%s' "$errs" | head -n 1)"
    elif [ "$done_tests" -ne 4 ]; then
        fail "$1" "$done_tests of 4 tests finished: $(printf '%s' "$out" | tail -n 2 | tr '\n' '|')"
    elif [ "$ctr" != 20000 ]; then
        fail "$1" "counter:__rand_int__ is '$ctr' after 20000 INCRs"
    else
        pass "$1"
    fi
}
if [ $have_bench = yes ] && [ $have_rcli = yes ]; then
    bench redis_benchmark_set_get_incr_mset ""
    bench redis_benchmark_pipelined_16 "-P 16"
fi

# ---- SHUTDOWN from a client --------------------------------------------------------------
ecli SHUTDOWN >/dev/null 2>&1
i=0
while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do
    sleep 0.1
    i=$((i + 1))
done
if kill -0 "$pid" 2>/dev/null; then
    fail cli_shutdown "eddyd still runs 10 s after SHUTDOWN"
else
    wait "$pid"
    st=$?
    pid=
    if [ $st -eq 0 ]; then pass cli_shutdown; else fail cli_shutdown "exit status $st"; fi
fi
exit 0
