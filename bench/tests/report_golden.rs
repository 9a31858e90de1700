//! The report renders from stored fixture runs exactly as the golden files say. After an
//! intended change to the report, regenerate them with `UPDATE_GOLDEN=1 cargo test -p
//! xdpipe-bench --test report_golden` and review the diff.
//!
//! Fixtures: `veth-run` is a real (short) veth run's summary.json; `nic-fixture` is a
//! hand-edited copy of it relabelled as a NIC run (zero-copy, plus copy scenarios at half the
//! rate), only to exercise the physical
//! parts of the report (line-rate curve, DMA and cross-target deltas). It is not a
//! measurement.
use std::path::Path;

use xdpipe_bench::{
    report::{NamedRun, html, markdown},
    store::load,
};

fn runs() -> Vec<NamedRun> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    ["veth-run", "nic-fixture"]
        .iter()
        .map(|n| NamedRun { name: n.to_string(), summary: load(&root.join(n)).expect("fixture loads") })
        .collect()
}

fn check(name: &str, got: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name);
    if std::env::var("UPDATE_GOLDEN").is_ok() {
        std::fs::write(&path, got).unwrap();
        return;
    }
    let want =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}; run with UPDATE_GOLDEN=1", path.display()));
    assert!(
        got == want,
        "{name} differs from the golden file {}; run with UPDATE_GOLDEN=1 and review the diff",
        path.display()
    );
}

#[test]
fn markdown_matches_golden() {
    let md = markdown(&runs());
    assert!(md.contains("| DMA (zero-copy vs copy) |") || md.contains("physical vs virtual"));
    check("report.md", &md);
}

#[test]
fn html_matches_golden() {
    let h = html(&runs());
    assert!(h.starts_with("<!doctype html>"));
    assert!(h.matches("<svg").count() >= 3, "throughput, zero-loss and latency charts");
    assert!(h.contains("line rate 10 Gbit/s"));
    check("report.html", &h);
}
