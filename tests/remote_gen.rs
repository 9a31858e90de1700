//! `xdpipe bench --remote-gen ssh://...` between two namespaces: the "traffic host" runs
//! an sshd (Debian's openssh-server, started here with keys generated here) and the agent
//! it starts; the "device under test" runs bench. A control veth pair carries ssh, the
//! testbed's pair the test traffic. A run completes with the agent's counts; an unknown
//! host key and a key the sshd does not know are each refused with their message; no
//! agent or ssh session is left behind.
mod common;

use std::{
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use common::*;

const DUT_CTL: &str = "xpc-dut";
const TR_CTL: &str = "xpc-tr";
const DUT_CTL_IP: &str = "10.99.0.1";
const TR_CTL_IP: &str = "10.99.0.2";
const PORT: &str = "2222";

/// sshd and the temporary directory, removed on drop (the testbed removes itself).
struct Sshd {
    child: Child,
    dir: PathBuf,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run(program: &str, args: &[&str]) {
    let o = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(o.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&o.stderr));
}

fn keygen(path: &Path) {
    run("ssh-keygen", &["-q", "-t", "ed25519", "-N", "", "-C", "xdpipe-test", "-f", path.to_str().unwrap()]);
}

/// A child killed on drop (a failed assertion leaves no bench running).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The pids of processes whose command line has every one of `words`.
fn processes_with(words: &[&str]) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else { continue };
        let args: Vec<String> = cmd.split(|&b| b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        if words.iter().all(|w| args.iter().any(|a| a == w)) {
            out.push(pid);
        }
    }
    out
}

/// The children of `pid`.
fn children(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { continue };
        // pid (comm) state ppid ...: comm may hold spaces, so split after its ')'.
        let ppid = stat.rsplit_once(')').and_then(|(_, r)| r.split_whitespace().nth(1)?.parse::<i32>().ok());
        if ppid == Some(pid) {
            out.push(p);
        }
    }
    out
}

/// Waits up to 10 s for no agent and no sshd session to be left.
fn assert_nothing_left(sshd: i32) {
    let t0 = Instant::now();
    loop {
        let (agents, sessions) = (processes_with(&[XDPIPE, "agent", "--stdio"]), children(sshd));
        if agents.is_empty() && sessions.is_empty() {
            return;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "left running: agents {agents:?}, sshd sessions {sessions:?}");
        thread::sleep(Duration::from_millis(100));
    }
}

fn start_sshd(tb: &Testbed) -> (Sshd, PathBuf) {
    let dir = xdpipe::sys::private_temp_dir("xdpipe-ssh-test").expect("a private temporary directory");
    keygen(&dir.join("host_key"));
    keygen(&dir.join("user_key"));
    keygen(&dir.join("other_key"));
    std::fs::copy(dir.join("user_key.pub"), dir.join("authorized_keys")).unwrap();
    let config = format!(
        "ListenAddress {TR_CTL_IP}:{PORT}\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\n\
         PidFile {d}/sshd.pid\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
         PermitRootLogin prohibit-password\nStrictModes no\nAllowTcpForwarding no\nX11Forwarding no\n\
         PrintMotd no\nLogLevel VERBOSE\n",
        d = dir.display()
    );
    std::fs::write(dir.join("sshd_config"), config).unwrap();
    // sshd's privilege separation directory (the package's service makes it at start).
    std::fs::create_dir_all("/run/sshd").unwrap();
    let mut child = Command::new("ip")
        .args(["netns", "exec", &tb.tx_ns, "/usr/sbin/sshd", "-D", "-e", "-f"])
        .arg(dir.join("sshd_config"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting /usr/sbin/sshd (apt-get install openssh-server)");
    let err = child.stderr.take().unwrap();
    let sshd = Sshd { child, dir: dir.clone() };
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            eprintln!("sshd: {l}");
            let _ = tx.send(l);
        }
    });
    let t0 = Instant::now();
    loop {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(l) if l.contains("Server listening on") => break,
            Ok(_) => {}
            Err(e) => panic!("sshd did not start listening: {e}"),
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "sshd did not start listening");
    }
    (sshd, dir)
}

fn bench(tb: &Testbed, dir: &Path, key: &str, known_hosts: &Path, out: &Path) -> (bool, String, String) {
    let o = bench_command(tb, dir, key, known_hosts, out, &["--trial-secs", "1", "--search-secs", "0.5"])
        .stdin(Stdio::null())
        .output()
        .expect("running xdpipe bench");
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    eprintln!("bench stderr:\n{err}");
    (o.status.success(), String::from_utf8_lossy(&o.stdout).into_owned(), err)
}

fn bench_command(tb: &Testbed, dir: &Path, key: &str, known_hosts: &Path, out: &Path, extra: &[&str]) -> Command {
    let url = format!("ssh://root@{TR_CTL_IP}:{PORT}");
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &tb.rx_ns, XDPIPE, "bench", "--target"])
        .arg(format!("nic:{RX_IFACE}"))
        .args(["--remote-gen", &url, "--remote-gen-iface", TX_IFACE, "--ssh-identity"])
        .arg(dir.join(key))
        .arg("--ssh-known-hosts")
        .arg(known_hosts)
        .args(["--remote-xdpipe", XDPIPE])
        .args(["--sizes", "64", "--xdp-modes", "skb", "--trials", "2", "--max-trials", "2"])
        .args(extra)
        .args(["--latency-fraction", "0", "--anchors", "off", "--out"])
        .arg(out);
    c
}

#[test]
fn a_bench_run_with_the_generator_on_another_host_over_ssh() {
    if !privileged() {
        return;
    }
    let tb = testbed(1);
    // The control link, apart from the data link.
    run(
        "ip",
        &["link", "add", DUT_CTL, "netns", &tb.rx_ns, "type", "veth", "peer", "name", TR_CTL, "netns", &tb.tx_ns],
    );
    run("ip", &["-n", &tb.rx_ns, "addr", "add", &format!("{DUT_CTL_IP}/24"), "dev", DUT_CTL]);
    run("ip", &["-n", &tb.tx_ns, "addr", "add", &format!("{TR_CTL_IP}/24"), "dev", TR_CTL]);
    run("ip", &["-n", &tb.rx_ns, "link", "set", DUT_CTL, "up"]);
    run("ip", &["-n", &tb.tx_ns, "link", "set", TR_CTL, "up"]);
    let (sshd, dir) = start_sshd(&tb);
    let sshd_pid = sshd.child.id() as i32;
    // The real host key in known_hosts, as `ssh-keyscan -p 2222 HOST` would write it.
    let host_pub = std::fs::read_to_string(dir.join("host_key.pub")).unwrap();
    let known = dir.join("known_hosts");
    std::fs::write(&known, format!("[{TR_CTL_IP}]:{PORT} {host_pub}")).unwrap();
    let empty = dir.join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();

    // An unknown host key: refused, nothing made, nothing left.
    let out = dir.join("runs-unknown");
    let (ok, _, err) = bench(&tb, &dir, "user_key", &empty, &out);
    assert!(!ok, "a host key not in known_hosts must be refused");
    assert!(err.contains(&format!("the host key of {TR_CTL_IP} is not in known_hosts")), "{err}");
    assert!(!out.exists(), "a refused run leaves no run directory");
    assert_nothing_left(sshd_pid);

    // A key the sshd does not know: the login is refused.
    let (ok, _, err) = bench(&tb, &dir, "other_key", &known, &dir.join("runs-login"));
    assert!(!ok && err.contains(&format!("login to {TR_CTL_IP} as root refused")), "{err}");
    assert_nothing_left(sshd_pid);

    // The run.
    let out = dir.join("runs");
    let (ok, stdout, err) = bench(&tb, &dir, "user_key", &known, &out);
    assert!(ok, "bench over ssh failed:\n{err}");
    let run_dir = PathBuf::from(stdout.trim());
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["run"]["complete"], true, "{summary}");
    let notes = summary["run"]["notes"].to_string();
    assert!(notes.contains("xdpipe agent over ssh") && notes.contains("no one-way latency"), "{notes}");
    let csv = std::fs::read_to_string(run_dir.join("raw.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap_or_else(|| panic!("{name} in {header:?}"));
    let (kind, sent, received) = (col("kind"), col("sent"), col("received"));
    let rows: Vec<Vec<&str>> = csv.lines().skip(1).map(|l| l.split(',').collect()).collect();
    let n = |r: &Vec<&str>, c: usize| r[c].parse::<u64>().unwrap();
    let max: Vec<_> = rows.iter().filter(|r| r[kind] == "max").collect();
    assert_eq!(max.len(), 2, "{csv}");
    for r in &max {
        assert!(n(r, sent) > 1000 && n(r, received) > 0 && n(r, received) <= n(r, sent), "{csv}");
    }
    // The search's trials run at fixed rates: at one of them (on a shared machine, not
    // necessarily the confirming one) every frame the agent sent arrived.
    let fixed: Vec<_> = rows.iter().filter(|r| r[kind] == "search" || r[kind] == "confirm").collect();
    assert!(!fixed.is_empty(), "{csv}");
    assert!(fixed.iter().any(|r| n(r, sent) > 10_000 && n(r, received) == n(r, sent)), "{csv}");
    assert_nothing_left(sshd_pid);

    // The connection lost mid-trial (the sshd session killed): the run ends with a
    // message, and the agent, its input closed, stops and exits.
    let mut b = Killed(
        bench_command(&tb, &dir, "user_key", &known, &dir.join("runs-lost"), &["--no-search", "--trial-secs", "30"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running xdpipe bench"),
    );
    let err = b.0.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let mut lines = Vec::new();
    while let Ok(l) = rx.recv_timeout(Duration::from_secs(30)) {
        let started = l.contains("scenario 1/1");
        lines.push(l);
        if started {
            break;
        }
    }
    assert!(lines.iter().any(|l| l.contains("scenario 1/1")), "{lines:?}");
    // Sending for a while now.
    thread::sleep(Duration::from_secs(2));
    assert!(!processes_with(&[XDPIPE, "agent", "--stdio"]).is_empty(), "the agent runs during the trial");
    let t0 = Instant::now();
    for s in children(sshd_pid) {
        // SAFETY: kill(2) on a pid this test's sshd started.
        unsafe { libc::kill(s, libc::SIGKILL) };
    }
    while let Ok(l) = rx.recv_timeout(Duration::from_secs(30)) {
        lines.push(l);
    }
    let status = b.0.wait().unwrap();
    let all = lines.join("\n");
    assert!(!status.success(), "{all}");
    assert!(all.contains("the connection to the agent was lost during a trial"), "{all}");
    assert!(t0.elapsed() < Duration::from_secs(20), "noticed after {:?}", t0.elapsed());
    assert_nothing_left(sshd_pid);
    drop(sshd);
}
