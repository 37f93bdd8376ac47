#!/bin/sh
# redis_compat.sh - the same Redis 7 function library (tests/integration/lib/compat.lua)
# and the same FCALL / FCALL_RO / EVAL / EVALSHA / SCRIPT / FUNCTION commands, sent with
# redis-cli to a real redis-server and to eddyd, must give the same answers.
#
# Starts both servers on loopback, on free ports, with temporary directories
# (redis-server with --save '' --appendonly no), loads compat.lua into both with
# redis-cli, runs every case against both and compares the outputs line by line. Prints
# one "PASS compat_<case>" or "FAIL compat_<case>: ..." line per case. Both servers are
# stopped at exit. Without redis-server (or redis-cli) it prints a note to stderr and no
# PASS lines.
# Usage: EDDYD=bin/eddyd sh tests/integration/redis_compat.sh
#
# Normalisation (the only differences tolerated, applied to both outputs):
#   - eddy names the library in the suffix of runtime errors, "script: lib.fn, on
#     @user_function:N."; Redis names only the function, "script: fn, on ...". The
#     "lib." part is removed.
# Nothing else is normalised: compat.lua avoids Lua 5.1-vs-5.4 differences (the wording
# of Lua's own errors, tostring of integral floats), so no wording rewrite is needed.
# redis.REDIS_VERSION differs by design (eddy claims 7.0.0), so only its type is compared.
EDDYD=${EDDYD:-bin/eddyd}
here=$(dirname "$0")
lib="$here/lib/compat.lua"

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    echo "redis_compat.sh: redis-server or redis-cli not installed, skipping the comparison" >&2
    exit 0
fi
if [ ! -x "$EDDYD" ]; then
    echo "FAIL compat_setup: $EDDYD is not built"
    exit 1
fi
if [ ! -f "$lib" ]; then
    echo "FAIL compat_setup: $lib is missing"
    exit 1
fi

tmp=$(mktemp -d /tmp/eddy-compat.XXXXXX) || exit 1
rpid=
epid=
cleanup() {
    for p in $rpid $epid; do
        kill "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# A port nobody listens on (asked from the kernel when python3 is there).
free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
    else
        echo $((($$ * 7 + $(date +%s) + $1 * 7919) % 40000 + 20000))
    fi
}

# wait_ready PORT PID: until PING answers PONG (10 s) or the process dies.
wait_ready() {
    i=0
    while [ $i -lt 100 ]; do
        kill -0 "$2" 2>/dev/null || return 1
        [ "$(redis-cli -p "$1" PING 2>/dev/null)" = PONG ] && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

start_redis() {
    tries=0
    while [ $tries -lt 5 ]; do
        tries=$((tries + 1))
        rport=$(free_port $tries)
        mkdir -p "$tmp/redis"
        redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no \
            --dir "$tmp/redis" --daemonize no --protected-mode yes \
            >>"$tmp/redis.log" 2>&1 &
        rpid=$!
        wait_ready "$rport" "$rpid" && return 0
        kill "$rpid" 2>/dev/null
        wait "$rpid" 2>/dev/null
        rpid=
    done
    return 1
}

start_eddy() {
    tries=0
    while [ $tries -lt 5 ]; do
        tries=$((tries + 1))
        eport=$(free_port $((tries + 10)))
        "$EDDYD" --port "$eport" --bind 127.0.0.1 --dir "$tmp/eddy" --threads 2 \
            >>"$tmp/eddyd.log" 2>&1 &
        epid=$!
        wait_ready "$eport" "$epid" && return 0
        kill "$epid" 2>/dev/null
        wait "$epid" 2>/dev/null
        epid=
    done
    return 1
}

if ! start_redis; then
    echo "FAIL compat_setup: redis-server did not start"
    tail -n 5 "$tmp/redis.log" >&2
    exit 1
fi
if ! start_eddy; then
    echo "FAIL compat_setup: eddyd did not start"
    tail -n 5 "$tmp/eddyd.log" >&2
    exit 1
fi

normalise() {
    sed 's/ script: [A-Za-z0-9_]*\.\([A-Za-z0-9_]*\), on @user_function/ script: \1, on @user_function/'
}

# ask PORT PROTO ARGS...: the typed redis-cli output (--no-raw shows "(integer) 1",
# "(nil)", "(error) ...", quoted strings), normalised.
ask() {
    p=$1
    proto=$2
    shift 2
    redis-cli --no-raw "-$proto" -p "$p" "$@" 2>&1 | normalise
}

npass=0
nfail=0
# same NAME PROTO ARGS...: runs the command on both servers and compares.
same() {
    name=$1
    shift
    ask "$rport" "$@" >"$tmp/r.out"
    ask "$eport" "$@" >"$tmp/e.out"
    if cmp -s "$tmp/r.out" "$tmp/e.out"; then
        echo "PASS compat_$name"
        npass=$((npass + 1))
    else
        rl=$(sed -n '1,20p' "$tmp/r.out" | tr '\n' '|' | cut -c1-300)
        el=$(sed -n '1,20p' "$tmp/e.out" | tr '\n' '|' | cut -c1-300)
        echo "FAIL compat_$name: $(printf '%s' "$*" | tr '\n' ' ' | cut -c1-120) -> redis '$rl' eddy '$el'"
        nfail=$((nfail + 1))
    fi
}

# Load the library into both (a clean slate first).
for p in $rport $eport; do
    redis-cli -p "$p" FLUSHALL >/dev/null
    redis-cli -p "$p" FUNCTION FLUSH >/dev/null
    redis-cli -p "$p" SCRIPT FLUSH >/dev/null
done
code=$(cat "$lib")
same load_fresh 2 FUNCTION LOAD "$code"
same load_again 2 FUNCTION LOAD "$code"
same load_replace 2 FUNCTION LOAD REPLACE "$code"

# Writes, reads, flags.
same fcall_set 2 FCALL compat_set 1 ck v1
same fcall_get 2 FCALL compat_get 1 ck
same fcall_ro_get 2 FCALL_RO compat_get 1 ck
same fcall_ro_get_missing 2 FCALL_RO compat_get 1 nokey
same fcall_ro_refuses_writer 2 FCALL_RO compat_set 1 ck v2
same fcall_no_writes_write 2 FCALL compat_ro_write 1 ck
same fcall_ro_no_writes_write 2 FCALL_RO compat_ro_write 1 ck
same fcall_get_after 2 FCALL compat_get 1 ck
same fcall_flags 2 FCALL compat_flags 0
same fcall_incrby 2 FCALL compat_incrby 1 cn 5
same fcall_incrby_again 2 FCALL compat_incrby 1 cn 5
same fcall_keys_args 2 FCALL compat_keys_args 2 k1 k2 a1 a2 a3
same fcall_keys_args_none 2 FCALL compat_keys_args 0
same fcall_rmw 2 FCALL compat_rmw 1 cr 3
same fcall_rmw_again 2 FCALL compat_rmw 1 cr 4
same fcall_ro_sum 2 FCALL_RO compat_sum 3 cr cn nokey

# Every Lua type, over RESP2 and RESP3, through FCALL and FCALL_RO.
for v in int negint float negfloat bigfloat str empty true false nil none array holes \
    nested_holes hash mixed ok err nested_status status_reply error_reply error_reply_code \
    double map set bool_resp3; do
    same "value_${v}_resp2" 2 FCALL compat_value 0 "$v"
    same "value_${v}_resp3" 3 FCALL compat_value 0 "$v"
    same "value_ro_${v}" 2 FCALL_RO compat_value_ro 0 "$v"
done

# Conversions of redis.call replies, errors.
same conversions 2 FCALL compat_conversions 2 cc nokey
same conversions_resp3_client 3 FCALL compat_conversions 2 cc nokey
same setresp3_nil 2 FCALL compat_resp3_nil 1 nokey
same pcall_table 2 FCALL compat_pcall 1 cp
same pcall_return 2 FCALL compat_pcall_return 1 cp
same call_error 2 FCALL compat_call_error 1 cp
same lua_pcall_call 2 FCALL compat_lua_pcall 1 cp
same error 2 FCALL compat_error 0
same error_table 2 FCALL compat_error_table 0
same wrong_arity 2 FCALL compat_wrong_arity 0
same unknown_command 2 FCALL compat_unknown_command 0
same sha1hex 2 FCALL compat_sha1 0 abc
same sha1hex_empty 2 FCALL compat_sha1 0 ""
same log 2 FCALL compat_log 0 hello
same version 2 FCALL compat_version 0
same cjson 2 FCALL compat_json 0 '{"name":"n","list":[1,2,3]}'

# Request errors.
same function_not_found 2 FCALL nosuch 0
same function_ro_not_found 2 FCALL_RO nosuch 0
same numkeys_too_many 2 FCALL compat_set 2 onlyone
same numkeys_negative 2 FCALL compat_set -1
same numkeys_not_a_number 2 FCALL compat_set x
same fcall_arity 2 FCALL compat_set
same delete_missing 2 FUNCTION DELETE nosuchlib
same load_no_metadata 2 FUNCTION LOAD "return 1"
same load_no_functions 2 FUNCTION LOAD "#!lua name=empty
local x = 1"
same load_duplicate_function 2 FUNCTION LOAD "#!lua name=other
redis.register_function('compat_set', function() return 1 end)"
same restore_garbage 2 FUNCTION RESTORE garbage
same restore_bad_policy 2 FUNCTION RESTORE garbage SOMETIMES
same flush_bad_option 2 FUNCTION FLUSH NOW
same kill_idle 2 FUNCTION KILL
same script_kill_idle 2 SCRIPT KILL
same stats_idle 2 FUNCTION STATS

# EVAL and friends.
same eval_keys_argv 2 EVAL "return {KEYS[1], ARGV[1], #KEYS, #ARGV}" 1 k a b
same eval_set 2 EVAL "return redis.call('SET', KEYS[1], ARGV[1])" 1 ek v
same eval_ro_get 2 EVAL_RO "return redis.call('GET', KEYS[1])" 1 ek
same eval_ro_write 2 EVAL_RO "return redis.call('SET', KEYS[1], 'x')" 1 ek
same eval_float 2 EVAL "return 3.99" 0
same eval_holes 2 EVAL "return {1, 2, nil, 4}" 0
same eval_booleans_resp2 2 EVAL "return {true, false}" 0
same eval_booleans_resp3 3 EVAL "return {true, false}" 0
same eval_error_reply 2 EVAL "return redis.error_reply('ERR x')" 0
same eval_status_reply 2 EVAL "return redis.status_reply('PONG')" 0
same eval_error 2 EVAL "error('boom')" 0
same eval_pcall 2 EVAL "return redis.pcall('INCR', KEYS[1])" 1 ek
same eval_call_error 2 EVAL "return redis.call('INCR', KEYS[1])" 1 ek
same eval_noscript_flag_ro 2 EVAL_RO "#!lua flags=no-writes
return redis.call('GET', KEYS[1])" 1 ek
same eval_flag_no_writes_write 2 EVAL "#!lua flags=no-writes
return redis.call('SET', KEYS[1], 'y')" 1 ek
same eval_shebang_without_flags_ro 2 EVAL_RO "#!lua
return redis.call('GET', KEYS[1])" 1 ek
same eval_bad_shebang_flag 2 EVAL "#!lua flags=bogus
return 1" 0
same eval_call_no_args 2 EVAL "return redis.call()" 0
same eval_call_bad_arg 2 EVAL "return redis.call('GET', {})" 0
same eval_numkeys_too_many 2 EVAL "return 1" 2 a
same eval_numkeys_negative 2 EVAL "return 1" -1
same script_load 2 SCRIPT LOAD "return 'loaded ' .. ARGV[1]"
sha=$(redis-cli -p "$rport" SCRIPT LOAD "return 'loaded ' .. ARGV[1]")
redis-cli -p "$eport" SCRIPT LOAD "return 'loaded ' .. ARGV[1]" >/dev/null
same evalsha 2 EVALSHA "$sha" 0 x
same evalsha_upper 2 EVALSHA "$(echo "$sha" | tr a-f A-F)" 0 x
same evalsha_ro 2 EVALSHA_RO "$sha" 0 y
same script_exists 2 SCRIPT EXISTS "$sha" ffffffffffffffffffffffffffffffffffffffff
same evalsha_noscript 2 EVALSHA ffffffffffffffffffffffffffffffffffffffff 0
same script_flush 2 SCRIPT FLUSH
same evalsha_after_flush 2 EVALSHA "$sha" 0 x

# Plain commands that a review found different (each was fixed to match).
same set_ex_twice 2 SET rk v EX 100 EX 200
same ttl_after_ex_twice 2 TTL rk
same set_ex_px 2 SET rk v EX 10 PX 100
same getex_persist_twice 2 GETEX rk PERSIST PERSIST
same ttl_after_persist 2 TTL rk
same getex_persist_ex 2 GETEX rk PERSIST EX 10
same setrange_overflow 2 SETRANGE rk 9223372036854775807 x
same setrange_empty_far 2 SETRANGE rk 600000000 ""
same setrange_empty_missing 2 SETRANGE rk_missing 600000000 ""
same scan_leading_space 2 SCAN " 0"
same scan_overflow 2 SCAN 99999999999999999999999
same scan_trailing 2 SCAN 0x
same config_set_duplicate 2 CONFIG SET timeout 5 timeout 0
same config_set_odd 2 CONFIG SET timeout 0 hz
same config_get_twice 2 CONFIG GET timeout timeout
same config_set_hz_high 2 CONFIG SET hz 1000
same config_get_hz_clamped 2 CONFIG GET hz
same config_set_hz_zero 2 CONFIG SET hz 0
same config_get_hz_one 2 CONFIG GET hz
same config_set_hz_back 2 CONFIG SET hz 10
same command_count_arg 2 COMMAND COUNT x
same command_list_module 2 COMMAND LIST FILTERBY MODULE x
same client_no_evict_bad 2 CLIENT NO-EVICT maybe
same client_no_evict_on 2 CLIENT NO-EVICT on
same client_kill_pubsub 2 CLIENT KILL TYPE pubsub
same client_kill_type_bad 2 CLIENT KILL TYPE foo
same client_kill_user_bad 2 CLIENT KILL USER nosuchuser
same auth_other_user_nopass 2 AUTH a b
same auth_default_nopass 2 AUTH default anything
same del_rk 2 DEL rk

# The data written by both is the same.
same data_after 2 MGET ck cn cr cc cp ek nokey

# Stop the servers now; the trap does the rest.
echo "redis_compat.sh: $npass same, $nfail different (redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'))" >&2
