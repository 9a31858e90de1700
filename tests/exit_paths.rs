//! Every way out of `veth`, `bench`, `run` and `gen` (signals to the process or its
//! group, a second signal, SIGHUP) ends the command in time and leaves nothing: no
//! namespace of its own, no XDP program, no QEMU. Each test runs the real binary and
//! finds what is its own by the child's pid (`xdpipe veth` names its testbeds
//! `v<pid>x<n>`).
mod common;

use std::{
    os::unix::process::CommandExt as _,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use common::*;

fn kill(pid: i32, sig: i32) {
    // SAFETY: kill(2) on a child of ours (or its process group, -pid).
    #[allow(unsafe_code)]
    let rc = unsafe { libc::kill(pid, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig})");
}

/// The namespaces of xdpipe process `pid`'s testbeds.
fn own_namespaces(pid: u32) -> Vec<String> {
    let p = format!("xdpipe-v{pid}x");
    xdpipe::testbed::xdpipe_namespaces().into_iter().filter(|n| n.starts_with(&p)).collect()
}

/// Waits until `pid` has a testbed with an XDP program on its receiving end.
fn wait_for_testbed(child: &mut Child, within: Duration) -> Vec<String> {
    let pid = child.id();
    let t0 = Instant::now();
    while t0.elapsed() < within {
        if let Some(st) = child.try_wait().unwrap() {
            panic!("xdpipe ended ({st}) before its testbed came up");
        }
        let ns = own_namespaces(pid);
        if let Some(rx) = ns.iter().find(|n| n.ends_with("-rx"))
            && ns.len() == 2
            && xdp_attached(rx, RX_IFACE)
        {
            return ns;
        }
        thread::sleep(Duration::from_millis(50));
    }
    panic!("no testbed of xdpipe {pid} came up within {within:?}");
}

/// Waits for `child` to exit within `within`; returns its exit code.
fn exits_within(child: &mut Child, within: Duration) -> Option<i32> {
    let t0 = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st.code();
        }
        if t0.elapsed() > within {
            let _ = child.kill();
            let _ = child.wait();
            panic!("xdpipe did not exit within {within:?} of the signal");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

enum Target {
    Pid,
    Group,
}

/// `xdpipe veth` mid-run gets `sigs` (one after the other, right away) sent to `target`;
/// it must end within 5 s of the first and leave no namespace of its own. Returns its
/// exit code.
fn veth_signalled(sigs: &[i32], target: Target) -> Option<i32> {
    let mut cmd = Command::new(XDPIPE);
    cmd.args(["veth", "-d", "60", "--rate", "10kpps", "--poll", "50"]).stdout(Stdio::null());
    if matches!(target, Target::Group) {
        cmd.process_group(0);
    }
    let mut v = cmd.spawn().expect("spawning xdpipe veth");
    let pid = v.id();
    let ns = wait_for_testbed(&mut v, Duration::from_secs(30));
    let to = match target {
        Target::Pid => pid as i32,
        Target::Group => -(pid as i32),
    };
    for &s in sigs {
        kill(to, s);
    }
    let code = exits_within(&mut v, Duration::from_secs(5));
    let left = own_namespaces(pid);
    assert!(left.is_empty(), "after signals {sigs:?}, xdpipe veth left {left:?} (it had {ns:?})");
    for n in &ns {
        assert!(
            !std::path::Path::new(&format!(
                "{}/{}",
                xdpipe::testbed::OWNER_DIR,
                xdpipe::testbed::testbed_of(n).unwrap()
            ))
            .exists(),
            "the owner record of {n} was left behind"
        );
    }
    code
}

#[test]
fn veth_sigterm_to_the_pid_alone() {
    if !privileged() {
        return;
    }
    veth_signalled(&[libc::SIGTERM], Target::Pid);
}

#[test]
fn veth_sigint() {
    if !privileged() {
        return;
    }
    veth_signalled(&[libc::SIGINT], Target::Pid);
}

#[test]
fn veth_sigterm_to_the_group() {
    if !privileged() {
        return;
    }
    veth_signalled(&[libc::SIGTERM], Target::Group);
}

#[test]
fn veth_sighup() {
    if !privileged() {
        return;
    }
    veth_signalled(&[libc::SIGHUP], Target::Pid);
}

#[test]
fn veth_second_signal_right_after_the_first_exits_130_after_undoing() {
    if !privileged() {
        return;
    }
    let code = veth_signalled(&[libc::SIGINT, libc::SIGTERM], Target::Pid);
    // Either the second signal's teardown (130) or, if the first was fast enough, the
    // normal end; in both cases nothing is left (checked above).
    assert!(matches!(code, Some(130) | Some(0)), "exit {code:?}");
}

/// `xdpipe run` (or gen) in a testbed, stopped by `sig`: ends, leaves no XDP program.
fn stopped_by(sig: i32, args: &[&str], ns_of: fn(&Testbed) -> &str, iface: &str) {
    let tb = testbed(1);
    let ns = ns_of(&tb).to_owned();
    let x = Xdpipe::start(&ns, args);
    // The signal goes to xdpipe itself: `ip netns exec` execs it, same pid.
    x.signal(sig);
    let (code, _, err) = x.finish(Duration::from_secs(5));
    assert!(code.is_some(), "xdpipe was killed by a signal instead of ending: {err}");
    assert!(!xdp_attached(&ns, iface), "an XDP program is left on {iface} after signal {sig}:\n{err}");
}

const RUN: &[&str] = &["run", "-i", RX_IFACE, "--xdp-mode", "native", "--poll", "50", "-d", "60"];
const GEN: &[&str] = &["gen", "-i", TX_IFACE, "--src-ip", TX_IP, "--dst-ip", RX_IP, "--rate", "10kpps", "-d", "60"];

#[test]
fn run_sigterm_and_sigint_leave_no_program() {
    if !privileged() {
        return;
    }
    stopped_by(libc::SIGTERM, RUN, |t| &t.rx_ns, RX_IFACE);
    stopped_by(libc::SIGINT, RUN, |t| &t.rx_ns, RX_IFACE);
    stopped_by(libc::SIGHUP, RUN, |t| &t.rx_ns, RX_IFACE);
}

#[test]
fn gen_sigterm_and_sigint_leave_no_program() {
    if !privileged() {
        return;
    }
    stopped_by(libc::SIGTERM, GEN, |t| &t.tx_ns, TX_IFACE);
    stopped_by(libc::SIGINT, GEN, |t| &t.tx_ns, TX_IFACE);
}

#[test]
fn bench_veth_sigint_mid_run_exits_130_and_leaves_no_namespace() {
    if !privileged() {
        return;
    }
    let out = xdpipe::sys::private_temp_dir("xdpipe-exit-bench").unwrap();
    let mut b = Command::new(XDPIPE)
        .args(["bench", "--sizes", "64", "--xdp-modes", "native", "--trials", "20", "--trial-secs", "2"])
        .args(["--no-search", "--latency-fraction", "0", "--anchors", "off", "--out"])
        .arg(&out)
        .stdout(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("spawning xdpipe bench");
    let pid = b.id();
    wait_for_testbed(&mut b, Duration::from_secs(60));
    // Ctrl-C at a terminal: SIGINT to the whole group.
    kill(-(pid as i32), libc::SIGINT);
    let code = exits_within(&mut b, Duration::from_secs(10));
    assert_eq!(code, Some(130));
    assert!(own_namespaces(pid).is_empty(), "bench left {:?}", own_namespaces(pid));
    let _ = std::fs::remove_dir_all(&out);
}

/// Kills the process group of a test's xdpipe if the test fails half-way.
struct Reap(i32);

impl Drop for Reap {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group of our own child; ESRCH once it ended.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(-self.0, libc::SIGKILL)
        };
    }
}

/// QEMU processes whose command line names `state`.
fn qemu_of(state: &str) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(Result::ok)
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            (cmd.contains("qemu-system") && cmd.contains(state)).then_some(pid)
        })
        .collect()
}

#[test]
fn bench_vm_igb_ctrl_c_leaves_no_qemu_and_no_namespace() {
    if !privileged() {
        return;
    }
    let before: Vec<String> =
        xdpipe::testbed::xdpipe_namespaces().into_iter().filter(|n| n.starts_with("xdpipe-vm-")).collect();
    let out = xdpipe::sys::private_temp_dir("xdpipe-exit-vm").unwrap();
    let mut b = Command::new(XDPIPE)
        .args(["bench", "--target", "vm:igb", "--sizes", "64", "--trials", "5", "--trial-secs", "3"])
        .args(["--no-search", "--latency-fraction", "0", "--out"])
        .arg(&out)
        .stdout(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("spawning xdpipe bench --target vm:igb");
    let pid = b.id();
    let _reap = Reap(pid as i32);
    // The guest's namespace appears when guest.sh start has made it (before the boot);
    // its owner record names the state directory.
    let t0 = Instant::now();
    let mine = loop {
        if let Some(st) = b.try_wait().unwrap() {
            panic!("xdpipe bench ended ({st}) before the guest's namespace appeared");
        }
        // Ours is the new guest namespace whose owner record names this bench (another
        // guest may be starting on the machine at the same time).
        let ours = |n: &String| {
            std::fs::read_to_string(format!("/run/xdpipe/vms/{n}"))
                .is_ok_and(|r| r.split_whitespace().next() == Some(pid.to_string().as_str()))
        };
        let now: Vec<String> = xdpipe::testbed::xdpipe_namespaces()
            .into_iter()
            .filter(|n| n.starts_with("xdpipe-vm-") && !before.contains(n) && ours(n))
            .collect();
        if let Some(n) = now.into_iter().next() {
            break n;
        }
        assert!(t0.elapsed() < Duration::from_secs(300), "no guest namespace within 300 s");
        thread::sleep(Duration::from_millis(100));
    };
    // Its record names the state directory, which QEMU's command line carries.
    let record = std::fs::read_to_string(format!("/run/xdpipe/vms/{mine}")).expect("the guest's owner record");
    let state = record.split_whitespace().last().expect("record: pid start state").to_owned();
    assert_eq!(record.split_whitespace().next(), Some(pid.to_string().as_str()), "{record}");
    // Wait for the guest's agent (share/ready), then for the bench job in the guest to
    // run for a few seconds, then Ctrl-C: the stop must reach the job, QEMU and the
    // namespace, not only a boot.
    let ready = std::path::Path::new(&state).join("share/ready");
    while !ready.exists() {
        if let Some(st) = b.try_wait().unwrap() {
            panic!("xdpipe bench ended ({st}) before the guest was ready");
        }
        assert!(t0.elapsed() < Duration::from_secs(400), "the guest was not ready within 400 s");
        thread::sleep(Duration::from_millis(200));
    }
    thread::sleep(Duration::from_secs(5));
    assert!(!qemu_of(&state).is_empty(), "no QEMU found for {state} while the guest runs");
    kill(-(pid as i32), libc::SIGINT);
    let code = exits_within(&mut b, Duration::from_secs(40));
    assert_eq!(code, Some(130));
    let t1 = Instant::now();
    while !qemu_of(&state).is_empty() && t1.elapsed() < Duration::from_secs(5) {
        thread::sleep(Duration::from_millis(100));
    }
    assert!(qemu_of(&state).is_empty(), "QEMU of {state} still runs: {:?}", qemu_of(&state));
    assert!(!xdpipe::testbed::xdpipe_namespaces().contains(&mine), "{mine} was left behind");
    assert!(!std::path::Path::new(&format!("/run/xdpipe/vms/{mine}")).exists(), "its record was left behind");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn cleanup_removes_only_testbeds_whose_recorded_owner_is_gone() {
    if !privileged() {
        return;
    }
    use xdpipe::testbed::{OWNER_DIR, identity, unique_name, write_record};
    let me = identity(std::process::id()).unwrap();
    let pid = std::process::id();
    let (no_record, recycled, running) = (unique_name("c"), unique_name("c"), unique_name("c"));
    for n in [&no_record, &recycled, &running] {
        assert!(Command::new("ip").args(["netns", "add", &format!("xdpipe-{n}-rx")]).status().unwrap().success());
    }
    // Our own pid with another start time: the pid was recycled, the owner is gone.
    let start: u64 = me.split_whitespace().nth(1).unwrap().parse().unwrap();
    write_record(OWNER_DIR, &recycled, &format!("{pid} {}", start + 1)).unwrap();
    write_record(OWNER_DIR, &running, &me).unwrap();
    let (code, _, err) = xdpipe_once(&["cleanup"]);
    assert_eq!(code, Some(0), "{err}");
    let left = xdpipe::testbed::xdpipe_namespaces();
    let gone = |n: &str| !left.contains(&format!("xdpipe-{n}-rx"));
    let (a, b, c) = (gone(&no_record), gone(&recycled), gone(&running));
    for n in [&no_record, &running] {
        let _ = Command::new("ip").args(["netns", "del", &format!("xdpipe-{n}-rx")]).status();
        xdpipe::testbed::forget_owner(n);
    }
    assert!(!a, "a namespace without an owner record was removed:\n{err}");
    assert!(err.contains("no owner record"), "{err}");
    assert!(b, "the testbed whose recorded start time differs was kept:\n{err}");
    assert!(!c, "the testbed of a running owner was removed:\n{err}");
    assert!(!std::path::Path::new(&format!("{OWNER_DIR}/{recycled}")).exists(), "its record was kept");
}

#[test]
fn offload_guard_restores_exactly_what_it_turned_off() {
    if !privileged() {
        return;
    }
    use xdpipe::net::ethtool::{OffloadGuard, features};
    let tb = testbed(1);
    let wanted = ["rx-checksum", "rx-gro", "rx-lro", "rx-gro-hw", "rx-vlan-hw-parse", "rx-hashing"];
    xdpipe::net::ns::with_netns(&tb.rx_ns, || {
        let before = features(RX_IFACE)?;
        let g = OffloadGuard::off(RX_IFACE, &wanted)?;
        let during = features(RX_IFACE)?;
        for n in wanted {
            assert!(!during.is_active(n), "{n} still on while the guard holds");
        }
        assert!(!g.restore.on.is_empty(), "veth has rx-checksum on: something must have gone off");
        for n in &g.restore.on {
            assert!(before.is_active(n), "{n} was off before and would be turned on");
        }
        drop(g);
        let after = features(RX_IFACE)?;
        assert_eq!(after.active, before.active, "the features after the guard differ from before");
        Ok(())
    })
    .unwrap();
}

/// `xdpipe run 2>&1 | head -1`: once the reader is gone, the next progress line finds a
/// closed pipe; xdpipe ends with the closed-pipe status (141, as SIGPIPE would give), not
/// a panic, and leaves no program.
#[test]
fn run_whose_output_pipe_closes_exits_141_and_leaves_no_program() {
    use std::io::{BufRead as _, BufReader};
    if !privileged() {
        return;
    }
    let tb = testbed(1);
    let (reader, writer) = std::io::pipe().expect("a pipe");
    let mut child = Command::new("ip")
        .args(["netns", "exec", &tb.rx_ns, XDPIPE, "run", "-i", RX_IFACE, "--xdp-mode", "native", "-d", "30"])
        .stdout(writer.try_clone().expect("the pipe's write end"))
        .stderr(writer)
        .spawn()
        .expect("spawning ip netns exec xdpipe run");
    // The write ends now belong to the child alone: read its first line, then close.
    let mut first = String::new();
    BufReader::new(reader).read_line(&mut first).expect("a first line");
    assert!(!first.is_empty(), "xdpipe printed nothing");
    let code = exits_within(&mut child, Duration::from_secs(10));
    assert_eq!(code, Some(141), "after its reader went, xdpipe should end with 141 (first line: {first})");
    assert!(!xdp_attached(&tb.rx_ns, RX_IFACE), "an XDP program is left on {RX_IFACE} after the closed pipe");
}
