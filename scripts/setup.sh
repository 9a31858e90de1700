#!/usr/bin/env bash
# Install what xdpipe needs to build and test on a fresh Debian machine.
# Idempotent: every step checks first, so a second run takes seconds.
# Needs root (apt-get, bpffs mount).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'setup: %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  log "must run as root (installs Debian packages); try: sudo $0"
  exit 1
fi

# --- Debian packages -------------------------------------------------------------
# clang-19: tests/safety.rs builds a foreign XDP program with it (xdpipe's own eBPF is
# built by rustc + bpf-linker; its AF_XDP layer is plain Rust, no C).
# libelf/zlib: libbpf (the anchor tools). iproute2/ethtool/bpftool: testbed and inspection.
# tshark: tests check that generated frames dissect cleanly.
# openssh-server/-client: tests/remote_gen.rs starts its own sshd inside a test namespace
# (bench --remote-gen); the package's own service is masked before the install so that
# no sshd ever listens in this host's namespace.
pkgs=(clang-19 llvm-19 libelf-dev zlib1g-dev pkg-config make
      iproute2 ethtool bpftool iputils-ping tshark tcpdump openssh-client openssh-server)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep 'install ok installed' >/dev/null || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if [[ " ${missing[*]} " == *" openssh-server "* ]] && [ -d /run/systemd/system ]; then
    # Masked first: installing would otherwise start (and enable) an sshd on every address.
    # An sshd already installed is left alone (it may be how this host is reached).
    log "masking ssh.service and ssh.socket before installing openssh-server (systemctl unmask to use it)"
    systemctl mask ssh.service ssh.socket >/dev/null 2>&1 || true
  fi
  # Without systemd, invoke-rc.d asks policy-rc.d: 101 (do not start) during the install.
  temp_policy=""
  if [ ! -d /run/systemd/system ] && [ ! -e /usr/sbin/policy-rc.d ]; then
    temp_policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' > "$temp_policy" && chmod 755 "$temp_policy"
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ -n "$temp_policy" ]; then rm -f "$temp_policy"; fi
fi

# The tests call an unversioned `clang`.
if ! command -v clang >/dev/null 2>&1; then
  log "linking /usr/local/bin/clang -> clang-19"
  ln -sf "$(command -v clang-19)" /usr/local/bin/clang
fi

# --- Rust toolchain ----------------------------------------------------------------
# rust-toolchain.toml pins the toolchain; rustup installs it (and rust-src) on first use.
rustup show active-toolchain >/dev/null
if ! rustup component list --installed | grep '^rust-src' >/dev/null; then
  log "adding rust-src"
  rustup component add rust-src
fi

# bpf-linker, linked against the pinned toolchain's own LLVM (no system LLVM 22 here).
sysroot=$(rustc --print sysroot)
llvm_so=$(basename "$(ls "$sysroot"/lib/libLLVM-*-rust-*.so | head -n1)" .so)
llvm_so=${llvm_so#lib}
llvm_major=$(echo "$llvm_so" | sed -E 's/^LLVM-([0-9]+)-.*/\1/')
if ! bpf-linker --version >/dev/null 2>&1; then
  log "building bpf-linker against $llvm_so (about a minute)"
  RUSTFLAGS="-L $sysroot/lib -l dylib=$llvm_so -C link-arg=-Wl,-rpath,$sysroot/lib" \
    cargo install --locked bpf-linker --version 0.13.0 \
      --no-default-features --features "llvm-$llvm_major,no-llvm-linking"
fi

# --- QEMU guest testbed (tests/vm_drivers.rs, bench --target vm:*) -------------------
# QEMU 10 from bookworm-backports (igb model), busybox-static, kmod, cpio; idempotent.
./scripts/vm/guest.sh deps

# --- bpffs -------------------------------------------------------------------------
if ! mountpoint -q /sys/fs/bpf; then
  log "mounting bpffs on /sys/fs/bpf"
  mount -t bpf bpf /sys/fs/bpf
fi

log "ready"
