#!/usr/bin/env bash
# Soak test, run by hand: generator + receiver on a veth testbed for SECONDS (default 600)
# at RATE (default 200kpps, below the receiver's limit), then exact accounting (sent =
# received + the drops the counters name, no more sequence gaps than that, no duplicates) and the memory
# (RSS) of the xdpipe veth process (receiver and generator are its threads) sampled every
# 10 s, which must stay flat.
#   sudo ./scripts/soak.sh [SECONDS] [RATE] [extra xdpipe veth args...]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
rate=${2:-200kpps}
shift $(( $# > 2 ? 2 : $# ))
bin=./target/release/xdpipe
[ -x "$bin" ] || cargo build --release --locked -p xdpipe >&2
out=$(mktemp -d /tmp/xdpipe-soak.XXXXXX)
echo "soak: ${secs} s at ${rate}; files in $out" >&2
"$bin" veth --rate "$rate" --duration "$secs" --flows 8 --poll 10 --json "$@" >"$out/report.json" 2>"$out/stderr" &
pid=$!
while kill -0 "$pid" 2>/dev/null; do
  sleep 10
  # Receiver and generator are threads of this one process.
  kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
  [ -n "$kb" ] && echo "$(date +%s) $pid $kb veth" >>"$out/rss.log"
done
wait "$pid"
python3 - "$out" <<'PY'
import json, sys, collections
out = sys.argv[1]
r = json.load(open(f"{out}/report.json"))
a = r["receiver"]["accounting"]
print(f"sent {r['sent']}  received {r['received']}  lost {r['lost']}  "
      f"lost_in_sequence {a['lost_in_sequence']}  reordered {a['reordered']}  "
      f"duplicates {a.get('duplicates', 0)}  flows {a['flows']}")
loss = r.get("loss") or {}
# The generator's frames that did not arrive, by the counter that saw them. The program's
# passed_to_kernel also counts other senders' frames (ARP, ND), so it names no drop here.
named = sum(loss.get(k, 0) for k in ("tx_dropped", "socket_dropped"))
exact = r["sent"] == r["received"] + named
print(f"sent = received + named drops: {r['sent']} = {r['received']} + {named} "
      f"({', '.join(f'{k} {v}' for k, v in loss.items()) or 'none'}): {'exact' if exact else 'NOT exact'}")
lat = r["latency_ns"]
print("latency us: p50 %.1f p99 %.1f p99.9 %.1f max %.1f" % tuple(lat[k] / 1e3 for k in ("p50", "p99", "p999", "max")))
rss = collections.defaultdict(list)
for line in (open(f"{out}/rss.log") if __import__("os").path.exists(f"{out}/rss.log") else []):
    t, pid, kb, what = line.split()
    rss[(pid, what)].append(int(kb))
# No samples is no measurement: that fails, it does not pass.
flat = bool(rss) and all(len(v) >= 3 for v in rss.values())
if not flat:
    print("RSS: too few samples (need 3 or more)")
for (pid, what), v in rss.items():
    # A few samples at start and end can differ by page-cache noise; growth beyond 1 MiB
    # after the first minute is a leak.
    base = v[min(6, len(v) - 1)]
    grow = v[-1] - base
    flat &= grow <= 1024
    print(f"{what} pid {pid}: RSS {v[0]} KiB first, {base} KiB after 1 min, {v[-1]} KiB last ({len(v)} samples)")
# Frames may be dropped at a stall; every one must be named, and the sequence gaps can be
# no more than what was lost.
ok = exact and a["lost_in_sequence"] <= r["lost"] and a.get("duplicates", 0) == 0 and flat
print("soak:", "PASS" if ok else "FAIL", "(exact accounting and flat memory)" if ok else "")
sys.exit(0 if ok else 1)
PY
