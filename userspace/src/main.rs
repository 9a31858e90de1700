//! The `xdpipe` binary: parses the command line, validates it (`cli`), dispatches, and
//! maps errors to exit codes: 2 for flags that are wrong (nothing was created), 1 for
//! everything else. `cli` holds the flags, their validation and every command's printing.
#![deny(unsafe_code)]

mod cli;

use std::process::ExitCode;

use cli::{CliError, Cmd};

/// The exit status of a command whose output pipe closed (`xdpipe run | head`): what a
/// shell reports for a process SIGPIPE ended, 128 + 13.
const CLOSED_PIPE: u8 = 141;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).format_timestamp(None).init();
    // Rust ignores SIGPIPE, so a write to a closed stdout or stderr fails with EPIPE and
    // println!/eprintln! panic. That panic unwinds like any other (every teardown guard
    // runs); here it ends the command quietly with the closed-pipe status instead of a
    // panic message nobody can read.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !closed_pipe(info.payload()) {
            default_hook(info);
        }
    }));
    match std::panic::catch_unwind(dispatch) {
        Ok(code) => code,
        Err(payload) if closed_pipe(&*payload) => ExitCode::from(CLOSED_PIPE),
        Err(payload) => std::panic::resume_unwind(payload),
    }
}

/// Whether a panic's payload is std's "failed printing to stdout/stderr" on EPIPE.
fn closed_pipe(payload: &(dyn std::any::Any + Send)) -> bool {
    let msg = payload.downcast_ref::<String>().map(String::as_str).or_else(|| payload.downcast_ref::<&str>().copied());
    msg.is_some_and(|m| m.starts_with("failed printing to") && m.contains("Broken pipe"))
}

fn dispatch() -> ExitCode {
    let result = match cli::parse_from(std::env::args_os()).unwrap_or_else(|e| e.exit()).cmd {
        Cmd::Run(args) => then(args.validate(), cli::run::cmd_run),
        Cmd::Gen(args) => then(args.validate(), cli::generator::cmd_gen),
        Cmd::Veth(args) => then(args.validate(), cli::veth::cmd_veth),
        Cmd::Bench(args) => cli::bench::cmd_bench_gated(*args),
        Cmd::Agent(args) => cli::agent::cmd_agent(&args),
        Cmd::Report(args) => cli::bench::cmd_report(&args),
        Cmd::Compare(args) => cli::compare::cmd_compare(&args),
        Cmd::Gate(args) => cli::bench::cmd_gate(&args),
        Cmd::Testbed { action } => cli::admin::cmd_testbed(action),
        Cmd::Cleanup { all } => cli::admin::cmd_cleanup(all),
        Cmd::Features { iface, json } => cli::admin::cmd_features(&iface, json),
        Cmd::Napi { iface, json } => cli::admin::cmd_napi(&iface, json),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xdpipe: error: {e:#}");
            ExitCode::from(if e.is::<CliError>() { 2 } else { 1 })
        }
    }
}

/// Runs `cmd` on a validated config, or returns why the flags were refused.
fn then<C>(
    validated: Result<C, CliError>,
    cmd: impl FnOnce(C) -> anyhow::Result<ExitCode>,
) -> anyhow::Result<ExitCode> {
    cmd(validated?)
}
