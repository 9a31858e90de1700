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

    // RSS: four queues, 64 flows; the NIC spreads them, every frame is counted once. igb
    // has an RSS table gen can read (--rss-of): each queue receives exactly what the plan
    // sent it. virtio-net has none here; the host's taps pick its queues.
    let igb = rx.starts_with("igb");
    g.sh(&format!(
        "ethtool -L {rx} combined 4; ethtool -N {rx} rx-flow-hash udp4 sdfn 2>/dev/null; ethtool -l {rx} | tail -5"
    ));
    let (r, gn) = g.run_gen(
        rx,
        tx,
        &format!("{NATIVE} --mode rxdrop --bind copy --queues 0-3"),
        &format!(
            "--bind copy --flows 64 -n {n} -r 3000{}",
            if igb { format!(" --rss-of {rx}") } else { String::new() }
        ),
    );
    let q = per_queue(&r);
    assert_eq!(q.len(), 4, "{r}");
    assert_eq!(q.iter().sum::<u64>(), N, "RSS on {rx}: per queue {q:?}");
    assert!(q.iter().filter(|&&c| c > 0).count() > 1, "RSS on {rx} used one queue only: {q:?}");
    if igb {
        assert_eq!(q, rss_planned(&gn, 4), "RSS on {rx} against the --rss-of plan: {gn}");
    }

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

/// A device target run in the guest's kernel.
struct GuestDevice {
    /// The target.
    name: &'static str,
    /// The device the receiver runs on (rx ns).
    rx: &'static str,
    /// The device that shows the target is what it claims, its namespace side and the
    /// words its `ip -d link` line must have.
    shows: (&'static str, &'static str, [&'static str; 2]),
    /// Whether the SIGINT and SIGKILL + cleanup paths are run for it (the kubevirt hops
    /// build on one another: the whole chain, kubevirt-tap, has every hop's devices).
    exits: bool,
}

const fn dev(
    name: &'static str,
    rx: &'static str,
    shows: (&'static str, &'static str, [&'static str; 2]),
    exits: bool,
) -> GuestDevice {
    GuestDevice { name, rx, shows, exits }
}

/// The device targets whose kinds this host may lack, in the guest's kernel (ipvlan,
/// geneve and openvswitch as modules, netkit built in), and path:kubevirt's hops
/// (veth and geneve are its first two stages past the NIC).
const GUEST_DEVICES: [GuestDevice; 11] = [
    dev("ipvlan-l2", "xp-ipv", ("rx", "xp-ipv", ["ipvlan", "mode l2"]), true),
    dev("ipvlan-l3", "xp-ipv", ("rx", "xp-ipv", ["ipvlan", "mode l3"]), true),
    dev("geneve", "xp-gnv", ("rx", "xp-gnv", ["geneve", "id 77"]), true),
    dev("netkit", "xp-nkp", ("rx", "xp-nkp", ["netkit", "netkit"]), true),
    // The datapath exists and the vport's master is it.
    dev("ovs", "xp-rcv", ("rx", "xp-brp", ["master xp-ovs", "openvswitch_slave"]), true),
    dev("veth", "xp-rx", ("rx", "xp-rx", ["veth", "xp-rx"]), false),
    dev("kubevirt-ovs", "xp-gnv", ("tx", "xp-gnv", ["master xp-ovs", "openvswitch_slave"]), false),
    dev("kubevirt-veth", "xp-gnv", ("tx", "xp-ovp", ["master xp-ovs", "openvswitch_slave"]), false),
    dev("kubevirt-bridge", "xp-gnv", ("tx", "xp-pod", ["master xp-br", "bridge_slave"]), false),
    // The tap goes with its fd (so at SIGKILL): the exit paths check the chain's datapath,
    // which is left in the orphaned namespace until cleanup.
    dev("kubevirt-tap", "xp-gnv", ("tx", "xp-tap", ["master xp-br", "tun type tap"]), false),
    dev("kubevirt-tap", "xp-gnv", ("tx", "xp-ovs", ["openvswitch", "xp-ovs"]), true),
];

/// One guest for all of them (CI time): each device target counts exactly at a moderate
/// rate (3000 frames at 3 kpps, generic XDP: none of them has native XDP; at 5 kpps a TCG
/// stall of the receiver once filled its XSK RX ring on plain veth: 268 rx_ring_full) and
/// leaves no namespace after a normal end; each is the kind it claims while it runs; each is
/// removed after SIGINT, and after SIGKILL followed by `xdpipe cleanup` (before which its
/// namespaces, and the device that shows its kind, must still be there, so the removal is
/// cleanup's doing; an orphaned OVS datapath goes with its namespace: the openvswitch
/// module destroys a namespace's datapaths when the namespace is removed).
#[test]
fn guest_device_targets_count_exactly_and_are_removed_on_every_exit() {
    if !privileged() {
        return;
    }
    const N: u64 = 3000;
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let g = Vm::boot("dev");
    let mut names: Vec<&str> = GUEST_DEVICES.iter().map(|d| d.name).collect();
    names.dedup();
    let out = g.sh(&format!(
        "for d in {}; do
  xdpipe veth --device $d --xdp-mode skb --rate 3kpps --count {N} --json > /tmp/$d.json 2> /tmp/$d.err || {{ echo \"$d: exit $?\" >&2; cat /tmp/$d.err >&2; exit 3; }}
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

    for GuestDevice { name: d, rx: iface, shows: (side, shown, kind), exits } in GUEST_DEVICES {
        // Started in the background; ready when its rx namespace has `iface` with an XDP
        // program on it (`prog/xdp`: the bare word would match a peer namespace's name). Prints KIND (the `ip -d` line of the device that shows the kind)
        // and the namespaces.
        let start = format!(
            "xdpipe veth --device {d} --xdp-mode skb -d 120 --rate 2kpps > /dev/null 2> /tmp/s.err &
p=$!
i=0
until rx=$(ls /run/netns | grep \"^xdpipe-v${{p}}x.*-rx$\") && ip -n \"$rx\" -d link show dev {iface} 2>/dev/null | grep -q prog/xdp; do
  i=$((i+1)); [ $i -gt 900 ] && {{ cat /tmp/s.err >&2; exit 3; }}
  kill -0 $p 2>/dev/null || {{ cat /tmp/s.err >&2; exit 4; }}
  usleep 100000
done
ns=$(ls /run/netns | grep \"^xdpipe-v${{p}}x.*-{side}$\")
echo \"KIND $(ip -n \"$ns\" -d link show dev {shown} | tr '\\n' ' ')\"
own() {{ ls /run/netns | grep \"^xdpipe-v${{p}}x\"; }}
"
        );
        let job = if exits {
            format!(
                "{start}kill -INT $p; wait $p
left=$(own); [ -z \"$left\" ] || {{ echo \"{d}: left after SIGINT: $left\" >&2; exit 5; }}
{start}kill -KILL $p; wait $p
[ -n \"$(own)\" ] || {{ echo '{d}: namespaces gone before cleanup' >&2; exit 6; }}
ip -n \"$ns\" link show dev {shown} > /dev/null || {{ echo '{d}: {shown} gone before cleanup' >&2; exit 9; }}
xdpipe cleanup >&2 || exit 7
left=$(own); [ -z \"$left\" ] || {{ echo \"{d}: left after SIGKILL + cleanup: $left\" >&2; exit 8; }}
echo REMOVED"
            )
        } else {
            // The kind while it runs, then a normal end (SIGINT).
            format!("{start}kill -INT $p; wait $p; [ -z \"$(own)\" ] && echo REMOVED")
        };
        let out = g.sh(&job);
        let kinds: Vec<&str> = out.lines().filter_map(|l| l.strip_prefix("KIND ")).collect();
        assert_eq!(kinds.len(), if exits { 2 } else { 1 }, "{d}: {out}");
        assert!(
            kinds.iter().all(|k| kind.iter().all(|w| k.contains(w))),
            "{d}: {shown} ({side} ns) is not {kind:?}: {kinds:?}"
        );
        assert!(out.lines().any(|l| l == "REMOVED"), "{d}: {out}");
    }
}
