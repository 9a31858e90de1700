#!/usr/bin/env bash
# One command for a fresh machine: install what is missing, build xdpipe, and run the main
# job on a veth testbed it builds (and removes) itself: the AF_XDP generator in one
# namespace, the rxdrop pipeline in the other, in native and in generic (skb) XDP mode.
# Extra arguments go to `xdpipe veth` (e.g. --mode parse --rate 500kpps).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked -p xdpipe
for mode in native skb; do
  echo "== xdpipe veth --xdp-mode $mode $*" >&2
  ./target/release/xdpipe veth --xdp-mode "$mode" "$@"
done
