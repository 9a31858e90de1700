//! `xdpipe compare` on two stored runs (synthetic summaries in a private directory; no
//! root, no testbed): the ratios with intervals and verdicts, the JSON form, and the
//! refusals (a missing directory, one that is not a run, no scenario in common).
mod common;

use std::process::Command;

use common::*;
use xdpipe_bench::{
    Scenario,
    scenario::{Bind, Engine, Mode, Offloads, Size, Target, Wait, XdpMode},
    stats::spread,
    store::{RunDir, RunSummary, ScenarioSummary},
};

fn scenario(mrr: &[f64]) -> ScenarioSummary {
    let sc = Scenario {
        target: Target::Veth,
        size: Size::Bytes(64),
        xdp_mode: XdpMode::Native,
        bind: Bind::Copy,
        mode: Mode::Rxdrop,
        engine: Engine::Xsk,
        queues: 1,
        wait: Wait::Busy,
        threaded_napi: false,
        offloads: Offloads::Default,
    };
    ScenarioSummary {
        label: sc.label(),
        scenario: sc,
        mrr_pps: spread(mrr),
        offered_max_pps: spread(mrr),
        zero_loss_pps: None,
        zero_loss_confirmed: false,
        latency: None,
        sent: 0,
        received: 0,
        mrr_precision: None,
        latency_precision: None,
        noise: None,
        count: None,
    }
}

fn run(root: &std::path::Path, name: &str, scenarios: Vec<ScenarioSummary>) -> std::path::PathBuf {
    let d = RunDir::create(root, name).unwrap();
    d.write_summary(&RunSummary { scenarios, ..Default::default() }).unwrap();
    d.path
}

fn compare(args: &[&std::ffi::OsStr]) -> (bool, String, String) {
    let o = Command::new(XDPIPE).arg("compare").args(args).output().expect("xdpipe compare");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn compare_two_stored_runs() {
    let root = xdpipe::sys::private_temp_dir("xdpipe-compare").unwrap();
    let a = run(&root, "a", vec![scenario(&[1.0e6, 1.01e6, 0.99e6, 1.0e6])]);
    let b = run(&root, "b", vec![scenario(&[1.2e6, 1.21e6, 1.19e6, 1.2e6])]);
    let (ok, out, err) = compare(&[a.as_os_str(), b.as_os_str()]);
    assert!(ok, "{err}");
    let l = out.lines().find(|l| l.contains("max receive rate")).unwrap_or_else(|| panic!("{out}"));
    assert!(l.contains("ratio 1.20 [") && l.contains("at 95%") && l.ends_with(": faster"), "{out}");
    let (ok, out, _) =
        compare(&[b.as_os_str(), a.as_os_str(), "--json".as_ref(), "--confidence".as_ref(), "0.9".as_ref()]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(ok && v["scenarios"][0]["rows"][0]["verdict"] == "slower" && v["confidence"] == 0.9, "{out}");

    let missing = root.join("nope");
    let (ok, _, err) = compare(&[a.as_os_str(), missing.as_os_str()]);
    assert!(!ok && err.contains("RUN_B") && err.contains("no such directory"), "{err}");
    let (ok, _, err) = compare(&[root.as_os_str(), a.as_os_str()]);
    assert!(!ok && err.contains("RUN_A") && err.contains("not a run directory"), "{err}");
    let mut other = scenario(&[1.0, 2.0]);
    other.label = "veth native copy rxdrop 1518B xsk q1 busy".into();
    let c = run(&root, "c", vec![other]);
    let (ok, _, err) = compare(&[a.as_os_str(), c.as_os_str()]);
    assert!(!ok && err.contains("no scenario in common"), "{err}");
    std::fs::remove_dir_all(&root).unwrap();
}
