#!/usr/bin/env bash
# The test suite: unit tests and the privileged veth integration tests (run as root).
# CI runs this after scripts/setup.sh. With CI=true a test that cannot run fails.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
if [ "$(id -u)" -ne 0 ]; then
  echo "test: the integration tests need root (namespaces, XDP, AF_XDP); try: sudo -E $0" >&2
  [ "${CI:-}" = "true" ] && exit 1
fi
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf 2>/dev/null || true
# The habits that keep the tree readable: one format, no clippy warnings (the workspace
# lints in Cargo.toml deny undocumented unsafe blocks), docs that build cleanly.
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet
cargo test --workspace --locked "$@"
