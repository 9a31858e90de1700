#!/usr/bin/env bash
# Create or remove a veth testbed between two network namespaces.
#   scripts/testbed.sh create NAME [QUEUES]   -> xdpipe-NAME-rx (xp-rx, 10.77.0.1)
#                                              xdpipe-NAME-tx (xp-tx, 10.77.0.2)
#   scripts/testbed.sh destroy NAME
# A thin wrapper over `xdpipe testbed`, so scripts, tests and the benchmark share one
# implementation.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=./target/release/xdpipe
[ -x "$bin" ] || cargo build --release --locked -p xdpipe >&2
case "${1:-}" in
  create) exec "$bin" testbed create --name "${2:?name}" --queues "${3:-1}" ;;
  destroy) exec "$bin" testbed destroy --name "${2:?name}" ;;
  *) echo "usage: $0 create NAME [QUEUES] | destroy NAME" >&2; exit 2 ;;
esac
