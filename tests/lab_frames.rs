//! The frames a lab needs, end to end on veth testbeds: `xdpipe veth --ipv6` and
//! `--vlan` lose nothing and account every stamp (the steering program matches IPv6 and
//! tagged UDP, the receiver finds the stamp behind the tags), and the IPv6 and VLAN
//! frames `xdpipe gen` builds pass tshark's checks (IPv6: also the kernel's UDP socket,
//! which drops a bad or zero checksum).
mod common;

use std::{
    process::{Command, Stdio},
    thread,
    time::Duration,
};

use common::*;
use xdpipe::testbed::{RX_IP6, TX_IP6, fmt_mac};

const FRAMES: u64 = 10000;

fn veth(args: &[&str]) -> serde_json::Value {
    let out = Command::new(XDPIPE).arg("veth").args(args).arg("--json").output().expect("running xdpipe veth");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "xdpipe veth {args:?} failed:\n{stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("report is not JSON ({e}); stderr:\n{stderr}"))
}

/// `xdpipe veth EXTRA` at a moderate rate: every frame sent is received and stamped,
/// with sane one-way latencies.
fn veth_receives_every_frame(extra: &[&str]) {
    let n = FRAMES.to_string();
    let mut args = vec!["--count", &n, "--rate", "20kpps", "--flows", "2", "--poll", "50"];
    args.extend(extra);
    let r = veth(&args);
    assert_eq!((u(&r, "sent"), u(&r, "received")), (FRAMES, FRAMES), "{extra:?}: {r}");
    assert_eq!(r["lost"], 0, "{extra:?}");
    let a = &r["receiver"]["accounting"];
    assert_eq!((u(a, "stamped"), u(a, "unstamped")), (FRAMES, 0), "{extra:?}: {a}");
    assert_eq!((u(a, "flows"), u(a, "lost_in_sequence"), u(a, "reordered")), (2, 0, 0), "{extra:?}: {a}");
    let (p50, max) = (u(a, "latency_ns.p50"), u(a, "latency_ns.max"));
    assert!(p50 > 0 && p50 <= max && max < 1_000_000_000, "{extra:?}: latency p50 {p50} max {max}");
    if extra.contains(&"parse") {
        // The frames reached the receiver with their tags in the packet data (veth does
        // not strip them into skb metadata ahead of XDP, in either mode).
        let p = &r["receiver"]["parse"];
        let tagged = if extra.contains(&"--vlan") { FRAMES } else { 0 };
        assert_eq!((u(p, "udp"), u(p, "malformed"), u(p, "vlan_tagged")), (FRAMES, 0, tagged), "{extra:?}: {p}");
    }
}

#[test]
fn veth_ipv6_receives_every_frame() {
    if privileged() {
        veth_receives_every_frame(&["--ipv6"]);
    }
}

#[test]
fn veth_qinq_receives_every_frame_native() {
    if privileged() {
        veth_receives_every_frame(&["--vlan", "100,200"]);
        veth_receives_every_frame(&["--vlan", "100,200", "--ipv6", "--mode", "parse"]);
    }
}

#[test]
fn veth_vlan_ipv6_receives_every_frame_skb() {
    if privileged() {
        veth_receives_every_frame(&["--vlan", "100", "--ipv6", "--xdp-mode", "skb", "--mode", "parse"]);
    }
}

/// Captures `n` frames `xdpipe gen GEN_ARGS` sends to the receiver's MAC and port 5555
/// (no XDP program on the receiver: tcpdump sees what the wire carried), and returns
/// tshark's rows of `fields` for them (UDP checksum validation on).
fn tshark_rows_of_gen(tb: &Testbed, n: usize, gen_args: &[&str], fields: &[&str]) -> Vec<Vec<String>> {
    let pcap_dir = xdpipe::sys::private_temp_dir("xdpipe-lab-pcap").expect("a private temporary directory");
    let pcap = pcap_dir.join("gen.pcap").to_string_lossy().into_owned();
    let dump = Command::new("ip")
        .args(["netns", "exec", &tb.rx_ns, "timeout", "20", "tcpdump", "-Z", "root", "-i", RX_IFACE])
        .args(["-c", &n.to_string(), "-w", &pcap])
        // The namespaces also send MLD reports (to 33:33:..); both have permanent
        // neighbour entries, so no other frame goes from xp-tx to xp-rx's MAC. The
        // filter stays at layer 2: the kernel moves the outer tag into the skb before
        // the tap, and libpcap's `vlan` then matches no frame.
        .arg(format!("ether src {} and ether dst {}", fmt_mac(&tb.tx_mac), fmt_mac(&tb.rx_mac)))
        .stderr(Stdio::piped())
        .spawn()
        .expect("tcpdump");
    thread::sleep(Duration::from_millis(700));
    let g = Command::new("ip")
        .args(["netns", "exec", &tb.tx_ns, XDPIPE, "gen", "-i", TX_IFACE])
        .args(["--dst-mac", &fmt_mac(&tb.rx_mac), "--dst-port", "5555"])
        .args(["--count", &n.to_string(), "--rate", "5kpps"])
        .args(gen_args)
        .output()
        .expect("gen");
    assert!(g.status.success(), "gen {gen_args:?} failed: {}", String::from_utf8_lossy(&g.stderr));
    let d = dump.wait_with_output().unwrap();
    assert!(d.status.success(), "tcpdump (it captured fewer than {n} frames?): {}", String::from_utf8_lossy(&d.stderr));
    let mut t = Command::new("tshark");
    t.args(["-r", &pcap, "-o", "udp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE", "-T", "fields"]);
    for f in ["udp.dstport"].iter().chain(fields) {
        t.args(["-e", f]);
    }
    let t = t.output().expect("tshark (apt-get install tshark)");
    let _ = std::fs::remove_dir_all(&pcap_dir);
    let text = String::from_utf8_lossy(&t.stdout);
    let rows: Vec<Vec<String>> = text.lines().map(|l| l.split('\t').map(str::to_owned).collect()).collect();
    assert_eq!(rows.len(), n, "tshark rows:\n{text}\n{}", String::from_utf8_lossy(&t.stderr));
    rows.into_iter()
        .map(|mut r| {
            assert_eq!(r[0], "5555", "a frame to another port: {r:?}");
            r.remove(0);
            r
        })
        .collect()
}

#[test]
fn ipv6_frames_from_gen_pass_the_kernel_udp_socket_and_tshark() {
    if !privileged() {
        return;
    }
    const N: usize = 200;
    let tb = testbed(1);
    let ns = tb.rx_ns.clone();
    // The kernel's IPv6 stack checks the UDP checksum (mandatory over IPv6) and drops a
    // bad or zero one before the socket.
    let listener = kernel_udp_stamps(&ns, (RX_IP6, 5555), N, Duration::from_secs(8));
    let fields = ["frame.len", "ipv6.src", "ipv6.dst", "udp.checksum.status", "_ws.malformed"];
    let gen_args = ["--ipv6", "--src-ip", TX_IP6, "--dst-ip", RX_IP6, "--size", "130"];
    let rows = tshark_rows_of_gen(&tb, N, &gen_args, &fields);
    let stamps = listener.join().unwrap();
    assert_eq!(stamps.len(), N, "the kernel UDP socket must accept every generated IPv6 frame");
    for (i, s) in stamps.iter().enumerate() {
        assert_eq!((s.flow, s.seq), (0, i as u32), "stamp {i}");
    }
    for r in rows {
        // 130 B with FCS = 126 B captured; checksum status 1 = good.
        assert_eq!(r[..4], ["126", TX_IP6, RX_IP6, "1"], "tshark row {r:?}");
        assert!(r.get(4).is_none_or(|m| m.is_empty()), "malformed: {r:?}");
    }
}

#[test]
fn vlan_frames_from_gen_pass_tshark() {
    if !privileged() {
        return;
    }
    const N: usize = 100;
    let tb = testbed(1);
    let fields = ["frame.len", "vlan.id", "vlan.etype", "ip.checksum.status", "udp.checksum.status", "_ws.malformed"];
    // One 802.1Q tag over IPv4 (default addresses: RFC 2544's 198.18.0.1 -> 198.19.0.1).
    for r in tshark_rows_of_gen(&tb, N, &["--vlan", "100", "--size", "128"], &fields) {
        assert_eq!(r[..5], ["124", "100", "0x0800", "1", "1"], "tshark row {r:?}");
        assert!(r.get(5).is_none_or(|m| m.is_empty()), "malformed: {r:?}");
    }
    // QinQ over IPv6 at the default size (90 B with FCS, the smallest that fits): an
    // 802.1ad tag 100 (tshark's ieee8021ad) outside an 802.1Q tag 200.
    let fields =
        ["frame.len", "eth.type", "ieee8021ad.id", "vlan.id", "vlan.etype", "udp.checksum.status", "_ws.malformed"];
    for r in tshark_rows_of_gen(&tb, N, &["--vlan", "100,200", "--ipv6"], &fields) {
        assert_eq!(r[..6], ["86", "0x88a8", "100", "200", "0x86dd", "1"], "tshark row {r:?}");
        assert!(r.get(6).is_none_or(|m| m.is_empty()), "malformed: {r:?}");
    }
}
