//! AF_XDP TX metadata on veth (copy mode, where the kernel honours the requests for any
//! device): `gen --tx-offload checksum,timestamp` leaves the UDP checksum to the kernel
//! and reads back the kernel's software TX completion timestamps. With the sender's TX
//! checksum offload off the kernel fills the checksum in (skb_checksum_help) and the
//! frames pass the receiver's UDP socket and tshark; with it on (veth's default) veth
//! hands the skb to its peer unfilled, and the summary says so.
mod common;

use std::{
    process::{Child, Command, Stdio},
    thread,
    time::Duration,
};

use common::*;

const N: usize = 300;
const PORT: u16 = 5556;

/// tcpdump on the receiver's veth for `N` frames to PORT, into a private directory.
fn capture(tb: &Testbed) -> (Child, std::path::PathBuf, String) {
    let dir = xdpipe::sys::private_temp_dir("xdpipe-txmd-pcap").expect("a private temporary directory");
    let pcap = dir.join("gen.pcap").to_string_lossy().into_owned();
    let filter = format!("udp port {PORT}");
    let child = Command::new("ip")
        .args(["netns", "exec", &tb.rx_ns, "timeout", "20", "tcpdump", "-Z", "root", "-i", RX_IFACE])
        .args(["-c", &N.to_string(), "-w", &pcap, &filter])
        .stderr(Stdio::piped())
        .spawn()
        .expect("tcpdump");
    (child, dir, pcap)
}

/// tshark's UDP checksum status of each captured frame (1 good, 2 bad).
fn udp_checksum_status(pcap: &str) -> Vec<String> {
    let t = Command::new("tshark")
        .args(["-r", pcap, "-o", "udp.check_checksum:TRUE", "-T", "fields", "-e", "udp.checksum.status"])
        .output()
        .expect("tshark (apt-get install tshark)");
    String::from_utf8_lossy(&t.stdout).lines().map(str::to_owned).collect()
}

/// Sends N frames with `--tx-offload offload` into the receiver's kernel UDP socket;
/// returns gen's JSON summary, the stamps the socket got and tshark's checksum statuses.
fn send(tb: &Testbed, offload: &str) -> (serde_json::Value, Vec<xdpipe::wire::stamp::Stamp>, Vec<String>) {
    let (dump, dir, pcap) = capture(tb);
    // No XDP program on the receiver: its stack checks the UDP checksum of a frame that
    // arrives without one to trust (CHECKSUM_NONE) and drops a bad one.
    let listener = kernel_udp_stamps(&tb.rx_ns, (RX_IP, PORT), N, Duration::from_secs(5));
    thread::sleep(Duration::from_millis(700));
    let g = Command::new("ip")
        .args(["netns", "exec", &tb.tx_ns, XDPIPE, "gen", "-i", TX_IFACE, "--json"])
        .args(["--dst-mac", &xdpipe::testbed::fmt_mac(&tb.rx_mac), "--src-ip", TX_IP, "--dst-ip", RX_IP])
        .args(["--dst-port", &PORT.to_string(), "--count", &N.to_string(), "--rate", "5kpps", "--size", "128"])
        .args(["--tx-offload", offload])
        .output()
        .expect("gen");
    assert!(g.status.success(), "gen failed: {}", String::from_utf8_lossy(&g.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&g.stdout).expect("gen --json prints JSON");
    let stamps = listener.join().unwrap();
    let d = dump.wait_with_output().unwrap();
    assert!(d.status.success(), "tcpdump: {}", String::from_utf8_lossy(&d.stderr));
    let status = udp_checksum_status(&pcap);
    let _ = std::fs::remove_dir_all(&dir);
    (summary, stamps, status)
}

/// Turns the sender veth's TX checksum offload off, as `ethtool -K veth0 tx off` would
/// (the namespace goes with the testbed, so nothing needs restoring).
fn tx_checksum_off(tb: &Testbed) {
    let ns = tb.tx_ns.clone();
    thread::spawn(move || {
        xdpipe::sys::enter_netns(&ns).expect("entering the sender namespace");
        xdpipe::net::ethtool::set_features(TX_IFACE, &["tx-checksum-ip-generic"], false)
            .expect("turning the sender's TX checksum offload off");
    })
    .join()
    .unwrap();
}

#[test]
fn the_kernel_fills_in_the_checksum_and_stamps_every_completion() {
    if !privileged() {
        return;
    }
    let tb = testbed(1);
    tx_checksum_off(&tb);
    let (s, stamps, status) = send(&tb, "checksum,timestamp");
    assert_eq!(stamps.len(), N, "the kernel UDP socket must accept every frame; {s}");
    for (i, st) in stamps.iter().enumerate() {
        assert_eq!((st.flow, st.seq), (0, i as u32), "stamp {i}");
    }
    assert_eq!(status.len(), N, "captured frames");
    assert!(status.iter().all(|x| x == "1"), "tshark: every UDP checksum good; {status:?}");
    let t = &s["tx_offload"];
    assert_eq!(t["checksum"], "kernel", "{t}");
    assert_eq!(t["tx_timestamps"], "kernel", "{t}");
    assert_eq!(u(t, "stamps.requested"), N as u64, "{t}");
    assert_eq!(u(t, "stamps.stamped"), N as u64, "{t}");
    assert_eq!(u(t, "stamps.latency_frames"), N as u64, "{t}");
    // CLOCK_TAI against CLOCK_MONOTONIC: a frame completes after it was queued, and
    // within a second at 5 kpps on veth.
    let (min, max) = (u(t, "stamps.latency_min_ns"), u(t, "stamps.latency_max_ns"));
    assert!(min <= max && max < 1_000_000_000, "{t}");
    assert!(u(t, "stamps.last_ns") >= u(t, "stamps.first_ns") && u(t, "stamps.first_ns") > 0, "{t}");
}

#[test]
fn veth_with_checksum_offload_passes_the_checksum_on_unfilled() {
    if !privileged() {
        return;
    }
    let tb = testbed(1);
    let (s, stamps, status) = send(&tb, "checksum");
    // The peer's stack takes a CHECKSUM_PARTIAL skb as verified.
    assert_eq!(stamps.len(), N, "{s}");
    // On the wire (a capture) the field holds the pseudo-header sum, not a checksum:
    // the request reached the kernel, and nothing filled it in.
    assert_eq!(status.len(), N, "captured frames");
    assert!(status.iter().all(|x| x != "1"), "tshark sees no good checksum; {status:?}");
    let t = &s["tx_offload"];
    assert_eq!(t["checksum"], "deferred", "{t}");
    assert_eq!(t["tx_timestamps"], "none", "{t}");
    assert_eq!(u(t, "stamps.requested"), 0, "{t}");
}

#[test]
fn zero_copy_requests_veth_cannot_honour_are_refused() {
    if !privileged() {
        return;
    }
    let tb = testbed(1);
    let g = Command::new("ip")
        .args(["netns", "exec", &tb.tx_ns, XDPIPE, "gen", "-i", TX_IFACE, "--count", "10"])
        .args(["--tx-offload", "timestamp", "--bind", "zero-copy"])
        .output()
        .expect("gen");
    let err = String::from_utf8_lossy(&g.stderr);
    assert!(!g.status.success(), "{err}");
    assert!(err.contains("only the driver honours it") && err.contains("xsk-features: none"), "{err}");
}
