//! The agent on another host, through OpenSSH: `ssh` started with an argument vector
//! (no local shell), the user's keys, `BatchMode=yes` (never a password prompt) and the
//! host key checked against known_hosts (`StrictHostKeyChecking=yes`). The remote
//! command is fixed (`XDPIPE agent --stdio`, with `XDPIPE` a path of safe characters
//! only, since sshd hands the command to the remote user's shell). The ssh child is in
//! the teardown registry, so every way out stops it; the agent ends when its session's
//! input closes.
use std::{
    ffi::OsString,
    io::Read,
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    sync::{Arc, Mutex, atomic::AtomicBool},
    thread,
    time::{Duration, Instant},
};

use super::{Finished, Prepare, Session, SessionError, TrialRate};
use crate::teardown::{self, Undo};

/// `ssh://USER@HOST[:PORT]`, parsed strictly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshTarget {
    /// The login name.
    pub user: String,
    /// A host name, an IPv4 address, or an IPv6 address (without brackets).
    pub host: String,
    /// The port (None: ssh's default or its config's).
    pub port: Option<u16>,
}

const FORM: &str = "write it as ssh://USER@HOST or ssh://USER@HOST:PORT, e.g. ssh://root@192.0.2.7:22";

impl std::str::FromStr for SshTarget {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| Err(format!("{s:?}: {why}; {FORM}"));
        let Some(rest) = s.strip_prefix("ssh://") else { return bad("not an ssh:// address") };
        let Some((user, hostport)) = rest.split_once('@') else { return bad("no USER@") };
        let name_ok = |n: &str| {
            !n.is_empty()
                && !n.starts_with('-')
                && n.len() <= 253
                && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        };
        if !name_ok(user) {
            return bad("the user name may hold only letters, digits, '.', '_' and '-' and not start with '-'");
        }
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let Some((h, after)) = v6.split_once(']') else { return bad("an IPv6 address without its closing ']'") };
            if h.parse::<std::net::Ipv6Addr>().is_err() {
                return bad("not an IPv6 address between the brackets");
            }
            let port = if after.is_empty() {
                None
            } else if let Some(p) = after.strip_prefix(':') {
                Some(p)
            } else {
                return bad("text after ']'");
            };
            (h, port)
        } else {
            match hostport.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if !hostport.starts_with('[') && !name_ok(host) {
            return bad("the host may hold only letters, digits, '.', '_' and '-' and not start with '-'");
        }
        let port = match port {
            None => None,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => Some(n),
                _ => return bad("the port must be a number from 1 to 65535"),
            },
        };
        Ok(SshTarget { user: user.into(), host: host.into(), port })
    }
}

impl std::fmt::Display for SshTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        write!(f, "ssh://{}@{host}", self.user)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

/// Whether `s` is a path of safe characters only (letters, digits, `/ . _ + -`, not
/// starting with `-`): nothing a shell or ssh's `%` tokens would read otherwise.
pub fn safe_path(s: &str) -> bool {
    !s.is_empty() && !s.starts_with('-') && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._+-".contains(&b))
}

/// How ssh reaches the agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshOptions {
    /// The private key to log in with (`-i`, with `IdentitiesOnly=yes`); None: the
    /// user's keys and agent.
    pub identity: Option<PathBuf>,
    /// The known_hosts file to check the host key against (and only it); None: the
    /// user's and the system's.
    pub known_hosts: Option<PathBuf>,
    /// The xdpipe binary on the remote host (a name on its PATH, or a path).
    pub remote_xdpipe: String,
}

/// ssh's arguments (after the program name) for `target`: options first (ssh keeps the
/// first value it is given of each, so nothing later can weaken them), then `--`, the
/// destination and the fixed remote command.
pub fn ssh_args(target: &SshTarget, o: &SshOptions) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    let mut opt = |s: &str| {
        a.push("-o".into());
        a.push(s.into());
    };
    opt("BatchMode=yes");
    opt("StrictHostKeyChecking=yes");
    opt("ConnectTimeout=10");
    opt("ServerAliveInterval=5");
    opt("ServerAliveCountMax=3");
    opt("ForwardAgent=no");
    opt("ForwardX11=no");
    opt("ClearAllForwardings=yes");
    opt("RequestTTY=no");
    opt("LogLevel=ERROR");
    if let Some(k) = &o.known_hosts {
        let mut u = OsString::from("UserKnownHostsFile=");
        u.push(k);
        a.extend(["-o".into(), u, "-o".into(), "GlobalKnownHostsFile=/dev/null".into()]);
    }
    if let Some(i) = &o.identity {
        a.extend(["-o".into(), "IdentitiesOnly=yes".into(), "-i".into(), i.clone().into()]);
    }
    a.push("-T".into());
    if let Some(p) = target.port {
        a.extend(["-p".into(), p.to_string().into()]);
    }
    a.extend(["-l".into(), target.user.clone().into(), "--".into(), target.host.clone().into()]);
    // sshd joins these with spaces for the remote shell: a safe path and two fixed words.
    a.extend([o.remote_xdpipe.clone().into(), "agent".into(), "--stdio".into()]);
    a
}

/// What ssh's stderr says went wrong, in words that say what to do.
pub fn explain(target: &SshTarget, stderr: &str) -> String {
    let host = &target.host;
    let last = stderr.lines().map(str::trim).rfind(|l| !l.is_empty()).unwrap_or("");
    let has = |s: &str| stderr.contains(s);
    let port = target.port.map_or(String::new(), |p| format!("-p {p} "));
    if has("Host key verification failed") || has("host key is known for") || has("HOST IDENTIFICATION HAS CHANGED") {
        format!(
            "the host key of {host} is not in known_hosts (or differs from it), so ssh refused to connect: verify the \
             key with the host's owner and add it, e.g. `ssh-keyscan {port}{host} >> ~/.ssh/known_hosts` (or the file \
             given with --ssh-known-hosts) [ssh: {last}]"
        )
    } else if has("Permission denied") || has("Too many authentication failures") {
        format!(
            "login to {host} as {} refused (ssh runs with BatchMode=yes, so only keys, never a password): put a key \
             of this user in that account's authorized_keys, or give one with --ssh-identity [ssh: {last}]",
            target.user
        )
    } else if has("Connection refused") || has("timed out") || has("No route to host") || has("Could not resolve") {
        format!("cannot reach {target}: check the host, the port and that sshd runs there [ssh: {last}]")
    } else if has("not found") || has("No such file") {
        format!(
            "the agent did not start on {host}: is xdpipe installed there (or give its path with --remote-xdpipe)? [ssh: {last}]"
        )
    } else if last.is_empty() {
        format!("the ssh session to {target} ended without a message")
    } else {
        format!("ssh to {target}: {last}")
    }
}

/// Why the remote agent failed.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// ssh could not be started.
    #[error("starting ssh: {0}; is OpenSSH's client installed (apt-get install openssh-client)?")]
    Spawn(#[source] std::io::Error),
    /// The session broke, with what ssh said.
    #[error("{context}: {explained}")]
    Ssh {
        /// What happened in the protocol.
        context: String,
        /// ssh's stderr, explained.
        explained: String,
    },
    /// The protocol failed with ssh still up.
    #[error("the agent on {host}: {source}")]
    Session {
        /// The traffic host.
        host: String,
        /// Why.
        #[source]
        source: SessionError,
    },
}

/// The longest stderr of ssh kept, bytes.
const STDERR_KEEP: usize = 16 * 1024;

/// An agent on another host, over ssh. Dropping it ends the session and stops ssh.
pub struct RemoteAgent {
    target: SshTarget,
    session: Option<Session<ChildStdin>>,
    child: Arc<Mutex<Option<Child>>>,
    stderr: Arc<Mutex<String>>,
    stderr_done: Option<thread::JoinHandle<()>>,
    undo: Option<Undo>,
}

impl RemoteAgent {
    /// Starts ssh (the program `ssh` on PATH) and shakes hands with the agent.
    pub fn connect(target: &SshTarget, o: &SshOptions) -> Result<Self, RemoteError> {
        Self::connect_with(Path::new("ssh"), target, o)
    }

    /// [`RemoteAgent::connect`] with another ssh program.
    pub fn connect_with(ssh: &Path, target: &SshTarget, o: &SshOptions) -> Result<Self, RemoteError> {
        let mut child = Command::new(ssh)
            .args(ssh_args(target, o))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(RemoteError::Spawn)?;
        let (stdin, stdout, mut err) = match (child.stdin.take(), child.stdout.take(), child.stderr.take()) {
            (Some(i), Some(o), Some(e)) => (i, o, e),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(RemoteError::Spawn(std::io::Error::other("ssh's pipes were not set up")));
            }
        };
        let child = Arc::new(Mutex::new(Some(child)));
        let c2 = child.clone();
        let undo = teardown::register(format!("the ssh session to {target}"), move || kill(&c2));
        let stderr = Arc::new(Mutex::new(String::new()));
        let s2 = stderr.clone();
        let stderr_done = thread::Builder::new()
            .name("xdpipe-ssh-err".into())
            .spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = err.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let mut s = s2.lock().unwrap_or_else(|p| p.into_inner());
                    if s.len() < STDERR_KEEP {
                        s.push_str(&String::from_utf8_lossy(&buf[..n]));
                    }
                }
            })
            .ok();
        let session = Session::new(stdout, stdin).map_err(RemoteError::Spawn)?;
        let mut r = RemoteAgent {
            target: target.clone(),
            session: Some(session),
            child,
            stderr,
            stderr_done,
            undo: Some(undo),
        };
        r.call(|s| s.hello())?;
        Ok(r)
    }

    /// Sends the generator's settings.
    pub fn prepare(&mut self, p: &Prepare) -> Result<(), RemoteError> {
        self.call(|s| s.prepare(p))
    }

    /// Runs one trial on the agent (see [`Session::trial`]).
    pub fn trial(&mut self, rate: TrialRate, secs: f64, stop: &AtomicBool) -> Result<Finished, RemoteError> {
        self.call(|s| s.trial(rate, secs, stop))
    }

    /// The traffic host.
    pub fn target(&self) -> &SshTarget {
        &self.target
    }

    fn call<T>(
        &mut self,
        f: impl FnOnce(&mut Session<ChildStdin>) -> Result<T, SessionError>,
    ) -> Result<T, RemoteError> {
        let Some(s) = self.session.as_mut() else {
            return Err(RemoteError::Session {
                host: self.target.host.clone(),
                source: SessionError::Lost { during: "after an earlier failure".into() },
            });
        };
        match f(s) {
            Ok(v) => Ok(v),
            Err(e @ SessionError::Lost { .. }) => {
                // ssh is ending or has ended: what it said explains why.
                self.session = None;
                let _ = self.wait_exit(Duration::from_secs(3));
                if let Some(h) = self.stderr_done.take() {
                    let _ = h.join();
                }
                let said = self.stderr.lock().unwrap_or_else(|p| p.into_inner()).clone();
                Err(RemoteError::Ssh { context: e.to_string(), explained: explain(&self.target, &said) })
            }
            Err(source) => {
                self.session = None;
                Err(RemoteError::Session { host: self.target.host.clone(), source })
            }
        }
    }

    /// Waits up to `limit` for ssh to exit, then kills it.
    fn wait_exit(&self, limit: Duration) -> Option<std::process::ExitStatus> {
        let end = Instant::now() + limit;
        loop {
            {
                let mut g = self.child.lock().unwrap_or_else(|p| p.into_inner());
                let c = g.as_mut()?;
                if let Ok(Some(st)) = c.try_wait() {
                    *g = None;
                    return Some(st);
                }
            }
            if Instant::now() >= end {
                kill(&self.child);
                return None;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Kills and reaps the ssh child (if still there).
fn kill(child: &Mutex<Option<Child>>) {
    let mut g = child.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(mut c) = g.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

impl Drop for RemoteAgent {
    /// Says bye, closes the agent's input (the agent exits on either), gives ssh a few
    /// seconds to end, then kills it.
    fn drop(&mut self) {
        if let Some(mut s) = self.session.take() {
            s.bye();
        }
        let _ = self.wait_exit(Duration::from_secs(5));
        if let Some(u) = self.undo.take() {
            u.run();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_addresses_are_parsed_strictly() {
        let t: SshTarget = "ssh://root@10.0.0.2:2222".parse().unwrap();
        assert_eq!(t, SshTarget { user: "root".into(), host: "10.0.0.2".into(), port: Some(2222) });
        assert_eq!(t.to_string(), "ssh://root@10.0.0.2:2222");
        let t: SshTarget = "ssh://a.b@gen-1.lab".parse().unwrap();
        assert_eq!((t.host.as_str(), t.port), ("gen-1.lab", None));
        let t: SshTarget = "ssh://u@[fe80::1]:22".parse().unwrap();
        assert_eq!((t.host.as_str(), t.port), ("fe80::1", Some(22)));
        for bad in [
            "root@host",
            "ssh://host",
            "ssh://@host",
            "ssh://-oProxyCommand=x@host",
            "ssh://u@-oProxyCommand=x",
            "ssh://u@host:0",
            "ssh://u@host:99999",
            "ssh://u@host:22/path",
            "ssh://u@host:+22",
            "ssh://u@ho st",
            "ssh://u@host;reboot",
            "ssh://u@[::1",
            "ssh://u@[nothost]",
            "ssh://u@[::1]x",
            "ssh://u@",
        ] {
            let e = bad.parse::<SshTarget>().unwrap_err();
            assert!(e.contains("ssh://USER@HOST"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_ssh_command_is_an_argument_vector_with_the_safe_options_first() {
        let t: SshTarget = "ssh://root@10.0.0.2:2222".parse().unwrap();
        let o = SshOptions {
            identity: Some("/k/id".into()),
            known_hosts: Some("/k/kh".into()),
            remote_xdpipe: "/opt/xdpipe".into(),
        };
        let a: Vec<String> = ssh_args(&t, &o).into_iter().map(|s| s.into_string().unwrap()).collect();
        let at = |s: &str| a.iter().position(|x| x == s).unwrap_or_else(|| panic!("{s} missing in {a:?}"));
        assert_eq!(&a[..4], ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"]);
        assert_eq!(a[at("-p") + 1], "2222");
        assert_eq!(a[at("-i") + 1], "/k/id");
        assert!(a.contains(&"UserKnownHostsFile=/k/kh".to_owned()));
        assert_eq!(&a[at("--")..], ["--", "10.0.0.2", "/opt/xdpipe", "agent", "--stdio"]);
        assert!(safe_path("/usr/local/bin/xdpipe") && safe_path("xdpipe"));
        for bad in ["", "-x", "a b", "x;reboot", "$(id)", "a%h", "`id`", "~/x"] {
            assert!(!safe_path(bad), "{bad}");
        }
    }

    #[test]
    fn ssh_failures_are_explained() {
        let t: SshTarget = "ssh://root@h:2222".parse().unwrap();
        let m = explain(
            &t,
            "No ED25519 host key is known for [h]:2222 and you have requested strict checking.\nHost key verification failed.\n",
        );
        assert!(m.contains("host key of h is not in known_hosts") && m.contains("ssh-keyscan -p 2222 h"), "{m}");
        let m = explain(&t, "root@h: Permission denied (publickey).\n");
        assert!(m.contains("login to h as root refused"), "{m}");
        let m = explain(&t, "ssh: connect to host h port 2222: Connection refused\n");
        assert!(m.contains("cannot reach"), "{m}");
        let m = explain(&t, "bash: line 1: /nope/xdpipe: No such file or directory\n");
        assert!(m.contains("--remote-xdpipe"), "{m}");
        assert!(explain(&t, "").contains("ended without a message"));
    }
}
