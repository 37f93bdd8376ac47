#!/bin/bash
# train_shaped.sh - the model-training example (examples/train) with the client on a
# link shaped to the bandwidth of an AWS Lambda (538 Mbit/s, Hellerstein et al., CIDR
# 2019): ship code to data (store mode, MAPREDUCE) against ship data to code (client
# mode, SCAN+MGET every epoch). Prints the per-epoch table, the ratios of the two
# modes, the machine and the versions.
#
# It creates two network namespaces, eddy-srv and eddy-cli, joined by one veth pair
# (198.18.0.1/30 and 198.18.0.2/30, the RFC 2544 benchmarking range, only inside those
# namespaces), shapes both directions with tc tbf, runs eddyd in eddy-srv (with a
# random requirepass: its protected mode refuses non-loopback clients otherwise) and
# eddy-train in eddy-cli. The data set is loaded and featurized from inside eddy-srv
# (the store's own side, not over the shaped link: what is compared is training);
# only `train` runs in eddy-cli, over the link. On exit it stops eddyd and deletes both namespaces (which
# deletes the veth pair); it touches no other interface. Needs root, ip and tc.
#
# usage: sudo bench/train_shaped.sh [--bytes SIZE] [--small] [--epochs N] [--rate R]
#            [--classes 2|5] [--bits B] [--threads N] [--cache SIZE] [--out DIR]
#            [--data DIR [--load-only]]
#   --bytes SIZE  synthetic reviews to load (default 1G; 1G = 2^30 bytes of keys+values)
#   --small       a quick run: --bytes 16M
#   --epochs N    epochs per mode (default 3); --rate R  tc rate (default 538mbit)
#   --cache SIZE  eddyd's --block-cache-size (default 8gb: a 1G data set has ~5 GB of
#                 feature blocks; both modes then read uncompressed cached blocks)
#   --out DIR     where the CSV, charts and the log go (default: a new /tmp directory)
#   --data DIR    eddyd's data directory, kept after the run (default: a temporary one).
#                 If it already holds a featurized data set (train:meta with D=), the
#                 run reuses it: no load, no featurize. --load-only stops after
#                 featurizing (prepare a large set once, train later).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
EDDYD=${EDDYD:-$ROOT/bin/eddyd}
TRAIN=${EDDY_TRAIN:-$ROOT/bin/eddy-train}
BYTES=1G EPOCHS=3 RATE=538mbit CLASSES=2 BITS=18 THREADS= OUT= CACHE=8gb DATA= LOADONLY=
NS_S=eddy-srv NS_C=eddy-cli DEV_S=eddy-vs DEV_C=eddy-vc
ADDR_S=198.18.0.1 ADDR_C=198.18.0.2 PORT=7711
CMDLINE="$0 $*"

die() { echo "train_shaped.sh: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case $1 in
    --bytes) BYTES=${2:?}; shift ;;
    --small) BYTES=16M ;;
    --epochs) EPOCHS=${2:?}; shift ;;
    --rate) RATE=${2:?}; shift ;;
    --classes) CLASSES=${2:?}; shift ;;
    --bits) BITS=${2:?}; shift ;;
    --threads) THREADS=${2:?}; shift ;;
    --cache) CACHE=${2:?}; shift ;;
    --out) OUT=${2:?}; shift ;;
    --data) DATA=${2:?}; shift ;;
    --load-only) LOADONLY=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done
[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces and tc)"
command -v ip >/dev/null && command -v tc >/dev/null || die "needs ip and tc (iproute2)"
[ -x "$EDDYD" ] && [ -x "$TRAIN" ] || die "build first: make (needs $EDDYD and $TRAIN)"
for ns in $NS_S $NS_C; do
    ! ip netns list | grep -qw "^$ns" || die "namespace $ns exists already: remove it (ip netns del $ns)"
done

WORK=$(mktemp -d /tmp/eddy-train-shaped.XXXXXX)
[ -n "$DATA" ] || DATA=$WORK/data
mkdir -p "$DATA"
[ -n "$OUT" ] || OUT=$WORK/out
mkdir -p "$OUT"
PASS=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
EDDYD_PID=

cleanup() {
    set +e
    if [ -n "$EDDYD_PID" ]; then
        kill "$EDDYD_PID" 2>/dev/null
        for _ in $(seq 60); do kill -0 "$EDDYD_PID" 2>/dev/null || break; sleep 0.5; done
        kill -9 "$EDDYD_PID" 2>/dev/null
    fi
    ip netns del $NS_C 2>/dev/null
    ip netns del $NS_S 2>/dev/null
    rm -rf "$WORK/data" # a --data directory is kept
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add $NS_S
ip netns add $NS_C
ip link add $DEV_S netns $NS_S type veth peer name $DEV_C netns $NS_C
ip -n $NS_S addr add $ADDR_S/30 dev $DEV_S
ip -n $NS_C addr add $ADDR_C/30 dev $DEV_C
for x in "$NS_S $DEV_S" "$NS_C $DEV_C"; do
    set -- $x
    ip -n "$1" link set lo up
    ip -n "$1" link set "$2" up
    ip netns exec "$1" tc qdisc add dev "$2" root tbf rate "$RATE" burst 256kb latency 100ms
done

ip netns exec $NS_S "$EDDYD" --bind $ADDR_S --port $PORT --dir "$DATA" \
    --requirepass "$PASS" --block-cache-size "$CACHE" ${THREADS:+--threads $THREADS} --logfile "$WORK/eddyd.log" &
EDDYD_PID=$!
T() { ip netns exec $NS_C "$TRAIN" -h $ADDR_S -p $PORT -a "$PASS" "$@"; }
S() { ip netns exec $NS_S "$TRAIN" -h $ADDR_S -p $PORT -a "$PASS" "$@"; }
CLI() { ip netns exec $NS_S "$ROOT/bin/eddy-cli" -h $ADDR_S -p $PORT -a "$PASS" "$@"; }
i=0
until CLI PING >/dev/null 2>&1; do
    i=$((i + 1))
    [ $i -lt 50 ] || { tail -5 "$WORK/eddyd.log" >&2; die "eddyd did not start"; }
    sleep 0.2
done

{
echo "== eddy model training, client on a link shaped to $RATE (tc tbf, both directions)"
echo "date:     $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "command:  $CMDLINE"
echo "machine:  $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(awk '/MemTotal/ {printf "%.0f GB RAM", $2/1048576}' /proc/meminfo), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "versions: $("$EDDYD" --version), $(uname -sr), $(ip -V), $(cc --version | head -1)"
echo "link:     $ADDR_C ($NS_C) <-> $ADDR_S ($NS_S), eddyd threads: ${THREADS:-$(nproc)}, block cache $CACHE"
echo
} | tee "$OUT/report.txt"

run() { # run T|S eddy-train-args...: in the client's or the server's namespace
    local where=$1
    shift
    echo "\$ eddy-train $* (in $([ "$where" = T ] && echo $NS_C || echo $NS_S))" | tee -a "$OUT/report.txt"
    "$where" "$@" 2>&1 | tee -a "$OUT/report.txt"
    echo | tee -a "$OUT/report.txt"
}
if CLI GET train:meta 2>/dev/null | grep -q '^D='; then
    echo "reusing the data set in $DATA:" | tee -a "$OUT/report.txt"
    CLI GET train:meta | sed 's/^/  /' | tee -a "$OUT/report.txt"
else
    run S load-synth --clear --bytes "$BYTES" --classes "$CLASSES" --seed 1
    run S featurize --bits "$BITS"
fi
[ -z "$LOADONLY" ] || exit 0
run T train --mode both --epochs "$EPOCHS" --csv "$OUT/train.csv" --plot "$OUT/plots"
echo
echo "results: $OUT/report.txt, $OUT/train.csv, $OUT/plots/"
