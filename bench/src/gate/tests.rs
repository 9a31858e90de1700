use super::*;
use crate::{
    count::{CountPoint, CountTrial},
    junit::junit,
    search::SearchConfig,
    stats::spread,
    store::{LatencyPoint, RunInfo},
};

fn no_runs(_: &Path) -> Result<RunSummary, String> {
    Err("no such run".into())
}

fn gate(src: &str) -> Result<Gate, GateError> {
    Gate::parse(src, Path::new("/g/gate.toml"), &no_runs)
}

fn err(src: &str) -> String {
    gate(src).expect_err("the gate was accepted").0
}

fn says(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "{msg:?} does not say {p:?}");
    }
}

/// A measured scenario: max rate 300k, zero loss 200k, p99 40 us, 150 ns/frame, latency
/// trials without loss, one exact count trial.
fn measured() -> ScenarioSummary {
    let sc = Scenario { xdp_mode: XdpMode::Skb, ..Scenario::example() };
    ScenarioSummary {
        label: sc.label(),
        scenario: sc,
        mrr_pps: spread(&[300e3, 305e3, 298e3]),
        offered_max_pps: spread(&[1e6, 1e6, 1e6]),
        zero_loss_pps: Some(200e3),
        zero_loss_confirmed: true,
        latency: Some(LatencyPoint {
            p99_ns: spread(&[40e3, 41e3, 39e3]),
            rx_cpu_ns_per_pkt: spread(&[150.0, 160.0, 155.0]),
            sent: Some(600_000),
            received: Some(600_000),
            ..Default::default()
        }),
        sent: 3_000_000,
        received: 900_000,
        mrr_precision: None,
        latency_precision: None,
        noise: None,
        count: Some(CountPoint {
            offered_pps: 100e3,
            capped: false,
            secs: 2.0,
            trials: vec![CountTrial { sent: 200_000, received: 200_000, duplicates: Some(0) }],
        }),
    }
}

fn run_of(s: ScenarioSummary) -> RunSummary {
    RunSummary { run: RunInfo { complete: true, ..Default::default() }, scenarios: vec![s], ..Default::default() }
}

fn quick_procedure() -> Procedure {
    Procedure {
        trials: 3,
        max_trials: 3,
        target_width: 0.05,
        budget_secs: None,
        confidence: 0.95,
        trial_secs: 2.0,
        search: SearchConfig::default(),
        zero_loss: true,
        latency_fraction: 0.5,
        count: Some(crate::count::CountConfig { rate_pps: 100e3, secs: 2.0, trials: 1 }),
    }
}

const FULL: &str = r#"
[defaults]
exact_counts = true
max_loss = 0.0

[[scenario]]
size = 64
xdp_mode = "skb"
min_rate_pps = 100000
min_zero_loss_pps = 50000
max_p99_us = 500
max_cpu_ns_per_frame = 2000
"#;

#[test]
fn a_healthy_run_passes_every_check() {
    let g = gate(FULL).unwrap();
    assert_eq!(g.rules.len(), 1);
    assert_eq!(g.rules[0].line, 6, "the [[scenario]] header's line");
    assert!(g.rules[0].checks.exact_counts, "defaults merge in");
    let r = g.evaluate(&run_of(measured()), "run");
    let names: Vec<&str> = r.checks.iter().map(|c| c.check.as_str()).collect();
    assert_eq!(
        names,
        [
            "min_rate_pps >= 100000",
            "min_zero_loss_pps >= 50000",
            "max_p99_us <= 500",
            "max_cpu_ns_per_frame <= 2000",
            "max_loss (latency trials) <= 0",
            "max_loss (count trials) <= 0",
            "exact_counts"
        ]
    );
    assert!(r.checks.iter().all(|c| c.outcome == Outcome::Pass), "{r:#?}");
    assert_eq!(r.exit_code(), 0);
    assert_eq!(r.checks[0].measured, Some(300e3));
    assert_eq!(r.checks[2].measured, Some(40.0), "p99 in microseconds");
}

#[test]
fn each_threshold_fails_when_missed() {
    let mut s = measured();
    s.mrr_pps = spread(&[90e3, 91e3, 89e3]);
    s.zero_loss_pps = Some(10e3);
    s.latency.as_mut().unwrap().p99_ns = spread(&[900e3, 900e3]);
    s.latency.as_mut().unwrap().rx_cpu_ns_per_pkt = spread(&[5000.0, 5000.0]);
    s.latency.as_mut().unwrap().received = Some(599_999);
    s.count.as_mut().unwrap().trials[0].received = 199_999;
    let r = gate(FULL).unwrap().evaluate(&run_of(s), "run");
    assert!(r.checks.iter().all(|c| c.outcome == Outcome::Fail), "{r:#?}");
    assert_eq!(r.exit_code(), 1);
    says(&r.checks[0].message, &["measured 90000 pps", "at least 100000"]);
    says(&r.checks[6].message, &["sent 200000, received 199999, duplicates 0", "1 trial(s) not exact"]);
}

#[test]
fn a_duplicate_breaks_exact_counts_and_missing_accounting_cannot_run() {
    let g = gate("[[scenario]]\nexact_counts = true\n").unwrap();
    let mut s = measured();
    s.count.as_mut().unwrap().trials[0].duplicates = Some(1);
    assert_eq!(g.evaluate(&run_of(s.clone()), "r").checks[0].outcome, Outcome::Fail);
    s.count.as_mut().unwrap().trials[0].duplicates = None;
    let r = g.evaluate(&run_of(s), "r");
    assert_eq!(r.checks[0].outcome, Outcome::CouldNotRun);
    assert_eq!(r.exit_code(), 2);
}

#[test]
fn what_was_not_measured_could_not_run() {
    let mut s = measured();
    s.zero_loss_pps = None;
    s.latency = None;
    s.count = None;
    let r = gate(FULL).unwrap().evaluate(&run_of(s), "run");
    let outcomes: Vec<Outcome> = r.checks.iter().map(|c| c.outcome).collect();
    assert_eq!(outcomes[0], Outcome::Pass);
    assert!(outcomes[1..].iter().all(|o| *o == Outcome::CouldNotRun), "{r:#?}");
    assert_eq!(r.checks.iter().filter(|c| c.check.starts_with("max_loss")).count(), 1, "one max_loss check");
    assert_eq!(r.exit_code(), 2);
    // A failure outranks checks that could not run.
    let g = gate("[[scenario]]\nmin_rate_pps = 1e12\nmin_zero_loss_pps = 1\n").unwrap();
    let mut s = measured();
    s.zero_loss_pps = None;
    assert_eq!(g.evaluate(&run_of(s), "r").exit_code(), 1);
}

#[test]
fn a_selector_matching_nothing_or_an_unfinished_run_could_not_run() {
    let g = gate("[[scenario]]\nxdp_mode = \"native\"\nmin_rate_pps = 1\n").unwrap();
    let r = g.evaluate(&run_of(measured()), "run");
    assert_eq!((r.checks.len(), r.checks[0].outcome), (1, Outcome::CouldNotRun));
    says(&r.checks[0].message, &["xdp_mode=native selects no scenario", "veth skb copy rxdrop 64B xsk q1 busy"]);
    let mut run = run_of(measured());
    run.run.complete = false;
    let r = gate("[[scenario]]\nmin_rate_pps = 1\n").unwrap().evaluate(&run, "run");
    assert_eq!(r.checks[0].check, "complete");
    assert_eq!(r.exit_code(), 2);
    let by_label = gate("[[scenario]]\nlabel = \"veth skb copy rxdrop 64B xsk q1 busy\"\nmin_rate_pps = 1\n").unwrap();
    assert_eq!(by_label.evaluate(&run_of(measured()), "r").exit_code(), 0);
}

fn with_baseline(src: &str, base: ScenarioSummary) -> Gate {
    let b = run_of(base);
    Gate::parse(src, Path::new("/g/gate.toml"), &move |p: &Path| {
        assert_eq!(p, Path::new("/g/runs/base"), "relative to the gate file");
        Ok(b.clone())
    })
    .unwrap()
}

#[test]
fn a_baseline_regression_fails_only_when_the_interval_is_wholly_below() {
    let src = "[[scenario]]\nbaseline = \"runs/base\"\nmax_regression_pct = 10\n";
    let base = |v: &[f64]| ScenarioSummary { mrr_pps: spread(v), ..measured() };
    let now = run_of(measured()); // 298k..305k
    // Same rate: within 10%.
    let g = with_baseline(src, base(&[300e3, 302e3, 299e3]));
    let r = g.evaluate(&now, "r");
    assert_eq!(r.checks[0].outcome, Outcome::Pass, "{r:#?}");
    // Baseline 30% faster: the whole interval is below 0.9.
    let r = with_baseline(src, base(&[430e3, 435e3, 432e3])).evaluate(&now, "r");
    assert_eq!(r.checks[0].outcome, Outcome::Fail, "{r:#?}");
    says(&r.checks[0].message, &["threshold at least 0.9", "beyond the allowed"]);
    // Baseline about 11% faster with wide trials: the interval holds 0.9.
    let wide = base(&[290e3, 340e3, 380e3]);
    let r = with_baseline(src, wide.clone()).evaluate(&now, "r");
    assert_eq!((r.checks[0].outcome, r.exit_code()), (Outcome::Warn, 0), "{r:#?}");
    let strict = with_baseline(&format!("{src}strict = true\n"), wide).evaluate(&now, "r");
    assert_eq!((strict.checks[0].outcome, strict.exit_code()), (Outcome::Fail, 1));
    // A baseline without trial values cannot be judged.
    let old = ScenarioSummary { mrr_pps: Spread { values: vec![], ..spread(&[300e3]) }, ..measured() };
    let r = with_baseline(src, old.clone()).evaluate(&now, "r");
    assert_eq!(r.checks[0].outcome, Outcome::CouldNotRun);
    let e = with_baseline(src, old).check_plan(&[measured().scenario], &quick_procedure()).unwrap_err();
    says(&e.0, &["gate file /g/gate.toml:1", "0 trial value(s) of rate", "re-run the baseline"]);
}

use crate::stats::Spread;

#[test]
fn latency_and_cpu_regress_upwards() {
    let src = "[[scenario]]\nbaseline = \"runs/base\"\nmax_regression_pct = 10\nbaseline_metrics = [\"rate\", \"p99\", \"cpu\"]\n";
    let now = run_of(measured()); // p99 39-41 us, cpu 150-160 ns
    let mut base = measured();
    let l = base.latency.as_mut().unwrap();
    l.p99_ns = spread(&[20e3, 21e3, 20.5e3]); // now twice as slow
    l.rx_cpu_ns_per_pkt = spread(&[152.0, 158.0, 155.0]); // the same
    let r = with_baseline(src, base).evaluate(&now, "r");
    let got: Vec<(&str, Outcome)> =
        r.checks.iter().map(|c| (&c.check[..c.check.find(' ').unwrap()], c.outcome)).collect();
    assert_eq!(got, [("rate", Outcome::Pass), ("p99", Outcome::Fail), ("cpu", Outcome::Pass)], "{r:#?}");
    says(&r.checks[1].message, &["p99 latency / baseline", "threshold at most 1.1"]);
    // p99 needs latency trials in the plan.
    let g = with_baseline(src, measured());
    let no_latency = Procedure { latency_fraction: 0.0, ..quick_procedure() };
    says(&g.check_plan(&[measured().scenario], &no_latency).unwrap_err().0, &["baseline_metrics p99 and cpu"]);
    says(&err("[[scenario]]\nbaseline_metrics = [\"rate\"]\n"), &[":2", "baseline_metrics without a baseline"]);
    let bad = Gate::parse(
        "[[scenario]]\nbaseline = \"b\"\nmax_regression_pct = 5\nbaseline_metrics = [\"speed\"]\n",
        Path::new("/g/gate.toml"),
        &|_: &Path| Ok(run_of(measured())),
    )
    .unwrap_err()
    .0;
    says(&bad, &[":4", "\"speed\" is not a metric", "\"rate\", \"p99\", \"cpu\""]);
}

#[test]
fn the_plan_is_checked_before_any_trial() {
    let g = gate(FULL).unwrap();
    let skb = measured().scenario;
    let p = quick_procedure();
    g.check_plan(std::slice::from_ref(&skb), &p).unwrap();
    let native = Scenario { xdp_mode: XdpMode::Native, ..skb.clone() };
    says(&g.check_plan(&[native], &p).unwrap_err().0, &["gate file /g/gate.toml:6", "selects none", "native"]);
    let no_count = Procedure { count: None, ..p };
    says(&g.check_plan(std::slice::from_ref(&skb), &no_count).unwrap_err().0, &["exact_counts needs count trials"]);
    let no_search = Procedure { zero_loss: false, ..p };
    says(&g.check_plan(std::slice::from_ref(&skb), &no_search).unwrap_err().0, &["min_zero_loss_pps", "--no-search"]);
    let no_latency = Procedure { latency_fraction: 0.0, ..p };
    says(&g.check_plan(std::slice::from_ref(&skb), &no_latency).unwrap_err().0, &["max_p99_us", "--latency-fraction"]);
    let live = Scenario { engine: Engine::XdpLive, ..skb };
    says(&g.check_plan(&[live], &p).unwrap_err().0, &["xdp-live"]);
}

#[test]
fn malformed_gates_name_the_file_line_and_what_is_expected() {
    says(&err("[[scenario]]\nmin_rate_pps = \n"), &["gate file /g/gate.toml:2"]);
    says(
        &err("[[scenario]]\nmin_rate = 5\n"),
        &["gate file /g/gate.toml:2", "unknown field `min_rate`", "min_rate_pps"],
    );
    says(&err("[[scenarios]]\nmin_rate_pps = 5\n"), &["gate file /g/gate.toml:1", "scenarios"]);
    says(&err("[[scenario]]\n\nmax_loss = 2\n"), &["gate file /g/gate.toml:3", "max_loss = 2", "fraction from 0 to 1"]);
    says(&err("[[scenario]]\nmin_rate_pps = \"fast\"\n"), &["gate file /g/gate.toml:2"]);
    says(&err("[[scenario]]\nmin_rate_pps = -1\n"), &[":2", "positive packet rate"]);
    says(&err("[[scenario]]\nsize = \"big\"\nmin_rate_pps = 1\n"), &[":2", "size = big", "frame size such as 64"]);
    says(&err("[[scenario]]\nxdp_mode = \"fast\"\nmin_rate_pps = 1\n"), &[":2", "xdp_mode = \"fast\"", "skb, native"]);
    says(&err("[[scenario]]\nsize = 64\n"), &[":1", "checks nothing"]);
    says(&err(""), &["checks nothing"]);
    says(&err("[[scenario]]\nbaseline = \"b\"\n"), &[":2", "without max_regression_pct"]);
    says(&err("[[scenario]]\nmax_regression_pct = 5\n"), &[":2", "without a baseline"]);
    says(
        &err("[[scenario]]\nbaseline = \"b\"\nmax_regression_pct = 5\n"),
        &[":2", "cannot load the run", "no such run"],
    );
    says(&err("[[scenario]]\nbaseline = \"b\"\nmax_regression_pct = 100\n"), &[":3", "percentage"]);
    let missing = Gate::load(Path::new("/nonexistent/gate.toml")).unwrap_err().0;
    says(&missing, &["gate file /nonexistent/gate.toml: cannot read it"]);
    // Defaults alone select every scenario.
    let g = gate("[defaults]\nmin_rate_pps = 1\n").unwrap();
    assert_eq!((g.rules.len(), g.rules[0].selector.clone()), (1, Selector::default()));
}

/// Parses `xml` with quick-xml, failing on any error; returns (testcases, failures,
/// errors, the testsuite's failures attribute).
fn parse_junit(xml: &str) -> (usize, usize, usize, String) {
    use quick_xml::{Reader, events::Event};
    let mut r = Reader::from_str(xml);
    r.config_mut().check_end_names = true;
    let (mut cases, mut failures, mut errors, mut attr, mut depth) = (0, 0, 0, String::new(), 0i32);
    loop {
        match r.read_event().unwrap_or_else(|e| panic!("not well-formed XML ({e}):\n{xml}")) {
            Event::Start(e) => {
                depth += 1;
                let name: &str = e.name().0;
                match name {
                    "testcase" => cases += 1,
                    "failure" => failures += 1,
                    "error" => errors += 1,
                    "testsuite" => {
                        let a = e.try_get_attribute("failures").unwrap().expect("failures attribute");
                        attr = a.value.into_owned();
                    }
                    _ => {}
                }
            }
            Event::End(_) => depth -= 1,
            Event::GeneralRef(r) => {
                let name: &str = &r;
                assert!(["amp", "lt", "gt", "quot", "apos"].contains(&name), "unknown entity &{name};");
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(depth, 0, "every element closed");
    (cases, failures, errors, attr)
}

#[test]
fn the_junit_report_is_well_formed_and_counts_failures() {
    let mut s = measured();
    s.mrr_pps = spread(&[1.0, 1.0]);
    s.label = "odd <label> & \"quotes\" \u{1}".into();
    s.zero_loss_pps = None;
    let r = gate(FULL).unwrap().evaluate(&run_of(s), "run <1>");
    let xml = junit(&r, "2026-01-01T00:00:00Z");
    let (cases, failures, errors, attr) = parse_junit(&xml);
    assert_eq!((cases, failures, errors), (7, 1, 1), "{xml}");
    assert_eq!(attr, "1");
    assert!(xml.contains("measured 1 pps, threshold at least 100000"), "{xml}");
    assert!(xml.contains("odd &lt;label&gt; &amp; &quot;quotes&quot; \""), "{xml}");
    // A passing report has no failure element.
    let ok = junit(&gate(FULL).unwrap().evaluate(&run_of(measured()), "r"), "t");
    assert_eq!(parse_junit(&ok), (7, 0, 0, "0".into()));
    // Checking the checker: an unclosed element is caught.
    let broken = std::panic::catch_unwind(|| parse_junit("<a><b></a>"));
    assert!(broken.is_err());
}
