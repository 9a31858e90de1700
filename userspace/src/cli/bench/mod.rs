//! `xdpipe bench` and `xdpipe report`: the CLI side of the benchmark. Trials run on veth
//! testbeds (or cabled ports) through `xdpipe::veth`; the scenario logic, search, storage
//! and report are in the `xdpipe-bench` crate.
mod args;
mod devices;
mod gated;
mod guest;
mod precision;
mod quick;
mod runner;

use std::{
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

use anyhow::Context as _;
pub use args::{BenchArgs, GateArgs, ReportArgs};
pub use gated::{cmd_bench_gated, cmd_gate};
use runner::{VethRunner, capture_env, link_bps, read_trim, utc_now};
use xdpipe::{
    anchors::{self, AnchorWait, Metric, Tools, plan},
    generator::GenConfig,
    run::RunConfig,
    stats::fmt_pps,
    veth::Ports,
};
use xdpipe_bench::{
    config::{AnchorConfig, BenchConfig},
    procedure::{TrialEvent, run_scenario},
    report::{NamedRun, html, markdown},
    scenario::Target,
    store::{RunDir, RunInfo, RunSummary, load},
};

/// The veth testbed's MTU (the kernel's default for a veth pair; `Testbed` leaves it).
const VETH_MTU: u32 = 1500;
/// The MTU of a jumbo veth testbed (made for sizes past 1518 B).
const VETH_JUMBO_MTU: u32 = 9000;

pub fn cmd_bench(
    cfg: BenchConfig,
    remote: Option<crate::cli::agent::RemoteGen>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<ExitCode> {
    match &cfg.target {
        Target::Vm(kind) => return guest::bench_in_guest(&cfg, guest::GuestTarget::Nic(*kind), &stop),
        Target::VmDev(d) => return guest::bench_in_guest(&cfg, guest::GuestTarget::Device(*d), &stop),
        Target::Path(_) => return guest::bench_in_guest(&cfg, guest::GuestTarget::Kubevirt, &stop),
        _ => {}
    }
    let done = run_bench(&cfg, remote, &stop)?;
    match done.failure {
        None => {
            eprintln!("bench: done; compare runs with `xdpipe report {}`", done.dir.display());
            Ok(ExitCode::SUCCESS)
        }
        Some(e) if stop.load(Ordering::Relaxed) => {
            eprintln!("bench: interrupted ({e}); the finished trials are in {}", done.dir.display());
            Ok(ExitCode::from(130))
        }
        Some(e) => Err(anyhow::anyhow!("a trial failed: {e}; the finished trials are in {}", done.dir.display())),
    }
}

/// A bench run that made its run directory.
pub struct Finished {
    /// The run directory.
    pub dir: std::path::PathBuf,
    /// What it stored in summary.json.
    pub summary: RunSummary,
    /// Why it stopped early (a trial failed, or Ctrl-C), if it did.
    pub failure: Option<String>,
}

/// Seconds a trial takes beyond its traffic (testbed, program, sockets, teardown), for
/// the expected duration printed at the start; measured on a 2-core VM.
const TRIAL_OVERHEAD_S: f64 = 0.5;

/// Runs the matrix of a veth or nic target into a new run directory. Errors before the
/// directory exists (or when it cannot be written) are errors; a trial that fails is
/// `Finished::failure`.
pub fn run_bench(
    cfg: &BenchConfig,
    remote: Option<crate::cli::agent::RemoteGen>,
    stop: &Arc<AtomicBool>,
) -> anyhow::Result<Finished> {
    let ports = match &cfg.target {
        Target::Veth | Target::Dev(_) => None,
        // With --remote-gen the generator's port is on the traffic host (tx unused).
        Target::Nic(iface) => Some(Ports { rx: iface.clone(), tx: cfg.gen_iface.clone().unwrap_or(iface.clone()) }),
        Target::Vm(_) | Target::VmDev(_) | Target::Path(_) => {
            anyhow::bail!("vm and path targets run through the guest (cmd_bench)")
        }
    };
    check_devices(cfg, ports.as_ref())?;
    let device = cfg.target.device_name().and_then(xdpipe::topology::Device::from_name).unwrap_or_default();
    // Connected (and the agent's version checked) before the run directory is made, so a
    // refused login or host key leaves nothing behind.
    let remote = crate::cli::agent::connect(remote)?;
    // Each trial's receiver and generator run in this process: their per-trial setup lines
    // (info) would bury the progress lines, so only warnings show unless RUST_LOG asks.
    if std::env::var_os("RUST_LOG").is_none() {
        log::set_max_level(log::LevelFilter::Warn);
    }
    let label = cfg.label().to_string();
    let matrix = &cfg.matrix;
    let scenarios = matrix.scenarios();
    let host = read_trim("/proc/sys/kernel/hostname");
    let (stamp, started) = utc_now();
    let mut dir = RunDir::create(&cfg.out, &format!("{stamp}-{host}-{}", label.replace(':', "-")))?;
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let mut summary = RunSummary {
        run: RunInfo {
            command,
            started,
            host,
            target: label.clone(),
            virtual_target: ports.is_none() || cfg.emulated_as.is_some(),
            link_bps: ports.as_ref().and_then(|p| link_bps(&p.rx)),
            env: capture_env(&label, ports.as_ref()),
            complete: false,
            trials_per_point: cfg.procedure.trials,
            notes: match (&ports, &cfg.emulated_as) {
                (None, _) => vec![
                    "veth: the receive-side copy into the UMEM runs on the generator's core (softirq), so a receive rate also measures the generator's core; runs with threaded NAPI are labelled.".into(),
                ],
                (Some(_), Some(_)) => vec![
                    "EMULATED: QEMU's NIC models under software emulation (TCG). The real Linux drivers run (native XDP, zero-copy, RSS, ethtool), but the rates say nothing about hardware speed.".into(),
                ],
                (Some(p), None) => vec![format!("NIC: generator on {} cabled to {}", p.tx, p.rx)],
            },
        },
        ..Default::default()
    };
    if let Some(h) = &cfg.hop {
        summary.hop = Some(h.clone());
        summary.run.notes.push(format!(
            "EMULATED: stage {} ({}) of path:kubevirt, which adds {}. {}.",
            h.index,
            h.name,
            h.adds,
            xdpipe_bench::chain::KUBEVIRT_LIMITS
        ));
    }
    if let (Some(r), Some(p)) = (&remote, &ports) {
        crate::cli::agent::describe(r, &p.rx, &mut summary.run.notes, &mut summary.run.env);
    }
    if cfg.target.is_testbed() {
        summary.device = Some(devices::device_info(device));
    }
    if let Target::Dev(d) = &cfg.target
        && cfg.anchors.is_some()
    {
        summary
            .run
            .notes
            .push(format!("anchors not run: they run on the plain veth testbed only, not through {}", d.name()));
    }
    // Several queues on a receiver here: gen picks its ports from the receiver's RSS
    // settings where they can be read (`gen --rss-of`), so that every queue gets flows.
    let rss_of = match (&ports, &remote) {
        (Some(p), None) if scenarios.iter().any(|s| s.queues > 1) => {
            let (note, rx) = match xdpipe::generator::rss::read(&p.rx, false) {
                Ok(_) => (
                    format!(
                        "several queues: gen picks each flow's source port from {}'s RSS key and table (gen --rss-of), flow i on its i-th RX queue",
                        p.rx
                    ),
                    Some(p.rx.clone()),
                ),
                Err(e) => (
                    format!(
                        "several queues: gen's source ports are sequential and the receiver's hash spreads them as it happens to ({e})"
                    ),
                    None,
                ),
            };
            eprintln!("bench: {note}");
            summary.run.notes.push(note);
            rx
        }
        _ => None,
    };
    dir.write_readme(&summary)?;
    dir.write_summary(&summary)?;
    let (least, most) = xdpipe_bench::estimate::expected_secs(&cfg.procedure, &scenarios, TRIAL_OVERHEAD_S);
    let expected = if most > least * 1.05 {
        format!("about {least:.0} s, up to {most:.0} s if points add trials for precision")
    } else {
        format!("about {least:.0} s")
    };
    eprintln!("bench: {} scenario(s), expected to take {expected}, results in {}", scenarios.len(), dir.path.display());
    let procedure = cfg.procedure;
    let mut runner = VethRunner {
        stop: stop.clone(),
        ports: ports.clone(),
        napi_core: cfg.napi_core,
        coalesce: cfg.coalesce,
        remote,
        device,
        rss_of,
    };
    let started = Instant::now();
    let mut interrupted = None;
    for (i, sc) in scenarios.iter().enumerate() {
        let left = if i == 0 {
            String::new()
        } else {
            let per = started.elapsed().as_secs_f64() / i as f64;
            format!(", about {:.0} s left", per * (scenarios.len() - i) as f64)
        };
        eprintln!("bench: scenario {}/{}: {}{left}", i + 1, scenarios.len(), sc.label());
        let mut record_err = None;
        let mut on_trial = |e: &TrialEvent| {
            let t = e.trial;
            eprintln!(
                "bench:   {} {} at {}: sent {} received {} ({:.3}% lost), rx {}{}",
                e.kind,
                e.index + 1,
                e.offered_pps.map_or("max".to_owned(), fmt_pps),
                t.sent,
                t.received,
                t.loss_ratio() * 100.0,
                fmt_pps(t.rx_pps),
                t.noise.map_or(String::new(), |n| format!(
                    "; noise: {} stall(s), longest {:.1} ms, steal {:.1}%{}",
                    n.stalls,
                    n.longest_stall_us / 1e3,
                    n.steal * 100.0,
                    if n.flagged() { " (FLAGGED)" } else { "" }
                ))
            );
            if let Err(err) = dir.record(sc, e.kind, e.index, e.offered_pps, t) {
                record_err = Some(err);
            }
        };
        let result = run_scenario(&mut runner, sc, &procedure, &mut on_trial);
        if let Some(e) = record_err {
            return Err(e.into());
        }
        match result {
            Ok(s) => {
                if let Some(p) = &s.mrr_precision {
                    eprintln!("bench:   {}", precision::describe(p));
                }
                summary.scenarios.push(s)
            }
            Err((e, partial)) => {
                summary.scenarios.extend(partial.map(|b| *b));
                interrupted = Some(e);
            }
        }
        dir.write_summary(&summary)?;
        if interrupted.is_some() {
            break;
        }
    }
    if interrupted.is_none()
        && cfg.target.is_testbed()
        && cfg.kernel_baselines
        && let Err(e) = devices::run_baselines(cfg, device, &mut dir, &mut summary, stop)
    {
        interrupted = Some(e);
    }
    if interrupted.is_none()
        && cfg.target == Target::Veth
        && let Some(anchors) = &cfg.anchors
        && let Err(e) = run_anchors(cfg, anchors, &mut dir, &mut summary, stop)
    {
        interrupted = Some(e);
    }
    summary.run.complete = interrupted.is_none();
    dir.write_summary(&summary)?;
    dir.write_readme(&summary)?;
    println!("{}", dir.path.display());
    Ok(Finished { dir: dir.path, summary, failure: interrupted })
}

/// What the flags alone cannot tell: the ports exist, every size fits their MTU (or the
/// veth testbed's), and there are cores for the queues; checked before the run directory
/// is made, so a refused run leaves nothing behind.
fn check_devices(cfg: &BenchConfig, ports: Option<&Ports>) -> anyhow::Result<()> {
    if !xdpipe::sys::is_root() {
        anyhow::bail!("xdpipe bench must run as root (it builds testbeds and attaches XDP programs); try sudo");
    }
    if let Some(d) = cfg.target.device_name().and_then(xdpipe::topology::Device::from_name) {
        xdpipe::topology::check_available(d)?;
    }
    let largest = cfg.matrix.sizes.iter().map(|s| s.max_bytes()).max().unwrap_or(0);
    let mtus: Vec<(String, u32)> = match ports {
        None => match cfg.target.device_name().and_then(xdpipe::topology::Device::from_name) {
            Some(d) if d != xdpipe::topology::Device::Veth => {
                vec![(format!("the {} target's receiving device", d.name()), d.mtu())]
            }
            // The runner makes a jumbo testbed (MTU 9000) for a size past 1518 B.
            _ => vec![(
                format!("the veth testbed ({})", xdpipe::testbed::RX_IFACE),
                if largest > VETH_MTU + 18 { VETH_JUMBO_MTU } else { VETH_MTU },
            )],
        },
        Some(p) => {
            let mut m = Vec::new();
            for i in [&p.rx, &p.tx] {
                if xdpipe::sys::ifindex(i).is_none() {
                    anyhow::bail!("--target {}: no interface {i:?} here (see `ip link`)", cfg.target);
                }
                let mtu = std::fs::read_to_string(format!("/sys/class/net/{i}/mtu"))
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .with_context(|| format!("reading the MTU of {i}"))?;
                m.push((i.clone(), mtu));
            }
            m
        }
    };
    for (what, mtu) in mtus {
        if largest > mtu + 18 {
            anyhow::bail!(
                "--sizes {largest}: above the MTU of {what} ({mtu} B, so at most {} B per frame with FCS); \
                 lower --sizes{}",
                mtu + 18,
                if ports.is_some() { " or raise the MTU (ip link set IFACE mtu N)" } else { "" }
            );
        }
    }
    if ports.is_some() {
        let ncpu = std::thread::available_parallelism().map_or(2, |n| n.get()) as u32;
        if let Some(q) = cfg.matrix.queues.iter().find(|&&q| q > ncpu) {
            anyhow::bail!(
                "--queues {q}: this host has {ncpu} CPUs and each queue's worker needs one; give at most {ncpu}"
            );
        }
    }
    Ok(())
}

pub fn cmd_report(a: &ReportArgs) -> anyhow::Result<ExitCode> {
    let mut runs = Vec::new();
    for p in &a.runs {
        let summary = load(p)?;
        let name = p.file_name().map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into_owned());
        runs.push(NamedRun { name, summary });
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let md_path = a.out.join("report.md");
    let html_path = a.out.join("report.html");
    std::fs::write(&md_path, markdown(&runs)).with_context(|| format!("writing {}", md_path.display()))?;
    std::fs::write(&html_path, html(&runs)).with_context(|| format!("writing {}", html_path.display()))?;
    println!("{}\n{}", md_path.display(), html_path.display());
    Ok(ExitCode::SUCCESS)
}

/// The anchor phase: each comparison the found tools allow, ours and theirs alternately.
fn run_anchors(
    cfg: &BenchConfig,
    ac: &AnchorConfig,
    dir: &mut RunDir,
    summary: &mut RunSummary,
    stop: &Arc<AtomicBool>,
) -> Result<(), String> {
    let tools = Tools::find(&ac.dirs);
    for r in &tools.refused {
        let m = format!("anchor tool not used: {r}");
        eprintln!("bench: {m}");
        summary.run.notes.push(m);
    }
    let missing = tools.missing();
    if !missing.is_empty() {
        let m = format!(
            "anchors not found (looked in trusted --anchor-dir and PATH directories): {}; their comparisons were not run",
            missing.join(", ")
        );
        eprintln!("bench: {m}");
        summary.run.notes.push(m);
    }
    let xdp_modes: Vec<String> = cfg.matrix.xdp_modes.iter().map(ToString::to_string).collect();
    let engines: Vec<String> = cfg.matrix.engines.iter().map(ToString::to_string).collect();
    // The coalesced CPU pairing uses the run's --coalesce-us, so the scenarios' latency
    // figures with that setting stand beside its CPU ratio.
    let coalesce_us = anchors::coalesce_times(cfg.coalesce.0);
    let pairings = anchors::select(plan(&tools, &xdp_modes, &engines, ac.cpu_pps, &coalesce_us), &ac.only);
    let stopping = cfg.procedure.stopping(ac.trials);
    for (k, p) in pairings.iter().enumerate() {
        eprintln!(
            "bench: anchor {}/{}: {} [{}], {}-{} pair(s) of trials",
            k + 1,
            pairings.len(),
            p.name,
            p.xdp_mode,
            stopping.min,
            stopping.max
        );
        let (mut ours_cmd, mut theirs_cmd) = (String::new(), String::new());
        let mut p99s = Vec::new();
        let trial_secs = cfg.procedure.trial_secs;
        let (ours, theirs, prec) = precision::run_pairs(&stopping, 2.0 * trial_secs, |i| {
            let mut v = [0.0; 2];
            for (k, (side, name, cmd)) in
                [(&p.ours, "xdpipe", &mut ours_cmd), (&p.theirs, "anchor", &mut theirs_cmd)].into_iter().enumerate()
            {
                let m = anchors::measure(&tools, &OurSides, p, side, trial_secs, false, stop)
                    .map_err(|e| format!("anchor {}: {e}", p.name))?;
                let shown =
                    if p.metric == Metric::CpuNsPerPkt { format!("{:.0} ns/frame", m.value) } else { fmt_pps(m.value) };
                eprintln!("bench:   {name} {}: {shown}", i + 1);
                dir.record_anchor(&p.name, &p.xdp_mode, name, i, m.value, p.metric.unit(), &m.command)
                    .map_err(|e| e.to_string())?;
                v[k] = m.value;
                *cmd = m.command;
            }
            Ok(precision::Pair { ours: v[0], theirs: v[1] })
        })?;
        if p.metric == Metric::CpuNsPerPkt {
            // The latency this wait costs, beside its CPU: trials of xdpipe's side alone
            // that read every frame's stamp (the compared trials read none, as xdpsock
            // reads no frame).
            for i in 0..CPU_PAIRING_LATENCY_TRIALS {
                let m = anchors::measure(&tools, &OurSides, p, &p.ours, trial_secs, true, stop)
                    .map_err(|e| format!("anchor {}: {e}", p.name))?;
                let p99 = m.p99_us.map(|l| format!("p99 {l:.0} us")).unwrap_or_else(|| "no latency read".into());
                eprintln!("bench:   xdpipe latency {}: {p99} ({:.0} ns/frame reading the stamps)", i + 1, m.value);
                p99s.extend(m.p99_us);
                dir.record_anchor(&p.name, &p.xdp_mode, "xdpipe-stamps", i, m.value, p.metric.unit(), &m.command)
                    .map_err(|e| e.to_string())?;
            }
        }
        let f = precision::finding(&ours, &theirs, p.metric == Metric::CpuNsPerPkt, &p.goal, stopping.confidence);
        eprintln!(
            "bench:   {} after {} pair(s){}",
            f.line(),
            prec.trials,
            if prec.reached { "" } else { " (width not reached)" }
        );
        let mut a = f.anchor(&p.name, &p.xdp_mode, p.metric.unit(), (ours_cmd, theirs_cmd), (&ours, &theirs));
        a.precision = Some(prec);
        a.ours_p99_us = (!p99s.is_empty()).then(|| xdpipe_bench::stats::spread(&p99s));
        summary.anchors.push(a);
        dir.write_summary(summary).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Trials of xdpipe's side alone after a CPU pairing's pairs, reading the stamps for the
/// p99 latency beside the CPU ratio.
const CPU_PAIRING_LATENCY_TRIALS: usize = 2;

/// xdpipe's sides of the anchor pairings, through `xdpipe run` / `xdpipe gen`'s own flags
/// and validation: receiver pinned to core 1 with a copy bind, generator on core 0.
struct OurSides;

impl anchors::XdpipeSides for OurSides {
    fn receiver(&self, mode: &str, wait: AnchorWait, all: bool, xdp_mode: &str) -> Result<(RunConfig, String), String> {
        let mut a: Vec<String> =
            ["--mode", mode, "--xdp-mode", xdp_mode, "--cores", "1", "--bind", "copy"].map(String::from).to_vec();
        a.extend(wait.run_args());
        if all {
            a.extend(["--filter".into(), "all".into()]);
        }
        let desc = format!("xdpipe run -i {} {}", xdpipe::testbed::RX_IFACE, a.join(" "));
        let (rx, _) = crate::cli::veth::side_configs(&a, &[]).map_err(|e| e.0)?;
        Ok((rx, desc))
    }

    fn generator(&self, engine: &str, pps: Option<f64>, secs: f64) -> Result<(GenConfig, String), String> {
        let mut g: Vec<String> =
            ["-d", &secs.to_string(), "--core", "0", "--engine", engine].map(String::from).to_vec();
        if let Some(p) = pps {
            g.extend(["--rate".into(), format!("{p:.0}")]);
        }
        let desc = format!("xdpipe gen -i {} {}", xdpipe::testbed::TX_IFACE, g.join(" "));
        let (_, gen_cfg) = crate::cli::veth::side_configs(&[], &g).map_err(|e| e.0)?;
        Ok((gen_cfg, desc))
    }
}
