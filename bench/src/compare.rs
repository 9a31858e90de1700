//! `xdpipe compare RUN_A RUN_B`: two stored runs, scenario for scenario (by label), as
//! ratios B / A with bootstrap intervals and verdicts: max receive rate (higher is
//! better), latency p99 and worker CPU per frame (lower is better), the zero-loss rate (one
//! value per run: no interval) and the anchors both runs measured. Runs stored before the
//! trial values were kept give the ratio of the medians only, marked "no interval".
use std::path::Path;

use serde::Serialize;

use crate::{
    stats::{Better, Interval, Spread, Verdict, ratio_interval},
    store::{self, RunSummary, ScenarioSummary, StoreError},
};

/// Why two runs could not be compared.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("{what} {path}: no such directory; give a run directory `xdpipe bench` printed (under bench/runs/)")]
    Missing { what: &'static str, path: String },
    #[error(
        "{what} {path}: not a run directory (it has no summary.json); give a directory `xdpipe bench` printed (under bench/runs/)"
    )]
    NotARun { what: &'static str, path: String },
    #[error("{what}: {source}")]
    Store {
        what: &'static str,
        #[source]
        source: StoreError,
    },
    #[error(
        "no scenario in common: RUN_A has {a}, RUN_B has {b}; compare runs of the same matrix (same --sizes, --xdp-modes, ...)"
    )]
    NothingInCommon { a: String, b: String },
}

/// Loads a run directory for `compare` (`what`: "RUN_A" or "RUN_B", for the errors).
pub fn load_run(what: &'static str, path: &Path) -> Result<RunSummary, CompareError> {
    let shown = path.display().to_string();
    if !path.is_dir() {
        return Err(CompareError::Missing { what, path: shown });
    }
    if !path.join("summary.json").is_file() {
        return Err(CompareError::NotARun { what, path: shown });
    }
    store::load(path).map_err(|source| CompareError::Store { what, source })
}

/// One metric of one scenario (or anchor side), B against A.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    pub metric: String,
    pub unit: String,
    /// The medians (or the single values) of A and B.
    pub a: f64,
    pub b: f64,
    /// b / a.
    pub ratio: f64,
    /// The bootstrap interval of the ratio of medians (`None`: see `note`).
    pub interval: Option<Interval>,
    /// What the interval says (`None` without one).
    pub verdict: Option<Verdict>,
    /// Why there is no interval, when there is none.
    pub note: Option<String>,
}

/// A scenario both runs measured.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScenarioComparison {
    pub label: String,
    pub rows: Vec<Row>,
}

/// An anchor comparison both runs made.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AnchorComparison {
    pub name: String,
    pub xdp_mode: String,
    /// xdpipe's side B / A, then the anchor tool's side B / A.
    pub rows: Vec<Row>,
}

/// Two runs compared.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Comparison {
    pub confidence: f64,
    pub scenarios: Vec<ScenarioComparison>,
    pub anchors: Vec<AnchorComparison>,
    /// Labels of the scenarios only RUN_A (only RUN_B) has.
    pub only_a: Vec<String>,
    pub only_b: Vec<String>,
    /// What the reader must know: a run predates stored trial values, and so on.
    pub notes: Vec<String>,
}

const NO_VALUES: &str = "no interval: a run predates stored trial values, only medians can be compared";

fn row(metric: &str, unit: &str, a: &Spread, b: &Spread, better: Better, confidence: f64) -> Option<Row> {
    if a.n == 0 || b.n == 0 || a.median == 0.0 {
        return None;
    }
    let interval = ratio_interval(&b.values, &a.values, confidence);
    let note = match interval {
        Some(_) => None,
        None if a.values.is_empty() || b.values.is_empty() => Some(NO_VALUES.to_owned()),
        None => Some("no interval: fewer than two trials on a side".to_owned()),
    };
    Some(Row {
        metric: metric.to_owned(),
        unit: unit.to_owned(),
        a: a.median,
        b: b.median,
        ratio: b.median / a.median,
        verdict: interval.as_ref().map(|i| Verdict::of(Some(i), better)),
        interval,
        note,
    })
}

fn scenario_rows(a: &ScenarioSummary, b: &ScenarioSummary, confidence: f64) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    rows.extend(row("max receive rate", "pps", &a.mrr_pps, &b.mrr_pps, Better::Higher, confidence));
    if let (Some(x), Some(y)) = (a.zero_loss_pps, b.zero_loss_pps)
        && x > 0.0
    {
        rows.push(Row {
            metric: "zero-loss rate".into(),
            unit: "pps".into(),
            a: x,
            b: y,
            ratio: y / x,
            interval: None,
            verdict: None,
            note: Some("no interval: the zero-loss rate is a single value per run (the search's result)".into()),
        });
    }
    if let (Some(x), Some(y)) = (&a.latency, &b.latency) {
        rows.extend(row("latency p99", "ns", &x.p99_ns, &y.p99_ns, Better::Lower, confidence));
        rows.extend(row(
            "worker CPU per frame",
            "ns/frame",
            &x.rx_cpu_ns_per_pkt,
            &y.rx_cpu_ns_per_pkt,
            Better::Lower,
            confidence,
        ));
    }
    rows
}

fn lacks_values(r: &RunSummary) -> bool {
    r.scenarios.iter().any(|s| s.mrr_pps.n > 0 && s.mrr_pps.values.is_empty())
        || r.anchors.iter().any(|a| a.ours.n > 0 && a.ours.values.is_empty())
}

/// Compares RUN_B against RUN_A: every scenario label both have, the anchors both have.
pub fn compare(a: &RunSummary, b: &RunSummary, confidence: f64) -> Result<Comparison, CompareError> {
    let labels = |r: &RunSummary| r.scenarios.iter().map(|s| s.label.clone()).collect::<Vec<_>>();
    let (la, lb) = (labels(a), labels(b));
    let mut out = Comparison {
        confidence,
        scenarios: Vec::new(),
        anchors: Vec::new(),
        only_a: la.iter().filter(|l| !lb.contains(l)).cloned().collect(),
        only_b: lb.iter().filter(|l| !la.contains(l)).cloned().collect(),
        notes: Vec::new(),
    };
    for sa in &a.scenarios {
        if let Some(sb) = b.scenarios.iter().find(|s| s.label == sa.label) {
            out.scenarios.push(ScenarioComparison { label: sa.label.clone(), rows: scenario_rows(sa, sb, confidence) });
        }
    }
    for xa in &a.anchors {
        if let Some(xb) = b.anchors.iter().find(|x| x.name == xa.name && x.xdp_mode == xa.xdp_mode) {
            let better = if xa.unit == "pps" { Better::Higher } else { Better::Lower };
            let rows = [("xdpipe", &xa.ours, &xb.ours), ("anchor tool", &xa.theirs, &xb.theirs)]
                .into_iter()
                .filter_map(|(side, x, y)| row(side, &xa.unit, x, y, better, confidence))
                .collect();
            out.anchors.push(AnchorComparison { name: xa.name.clone(), xdp_mode: xa.xdp_mode.clone(), rows });
        }
    }
    if out.scenarios.is_empty() && out.anchors.is_empty() {
        let list = |l: &[String]| if l.is_empty() { "no scenario".to_owned() } else { l.join("; ") };
        return Err(CompareError::NothingInCommon { a: list(&la), b: list(&lb) });
    }
    for (name, r) in [("RUN_A", a), ("RUN_B", b)] {
        if lacks_values(r) {
            out.notes.push(format!(
                "{name} predates stored trial values: only medians can be compared, and its ratios carry no interval"
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        Scenario,
        axes::XdpMode,
        stats::spread,
        store::{Anchor, LatencyPoint, RunDir},
    };

    fn sc(xdp: XdpMode, mrr: &[f64], p99: &[f64]) -> ScenarioSummary {
        let mut s = Scenario::example();
        s.xdp_mode = xdp;
        ScenarioSummary {
            label: s.label(),
            scenario: s,
            mrr_pps: spread(mrr),
            offered_max_pps: spread(mrr),
            zero_loss_pps: Some(mrr[0] * 0.9),
            zero_loss_confirmed: true,
            latency: Some(LatencyPoint {
                p99_ns: spread(p99),
                rx_cpu_ns_per_pkt: spread(&[50.0, 51.0, 49.0]),
                ..Default::default()
            }),
            sent: 0,
            received: 0,
            mrr_precision: None,
            latency_precision: None,
            count: None,
            noise: None,
        }
    }

    fn anchor(ours: &[f64]) -> Anchor {
        Anchor {
            name: "rxdrop vs xdpsock".into(),
            xdp_mode: "skb".into(),
            unit: "pps".into(),
            ours_command: String::new(),
            ours_p99_us: None,
            theirs_command: String::new(),
            ours: spread(ours),
            theirs: spread(&[100.0, 101.0, 99.0]),
            ratio: 1.0,
            ratio_ci: None,
            verdict: Verdict::Indistinguishable,
            goal: String::new(),
            goal_verdict: None,
            precision: None,
        }
    }

    /// Writes `s` as a run directory under `root` and loads it back as `compare` would.
    fn stored(root: &Path, name: &str, s: &RunSummary) -> RunSummary {
        let d = RunDir::create(root, name).unwrap();
        d.write_summary(s).unwrap();
        load_run("RUN_A", &d.path).unwrap()
    }

    fn root() -> std::path::PathBuf {
        // Not under /tmp (a predictable path there is a root hazard, and this crate has no
        // private_temp_dir): under the workspace's target directory, per process and test.
        let r = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-tmp").join(format!(
            "compare-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&r).unwrap();
        r
    }

    #[test]
    fn two_stored_runs_compare_scenario_for_scenario() {
        let root = root();
        let a = RunSummary {
            scenarios: vec![
                sc(XdpMode::Skb, &[100.0, 101.0, 99.0, 100.5], &[3000.0, 3100.0, 2900.0]),
                sc(XdpMode::Native, &[50.0, 51.0, 49.0], &[1000.0, 1010.0, 990.0]),
            ],
            anchors: vec![anchor(&[100.0, 101.0, 99.0])],
            ..Default::default()
        };
        let b = RunSummary {
            scenarios: vec![sc(XdpMode::Skb, &[200.0, 202.0, 198.0, 201.0], &[3000.0, 3300.0, 2700.0])],
            anchors: vec![anchor(&[90.0, 91.0, 89.0])],
            ..Default::default()
        };
        let (a, b) = (stored(&root, "a", &a), stored(&root, "b", &b));
        let c = compare(&a, &b, 0.95).unwrap();
        assert_eq!(c.scenarios.len(), 1);
        assert_eq!(c.only_a, [Scenario { xdp_mode: XdpMode::Native, ..Scenario::example() }.label()]);
        assert!(c.only_b.is_empty() && c.notes.is_empty());
        let rows = &c.scenarios[0].rows;
        let get = |m: &str| rows.iter().find(|r| r.metric == m).unwrap();
        let mrr = get("max receive rate");
        assert!((mrr.ratio - 2.0).abs() < 0.02 && mrr.verdict == Some(Verdict::Faster), "{mrr:?}");
        let zl = get("zero-loss rate");
        assert!(zl.interval.is_none() && zl.note.as_ref().unwrap().contains("single value"), "{zl:?}");
        let p99 = get("latency p99");
        assert_eq!(p99.verdict, Some(Verdict::Indistinguishable), "{p99:?}");
        assert_eq!(get("worker CPU per frame").verdict, Some(Verdict::Indistinguishable));
        let x = &c.anchors[0].rows[0];
        assert_eq!((x.metric.as_str(), x.verdict), ("xdpipe", Some(Verdict::Slower)), "{x:?}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn old_runs_give_median_ratios_marked_no_interval() {
        let mut old = sc(XdpMode::Skb, &[100.0, 101.0, 99.0], &[3000.0, 3100.0, 2900.0]);
        old.mrr_pps.values.clear();
        let a = RunSummary { scenarios: vec![old], ..Default::default() };
        let b =
            RunSummary { scenarios: vec![sc(XdpMode::Skb, &[110.0, 111.0, 109.0], &[1.0, 2.0])], ..Default::default() };
        let c = compare(&a, &b, 0.95).unwrap();
        let mrr = &c.scenarios[0].rows[0];
        assert!((mrr.ratio - 1.1).abs() < 1e-9 && mrr.interval.is_none() && mrr.verdict.is_none(), "{mrr:?}");
        assert!(mrr.note.as_ref().unwrap().contains("predates stored trial values"));
        assert!(c.notes[0].starts_with("RUN_A predates stored trial values"), "{:?}", c.notes);
    }

    #[test]
    fn refusals_name_the_run_and_what_is_wrong() {
        let root = root();
        let e = load_run("RUN_B", &root.join("nope")).unwrap_err().to_string();
        assert!(e.starts_with("RUN_B ") && e.contains("no such directory"), "{e}");
        let e = load_run("RUN_A", &root).unwrap_err().to_string();
        assert!(e.contains("not a run directory (it has no summary.json)"), "{e}");
        std::fs::write(root.join("summary.json"), "{ not json").unwrap();
        let e = load_run("RUN_A", &root).unwrap_err().to_string();
        assert!(e.starts_with("RUN_A: ") && e.contains("not an xdpipe run summary"), "{e}");
        let a = RunSummary { scenarios: vec![sc(XdpMode::Skb, &[1.0, 2.0], &[1.0, 2.0])], ..Default::default() };
        let b = RunSummary { scenarios: vec![sc(XdpMode::Native, &[1.0, 2.0], &[1.0, 2.0])], ..Default::default() };
        let e = compare(&a, &b, 0.95).unwrap_err().to_string();
        assert!(
            e.starts_with("no scenario in common: RUN_A has veth skb") && e.contains("RUN_B has veth native"),
            "{e}"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
