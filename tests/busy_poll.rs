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

/// Each NAPI of the receiving veth, as napi-get reports it inside its namespace.
fn napi_configs(ns: &str) -> Vec<NapiConfig> {
    xdpipe::net::ns::with_netns(ns, || {
        let idx = xdpipe::net::link::index(RX_IFACE)?;
        Netdev::open()?.napis(idx)
    })
    .expect("napi-get in the receiver's namespace")
}

/// (id, defer_hard_irqs, gro_flush_timeout) of each NAPI of the receiving veth.
fn napis(ns: &str) -> Vec<(u32, u32, u64)> {
    napi_configs(ns)
        .iter()
        .map(|n| (n.id, n.defer_hard_irqs.unwrap_or(u32::MAX), n.gro_flush_timeout_ns.unwrap_or(u64::MAX)))
        .collect()
}

/// irq-suspend-timeout (ns) of each NAPI of the receiving veth.
fn irq_suspend(ns: &str) -> Vec<u64> {
    napi_configs(ns).iter().map(|n| n.irq_suspend_timeout_ns.expect("napi-get reports irq-suspend-timeout")).collect()
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
                irq_suspend_timeout_ns: Some(IRQ_SUSPEND_BEFORE),
            })?;
        }
        Ok(())
    })
    .expect("napi-set of the starting values");
    assert!(napis(&tb.rx_ns).iter().all(|n| (n.1, n.2) == (1, 7000)));
    assert!(irq_suspend(&tb.rx_ns).iter().all(|&t| t == IRQ_SUSPEND_BEFORE));
    ids
}

/// The test's own starting irq-suspend-timeout, ns (not the kernel's 0).
const IRQ_SUSPEND_BEFORE: u64 = 3000;

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

/// (napi_defer_hard_irqs, gro_flush_timeout) of the receiving veth, read from its sysfs
/// files inside the namespace.
fn sysfs_knobs(ns: &str) -> (u64, u64) {
    let read = |knob: &str| -> u64 {
        let path = format!("/sys/class/net/{RX_IFACE}/{knob}");
        let out = Command::new("ip").args(["netns", "exec", ns, "cat", &path]).output().expect("reading sysfs");
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or_else(|_| panic!("{path}: {out:?}"))
    };
    (read("napi_defer_hard_irqs"), read("gro_flush_timeout"))
}

/// `prepare`, then the test's starting values (1, 7000) in the device's sysfs files too.
fn prepare_sysfs(tb: &Testbed) {
    prepare(tb);
    for (knob, v) in [("napi_defer_hard_irqs", "1"), ("gro_flush_timeout", "7000")] {
        xdpipe::net::sysfs::write_net(Some(&tb.rx_ns), &format!("{RX_IFACE}/{knob}"), v).expect("writing sysfs");
    }
    assert_eq!(sysfs_knobs(&tb.rx_ns), (1, 7000));
}

const SYSFS_ARGS: &[&str] = &["--busy-poll-knobs", "sysfs"];

#[test]
fn busy_poll_knobs_forced_to_sysfs_are_set_there_and_restored_after_a_normal_end() {
    if !privileged() {
        return;
    }
    let tb = testbed(1);
    prepare_sysfs(&tb);
    let args: Vec<&str> = ARGS.iter().chain(SYSFS_ARGS).copied().chain(["-d", "4"]).collect();
    let x = Xdpipe::start(&tb.rx_ns, &args);
    assert_eq!(sysfs_knobs(&tb.rx_ns), (3, 150000), "not set in sysfs during the run");
    send_udp(&tb, N, 18000, 18);
    let s = x.summary(Duration::from_secs(20));
    assert_eq!(u(&s, "rx_packets"), N as u64, "summary {s}");
    assert_eq!(s["busy_poll"]["mechanism"], "sysfs", "{s}");
    assert_eq!(s["busy_poll"]["settings"]["knobs"], "sysfs", "{s}");
    assert_eq!(s["busy_poll"]["previous"], serde_json::json!([[0, 1, 7000]]), "{s}");
    assert_eq!(sysfs_knobs(&tb.rx_ns), (1, 7000), "not restored");
}

#[test]
fn busy_poll_sysfs_knobs_left_by_sigkill_are_restored_by_cleanup() {
    if !privileged() {
        return;
    }
    let tb = testbed(1);
    prepare_sysfs(&tb);
    let args: Vec<&str> = ARGS.iter().chain(SYSFS_ARGS).copied().chain(["-d", "60"]).collect();
    let x = Xdpipe::start(&tb.rx_ns, &args);
    assert_eq!(sysfs_knobs(&tb.rx_ns), (3, 150000));
    x.signal(libc::SIGKILL);
    let (code, _, _) = x.finish(Duration::from_secs(10));
    assert_eq!(code, None, "killed by a signal");
    assert_eq!(sysfs_knobs(&tb.rx_ns), (3, 150000), "SIGKILL cannot restore");
    let (code, _, err) = xdpipe_once(&["cleanup"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("gro_flush_timeout of xp-rx"), "{err}");
    assert_eq!(sysfs_knobs(&tb.rx_ns), (1, 7000), "not restored by cleanup");
}

/// BusyPollRxPackets of namespace `ns` (/proc/net/netstat): frames NAPI delivered while
/// a busy poll ran it.
fn busy_poll_rx_packets(ns: &str) -> u64 {
    let out =
        Command::new("ip").args(["netns", "exec", ns, "cat", "/proc/net/netstat"]).output().expect("reading netstat");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (names, values) = (lines.next().expect("TcpExt names"), lines.next().expect("TcpExt values"));
    let at = names.split_whitespace().position(|n| n == "BusyPollRxPackets").expect("BusyPollRxPackets in netstat");
    values.split_whitespace().nth(at).and_then(|v| v.parse().ok()).expect("a BusyPollRxPackets value")
}

/// `--irq-suspend-us 20000`: 20 ms, in ns as napi-get reports it.
const IRQ_SUSPEND_NS: u64 = 20_000_000;

/// A prepared testbed and `xdpipe run` on it with `--irq-suspend-us 20000` for `secs`,
/// its irq-suspend-timeout checked to be set; also the NAPI ids.
fn start_irq_suspended(secs: &str) -> (Testbed, Vec<u32>, Xdpipe) {
    let tb = testbed(1);
    let ids = prepare(&tb);
    let args: Vec<&str> = ARGS.iter().copied().chain(["--irq-suspend-us", "20000", "-d", secs]).collect();
    let x = Xdpipe::start(&tb.rx_ns, &args);
    assert!(irq_suspend(&tb.rx_ns).iter().all(|&t| t == IRQ_SUSPEND_NS), "not set during the run");
    (tb, ids, x)
}

#[test]
fn irq_suspension_receives_exactly_sets_the_timeout_and_restores_it_after_a_normal_end() {
    if !privileged() {
        return;
    }
    let (tb, ids, x) = start_irq_suspended("4");
    let polled = busy_poll_rx_packets(&tb.rx_ns);
    assert!(napis(&tb.rx_ns).iter().all(|n| (n.1, n.2) == (3, 150000)), "the other knobs are set as well");
    send_udp(&tb, N, 18000, 18);
    let s = x.summary(Duration::from_secs(20));
    assert_eq!(u(&s, "rx_packets"), N as u64, "summary {s}");
    assert_eq!(u(&s, "program.redirected"), N as u64);
    let b = &s["busy_poll"];
    assert_eq!(b["mechanism"], "napi-set", "{s}");
    assert_eq!(u(&s, "busy_poll.settings.irq_suspend_ns"), IRQ_SUSPEND_NS);
    let took = b["irq_suspend"].as_str().unwrap();
    assert!(took.starts_with(&format!("on: irq-suspend-timeout {IRQ_SUSPEND_NS} ns")), "{took}");
    let before: Vec<serde_json::Value> = ids.iter().map(|&i| serde_json::json!([i, IRQ_SUSPEND_BEFORE])).collect();
    assert_eq!(b["irq_suspend_previous"], serde_json::Value::Array(before), "{s}");
    // The epoll waits ran the NAPI (an empty look makes one; none would be no polling).
    assert!(u(&s, "wakeups") > 0, "{s}");
    // Whether the waits could run the NAPI at all is what the summary says: with a
    // socket NAPI id, busy polls delivered frames; with none (veth names no NAPI for its
    // queues, so on veth the IRQ suspension itself cannot be seen), none did.
    let by_busy_poll = busy_poll_rx_packets(&tb.rx_ns) - polled;
    let socket_napi = b["socket_napi_ids"].as_array().unwrap();
    if socket_napi.iter().any(|v| v == 0) {
        assert_eq!(by_busy_poll, 0, "no NAPI id, yet busy polls delivered frames: {s}");
    } else {
        assert!(by_busy_poll > 0, "the epoll waits ran no NAPI: {s}");
    }
    assert!(irq_suspend(&tb.rx_ns).iter().all(|&t| t == IRQ_SUSPEND_BEFORE), "not restored");
    assert!(napis(&tb.rx_ns).iter().all(|n| (n.1, n.2) == (1, 7000)), "the other knobs not restored");
}

#[test]
fn irq_suspension_left_by_sigkill_is_restored_by_cleanup() {
    if !privileged() {
        return;
    }
    let (tb, _, x) = start_irq_suspended("60");
    x.signal(libc::SIGKILL);
    let (code, _, _) = x.finish(Duration::from_secs(10));
    assert_eq!(code, None, "killed by a signal");
    assert!(irq_suspend(&tb.rx_ns).iter().all(|&t| t == IRQ_SUSPEND_NS), "SIGKILL cannot restore");
    let (code, _, err) = xdpipe_once(&["cleanup"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("restored the NAPI settings of xp-rx"), "{err}");
    assert!(irq_suspend(&tb.rx_ns).iter().all(|&t| t == IRQ_SUSPEND_BEFORE), "not restored by cleanup");
    assert!(napis(&tb.rx_ns).iter().all(|n| (n.1, n.2) == (1, 7000)));
}

#[test]
fn irq_suspension_is_refused_with_another_wait_with_sysfs_knobs_and_out_of_range() {
    for (args, needle) in [
        (
            &["run", "-i", "lo", "--poll", "--irq-suspend-us", "20"][..],
            "--irq-suspend-us is a setting of --poll busy-poll",
        ),
        (&["run", "-i", "lo", "--irq-suspend-us", "20"][..], "--irq-suspend-us is a setting of --poll busy-poll"),
        (
            &["run", "-i", "lo", "--poll", "busy-poll", "--busy-poll-knobs", "sysfs", "--irq-suspend-us", "20"][..],
            "--busy-poll-knobs sysfs has no such knob",
        ),
        (&["run", "-i", "lo", "--poll", "busy-poll", "--irq-suspend-us", "0"][..], "--irq-suspend-us \"0\""),
    ] {
        let (code, _, err) = xdpipe_once(args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn irq_suspension_on_a_device_without_napi_is_refused_and_leaves_nothing() {
    if !privileged() {
        return;
    }
    // Generic XDP and GRO off: the receiving veth has no NAPI, so nothing to suspend.
    let tb = testbed(1);
    let args = ["run", "-i", RX_IFACE, "--xdp-mode", "skb", "--poll", "busy-poll", "--irq-suspend-us", "100"];
    let x = Xdpipe::spawn(&tb.rx_ns, &args);
    let (code, out, err) = x.finish(Duration::from_secs(20));
    assert_ne!(code, Some(0), "{out}\n{err}");
    assert!(err.contains("irq-suspend-timeout") && err.contains("reports no NAPI"), "{err}");
    assert!(!xdp_attached(&tb.rx_ns, RX_IFACE), "the program was left attached");
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
