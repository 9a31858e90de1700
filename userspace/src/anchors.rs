//! Anchors: the well-known tools measured beside xdpipe in the same run, on the same veth
//! testbed, with the same core placement (generator on core 0, receiver on core 1), so a
//! report can say "x% of the XDP_DROP ceiling" and "y times xdpsock".
//!
//! A pairing runs the same traffic through two sides, ours and theirs, trial after trial
//! alternately (the VM is noisy; interleaving spreads its noise over both). Each side is a
//! subject on the receiving veth end plus a driver on the sending end. Every rate is a
//! steady-state rate: xdpipe's own rate over the period traffic flowed, or the median of
//! the tools' per-second samples with the ramp-up and ramp-down seconds left out. The CPU
//! comparison reads the subject's scheduler run time (`/proc/PID/task/*/schedstat`; for
//! xdpipe, which runs in this process, the receiver's own threads') over the driver's run
//! and divides by the frames the subject received.
//!
//! xdpipe's sides run as threads of this process (its receiver and generator in their
//! namespaces, as `xdpipe veth` runs them), with the configs the caller makes for them
//! ([`XdpipeSides`]); the tools run as processes.
//!
//! The tools run under `stdbuf -oL`: their statistics go to a pipe, which stdio would
//! otherwise buffer for many seconds. The tools are not built by xdpipe: they are looked up on PATH (xdpsock from
//! bpf-examples' AF_XDP-example, xdp-bench and xdp-trafficgen from xdp-tools 1.6+).
use std::{
    io::{BufRead as _, BufReader, Read as _},
    path::{Path, PathBuf},
    process::{Child, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use crate::{
    generator::GenConfig,
    run::RunConfig,
    sys,
    testbed::{RX_IFACE, RX_IP, TX_IFACE, TX_IP, Testbed, TestbedError, fmt_mac, unique_name},
    veth::{Receiver, start_generator},
};

/// The typed configs of xdpipe's sides of a pairing, with a one-line description of each
/// for the record. The CLI makes them with `xdpipe run` / `xdpipe gen`'s own defaults;
/// interfaces, addresses and MACs are set here from the testbed.
pub trait XdpipeSides {
    /// The receiver: `mode`, waiting as `wait` says, steering every frame or not.
    fn receiver(&self, mode: &str, wait: AnchorWait, all: bool, xdp_mode: &str) -> Result<(RunConfig, String), String>;
    /// The generator: `engine` at max (None) or `pps`, for `secs`.
    fn generator(&self, engine: &str, pps: Option<f64>, secs: f64) -> Result<(GenConfig, String), String>;
}

/// Scheduler run time of this process's threads whose names start with one of
/// `prefixes`, ns.
fn own_threads_cpu_ns(prefixes: &[&str]) -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return 0 };
    tasks
        .filter_map(Result::ok)
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| prefixes.iter().any(|p| c.trim_end().starts_with(p)))
        })
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// The receiving side while it runs.
enum SubjectRun {
    Ours(Receiver),
    Theirs(Proc),
}

/// The anchor tools found on this machine.
#[derive(Clone, Debug, Default)]
pub struct Tools {
    /// `xdpsock` (bpf-examples' AF_XDP-example), if found.
    pub xdpsock: Option<PathBuf>,
    /// `xdp-bench` (xdp-tools), if found.
    pub xdp_bench: Option<PathBuf>,
    /// `xdp-trafficgen` (xdp-tools), if found.
    pub xdp_trafficgen: Option<PathBuf>,
    /// Places not used, each with why: an `--anchor-dir`, or a directory on PATH holding
    /// one of the tools, that is not root-owned or is writable by group or others (anyone
    /// who can write there could have xdpipe run their program as root), or has such a
    /// directory on the way to it from / (an ancestor, or one holding a symbolic link on
    /// the way; a world-writable sticky one such as /tmp included, see
    /// `untrusted_on_the_way`), or a tool file there that is.
    pub refused: Vec<String>,
}

/// The anchor tools' file names.
const TOOL_NAMES: [&str; 3] = ["xdpsock", "xdp-bench", "xdp-trafficgen"];

impl Tools {
    /// Looks the tools up in `extra` directories (`--anchor-dir`) first, then on PATH, in
    /// trusted places only (see [`Tools::refused`]).
    pub fn find(extra: &[PathBuf]) -> Self {
        let path = std::env::var_os("PATH").unwrap_or_default();
        Self::find_in(extra, &std::env::split_paths(&path).collect::<Vec<_>>())
    }

    /// [`Tools::find`] over `extra` (every refusal reported) and `path` (refusals reported
    /// only where a tool is).
    pub fn find_in(extra: &[PathBuf], path: &[PathBuf]) -> Self {
        let mut t = Self::default();
        let dirs = extra.iter().map(|d| (d, true)).chain(path.iter().map(|d| (d, false)));
        for (dir, explicit) in dirs {
            let present: Vec<&str> = TOOL_NAMES.into_iter().filter(|n| is_executable(&dir.join(n))).collect();
            if !explicit && present.is_empty() {
                continue;
            }
            let what = if explicit { "--anchor-dir" } else { "PATH directory" };
            if let Some(why) = untrusted(dir) {
                t.refused.push(format!(
                    "{what} {}: {why}; anchors are run as root, so only a root-owned directory that \
                     group and others cannot write is used (fix it with `chown root {0} && chmod go-w {0}`, \
                     or put the tools elsewhere)",
                    dir.display()
                ));
                continue;
            }
            if let Some(Untrusted { path, why, sticky }) = untrusted_on_the_way(dir) {
                t.refused.push(ancestor_refusal(&format!("{what} {}", dir.display()), &path, &why, sticky));
                continue;
            }
            for name in present {
                let file = dir.join(name);
                let slot = match name {
                    "xdpsock" => &mut t.xdpsock,
                    "xdp-bench" => &mut t.xdp_bench,
                    _ => &mut t.xdp_trafficgen,
                };
                if slot.is_some() {
                    continue;
                }
                if let Some(Untrusted { path, why, sticky }) = untrusted_on_the_way(&file) {
                    t.refused.push(ancestor_refusal(&file.display().to_string(), &path, &why, sticky));
                    continue;
                }
                match untrusted(&file) {
                    None => *slot = Some(file),
                    Some(why) => t.refused.push(format!(
                        "{}: {why}; anchors are run as root, so only a root-owned tool that group and \
                         others cannot write is used (`chown root {0} && chmod go-w {0}`)",
                        file.display()
                    )),
                }
            }
        }
        t
    }

    /// The names of the tools not found, in the order xdpsock, xdp-bench, xdp-trafficgen.
    pub fn missing(&self) -> Vec<&'static str> {
        let mut m = Vec::new();
        if self.xdpsock.is_none() {
            m.push("xdpsock");
        }
        if self.xdp_bench.is_none() {
            m.push("xdp-bench");
        }
        if self.xdp_trafficgen.is_none() {
            m.push("xdp-trafficgen");
        }
        m
    }
}

/// Why `p` (a directory or a tool) cannot be trusted to hold what root runs, if so: not an
/// absolute path, unreadable, not owned by root, or writable by group or others. The path
/// is followed through symbolic links (what would run is what counts).
fn untrusted(p: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt as _;
    if !p.is_absolute() {
        return Some("not an absolute path (it would depend on the working directory)".into());
    }
    let m = match p.metadata() {
        Ok(m) => m,
        Err(e) => return Some(format!("cannot be read ({e})")),
    };
    if m.uid() != 0 {
        return Some(format!("owned by uid {}, not root", m.uid()));
    }
    let mode = m.mode();
    if mode & 0o022 != 0 {
        let who = match (mode & 0o020 != 0, mode & 0o002 != 0) {
            (true, true) => "group and others",
            (true, false) => "its group",
            _ => "others",
        };
        return Some(format!("writable by {who} (mode {:o})", mode & 0o7777));
    }
    None
}

/// A directory on the way to a tool that root must not trust.
struct Untrusted {
    /// The directory (or the symbolic link that could not be read).
    path: PathBuf,
    /// Why.
    why: String,
    /// World-writable with the sticky bit (like /tmp).
    sticky: bool,
}

/// The most symbolic links followed on the way to a tool (the kernel's own limit).
const MAX_SYMLINK_HOPS: usize = 40;

/// The first directory a lookup of `p` passes through, from `/` down (every symbolic link
/// on the way followed, `p` itself too if it is one, and the directories on the way to
/// each target checked as well), that is not root-owned or is writable by group or
/// others; what `p` finally names is not looked at (see [`untrusted`]). `p` must be
/// absolute.
///
/// The rule, as OpenSSH's and sudo's checks of a path: whoever can write a directory can
/// rename or remove any entry in it and put their own in its place, and with it the whole
/// tree below; so a root-owned, 0755 tool directory is only as safe as every directory
/// above it, and every directory holding a symbolic link on the way. A world-writable
/// directory with the sticky bit (/tmp, /var/tmp) is refused too: there, only an entry's
/// owner may rename it, but the name is safe only while that entry lasts: once it goes
/// (a tmp cleaner, a reboot for a tmpfs, root's own cleanup), anyone may create it again,
/// and what root checked before is not what it runs after. Nothing under such a
/// directory is ever used.
fn untrusted_on_the_way(p: &Path) -> Option<Untrusted> {
    use std::{collections::VecDeque, ffi::OsString, os::unix::fs::MetadataExt as _, path::Component};
    let names = |q: &Path| -> Vec<OsString> {
        q.components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.to_owned()),
                Component::ParentDir => Some(OsString::from("..")),
                _ => None,
            })
            .collect()
    };
    let check = |dir: &Path| -> Option<Untrusted> {
        let m = match dir.symlink_metadata() {
            Ok(m) => m,
            Err(e) => {
                return Some(Untrusted { path: dir.to_owned(), why: format!("cannot be read ({e})"), sticky: false });
            }
        };
        let mode = m.mode();
        let why = if m.uid() != 0 {
            format!("owned by uid {}, not root", m.uid())
        } else if mode & 0o022 != 0 {
            let who = match (mode & 0o020 != 0, mode & 0o002 != 0) {
                (true, true) => "group and others",
                (true, false) => "its group",
                _ => "others",
            };
            format!("writable by {who} (mode {:o})", mode & 0o7777)
        } else {
            return None;
        };
        Some(Untrusted { path: dir.to_owned(), why, sticky: mode & 0o1002 == 0o1002 })
    };
    let mut pending: VecDeque<OsString> = names(p).into();
    let mut cur = PathBuf::from("/");
    if let Some(u) = check(&cur) {
        return Some(u);
    }
    let mut hops = 0;
    while let Some(name) = pending.pop_front() {
        if name == ".." {
            // Back to a directory checked on the way down.
            cur.pop();
            continue;
        }
        let next = cur.join(&name);
        let is_link = next.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink());
        if is_link {
            hops += 1;
            let target = match std::fs::read_link(&next) {
                Ok(t) if hops <= MAX_SYMLINK_HOPS => t,
                Ok(_) => {
                    return Some(Untrusted {
                        path: next,
                        why: format!("more than {MAX_SYMLINK_HOPS} symbolic links deep"),
                        sticky: false,
                    });
                }
                Err(e) => {
                    return Some(Untrusted { path: next, why: format!("cannot be read ({e})"), sticky: false });
                }
            };
            // `cur`, which holds the link, was checked: the link cannot be replaced.
            if target.is_absolute() {
                cur = PathBuf::from("/");
            }
            for n in names(&target).into_iter().rev() {
                pending.push_front(n);
            }
            continue;
        }
        if pending.is_empty() {
            // `p` itself (its last link followed): what `untrusted` looks at.
            return None;
        }
        if let Some(u) = check(&next) {
            return Some(u);
        }
        cur = next;
    }
    None
}

/// The refusal of `what` (a directory or a tool) for a directory on the way to it.
fn ancestor_refusal(what: &str, dir: &Path, why: &str, sticky: bool) -> String {
    let fix = if sticky {
        format!(
            "{0} is world-writable with the sticky bit, as /tmp is: nothing under it is used; put the tools in \
             a root-owned directory outside it",
            dir.display()
        )
    } else {
        format!("fix it with `chown root {0} && chmod go-w {0}`, or put the tools elsewhere", dir.display())
    };
    format!(
        "{what}: {} on the way to it is {why}; anchors are run as root, and whoever can write a directory \
         above the tools can put their own in their place, so every directory from / down to them must be \
         root-owned and not writable by group or others ({fix})",
        dir.display()
    )
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// How xdpipe's receiver waits on an empty ring in a pairing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnchorWait {
    /// Spins (`--poll 0`), as xdpsock does without `-p`.
    Spin,
    /// Sleeps in poll() (`--poll forever`), as xdpsock `-p`.
    Sleep,
    /// Sleeps in poll() and lets frames gather for up to `us` microseconds after each
    /// wakeup (`--poll forever --coalesce-us US`).
    SleepCoalesced {
        /// The coalescing time.
        us: u32,
    },
    /// The kernel's busy polling (`--poll busy-poll`), as xdpsock `-B`.
    BusyPoll,
}

impl AnchorWait {
    /// The `xdpipe run` flags.
    pub fn run_args(self) -> Vec<String> {
        let v: &[&str] = match self {
            AnchorWait::Spin => &[],
            AnchorWait::Sleep => &["--poll", "forever"],
            AnchorWait::SleepCoalesced { .. } => &["--poll", "forever", "--coalesce-us"],
            AnchorWait::BusyPoll => &["--poll", "busy-poll"],
        };
        let mut a: Vec<String> = v.iter().map(|x| x.to_string()).collect();
        if let AnchorWait::SleepCoalesced { us } = self {
            a.push(us.to_string());
        }
        a
    }
}

/// The coalescing times of the coalesced CPU pairings when `xdpipe bench` is given none.
/// At 200 kpps about 20 frames gather in 100 us; in 500 us the batch (64 frames) ends the
/// gathering first, after about 320 us. Two, because what a gathering costs is a timer, and
/// a timer's price differs by machine: on the project's VM each sleep on one cost about
/// 25 us of CPU (a 2 us clock_nanosleep loop: 24.7 us of CPU per turn), more than the
/// wakeups 20 frames would have caused, so 100 us costs CPU there and 500 us saves it.
pub const DEFAULT_ANCHOR_COALESCE_US: [u32; 2] = [100, 500];

/// The coalescing times of a run's coalesced CPU pairings: the run's `--coalesce-us`, or
/// [`DEFAULT_ANCHOR_COALESCE_US`].
pub fn coalesce_times(given_us: Option<u32>) -> Vec<u32> {
    given_us.map_or(DEFAULT_ANCHOR_COALESCE_US.to_vec(), |us| vec![us])
}

/// What sits on the receiving end.
#[derive(Clone, Debug, PartialEq)]
pub enum Subject {
    /// `xdpipe run` in `mode`, waiting as `wait` says; `all`: steer every frame.
    Xdpipe {
        /// The run mode (`rxdrop`, `l2fwd`, ...), as `xdpipe run --mode` takes it.
        mode: &'static str,
        /// How it waits on an empty ring.
        wait: AnchorWait,
        /// Steer every frame to the socket (`--filter all`), not only the matched UDP port.
        all: bool,
    },
    /// `xdpsock -r` (rxdrop) or `-l` (l2fwd); `poll`: its -p; `busy_poll`: its -B.
    Xdpsock {
        /// `-l` (l2fwd, forward back) rather than `-r` (rxdrop).
        l2fwd: bool,
        /// Pass `-p`: poll() instead of spinning.
        poll: bool,
        /// Pass `-B`: the kernel's busy polling (SO_PREFER_BUSY_POLL, SO_BUSY_POLL,
        /// SO_BUSY_POLL_BUDGET), with the device's napi_defer_hard_irqs and
        /// gro_flush_timeout set as `xdpipe run --poll busy-poll` sets them (xdpsock's
        /// README asks its user to).
        busy_poll: bool,
    },
    /// `xdp-bench drop`: XDP_DROP in the kernel, the ceiling for any receiver.
    XdpBenchDrop,
}

/// What sends.
#[derive(Clone, Debug, PartialEq)]
pub enum Driver {
    /// `xdpipe gen`, at max (None) or a rate in pps.
    Gen {
        /// The generator engine: `xsk` or `xdp-live`.
        engine: &'static str,
        /// The offered rate, pps; None: as fast as it goes.
        pps: Option<f64>,
    },
    /// `xdpsock -t` (txonly).
    XdpsockTx,
    /// `xdp-trafficgen udp`.
    Trafficgen,
}

/// What a pairing compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// The subject's receive rate (pps).
    RxPps,
    /// The subject's forwarding (transmit) rate (pps).
    FwdPps,
    /// The subject's CPU time per received frame (ns).
    CpuNsPerPkt,
}

impl Metric {
    /// The unit of the metric's values as recorded: `pps` or `ns/frame`.
    pub fn unit(self) -> &'static str {
        match self {
            Metric::RxPps | Metric::FwdPps => "pps",
            Metric::CpuNsPerPkt => "ns/frame",
        }
    }
}

/// The goal a pairing checks, on ours / theirs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Goal {
    /// Met when ours / theirs (medians over the trials) is at least this.
    AtLeast(f64),
    /// Met when ours / theirs (medians over the trials) is at most this.
    AtMost(f64),
    /// No goal: the share is the finding (xdpipe as a share of the XDP_DROP ceiling).
    Share,
}

/// One side of a pairing: what receives and what sends to it.
#[derive(Clone, Debug)]
pub struct Side {
    /// What sits on the receiving veth end (in the testbed's rx namespace).
    pub subject: Subject,
    /// What sends from the other end (in the testbed's tx namespace).
    pub driver: Driver,
}

/// One comparison: the same metric measured on xdpipe's side and on a tool's side.
#[derive(Clone, Debug)]
pub struct Pairing {
    /// A one-line description for the report, e.g. `l2fwd vs xdpsock l2fwd (forwarded rate)`.
    pub name: String,
    /// The XDP attach mode both sides use: `native` or `skb` (generic).
    pub xdp_mode: String,
    /// What is compared.
    pub metric: Metric,
    /// xdpipe's side (for generator pairings, the subject is the same sink on both sides).
    pub ours: Side,
    /// The anchor tool's side.
    pub theirs: Side,
    /// What the ratio ours / theirs should be.
    pub goal: Goal,
}

/// Keeps the pairings whose name holds one of `only` (case-insensitive; `bench
/// --anchor-only`); all of them when `only` is empty.
pub fn select(pairings: Vec<Pairing>, only: &[String]) -> Vec<Pairing> {
    if only.is_empty() {
        return pairings;
    }
    pairings.into_iter().filter(|p| only.iter().any(|o| name_holds(&p.name, o))).collect()
}

/// Whether a pairing's name holds `text`, case-insensitive (`bench --anchor-only`).
fn name_holds(name: &str, text: &str) -> bool {
    name.to_lowercase().contains(&text.to_lowercase())
}

/// Checks each of `only` against the names of every pairing a run with all three tools
/// would make: a text that matches none is refused with the names it could have matched.
pub fn check_only(
    only: &[String],
    xdp_modes: &[String],
    engines: &[String],
    cpu_pps: f64,
    coalesce_us: &[u32],
) -> Result<(), String> {
    let every = Tools {
        xdpsock: Some("xdpsock".into()),
        xdp_bench: Some("xdp-bench".into()),
        xdp_trafficgen: Some("xdp-trafficgen".into()),
        refused: Vec::new(),
    };
    // One name per comparison (each XDP mode makes the same names again).
    let mut names: Vec<String> = Vec::new();
    for p in plan(&every, xdp_modes, engines, cpu_pps, coalesce_us) {
        if !names.contains(&p.name) {
            names.push(p.name);
        }
    }
    for o in only {
        if o.trim().is_empty() {
            return Err(
                "--anchor-only: an empty text matches every comparison; leave the flag out to run them all".into()
            );
        }
        if !names.iter().any(|n| name_holds(n, o)) {
            return Err(format!(
                "--anchor-only {o:?} matches none of this run's comparisons; give part of one of: {}",
                names.join("; ")
            ));
        }
    }
    Ok(())
}

/// The pairings the found tools allow, for each XDP mode. `engines`: the generator engines
/// the run covers (rxdrop against xdpsock runs once per engine); `cpu_pps`: the offered
/// rate of the CPU comparisons (below saturation); `coalesce_us`: the coalescing times of
/// the coalesced ones (one pairing each).
pub fn plan(
    tools: &Tools,
    xdp_modes: &[String],
    engines: &[String],
    cpu_pps: f64,
    coalesce_us: &[u32],
) -> Vec<Pairing> {
    let mut v = Vec::new();
    for xm in xdp_modes {
        let p = |name: String, metric, ours, theirs, goal| Pairing {
            name,
            xdp_mode: xm.clone(),
            metric,
            ours,
            theirs,
            goal,
        };
        let ours_rx = |engine, pps| Side {
            subject: Subject::Xdpipe { mode: "rxdrop", wait: AnchorWait::Spin, all: false },
            driver: Driver::Gen { engine, pps },
        };
        if tools.xdpsock.is_some() {
            for e in engines {
                let engine: &'static str = if e == "xdp-live" { "xdp-live" } else { "xsk" };
                v.push(p(
                    format!("rxdrop vs xdpsock rxdrop (gen {engine})"),
                    Metric::RxPps,
                    ours_rx(engine, None),
                    Side {
                        subject: Subject::Xdpsock { l2fwd: false, poll: false, busy_poll: false },
                        driver: Driver::Gen { engine, pps: None },
                    },
                    Goal::AtLeast(1.0),
                ));
                if engine == "xdp-live" {
                    // xdpsock steers every frame; xdpipe's default filter parses to the UDP
                    // port first. With the receive chain loaded, the same steering policy
                    // on both sides separates the pipeline from the filter's cost.
                    v.push(p(
                        "rxdrop --filter all vs xdpsock rxdrop (gen xdp-live, both steer every frame)".into(),
                        Metric::RxPps,
                        Side {
                            subject: Subject::Xdpipe { mode: "rxdrop", wait: AnchorWait::Spin, all: true },
                            driver: Driver::Gen { engine, pps: None },
                        },
                        Side {
                            subject: Subject::Xdpsock { l2fwd: false, poll: false, busy_poll: false },
                            driver: Driver::Gen { engine, pps: None },
                        },
                        Goal::AtLeast(1.0),
                    ));
                }
            }
            // CPU per frame in a sleeping wait, below saturation: plain, and with
            // coalescing (which trades latency for CPU, as NIC interrupt moderation does).
            let waits = std::iter::once((AnchorWait::Sleep, String::new(), 0.9)).chain(
                coalesce_us.iter().map(|&us| (AnchorWait::SleepCoalesced { us }, format!(" --coalesce-us {us}"), 0.6)),
            );
            for (wait, what, goal) in waits {
                v.push(p(
                    format!("rxdrop --poll{what} CPU per frame vs xdpsock -p, at {:.0} kpps", cpu_pps / 1e3),
                    Metric::CpuNsPerPkt,
                    Side {
                        subject: Subject::Xdpipe { mode: "rxdrop", wait, all: false },
                        driver: Driver::Gen { engine: "xsk", pps: Some(cpu_pps) },
                    },
                    Side {
                        subject: Subject::Xdpsock { l2fwd: false, poll: true, busy_poll: false },
                        driver: Driver::Gen { engine: "xsk", pps: Some(cpu_pps) },
                    },
                    Goal::AtMost(goal),
                ));
            }
            // The kernel's busy polling drives a NAPI, which a veth has only with a native
            // program.
            if xm == "native" {
                let engine: &'static str = if engines.iter().any(|e| e == "xdp-live") { "xdp-live" } else { "xsk" };
                v.push(p(
                    format!("rxdrop --poll busy-poll vs xdpsock -B (gen {engine})"),
                    Metric::RxPps,
                    Side {
                        subject: Subject::Xdpipe { mode: "rxdrop", wait: AnchorWait::BusyPoll, all: false },
                        driver: Driver::Gen { engine, pps: None },
                    },
                    Side {
                        subject: Subject::Xdpsock { l2fwd: false, poll: false, busy_poll: true },
                        driver: Driver::Gen { engine, pps: None },
                    },
                    Goal::AtLeast(1.0),
                ));
            }
            v.push(p(
                "l2fwd vs xdpsock l2fwd (forwarded rate)".into(),
                Metric::FwdPps,
                Side {
                    subject: Subject::Xdpipe { mode: "l2fwd", wait: AnchorWait::Spin, all: false },
                    driver: Driver::Gen { engine: "xsk", pps: None },
                },
                Side {
                    subject: Subject::Xdpsock { l2fwd: true, poll: false, busy_poll: false },
                    driver: Driver::Gen { engine: "xsk", pps: None },
                },
                Goal::AtLeast(1.1),
            ));
            // A generator is measured at the cheapest sink there is, the same for both.
            // On veth the sink's receive work runs on the generator's core: an AF_XDP
            // sink's copy into its UMEM costs that core about as much as the generator
            // itself and pulls both sides' rates together (1.01 with it, 1.11 with an
            // XDP_DROP sink, same build, same hour; README).
            let (sink, at) = if tools.xdp_bench.is_some() {
                (Subject::XdpBenchDrop, "an XDP_DROP sink")
            } else {
                (Subject::Xdpipe { mode: "rxdrop", wait: AnchorWait::Spin, all: true }, "an AF_XDP rxdrop sink")
            };
            v.push(p(
                format!("gen --engine xsk vs xdpsock txonly (rate at {at})"),
                Metric::RxPps,
                Side { subject: sink.clone(), driver: Driver::Gen { engine: "xsk", pps: None } },
                Side { subject: sink, driver: Driver::XdpsockTx },
                Goal::AtLeast(1.1),
            ));
        }
        if tools.xdp_bench.is_some() {
            v.push(p(
                "rxdrop as a share of the XDP_DROP ceiling (xdp-bench drop, gen xdp-live)".into(),
                Metric::RxPps,
                ours_rx("xdp-live", None),
                Side { subject: Subject::XdpBenchDrop, driver: Driver::Gen { engine: "xdp-live", pps: None } },
                Goal::Share,
            ));
            if tools.xdp_trafficgen.is_some() {
                v.push(p(
                    "gen --engine xdp-live vs xdp-trafficgen udp (rate at an XDP_DROP sink)".into(),
                    Metric::RxPps,
                    Side { subject: Subject::XdpBenchDrop, driver: Driver::Gen { engine: "xdp-live", pps: None } },
                    Side { subject: Subject::XdpBenchDrop, driver: Driver::Trafficgen },
                    Goal::AtLeast(1.0),
                ));
            }
        }
    }
    v
}

/// Why a side of a pairing could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    /// Creating or configuring the veth testbed failed.
    #[error(transparent)]
    Testbed(#[from] TestbedError),
    /// A tool's process could not be started.
    #[error("starting {what}: {source}")]
    Spawn {
        /// Which process: `anchor subject` or `anchor driver`.
        what: String,
        /// The spawn error.
        #[source]
        source: std::io::Error,
    },
    /// A side failed: a tool not found, exited badly or never got ready, xdpipe's receiver
    /// or generator failed, or the subject measured nothing.
    #[error("{what}: {detail}")]
    Failed {
        /// The tool, or the side's description or command line.
        what: String,
        /// What went wrong; for a tool, with the tail of its output.
        detail: String,
    },
    /// The stop flag was set (before the side started or while it ran).
    #[error("interrupted")]
    Interrupted,
}

/// One side's measurement in one trial.
#[derive(Clone, Debug)]
pub struct Measured {
    /// The metric's value, in [`Metric::unit`]; always positive.
    pub value: f64,
    /// xdpipe's receiver's one-way p99 latency, us (CPU pairings, from the stamps).
    pub p99_us: Option<f64>,
    /// The subject's and the driver's command lines.
    pub command: String,
}

/// A child process whose stdout and stderr are collected as they come.
struct Proc {
    what: String,
    child: Child,
    out: Arc<Mutex<String>>,
    stdout: Arc<Mutex<String>>,
    command: String,
}

impl Proc {
    fn spawn(what: &str, ns: &str, argv: &[String]) -> Result<Self, AnchorError> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| AnchorError::Failed { what: what.to_owned(), detail: "empty command".into() })?;
        let mut cmd = sys::command_in(Some(ns), program);
        cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).stdin(Stdio::null());
        let mut child = cmd.spawn().map_err(|source| AnchorError::Spawn { what: what.to_owned(), source })?;
        let out = Arc::new(Mutex::new(String::new()));
        let stdout = Arc::new(Mutex::new(String::new()));
        if let Some(e) = child.stderr.take() {
            let out = out.clone();
            thread::spawn(move || {
                for l in BufReader::new(e).lines().map_while(Result::ok) {
                    if let Ok(mut o) = out.lock() {
                        o.push_str(&l);
                        o.push('\n');
                    }
                }
            });
        }
        if let Some(mut s) = child.stdout.take() {
            let (out, stdout) = (out.clone(), stdout.clone());
            thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let text = String::from_utf8_lossy(&buf[..n]);
                    if let (Ok(mut o), Ok(mut so)) = (out.lock(), stdout.lock()) {
                        o.push_str(&text);
                        so.push_str(&text);
                    }
                }
            });
        }
        let command = argv.iter().map(|a| a.rsplit('/').next().unwrap_or(a)).collect::<Vec<_>>().join(" ");
        Ok(Self { what: what.to_owned(), child, out, stdout, command })
    }

    fn output(&self) -> String {
        self.out.lock().map(|o| o.clone()).unwrap_or_default()
    }

    fn stdout(&self) -> String {
        self.stdout.lock().map(|o| o.clone()).unwrap_or_default()
    }

    /// Waits until the output contains `marker` (or the process ends / `timeout` passes).
    fn wait_for(&mut self, marker: &str, timeout: Duration) -> Result<(), AnchorError> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.output().contains(marker) {
                return Ok(());
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                return Err(self.failed(format!("exited ({st}) before it was ready")));
            }
            if Instant::now() > deadline {
                return Err(self.failed(format!("not ready after {} s", timeout.as_secs())));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn failed(&self, why: String) -> AnchorError {
        let out = self.output();
        let tail: Vec<&str> = out.lines().rev().take(8).collect::<Vec<_>>().into_iter().rev().collect();
        AnchorError::Failed { what: self.what.clone(), detail: format!("{why}: {}", tail.join(" | ")) }
    }

    /// SIGINT, then waits up to `grace` before SIGKILL. Returns all output.
    fn stop(mut self, grace: Duration) -> (String, String) {
        if matches!(self.child.try_wait(), Ok(None)) {
            sys::send_signal(self.child.id() as i32, libc::SIGINT);
        }
        let deadline = Instant::now() + grace;
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        // Let the reader threads take the last bytes.
        thread::sleep(Duration::from_millis(50));
        (self.output(), self.stdout())
    }

    fn wait(mut self, timeout: Duration) -> Result<(String, String), AnchorError> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(st)) if st.success() => break,
                Ok(Some(st)) => return Err(self.failed(format!("exited with {st}"))),
                _ if Instant::now() > deadline => return Err(self.failed("did not finish in time".into())),
                _ => thread::sleep(Duration::from_millis(20)),
            }
        }
        thread::sleep(Duration::from_millis(50));
        Ok((self.output(), self.stdout()))
    }
}

impl Drop for Proc {
    /// A tool left running by an error path is killed and reaped.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Scheduler run time of every thread of `pid`, ns (0 if it is gone).
pub fn process_cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// The steady-state rate from per-second samples: the samples of at least half the peak,
/// less the first and last of them (partial seconds) when three or more remain; median.
pub fn steady_rate(samples: &[f64]) -> f64 {
    let peak = samples.iter().copied().fold(0.0, f64::max);
    if peak <= 0.0 {
        return 0.0;
    }
    let mut s: Vec<f64> = samples.iter().copied().filter(|&x| x >= peak / 2.0).collect();
    if s.len() >= 3 {
        s = s[1..s.len() - 1].to_vec();
    }
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 { s[n / 2] } else { (s[n / 2 - 1] + s[n / 2]) / 2.0 }
}

/// xdpsock's periodic statistics: per-second (pps) samples and the last total for the
/// `rx` or `tx` row.
pub fn parse_xdpsock(out: &str, row: &str) -> (Vec<f64>, u64) {
    let mut samples = Vec::new();
    let mut total = 0;
    for l in out.lines() {
        let mut f = l.split_whitespace();
        if f.next() != Some(row) {
            continue;
        }
        let (Some(pps), Some(pkts)) =
            (f.next().and_then(|x| x.parse::<f64>().ok()), f.next().and_then(|x| x.parse::<u64>().ok()))
        else {
            continue;
        };
        samples.push(pps);
        total = pkts;
    }
    (samples, total)
}

/// xdp-bench's per-interval `Summary N rx/s` samples.
pub fn parse_xdp_bench(out: &str) -> Vec<f64> {
    out.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            (f.next() == Some("Summary") && l.contains("rx/s")).then_some(())?;
            f.next()?.replace(',', "").parse::<f64>().ok()
        })
        .collect()
}

/// Runs one side of a pairing for `secs` of traffic on a fresh testbed. `stamps`: an
/// xdpipe receiver reads every frame's stamp, for its latency ([`Measured::p99_us`]); the
/// trials whose CPU is compared do not, as xdpsock reads no frame either.
#[allow(clippy::too_many_arguments)]
pub fn measure(
    tools: &Tools,
    ours: &dyn XdpipeSides,
    pairing: &Pairing,
    side: &Side,
    secs: f64,
    stamps: bool,
    stop: &Arc<AtomicBool>,
) -> Result<Measured, AnchorError> {
    if stop.load(Ordering::Relaxed) {
        return Err(AnchorError::Interrupted);
    }
    let tb = Testbed::create(&unique_name("a"), 1)?;
    let native = pairing.xdp_mode == "native";
    let live = matches!(side.driver, Driver::Gen { engine: "xdp-live", .. } | Driver::Trafficgen);
    if live && !native {
        tb.rx_gro_on()?;
    }
    let tool = |p: &Option<PathBuf>, name: &str| {
        p.as_ref()
            .map(|p| p.display().to_string())
            .ok_or_else(|| AnchorError::Failed { what: name.into(), detail: "not found".into() })
    };
    let s = |x: &str| x.to_owned();
    let xsk_mode = if native { "-N" } else { "-S" };
    fn failed(what: &'static str) -> impl Fn(String) -> AnchorError {
        move |detail| AnchorError::Failed { what: what.to_owned(), detail }
    }
    let (subject_argv, ready) = match &side.subject {
        Subject::Xdpipe { mode, wait, all } => {
            let (cfg, desc) = ours.receiver(mode, *wait, *all, &pairing.xdp_mode).map_err(failed("xdpipe receiver"))?;
            (vec![], Some((RunConfig { iface: RX_IFACE.into(), stamps, ..cfg }, desc)))
        }
        Subject::Xdpsock { l2fwd, poll, busy_poll } => {
            let mut a = vec![s("stdbuf"), s("-oL"), s("taskset"), s("-c"), s("1"), tool(&tools.xdpsock, "xdpsock")?];
            a.extend([
                s(if *l2fwd { "-l" } else { "-r" }),
                s("-i"),
                s(RX_IFACE),
                s("-q"),
                s("0"),
                s(xsk_mode),
                s("-c"),
            ]);
            if *poll {
                a.push(s("-p"));
            }
            if *busy_poll {
                a.push(s("-B"));
                set_busy_poll_knobs(&tb)?;
            }
            (a, None)
        }
        Subject::XdpBenchDrop => {
            let m = if native { "native" } else { "skb" };
            (
                vec![
                    s("stdbuf"),
                    s("-oL"),
                    tool(&tools.xdp_bench, "xdp-bench")?,
                    s("drop"),
                    s(RX_IFACE),
                    s("-m"),
                    s(m),
                    s("-i"),
                    s("1"),
                ],
                None,
            )
        }
    };
    let (subject_cmd, subject) = match ready {
        Some((cfg, desc)) => {
            let r = Receiver::start("subject", Some(&tb.rx_ns), cfg)
                .map_err(|e| AnchorError::Failed { what: desc.clone(), detail: e.to_string() })?;
            (desc, SubjectRun::Ours(r))
        }
        None => {
            let marker = if matches!(side.subject, Subject::XdpBenchDrop) { "Dropping packets" } else { "sock0@" };
            let mut p = Proc::spawn("anchor subject", &tb.rx_ns, &subject_argv)?;
            p.wait_for(marker, Duration::from_secs(30))?;
            // xdpsock and xdp-bench print their first line before the socket or program is
            // fully in place; give them the same second xdpipe's readiness covers.
            thread::sleep(Duration::from_secs(1));
            (p.command.clone(), SubjectRun::Theirs(p))
        }
    };
    let mut our_gen = None;
    let driver_argv = match &side.driver {
        Driver::Gen { engine, pps } => {
            let (cfg, desc) = ours.generator(engine, *pps, secs).map_err(failed("xdpipe generator"))?;
            let ip = crate::veth::ip4;
            let cfg =
                GenConfig { iface: TX_IFACE.into(), dst_mac: tb.rx_mac, src_ip: ip(TX_IP), dst_ip: ip(RX_IP), ..cfg };
            our_gen = Some((cfg, desc));
            vec![]
        }
        Driver::XdpsockTx => {
            let mut a = vec![s("stdbuf"), s("-oL"), s("taskset"), s("-c"), s("0"), tool(&tools.xdpsock, "xdpsock")?];
            a.extend([
                s("-t"),
                s("-i"),
                s(TX_IFACE),
                s("-q"),
                s("0"),
                s(xsk_mode),
                s("-c"),
                s("-s"),
                s("64"),
                s("-d"),
                format!("{}", secs.ceil() as u64),
            ]);
            a
        }
        Driver::Trafficgen => {
            let mut a = vec![
                s("stdbuf"),
                s("-oL"),
                s("taskset"),
                s("-c"),
                s("0"),
                tool(&tools.xdp_trafficgen, "xdp-trafficgen")?,
            ];
            a.extend([s("udp"), s(TX_IFACE), s("-m"), fmt_mac(&tb.rx_mac), s("-t"), s("1")]);
            a
        }
    };
    let subject_cpu = || match &subject {
        SubjectRun::Ours(_) => own_threads_cpu_ns(&["xdpipe-subject", "xdpipe-q"]),
        SubjectRun::Theirs(p) => process_cpu_ns(p.child.id()),
    };
    let cpu0 = subject_cpu();
    let (driver_cmd, driver_result) = match our_gen {
        Some((cfg, desc)) => {
            let h = start_generator(Some(&tb.tx_ns), cfg, stop.clone())
                .map_err(|e| AnchorError::Failed { what: desc.clone(), detail: e.to_string() })?;
            let r = match h.join() {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(AnchorError::Failed { what: desc.clone(), detail: e.to_string() }),
                Err(_) => Err(AnchorError::Failed { what: desc.clone(), detail: "the generator panicked".into() }),
            };
            (desc, r)
        }
        None => {
            let driver = Proc::spawn("anchor driver", &tb.tx_ns, &driver_argv)?;
            let cmd = driver.command.clone();
            let r = if matches!(side.driver, Driver::Trafficgen) {
                let t0 = Instant::now();
                while t0.elapsed().as_secs_f64() < secs && !stop.load(Ordering::Relaxed) {
                    thread::sleep(Duration::from_millis(50));
                }
                driver.stop(Duration::from_secs(5));
                Ok(())
            } else {
                driver.wait(Duration::from_secs_f64(secs + 60.0)).map(|_| ())
            };
            (cmd, r)
        }
    };
    // Let the last frames land; then read the subject's CPU while it is still alive.
    thread::sleep(Duration::from_millis(300));
    let cpu_ns = subject_cpu().saturating_sub(cpu0);
    let (ours_summary, subject_out) = match subject {
        SubjectRun::Ours(r) => (Some(r.finish()), String::new()),
        SubjectRun::Theirs(p) => {
            // Their statistics print once a second: wait for a line after the traffic
            // ended. They may linger in their own teardown, which is not measured.
            thread::sleep(Duration::from_millis(1200));
            (None, p.stop(Duration::from_secs(2)).0)
        }
    };
    driver_result?;
    if stop.load(Ordering::Relaxed) {
        return Err(AnchorError::Interrupted);
    }
    let command = format!("{subject_cmd}  <-  {driver_cmd}");
    let bad = |d: String| AnchorError::Failed { what: subject_cmd.clone(), detail: d };
    let mut p99_us = None;
    let value = match (&side.subject, ours_summary) {
        (Subject::Xdpipe { .. }, Some(r)) => {
            let r = r.map_err(|e| bad(e.to_string()))?;
            p99_us = r.accounting.as_ref().and_then(|a| a.latency_ns.as_ref()).map(|l| l.p99 as f64 / 1e3);
            match pairing.metric {
                Metric::RxPps => r.active_rx_pps,
                Metric::FwdPps => r.active_tx_pps,
                Metric::CpuNsPerPkt => per_frame(cpu_ns, r.rx_packets),
            }
        }
        (Subject::Xdpsock { .. }, _) => {
            let row = if pairing.metric == Metric::FwdPps { "tx" } else { "rx" };
            let (samples, total) = parse_xdpsock(&subject_out, row);
            match pairing.metric {
                Metric::CpuNsPerPkt => per_frame(cpu_ns, total),
                _ => steady_rate(&samples),
            }
        }
        (Subject::XdpBenchDrop, _) => steady_rate(&parse_xdp_bench(&subject_out)),
        (Subject::Xdpipe { .. }, None) => unreachable!("xdpipe's subject runs in this process"),
    };
    // NaN is not a measurement either.
    if value.is_nan() || value <= 0.0 {
        return Err(bad(format!(
            "measured nothing; its output: {}",
            subject_out.lines().rev().take(6).collect::<Vec<_>>().join(" | ")
        )));
    }
    drop(tb);
    Ok(Measured { value, p99_us, command })
}

/// xdpsock -B's device side: the testbed's receiving veth gets the napi_defer_hard_irqs
/// and gro_flush_timeout `xdpipe run --poll busy-poll` gives its NAPIs (sysfs, before
/// xdpsock attaches: the NAPI it creates starts from the device's values). The testbed is
/// this pairing's own and goes after the trial, so there is nothing to restore.
fn set_busy_poll_knobs(tb: &Testbed) -> Result<(), AnchorError> {
    let d = crate::config::BusyPollSettings::DEFAULT;
    let failed = |e: crate::net::NetError| AnchorError::Failed {
        what: "xdpsock -B's device knobs".into(),
        detail: e.to_string(),
    };
    let ns = crate::net::ns::open(&tb.rx_ns).map_err(failed)?;
    for (knob, v) in [("napi_defer_hard_irqs", d.defer_hard_irqs as u64), ("gro_flush_timeout", d.gro_flush_timeout_ns)]
    {
        crate::net::sysfs::write_net_in(&ns, RX_IFACE, &format!("{RX_IFACE}/{knob}"), &v.to_string())
            .map_err(failed)?;
    }
    Ok(())
}

fn per_frame(cpu_ns: u64, frames: u64) -> f64 {
    if frames == 0 { 0.0 } else { cpu_ns as f64 / frames as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    const XDPSOCK: &str = "
 sock0@xp-rx:0 rxdrop xdp-drv 
                   pps            pkts           1.00          
rx                 0              0             
tx                 0              0             

 sock0@xp-rx:0 rxdrop xdp-drv 
                   pps            pkts           1.00          
rx                 100987         101347        
tx                 0              0             

 sock0@xp-rx:0 rxdrop xdp-drv 
                   pps            pkts           1.00          
rx                 200001         301368        
tx                 0              0             

 sock0@xp-rx:0 rxdrop xdp-drv 
                   pps            pkts           1.00          
rx                 200000         501388        
tx                 0              0             

 sock0@xp-rx:0 rxdrop xdp-drv 
                   pps            pkts           1.00          
rx                 98601          600000        
tx                 0              0             
";

    const XDP_BENCH: &str = "Dropping packets on xp-rx (ifindex 2; driver veth)
Summary                         0 rx/s                  0 err/s        
Summary                   3622901 rx/s                  0 err/s        
Summary                   7399793 rx/s                  0 err/s        
Summary                   7546277 rx/s                  0 err/s        

Summary                   3677035 rx/s                  0 err/s        
  Duration            : 5.0s
  Packets received    : 22094039  
";

    #[test]
    fn xdpsock_rows_give_samples_and_the_last_total() {
        let (s, total) = parse_xdpsock(XDPSOCK, "rx");
        assert_eq!(s, vec![0.0, 100987.0, 200001.0, 200000.0, 98601.0]);
        assert_eq!(total, 600000);
        assert_eq!(steady_rate(&s), 200001.0);
        let (t, tt) = parse_xdpsock(XDPSOCK, "tx");
        assert_eq!((steady_rate(&t), tt), (0.0, 0));
    }

    #[test]
    fn xdp_bench_summary_lines() {
        let s = parse_xdp_bench(XDP_BENCH);
        assert_eq!(s, vec![0.0, 3622901.0, 7399793.0, 7546277.0, 3677035.0]);
        // Ramp seconds under half the peak go; of the two left, the median.
        assert_eq!(steady_rate(&s), (7399793.0 + 7546277.0) / 2.0);
    }

    #[test]
    fn steady_rate_of_nothing_is_zero() {
        assert_eq!(steady_rate(&[]), 0.0);
        assert_eq!(steady_rate(&[0.0, 0.0]), 0.0);
        assert_eq!(steady_rate(&[5.0]), 5.0);
    }

    #[test]
    fn the_plan_follows_the_tools_found() {
        let none = Tools::default();
        assert!(plan(&none, &["native".into()], &["xsk".into()], 2e5, &[100]).is_empty());
        let all = Tools {
            xdpsock: Some("/x".into()),
            xdp_bench: Some("/b".into()),
            xdp_trafficgen: Some("/t".into()),
            refused: vec![],
        };
        let p = plan(&all, &["skb".into(), "native".into()], &["xsk".into(), "xdp-live".into()], 2e5, &[100]);
        // Per mode: rxdrop x2 engines (+ --filter all with xdp-live), CPU plain and
        // coalesced, l2fwd, txonly, ceiling, trafficgen; native also busy-poll.
        assert_eq!(p.len(), 19);
        let cpu = |wait| {
            p.iter().find(|x| {
                x.metric == Metric::CpuNsPerPkt
                    && matches!(x.ours.subject, Subject::Xdpipe { wait: w, .. } if w == wait)
            })
        };
        assert_eq!(cpu(AnchorWait::Sleep).map(|x| x.goal), Some(Goal::AtMost(0.9)));
        assert_eq!(cpu(AnchorWait::SleepCoalesced { us: 100 }).map(|x| x.goal), Some(Goal::AtMost(0.6)));
        let busy: Vec<_> =
            p.iter().filter(|x| matches!(x.theirs.subject, Subject::Xdpsock { busy_poll: true, .. })).collect();
        assert_eq!(busy.len(), 1, "busy-poll only in native mode");
        assert_eq!((busy[0].xdp_mode.as_str(), busy[0].goal), ("native", Goal::AtLeast(1.0)));
        assert_eq!(AnchorWait::SleepCoalesced { us: 100 }.run_args(), ["--poll", "forever", "--coalesce-us", "100"]);
        // The generators meet at xdp-bench's XDP_DROP sink when it is there, else at an
        // AF_XDP one.
        let txonly = p.iter().find(|x| x.theirs.driver == Driver::XdpsockTx).expect("a txonly pairing");
        assert_eq!((&txonly.ours.subject, &txonly.theirs.subject), (&Subject::XdpBenchDrop, &Subject::XdpBenchDrop));
        let no_bench = Tools { xdp_bench: None, ..all.clone() };
        let p = plan(&no_bench, &["native".into()], &["xsk".into()], 2e5, &[100]);
        let txonly = p.iter().find(|x| x.theirs.driver == Driver::XdpsockTx).expect("a txonly pairing");
        assert!(matches!(txonly.ours.subject, Subject::Xdpipe { mode: "rxdrop", all: true, .. }), "{txonly:?}");
        let only_bench = Tools { xdp_bench: Some("/b".into()), ..Default::default() };
        let p = plan(&only_bench, &["native".into()], &["xsk".into()], 2e5, &[100]);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].goal, Goal::Share);
    }

    #[test]
    fn the_coalesced_pairings_follow_the_times_and_only_selects_by_name() {
        let all = Tools { xdpsock: Some("/x".into()), ..Default::default() };
        let cpu = |p: &[Pairing]| -> Vec<String> {
            p.iter().filter(|x| x.metric == Metric::CpuNsPerPkt).map(|x| x.name.clone()).collect()
        };
        let p = plan(&all, &["native".into()], &["xsk".into()], 2e5, &DEFAULT_ANCHOR_COALESCE_US);
        assert_eq!(
            cpu(&p),
            [
                "rxdrop --poll CPU per frame vs xdpsock -p, at 200 kpps",
                "rxdrop --poll --coalesce-us 100 CPU per frame vs xdpsock -p, at 200 kpps",
                "rxdrop --poll --coalesce-us 500 CPU per frame vs xdpsock -p, at 200 kpps",
            ]
        );
        let n = p.len();
        assert_eq!(select(p.clone(), &[]).len(), n, "no texts: every pairing");
        assert_eq!(cpu(&select(p.clone(), &["cpu PER frame".into()])).len(), 3);
        assert_eq!(select(p.clone(), &["cpu per frame".into()]).len(), 3, "only those");
        let two = select(p, &["coalesce-us 500".into(), "l2fwd".into()]);
        assert_eq!(two.len(), 2);
        let (modes, engines) = (["native".to_string()], ["xsk".to_string()]);
        assert!(check_only(&["L2FWD".into()], &modes, &engines, 2e5, &[100]).is_ok());
        let e = check_only(&["coalesce-us 500".into()], &modes, &engines, 2e5, &[100]).unwrap_err();
        assert!(e.contains("\"coalesce-us 500\"") && e.contains("--coalesce-us 100 CPU per frame"), "{e}");
    }

    #[test]
    fn tools_are_taken_only_from_root_owned_directories_others_cannot_write() {
        use std::os::unix::fs::{PermissionsExt as _, chown};
        if !crate::sys::is_root() {
            assert!(!std::env::var("CI").is_ok_and(|v| v == "true"), "CI=true and this test needs root (chown)");
            eprintln!("SKIPPED: needs root (chown)");
            return;
        }
        let Some(base) = trusted_test_dir() else { return };
        let dir = base.join("tools");
        std::fs::create_dir(&dir).unwrap();
        let tool = dir.join("xdpsock");
        std::fs::write(&tool, "#!/bin/true\n").unwrap();
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mode = |m| std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(m)).unwrap();
        mode(0o755);
        let t = Tools::find_in(std::slice::from_ref(&dir), &[]);
        assert_eq!((t.xdpsock.as_ref(), t.refused.len()), (Some(&tool), 0), "{t:?}");
        // Found on PATH too, and refused there the same way.
        mode(0o775);
        let t = Tools::find_in(&[], std::slice::from_ref(&dir));
        assert_eq!(t.xdpsock, None);
        assert!(
            t.refused[0].contains("writable by its group (mode 775)") && t.refused[0].contains("chmod go-w"),
            "{t:?}"
        );
        mode(0o757);
        let t = Tools::find_in(std::slice::from_ref(&dir), &[]);
        assert!(t.refused[0].starts_with("--anchor-dir") && t.refused[0].contains("writable by others"), "{t:?}");
        mode(0o755);
        chown(&dir, Some(65534), None).unwrap();
        let t = Tools::find_in(std::slice::from_ref(&dir), &[]);
        assert_eq!(t.xdpsock, None);
        assert!(t.refused[0].contains("owned by uid 65534, not root"), "{t:?}");
        chown(&dir, Some(0), None).unwrap();
        // The tool itself, writable by others, is refused too.
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o777)).unwrap();
        let t = Tools::find_in(std::slice::from_ref(&dir), &[]);
        assert_eq!(t.xdpsock, None);
        assert!(t.refused[0].contains("xdpsock: writable by group and others"), "{t:?}");
        // A relative directory (PATH's "" or ".") is never used.
        let t = Tools::find_in(&[PathBuf::from(".")], &[]);
        assert!(t.refused[0].contains("not an absolute path"), "{t:?}");
        // A PATH directory without any tool is not reported.
        assert!(Tools::find_in(&[], &[PathBuf::from("relative-nothing-here")]).refused.is_empty());
        std::fs::remove_dir_all(&base).unwrap();
    }

    /// A new, empty, root-owned 0755 directory, every directory above which is root-owned
    /// and not writable by group or others (so not under /tmp): under the test binary's
    /// own directory in the target dir, else under /run. None (the test is skipped) if
    /// neither is such a place, which fails under CI=true.
    fn trusted_test_dir() -> Option<PathBuf> {
        use std::os::unix::fs::PermissionsExt as _;
        let exe_dir = std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf));
        let name = format!("xdpipe-anchors-{}-{}", std::process::id(), crate::sys::monotonic_ns());
        for base in exe_dir.into_iter().chain([PathBuf::from("/run")]) {
            if untrusted(&base).is_some() || untrusted_on_the_way(&base).is_some() {
                continue;
            }
            let dir = base.join(&name);
            // create_dir fails if the name exists: the directory is new and ours.
            if std::fs::create_dir(&dir).is_ok() {
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
                return Some(dir);
            }
        }
        let why = "no root-owned place above which every directory is root-owned and not group/other-writable \
                   (the test binary's directory, /run)";
        assert!(!std::env::var("CI").is_ok_and(|v| v == "true"), "CI=true and this test cannot run: {why}");
        eprintln!("SKIPPED: {why}");
        None
    }

    #[test]
    fn tool_directories_are_refused_when_a_directory_on_the_way_is_unsafe() {
        use std::os::unix::fs::{PermissionsExt as _, chown, symlink};
        if !crate::sys::is_root() {
            assert!(!std::env::var("CI").is_ok_and(|v| v == "true"), "CI=true and this test needs root (chown)");
            eprintln!("SKIPPED: needs root (chown)");
            return;
        }
        let Some(base) = trusted_test_dir() else { return };
        let mode = |p: &Path, m| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
        let tools_in = |parent: &Path| {
            let d = parent.join("tools");
            std::fs::create_dir_all(&d).unwrap();
            mode(&d, 0o755);
            let tool = d.join("xdpsock");
            std::fs::write(&tool, "#!/bin/true\n").unwrap();
            mode(&tool, 0o755);
            d
        };
        let find = |d: &Path| Tools::find_in(&[d.to_path_buf()], &[]);
        let (ok, open, sticky) = (base.join("ok"), base.join("open"), base.join("sticky"));
        for d in [&ok, &open, &sticky] {
            std::fs::create_dir(d).unwrap();
            mode(d, 0o755);
        }
        let good = tools_in(&ok);
        let t = find(&good);
        assert_eq!((t.xdpsock, t.refused.len()), (Some(good.join("xdpsock")), 0), "a safe chain is used");

        // A parent others can write: the root-owned 0755 directory below it is refused.
        let below_open = tools_in(&open);
        mode(&open, 0o757);
        let t = find(&below_open);
        assert_eq!(t.xdpsock, None);
        let want = format!("{} on the way to it is writable by others (mode 757)", open.display());
        assert!(t.refused[0].starts_with("--anchor-dir") && t.refused[0].contains(&want), "{t:?}");
        assert!(t.refused[0].contains(&format!("chmod go-w {}", open.display())), "{t:?}");
        // The same on PATH.
        let t = Tools::find_in(&[], std::slice::from_ref(&below_open));
        assert!(t.xdpsock.is_none() && t.refused[0].starts_with("PATH directory"), "{t:?}");
        // A grandparent others can write: found at any depth.
        let deep = tools_in(&below_open.join("a"));
        let t = find(&deep);
        assert!(t.xdpsock.is_none() && t.refused[0].contains(&want), "{t:?}");
        // A parent not owned by root.
        mode(&open, 0o755);
        chown(&open, Some(65534), None).unwrap();
        let t = find(&below_open);
        assert!(t.xdpsock.is_none() && t.refused[0].contains("owned by uid 65534, not root"), "{t:?}");
        chown(&open, Some(0), None).unwrap();
        mode(&open, 0o757);

        // Symbolic links: one held by the unsafe directory is refused even though it
        // points into the safe one; one in a safe place is followed, into the safe
        // directory (used) or into the unsafe one (refused); a tool that is a link into
        // the unsafe directory is refused.
        symlink(&good, open.join("link")).unwrap();
        let t = find(&open.join("link"));
        assert!(t.xdpsock.is_none() && t.refused[0].contains(&want), "{t:?}");
        symlink("tools", ok.join("rel-link")).unwrap();
        let t = find(&ok.join("rel-link"));
        assert_eq!((t.xdpsock, t.refused.len()), (Some(ok.join("rel-link/xdpsock")), 0), "{:?}", t.refused);
        symlink(&below_open, ok.join("to-open")).unwrap();
        let t = find(&ok.join("to-open"));
        assert!(t.xdpsock.is_none() && t.refused[0].contains(&want), "{t:?}");
        let linked_tool = ok.join("linked");
        std::fs::create_dir(&linked_tool).unwrap();
        mode(&linked_tool, 0o755);
        symlink(below_open.join("xdpsock"), linked_tool.join("xdpsock")).unwrap();
        let t = find(&linked_tool);
        assert_eq!(t.xdpsock, None);
        assert!(t.refused[0].starts_with(&format!("{}: ", linked_tool.join("xdpsock").display())), "{t:?}");
        assert!(t.refused[0].contains(&want), "{t:?}");

        // World-writable with the sticky bit (as /tmp): refused, with no chmod advice.
        let below_sticky = tools_in(&sticky);
        mode(&sticky, 0o1777);
        let t = find(&below_sticky);
        assert!(t.xdpsock.is_none(), "{t:?}");
        assert!(t.refused[0].contains("writable by group and others (mode 1777)"), "{t:?}");
        assert!(t.refused[0].contains("sticky bit, as /tmp is") && !t.refused[0].contains("chmod"), "{t:?}");
        // And so is anything under /tmp itself.
        let tmp = crate::sys::private_temp_dir("xdpipe-anchors").unwrap();
        let in_tmp = tools_in(&tmp);
        let t = find(&in_tmp);
        assert!(t.xdpsock.is_none() && t.refused[0].contains("sticky bit"), "{t:?}");
        std::fs::remove_dir_all(&tmp).unwrap();
        std::fs::remove_dir_all(&base).unwrap();
    }
}
