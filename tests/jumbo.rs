//! Multi-buffer (jumbo) frames end to end on veth testbeds: `xdpipe veth --size 9018`
//! (a 9000 B MTU's largest frame, three 4096 B UMEM frames) and `--size 4000` (just past
//! one) make a jumbo testbed (MTU 9000), send each frame as a chain of descriptors
//! (XDP_PKT_CONTD), and the receiver (an `xdp.frags` program, sockets bound with
//! XDP_USE_SG) takes every one whole, in native and skb mode: exact counts, and exact
//! byte totals (the counters count frames without their 4-byte FCS).
mod common;

use std::process::Command;

use common::*;

const FRAMES: u64 = 2000;

fn veth(args: &[&str]) -> serde_json::Value {
    let out = Command::new(XDPIPE).arg("veth").args(args).arg("--json").output().expect("running xdpipe veth");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "xdpipe veth {args:?} failed:\n{stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("report is not JSON ({e}); stderr:\n{stderr}"))
}

/// `xdpipe veth --size SIZE EXTRA` at a moderate rate: every frame arrives whole and
/// stamped, and the byte totals are exactly FRAMES x (SIZE - FCS) on both sides.
fn every_jumbo_frame_arrives_whole(size: u64, extra: &[&str]) {
    let (n, s) = (FRAMES.to_string(), size.to_string());
    let mut args = vec!["--size", &s, "--count", &n, "--rate", "5kpps", "--poll", "50"];
    args.extend(extra);
    let r = veth(&args);
    let what = format!("--size {size} {extra:?}");
    let (g, rx) = (&r["generator"], &r["receiver"]);
    assert_eq!((u(&r, "sent"), u(&r, "received"), u(&r, "lost")), (FRAMES, FRAMES, 0), "{what}: {r}");
    assert_eq!((u(g, "sent"), u(g, "completed")), (FRAMES, FRAMES), "{what}: a frame completes once: {g}");
    let frame_bytes = FRAMES * (size - 4);
    assert_eq!(u(g, "bytes"), frame_bytes, "{what}: bytes sent");
    assert_eq!((u(rx, "rx_packets"), u(rx, "rx_bytes")), (FRAMES, frame_bytes), "{what}: bytes received");
    let q = &rx["queues"][0];
    assert_eq!((u(q, "bad_descs"), u(q, "xdp_statistics.rx_invalid_descs")), (0, 0), "{what}: {q}");
    let a = &rx["accounting"];
    assert_eq!((u(a, "stamped"), u(a, "unstamped"), u(a, "lost_in_sequence")), (FRAMES, 0, 0), "{what}: {a}");
    if extra.contains(&"parse") {
        let p = &rx["parse"];
        assert_eq!((u(p, "frames"), u(p, "udp"), u(p, "malformed")), (FRAMES, FRAMES, 0), "{what}: {p}");
    }
    if extra.contains(&"l2fwd") {
        // Each chain went back out whole: one frame, three completed descriptors.
        let segs = (size - 4).div_ceil(4096 - 256);
        assert_eq!((u(rx, "tx_packets"), u(rx, "tx_completed")), (FRAMES, FRAMES * segs), "{what}: {rx}");
    }
}

#[test]
fn jumbo_frames_native() {
    if privileged() {
        every_jumbo_frame_arrives_whole(9018, &[]);
        every_jumbo_frame_arrives_whole(4000, &["--mode", "parse"]);
        every_jumbo_frame_arrives_whole(9018, &["--mode", "l2fwd"]);
    }
}

#[test]
fn jumbo_frames_skb() {
    if privileged() {
        every_jumbo_frame_arrives_whole(9018, &["--xdp-mode", "skb", "--mode", "parse"]);
        every_jumbo_frame_arrives_whole(4000, &["--xdp-mode", "skb"]);
    }
}

/// A testbed left at the veth default MTU cannot carry a jumbo frame: refused before
/// anything is built, naming the flags.
#[test]
fn a_jumbo_size_above_the_testbed_mtu_is_refused() {
    let out = Command::new(XDPIPE).args(["veth", "--size", "9018", "--mtu", "1500"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("--size 9018 with --mtu 1500") && stderr.contains("raise --mtu to 9000"), "{stderr}");
}
