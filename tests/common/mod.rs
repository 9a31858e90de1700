//! Helpers for the privileged integration tests: each test builds its own veth testbed
//! (unique namespace names, removed on drop), runs the real `xdpipe` binary inside it and
//! sends traffic from the peer namespace.
#![allow(dead_code)]

pub mod vm;

use std::{
    io::{BufRead as _, BufReader},
    net::UdpSocket,
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

#[allow(unused_imports)]
pub use xdpipe::testbed::{RX_IFACE, RX_IP, TX_IFACE, TX_IP, Testbed};

pub const XDPIPE: &str = env!("CARGO_BIN_EXE_xdpipe");

/// True if the test can run. Without root it says why and returns false, except under
/// `CI=true`, where a test that cannot run fails instead of passing silently.
pub fn privileged() -> bool {
    if xdpipe::sys::is_root() {
        return true;
    }
    let why = "needs root (network namespaces, XDP, AF_XDP); run the tests with sudo";
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true and this test cannot run: it {why}");
    }
    eprintln!("SKIPPED: this test {why}");
    false
}

pub fn testbed(queues: u32) -> Testbed {
    let name = xdpipe::testbed::unique_name("t");
    Testbed::create(&name, queues).unwrap_or_else(|e| panic!("creating testbed {name}: {e}"))
}

/// A running `xdpipe` inside a namespace, killed on drop if still running.
pub struct Xdpipe {
    child: Option<Child>,
    stderr: mpsc::Receiver<String>,
    pub log: Vec<String>,
}

impl Xdpipe {
    /// Starts `xdpipe ARGS` in namespace `ns` and waits for its "ready" line.
    pub fn start(ns: &str, args: &[&str]) -> Xdpipe {
        let mut x = Self::spawn(ns, args);
        x.wait_for_line("ready:", Duration::from_secs(30));
        x
    }

    /// Starts `xdpipe ARGS` in namespace `ns` without waiting.
    pub fn spawn(ns: &str, args: &[&str]) -> Xdpipe {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, XDPIPE])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning ip netns exec xdpipe");
        let err = child.stderr.take().expect("stderr piped");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Xdpipe { child: Some(child), stderr: rx, log: Vec::new() }
    }

    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "xdpipe printed no {needle:?} line within {timeout:?}; stderr so far:\n{}",
                    self.log.join("\n")
                ),
            }
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("running").id() as i32
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(rc, 0, "kill({}, {sig})", self.pid());
    }

    /// Waits for exit; returns (exit code, stdout, all stderr).
    pub fn finish(mut self, timeout: Duration) -> (Option<i32>, String, String) {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(st) = child.try_wait().expect("try_wait") {
                break st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("xdpipe did not exit within {timeout:?}; stderr:\n{}", self.log.join("\n"));
            }
            thread::sleep(Duration::from_millis(20));
        };
        let out = child.wait_with_output().expect("collecting output");
        while let Ok(l) = self.stderr.recv_timeout(Duration::from_millis(200)) {
            self.log.push(l);
        }
        (status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), self.log.join("\n"))
    }

    /// Waits for exit and parses the JSON summary, asserting success.
    pub fn summary(self, timeout: Duration) -> serde_json::Value {
        let (code, out, err) = self.finish(timeout);
        assert_eq!(code, Some(0), "xdpipe failed; stderr:\n{err}\nstdout:\n{out}");
        serde_json::from_str(out.trim())
            .unwrap_or_else(|e| panic!("summary is not JSON ({e}): {out:?}\nstderr:\n{err}"))
    }
}

impl Drop for Xdpipe {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs `xdpipe ARGS` in the root namespace to completion: (exit code, stdout, stderr).
pub fn xdpipe_once(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(XDPIPE).args(args).output().expect("running xdpipe");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Sends `count` UDP datagrams of `payload` bytes from the generator namespace to the
/// receiver's `dport`, in bursts of 32 with a pause between, so a receiver well below its
/// limit sees every one.
pub fn send_udp(tb: &Testbed, count: usize, dport: u16, payload: usize) {
    let ns = tb.tx_ns.clone();
    thread::spawn(move || {
        xdpipe::sys::enter_netns(&ns).expect("entering the generator namespace");
        let sock = UdpSocket::bind((TX_IP, 0)).expect("binding a UDP socket");
        let buf = vec![0xabu8; payload];
        for i in 0..count {
            sock.send_to(&buf, (RX_IP, dport)).expect("sendto");
            if i % 32 == 31 {
                thread::sleep(Duration::from_micros(500));
            }
        }
    })
    .join()
    .expect("sender thread");
}

/// One ping from the generator side to the receiver side; true if answered.
pub fn ping(tb: &Testbed) -> bool {
    Command::new("ip")
        .args(["netns", "exec", &tb.tx_ns, "ping", "-c", "1", "-W", "2", RX_IP])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// True if an XDP program is attached to `iface` in namespace `ns`.
pub fn xdp_attached(ns: &str, iface: &str) -> bool {
    let out = Command::new("ip").args(["-j", "-n", ns, "link", "show", "dev", iface]).output().expect("ip link show");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("ip -j link show {iface} in {ns}: {e}: {}", String::from_utf8_lossy(&out.stderr)));
    !v[0]["xdp"].is_null()
}

pub fn u(v: &serde_json::Value, path: &str) -> u64 {
    let mut cur = v;
    for key in path.split('.') {
        cur = match key.parse::<usize>() {
            Ok(i) => &cur[i],
            Err(_) => &cur[key],
        };
    }
    cur.as_u64().unwrap_or_else(|| panic!("{path} is not a number in {v}"))
}

/// A thread in namespace `ns` that receives up to `n` datagrams on a kernel UDP socket
/// bound to `addr` (waiting at most `timeout` for each) and returns their stamps. The
/// kernel's stack checks IP and UDP checksums and drops bad ones before the socket.
pub fn kernel_udp_stamps(
    ns: &str,
    addr: impl std::net::ToSocketAddrs + std::fmt::Debug + Send + 'static,
    n: usize,
    timeout: Duration,
) -> thread::JoinHandle<Vec<xdpipe::wire::stamp::Stamp>> {
    let ns = ns.to_owned();
    thread::spawn(move || {
        xdpipe::sys::enter_netns(&ns).expect("entering the receiver namespace");
        let sock = UdpSocket::bind(&addr).unwrap_or_else(|e| panic!("bind {addr:?}: {e}"));
        sock.set_read_timeout(Some(timeout)).unwrap();
        let mut buf = [0u8; 2048];
        let mut stamps = Vec::new();
        while stamps.len() < n {
            match sock.recv(&mut buf) {
                Ok(len) => {
                    stamps.push(xdpipe::wire::stamp::Stamp::parse(&buf[..len]).expect("payload carries a stamp"))
                }
                Err(_) => break,
            }
        }
        stamps
    })
}
