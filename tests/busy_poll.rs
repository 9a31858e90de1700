//! `--poll busy-poll` on a veth testbed in native XDP mode: exact counts, the receiving
//! veth's NAPI knobs set to the run's values while it runs (read back over netdev netlink
//! inside the namespace) and back to what they were after a normal end and after SIGINT.
//! GRO is turned on on the receiving veth first, so its NAPI outlives the XDP program
//! and the values after the run can be read at all; they start at values of the test's
//! own (1 and 7000), not the kernel's zeros, so a restore that wrote zeros would fail.
//! `xdpipe napi` prints the same values.
mod common;

use std::{process::Command, time::Duration};

use common::*;
use xdpipe::net::netdev::{NapiConfig, Netdev};

const N: usize = 3000;

/// (id, defer_hard_irqs, gro_flush_timeout) of each NAPI of the receiving veth.
fn napis(ns: &str) -> Vec<(u32, u32, u64)> {
    xdpipe::net::ns::with_netns(ns, || {
        let idx = xdpipe::net::link::index(RX_IFACE)?;
        Netdev::open()?.napis(idx)
    })
    .expect("napi-get in the receiver's namespace")
    .iter()
    .map(|n| (n.id, n.defer_hard_irqs.unwrap_or(u32::MAX), n.gro_flush_timeout_ns.unwrap_or(u64::MAX)))
    .collect()
}

/// GRO on (the NAPI exists without XDP), then the test's starting values on each NAPI.
fn prepare(tb: &Testbed) -> Vec<u32> {
    let st = Command::new("ip")
        .args(["netns", "exec", &tb.rx_ns, "ethtool", "-K", RX_IFACE, "gro", "on"])
        .status()
        .expect("running ethtool");
    assert!(st.success(), "ethtool -K {RX_IFACE} gro on");
    let ids: Vec<u32> = napis(&tb.rx_ns).iter().map(|n| n.0).collect();
    assert!(!ids.is_empty(), "a veth with GRO on has a NAPI per queue");
    xdpipe::net::ns::with_netns(&tb.rx_ns, || {
        let mut nd = Netdev::open()?;
        for &id in &ids {
            nd.set(&NapiConfig {
                id,
                defer_hard_irqs: Some(1),
                gro_flush_timeout_ns: Some(7000),
                irq_suspend_timeout_ns: None,
            })?;
        }
        Ok(())
    })
    .expect("napi-set of the starting values");
    assert!(napis(&tb.rx_ns).iter().all(|n| (n.1, n.2) == (1, 7000)));
    ids
}

const ARGS: &[&str] = &[
    "run",
    "-i",
    RX_IFACE,
    "--xdp-mode",
    "native",
    "--poll",
    "busy-poll",
    "--defer-hard-irqs",
    "3",
    "--gro-flush-timeout",
    "150000",
    "--json",
];

#[test]
fn busy_poll_receives_exactly_and_restores_the_napi_knobs_after_a_normal_end() {
    if !privileged() {
        return;
    }
    let tb = testbed(1);
    let ids = prepare(&tb);
    let args: Vec<&str> = ARGS.iter().copied().chain(["-d", "4"]).collect();
    let x = Xdpipe::start(&tb.rx_ns, &args);
    let during = napis(&tb.rx_ns);
    assert!(during.iter().all(|n| (n.1, n.2) == (3, 150000)), "not set during the run: {during:?}");
    send_udp(&tb, N, 18000, 18);
    let s = x.summary(Duration::from_secs(20));
    assert_eq!(u(&s, "rx_packets"), N as u64, "summary {s}");
    assert_eq!(u(&s, "program.redirected"), N as u64);
    assert_eq!(s["wait"], "busy-poll");
    assert_eq!(s["busy_poll"]["mechanism"], "napi-set", "{s}");
    assert_eq!(u(&s, "busy_poll.settings.defer_hard_irqs"), 3);
    assert_eq!(u(&s, "busy_poll.settings.budget"), 64, "the budget defaults to --batch");
    let seen: Vec<u64> = s["busy_poll"]["napi_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!(seen, ids.iter().map(|&i| i as u64).collect::<Vec<_>>());
    // One recvfrom per turn of the loop drives the NAPI: far more than one per frame
    // would be a bug, none at all would be no busy polling.
    assert!(u(&s, "wakeups") > 0, "{s}");
    let after = napis(&tb.rx_ns);
    assert!(after.iter().all(|n| (n.1, n.2) == (1, 7000)), "not restored: {after:?}");
}

#[test]
fn busy_poll_knobs_are_restored_after_sigint() {
    if !privileged() {
        return;
    }
    let tb = testbed(1);
    prepare(&tb);
    let args: Vec<&str> = ARGS.iter().copied().chain(["-d", "60"]).collect();
    let x = Xdpipe::start(&tb.rx_ns, &args);
    assert!(napis(&tb.rx_ns).iter().all(|n| (n.1, n.2) == (3, 150000)));
    send_udp(&tb, 500, 18000, 18);
    x.signal(libc::SIGINT);
    let s = x.summary(Duration::from_secs(10));
    assert_eq!(u(&s, "rx_packets"), 500, "{s}");
    let after = napis(&tb.rx_ns);
    assert!(after.iter().all(|n| (n.1, n.2) == (1, 7000)), "not restored after SIGINT: {after:?}");
}

#[test]
fn busy_poll_knobs_left_by_sigkill_are_restored_by_cleanup() {
    if !privileged() {
        return;
    }
    let tb = testbed(1);
    prepare(&tb);
    let args: Vec<&str> = ARGS.iter().copied().chain(["-d", "60"]).collect();
    let x = Xdpipe::start(&tb.rx_ns, &args);
    assert!(napis(&tb.rx_ns).iter().all(|n| (n.1, n.2) == (3, 150000)));
    x.signal(libc::SIGKILL);
    let (code, _, _) = x.finish(Duration::from_secs(10));
    assert_eq!(code, None, "killed by a signal");
    // Nothing in the process ran: the knobs are as the run set them...
    let left = napis(&tb.rx_ns);
    assert!(left.iter().all(|n| (n.1, n.2) == (3, 150000)), "SIGKILL cannot restore: {left:?}");
    // ... until cleanup finds the knob record of an owner that is gone.
    let (code, _, err) = xdpipe_once(&["cleanup"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("restored the NAPI settings of xp-rx"), "{err}");
    let after = napis(&tb.rx_ns);
    assert!(after.iter().all(|n| (n.1, n.2) == (1, 7000)), "not restored by cleanup: {after:?}");
    let (_, _, again) = xdpipe_once(&["cleanup"]);
    assert!(!again.contains("NAPI settings of xp-rx"), "the record is gone once restored: {again}");
}

#[test]
fn busy_poll_flags_without_busy_poll_and_coalescing_without_a_sleep_are_refused() {
    for (args, needle) in [
        (&["run", "-i", "lo", "--defer-hard-irqs", "2"][..], "--defer-hard-irqs is a setting of --poll busy-poll"),
        (&["run", "-i", "lo", "--poll", "busy-poll", "--busy-poll-usecs", "0"][..], "--busy-poll-usecs \"0\""),
        (&["run", "-i", "lo", "--coalesce-us", "20"][..], "--coalesce-us moderates a sleeping wait"),
        (&["run", "-i", "lo", "--poll", "--coalesce-frames", "0"][..], "--coalesce-frames \"0\""),
    ] {
        let (code, _, err) = xdpipe_once(args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

/// `xdpipe napi` prints what napi-get reports, as JSON and as one line per NAPI; an
/// unknown interface is an error naming it.
#[test]
fn napi_prints_each_napi_s_settings() {
    if !privileged() {
        return;
    }
    let tb = testbed(1);
    let ids = prepare(&tb);
    let run = |args: &[&str]| {
        let out = Command::new("ip").args(["netns", "exec", &tb.rx_ns, XDPIPE, "napi"]).args(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = run(&["-i", RX_IFACE, "--json"]);
    assert_eq!(code, Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"));
    let seen: Vec<(u64, u64, u64)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (u(n, "id"), u(n, "defer_hard_irqs"), u(n, "gro_flush_timeout_ns")))
        .collect();
    assert_eq!(seen, ids.iter().map(|&i| (i as u64, 1, 7000)).collect::<Vec<_>>(), "{out}");
    let (_, text, _) = run(&["-i", RX_IFACE]);
    let line = format!("{RX_IFACE}: napi {}: defer-hard-irqs 1, gro-flush-timeout 7000 ns", ids[0]);
    assert!(text.contains(&line), "{text}");
    let (code, _, err) = run(&["-i", "xp-none"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no interface named \"xp-none\""), "{err}");
}
