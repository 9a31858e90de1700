//! Real NIC drivers: a QEMU guest (scripts/vm/guest.sh) with two emulated Intel 82576
//! (igb) ports cabled to each other and two multi-queue virtio-net ports cabled to each
//! other. In it, `xdpipe gen` on one port feeds `xdpipe run` on the other in native driver
//! mode: exact counts per mode (rxdrop, l2fwd, fwd, gen), zero-copy binds, RSS spreading
//! flows over four queues, offload toggles, and no program left attached afterwards.
//!
//! One guest per test (booted under KVM if it can, else TCG), tests one at a time. If the
//! guest cannot boot, the test fails with guest.sh's output, which ends with the console.
mod common;

use std::sync::Mutex;

use common::{vm::*, *};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// How every receiver here runs: native XDP, workers sleeping in epoll (10 ms at most).
const NATIVE: &str = "--xdp-mode native --poll 10";

/// Everything one driver pair must do. `rx`/`tx`: the cabled ports; `other`: the other
/// pair's (out, sink) ports for fwd across drivers.
fn driver_paths(g: &Vm, rx: &str, tx: &str, other: (&str, &str)) {
    const N: u64 = 3000;
    let n = N.to_string();
    // One queue: every flow lands on queue 0, so counts are exact.
    g.sh(&format!("ethtool -L {rx} combined 1 && ethtool -L {tx} combined 1"));

    // rxdrop, copy bind, native XDP: exact count; gen's own count agrees.
    let (r, gn) =
        g.run_gen(rx, tx, &format!("{NATIVE} --mode rxdrop --bind copy"), &format!("--bind copy -n {n} -r 3000"));
    assert_eq!(r["xdp_mode"], "native", "{r}");
    assert_eq!((u(&gn, "sent"), u(&gn, "completed")), (N, N), "{gn}");
    assert_eq!(u(&r, "rx_packets"), N, "rxdrop on {rx}: {r}");

    // Zero-copy receive (and zero-copy transmit from gen, with its program attached).
    let (r, gn) = g.run_gen(
        rx,
        tx,
        &format!("{NATIVE} --mode rxdrop --bind zero-copy"),
        &format!("--bind zero-copy -n {n} -r 3000"),
    );
    assert!(r["bind"].as_str().unwrap_or("").contains("zero"), "{rx} did not bind zero-copy: {r}");
    assert_eq!(u(&gn, "completed"), N, "gen zero-copy on {tx}: {gn}");
    assert_eq!(u(&r, "rx_packets"), N, "zero-copy rxdrop on {rx}: {r}");

    // l2fwd: every frame comes back to the sender's port, MACs swapped.
    let before: u64 = g.sh(&format!("cat /sys/class/net/{tx}/statistics/rx_packets")).trim().parse().unwrap();
    let (r, _) =
        g.run_gen(rx, tx, &format!("{NATIVE} --mode l2fwd --bind copy"), &format!("--bind copy -n {n} -r 3000"));
    let after: u64 = g.sh(&format!("cat /sys/class/net/{tx}/statistics/rx_packets")).trim().parse().unwrap();
    assert_eq!(u(&r, "rx_packets"), N, "{r}");
    assert_eq!(u(&r, "tx_packets"), N, "l2fwd sent back: {r}");
    assert!(after - before >= N, "{tx} received {} of the {N} frames l2fwd sent back", after - before);

    // fwd across drivers: in on rx, out on the other pair's port, counted by a sink there.
    // fwd sends frames unchanged (a bump in the wire), so they still carry rx's MAC: the
    // sink's port listens promiscuously, as the NIC models filter unicast MACs. The ports'
    // own counters are kept to say where frames went if the sink's count is short.
    let (out, sink) = other;
    let (src, dst) = addrs(tx);
    let out_json = g.sh(&format!(
        "ethtool -L {sink} combined 1; ethtool -L {out} combined 1
ip link set dev {sink} promisc on
out0=$(cat /sys/class/net/{out}/statistics/tx_packets); sink0=$(cat /sys/class/net/{sink}/statistics/rx_packets)
xdpipe run -i {sink} --json --xdp-mode native --poll 10 --mode rxdrop > /tmp/sink.json 2> /tmp/sink.err &
sp=$!
xdpipe run -i {rx} --json --xdp-mode native --poll 10 --mode fwd --out-iface {out} > /tmp/fwd.json 2> /tmp/fwd.err &
fp=$!
until grep -q 'ready:' /tmp/sink.err && grep -q 'ready:' /tmp/fwd.err; do kill -0 $sp && kill -0 $fp || {{ cat /tmp/sink.err /tmp/fwd.err >&2; exit 3; }}; usleep 100000; done
xdpipe gen -i {tx} --json --bind copy --src-ip {src} --dst-ip {dst} --dst-mac $(cat /sys/class/net/{rx}/address) -n {n} -r 3000 > /tmp/gen.json 2>/tmp/gen.err || exit 5
sleep 2; kill -INT $fp; wait $fp; sleep 1; kill -INT $sp; wait $sp
echo \"FWD $(tr -d '\\n' < /tmp/fwd.json)\"
echo \"SINK $(tr -d '\\n' < /tmp/sink.json)\"
echo \"NICS {{\\\"out_tx\\\": $(( $(cat /sys/class/net/{out}/statistics/tx_packets) - out0 )), \\\"sink_rx\\\": $(( $(cat /sys/class/net/{sink}/statistics/rx_packets) - sink0 ))}}\""
    ));
    let (f, s, nics) = (tagged(&out_json, "FWD "), tagged(&out_json, "SINK "), tagged(&out_json, "NICS "));
    assert_eq!(u(&f, "rx_packets"), N, "fwd {rx} -> {out}: {f}");
    assert_eq!(u(&f, "tx_completed"), N, "fwd {rx} -> {out} sent: {f}");
    assert_eq!(u(&s, "rx_packets"), N, "sink {sink} behind fwd {rx} -> {out} (the ports' own counters: {nics}): {s}");

    // RSS: four queues, 64 flows; the NIC spreads them, every frame is counted once.
    g.sh(&format!(
        "ethtool -L {rx} combined 4; ethtool -N {rx} rx-flow-hash udp4 sdfn 2>/dev/null; ethtool -l {rx} | tail -5"
    ));
    let (r, _) = g.run_gen(
        rx,
        tx,
        &format!("{NATIVE} --mode rxdrop --bind copy --queues 0-3"),
        &format!("--bind copy --flows 64 -n {n} -r 3000"),
    );
    let q = per_queue(&r);
    assert_eq!(q.len(), 4, "{r}");
    assert_eq!(q.iter().sum::<u64>(), N, "RSS on {rx}: per queue {q:?}");
    assert!(q.iter().filter(|&&c| c > 0).count() > 1, "RSS on {rx} used one queue only: {q:?}");

    // Offload toggles through ethtool, as the benchmark's offload matrix drives them.
    g.sh(&format!(
        "ethtool -K {rx} gro off && ethtool -k {rx} | grep -q 'generic-receive-offload: off' && ethtool -K {rx} gro on"
    ));
}

fn guest_test(name: &str, rx: &str, tx: &str, other: (&str, &str)) {
    if !privileged() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let g = Vm::boot(name);
    let drivers = g.sh("for i in igb0 igb1 vio0 vio1; do printf '%s ' $i; ethtool -i $i | head -1; done");
    assert!(drivers.contains("igb1 driver: igb") && drivers.contains("vio1 driver: virtio_net"), "{drivers}");
    g.deepest_rx_rings();
    driver_paths(&g, rx, tx, other);
}

#[test]
fn igb_native_zero_copy_rss_and_modes() {
    guest_test("igb", "igb1", "igb0", ("vio0", "vio1"));
}

#[test]
fn virtio_net_native_zero_copy_rss_and_modes() {
    guest_test("vio", "vio1", "vio0", ("igb0", "igb1"));
}

/// The device targets whose kinds this host may lack, in the guest's kernel (ipvlan,
/// geneve as modules, netkit built in), with their receiving devices and the kind `ip -d
/// link` names there.
const GUEST_DEVICES: [(&str, &str, [&str; 2]); 4] = [
    ("ipvlan-l2", "xp-ipv", ["ipvlan", "mode l2"]),
    ("ipvlan-l3", "xp-ipv", ["ipvlan", "mode l3"]),
    ("geneve", "xp-gnv", ["geneve", "id 77"]),
    ("netkit", "xp-nkp", ["netkit", "netkit"]),
];

/// One guest for all of them (CI time): each device target counts exactly at a moderate
/// rate (3000 frames at 5 kpps, generic XDP: none of them has native XDP) and leaves no
/// namespace after a normal end; each is the kind it claims while it runs; each is
/// removed after SIGINT, and after SIGKILL followed by `xdpipe cleanup` (before which its
/// namespaces must still be there, so the removal is cleanup's doing).
#[test]
fn guest_device_targets_count_exactly_and_are_removed_on_every_exit() {
    if !privileged() {
        return;
    }
    const N: u64 = 3000;
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let g = Vm::boot("dev");
    let names: Vec<&str> = GUEST_DEVICES.iter().map(|d| d.0).collect();
    let out = g.sh(&format!(
        "for d in {}; do
  xdpipe veth --device $d --xdp-mode skb --rate 5kpps --count {N} --json > /tmp/$d.json 2> /tmp/$d.err || {{ echo \"$d: exit $?\" >&2; cat /tmp/$d.err >&2; exit 3; }}
  echo \"RUN-$d $(tr -d '\\n' < /tmp/$d.json)\"
done
echo \"NETNS $(ls /run/netns 2>/dev/null | grep '^xdpipe-' | tr '\\n' ' ')\"",
        names.join(" ")
    ));
    for d in &names {
        let v = tagged(&out, &format!("RUN-{d} "));
        assert_eq!((u(&v, "sent"), u(&v, "received")), (N, N), "{d}: {v}");
        assert_eq!(u(&v, "receiver.accounting.duplicates"), 0, "{d}: {v}");
    }
    let left = out.lines().find_map(|l| l.strip_prefix("NETNS")).unwrap_or("?").trim();
    assert!(left.is_empty(), "namespaces left after normal ends: {left}");

    for (d, iface, kind) in GUEST_DEVICES {
        // Started in the background; ready when its rx namespace has `iface` with an XDP
        // program on it. Prints KIND (the device's `ip -d` line) and the namespaces.
        let start = format!(
            "xdpipe veth --device {d} --xdp-mode skb -d 120 --rate 2kpps > /dev/null 2> /tmp/s.err &
p=$!
i=0
until rx=$(ls /run/netns | grep \"^xdpipe-v${{p}}x.*-rx$\") && ip -n \"$rx\" -d link show dev {iface} 2>/dev/null | grep -q xdp; do
  i=$((i+1)); [ $i -gt 900 ] && {{ cat /tmp/s.err >&2; exit 3; }}
  kill -0 $p 2>/dev/null || {{ cat /tmp/s.err >&2; exit 4; }}
  usleep 100000
done
echo \"KIND $(ip -n \"$rx\" -d link show dev {iface} | tr '\\n' ' ')\"
own() {{ ls /run/netns | grep \"^xdpipe-v${{p}}x\"; }}
"
        );
        let out = g.sh(&format!(
            "{start}kill -INT $p; wait $p
left=$(own); [ -z \"$left\" ] || {{ echo \"{d}: left after SIGINT: $left\" >&2; exit 5; }}
{start}kill -KILL $p; wait $p
[ -n \"$(own)\" ] || {{ echo '{d}: namespaces gone before cleanup' >&2; exit 6; }}
xdpipe cleanup >&2 || exit 7
left=$(own); [ -z \"$left\" ] || {{ echo \"{d}: left after SIGKILL + cleanup: $left\" >&2; exit 8; }}
echo REMOVED"
        ));
        let kinds: Vec<&str> = out.lines().filter_map(|l| l.strip_prefix("KIND ")).collect();
        assert_eq!(kinds.len(), 2, "{d}: {out}");
        assert!(kinds.iter().all(|k| kind.iter().all(|w| k.contains(w))), "{d}: {iface} is not {kind:?}: {kinds:?}");
        assert!(out.lines().any(|l| l == "REMOVED"), "{d}: {out}");
    }
}
