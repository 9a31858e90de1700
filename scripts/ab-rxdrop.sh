#!/usr/bin/env bash
# Side-by-side receive rates of several rxdrop receivers under the in-kernel generator
# (xdpipe gen --engine xdp-live), trials alternating between receivers, on a veth testbed
# this script creates and removes. The rate is read from the receiving veth itself
# (ethtool's rx_queue_0_xdp_redirect: frames the XDP program handed to an AF_XDP socket)
# between 1 s and 3 s of a 4 s run, so every receiver is counted the same way.
#
#   scripts/ab-rxdrop.sh TRIALS RECEIVER...
#
# A RECEIVER is `xdpipe[:extra run args]` (this tree's binary), `PATH[:extra run args]`
# (another xdpipe binary, e.g. an older build) or `xdpsock` (looked up in $ANCHOR_DIR,
# default /usr/local/bin: the tools you installed). Example:
#   sudo scripts/ab-rxdrop.sh 3 xdpipe 'xdpipe:--filter all' /tmp/xdpipe-old xdpsock
# Generator on core 0, receiver on core 1, native XDP, copy bind. ENGINE=xsk uses the
# AF_XDP generator instead (xdpipe gen --engine xsk). Prints one line per trial:
# TRIAL RECEIVER PPS.
set -euo pipefail
cd "$(dirname "$0")/.."
X=$PWD/target/release/xdpipe
ANCHOR_DIR=${ANCHOR_DIR:-/usr/local/bin}
[ $# -ge 2 ] || { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ -x "$X" ] || { echo "ab-rxdrop: build first: cargo build --release" >&2; exit 1; }
trials=$1; shift

name=ab$$
"$X" testbed create --name "$name" >/dev/null
RX=xdpipe-$name-rx TX=xdpipe-$name-tx
cleanup() {
  ip netns pids "$RX" 2>/dev/null | xargs -r kill -INT 2>/dev/null || true
  sleep 1
  "$X" testbed destroy --name "$name" >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rxmac=$(ip netns exec "$RX" cat /sys/class/net/xp-rx/address)
redirected() { ip netns exec "$RX" ethtool -S xp-rx | awk '/rx_queue_0_xdp_redirect:/ {print $2}'; }

for t in $(seq "$trials"); do
  for v in "$@"; do
    case $v in
      xdpsock)
        [ -x "$ANCHOR_DIR/xdpsock" ] || { echo "ab-rxdrop: no $ANCHOR_DIR/xdpsock (install it, or set ANCHOR_DIR to where it is)" >&2; exit 1; }
        ip netns exec "$RX" taskset -c 1 "$ANCHOR_DIR/xdpsock" -r -i xp-rx -q 0 -N -c >/dev/null 2>&1 &
        ;;
      *)
        bin=${v%%:*} args=""
        [ "$bin" != "$v" ] && args=${v#*:}
        [ "$bin" = xdpipe ] && bin=$X
        # shellcheck disable=SC2086 # extra run arguments are split on purpose
        ip netns exec "$RX" "$bin" run -i xp-rx --mode rxdrop --xdp-mode native --cores 1 --bind copy $args >/dev/null 2>&1 &
        ;;
    esac
    rp=$!
    sleep 1.5
    if ! kill -0 "$rp" 2>/dev/null; then echo "$t $v RECEIVER-FAILED"; continue; fi
    ip netns exec "$TX" "$X" gen -i xp-tx --dst-mac "$rxmac" --src-ip 10.77.0.2 --dst-ip 10.77.0.1 \
      -d 4 --core 0 --engine "${ENGINE:-xdp-live}" >/dev/null 2>&1 &
    gp=$!
    sleep 1; a=$(redirected); sleep 2; b=$(redirected)
    wait "$gp" || true
    kill -INT "$rp" 2>/dev/null || true
    wait "$rp" 2>/dev/null || true
    sleep 1.2
    echo "$t $v $(( (b - a) / 2 ))"
  done
done
