#!/bin/sh
# cluster_cli.sh - a 3-node cluster made by the tools (docs/CLUSTER.md): three eddyd
# --cluster-enabled yes on free ports with temporary directories, joined with
# eddy-cli --cluster create, checked with --cluster check / info / add-node, and used
# through redis-cli -c and eddy-cli -c, then a slot moved online with eddy-cli --cluster
# move while redis-cli -c writes. One "PASS name" or "FAIL name: why" per check.
# Usage: EDDYD=bin/eddyd EDDY_CLI=bin/eddy-cli sh tests/integration/cluster_cli.sh
# Without redis-cli its checks print nothing; a note goes to stderr.
EDDYD=${EDDYD:-bin/eddyd}
EDDY_CLI=${EDDY_CLI:-bin/eddy-cli}
tmp=$(mktemp -d /tmp/eddy-cluster-test.XXXXXX) || exit 1
pids=
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null; done
    for p in $pids; do wait "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

pass() { echo "PASS $1"; }
fail() {
    echo "FAIL $1: $2"
    for f in "$tmp"/*/eddyd.log; do
        [ -f "$f" ] && tail -n 3 "$f" | sed "s|^|  $(basename "$(dirname "$f")"): |" >&2
    done
}
check() {
    if [ "$2" = "$3" ]; then
        pass "$1"
    else
        fail "$1" "expected '$(printf '%s' "$2" | tr '\n' '|')', got '$(printf '%s' "$3" | tr '\n' '|')'"
    fi
}

# Starts node number $1 on a free-looking port; sets port_$1. Returns 1 if it cannot.
start_node() {
    n=$1
    tries=0
    while [ $tries -lt 5 ]; do
        tries=$((tries + 1))
        p=$((($$ * 13 + $(date +%s) + n * 1009 + tries * 7919) % 40000 + 20000))
        mkdir -p "$tmp/$n"
        "$EDDYD" --port "$p" --bind 127.0.0.1 --dir "$tmp/$n" --threads 2 \
            --cluster-enabled yes --logfile "$tmp/$n/eddyd.log" >/dev/null 2>&1 &
        pid=$!
        i=0
        while [ $i -lt 100 ]; do
            kill -0 "$pid" 2>/dev/null || break
            if [ "$("$EDDY_CLI" -p "$p" PING 2>/dev/null)" = PONG ]; then
                pids="$pids $pid"
                eval "port_$n=$p"
                return 0
            fi
            sleep 0.1
            i=$((i + 1))
        done
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    return 1
}

if [ ! -x "$EDDYD" ] || [ ! -x "$EDDY_CLI" ]; then
    echo "FAIL cluster_cli_setup: $EDDYD or $EDDY_CLI is not built"
    exit 1
fi
for n in 1 2 3 4; do
    if ! start_node $n; then
        fail cluster_cli_setup "node $n did not start"
        exit 1
    fi
done

out=$("$EDDY_CLI" --cluster create 127.0.0.1:$port_1 127.0.0.1:$port_2 127.0.0.1:$port_3 2>&1)
if [ $? -eq 0 ] && printf '%s' "$out" | grep -q '^\[OK\] All 16384 slots covered.'; then
    pass cluster_cli_create
else
    fail cluster_cli_create "$out"
fi
out=$("$EDDY_CLI" --cluster create 127.0.0.1:$port_1 127.0.0.1:$port_2 2>&1)
if [ $? -ne 0 ] && printf '%s' "$out" | grep -q 'already part of a cluster'; then
    pass cluster_cli_create_twice
else
    fail cluster_cli_create_twice "$out"
fi
check cluster_cli_slots "0 5460 5461 10922 10923 16383" \
    "$("$EDDY_CLI" -p "$port_2" CLUSTER SLOTS | grep -E '^[0-9]+$' | grep -v -e "^$port_1\$" -e "^$port_2\$" -e "^$port_3\$" | tr '\n' ' ' | sed 's/ $//')"
out=$("$EDDY_CLI" --cluster check 127.0.0.1:$port_3 2>&1)
if [ $? -eq 0 ] && printf '%s' "$out" | grep -q 'All nodes agree' &&
    printf '%s' "$out" | grep -q 'All 16384 slots covered'; then
    pass cluster_cli_check
else
    fail cluster_cli_check "$out"
fi
# create names the first node the coordinator of the map (docs/CLUSTER.md).
id_1=$("$EDDY_CLI" -p "$port_1" CLUSTER MYID)
check cluster_cli_coordinator "cluster_coordinator:$id_1" \
    "$("$EDDY_CLI" -p "$port_3" CLUSTER INFO | grep '^cluster_coordinator:' | tr -d '\r')"
check cluster_cli_check_coordinator "Coordinator: $id_1 127.0.0.1:$port_1" \
    "$(printf '%s\n' "$out" | grep '^Coordinator:')"

# eddy-cli -c: writes to keys of every node from node 1, reads them from node 3.
ok=yes
for k in foo bar baz qux key:1 key:2 key:3 '{user}.a'; do
    r=$("$EDDY_CLI" -c -p "$port_1" SET "$k" "v-$k")
    [ "$r" = OK ] || { ok="SET $k: $r"; break; }
    r=$("$EDDY_CLI" -c -p "$port_3" GET "$k")
    [ "$r" = "v-$k" ] || { ok="GET $k: $r"; break; }
done
check cluster_cli_eddy_cli_c yes "$ok"
check cluster_cli_no_c "MOVED 12182 127.0.0.1:$port_3" "$("$EDDY_CLI" -p "$port_1" GET foo | head -n 1)"
check cluster_cli_prompt_redirect "-> Redirected to slot [12182] located at 127.0.0.1:$port_3|v-foo" \
    "$(printf 'GET foo\n' | "$EDDY_CLI" -c -p "$port_1" | tr '\n' '|' | sed 's/|$//')"

out=$("$EDDY_CLI" --cluster info 127.0.0.1:$port_1 2>&1)
if printf '%s' "$out" | grep -q '^\[OK\] 8 keys in 3 masters.'; then
    pass cluster_cli_info
else
    fail cluster_cli_info "$out"
fi

if command -v redis-cli >/dev/null 2>&1; then
    ok=yes
    for i in 1 2 3 4 5 6 7 8 9 10; do
        r=$(redis-cli -c -p "$port_2" SET "rk$i" "rv$i")
        [ "$r" = OK ] || { ok="SET rk$i: $r"; break; }
        r=$(redis-cli -c -p "$port_1" GET "rk$i")
        [ "$r" = "rv$i" ] || { ok="GET rk$i: $r"; break; }
    done
    check cluster_cli_redis_cli_c yes "$ok"
    "$EDDY_CLI" -p "$port_1" FUNCTION LOAD "#!lua name=cl
redis.register_function('getit', function(keys) return redis.call('GET', keys[1]) end)" >/dev/null
    check cluster_cli_redis_cli_fcall "v-foo" "$(redis-cli -c -p "$port_1" FCALL getit 1 foo)"
else
    echo "cluster_cli.sh: redis-cli not installed, skipping its checks" >&2
fi

# add-node asks any node for the map and proposes the new one to the coordinator,
# which pushes it to every node, the new one included.
out=$("$EDDY_CLI" --cluster add-node 127.0.0.1:$port_4 127.0.0.1:$port_3 2>&1)
if [ $? -eq 0 ] && "$EDDY_CLI" -p "$port_4" CLUSTER INFO | grep -q '^cluster_known_nodes:4' &&
    "$EDDY_CLI" -p "$port_2" CLUSTER INFO | grep -q '^cluster_current_epoch:2' &&
    "$EDDY_CLI" -p "$port_1" CLUSTER INFO | grep -q '^cluster_map_proposals_accepted:1' &&
    printf '%s' "$out" | grep -q "coordinator 127.0.0.1:$port_1"; then
    pass cluster_cli_add_node
else
    fail cluster_cli_add_node "$out"
fi
check cluster_cli_add_node_moved "MOVED 12182 127.0.0.1:$port_3" "$("$EDDY_CLI" -p "$port_4" GET foo | head -n 1)"
"$EDDY_CLI" --cluster check 127.0.0.1:$port_4 >/dev/null 2>&1
check cluster_cli_check_after_add 0 $?

# Online slot move (docs/CLUSTER.md, "Moving slots"): slot 12182 (foo) and the range
# 12000-12100 from node 3 to the new node 4 with eddy-cli --cluster move, while
# redis-cli -c writes to a key of that slot; afterwards redis-cli -c finds every key
# on its new owner and the last acknowledged write is there.
if command -v redis-cli >/dev/null 2>&1; then
    for i in $(seq 1 300); do echo "SET {foo}.bulk$i value-$i"; done | redis-cli -c -p "$port_3" >/dev/null
    ( i=0; last=0
      while [ $i -lt 400 ] && [ ! -f "$tmp/stop" ]; do
          i=$((i + 1))
          r=$(redis-cli -c -p "$port_1" SET '{foo}.w' "$i" 2>&1)
          [ "$r" = OK ] && last=$i
      done
      echo "$last" > "$tmp/last" ) &
    writer=$!
    sleep 0.3
    out=$("$EDDY_CLI" --cluster move 127.0.0.1:$port_1 --slots 12182 --slots 12000-12100 \
        --to 127.0.0.1:$port_4 2>&1)
    rc=$?
    sleep 0.3
    touch "$tmp/stop"
    wait $writer
    if [ $rc -eq 0 ] && printf '%s' "$out" | grep -q '^\[OK\] Moved: .* keys/s'; then
        pass cluster_cli_move
    else
        fail cluster_cli_move "$out"
    fi
    check cluster_cli_move_moved "MOVED 12182 127.0.0.1:$port_4" "$("$EDDY_CLI" -p "$port_3" GET foo | head -n 1)"
    check cluster_cli_move_redis_cli_c "v-foo" "$(redis-cli -c -p "$port_2" GET foo)"
    check cluster_cli_move_bulk "value-123" "$(redis-cli -c -p "$port_3" GET '{foo}.bulk123')"
    check cluster_cli_move_last_write "$(cat "$tmp/last")" "$(redis-cli -c -p "$port_2" GET '{foo}.w')"
    # Node 4 joined after the library was loaded: load it again for the whole cluster.
    "$EDDY_CLI" -p "$port_1" FUNCTION LOAD REPLACE "#!lua name=cl
redis.register_function('getit', function(keys) return redis.call('GET', keys[1]) end)" >/dev/null
    check cluster_cli_move_fcall "v-foo" "$(redis-cli -c -p "$port_3" FCALL getit 1 foo)"
    check cluster_cli_move_old_copy "0" "$("$EDDY_CLI" -p "$port_3" CLUSTER COUNTKEYSINSLOT 12182)"
    "$EDDY_CLI" --cluster check 127.0.0.1:$port_2 >/dev/null 2>&1
    check cluster_cli_check_after_move 0 $?
    out=$("$EDDY_CLI" --cluster move 127.0.0.1:$port_1 --slots 12182 --slots 1 --to 127.0.0.1:$port_2 2>&1)
    if [ $? -ne 0 ] && printf '%s' "$out" | grep -q 'move the slots of one node at a time'; then
        pass cluster_cli_move_two_owners
    else
        fail cluster_cli_move_two_owners "$out"
    fi
fi
