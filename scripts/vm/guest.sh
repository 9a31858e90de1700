#!/usr/bin/env bash
# QEMU guest testbed for xdpipe: a Linux guest (kernel from trixie-backports) with two
# emulated Intel 82576 (igb) ports cabled to each other and two virtio-net ports cabled to
# each other, so native XDP / AF_XDP (copy and zero-copy) can be exercised on real drivers.
#
#   guest.sh deps                             install QEMU (bookworm-backports) & tools
#   guest.sh build                            fetch kernel, build initramfs (cached)
#   guest.sh start STATE_DIR [--xdpipe PATH]  boot the guest in the background
#   guest.sh exec STATE_DIR [--timeout S] -- 'shell command...'
#   guest.sh stop STATE_DIR
#
# See scripts/vm/README.md. Needs root. Host-side network devices (multi-queue taps for
# virtio-net) live only in a network namespace xdpipe-vm-<id> that stop removes; nothing
# touches the host's own interfaces.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VMDIR=${XDPIPE_VM_DIR:-$REPO/target/vm}
APTDIR=$VMDIR/apt
HERE=$REPO/scripts/vm

log() { printf 'guest.sh: %s\n' "$*" >&2; }
die() { printf 'guest.sh: error: %s\n' "$*" >&2; exit 1; }

need_root() { [ "$(id -u)" -eq 0 ] || die "must run as root; try: sudo $0 $*"; }

usage() {
  sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit "${1:-2}"
}

# ------------------------------------------------------------------------------ deps
QEMU=/usr/bin/qemu-system-x86_64
BPO_LIST=/etc/apt/sources.list.d/bookworm-backports.sources

qemu_ok() {
  # QEMU >= 8 with the igb device model.
  [ -x "$QEMU" ] || return 1
  "$QEMU" -device help 2>/dev/null | grep '"igb"' >/dev/null
}

cmd_deps() {
  need_root deps
  local pkgs=(busybox-static kmod cpio xz-utils zstd iproute2 ethtool) missing=() p
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep 'install ok installed' >/dev/null || missing+=("$p")
  done
  export DEBIAN_FRONTEND=noninteractive
  if ! qemu_ok; then
    if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
      log "adding $BPO_LIST"
      cat > "$BPO_LIST" <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    fi
    log "apt-get update"
    apt-get update -qq
    log "installing qemu-system-x86 from bookworm-backports"
    apt-get install -y -qq --no-install-recommends -t bookworm-backports \
      qemu-system-x86 qemu-system-common qemu-system-data >/dev/null
    qemu_ok || die "installed $QEMU has no igb device (need QEMU >= 8 from bookworm-backports)"
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
      apt-get update -qq
      apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    }
  fi
  log "deps ready: $("$QEMU" --version | head -n1)"
}

# ----------------------------------------------------------------------------- build
# Private apt configuration for trixie + trixie-backports: own sources, state and cache
# under target/vm/apt, none of the host's apt.conf.d, preferences or lists.
apt_private() {
  local d=$APTDIR
  mkdir -p "$d/etc/parts" "$d/etc/prefs" "$d/state/lists/partial" "$d/cache/archives/partial"
  [ -e "$d/state/status" ] || : > "$d/state/status"
  cat > "$d/etc/sources.list" <<SRC
deb [signed-by=$KEYRING] http://deb.debian.org/debian trixie main
deb [signed-by=$KEYRING] http://deb.debian.org/debian trixie-backports main
SRC
  cat > "$d/etc/apt.conf" <<CONF
Dir::Etc::Parts "$d/etc/parts";
Dir::Etc::PreferencesParts "$d/etc/prefs";
Dir::Etc::Preferences "$d/etc/preferences";
Dir::Etc::SourceList "$d/etc/sources.list";
Dir::Etc::SourceParts "/dev/null";
Dir::State "$d/state";
Dir::State::status "$d/state/status";
Dir::Cache "$d/cache";
APT::Architecture "amd64";
APT::Architectures { "amd64"; };
APT::Sandbox::User "root";
Acquire::Languages "none";
CONF
}
papt() { APT_CONFIG=$APTDIR/etc/apt.conf "$@"; }

KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

# The newest kernel ABI name in trixie-backports (e.g. 7.3.4+deb13-amd64), from the
# Depends of the highest linux-image-amd64.
newest_kernel() {
  papt apt-cache show linux-image-amd64 \
    | awk '/^Version:/ {v=$2} /^Depends:/ {print v "\t" $0}' \
    | sort -V -k1,1 | tail -n1 \
    | grep -oE 'linux-image-[0-9][^ ,]*-amd64' | sed -n "1s/^linux-image-//p"
}

fetch_kernel() {  # -> sets KVER, KDIR (with vmlinuz and an unpacked module tree)
  local lists=$APTDIR/state/lists stamp
  apt_private
  stamp=$(find "$lists" -maxdepth 1 -name '*trixie-backports*Packages*' -mmin -1440 2>/dev/null | head -n1)
  if [ -n "${XDPIPE_VM_KERNEL:-}" ] && [ -e "$VMDIR/kernel/$XDPIPE_VM_KERNEL/ok" ]; then
    KVER=$XDPIPE_VM_KERNEL
  else
    if [ -z "$stamp" ] || [ "${XDPIPE_VM_REFRESH:-0}" = 1 ]; then
      gpg --show-keys "$KEYRING" 2>/dev/null | grep '13/trixie' >/dev/null \
        || log "warning: $KEYRING has no trixie key; apt will reject trixie (update debian-archive-keyring)"
      log "apt-get update (private: trixie, trixie-backports)"
      papt apt-get update -qq || die "private apt-get update failed (see above)"
    fi
    KVER=${XDPIPE_VM_KERNEL:-$(newest_kernel)}
    [ -n "$KVER" ] || die "no linux-image-amd64 in trixie-backports lists"
  fi
  KDIR=$VMDIR/kernel/$KVER
  [ -e "$KDIR/ok" ] && return 0
  log "fetching kernel $KVER from trixie-backports"
  rm -rf "$KDIR" && mkdir -p "$KDIR/dl" "$KDIR/x"
  # Since 7.x the image is split: linux-image-V (meta) -> linux-binary-V (vmlinuz) +
  # linux-modules-V; older ones carry everything in linux-image-V(-unsigned).
  local pkgs=("linux-image-$KVER") dep
  for dep in $(papt apt-cache depends "linux-image-$KVER" 2>/dev/null \
                 | awk -v k="$KVER" '$1 == "Depends:" && ($2 == "linux-binary-" k || $2 == "linux-modules-" k) {print $2}'); do
    pkgs+=("$dep")
  done
  (cd "$KDIR/dl" && papt apt-get download -qq "${pkgs[@]}") || die "apt-get download ${pkgs[*]} failed"
  local deb
  for deb in "$KDIR"/dl/*.deb; do dpkg -x "$deb" "$KDIR/x"; done
  local mdir
  for mdir in "$KDIR/x/usr/lib/modules/$KVER" "$KDIR/x/lib/modules/$KVER"; do
    [ -d "$mdir" ] && break
  done
  [ -d "$mdir" ] || die "no modules directory for $KVER in ${pkgs[*]}"
  local vmlinuz
  vmlinuz=$(ls "$KDIR/x/boot/vmlinuz-$KVER" "$mdir/vmlinuz" 2>/dev/null | head -n1 || true)
  [ -n "$vmlinuz" ] || die "no vmlinuz in ${pkgs[*]}"
  cp "$vmlinuz" "$KDIR/vmlinuz"
  # modprobe/depmod look in DIR/lib/modules; usr-merged packages ship usr/lib/modules.
  [ -e "$KDIR/x/lib" ] || ln -s usr/lib "$KDIR/x/lib"
  depmod -b "$KDIR/x" "$KVER" 2>/dev/null || die "depmod -b $KDIR/x $KVER failed"
  rm -rf "$KDIR/dl"
  touch "$KDIR/ok"
}

# Modules the guest loads (plus their dependencies); ones built into the kernel are
# simply absent from the tree and skipped. The second line: the virtual devices of the
# device targets (`xdpipe bench --target vm:DEVICE` builds them on a veth testbed in the
# guest): veth, bridge, macvlan, vxlan, tun (tap), ipvlan, geneve (with udp_tunnel and
# ip6_udp_tunnel) and the Open vSwitch datapath (with nf_conntrack, nf_nat, psample,
# nsh). netkit is no module (CONFIG_NETKIT is a bool): present only when built in.
GUEST_MODULES=(virtio_pci virtio_net igb 9pnet_virtio 9p
  veth bridge macvlan vxlan tun ipvlan geneve openvswitch)

# Copy a host binary (or library) and the shared libraries it needs into ROOT.
copy_with_libs() {
  local root=$1 bin=$2 dest=${3:-$2} lib
  mkdir -p "$root$(dirname "$dest")"
  cp -L "$bin" "$root$dest"
  for lib in $(ldd "$bin" 2>/dev/null | grep -oE '/[^ ]+' || true); do
    [ -e "$root$lib" ] && continue
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
}

cmd_build() {
  need_root build
  command -v busybox >/dev/null && busybox --list | grep -x insmod >/dev/null \
    || die "no busybox (busybox-static); run: $0 deps"
  command -v cpio >/dev/null || die "no cpio; run: $0 deps"
  command -v depmod >/dev/null || die "no depmod (kmod); run: $0 deps"
  local t0=$SECONDS
  fetch_kernel
  local root=$KDIR/root out=$KDIR/initramfs.cpio
  rm -rf "$root"
  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,etc,proc,sys,dev,tmp,run,root,host,lib/modules}
  ln -s lib "$root/lib64" 2>/dev/null || true
  # busybox: the binary plus a link per applet (real binaries installed first win).
  cp "$(command -v busybox)" "$root/bin/busybox"
  copy_with_libs "$root" "$(command -v ip)" /usr/sbin/ip
  copy_with_libs "$root" "$(command -v ethtool)" /usr/sbin/ethtool
  local tool
  for tool in bpftool tc; do
    command -v "$tool" >/dev/null && copy_with_libs "$root" "$(readlink -f "$(command -v "$tool")")" "/usr/sbin/$tool"
  done
  # Shared libraries xdpipe needs (the binary itself comes in over 9p at start).
  local xbin=$REPO/target/release/xdpipe
  if [ -x "$xbin" ]; then
    copy_with_libs "$root" "$xbin" /tmp/xdpipe && rm -f "$root/tmp/xdpipe"
  else
    log "warning: $xbin not built; adding libc only"
    copy_with_libs "$root" /bin/true /tmp/true && rm -f "$root/tmp/true"
  fi
  # lib64 -> lib breaks if libraries were copied to /lib64 first; keep the loader path.
  if [ ! -e "$root/lib64/ld-linux-x86-64.so.2" ]; then
    cp -L /lib64/ld-linux-x86-64.so.2 "$root/lib/"
  fi
  local applet
  for applet in $(busybox --list-full); do
    [ -e "$root/$applet" ] || [ -L "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
  done
  # Kernel modules, decompressed (busybox insmod reads plain .ko), in load order.
  : > "$root/lib/modules/load.list"
  local m line ko dst
  for m in "${GUEST_MODULES[@]}"; do
    { modprobe -S "$KVER" -d "$KDIR/x" --show-depends "$m" 2>/dev/null || true; } | while read -r line; do
      case $line in insmod\ *) ;; *) continue ;; esac
      ko=${line#insmod }; ko=${ko%% *}; ko=${ko#"$KDIR/x"}
      dst=/lib/modules/$(basename "$ko"); dst=${dst%.xz}; dst=${dst%.zst}; dst=${dst%.gz}
      grep -qx "$dst" "$root/lib/modules/load.list" && continue
      case $ko in
        *.xz) xz -dc "$KDIR/x$ko" > "$root$dst" ;;
        *.zst) zstd -qdc "$KDIR/x$ko" > "$root$dst" ;;
        *.gz) gzip -dc "$KDIR/x$ko" > "$root$dst" ;;
        *) cp "$KDIR/x$ko" "$root$dst" ;;
      esac
      echo "$dst" >> "$root/lib/modules/load.list"
    done
  done
  grep -q '/igb.ko$' "$root/lib/modules/load.list" || die "igb module not found for $KVER"
  for m in veth ipvlan geneve; do
    grep -q "/$m.ko\$" "$root/lib/modules/load.list" || log "warning: no $m module for $KVER (built in, or the device targets needing it will be refused in the guest)"
  done
  install -m 0755 "$HERE/init" "$root/init"
  install -m 0644 "$HERE/job.sh" "$root/etc/job.sh"
  echo "root:x:0:0:root:/root:/bin/sh" > "$root/etc/passwd"
  echo "root:x:0:" > "$root/etc/group"
  (cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) > "$out.tmp"
  mv "$out.tmp" "$out"
  ln -sfn "kernel/$KVER" "$VMDIR/current"
  log "built $out ($(du -h "$out" | cut -f1)), kernel $KVER, modules: $(xargs -n1 basename < "$root/lib/modules/load.list" | tr '\n' ' ')in $((SECONDS - t0)) s"
}

# ------------------------------------------------------------------- start/exec/stop
MAC_IGB0=52:54:00:78:00:01 MAC_IGB1=52:54:00:78:00:02
MAC_VIO0=52:54:00:79:00:01 MAC_VIO1=52:54:00:79:00:02
# 4 queue pairs, one per vCPU. With spare pairs (say 8), virtio_net enables one extra
# pair per CPU for XDP_TX / XDP_REDIRECT when a program is attached, and the device then
# spreads received frames over those pairs' RX queues too: queues no socket listens on
# (ethtool -l still shows the 4). With exactly 4, XDP TX shares the queues under a lock
# (the kernel warns "slower locked tx mode") and every frame arrives on queues 0-3.
VIO_QUEUES=${XDPIPE_VM_VIO_QUEUES:-4}
READY_TIMEOUT=${XDPIPE_VM_READY_TIMEOUT:-240}

state_dir() {  # absolute STATE_DIR (created)
  [ -n "${1:-}" ] || die "missing STATE_DIR"
  mkdir -p "$1"
  (cd "$1" && pwd)
}
netns_name() { echo "xdpipe-vm-$(printf '%s' "$1" | md5sum | cut -c1-8)"; }

# The pid in STATE/qemu.pid if it is a live QEMU started for this STATE dir.
qemu_pid() {
  local s=$1 pid
  pid=$(cat "$s/qemu.pid" 2>/dev/null || true)
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' '\n' < "/proc/$pid/cmdline" | sed -n 1p | grep 'qemu-system' >/dev/null || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -F "path=$s/share," >/dev/null || return 1
  echo "$pid"
}

kill_qemu() {
  local s=$1 pid i
  pid=$(qemu_pid "$s") || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}

remove_netns() {
  local s=$1 ns pid
  ns=$(cat "$s/netns" 2>/dev/null || true)
  [ -n "$ns" ] || return 0
  # A QEMU whose pidfile was never written (stopped mid-boot) still lives in $ns.
  for pid in $(ip netns pids "$ns" 2>/dev/null); do
    grep -q '^qemu-system' "/proc/$pid/comm" 2>/dev/null && { kill -KILL "$pid" 2>/dev/null || true; }
  done
  ip netns del "$ns" 2>/dev/null || true  # the taps inside go with it
  rm -f "$s/netns" "/run/xdpipe/vms/$ns"
}

# A namespace with two multi-queue taps joined like a cable: whatever QEMU writes into
# one (a frame the guest sent on vio0) leaves by the other (the guest receives it on vio1).
make_netns() {
  local s=$1 ns=$2 t
  ip netns del "$ns" 2>/dev/null || true
  ip netns add "$ns" || die "ip netns add $ns failed"
  echo "$ns" > "$s/netns"
  # Owner record for `xdpipe cleanup`: the process that started the guest, and STATE. When
  # that process is gone (killed by SIGKILL, say), cleanup kills this QEMU and removes $ns.
  # "pid starttime STATE": the start time (field 22 of /proc/PID/stat) tells a recycled
  # pid from the owner. Directory 0700, record 0600; a failed write is an error.
  local start
  start=$(sed 's/.*) //' "/proc/$PPID/stat" | cut -d' ' -f20) || die "cannot read /proc/$PPID/stat"
  (umask 077 && mkdir -p /run/xdpipe/vms && chmod 0700 /run/xdpipe /run/xdpipe/vms \
     && echo "$PPID $start $s" > "/run/xdpipe/vms/$ns") || die "cannot write the owner record /run/xdpipe/vms/$ns"
  local nsx=(ip netns exec "$ns")
  "${nsx[@]}" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 || true
  for t in vtap0 vtap1; do
    ip -n "$ns" tuntap add dev "$t" mode tap multi_queue || die "cannot create multi-queue tap $t in $ns"
    ip -n "$ns" link set dev "$t" mtu 9000 up
  done
  if "${nsx[@]}" tc qdisc add dev vtap0 ingress 2>/dev/null \
     && "${nsx[@]}" tc qdisc add dev vtap1 ingress \
     && "${nsx[@]}" tc filter add dev vtap0 parent ffff: protocol all prio 1 u32 match u32 0 0 \
          action mirred egress redirect dev vtap1 \
     && "${nsx[@]}" tc filter add dev vtap1 parent ffff: protocol all prio 1 u32 match u32 0 0 \
          action mirred egress redirect dev vtap0; then
    echo "tc-mirred" > "$s/cable"
  else
    log "tc mirred unavailable; joining the taps with a bridge in $ns"
    "${nsx[@]}" tc qdisc del dev vtap0 ingress 2>/dev/null || true
    "${nsx[@]}" tc qdisc del dev vtap1 ingress 2>/dev/null || true
    ip -n "$ns" link add vbr0 type bridge ageing_time 0 || die "cannot create bridge in $ns"
    ip -n "$ns" link set vtap0 master vbr0
    ip -n "$ns" link set vtap1 master vbr0
    ip -n "$ns" link set vbr0 up
    echo "bridge" > "$s/cable"
  fi
}

qemu_args() {  # $1 STATE, $2 accel
  local s=$1 accel=$2 k=$VMDIR/current vec=$((2 * VIO_QUEUES + 2))
  local cpu=max acc="tcg,thread=multi"
  [ "$accel" = kvm ] && { cpu=host; acc=kvm; }
  QARGS=(-name "xdpipe-vm" -M q35 -accel "$acc" -cpu "$cpu" -smp 4 -m 2048
    -nodefaults -display none -no-reboot
    -serial "file:$s/console.log"
    -kernel "$k/vmlinuz" -initrd "$k/initramfs.cpio"
    -append "console=ttyS0 panic=-1 loglevel=6"
    -fsdev "local,id=fs0,path=$s/share,security_model=none"
    -device virtio-9p-pci,fsdev=fs0,mount_tag=host
    # igb: each port behind its own PCIe root port (the PF reserves function slots for its
    # VFs, so two igbs cannot share a bus); cabled through an in-QEMU hub with two ports.
    -device pcie-root-port,id=rp1,chassis=1,slot=1
    -device pcie-root-port,id=rp2,chassis=2,slot=2
    -netdev hubport,id=ig0,hubid=0 -device "igb,bus=rp1,netdev=ig0,mac=$MAC_IGB0"
    -netdev hubport,id=ig1,hubid=0 -device "igb,bus=rp2,netdev=ig1,mac=$MAC_IGB1"
    # virtio-net: multi-queue taps (in the netns) cabled by tc mirred / a bridge there.
    # iommu_platform=on: virtio_net's AF_XDP zero-copy needs the DMA API (without it
    # virtqueue_dma_dev() is NULL and the bind fails with EINVAL).
    -netdev "tap,id=vn0,ifname=vtap0,script=no,downscript=no,vhost=off,queues=$VIO_QUEUES"
    -device "virtio-net-pci,netdev=vn0,mac=$MAC_VIO0,mq=on,vectors=$vec,disable-legacy=on,iommu_platform=on,romfile="
    -netdev "tap,id=vn1,ifname=vtap1,script=no,downscript=no,vhost=off,queues=$VIO_QUEUES"
    -device "virtio-net-pci,netdev=vn1,mac=$MAC_VIO1,mq=on,vectors=$vec,disable-legacy=on,iommu_platform=on,romfile=")
}

# Boot with ACCEL; wait up to TIMEOUT s for share/ready. 0 ready, 1 failed.
boot() {
  local s=$1 accel=$2 timeout=$3 ns pid t0=$SECONDS
  ns=$(cat "$s/netns")
  qemu_args "$s" "$accel"
  : > "$s/console.log"
  rm -f "$s/share/ready" "$s/share/failed"
  echo "$accel" > "$s/accel"
  printf '%q ' ip netns exec "$ns" "$QEMU" "${QARGS[@]}" > "$s/qemu.cmd"; echo >> "$s/qemu.cmd"
  setsid ip netns exec "$ns" "$QEMU" "${QARGS[@]}" -pidfile "$s/qemu.pid" \
    > "$s/qemu.log" 2>&1 < /dev/null &
  local launcher=$!
  while [ $((SECONDS - t0)) -lt "$timeout" ]; do
    [ -e "$s/share/ready" ] && { echo $((SECONDS - t0)) > "$s/boot_seconds"; return 0; }
    [ -e "$s/share/failed" ] && break
    kill -0 "$launcher" 2>/dev/null || break            # QEMU exited
    grep -q 'KVM internal error' "$s/qemu.log" 2>/dev/null && break
    sleep 0.5
  done
  kill_qemu "$s"
  kill -TERM "$launcher" 2>/dev/null || true
  wait "$launcher" 2>/dev/null || true
  return 1
}

cmd_start() {
  need_root start
  local s xdpipe=$REPO/target/release/xdpipe accel=${XDPIPE_VM_ACCEL:-auto}
  s=$(state_dir "${1:-}"); shift
  while [ $# -gt 0 ]; do
    case $1 in
      --xdpipe) xdpipe=${2:?--xdpipe needs a path}; shift 2 ;;
      --accel) accel=${2:?--accel needs kvm, tcg or auto}; shift 2 ;;
      *) die "start: unknown option $1" ;;
    esac
  done
  qemu_ok || die "no usable QEMU with igb; run: $0 deps"
  [ -e "$VMDIR/current/initramfs.cpio" ] || die "no guest image; run: $0 build"
  [ -x "$xdpipe" ] || die "xdpipe binary $xdpipe not found (build it, or pass --xdpipe PATH)"
  # A stale state dir: stop what is left of an earlier boot.
  if pid=$(qemu_pid "$s"); then log "killing leftover QEMU $pid of $s"; fi
  kill_qemu "$s"
  remove_netns "$s"
  rm -rf "$s/share" && mkdir -p "$s/share/cmd"
  # Without its debug info (a debug build's is three quarters of it): every exec in the
  # guest pages the binary in over 9p, about 8 s for a 100 MB debug build under TCG and
  # 2 s stripped. Symbols stay, so a panic's backtrace still names its functions.
  strip --strip-debug -o "$s/share/xdpipe" "$xdpipe" 2>/dev/null || cp "$xdpipe" "$s/share/xdpipe"
  # Libraries xdpipe needs beyond those in the image go to share/lib (LD_LIBRARY_PATH).
  local lib root=$VMDIR/current/root
  for lib in $(ldd "$xdpipe" 2>/dev/null | grep -oE '/[^ ]+' || true); do
    [ -e "$root$lib" ] || { mkdir -p "$s/share/lib"; cp -L "$lib" "$s/share/lib/"; }
  done
  # Stopped while booting (SIGINT, SIGTERM, SIGHUP): take QEMU and the namespace with us.
  trap 'trap - INT TERM HUP; log "interrupted; stopping the guest"; kill_qemu "$s"; remove_netns "$s"; exit 130' INT TERM HUP
  make_netns "$s" "$(netns_name "$s")"
  local t0=$SECONDS
  if [ "$accel" = auto ] || [ "$accel" = kvm ]; then
    if [ -w /dev/kvm ] && boot "$s" kvm "${XDPIPE_VM_KVM_TIMEOUT:-30}"; then
      log "guest ready (kvm) after $(cat "$s/boot_seconds") s; state in $s"
      return 0
    fi
    [ "$accel" = kvm ] && { tail -n 30 "$s/console.log" "$s/qemu.log" >&2; die "boot with KVM failed"; }
    log "KVM boot failed ($(grep -m1 -o 'KVM internal error.*' "$s/qemu.log" 2>/dev/null || echo 'no agent within timeout')); falling back to TCG"
  fi
  # Under TCG on two host cores a boot now and then hangs (RCU stalls, a timer that never
  # fires: seen once in a CI run, where the same boot took 24 s when run again), so a boot
  # that is not ready in half the time is started once more, within the same total.
  local half=$((READY_TIMEOUT / 2)) attempt
  for attempt in 1 2; do
    if boot "$s" tcg "$half"; then
      log "guest ready (tcg) after $(cat "$s/boot_seconds") s (total $((SECONDS - t0)) s); state in $s"
      return 0
    fi
    [ -e "$s/share/failed" ] && break
    if [ "$attempt" = 1 ]; then
      log "guest not ready within $half s under TCG; console.log tail, then one more boot:"
      tail -n 8 "$s/console.log" >&2 || true
    fi
  done
  log "guest did not become ready within $READY_TIMEOUT s; console.log tail:"
  tail -n 40 "$s/console.log" >&2 || true
  [ -s "$s/qemu.log" ] && { log "qemu.log:"; tail -n 20 "$s/qemu.log" >&2; }
  [ -e "$s/share/failed" ] && log "guest init failed: $(cat "$s/share/failed")"
  remove_netns "$s"
  exit 1
}

cmd_exec() {
  local s timeout=300
  s=$(state_dir "${1:-}"); shift
  while [ $# -gt 0 ]; do
    case $1 in
      --timeout) timeout=${2:?}; shift 2 ;;
      --) shift; break ;;
      *) break ;;
    esac
  done
  [ $# -gt 0 ] || die "exec: no command (usage: exec STATE_DIR [--timeout S] -- 'cmd')"
  [ -e "$s/share/ready" ] && qemu_pid "$s" >/dev/null || die "guest in $s is not running (start it first)"
  local id n
  id=$(date +%s%N)-$$
  n=$s/share/cmd/$id
  {
    [ -d "$s/share/lib" ] && echo 'export LD_LIBRARY_PATH=/host/lib'
    printf '%s\n' "$*"
  } > "$n.sh.tmp"
  mv "$n.sh.tmp" "$n.sh"
  # Stopped while waiting: the guest's agent sends the job SIGTERM.
  trap 'trap - INT TERM HUP; : > "$n.kill"; log "exec: interrupted; sent job $id SIGTERM"; exit 130' INT TERM HUP
  local t0=$SECONDS
  while [ ! -e "$n.rc" ]; do
    if [ $((SECONDS - t0)) -ge "$timeout" ]; then
      : > "$n.kill"
      sleep 2
      cat "$n.out" 2>/dev/null || true
      cat "$n.err" >&2 2>/dev/null || true
      log "exec: job $id timed out after $timeout s (sent it SIGTERM)"
      return 124
    fi
    qemu_pid "$s" >/dev/null || die "exec: QEMU died while job $id ran (see $s/console.log)"
    sleep 0.2
  done
  cat "$n.out"
  cat "$n.err" >&2
  return "$(cat "$n.rc")"
}

cmd_stop() {
  need_root stop
  local s pid i
  s=$(state_dir "${1:-}")
  if pid=$(qemu_pid "$s"); then
    if [ -e "$s/share/ready" ]; then
      : > "$s/share/cmd/poweroff"
      for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    kill -0 "$pid" 2>/dev/null && log "QEMU $pid still running; killing it"
    kill_qemu "$s"
  fi
  remove_netns "$s"
  rm -f "$s/qemu.pid" "$s/share/ready"
  log "stopped ($s)"
}

main() {
  local cmd=${1:-}
  [ $# -gt 0 ] && shift
  case $cmd in
    deps) cmd_deps "$@" ;;
    build) cmd_build "$@" ;;
    start) cmd_start "$@" ;;
    exec) cmd_exec "$@" ;;
    stop) cmd_stop "$@" ;;
    -h|--help|help|'') usage 0 ;;
    *) die "unknown subcommand '$cmd' (deps, build, start, exec, stop)" ;;
  esac
}
main "$@"
