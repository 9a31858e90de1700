#!/usr/bin/env bash
# Build the anchor tools `xdpipe bench` measures against, from source, into one directory:
#   xdpsock         bpf-examples, AF_XDP-example (with the libbpf/libxdp its lib/ submodules pin)
#   xdp-bench       xdp-tools 1.6 or newer (Debian's 1.3.1 does not load on recent kernels)
#   xdp-trafficgen  xdp-tools 1.6 or newer
# libbpf and libxdp are linked statically and the BPF programs are embedded (skeletons, libxdp's
# built-in dispatcher), so the binaries run from any directory with no installed .o files.
# The one exception: xdpsock opens xdpsock_kern.o from the current directory when run with -M
# (several sockets) or --frags. We install it next to xdpsock, but xdpipe bench uses neither option.
#
# Get the sources:
#   git clone --recurse-submodules https://github.com/xdp-project/bpf-examples
#   git clone --recurse-submodules --branch v1.6.3 https://github.com/xdp-project/xdp-tools
# Usage:
#   scripts/build-anchors.sh --bpf-examples DIR --xdp-tools DIR [--libbpf DIR] [--out DIR]
#   xdpipe bench --anchor-dir DIR  (the default DIR is /tmp/anchors/bin)
# --libbpf DIR: a libbpf source tree. It is copied into any lib/libbpf submodule directory that
# is still empty (a tree cloned without --recurse-submodules).
# Builds inside the source trees. Build output goes to $LOG_DIR (default /tmp/build-anchors).
# Needs root when Debian packages are missing.
set -euo pipefail

log() { printf 'build-anchors: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
usage() { sed -n '/^# Usage:/,/^# Needs root/p' "$0" | sed 's/^# \{0,1\}//' >&2; exit "${1:-2}"; }

bpf_examples='' xdp_tools='' libbpf='' out=/tmp/anchors/bin
while [ $# -gt 0 ]; do
  case "$1" in
    --bpf-examples) bpf_examples=${2:?}; shift 2 ;;
    --xdp-tools) xdp_tools=${2:?}; shift 2 ;;
    --libbpf) libbpf=${2:?}; shift 2 ;;
    --out) out=${2:?}; shift 2 ;;
    -h|--help) usage 0 ;;
    *) log "unknown argument: $1"; usage ;;
  esac
done
[ -n "$bpf_examples" ] && [ -n "$xdp_tools" ] || { log "--bpf-examples and --xdp-tools are required"; usage; }

# --- source trees ----------------------------------------------------------------
clone_hint="git clone --recurse-submodules https://github.com/xdp-project"
[ -f "$bpf_examples/AF_XDP-example/xdpsock.c" ] ||
  die "$bpf_examples is not a bpf-examples tree (no AF_XDP-example/xdpsock.c); get one with: $clone_hint/bpf-examples"
[ -f "$xdp_tools/xdp-bench/xdp-bench.c" ] && [ -f "$xdp_tools/xdp-trafficgen/xdp-trafficgen.c" ] ||
  die "$xdp_tools is not an xdp-tools 1.6+ tree (no xdp-bench/ and xdp-trafficgen/); get one with: $clone_hint/xdp-tools --branch v1.6.3"
bpf_examples=$(realpath "$bpf_examples") xdp_tools=$(realpath "$xdp_tools")
xt_version=$(sed -nE 's/^TOOLS_VERSION := "(.*)"/\1/p' "$xdp_tools/version.mk")
[ "$(printf '%s\n' 1.6 "$xt_version" | sort -V | head -n1)" = 1.6 ] ||
  die "$xdp_tools is xdp-tools $xt_version; need 1.6 or newer (git -C $xdp_tools checkout v1.6.3)"
if [ -n "$libbpf" ]; then
  [ -f "$libbpf/src/libbpf.c" ] || die "--libbpf $libbpf is not a libbpf source tree (no src/libbpf.c)"
  libbpf=$(realpath "$libbpf")
fi

# fill_submodule DIR WHAT SOURCE: make sure submodule directory DIR holds a source tree, checked by
# file WHAT, copying SOURCE in if DIR is empty.
fill_submodule() {
  local dir=$1 what=$2 src=$3
  [ -f "$dir/$what" ] && return 0
  [ -n "$(ls -A "$dir" 2>/dev/null)" ] && die "$dir is neither empty nor a source tree (no $what)"
  [ -n "$src" ] || die "submodule $dir is empty: run 'git -C $(dirname "$(dirname "$dir")") submodule update --init --recursive', or pass --libbpf DIR"
  log "copying $src into $dir"
  mkdir -p "$dir"
  cp -a "$src/." "$dir/"
}
fill_submodule "$bpf_examples/lib/libbpf" src/libbpf.c "$libbpf"
# bpf-examples builds its libxdp from lib/xdp-tools; any xdp-tools tree serves.
fill_submodule "$bpf_examples/lib/xdp-tools" lib/libxdp/libxdp.c "$xdp_tools"
fill_submodule "$xdp_tools/lib/libbpf" src/libbpf.c "$libbpf"

# --- Debian packages -------------------------------------------------------------
# libcap/libmnl: bpf-examples' configure requires them; libpcap: xdp-tools' configure.
pkgs=(gcc make pkg-config m4 clang-19 llvm-19 bpftool libelf-dev zlib1g-dev libpcap-dev libcap-dev libmnl-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep 'install ok installed' >/dev/null || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || die "missing Debian packages: ${missing[*]}; run as root, or: sudo apt-get install ${missing[*]}"
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- build ---------------------------------------------------------------------------
# Pin the toolchain (neither configure uses llc today, but plain llc on bookworm is LLVM 14,
# which cannot read clang 19's IR).
# FORCE_SUB*_LIBBPF: use the submodule libbpf even if a (too old) libbpf-dev is installed.
export CC=gcc CLANG=clang-19 LLC=llc-19 BPFTOOL=bpftool FORCE_SUBMODULE_LIBBPF=1 FORCE_SUBDIR_LIBBPF=1
jobs=$(( $(nproc) < 2 ? $(nproc) : 2 ))
LOG_DIR=${LOG_DIR:-/tmp/build-anchors}
mkdir -p "$LOG_DIR" "$out"
out=$(realpath "$out")

# step NAME DIR CMD...: run CMD in DIR, output to $LOG_DIR/NAME.log; show its tail on failure.
step() {
  local name=$1 dir=$2; shift 2
  log "$name (log: $LOG_DIR/$name.log)"
  if ! (cd "$dir" && "$@") >"$LOG_DIR/$name.log" 2>&1; then
    tail -n 25 "$LOG_DIR/$name.log" >&2
    die "$name failed; full output in $LOG_DIR/$name.log"
  fi
}

start=$SECONDS
# libbpf before libxdp: libxdp compiles against the headers libbpf's build installs.
step bpf-examples-configure "$bpf_examples" ./configure
step bpf-examples-libbpf "$bpf_examples/lib" make -j"$jobs" libbpf
step bpf-examples-libxdp "$bpf_examples/lib" make -j"$jobs" libxdp
# xdpsock insists on raising RLIMIT_MEMLOCK to infinity and exits if it cannot, which fails
# without CAP_SYS_RESOURCE (as in some VMs and containers, even as root). Kernels since 5.11
# do not need the raise (BPF memory is charged to the memory cgroup; root's CAP_IPC_LOCK covers
# the umem), so patch it to go on after EPERM. A no-op where the raise succeeds.
xdpsock_c=$bpf_examples/AF_XDP-example/xdpsock.c
if ! grep -q 'setrlimit(RLIMIT_MEMLOCK, &r) && errno != EPERM' "$xdpsock_c"; then
  log "patching $xdpsock_c: tolerate EPERM from setrlimit(RLIMIT_MEMLOCK)"
  sed -i 's/if (setrlimit(RLIMIT_MEMLOCK, &r)) {/if (setrlimit(RLIMIT_MEMLOCK, \&r) \&\& errno != EPERM) {/' "$xdpsock_c"
  grep -q 'setrlimit(RLIMIT_MEMLOCK, &r) && errno != EPERM' "$xdpsock_c" ||
    die "could not patch the setrlimit call in $xdpsock_c (upstream changed?)"
fi
step bpf-examples-xdpsock "$bpf_examples/AF_XDP-example" make -j"$jobs"
step xdp-tools-configure "$xdp_tools" ./configure
grep -q '^BPFTOOL:=.' "$xdp_tools/config.mk" ||
  die "xdp-tools' configure found no usable bpftool, so it would skip xdp-bench (see $LOG_DIR/xdp-tools-configure.log)"
step xdp-tools-lib "$xdp_tools" make -j"$jobs" lib
step xdp-tools-tools "$xdp_tools" make -j"$jobs" xdp-bench xdp-trafficgen

install -m 0755 "$bpf_examples/AF_XDP-example/xdpsock" "$xdp_tools/xdp-bench/xdp-bench" \
  "$xdp_tools/xdp-trafficgen/xdp-trafficgen" "$out/"
install -m 0644 "$bpf_examples/AF_XDP-example/xdpsock_kern.o" "$out/"

# --- check: each runs from the out dir, from another working directory ---------------
# (all three exit non-zero after printing usage; xdp-tools' tools take `help`, not --help)
cd /
check() { local o; o=$("$@" 2>&1) || true; grep -q 'Usage:' <<<"$o" || die "'$*' printed no usage"; }
check "$out/xdpsock" -h
check "$out/xdp-bench" help
check "$out/xdp-trafficgen" help
log "built in $((SECONDS - start))s: xdp-tools $xt_version, bpf-examples' libxdp" \
  "$(sed -nE 's/^TOOLS_VERSION := "(.*)"/\1/p' "$bpf_examples/lib/xdp-tools/version.mk")"
log "installed in $out: $(cd "$out" && echo *)"
log "use: xdpipe bench --anchor-dir $out"
