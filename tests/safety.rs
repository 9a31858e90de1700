//! Safe on a shared lab machine: refusals with clear messages and nothing attached, the
//! capabilities dropped after setup, faults while running (interface down/up, the peer
//! namespace deleted), counts that add up past the receiver's limit, and SIGKILL followed
//! by `xdpipe cleanup`.
mod common;

use std::{process::Command, thread, time::Duration};

use common::*;

fn ip_ok(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip");
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Runs `xdpipe ARGS` in `ns` to completion and asserts it fails with `needle` on stderr,
/// without panicking and with no program left on xp-rx.
fn refused(ns: &str, args: &[&str], needle: &str) {
    let (code, _, err) = Xdpipe::spawn(ns, args).finish(Duration::from_secs(20));
    assert_ne!(code, Some(0), "{args:?} must fail");
    assert!(err.contains(needle), "{args:?}: expected {needle:?} in:\n{err}");
    assert!(!err.contains("panicked"), "{args:?} panicked:\n{err}");
}

#[test]
fn the_uplink_is_refused_unless_asked_for() {
    if !privileged() {
        return;
    }
    let tb = testbed(1);
    ip_ok(&["-n", &tb.rx_ns, "route", "add", "default", "via", TX_IP, "dev", RX_IFACE]);
    refused(
        &tb.rx_ns,
        &["run", "-i", RX_IFACE, "-d", "1"],
        "looks like this machine's uplink (it carries the default route",
    );
    assert!(!xdp_attached(&tb.rx_ns, RX_IFACE));
    refused(
        &tb.rx_ns,
        &["gen", "-i", RX_IFACE, "--src-ip", RX_IP, "--dst-ip", TX_IP, "-n", "1"],
        "--i-know-this-is-my-uplink",
    );
    let s = Xdpipe::spawn(&tb.rx_ns, &["run", "-i", RX_IFACE, "-d", "1", "--json", "--i-know-this-is-my-uplink"])
        .summary(Duration::from_secs(20));
    assert_eq!(s["end"]["reason"], "duration");
}

/// `uplink_reason(iface)` inside namespace `ns`.
fn uplink_in(ns: &str, iface: &str) -> Option<String> {
    xdpipe::net::ns::with_netns(ns, || Ok(xdpipe::preflight::uplink_reason(iface)))
        .expect("entering the namespace")
        .expect("checking the uplink")
}

#[test]
fn a_port_of_a_bridge_carrying_the_default_route_is_refused() {
    if !privileged() {
        return;
    }
    let tb = testbed(1);
    let ns = tb.rx_ns.as_str();
    assert_eq!(uplink_in(ns, RX_IFACE), None);
    ip_ok(&["-n", ns, "link", "add", "xbr0", "type", "bridge"]);
    ip_ok(&["-n", ns, "link", "set", RX_IFACE, "master", "xbr0"]);
    ip_ok(&["-n", ns, "link", "set", "xbr0", "up"]);
    ip_ok(&["-n", ns, "addr", "add", "10.79.0.1/24", "dev", "xbr0"]);
    ip_ok(&["-n", ns, "route", "add", "default", "via", "10.79.0.2", "dev", "xbr0"]);
    let why = uplink_in(ns, RX_IFACE).expect("the bridge port is refused");
    assert!(why.contains("lower device of xbr0, which carries the default route (-4)"), "{why}");
    refused(ns, &["run", "-i", RX_IFACE, "-d", "1"], "lower device of xbr0");
    assert!(!xdp_attached(ns, RX_IFACE));
}

#[test]
fn every_next_hop_of_a_multipath_default_route_is_refused() {
    if !privileged() {
        return;
    }
    let tb = testbed(1);
    let ns = tb.rx_ns.as_str();
    ip_ok(&["-n", ns, "link", "add", "xmp-a", "type", "veth", "peer", "name", "xmp-b"]);
    for l in ["xmp-a", "xmp-b"] {
        ip_ok(&["-n", ns, "link", "set", l, "up"]);
    }
    assert_eq!(uplink_in(ns, "xmp-a"), None);
    // Classic RTA_MULTIPATH next hops.
    ip_ok(&["-n", ns, "route", "add", "default", "nexthop", "dev", RX_IFACE, "nexthop", "dev", "xmp-a"]);
    for l in [RX_IFACE, "xmp-a"] {
        let why = uplink_in(ns, l).unwrap_or_else(|| panic!("{l} is refused"));
        assert!(why.contains("next hop of the multipath default route (-4, over xp-rx, xmp-a)"), "{l}: {why}");
    }
    assert_eq!(uplink_in(ns, "xmp-b"), None, "not a next hop");
    // Nexthop objects: a group of two (the kernel's compat mode lists the hops too).
    ip_ok(&["-n", ns, "route", "del", "default"]);
    ip_ok(&["-n", ns, "nexthop", "add", "id", "71", "dev", RX_IFACE]);
    ip_ok(&["-n", ns, "nexthop", "add", "id", "72", "dev", "xmp-b"]);
    ip_ok(&["-n", ns, "nexthop", "add", "id", "70", "group", "71/72"]);
    ip_ok(&["-n", ns, "route", "add", "default", "nhid", "70"]);
    for l in [RX_IFACE, "xmp-b"] {
        assert!(uplink_in(ns, l).is_some_and(|w| w.contains("multipath")), "{l} is refused (nexthop group)");
    }
    assert_eq!(uplink_in(ns, "xmp-a"), None);
}

/// With the kernel's nexthop compat mode off (`net.ipv4.nexthop_compat_mode=0`, set in
/// the test's own namespace), a route naming a nexthop object carries only RTA_NH_ID: the
/// devices are found in the nexthop table, for one object and for each member of a group,
/// IPv4 and IPv6.
#[test]
fn default_routes_by_nexthop_object_are_followed_without_compat_mode() {
    if !privileged() {
        return;
    }
    let tb = testbed(1);
    let ns = tb.rx_ns.as_str();
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "sysctl", "-w", "net.ipv4.nexthop_compat_mode=0"])
        .output()
        .expect("sysctl");
    assert!(out.status.success(), "sysctl: {}", String::from_utf8_lossy(&out.stderr));
    // veth pairs (this kernel may have no dummy driver), up on both ends for a carrier
    // (a nexthop needs one).
    for (l, addr) in [("xnh-a", "10.81.0.1/24"), ("xnh-b", "10.81.1.1/24")] {
        let peer = format!("{l}p");
        ip_ok(&["-n", ns, "link", "add", l, "type", "veth", "peer", "name", &peer]);
        ip_ok(&["-n", ns, "link", "set", &peer, "up"]);
        ip_ok(&["-n", ns, "link", "set", l, "up"]);
        ip_ok(&["-n", ns, "addr", "add", addr, "dev", l]);
    }
    assert_eq!(uplink_in(ns, "xnh-a"), None);
    ip_ok(&["-n", ns, "nexthop", "add", "id", "10", "dev", "xnh-a"]);
    ip_ok(&["-n", ns, "route", "add", "default", "nhid", "10"]);
    // Compat mode off: the route as dumped names only the object (no RTA_OIF).
    let mode = Command::new("ip")
        .args(["netns", "exec", ns, "sysctl", "-n", "net.ipv4.nexthop_compat_mode"])
        .output()
        .expect("sysctl");
    assert_eq!(String::from_utf8_lossy(&mode.stdout).trim(), "0", "compat mode still on in {ns}");
    let why = uplink_in(ns, "xnh-a").expect("the nexthop object's device is refused");
    assert!(why.contains("carries the default route (-4, nexthop 10)"), "{why}");
    refused(ns, &["run", "-i", "xnh-a", "-d", "1"], "nexthop 10");
    assert_eq!(uplink_in(ns, "xnh-b"), None, "not the nexthop's device");
    // A group of two devices: both are refused.
    ip_ok(&["-n", ns, "route", "del", "default"]);
    ip_ok(&["-n", ns, "nexthop", "add", "id", "11", "dev", "xnh-b"]);
    ip_ok(&["-n", ns, "nexthop", "add", "id", "12", "group", "10/11"]);
    ip_ok(&["-n", ns, "route", "add", "default", "nhid", "12"]);
    for l in ["xnh-a", "xnh-b"] {
        let why = uplink_in(ns, l).unwrap_or_else(|| panic!("{l} is refused (nexthop group)"));
        assert!(why.contains("multipath default route (-4, nexthop 12, over xnh-a, xnh-b)"), "{l}: {why}");
    }
    assert_eq!(uplink_in(ns, RX_IFACE), None);
    // IPv6: a default route by an IPv6 nexthop object.
    ip_ok(&["-n", ns, "route", "del", "default"]);
    ip_ok(&["-n", ns, "-6", "nexthop", "add", "id", "13", "dev", "xnh-b"]);
    ip_ok(&["-n", ns, "-6", "route", "add", "default", "nhid", "13"]);
    let why = uplink_in(ns, "xnh-b").expect("the IPv6 default's nexthop device is refused");
    assert!(why.contains("carries the default route (-6, nexthop 13)"), "{why}");
    assert_eq!(uplink_in(ns, "xnh-a"), None);
}

#[test]
fn an_ssh_session_found_without_its_environment_is_refused() {
    if !privileged() {
        return;
    }
    let tb = testbed(1);
    let (rx_ns, tx_ns) = (tb.rx_ns.clone(), tb.tx_ns.clone());
    assert_eq!(uplink_in(&rx_ns, RX_IFACE), None);
    // An sshd stand-in on port 22 in the receiver's namespace, a client in the peer's.
    let (listening, listener) = std::sync::mpsc::channel();
    let server = thread::spawn(move || {
        xdpipe::sys::enter_netns(&rx_ns).expect("entering the receiver namespace");
        let l = std::net::TcpListener::bind((RX_IP, 22)).expect("listening on port 22");
        listening.send(()).unwrap();
        l.accept().expect("accepting").0
    });
    listener.recv_timeout(Duration::from_secs(10)).expect("the listener is up");
    let client = thread::spawn(move || {
        xdpipe::sys::enter_netns(&tx_ns).expect("entering the peer namespace");
        std::net::TcpStream::connect((RX_IP, 22)).expect("connecting to port 22")
    })
    .join()
    .unwrap();
    let conn = server.join().unwrap();
    let why = uplink_in(&tb.rx_ns, RX_IFACE).expect("the session's interface is refused");
    assert!(why.contains(&format!("it has {RX_IP}, the address of the SSH session from {TX_IP}")), "{why}");
    // The client's side has no session to port 22 of its own.
    assert_eq!(uplink_in(&tb.tx_ns, TX_IFACE), None);
    // Without SSH_CONNECTION in the child's environment, as under sudo.
    let (code, _, err) = Xdpipe::spawn(&tb.rx_ns, &["run", "-i", RX_IFACE, "-d", "1"]).finish(Duration::from_secs(20));
    assert_ne!(code, Some(0));
    assert!(err.contains("the address of the SSH session"), "{err}");
    drop((conn, client));
    thread::sleep(Duration::from_millis(100));
}

/// Builds a one-instruction XDP_PASS object with clang (installed by scripts/setup.sh).
fn foreign_object() -> std::path::PathBuf {
    let dir = xdpipe::sys::private_temp_dir("xdpipe-foreign").expect("a private temporary directory");
    let c = dir.join("pass.c");
    let o = dir.join("pass.o");
    std::fs::write(
        &c,
        "__attribute__((section(\"xdp\"), used)) int foreign_pass(void *ctx) { return 2; }\n\
         char _license[] __attribute__((section(\"license\"), used)) = \"GPL\";\n",
    )
    .unwrap();
    let st =
        Command::new("clang").args(["-O2", "-target", "bpf", "-c"]).arg(&c).arg("-o").arg(&o).status().expect("clang");
    assert!(st.success(), "clang could not build the foreign test program");
    o
}

#[test]
fn another_program_is_refused_and_replaced_only_with_force() {
    if !privileged() {
        return;
    }
    let tb = testbed(1);
    let obj = foreign_object();
    ip_ok(&["-n", &tb.rx_ns, "link", "set", "dev", RX_IFACE, "xdpgeneric", "obj", obj.to_str().unwrap(), "sec", "xdp"]);
    let _ = std::fs::remove_dir_all(obj.parent().expect("the object is in its private directory"));
    refused(&tb.rx_ns, &["run", "-i", RX_IFACE, "-d", "1"], "already has an XDP program attached");
    refused(&tb.rx_ns, &["run", "-i", RX_IFACE, "-d", "1"], "\"foreign_pass\", generic mode");
    assert!(xdp_attached(&tb.rx_ns, RX_IFACE), "the foreign program must be left alone");
    let s = Xdpipe::spawn(&tb.rx_ns, &["run", "-i", RX_IFACE, "-d", "1", "--json", "--force"])
        .summary(Duration::from_secs(20));
    assert_eq!(s["end"]["reason"], "duration");
    assert!(!xdp_attached(&tb.rx_ns, RX_IFACE), "--force detached the foreign program and xdpipe its own");
}

#[test]
fn a_program_held_by_a_link_cannot_be_forced_off() {
    if !privileged() {
        return;
    }
    let tb = testbed(1);
    let first = Xdpipe::start(&tb.rx_ns, &["run", "-i", RX_IFACE, "--poll", "100", "--json"]);
    refused(&tb.rx_ns, &["run", "-i", RX_IFACE, "-d", "1"], "\"xdpipe_steer\"");
    refused(&tb.rx_ns, &["run", "-i", RX_IFACE, "-d", "1", "--force"], "held by a BPF link of a running process");
    first.signal(libc::SIGINT);
    let s = first.summary(Duration::from_secs(10));
    assert_eq!(s["end"]["reason"], "stopped", "the first run is unharmed");
}

#[test]
fn native_mode_on_a_driver_without_it_is_refused() {
    if !privileged() {
        return;
    }
    let tb = testbed(1);
    ip_ok(&["-n", &tb.rx_ns, "link", "set", "dev", "lo", "mtu", "1500"]);
    refused(&tb.rx_ns, &["run", "-i", "lo", "--xdp-mode", "native", "-d", "1"], "has no native XDP support");
    assert!(!xdp_attached(&tb.rx_ns, "lo"));
}

#[test]
fn an_mtu_beyond_the_frame_is_refused() {
    if !privileged() {
        return;
    }
    let tb = testbed(1);
    // Past one UMEM frame, frames arrive multi-buffer: up to 18 UMEM frames of 1792 B
    // with --frame-size 2048, so 32238 B is the largest MTU.
    ip_ok(&["-n", &tb.rx_ns, "link", "set", "dev", RX_IFACE, "mtu", "40000"]);
    refused(&tb.rx_ns, &["run", "-i", RX_IFACE, "--frame-size", "2048", "-d", "1"], "has MTU 40000");
    refused(&tb.rx_ns, &["run", "-i", RX_IFACE, "--frame-size", "2048", "-d", "1"], "mtu 32238");
    assert!(!xdp_attached(&tb.rx_ns, RX_IFACE));
}

#[test]
fn sizes_and_users_out_of_range_are_refused() {
    if !privileged() {
        return;
    }
    let tb = testbed(1);
    refused(
        &tb.tx_ns,
        &["gen", "-i", TX_IFACE, "--src-ip", TX_IP, "--dst-ip", RX_IP, "--size", "10"],
        "at least 62 bytes",
    );
    refused(
        &tb.tx_ns,
        &["gen", "-i", TX_IFACE, "--src-ip", TX_IP, "--dst-ip", RX_IP, "--size", "9000"],
        "exceeds the MTU of xp-tx (1500 B, so at most 1518 B per frame with FCS); lower --size or raise the MTU",
    );
    refused(
        &tb.tx_ns,
        &["gen", "-i", TX_IFACE, "--src-ip", TX_IP, "--dst-ip", RX_IP, "--rate", "fast"],
        "rate \"fast\"",
    );
    refused(&tb.rx_ns, &["run", "-i", RX_IFACE, "--cores", "0,0", "-q", "0", "-d", "1"], "listed twice");
    refused(
        &tb.tx_ns,
        &["gen", "-i", TX_IFACE, "--src-ip", TX_IP, "--dst-ip", RX_IP, "--tx-budget", "16"],
        "--tx-budget 16: out of range",
    );
    refused(&tb.rx_ns, &["run", "-i", RX_IFACE, "--tx-ring", "256", "--tx-budget", "512", "-d", "1"], "use 32 to 256");
    refused(&tb.rx_ns, &["run", "-i", RX_IFACE, "--poll", "soon", "-d", "1"], "poll timeout \"soon\"");
    let out = Command::new("ip")
        .args(["netns", "exec", &tb.rx_ns, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", XDPIPE])
        .args(["run", "-i", RX_IFACE, "-d", "1"])
        .output()
        .expect("setpriv");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("must run as root"), "unprivileged run: {err}");
}

/// CapEff and CapPrm of the worker threads (`xdpipe-q*`) of `pid`.
fn cap_lines(pid: i32) -> Vec<String> {
    let mut lines = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("tasks") {
        let task = task.unwrap().path();
        if !std::fs::read_to_string(task.join("comm")).is_ok_and(|c| c.starts_with("xdpipe-q")) {
            continue;
        }
        let status = std::fs::read_to_string(task.join("status")).unwrap_or_default();
        for l in status.lines().filter(|l| l.starts_with("CapEff") || l.starts_with("CapPrm")) {
            lines.push(l.to_owned());
        }
    }
    lines
}

#[test]
fn capabilities_are_dropped_after_setup() {
    if !privileged() {
        return;
    }
    let tb = testbed(1);
    let x = Xdpipe::start(&tb.rx_ns, &["run", "-i", RX_IFACE, "--poll", "100", "--json"]);
    thread::sleep(Duration::from_millis(200));
    let lines = cap_lines(x.pid());
    assert_eq!(lines.len(), 2, "one worker's CapEff and CapPrm: {lines:?}");
    for l in &lines {
        // Nothing is left: the counters are read through the map fd the setup thread holds.
        assert!(l.ends_with("0000000000000000"), "capability left after setup: {l}");
    }
    send_udp(&tb, 100, 18000, 18);
    x.signal(libc::SIGINT);
    let s = x.summary(Duration::from_secs(10));
    assert_eq!(u(&s, "rx_packets"), 100);
    assert_eq!(u(&s, "program.redirected"), 100, "counters still readable after the drop");
}

#[test]
fn interface_down_and_up_is_reported_and_survived() {
    if !privileged() {
        return;
    }
    let tb = testbed(1);
    let x = Xdpipe::start(&tb.rx_ns, &["run", "-i", RX_IFACE, "--xdp-mode", "native", "--poll", "50", "--json"]);
    send_udp(&tb, 500, 18000, 18);
    ip_ok(&["-n", &tb.rx_ns, "link", "set", RX_IFACE, "down"]);
    thread::sleep(Duration::from_millis(300));
    ip_ok(&["-n", &tb.rx_ns, "link", "set", RX_IFACE, "up"]);
    thread::sleep(Duration::from_millis(500));
    send_udp(&tb, 500, 18000, 18);
    thread::sleep(Duration::from_millis(200));
    x.signal(libc::SIGINT);
    let s = x.summary(Duration::from_secs(10));
    // Every frame is accounted for: received, or dropped by the socket with a named
    // reason (right after the link comes back, a few can meet an empty fill ring).
    let st = &s["queues"][0]["xdp_statistics"];
    assert_eq!(u(&s, "program.redirected"), 1000, "{s}");
    assert_eq!(u(&s, "rx_packets") + u(st, "rx_dropped") + u(st, "rx_ring_full"), 1000, "{s}");
    assert!(u(&s, "rx_packets") > 900, "traffic resumed after the link came back; {s}");
    let events = s["events"].to_string();
    assert!(events.contains("xp-rx down") && events.contains("xp-rx up"), "events: {events}");
}

#[test]
fn the_peer_namespace_disappearing_ends_the_run_cleanly() {
    if !privileged() {
        return;
    }
    let mut tb = testbed(1);
    let x = Xdpipe::start(&tb.rx_ns, &["run", "-i", RX_IFACE, "--xdp-mode", "native", "--poll", "50", "--json"]);
    send_udp(&tb, 200, 18000, 18);
    thread::sleep(Duration::from_millis(200));
    // Deleting the generator's namespace destroys the veth pair, xp-rx included.
    ip_ok(&["netns", "del", &tb.tx_ns]);
    let (code, out, err) = x.finish(Duration::from_secs(10));
    assert_eq!(code, Some(4), "exit code 4 (interface gone); stderr:\n{err}");
    assert!(err.contains("xp-rx disappeared"), "{err}");
    let s: serde_json::Value = serde_json::from_str(out.trim()).expect("the summary still comes");
    assert_eq!(s["end"]["reason"], "interface_gone");
    // Frames still in the RX ring when the device went are lost with it; how many the
    // worker took before depends on scheduling (tests run in parallel).
    let got = u(&s, "rx_packets");
    assert!(got > 0 && got <= 200, "received {got} of 200; {s}");
    tb.destroy();
}

#[test]
fn counts_add_up_past_the_receivers_limit() {
    if !privileged() {
        return;
    }
    const N: u64 = 1_000_000;
    let tb = testbed(1);
    // Tiny rings and few frames: the in-kernel generator overruns the receiver.
    let x = Xdpipe::start(
        &tb.rx_ns,
        &[
            "run",
            "-i",
            RX_IFACE,
            "--xdp-mode",
            "native",
            "--rx-ring",
            "64",
            "--fill-ring",
            "64",
            "--frames",
            "128",
            "--json",
        ],
    );
    let g = Command::new("ip")
        .args(["netns", "exec", &tb.tx_ns, XDPIPE, "gen", "-i", TX_IFACE, "--engine", "xdp-live"])
        .args(["--dst-mac", &xdpipe::testbed::fmt_mac(&tb.rx_mac), "--src-ip", TX_IP, "--dst-ip", RX_IP])
        .args(["--count", &N.to_string(), "--json"])
        .output()
        .expect("gen");
    assert!(g.status.success(), "gen: {}", String::from_utf8_lossy(&g.stderr));
    let gs: serde_json::Value = serde_json::from_slice(&g.stdout).unwrap();
    assert_eq!(u(&gs, "sent"), N);
    thread::sleep(Duration::from_millis(300));
    x.signal(libc::SIGINT);
    let s = x.summary(Duration::from_secs(10));
    let st = &s["queues"][0]["xdp_statistics"];
    let dropped = u(st, "rx_dropped") + u(st, "rx_ring_full");
    // Frames the veth could not take from the generator never reach the program.
    let veth = Command::new("ip").args(["netns", "exec", &tb.tx_ns, "ethtool", "-S", TX_IFACE]).output().unwrap();
    let xmit_err: u64 = String::from_utf8_lossy(&veth.stdout)
        .lines()
        .filter(|l| l.contains("xdp_xmit_err"))
        .filter_map(|l| l.rsplit(':').next()?.trim().parse::<u64>().ok())
        .sum();
    assert_eq!(u(&s, "program.matched") + xmit_err, N, "sent = seen by the program + veth xmit errors; {s}");
    assert_eq!(u(&s, "program.redirected"), u(&s, "program.matched"));
    assert_eq!(u(&s, "rx_packets") + dropped, u(&s, "program.redirected"), "redirected = received + socket drops; {s}");
    assert!(dropped > 0, "the test must actually overrun the receiver; {s}");
}

#[test]
fn sigkill_leaves_only_what_cleanup_removes() {
    if !privileged() {
        return;
    }
    // xdpipe veth builds a testbed and two children; SIGKILL it mid-run.
    let mut v =
        Command::new(XDPIPE).args(["veth", "-d", "30", "--rate", "10kpps", "--poll", "50"]).spawn().expect("veth");
    let pid = v.id() as i32;
    let mut ns = Vec::new();
    for _ in 0..100 {
        thread::sleep(Duration::from_millis(100));
        ns = xdpipe::testbed::xdpipe_namespaces()
            .into_iter()
            .filter(|n| n.starts_with(&format!("xdpipe-v{pid}x")))
            .collect();
        if ns.len() == 2 && ns.iter().all(|n| xdp_attached_any(n)) {
            break;
        }
    }
    assert_eq!(ns.len(), 2, "the veth testbed did not come up: {ns:?}");
    thread::sleep(Duration::from_millis(500));
    v.kill().unwrap();
    v.wait().unwrap();
    thread::sleep(Duration::from_millis(500));
    // The children died with their parent: nothing is attached any more.
    let rx_ns = ns.iter().find(|n| n.ends_with("-rx")).unwrap();
    for _ in 0..50 {
        if !xdp_attached(rx_ns, RX_IFACE) {
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    assert!(!xdp_attached(rx_ns, RX_IFACE), "the receiver outlived a SIGKILLed xdpipe veth");
    let (code, _, err) = xdpipe_once(&["cleanup"]);
    assert_eq!(code, Some(0), "{err}");
    for n in &ns {
        assert!(err.contains(&format!("removed namespace {n}")), "cleanup did not remove {n}:\n{err}");
    }
    let left: Vec<_> = xdpipe::testbed::xdpipe_namespaces().into_iter().filter(|n| ns.contains(n)).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

fn xdp_attached_any(ns: &str) -> bool {
    if ns.ends_with("-rx") { xdp_attached(ns, RX_IFACE) } else { true }
}

#[test]
fn the_generator_dying_leaves_the_receiver_running_and_ending_cleanly() {
    if !privileged() {
        return;
    }
    let tb = testbed(1);
    let x = Xdpipe::start(
        &tb.rx_ns,
        &["run", "-i", RX_IFACE, "--xdp-mode", "native", "--poll", "50", "--stamps", "--json"],
    );
    let mut g = Command::new("ip")
        .args([
            "netns",
            "exec",
            &tb.tx_ns,
            XDPIPE,
            "gen",
            "-i",
            TX_IFACE,
            "--dst-mac",
            &xdpipe::testbed::fmt_mac(&tb.rx_mac),
        ])
        .args(["--src-ip", TX_IP, "--dst-ip", RX_IP, "--rate", "20kpps", "--duration", "30"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("gen");
    thread::sleep(Duration::from_millis(800));
    g.kill().unwrap();
    g.wait().unwrap();
    thread::sleep(Duration::from_millis(500));
    assert!(xdp_attached(&tb.rx_ns, RX_IFACE), "the receiver keeps running without traffic");
    x.signal(libc::SIGINT);
    let s = x.summary(Duration::from_secs(10));
    assert_eq!(s["end"]["reason"], "stopped");
    let got = u(&s, "rx_packets");
    assert!(got > 1000, "frames before the generator died were counted: {got}");
    // The stamps show one flow whose sequence has no gaps up to where it stopped.
    assert_eq!(u(&s, "accounting.stamped"), got);
    assert_eq!(u(&s, "accounting.lost_in_sequence"), 0, "{s}");
}
