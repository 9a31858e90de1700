//! A short real benchmark on the veth testbed, then the report from it: the run directory
//! has its README, raw.csv (a row per trial) and summary.json, and the report renders.
mod common;

use std::process::Command;

use common::*;

#[test]
fn a_short_bench_run_and_its_report() {
    if !privileged() {
        return;
    }
    let out = xdpipe::sys::private_temp_dir("xdpipe-bench").unwrap();
    let b = Command::new(XDPIPE)
        .args(["bench", "--sizes", "64", "--xdp-modes", "native", "--trials", "2", "--trial-secs", "0.5"])
        .args(["--max-trials", "2"])
        .args(["--search-secs", "0.3", "--out"])
        .arg(&out)
        .output()
        .expect("xdpipe bench");
    let err = String::from_utf8_lossy(&b.stderr);
    assert!(b.status.success(), "bench failed:\n{err}");
    let run = std::path::PathBuf::from(String::from_utf8_lossy(&b.stdout).trim());
    assert!(run.starts_with(&out), "bench prints its run directory: {run:?}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["run"]["complete"], true);
    let sc = &summary["scenarios"][0];
    assert_eq!(sc["label"], "veth native copy rxdrop 64B xsk q1 busy");
    assert_eq!(sc["mrr_pps"]["n"], 2);
    assert_eq!(sc["mrr_precision"]["trials"], 2, "{sc}");
    assert!(sc["mrr_precision"]["reached"].is_boolean() && sc["latency_precision"]["trials"] == 2, "{sc}");
    assert_eq!(sc["mrr_pps"]["values"].as_array().map(Vec::len), Some(2), "{sc}");
    // Every trial (max, search, confirm, latency) was probed for noise.
    let probed = sc["noise"]["probed"].as_u64().unwrap();
    assert!(probed > 4 && sc["noise"]["flagged"].as_u64().unwrap() <= probed, "{sc}");
    assert!(sc["mrr_pps"]["median"].as_f64().unwrap() > 10_000.0, "{sc}");
    assert!(sc["zero_loss_pps"].as_f64().unwrap() > 0.0, "{sc}");
    assert!(sc["latency"]["p50_ns"]["median"].as_f64().unwrap() > 0.0, "{sc}");
    let csv = std::fs::read_to_string(run.join("raw.csv")).unwrap();
    let kinds: Vec<&str> = csv.lines().skip(1).map(|l| l.split(',').nth(10).unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "max").count(), 2, "{csv}");
    assert_eq!(kinds.iter().filter(|k| **k == "latency").count(), 2, "{csv}");
    assert!(kinds.contains(&"confirm"), "{csv}");
    assert!(csv.lines().next().unwrap().ends_with(",stalls,longest_stall_us,steal,iowait,noise_flagged"), "{csv}");
    for l in csv.lines().skip(1) {
        let flag = l.rsplit(',').next().unwrap();
        assert!(flag == "true" || flag == "false", "every trial has its noise: {l}");
    }
    let readme = std::fs::read_to_string(run.join("README.md")).unwrap();
    assert!(readme.contains("xdpipe bench") && readme.contains("| kernel |"), "{readme}");

    let rep = out.join("report");
    let r = Command::new(XDPIPE).arg("report").arg(&run).arg("--out").arg(&rep).output().expect("xdpipe report");
    assert!(r.status.success(), "report failed: {}", String::from_utf8_lossy(&r.stderr));
    let html = std::fs::read_to_string(rep.join("report.html")).unwrap();
    assert!(html.contains("veth native copy rxdrop 64B xsk q1 busy") && html.contains("<svg"));
    assert!(html.contains("Precision and machine noise"), "the report shows the noise");

    // A run against itself: every ratio 1, indistinguishable.
    let c = Command::new(XDPIPE).arg("compare").arg(&run).arg(&run).output().expect("xdpipe compare");
    let text = String::from_utf8_lossy(&c.stdout);
    assert!(c.status.success(), "compare failed: {}", String::from_utf8_lossy(&c.stderr));
    let mrr = text.lines().find(|l| l.contains("max receive rate")).unwrap_or_else(|| panic!("{text}"));
    assert!(mrr.contains("ratio 1.00 [") && mrr.ends_with(": indistinguishable"), "{text}");
    assert!(text.contains("zero-loss rate") && text.contains("single value per run"), "{text}");
    let _ = std::fs::remove_dir_all(&out);
}
