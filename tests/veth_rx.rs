//! The receive path on a veth testbed, in skb and native XDP mode: exact counts in the
//! workers and in the program, non-matching traffic still reaching the kernel, and no
//! XDP program left after a normal end or SIGINT.
mod common;

use std::{net::UdpSocket, thread, time::Duration};

use common::*;

const N: usize = 5000;

fn rxdrop_counts_exactly(xdp_mode: &str) {
    if !privileged() {
        return;
    }
    let tb = testbed(1);
    let x = Xdpipe::start(&tb.rx_ns, &["run", "-i", RX_IFACE, "--xdp-mode", xdp_mode, "--poll", "-d", "4", "--json"]);
    assert!(xdp_attached(&tb.rx_ns, RX_IFACE), "program not attached while running");
    send_udp(&tb, N, 18000, 18);
    assert!(ping(&tb), "ping (not steered) must still reach the kernel while xdpipe runs");
    let s = x.summary(Duration::from_secs(20));
    assert_eq!(s["xdp_mode"], xdp_mode);
    assert_eq!(s["bind"], "copy", "veth is copy mode only");
    assert_eq!(u(&s, "rx_packets"), N as u64, "worker count; summary {s}");
    assert_eq!(u(&s, "queues.0.rx_packets"), N as u64);
    // 18 B payload + 8 UDP + 20 IPv4 + 14 Ethernet = 60 B per frame.
    assert_eq!(u(&s, "rx_bytes"), N as u64 * 60);
    assert_eq!(u(&s, "program.matched"), N as u64, "program matched; summary {s}");
    assert_eq!(u(&s, "program.redirected"), N as u64);
    assert_eq!(u(&s, "program.no_socket"), 0);
    assert!(u(&s, "program.passed") >= 2, "the ping request (and more) must be passed; summary {s}");
    assert_eq!(u(&s, "program.seen"), u(&s, "program.redirected") + u(&s, "program.passed"));
    assert_eq!(u(&s, "queues.0.xdp_statistics.rx_ring_full"), 0);
    assert_eq!(u(&s, "queues.0.xdp_statistics.rx_dropped"), 0);
    assert!(!xdp_attached(&tb.rx_ns, RX_IFACE), "program still attached after a normal end");
}

#[test]
fn rxdrop_skb_mode_counts_exactly() {
    rxdrop_counts_exactly("skb");
}

#[test]
fn rxdrop_native_mode_counts_exactly() {
    rxdrop_counts_exactly("native");
}

#[test]
fn unmatched_udp_reaches_the_kernel_socket() {
    if !privileged() {
        return;
    }
    let tb = testbed(1);
    let ns = tb.rx_ns.clone();
    // A kernel UDP socket on a port outside the steered range, in the receiver namespace.
    let listener = thread::spawn(move || {
        xdpipe::sys::enter_netns(&ns).expect("entering the receiver namespace");
        let sock = UdpSocket::bind((RX_IP, 5555)).expect("bind 5555");
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 64];
        let mut got = 0;
        while got < 100 {
            match sock.recv(&mut buf) {
                Ok(_) => got += 1,
                Err(_) => break,
            }
        }
        got
    });
    let x = Xdpipe::start(
        &tb.rx_ns,
        &["run", "-i", RX_IFACE, "--xdp-mode", "native", "--poll", "100", "-d", "3", "--json"],
    );
    thread::sleep(Duration::from_millis(200));
    send_udp(&tb, 100, 5555, 10);
    send_udp(&tb, 100, 18001, 10);
    let got = listener.join().unwrap();
    let s = x.summary(Duration::from_secs(20));
    assert_eq!(got, 100, "the kernel socket on port 5555 must get all 100 datagrams");
    assert_eq!(u(&s, "rx_packets"), 100, "only the 100 datagrams to 18001 are steered; summary {s}");
    assert_eq!(u(&s, "program.redirected"), 100);
}

#[test]
fn sigint_ends_the_run_with_a_summary_and_detaches() {
    if !privileged() {
        return;
    }
    let tb = testbed(1);
    let x = Xdpipe::start(&tb.rx_ns, &["run", "-i", RX_IFACE, "--xdp-mode", "skb", "--poll", "--json"]);
    send_udp(&tb, 300, 18000, 18);
    thread::sleep(Duration::from_millis(300));
    assert!(xdp_attached(&tb.rx_ns, RX_IFACE));
    x.signal(libc::SIGINT);
    let s = x.summary(Duration::from_secs(10));
    assert_eq!(s["end"]["reason"], "stopped");
    assert_eq!(u(&s, "rx_packets"), 300);
    assert!(!xdp_attached(&tb.rx_ns, RX_IFACE), "program still attached after SIGINT");
}

#[test]
fn sigterm_and_sigkill_leave_nothing_attached() {
    if !privileged() {
        return;
    }
    let tb = testbed(1);
    for sig in [libc::SIGTERM, libc::SIGKILL] {
        let x = Xdpipe::start(&tb.rx_ns, &["run", "-i", RX_IFACE, "--xdp-mode", "native", "--poll"]);
        assert!(xdp_attached(&tb.rx_ns, RX_IFACE));
        x.signal(sig);
        let (code, _, err) = x.finish(Duration::from_secs(10));
        if sig == libc::SIGTERM {
            assert_eq!(code, Some(0), "SIGTERM is a clean stop; stderr:\n{err}");
        }
        // The link goes with the process; give the kernel a moment to release it.
        let mut attached = true;
        for _ in 0..50 {
            attached = xdp_attached(&tb.rx_ns, RX_IFACE);
            if !attached {
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
        assert!(!attached, "program still attached after signal {sig}");
    }
}

#[test]
fn bad_input_is_refused_with_a_clear_message() {
    if !privileged() {
        return;
    }
    let tb = testbed(2);
    let cases: &[(&[&str], &str)] = &[
        (&["run", "-i", "nosuchif0", "-d", "1"], "no interface named \"nosuchif0\""),
        (&["run", "-i", RX_IFACE, "-q", "2", "-d", "1"], "xp-rx has 2 queue(s)"),
        (&["run", "-i", RX_IFACE, "--rx-ring", "1000", "-d", "1"], "power of two"),
        (&["run", "-i", RX_IFACE, "--frame-size", "3000", "-d", "1"], "frame size"),
        (&["run", "-i", RX_IFACE, "-q", "0-1", "-c", "0", "-d", "1"], "one core per queue"),
        (&["run", "-i", RX_IFACE, "--bind", "zero-copy", "--xdp-mode", "native", "-d", "1"], "zero-copy"),
    ];
    for (args, needle) in cases {
        let x = Xdpipe::spawn(&tb.rx_ns, args);
        let (code, _, err) = x.finish(Duration::from_secs(20));
        assert_ne!(code, Some(0), "{args:?} must fail");
        assert!(err.contains(needle), "{args:?}: expected {needle:?} in:\n{err}");
        assert!(!err.contains("panicked"), "{args:?} panicked:\n{err}");
        assert!(!xdp_attached(&tb.rx_ns, RX_IFACE), "{args:?} left a program attached");
    }
    // gen on a queue the device lacks: refused before its zero-copy TX program attaches.
    let gen_args =
        ["gen", "-i", TX_IFACE, "--src-ip", TX_IP, "--dst-ip", RX_IP, "--queues", "0-2", "--flows", "3", "-n", "10"];
    let (code, _, err) = Xdpipe::spawn(&tb.tx_ns, &gen_args).finish(Duration::from_secs(20));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("xp-tx has 2 queue(s)") && err.contains("ethtool -L"), "{err}");
    assert!(!xdp_attached(&tb.tx_ns, TX_IFACE), "gen left a program attached");
}

/// The receiver stops while the generator still sends (200 kpps, for longer than the run):
/// every frame the program redirected to the socket is either received or in one of the
/// socket's named drop counters. (In copy mode a frame the fill ring had no buffer for
/// is counted in `rx_dropped` and in `rx_fill_ring_empty_descs` both: the latter is a part
/// of the former, not a separate drop.)
fn stop_under_traffic_accounts_for_every_redirect(xdp_mode: &str) {
    if !privileged() {
        return;
    }
    let tb = testbed(1);
    let x = Xdpipe::start(&tb.rx_ns, &["run", "-i", RX_IFACE, "--xdp-mode", xdp_mode, "-d", "1", "--json"]);
    let mut g = std::process::Command::new("ip")
        .args(["netns", "exec", &tb.tx_ns, XDPIPE, "gen", "-i", TX_IFACE, "--rate", "200kpps", "-d", "5"])
        .args(["--dst-mac", &xdpipe::testbed::fmt_mac(&tb.rx_mac), "--src-ip", TX_IP, "--dst-ip", RX_IP])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starting the generator");
    let s = x.summary(Duration::from_secs(20));
    // The generator was still sending when the receiver stopped.
    let still_sending = g.try_wait().expect("try_wait").is_none();
    let _ = g.kill();
    let _ = g.wait();
    assert!(still_sending, "the generator must outlast the receiver; {s}");
    let st = &s["queues"][0]["xdp_statistics"];
    let (received, redirected) = (u(&s, "rx_packets"), u(&s, "queues.0.program.redirected"));
    assert!(received > 10_000, "traffic must flow during the run; {s}");
    assert!(u(&s, "program.no_socket") > 0, "frames must still arrive after the queue left the XSKMAP; {s}");
    assert!(u(st, "rx_fill_ring_empty_descs") <= u(st, "rx_dropped"), "{s}");
    assert_eq!(u(st, "rx_invalid_descs"), 0, "{s}");
    assert_eq!(
        redirected,
        received + u(st, "rx_dropped") + u(st, "rx_ring_full"),
        "redirected = received + rx_dropped + rx_ring_full at a stop under traffic; {s}"
    );
}

#[test]
fn stop_under_traffic_accounts_for_every_redirect_native() {
    stop_under_traffic_accounts_for_every_redirect("native");
}

#[test]
fn stop_under_traffic_accounts_for_every_redirect_skb() {
    stop_under_traffic_accounts_for_every_redirect("skb");
}
