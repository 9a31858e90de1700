//! The command line, in two stages (ripgrep's LowArgs -> HiArgs): clap parses raw flags
//! into the `*Args` structs here, then one conversion per command, `validate`, turns them
//! into the library's validated configs (`RunConfig`, `GenConfig`, `VethConfig`,
//! `BenchConfig`) and does every check between flags. Checks that need the device (queue
//! count, MTU, whether an interface exists) stay with the code that opens it.
//!
//! This module belongs to the binary, not to the `xdpipe` library, so nothing below it
//! can import it: the library and the bench crate derive no clap and never print. Only
//! this module prints.
pub mod admin;
pub mod agent;
pub mod bench;
pub mod compare;
pub mod generator;
pub mod run;
pub mod values;
pub mod veth;

#[cfg(test)]
mod tests;

use std::sync::{Arc, atomic::AtomicBool};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use xdpipe::config::ConfigError;

#[derive(Parser)]
#[command(name = "xdpipe", version, about = "AF_XDP packet pipeline and benchmark")]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Steer traffic of an interface's RX queues into AF_XDP sockets and process it.
    Run(run::RunArgs),
    /// Transmit stamped UDP/IPv4 frames from an AF_XDP socket.
    Gen(generator::GenArgs),
    /// Build a veth testbed, run gen in one namespace and run in the other, report
    /// sent / received / lost / latency, remove the testbed.
    Veth(veth::VethArgs),
    /// Benchmark a scenario matrix (max rate, RFC 2544 zero-loss rate, latency) and store
    /// the run under bench/runs/.
    Bench(Box<bench::BenchArgs>),
    /// Compare stored runs in one HTML page and a markdown summary.
    Report(bench::ReportArgs),
    /// Compare two stored runs scenario for scenario: ratios B / A with bootstrap
    /// intervals and verdicts (faster, slower, indistinguishable).
    Compare(compare::CompareArgs),
    /// Judge a stored run against a gate file (TOML thresholds): exit 0 pass, 1 fail, 2
    /// could not run; writes junit.xml and verdict.json into the run directory.
    Gate(bench::GateArgs),
    /// The traffic host's side of `bench --remote-gen`: typed requests on stdin, replies
    /// on stdout (started by bench over ssh).
    Agent(agent::AgentArgs),
    /// Create or destroy a veth testbed (two namespaces joined by a veth pair).
    Testbed {
        #[command(subcommand)]
        action: admin::TestbedAction,
    },
    /// Remove what an earlier xdpipe left behind (after SIGKILL): testbed namespaces whose
    /// owner process is gone (--all: every xdpipe testbed, kept ones included).
    Cleanup {
        #[arg(long)]
        all: bool,
    },
    /// Print a device's XDP feature flags as its driver declares them (netlink netdev
    /// family): native XDP, redirect target, AF_XDP zero-copy, multi-buffer.
    Features {
        #[arg(long, short = 'i')]
        iface: String,
        /// One JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Print a device's NAPI instances with their busy-polling settings (netlink netdev
    /// napi-get, Linux 6.13+): what `run --poll busy-poll` sets and restores.
    Napi {
        #[arg(long, short = 'i')]
        iface: String,
        /// One JSON array on stdout.
        #[arg(long)]
        json: bool,
    },
}

/// Parses a command line (`argv[0]` first), noting which `bench` flags were given on it:
/// the `--quick` preset fills in only the others.
pub fn parse_from<I, T>(argv: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use clap::{CommandFactory as _, FromArgMatches as _, parser::ValueSource};
    let m = Cli::command().try_get_matches_from(argv)?;
    let mut cli = Cli::from_arg_matches(&m)?;
    if let (Cmd::Bench(a), Some(sub)) = (&mut cli.cmd, m.subcommand_matches("bench")) {
        a.given = sub
            .ids()
            .filter(|id| sub.value_source(id.as_str()) == Some(ValueSource::CommandLine))
            .map(ToString::to_string)
            .collect();
    }
    Ok(cli)
}

/// Flags that are wrong by themselves or together: says which flag, what is wrong and
/// how to fix it. Nothing has been created when one is returned.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CliError(pub String);

impl From<ConfigError> for CliError {
    fn from(e: ConfigError) -> Self {
        CliError(e.to_string())
    }
}

/// `return Err(CliError(format!(...)))`.
macro_rules! refuse {
    ($($t:tt)*) => {
        return Err($crate::cli::CliError(format!($($t)*)))
    };
}
pub(crate) use refuse;

/// `--duration`: a positive number of seconds, below about four months.
pub(crate) fn duration(flag: &str, d: f64) -> Result<std::time::Duration, CliError> {
    if !(d > 0.0 && d < 1e7) {
        refuse!("{flag} {d}: must be a positive number of seconds");
    }
    Ok(std::time::Duration::from_secs_f64(d))
}

/// How long the second signal's teardown may take before the process exits anyway
/// (a guest's `guest.sh stop` takes up to 20 s).
const TEARDOWN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(25);

/// SIGINT, SIGTERM and SIGHUP (the terminal went away) set the returned flag: the command
/// ends and its destructors undo what it set up. A second one runs the undo actions still
/// registered ([`xdpipe::teardown::run_all`]: testbed namespaces, a guest, offloads) and
/// exits 130 at once. The flag is the same for every call.
pub fn stop_on_signals() -> anyhow::Result<Arc<AtomicBool>> {
    signal_thread(true)
}

/// [`stop_on_signals`] for `xdpipe run`: the signal thread keeps only CAP_BPF from its
/// start (capabilities are per thread; the workers keep none). It has nothing to undo
/// that needs more: the kernel detaches the XDP link when the process ends.
pub fn stop_on_signals_without_capabilities() -> anyhow::Result<Arc<AtomicBool>> {
    signal_thread(false)
}

fn signal_thread(keep_capabilities: bool) -> anyhow::Result<Arc<AtomicBool>> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    static STOP: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    if let Some(s) = STOP.get() {
        return Ok(s.clone());
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut signals =
        signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]).context("installing signal handlers")?;
    let flag = stop.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let dropped =
                if keep_capabilities { Ok(()) } else { xdpipe::sys::drop_capabilities_except(&[xdpipe::sys::CAP_BPF])
                    // Without CAP_BPF to keep (not root): keep none.
                    .or_else(|_| xdpipe::sys::drop_capabilities_except(&[]))
                    .map_err(|e| e.to_string()) };
            let _ = ready_tx.send(dropped);
            let name = |s: i32| match s {
                SIGINT => "SIGINT",
                SIGTERM => "SIGTERM",
                _ => "SIGHUP",
            };
            let mut seen = 0;
            for sig in signals.forever() {
                seen += 1;
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
                if seen == 1 {
                    eprintln!("xdpipe: {}: stopping (a second signal ends at once, after undoing the setup)", name(sig));
                    continue;
                }
                eprintln!("xdpipe: second signal ({}): undoing the setup and exiting", name(sig));
                let (ran, all) = xdpipe::teardown::run_all(TEARDOWN_DEADLINE);
                if !ran.is_empty() {
                    eprintln!("xdpipe: undone: {}", ran.join(", "));
                }
                if !all {
                    eprintln!("xdpipe: teardown still running after {TEARDOWN_DEADLINE:?}; `xdpipe cleanup` removes what is left");
                }
                std::process::exit(130);
            }
        })
        .context("starting the signal thread")?;
    ready_rx
        .recv()
        .context("the signal thread ended at its start")?
        .map_err(|e| anyhow::anyhow!("dropping the signal thread's capabilities: {e}"))?;
    let _ = STOP.set(stop.clone());
    Ok(stop)
}

/// Writes `v` as one JSON line on stdout.
pub(crate) fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}
