#!/bin/sh
# hardening_netns.sh - protected mode and AUTH seen from another host: two network
# namespaces joined by a veth pair (198.18.0.1/30 for the server, 198.18.0.2/30 for the
# client: the benchmarking range, only inside namespaces this script creates). eddyd
# binds 198.18.0.1:
#   - without requirepass (protected mode on by default): the client gets -DENIED and is
#     closed, a loopback client inside the server's namespace is served;
#   - with --requirepass: the client gets NOAUTH, then works after AUTH; a wrong AUTH is
#     counted in INFO stats auth_failures and logged with the client's address.
# Needs root and `ip netns`; otherwise prints a SKIP note and no FAIL. Cleans up (trap).
# Env: EDDYD (default bin/eddyd).
EDDYD=${EDDYD:-bin/eddyd}
CLI=$(command -v redis-cli || true)
[ -n "$CLI" ] || CLI=${EDDY_CLI:-bin/eddy-cli}
NOWARN=--no-auth-warning
[ "$(basename "$CLI")" = redis-cli ] || NOWARN=
case "$EDDYD" in /*) ;; *) EDDYD=$(pwd)/$EDDYD ;; esac
case "$CLI" in /*) ;; *) CLI=$(pwd)/$CLI ;; esac

tag=$$
srv=eddysrv$tag
cl=eddycl$tag
dir=$(mktemp -d /tmp/eddy-netns.XXXXXX)
pid=
cleanup() {
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    ip netns del "$srv" 2>/dev/null
    ip netns del "$cl" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT INT TERM

if [ "$(id -u)" != 0 ] || ! ip netns add "$srv" 2>/dev/null; then
    echo "SKIP hardening_protected_mode_netns: cannot create a network namespace (needs root and ip netns)"
    exit 0
fi
if ! ip netns add "$cl" ||
    ! ip link add "vs$tag" netns "$srv" type veth peer name "vc$tag" netns "$cl" ||
    ! ip -n "$srv" addr add 198.18.0.1/30 dev "vs$tag" ||
    ! ip -n "$cl" addr add 198.18.0.2/30 dev "vc$tag" ||
    ! ip -n "$srv" link set "vs$tag" up || ! ip -n "$cl" link set "vc$tag" up ||
    ! ip -n "$srv" link set lo up || ! ip -n "$cl" link set lo up; then
    echo "SKIP hardening_protected_mode_netns: cannot set up the veth pair"
    exit 0
fi

port=7711
pass() { echo "PASS hardening_$1"; }
fail() { echo "FAIL hardening_$1: $2"; tail -5 "$dir/eddyd.log" | sed 's/^/  eddyd: /' >&2; }
remote() { ip netns exec "$cl" timeout 10 "$CLI" -h 198.18.0.1 -p "$port" "$@" 2>&1; }
local_cli() { ip netns exec "$srv" timeout 10 "$CLI" -h 127.0.0.1 -p "$port" "$@" 2>&1; }

start() {
    rm -rf "$dir/data"
    ip netns exec "$srv" "$EDDYD" --port "$port" --bind "198.18.0.1 127.0.0.1" \
        --dir "$dir/data" --threads 2 "$@" >>"$dir/eddyd.log" 2>&1 &
    pid=$!
    i=0
    while [ $i -lt 100 ]; do
        out=$(local_cli PING)
        case "$out" in PONG|*NOAUTH*) return 0 ;; esac
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

stop() {
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    pid=
}

# 1. Protected mode: no password, bound to a non-loopback address.
if start; then
    out=$(remote PING)
    case "$out" in
    *DENIED*"protected mode"*) pass protected_mode_denies_remote ;;
    *) fail protected_mode_denies_remote "remote PING got '$out'" ;;
    esac
    out=$(local_cli PING)
    [ "$out" = PONG ] && pass protected_mode_serves_loopback ||
        fail protected_mode_serves_loopback "loopback PING got '$out'"
    grep -q "Refused client 198.18.0.2" "$dir/eddyd.log" && pass protected_mode_logged ||
        fail protected_mode_logged "no 'Refused client 198.18.0.2' line in the log"
    stop
else
    fail protected_mode_denies_remote "eddyd did not start in the namespace"
fi

# 2. requirepass: NOAUTH, wrong AUTH counted and logged, right AUTH works.
if start --requirepass "s3cret pass"; then
    out=$(remote GET k)
    case "$out" in
    *NOAUTH*) pass requirepass_noauth_remote ;;
    *) fail requirepass_noauth_remote "GET before AUTH got '$out'" ;;
    esac
    out=$(ip netns exec "$cl" timeout 10 "$CLI" -h 198.18.0.1 -p "$port" $NOWARN \
        -a "wrong" PING 2>&1)
    out=$(ip netns exec "$cl" timeout 10 "$CLI" -h 198.18.0.1 -p "$port" $NOWARN \
        -a "s3cret pass" SET k v 2>&1)
    [ "$out" = OK ] && pass requirepass_auth_then_works ||
        fail requirepass_auth_then_works "SET after AUTH got '$out'"
    fails=$(ip netns exec "$cl" timeout 10 "$CLI" -h 198.18.0.1 -p "$port" $NOWARN \
        -a "s3cret pass" INFO stats 2>&1 | tr -d '\r' | sed -n 's/^auth_failures://p')
    [ "$fails" = 1 ] && pass auth_failures_counted_remote ||
        fail auth_failures_counted_remote "auth_failures is '$fails', expected 1"
    grep -q "AUTH failed for client 198.18.0.2" "$dir/eddyd.log" && pass auth_failure_logged_remote ||
        fail auth_failure_logged_remote "no 'AUTH failed for client 198.18.0.2' line in the log"
    stop
else
    fail requirepass_noauth_remote "eddyd did not start with --requirepass"
fi
exit 0
