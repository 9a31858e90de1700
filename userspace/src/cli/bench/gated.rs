//! `xdpipe bench --gate FILE` (run, then judge the run) and `xdpipe gate FILE RUN_DIR`
//! (judge a stored run). The gate is a separate subcommand for stored runs rather than
//! `bench --from-run`: judging a run takes none of bench's twenty-odd flags, and a
//! subcommand cannot be given `--sizes` it would silently ignore.
//!
//! Exit codes: 0 every check passed (warnings pass), 1 a check failed, 2 the gate could
//! not run: a bad gate file or flags, a check without data, or a bench that failed or was
//! interrupted (2 even when a finished trial already failed a check, since the verdict is
//! not complete). Everything the gate needs (the file, each baseline, that the run will
//! measure what the checks ask for, the --junit directory) is checked before the run
//! directory is made.
use std::{path::Path, process::ExitCode};

use xdpipe_bench::{
    gate::{Gate, GateReport, Outcome},
    junit::junit,
    store::load,
};

use super::{BenchArgs, GateArgs, cmd_bench, run_bench, runner::utc_now};
use crate::cli::{CliError, refuse};

/// Exit code: could not run.
const COULD_NOT_RUN: u8 = 2;
/// Exit code: stopped by a signal (128 + SIGINT), as `xdpipe bench` without a gate.
const INTERRUPTED: u8 = 130;

/// `xdpipe bench`, with or without `--gate`.
pub fn cmd_bench_gated(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let cfg = args.validate()?;
    let remote = args.remote.validate(&cfg.target, cfg.gen_iface.as_deref())?;
    let Some(path) = &args.gate else {
        let stop = crate::cli::stop_on_signals()?;
        return cmd_bench(cfg, remote, stop);
    };
    let gate = Gate::load(path).map_err(|e| CliError(e.0))?;
    if cfg.target.is_vm() {
        return Err(CliError(format!(
            "--gate with --target {}: the guest's run is judged on the host; run bench without --gate, then \
             `xdpipe gate {} RUN_DIR` on the run directory it prints",
            cfg.target,
            path.display()
        ))
        .into());
    }
    gate.check_plan(&cfg.matrix.scenarios(), &cfg.procedure).map_err(|e| CliError(e.0))?;
    if let Some(j) = &args.junit {
        junit_dir_exists(j)?;
    }
    let stop = crate::cli::stop_on_signals().map_err(|e| CliError(format!("{e:#}")))?;
    let done = match run_bench(&cfg, remote, &stop) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("xdpipe: error: {e:#}");
            eprintln!("gate: could not run: the bench did not run (exit {COULD_NOT_RUN})");
            return Ok(ExitCode::from(COULD_NOT_RUN));
        }
    };
    if let Some(f) = &done.failure {
        eprintln!("gate: the bench stopped early ({f}); the finished trials are in {}", done.dir.display());
    }
    let report = gate.evaluate(&done.summary, &done.dir.display().to_string());
    let code = finish(&report, &done.dir, args.junit.as_deref(), done.failure.is_some())?;
    // Interrupted (Ctrl-C, SIGTERM): the partial verdict is written, and the exit status
    // is the one every other interrupted command gives.
    if stop.load(std::sync::atomic::Ordering::Relaxed) {
        eprintln!("gate: interrupted; the partial verdict is in {}", done.dir.display());
        return Ok(ExitCode::from(INTERRUPTED));
    }
    Ok(code)
}

/// `xdpipe gate FILE RUN_DIR`.
pub fn cmd_gate(a: &GateArgs) -> anyhow::Result<ExitCode> {
    let gate = Gate::load(&a.gate).map_err(|e| CliError(e.0))?;
    if !a.run.is_dir() {
        return Err(CliError(format!(
            "{}: not a run directory; give the directory `xdpipe bench` printed (bench/runs/...)",
            a.run.display()
        ))
        .into());
    }
    let run = load(&a.run).map_err(|e| CliError(format!("run {}: {e}", a.run.display())))?;
    if let Some(j) = &a.junit {
        junit_dir_exists(j)?;
    }
    let report = gate.evaluate(&run, &a.run.display().to_string());
    finish(&report, &a.run, a.junit.as_deref(), false)
}

fn junit_dir_exists(j: &Path) -> Result<(), CliError> {
    let parent = j.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !parent.is_dir() {
        refuse!(
            "--junit {}: no directory {}; create it, or give a path in an existing one",
            j.display(),
            parent.display()
        );
    }
    Ok(())
}

/// Prints each check, writes junit.xml and verdict.json into `dir` (and the JUnit report
/// to `junit_path`), and returns the exit code.
fn finish(report: &GateReport, dir: &Path, junit_path: Option<&Path>, bench_failed: bool) -> anyhow::Result<ExitCode> {
    for c in &report.checks {
        let word = match c.outcome {
            Outcome::Pass => "pass",
            Outcome::Warn => "WARN",
            Outcome::Fail => "FAIL",
            Outcome::CouldNotRun => "COULD NOT RUN",
        };
        eprintln!("gate: {word}: {}: {}: {}", c.scenario, c.check, c.message);
    }
    let code = if bench_failed { COULD_NOT_RUN } else { report.exit_code() };
    let (_, now) = utc_now();
    let xml = junit(report, &now);
    let verdict = serde_json::json!({
        "exit_code": code,
        "bench_failed": bench_failed,
        "passed": report.count(Outcome::Pass),
        "warned": report.count(Outcome::Warn),
        "failed": report.count(Outcome::Fail),
        "could_not_run": report.count(Outcome::CouldNotRun),
        "time": now,
        "gate": report.gate,
        "run": report.run,
        "checks": report.checks,
    });
    let mut targets = vec![(dir.join("junit.xml"), xml.clone()), (dir.join("verdict.json"), format!("{verdict:#}\n"))];
    if let Some(j) = junit_path {
        targets.push((j.to_path_buf(), xml));
    }
    for (p, text) in targets {
        if let Err(e) = std::fs::write(&p, text) {
            eprintln!("gate: could not run: writing {}: {e}", p.display());
            return Ok(ExitCode::from(COULD_NOT_RUN));
        }
    }
    eprintln!(
        "gate: {} check(s): {} passed, {} warned, {} failed, {} could not run; exit {code}; {}",
        report.checks.len(),
        report.count(Outcome::Pass),
        report.count(Outcome::Warn),
        report.count(Outcome::Fail),
        report.count(Outcome::CouldNotRun),
        dir.join("junit.xml").display()
    );
    Ok(ExitCode::from(code))
}
