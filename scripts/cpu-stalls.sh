#!/usr/bin/env bash
# Does this machine give each core its own CPU? A spinning probe pinned to core PROBE
# (default 1) reads the clock back to back for SECONDS (default 5) and counts the gaps
# longer than 200 us: time the core did not run it. First with core BUSY (default 0)
# idle, then with a busy loop pinned there. On a machine whose cores are real (or whose
# vCPUs each have a host CPU) both lines show few short gaps; on the project's VM the
# second showed 7-66 gaps, the longest 5-12 ms, with nothing else on the probe's core in
# the guest: the host time-shares the two vCPUs once both are busy. A receiver worker
# stalled that long overflows its RX ring (2048 frames last 1 ms at 2 Mpps), which is
# what `xdpipe veth` at full rate reports as socket drops.
#   ./scripts/cpu-stalls.sh [SECONDS] [PROBE] [BUSY]
set -euo pipefail
secs=${1:-5} probe=${2:-1} busy=${3:-0}
command -v python3 >/dev/null || { echo "cpu-stalls: needs python3" >&2; exit 1; }
run_probe() {
  taskset -c "$probe" python3 - "$secs" <<'PY'
import sys, time
end = time.monotonic_ns() + int(float(sys.argv[1]) * 1e9)
last = time.monotonic_ns(); gaps = []
while last < end:
    now = time.monotonic_ns()
    if now - last > 200_000:
        gaps.append(now - last)
    last = now
gaps.sort(reverse=True)
print(f"{len(gaps)} gaps > 200 us; longest (ms): {' '.join(f'{g / 1e6:.2f}' for g in gaps[:8]) or '-'}")
PY
}
echo -n "core $busy idle: "
run_probe
taskset -c "$busy" sh -c 'while :; do :; done' &
spin=$!
trap 'kill $spin 2>/dev/null || true' EXIT
echo -n "core $busy busy: "
run_probe
