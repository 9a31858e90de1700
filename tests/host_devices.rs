//! The host-device targets (issue 15): each of veth, bridge, macvlan, vxlan and tap
//! counts exactly at a moderate rate, through AF_XDP and through a kernel UDP socket
//! (with the offloads off, so the kernel verifies every UDP checksum), and is removed
//! after a normal end, after SIGINT, and after SIGKILL followed by `xdpipe cleanup`.
//! Each run is the real binary; what is its own is found by the child's pid (`xdpipe
//! veth` names its testbeds `v<pid>x<n>`, the kernel baseline `k<pid>x<n>`).
mod common;

use std::{
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use common::*;

const DEVICES: [(&str, &str); 5] =
    [("veth", "xp-rx"), ("bridge", "xp-rcv"), ("macvlan", "xp-mv"), ("vxlan", "xp-vx"), ("tap", "xp-tap")];

fn own_namespaces(pid: u32) -> Vec<String> {
    let (v, k) = (format!("xdpipe-v{pid}x"), format!("xdpipe-k{pid}x"));
    xdpipe::testbed::xdpipe_namespaces().into_iter().filter(|n| n.starts_with(&v) || n.starts_with(&k)).collect()
}

/// Runs `xdpipe ARGS` to the end; returns (pid, exit code, stdout, stderr).
fn run(args: &[&str]) -> (u32, Option<i32>, String, String) {
    let child = Command::new(XDPIPE).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (pid, out.status.code(), s(&out.stdout), s(&out.stderr))
}

#[test]
fn each_device_counts_exactly_through_af_xdp_and_is_removed_after_a_normal_end() {
    if !privileged() {
        return;
    }
    for (dev, _) in DEVICES {
        let (pid, code, out, err) =
            run(&["veth", "--device", dev, "--xdp-mode", "skb", "--rate", "20kpps", "--count", "5000", "--json"]);
        assert_eq!(code, Some(0), "{dev}: {err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{dev}: {e}: {out}"));
        assert_eq!((u(&v, "sent"), u(&v, "received")), (5000, 5000), "{dev}: {err}");
        assert_eq!(u(&v, "receiver.accounting.duplicates"), 0, "{dev}");
        assert!(own_namespaces(pid).is_empty(), "{dev}: left {:?}", own_namespaces(pid));
    }
}

#[test]
fn tap_counts_exactly_with_native_xdp() {
    if !privileged() {
        return;
    }
    let (_, code, out, err) =
        run(&["veth", "--device", "tap", "--xdp-mode", "native", "--rate", "20kpps", "--count", "5000", "--json"]);
    assert_eq!(code, Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((u(&v, "sent"), u(&v, "received")), (5000, 5000));
    // Generic-only devices refuse native mode with a message that says what to use.
    let (_, code, _, err) = run(&["veth", "--device", "macvlan", "--xdp-mode", "native", "--count", "10"]);
    assert_ne!(code, Some(0));
    assert!(err.contains("no native XDP") && err.contains("--xdp-mode skb"), "{err}");
}

#[test]
fn the_kernel_udp_baseline_counts_exactly_on_each_device_with_checksums_verified() {
    if !privileged() {
        return;
    }
    for (dev, _) in DEVICES {
        let args = [
            "veth",
            "--device",
            dev,
            "--receiver",
            "kernel-udp",
            "--offloads",
            "off",
            "--rate",
            "20kpps",
            "--count",
            "5000",
            "--json",
        ];
        let (pid, code, out, err) = run(&args);
        assert_eq!(code, Some(0), "{dev}: {err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{dev}: {e}: {out}"));
        assert_eq!((u(&v, "sent"), u(&v, "received")), (5000, 5000), "{dev}: {err}");
        assert!(own_namespaces(pid).is_empty(), "{dev}: left {:?}", own_namespaces(pid));
    }
}

/// Spawns a long `xdpipe veth --device DEV` and waits until its receiver runs (XDP on
/// `iface` in its receiver namespace); returns the child and its namespaces.
fn started(dev: &str, iface: &str) -> (Child, Vec<String>) {
    let mut c = Command::new(XDPIPE)
        .args(["veth", "--device", dev, "--xdp-mode", "skb", "-d", "60", "--rate", "10kpps"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(30) {
        if let Some(st) = c.try_wait().unwrap() {
            let _ = c.wait();
            panic!("{dev}: xdpipe ended ({st}) before its receiver came up");
        }
        let ns = own_namespaces(c.id());
        if let Some(rx) = ns.iter().find(|n| n.ends_with("-rx"))
            && ns.len() == 2
            && Command::new("ip")
                .args(["-n", rx, "link", "show", "dev", iface])
                .output()
                .is_ok_and(|o| o.status.success())
            && xdp_attached(rx, iface)
        {
            return (c, ns);
        }
        thread::sleep(Duration::from_millis(50));
    }
    let _ = c.kill();
    let _ = c.wait();
    panic!("{dev}: no receiver on {iface} within 30 s");
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on a child of ours.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::kill(pid as i32, sig) };
    assert_eq!(rc, 0);
}

fn exits_within(c: &mut Child, within: Duration) -> Option<i32> {
    let t0 = Instant::now();
    loop {
        if let Some(st) = c.try_wait().unwrap() {
            return st.code();
        }
        if t0.elapsed() > within {
            let _ = c.kill();
            let _ = c.wait();
            panic!("xdpipe did not exit within {within:?} of the signal");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn each_device_is_removed_after_sigint_and_after_sigkill_then_cleanup() {
    if !privileged() {
        return;
    }
    for (dev, iface) in DEVICES {
        let (mut c, ns) = started(dev, iface);
        signal(c.id(), libc::SIGINT);
        exits_within(&mut c, Duration::from_secs(10));
        for n in &ns {
            assert!(!xdpipe::net::ns::exists(n), "{dev}: {n} left after SIGINT");
        }

        let (mut c, ns) = started(dev, iface);
        signal(c.id(), libc::SIGKILL);
        let _ = c.wait();
        // Killed: nothing ran its teardown, so the namespaces (and their devices) are
        // still there, recorded as orphans, until `xdpipe cleanup`.
        for n in &ns {
            assert!(xdpipe::net::ns::exists(n), "{dev}: {n} vanished without cleanup");
        }
        let (code, _, err) = xdpipe_once(&["cleanup"]);
        assert_eq!(code, Some(0), "{err}");
        for n in &ns {
            assert!(!xdpipe::net::ns::exists(n), "{dev}: {n} left after SIGKILL + cleanup: {err}");
        }
    }
}

/// ipvlan, geneve, netkit and ovs (which this project's host kernel lacks, and the QEMU
/// guest's has): the probe says whether the kernel has the kind, and it is right: where
/// it says no, `xdpipe veth --device D` is refused with a message naming the guest target
/// and builds no namespace; where it says yes, the topology builds. vxlan, which every
/// supported kernel has, proves the probe's yes. The probe leaves no device behind.
#[test]
fn guest_kinds_are_refused_exactly_where_the_kernel_lacks_them() {
    if !privileged() {
        return;
    }
    assert!(xdpipe::net::devices::kind_available("vxlan").unwrap(), "the probe says this kernel has no vxlan");
    for d in xdpipe::topology::Device::ALL {
        let Some(kind) = d.optional_kind() else { continue };
        let has = match xdpipe::topology::check_available(d) {
            Ok(()) => true,
            Err(
                xdpipe::testbed::TestbedError::MissingKind { .. } | xdpipe::testbed::TestbedError::MissingOvs { .. },
            ) => false,
            Err(e) => panic!("{}: {e}", d.name()),
        };
        let tb = xdpipe::testbed::Testbed::create(&xdpipe::testbed::unique_name("g"), 1).unwrap();
        let built = xdpipe::topology::build(&tb, d);
        assert_eq!(has, built.is_ok(), "{}: probe says {has}, building it gave {:?}", d.name(), built.err());
        drop(built);
        drop(tb);
        let (pid, code, _, err) = run(&["veth", "--device", d.name(), "--xdp-mode", "skb", "--count", "100"]);
        if !has {
            assert_eq!(code, Some(1), "{}: {err}", d.name());
            let how = if kind == "openvswitch" {
                "generic netlink family ovs_datapath absent".to_owned()
            } else {
                format!("IFLA_INFO_KIND {kind} refused")
            };
            let want = format!("this kernel has no {kind} ({how}); run it in the guest: --target vm:{}", d.name());
            assert!(err.contains(&want), "{}: {err}", d.name());
            assert!(own_namespaces(pid).is_empty(), "{}: refused but left {:?}", d.name(), own_namespaces(pid));
        }
    }
    let links = Command::new("ip").args(["-br", "link"]).output().unwrap();
    let links = String::from_utf8_lossy(&links.stdout);
    assert!(!links.lines().any(|l| l.starts_with("xpk")), "a probe device was left: {links}");
}
