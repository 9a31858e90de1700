//! Line-rate features on real NIC drivers, in the QEMU guest (scripts/vm/guest.sh): jumbo
//! frames on igb and virtio-net, kernel busy polling on igb with every knob restored
//! (after a normal end, and after SIGKILL followed by `xdpipe cleanup`), and the
//! multi-queue generator into four RX queues on both drivers.
//!
//! One guest for all of it (CI time), sections in turn. Under TCG rates mean nothing:
//! every check is a count. If the guest cannot boot, the test fails with guest.sh's
//! output, which ends with the console.
mod common;

use common::{vm::*, *};

#[test]
fn guest_jumbo_frames_busy_poll_and_four_queues() {
    if !privileged() {
        return;
    }
    let g = Vm::boot("line-rate");
    g.deepest_rx_rings();
    jumbo_frames(&g, ("igb1", "igb0"));
    jumbo_frames(&g, ("vio1", "vio0"));
    busy_poll_on_igb(&g);
    four_queues(&g, ("igb1", "igb0"));
    four_queues(&g, ("vio1", "vio0"));
}

/// Frames of the largest size a 9000 B MTU allows (with the FCS, which the counters
/// leave out), three 4096 B UMEM frames each.
const JUMBO: u64 = 9018;

/// Jumbo frames on the pair (rx, tx), both ports at MTU 9000. A driver whose native XDP
/// has multi-buffer (`rx-sg`) carries them in native mode. On one without it a native run
/// is refused before anything attaches, naming the device and what it lacks, and skb
/// mode carries them. Where zero-copy frames cannot span three UMEM frames
/// (`zc-max-segs`), a zero-copy bind is refused likewise. Exact counts and byte totals on
/// both sides; parse sees every frame as UDP.
fn jumbo_frames(g: &Vm, (rx, tx): (&str, &str)) {
    const N: u64 = 1000;
    g.sh(&format!("for p in {rx} {tx}; do ethtool -L $p combined 1 && ip link set dev $p mtu 9000 || exit 1; done"));
    g.wait_up(&[rx, tx]);
    let f = tagged(&g.sh(&format!("echo \"F $(xdpipe features -i {rx} --json)\"")), "F ");
    let rx_sg = f["xdp"].as_array().is_some_and(|x| x.iter().any(|w| w == "rx-sg"));
    let zc_segs = f["zc_max_segs"].as_u64().unwrap_or(1);
    eprintln!("{rx}: rx-sg {rx_sg}, zc-max-segs {zc_segs}");
    let refused = |args: &str, says: &[&str]| {
        let out = g.sh(&format!(
            "xdpipe run -i {rx} {args} -d 1 2>&1; echo \"rc=$?\"
ip -j link show dev {rx} | grep -q '\"xdp\"' && echo ATTACHED; true"
        ));
        assert!(out.contains("rc=1") && !out.contains("ATTACHED"), "run {args} on {rx} at MTU 9000: {out}");
        assert!(says.iter().all(|s| out.contains(s)), "run {args} on {rx}: the refusal does not say {says:?}: {out}");
    };
    let span = format!("{rx}: frames up to {JUMBO} B span 3 UMEM frames of 3840 B");
    let mode = if rx_sg {
        "native"
    } else {
        refused("--xdp-mode native", &[&span, "its driver lacks rx-sg", "Use --xdp-mode skb"]);
        // Auto mode (the default) goes to skb mode without trying native.
        let auto = tagged(&g.sh(&format!("echo \"RUN $(xdpipe run -i {rx} --json -d 1 | tr -d '\\n')\"")), "RUN ");
        assert_eq!(auto["xdp_mode"], "skb", "auto mode on {rx} at MTU 9000: {auto}");
        "skb"
    };
    if zc_segs < 3 {
        let limit = format!("zc-max-segs {zc_segs}");
        refused(&format!("--xdp-mode {mode} --bind zero-copy"), &[&span, &limit, "Use --bind copy"]);
    }

    let (r, gn) = g.run_gen(
        rx,
        tx,
        &format!("--xdp-mode {mode} --poll 10 --mode parse"),
        &format!("--size {JUMBO} -n {N} -r 1000"),
    );
    let bytes = N * (JUMBO - 4);
    assert_eq!(r["xdp_mode"], mode, "{r}");
    assert_eq!((u(&gn, "sent"), u(&gn, "completed"), u(&gn, "bytes")), (N, N, bytes), "gen on {tx}: {gn}");
    assert_eq!((u(&r, "rx_packets"), u(&r, "rx_bytes")), (N, bytes), "{mode} on {rx}: {r}");
    assert_eq!((u(&r, "parse.frames"), u(&r, "parse.udp"), u(&r, "parse.malformed")), (N, N, 0), "{r}");
    let q = &r["queues"][0];
    assert_eq!((u(q, "bad_descs"), u(q, "xdp_statistics.rx_invalid_descs")), (0, 0), "{q}");
    eprintln!("jumbo on {rx} ({mode}): {} frames, {} B received; gen sent {} B", N, u(&r, "rx_bytes"), u(&gn, "bytes"));
    g.sh(&format!("for p in {rx} {tx}; do ip link set dev $p mtu 1500 || exit 1; done"));
    g.wait_up(&[rx, tx]);
}

/// A shell function printing igb1's busy-polling knobs as a JSON line tagged $1: every
/// NAPI's settings (netdev napi-get), the device's sysfs files and the number of knob
/// records waiting for `xdpipe cleanup`.
const KNOBS: &str = "knobs() {
  echo \"$1 {\\\"napi\\\": $(xdpipe napi -i igb1 --json), \\\"sysfs\\\": [$(cat /sys/class/net/igb1/napi_defer_hard_irqs), $(cat /sys/class/net/igb1/gro_flush_timeout)], \\\"records\\\": $(ls /run/xdpipe/knobs 2>/dev/null | wc -l)}\"
}
";

/// The knobs of a [`KNOBS`] line: ((napi id, defer_hard_irqs, gro_flush_timeout) per NAPI,
/// (sysfs napi_defer_hard_irqs, sysfs gro_flush_timeout), knob records).
type Knobs = (Vec<(u64, u64, u64)>, (u64, u64), u64);

fn knobs(out: &str, tag: &str) -> Knobs {
    let v = tagged(out, tag);
    let napis = v["napi"].as_array().unwrap_or_else(|| panic!("{tag}: no NAPI list in {v}"));
    let napis = napis.iter().map(|n| (u(n, "id"), u(n, "defer_hard_irqs"), u(n, "gro_flush_timeout_ns"))).collect();
    (napis, (u(&v, "sysfs.0"), u(&v, "sysfs.1")), u(&v, "records"))
}

/// Every NAPI of `k` has (defer, gro), and there is at least one.
fn napis_at(k: &Knobs, defer: u64, gro: u64) -> bool {
    !k.0.is_empty() && k.0.iter().all(|&(_, d, t)| (d, t) == (defer, gro))
}

/// `run --poll busy-poll` on igb1 (one queue) with gen on igb0. The knobs start at values
/// of the test's own (1 and 7000 through sysfs, which sets every NAPI too), not the
/// kernel's zeros, so a restore that wrote zeros would fail. During the run each NAPI has
/// the run's values (napi-set: the device's sysfs files keep theirs); afterwards every
/// NAPI and file is back and no knob record is left. Then a run killed with SIGKILL leaves
/// the run's values and its record, and `xdpipe cleanup` puts them back.
fn busy_poll_on_igb(g: &Vm) {
    const N: u64 = 3000;
    const BUSY: &str = "--xdp-mode native --poll busy-poll --defer-hard-irqs 3 --gro-flush-timeout 150000";
    g.sh("for p in igb0 igb1; do ethtool -L $p combined 1 || exit 1; done");
    g.wait_up(&["igb0", "igb1"]);
    let before = knobs(
        &g.sh(&format!(
            "{KNOBS}echo 1 > /sys/class/net/igb1/napi_defer_hard_irqs && echo 7000 > /sys/class/net/igb1/gro_flush_timeout && knobs BEFORE"
        )),
        "BEFORE ",
    );
    assert!(napis_at(&before, 1, 7000) && before.1 == (1, 7000) && before.2 == 0, "starting values: {before:?}");

    let (r, gn, out) = g.run_gen_with(
        "igb1",
        "igb0",
        &format!("{BUSY} --mode rxdrop"),
        &format!("-n {N} -r 3000"),
        &format!("{KNOBS}knobs DURING"),
    );
    let during = knobs(&out, "DURING ");
    let after = knobs(&g.sh(&format!("{KNOBS}knobs AFTER")), "AFTER ");
    eprintln!(
        "busy-poll knobs (napi id, defer, gro ns; sysfs; records): before {before:?}, during {during:?}, after {after:?}"
    );
    assert!(napis_at(&during, 3, 150000) && during.1 == (1, 7000) && during.2 == 1, "during the run: {during:?}");
    assert_eq!(u(&gn, "sent"), N, "{gn}");
    assert_eq!(u(&r, "rx_packets"), N, "busy-poll on igb1: {r}");
    assert_eq!(r["wait"], "busy-poll", "{r}");
    let b = &r["busy_poll"];
    assert_eq!(b["mechanism"], "napi-set", "Linux 6.13+ in the guest: per NAPI over netdev netlink; {b}");
    let ids: Vec<u64> = before.0.iter().map(|n| n.0).collect();
    let seen: Vec<u64> = b["napi_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!(seen, ids, "{b}");
    let previous: Vec<(u64, u64, u64)> = serde_json::from_value(b["previous"].clone()).unwrap();
    assert_eq!(previous, before.0, "{b}");
    assert!(u(&r, "wakeups") > 0, "{r}");
    assert_eq!(after, before, "not restored after a normal end");

    let out = g.sh(&format!(
        "{KNOBS}xdpipe run -i igb1 {BUSY} -d 120 > /dev/null 2> /tmp/k.err &
p=$!
i=0; until grep -q 'ready:' /tmp/k.err; do i=$((i+1)); [ $i -gt 600 ] && {{ cat /tmp/k.err >&2; exit 3; }}; kill -0 $p 2>/dev/null || {{ cat /tmp/k.err >&2; exit 4; }}; usleep 100000; done
kill -KILL $p; wait $p
knobs LEFT
echo \"CLEANUP $(xdpipe cleanup 2>&1 | tr '\\n' ' ')\"
knobs RESTORED
ip -j link show dev igb1 | grep -q '\"xdp\"' && {{ echo 'XDP still attached to igb1' >&2; exit 7; }}
echo 0 > /sys/class/net/igb1/napi_defer_hard_irqs && echo 0 > /sys/class/net/igb1/gro_flush_timeout"
    ));
    let (left, restored) = (knobs(&out, "LEFT "), knobs(&out, "RESTORED "));
    let cleanup = out.lines().find_map(|l| l.strip_prefix("CLEANUP ")).unwrap_or("");
    eprintln!("after SIGKILL {left:?}; cleanup: {cleanup}; then {restored:?}");
    assert!(napis_at(&left, 3, 150000) && left.2 == 1, "SIGKILL cannot restore; its record stays: {left:?}");
    assert!(cleanup.contains("restored the NAPI settings of igb1"), "{cleanup}");
    assert_eq!(restored, before, "not restored by cleanup after SIGKILL");
}

/// Four queues on the pair (rx, tx): `gen --queues 0-3 --cores 0-3`, one pinned TX worker
/// per queue, into `run --queues 0-3`. Exact totals, every TX queue sends its share, the
/// RX queues' counts sum to the total and more than one receives.
///
/// On igb gen reads the receiver's RSS key and table (`--rss-of`, once igb hashes UDP
/// ports: rx-flow-hash sdfn; refused before, naming the fix), and each RX queue receives
/// exactly what the plan's flows sent it. igb draws a random key per boot, under which 16
/// flows of sequential ports all land on one queue in about 1 boot of 32. Six flows over
/// the four TX workers (2, 2, 1, 1 each; flow i to RX queue i mod 4) make the plan's
/// counts uneven, 1500, 1500, 500, 500, which a wrong hash would not hit by chance.
/// virtio-net has no RSS table here (the host's taps pick its queues): 16 flows. The guest has 4 vCPUs: a core
/// list past them is refused naming the core.
fn four_queues(g: &Vm, (rx, tx): (&str, &str)) {
    const N: u64 = 4000;
    let igb = rx.starts_with("igb");
    let cpus: u64 = g
        .sh(&format!("for p in {rx} {tx}; do ethtool -L $p combined 4 || exit 1; done; nproc"))
        .trim()
        .parse()
        .expect("nproc");
    assert!(cpus >= 4, "the guest has {cpus} vCPUs, fewer than the 4 queues' cores");
    g.wait_up(&[rx, tx]);
    let (src, dst) = addrs(tx);
    let past = format!("{}-{cpus}", cpus - 3);
    let out = g.sh(&format!(
        "xdpipe gen -i {tx} --src-ip {src} --dst-ip {dst} --queues 0-3 --cores {past} --flows 4 -n 4 2>&1; echo \"rc=$?\""
    ));
    assert!(
        out.contains(&format!("core \"{cpus}\": not a core this process may use")) && out.contains("rc=1"),
        "{out}"
    );

    let rss = if igb {
        let out = g.sh(&format!(
            "xdpipe gen -i {tx} --src-ip {src} --dst-ip {dst} --queues 0-3 --flows 4 -n 4 --rss-of {rx} 2>&1; echo \"rc=$?\"
ethtool -N {rx} rx-flow-hash udp4 sdfn || exit 2"
        ));
        let fix = format!(
            "--rss-of {rx}: it hashes udp4 on IP SA, IP DA, not on the addresses and both ports; set `ethtool -N {rx} rx-flow-hash udp4 sdfn`"
        );
        assert!(out.contains(&fix) && out.contains("rc=1"), "gen --rss-of before igb hashes ports: {out}");
        format!(" --rss-of {rx}")
    } else {
        String::new()
    };
    let (r, gn) = g.run_gen(
        rx,
        tx,
        "--xdp-mode native --poll 10 --mode rxdrop --queues 0-3",
        &format!("--queues 0-3 --cores 0-3 --flows {} -n {N} -r 4000{rss}", if igb { 6 } else { 16 }),
    );
    let tx_q: Vec<(u64, u64, u64)> = gn["per_queue"]
        .as_array()
        .unwrap_or_else(|| panic!("no per_queue in {gn}"))
        .iter()
        .map(|q| (u(q, "queue"), u(q, "core"), u(q, "sent")))
        .collect();
    let rx_q = per_queue(&r);
    eprintln!("four queues {tx} -> {rx}: TX (queue, core, sent) {tx_q:?}, RX per queue {rx_q:?}");
    assert_eq!((u(&gn, "sent"), u(&gn, "completed")), (N, N), "{gn}");
    assert_eq!(tx_q, (0..4).map(|i| (i, i, N / 4)).collect::<Vec<_>>(), "one pinned worker per TX queue: {gn}");
    assert_eq!(u(&r, "rx_packets"), N, "{r}");
    assert_eq!(rx_q.len(), 4, "{r}");
    assert_eq!(rx_q.iter().sum::<u64>(), N, "RX per queue {rx_q:?}");
    assert!(rx_q.iter().filter(|&&c| c > 0).count() > 1, "{rx} received on one queue only: {rx_q:?}");
    assert_eq!(u(&r, "program.redirected"), N, "{r}");
    if igb {
        let planned = rss_planned(&gn, 4);
        assert_eq!(planned, [1500, 1500, 500, 500], "flow i to RX queue i mod 4: {gn}");
        assert_eq!(rx_q, planned, "RX per queue against the --rss-of plan: {gn}");
    }
}
