//! The project's CI gate: `xdpipe bench --quick --gate docs/ci-gate.toml` on the veth
//! testbed passes (exit 0, a JUnit report with no failures), a threshold out of reach
//! fails (exit 1, the failure in the report), and a gate that cannot be used exits 2
//! before any run directory is made. The failing gates judge the quick run's directory
//! with `xdpipe gate` instead of running bench again.
mod common;

use std::{
    fs,
    path::{Path, PathBuf},
};

use common::*;

/// The repository's docs/ci-gate.toml.
fn ci_gate() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/ci-gate.toml")
}

/// An attribute of the first `<testsuite>` element of a JUnit report.
fn suite_attr(xml: &str, name: &str) -> String {
    let suite = &xml[xml.find("<testsuite ").unwrap_or_else(|| panic!("no <testsuite> in:\n{xml}"))..];
    let start = suite.find(&format!(" {name}=\"")).unwrap_or_else(|| panic!("no {name} in:\n{xml}")) + name.len() + 3;
    suite[start..][..suite[start..].find('"').unwrap()].to_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

#[test]
fn the_quick_ci_gate_passes_and_an_out_of_reach_threshold_fails() {
    if !privileged() {
        return;
    }
    let out = xdpipe::sys::private_temp_dir("xdpipe-gate").expect("a private temporary directory");
    let copy = out.join("ci-junit.xml");
    let (code, stdout, stderr) = xdpipe_once(&[
        "bench",
        "--quick",
        "--gate",
        path(&ci_gate()),
        "--junit",
        path(&copy),
        "--out",
        path(&out.join("runs")),
    ]);
    assert_eq!(code, Some(0), "the quick CI gate failed:\n{stderr}");
    assert!(stderr.contains("expected to take about"), "the expected duration is printed first:\n{stderr}");
    let run = PathBuf::from(stdout.trim());
    let xml = fs::read_to_string(run.join("junit.xml")).expect("junit.xml in the run directory");
    assert_eq!(suite_attr(&xml, "failures"), "0", "{xml}");
    assert_eq!(suite_attr(&xml, "errors"), "0", "{xml}");
    assert_eq!(suite_attr(&xml, "tests"), "7", "one testcase per check of docs/ci-gate.toml:\n{xml}");
    assert_eq!(fs::read_to_string(&copy).expect("the --junit copy"), xml);
    let verdict: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(run.join("verdict.json")).unwrap()).unwrap();
    assert_eq!(verdict["exit_code"], 0, "{verdict}");
    // The count trial: stored as its own kind, exact.
    let summary: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    let count = &summary["scenarios"][0]["count"]["trials"][0];
    assert!(u(count, "sent") > 0 && count["sent"] == count["received"] && count["duplicates"] == 0, "{count}");
    let csv = fs::read_to_string(run.join("raw.csv")).unwrap();
    assert_eq!(csv.lines().filter(|l| l.split(',').nth(10) == Some("count")).count(), 1, "{csv}");

    // Out of reach: the stored run, judged again, fails with the measured value and the
    // threshold in the report.
    let far = out.join("far.toml");
    fs::write(&far, "[[scenario]]\nmin_rate_pps = 1e12\nexact_counts = true\n").unwrap();
    let (code, _, stderr) = xdpipe_once(&["gate", path(&far), path(&run)]);
    assert_eq!(code, Some(1), "{stderr}");
    let xml = fs::read_to_string(run.join("junit.xml")).unwrap();
    assert_eq!((suite_attr(&xml, "failures"), suite_attr(&xml, "tests")), ("1".into(), "2".into()), "{xml}");
    assert!(xml.contains("<failure") && xml.contains("threshold at least 1e12 pps"), "{xml}");
    assert!(stderr.contains("FAIL") && stderr.contains("min_rate_pps"), "{stderr}");

    // The run against itself as the baseline: no regression.
    let same = out.join("same.toml");
    fs::write(&same, format!("[[scenario]]\nbaseline = {:?}\nmax_regression_pct = 50\n", path(&run))).unwrap();
    let (code, _, stderr) = xdpipe_once(&["gate", path(&same), path(&run)]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("within the allowed regression"), "{stderr}");
    let _ = fs::remove_dir_all(&out);
}

#[test]
fn a_gate_that_cannot_be_used_exits_2_before_any_run_directory() {
    let out = xdpipe::sys::private_temp_dir("xdpipe-gate-bad").expect("a private temporary directory");
    let runs = out.join("runs");
    let bad = out.join("bad.toml");
    fs::write(&bad, "[[scenario]]\nsize = 64\nmin_rate = 5\n").unwrap();
    let (code, _, stderr) = xdpipe_once(&["bench", "--quick", "--gate", path(&bad), "--out", path(&runs)]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{}:3", bad.display())) && stderr.contains("unknown field `min_rate`"),
        "{stderr}"
    );
    // Valid, but selecting a scenario --quick does not measure.
    let native = out.join("native.toml");
    fs::write(&native, "[[scenario]]\nxdp_mode = \"native\"\nmin_rate_pps = 1\n").unwrap();
    let (code, _, stderr) = xdpipe_once(&["bench", "--quick", "--gate", path(&native), "--out", path(&runs)]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("selects none of this run's scenarios"), "{stderr}");
    // A baseline that is not a run.
    let base = out.join("base.toml");
    fs::write(&base, "[[scenario]]\nbaseline = \"nowhere\"\nmax_regression_pct = 5\n").unwrap();
    let (code, _, stderr) = xdpipe_once(&["bench", "--quick", "--gate", path(&base), "--out", path(&runs)]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("baseline = \"nowhere\": cannot load the run"), "{stderr}");
    assert!(!runs.exists(), "no run directory is made for a gate that cannot be used");
    // `xdpipe gate` on something that is not a run.
    let (code, _, stderr) = xdpipe_once(&["gate", path(&ci_gate()), path(&out.join("none"))]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("not a run directory"), "{stderr}");
    let _ = fs::remove_dir_all(&out);
}

/// Ctrl-C during a gated bench: the partial verdict is written into the run directory and
/// the exit status is 130, as for any interrupted command (not 2, "could not run").
#[test]
fn a_gated_bench_stopped_by_sigint_exits_130_with_a_partial_verdict() {
    use std::io::{BufRead as _, BufReader};
    if !privileged() {
        return;
    }
    let out = xdpipe::sys::private_temp_dir("xdpipe-gate-int").expect("a private temporary directory");
    let runs = out.join("runs");
    let mut child = std::process::Command::new(XDPIPE)
        .args(["bench", "--quick", "--gate", path(&ci_gate()), "--out", path(&runs)])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawning xdpipe bench");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr piped")).lines();
    let mut seen = Vec::new();
    for l in lines.by_ref().map_while(Result::ok) {
        let started = l.contains("scenario 1/1");
        seen.push(l);
        if started {
            break;
        }
    }
    // SAFETY: kill(2) on our own child's pid.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    assert_eq!(rc, 0);
    seen.extend(lines.map_while(Result::ok));
    let status = child.wait().expect("waiting for xdpipe bench");
    let log = seen.join("\n");
    assert_eq!(status.code(), Some(130), "{log}");
    let run = fs::read_dir(&runs).expect("a run directory").next().expect("one run").expect("readable").path();
    let verdict: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(run.join("verdict.json")).expect("verdict.json")).unwrap();
    assert_eq!(verdict["bench_failed"], true, "{verdict}");
    assert!(log.contains("gate: interrupted"), "{log}");
    let _ = fs::remove_dir_all(&out);
}
