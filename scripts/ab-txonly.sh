#!/usr/bin/env bash
# Side-by-side transmit rates of AF_XDP generators (copy mode) at an XDP_DROP sink
# (xdp-bench drop, native, on the receiving veth), trials alternating between generators,
# on veth testbeds this script creates and removes. The rate is the receiving veth's own
# rx_queue_0_xdp_drops between 1 s and 2.5 s of a 3 s run, so every generator is counted
# the same way.
#
#   scripts/ab-txonly.sh [--fresh] TRIALS GENERATOR...
#
# A GENERATOR is `xdpipe[:extra gen args]` (this tree's binary), `PATH[:extra gen args]`
# (another xdpipe binary) or `xdpsock` (its -t). Tools are looked up in $ANCHOR_DIR
# (default /usr/local/bin: the tools you installed). --fresh: a new testbed for
# every trial, as `xdpipe bench` does; default: one testbed for the whole script.
# Generator on core 0. Prints one line per trial: TRIAL GENERATOR PPS. Example:
#   sudo scripts/ab-txonly.sh --fresh 5 xdpipe xdpsock
set -euo pipefail
cd "$(dirname "$0")/.."
X=$PWD/target/release/xdpipe
ANCHOR_DIR=${ANCHOR_DIR:-/usr/local/bin}
fresh=0
[ "${1:-}" = --fresh ] && { fresh=1; shift; }
[ $# -ge 2 ] || { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ -x "$X" ] || { echo "ab-txonly: build first: cargo build --release" >&2; exit 1; }
for t in xdp-bench xdpsock; do
  [ -x "$ANCHOR_DIR/$t" ] || { echo "ab-txonly: no $ANCHOR_DIR/$t (install it, or set ANCHOR_DIR to where it is)" >&2; exit 1; }
done
trials=$1; shift

name="" RX="" TX=""
up() {
  name=abt$$-$1
  "$X" testbed create --name "$name" >/dev/null
  RX=xdpipe-$name-rx TX=xdpipe-$name-tx
}
down() {
  [ -n "$name" ] || return 0
  for ns in "$RX" "$TX"; do ip netns pids "$ns" 2>/dev/null | xargs -r kill -INT 2>/dev/null || true; done
  sleep 0.5
  "$X" testbed destroy --name "$name" >/dev/null 2>&1 || true
  name=""
}
trap down EXIT
trap 'exit 130' INT TERM

drops() { ip netns exec "$RX" ethtool -S xp-rx | awk '/rx_queue_0_xdp_drops:/ {print $2}'; }

[ $fresh = 1 ] || up 0
for t in $(seq "$trials"); do
  for v in "$@"; do
    [ $fresh = 0 ] || up "$t"
    ip netns exec "$RX" "$ANCHOR_DIR/xdp-bench" drop xp-rx -m native >/dev/null 2>&1 &
    sp=$!
    sleep 1.5
    if ! kill -0 "$sp" 2>/dev/null; then echo "$t $v SINK-FAILED"; continue; fi
    rxmac=$(ip netns exec "$RX" cat /sys/class/net/xp-rx/address)
    case $v in
      xdpsock)
        ip netns exec "$TX" taskset -c 0 "$ANCHOR_DIR/xdpsock" -t -i xp-tx -q 0 -N -c -s 64 -d 3 >/dev/null 2>&1 &
        ;;
      *)
        bin=${v%%:*} args=""
        [ "$bin" != "$v" ] && args=${v#*:}
        [ "$bin" = xdpipe ] && bin=$X
        # shellcheck disable=SC2086 # extra gen arguments are split on purpose
        ip netns exec "$TX" "$bin" gen -i xp-tx --dst-mac "$rxmac" --src-ip 10.77.0.2 --dst-ip 10.77.0.1 \
          -d 3 --core 0 --engine xsk $args >/dev/null 2>&1 &
        ;;
    esac
    gp=$!
    sleep 1; a=$(drops); sleep 1.5; b=$(drops)
    wait "$gp" || true
    kill -INT "$sp" 2>/dev/null || true
    wait "$sp" 2>/dev/null || true
    echo "$t $v $(( (b - a) * 2 / 3 ))"
    [ $fresh = 0 ] || down
  done
done
