//! A gate: pass/fail thresholds on a run, read from a TOML file, so a bench run can fail
//! a CI job.
//!
//! ```toml
//! # Optional: checks every [[scenario]] below gets unless it sets its own.
//! [defaults]
//! exact_counts = true
//!
//! # Selects the run's scenarios whose fields all match (no selector field: every
//! # scenario). Selector fields: label (the whole label), target, size (64 or "imix"),
//! # xdp_mode, bind, mode, engine, queues, wait, threaded_napi.
//! [[scenario]]
//! size = 64
//! xdp_mode = "skb"
//! min_rate_pps = 50000
//! ```
//!
//! The checks, each evaluated on every scenario its entry selects:
//! - `min_rate_pps`: the median maximum receive rate (max-rate trials) is at least this;
//! - `min_zero_loss_pps`: the RFC 2544 zero-loss rate is at least this;
//! - `max_loss`: a fraction; the loss over the below-capacity trials, each kind checked on
//!   its own: the latency trials (at a fraction of the zero-loss rate) and the count trials
//!   (at the count rate). The max-rate and search trials lose frames by design and are
//!   never checked;
//! - `max_p99_us`: the median p99 one-way latency of the latency trials, microseconds;
//! - `max_cpu_ns_per_frame`: the median receiver CPU time per frame in the latency trials
//!   (below saturation, where a busy-polling worker's idle spinning is not counted per frame);
//! - `exact_counts = true`: every count trial received exactly what was sent, none twice;
//! - `baseline = "RUN_DIR"` with `max_regression_pct = X` (and `confidence = C`, default
//!   0.95): the max receive rate is no worse than the baseline run's same scenario (same
//!   label) by more than X%. The bootstrap interval of new / baseline medians
//!   ([`ratio_interval`]) at confidence C decides: its upper end below 1 - X/100 fails
//!   (worse than allowed, at confidence C); its lower end at or above 1 - X/100 passes;
//!   an interval holding 1 - X/100 is undecided: it passes with a warning, or fails with
//!   `strict = true`. A relative baseline path is relative to the gate file's directory.
//!   `baseline_metrics` (default `["rate"]`) adds `"p99"` (median p99 latency) and
//!   `"cpu"` (median receiver CPU per frame), each over the latency trials' values; lower
//!   is better for both, so they fail when the interval's lower end is above
//!   1 + X/100 and pass when its upper end is at or below it.
//!
//! A check that cannot be evaluated (a selector matching no scenario, a metric the run did
//! not measure, a baseline without the scenario or its trial values) is "could not run",
//! never a pass. [`GateReport::exit_code`]: 1 if any check failed, else 2 if any could not
//! run, else 0.
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::{
    Scenario,
    procedure::Procedure,
    scenario::{Bind, Engine, Mode, Size, Target, Wait, XdpMode},
    stats::{DEFAULT_CONFIDENCE, GoalVerdict, Interval, ratio_interval},
    store::{RunSummary, ScenarioSummary},
};

/// A gate file that cannot be used, or a run it cannot be applied to: names the file (and
/// line), what is wrong and what is expected.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct GateError(pub String);

/// A frame size as a gate file gives it: `64` or `"64"` or `"imix"`.
#[derive(Clone, Deserialize)]
#[serde(untagged)]
enum SizeValue {
    Int(i64),
    Str(String),
}

macro_rules! raw_checks {
    ($($f:ident: $t:ty),* $(,)?) => {
        #[derive(Clone, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct RawChecks {
            $($f: Option<Spanned<$t>>,)*
        }

        impl RawChecks {
            /// These, each unset one taken from `d`.
            fn or(self, d: RawChecks) -> RawChecks {
                RawChecks { $($f: self.$f.or(d.$f),)* }
            }
        }

        #[derive(Clone, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct RawEntry {
            label: Option<Spanned<String>>,
            target: Option<Spanned<String>>,
            size: Option<Spanned<SizeValue>>,
            xdp_mode: Option<Spanned<String>>,
            bind: Option<Spanned<String>>,
            mode: Option<Spanned<String>>,
            engine: Option<Spanned<String>>,
            queues: Option<Spanned<u32>>,
            wait: Option<Spanned<String>>,
            threaded_napi: Option<Spanned<bool>>,
            $($f: Option<Spanned<$t>>,)*
        }

        impl RawEntry {
            fn checks(&self) -> RawChecks {
                RawChecks { $($f: self.$f.clone(),)* }
            }
        }
    };
}

raw_checks!(
    min_rate_pps: f64,
    min_zero_loss_pps: f64,
    max_loss: f64,
    max_p99_us: f64,
    max_cpu_ns_per_frame: f64,
    exact_counts: bool,
    baseline: String,
    baseline_metrics: Vec<String>,
    max_regression_pct: f64,
    confidence: f64,
    strict: bool,
);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    defaults: Option<Spanned<RawChecks>>,
    #[serde(default)]
    scenario: Vec<Spanned<RawEntry>>,
}

/// Which scenarios a gate entry applies to: those whose fields all equal the ones given.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Selector {
    /// The whole label, e.g. `veth skb copy rxdrop 64B xsk q1 busy`.
    pub label: Option<String>,
    /// `veth`, `nic:IF`, `vm:igb`, ...
    pub target: Option<Target>,
    /// Frame size.
    pub size: Option<Size>,
    /// skb or native.
    pub xdp_mode: Option<XdpMode>,
    /// copy or zero-copy.
    pub bind: Option<Bind>,
    /// Receiver mode.
    pub mode: Option<Mode>,
    /// Generator engine.
    pub engine: Option<Engine>,
    /// Queue count.
    pub queues: Option<u32>,
    /// Receiver wait policy.
    pub wait: Option<Wait>,
    /// Threaded NAPI.
    pub threaded_napi: Option<bool>,
}

impl Selector {
    /// True if every field given equals the scenario's.
    pub fn matches(&self, sc: &Scenario) -> bool {
        fn eq<T: PartialEq>(want: &Option<T>, have: &T) -> bool {
            want.as_ref().is_none_or(|w| w == have)
        }
        eq(&self.label, &sc.label())
            && eq(&self.target, &sc.target)
            && eq(&self.size, &sc.size)
            && eq(&self.xdp_mode, &sc.xdp_mode)
            && eq(&self.bind, &sc.bind)
            && eq(&self.mode, &sc.mode)
            && eq(&self.engine, &sc.engine)
            && eq(&self.queues, &sc.queues)
            && eq(&self.wait, &sc.wait)
            && eq(&self.threaded_napi, &sc.threaded_napi)
    }

    /// `size=64 xdp_mode=skb`, or `every scenario`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                parts.push(format!("{k}={v}"));
            }
        };
        put("label", self.label.as_ref().map(|l| format!("{l:?}")));
        put("target", self.target.as_ref().map(ToString::to_string));
        put("size", self.size.map(|s| s.to_string()));
        put("xdp_mode", self.xdp_mode.map(|s| s.to_string()));
        put("bind", self.bind.map(|s| s.to_string()));
        put("mode", self.mode.map(|s| s.to_string()));
        put("engine", self.engine.map(|s| s.to_string()));
        put("queues", self.queues.map(|s| s.to_string()));
        put("wait", self.wait.map(|s| s.to_string()));
        put("threaded_napi", self.threaded_napi.map(|s| s.to_string()));
        if parts.is_empty() { "every scenario".to_owned() } else { parts.join(" ") }
    }
}

/// What a baseline comparison compares, over each scenario's trial values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// The max receive rate (max-rate trials); higher is better.
    Rate,
    /// The p99 latency (latency trials); lower is better.
    P99,
    /// Receiver CPU per frame (latency trials); lower is better.
    Cpu,
}

impl Metric {
    /// The name a gate file gives it.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Rate => "rate",
            Metric::P99 => "p99",
            Metric::Cpu => "cpu",
        }
    }

    fn parse(s: &str) -> Option<Metric> {
        [Metric::Rate, Metric::P99, Metric::Cpu].into_iter().find(|m| m.name() == s)
    }

    fn higher_is_better(self) -> bool {
        self == Metric::Rate
    }

    fn what(self) -> &'static str {
        match self {
            Metric::Rate => "max receive rate",
            Metric::P99 => "p99 latency",
            Metric::Cpu => "receiver CPU per frame",
        }
    }

    /// The scenario's trial values of this metric (empty when not measured or not kept).
    pub fn values(self, s: &ScenarioSummary) -> &[f64] {
        match (self, &s.latency) {
            (Metric::Rate, _) => &s.mrr_pps.values,
            (Metric::P99, Some(l)) => &l.p99_ns.values,
            (Metric::Cpu, Some(l)) => &l.rx_cpu_ns_per_pkt.values,
            (_, None) => &[],
        }
    }
}

/// A baseline comparison.
#[derive(Clone, Debug)]
pub struct Baseline {
    /// The baseline run directory (resolved).
    pub dir: PathBuf,
    /// Its summary.
    pub run: RunSummary,
    /// The regression allowed, percent.
    pub max_regression_pct: f64,
    /// The interval's confidence.
    pub confidence: f64,
    /// What is compared (at least one).
    pub metrics: Vec<Metric>,
}

/// The checks of one gate entry (defaults merged in).
#[derive(Clone, Debug, Default)]
pub struct Checks {
    /// Median max receive rate at least this, pps.
    pub min_rate_pps: Option<f64>,
    /// Zero-loss rate at least this, pps.
    pub min_zero_loss_pps: Option<f64>,
    /// Loss of the latency and of the count trials at most this fraction.
    pub max_loss: Option<f64>,
    /// Median p99 latency at most this, microseconds.
    pub max_p99_us: Option<f64>,
    /// Median receiver CPU per frame in the latency trials at most this, ns.
    pub max_cpu_ns_per_frame: Option<f64>,
    /// Every count trial exact.
    pub exact_counts: bool,
    /// No regression against a baseline run beyond the allowed percentage.
    pub baseline: Option<Baseline>,
    /// An undecided baseline comparison fails (else it passes with a warning).
    pub strict: bool,
}

impl Checks {
    fn is_empty(&self) -> bool {
        self.min_rate_pps.is_none()
            && self.min_zero_loss_pps.is_none()
            && self.max_loss.is_none()
            && self.max_p99_us.is_none()
            && self.max_cpu_ns_per_frame.is_none()
            && !self.exact_counts
            && self.baseline.is_none()
    }
}

/// One entry of a gate: a selector and its checks.
#[derive(Clone, Debug)]
pub struct Rule {
    /// The line of the gate file the entry starts on.
    pub line: usize,
    /// Which scenarios it applies to.
    pub selector: Selector,
    /// What it checks on each.
    pub checks: Checks,
}

/// A parsed, validated gate file with its baselines loaded.
#[derive(Clone, Debug)]
pub struct Gate {
    /// The file it was read from.
    pub path: PathBuf,
    /// Its entries, in file order.
    pub rules: Vec<Rule>,
}

const KEYS: &str = "min_rate_pps, min_zero_loss_pps, max_loss, max_p99_us, max_cpu_ns_per_frame, exact_counts, \
                    baseline (with max_regression_pct, confidence, strict, baseline_metrics)";

fn line_of(src: &str, offset: usize) -> usize {
    src.get(..offset).map_or(1, |s| s.matches('\n').count() + 1)
}

impl Gate {
    /// Reads and validates the gate file at `path`, loading each baseline run it names.
    pub fn load(path: &Path) -> Result<Gate, GateError> {
        let src = std::fs::read_to_string(path)
            .map_err(|e| GateError(format!("gate file {}: cannot read it: {e}", path.display())))?;
        Gate::parse(&src, path, &|dir| crate::store::load(dir).map_err(|e| e.to_string()))
    }

    /// Validates gate text `src` (read from `path`, which names it in errors and anchors
    /// relative baseline paths); `load_run` loads a baseline run directory.
    pub fn parse(
        src: &str,
        path: &Path,
        load_run: &dyn Fn(&Path) -> Result<RunSummary, String>,
    ) -> Result<Gate, GateError> {
        let file = path.display();
        let raw: RawFile = toml::from_str(src).map_err(|e| {
            let line = e.span().map_or(String::new(), |s| format!(":{}", line_of(src, s.start)));
            GateError(format!(
                "gate file {file}{line}: {}; expected [defaults] and [[scenario]] tables with selector fields and the \
                 checks {KEYS}",
                e.message().trim_end()
            ))
        })?;
        let at = |span: std::ops::Range<usize>| format!("gate file {file}:{}", line_of(src, span.start));
        let defaults_line = raw.defaults.as_ref().map(|d| line_of(src, d.span().start));
        let defaults = raw.defaults.map(Spanned::into_inner).unwrap_or_default();
        let mut entries: Vec<(usize, Selector, RawChecks)> = Vec::new();
        for e in raw.scenario {
            let line = line_of(src, e.span().start);
            let e = e.into_inner();
            let selector = selector(&e, &at)?;
            entries.push((line, selector, e.checks().or(defaults.clone())));
        }
        if entries.is_empty() {
            match defaults_line {
                Some(line) => entries.push((line, Selector::default(), defaults)),
                None => {
                    return Err(GateError(format!(
                        "gate file {file}: it checks nothing; add a [[scenario]] table (or [defaults]) with at least one \
                         of {KEYS}"
                    )));
                }
            }
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let mut rules = Vec::new();
        for (line, selector, raw) in entries {
            let checks = checks(raw, &at, base, load_run)?;
            if checks.is_empty() {
                return Err(GateError(format!(
                    "gate file {file}:{line}: this entry ({}) checks nothing; give at least one of {KEYS}",
                    selector.describe()
                )));
            }
            rules.push(Rule { line, selector, checks });
        }
        Ok(Gate { path: path.to_path_buf(), rules })
    }

    /// Checks, before any trial runs, that every entry selects at least one of the
    /// `scenarios` a run with procedure `p` will measure, that the run measures what each
    /// check needs, and that each baseline holds the selected scenarios with their trial
    /// values.
    pub fn check_plan(&self, scenarios: &[Scenario], p: &Procedure) -> Result<(), GateError> {
        let file = self.path.display();
        for r in &self.rules {
            let at = format!("gate file {file}:{}", r.line);
            let selected: Vec<&Scenario> = scenarios.iter().filter(|s| r.selector.matches(s)).collect();
            if selected.is_empty() {
                return Err(GateError(format!(
                    "{at}: {} selects none of this run's scenarios ({}); change the selector or the bench flags",
                    r.selector.describe(),
                    scenarios.iter().map(Scenario::label).collect::<Vec<_>>().join("; ")
                )));
            }
            let c = &r.checks;
            for sc in selected {
                let paced = sc.can_pace();
                let lacks = |what: &str, fix: &str| {
                    Err(GateError(format!("{at}: {what} for {}, which this run does not measure; {fix}", sc.label())))
                };
                let unpaced = "the xdp-live engine runs max-rate trials only; select xsk scenarios";
                if c.min_zero_loss_pps.is_some() && !(paced && p.zero_loss) {
                    return lacks(
                        "min_zero_loss_pps needs the zero-loss search",
                        if paced { "drop --no-search" } else { unpaced },
                    );
                }
                let latency = paced && p.latency_fraction > 0.0;
                let count = paced && p.count.is_some_and(|c| c.trials > 0);
                if (c.max_p99_us.is_some() || c.max_cpu_ns_per_frame.is_some()) && !latency {
                    return lacks(
                        "max_p99_us and max_cpu_ns_per_frame need latency trials",
                        if paced { "give --latency-fraction above 0, e.g. 0.5" } else { unpaced },
                    );
                }
                if c.max_loss.is_some() && !latency && !count {
                    return lacks(
                        "max_loss needs latency or count trials",
                        if paced { "give --latency-fraction 0.5 or --count-trials 1" } else { unpaced },
                    );
                }
                if c.exact_counts && !count {
                    return lacks(
                        "exact_counts needs count trials",
                        if paced { "give --count-trials 1 (--quick has one)" } else { unpaced },
                    );
                }
                if let Some(b) = &c.baseline {
                    if p.trials < 2 {
                        return Err(GateError(format!(
                            "{at}: baseline needs at least 2 max-rate trials per scenario for an interval; give --trials 3 \
                             or more"
                        )));
                    }
                    if b.metrics.iter().any(|m| *m != Metric::Rate) && !latency {
                        return lacks(
                            "baseline_metrics p99 and cpu need latency trials",
                            if paced { "give --latency-fraction above 0, e.g. 0.5" } else { unpaced },
                        );
                    }
                    let Some(s) = b.run.scenarios.iter().find(|s| s.label == sc.label()) else {
                        return Err(GateError(format!(
                            "{at}: baseline {} has no scenario {:?}; give a baseline run that measured it",
                            b.dir.display(),
                            sc.label()
                        )));
                    };
                    for m in &b.metrics {
                        let n = m.values(s).len();
                        if n < 2 {
                            return Err(GateError(format!(
                                "{at}: baseline {} keeps {n} trial value(s) of {} for {:?}, and an interval needs 2 or more \
                                 (runs stored before trial values were kept have none); re-run the baseline",
                                b.dir.display(),
                                m.name(),
                                sc.label()
                            )));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Evaluates every check on the stored run `run` (named `run_name` in the report).
    pub fn evaluate(&self, run: &RunSummary, run_name: &str) -> GateReport {
        let mut checks = Vec::new();
        if !run.run.complete {
            checks.push(CheckResult {
                scenario: "run".into(),
                check: "complete".into(),
                outcome: Outcome::CouldNotRun,
                measured: None,
                threshold: None,
                line: 0,
                message: "the run did not finish (interrupted, or a trial failed): what it did not measure cannot be \
                          judged"
                    .into(),
            });
        }
        for r in &self.rules {
            let selected: Vec<&ScenarioSummary> =
                run.scenarios.iter().filter(|s| r.selector.matches(&s.scenario)).collect();
            if selected.is_empty() {
                checks.push(CheckResult {
                    scenario: r.selector.describe(),
                    check: "selector".into(),
                    outcome: Outcome::CouldNotRun,
                    measured: None,
                    threshold: None,
                    line: r.line,
                    message: format!(
                        "{} selects no scenario of the run (it has: {})",
                        r.selector.describe(),
                        run.scenarios.iter().map(|s| s.label.as_str()).collect::<Vec<_>>().join("; ")
                    ),
                });
            }
            for s in selected {
                evaluate_scenario(r, s, &mut checks);
            }
        }
        GateReport { gate: self.path.display().to_string(), run: run_name.to_owned(), checks }
    }
}

fn parsed<T: std::str::FromStr>(
    v: &Option<Spanned<String>>,
    key: &str,
    at: &dyn Fn(std::ops::Range<usize>) -> String,
) -> Result<Option<T>, GateError>
where
    T::Err: std::fmt::Display,
{
    match v {
        None => Ok(None),
        Some(s) => s
            .get_ref()
            .parse()
            .map(Some)
            .map_err(|e| GateError(format!("{}: {key} = {:?}: {e}", at(s.span()), s.get_ref()))),
    }
}

fn selector(e: &RawEntry, at: &dyn Fn(std::ops::Range<usize>) -> String) -> Result<Selector, GateError> {
    let size = match &e.size {
        None => None,
        Some(s) => {
            let text = match s.get_ref() {
                SizeValue::Int(n) => n.to_string(),
                SizeValue::Str(t) => t.clone(),
            };
            Some(text.parse::<Size>().map_err(|err| {
                GateError(format!("{}: size = {text}: {err}; give a frame size such as 64, or \"imix\"", at(s.span())))
            })?)
        }
    };
    Ok(Selector {
        label: e.label.as_ref().map(|l| l.get_ref().clone()),
        target: parsed(&e.target, "target", at)?,
        size,
        xdp_mode: parsed(&e.xdp_mode, "xdp_mode", at)?,
        bind: parsed(&e.bind, "bind", at)?,
        mode: parsed(&e.mode, "mode", at)?,
        engine: parsed(&e.engine, "engine", at)?,
        queues: e.queues.as_ref().map(|q| *q.get_ref()),
        wait: parsed(&e.wait, "wait", at)?,
        threaded_napi: e.threaded_napi.as_ref().map(|t| *t.get_ref()),
    })
}

/// A number in `ok`, else an error naming the key, the value and `expected`.
fn number(
    v: &Option<Spanned<f64>>,
    key: &str,
    ok: impl Fn(f64) -> bool,
    expected: &str,
    at: &dyn Fn(std::ops::Range<usize>) -> String,
) -> Result<Option<f64>, GateError> {
    match v {
        None => Ok(None),
        Some(s) if s.get_ref().is_finite() && ok(*s.get_ref()) => Ok(Some(*s.get_ref())),
        Some(s) => Err(GateError(format!("{}: {key} = {}: {expected}", at(s.span()), s.get_ref()))),
    }
}

fn checks(
    raw: RawChecks,
    at: &dyn Fn(std::ops::Range<usize>) -> String,
    base: &Path,
    load_run: &dyn Fn(&Path) -> Result<RunSummary, String>,
) -> Result<Checks, GateError> {
    let positive = |x: f64| x > 0.0;
    let min_rate_pps =
        number(&raw.min_rate_pps, "min_rate_pps", positive, "expected a positive packet rate, e.g. 50000", at)?;
    let min_zero_loss_pps = number(
        &raw.min_zero_loss_pps,
        "min_zero_loss_pps",
        positive,
        "expected a positive packet rate, e.g. 20000",
        at,
    )?;
    let max_loss = number(
        &raw.max_loss,
        "max_loss",
        |x| (0.0..=1.0).contains(&x),
        "expected a fraction from 0 to 1, e.g. 0.001 for 0.1%",
        at,
    )?;
    let max_p99_us =
        number(&raw.max_p99_us, "max_p99_us", positive, "expected a positive number of microseconds, e.g. 500", at)?;
    let max_cpu_ns_per_frame = number(
        &raw.max_cpu_ns_per_frame,
        "max_cpu_ns_per_frame",
        positive,
        "expected a positive number of nanoseconds, e.g. 2000",
        at,
    )?;
    let pct = number(
        &raw.max_regression_pct,
        "max_regression_pct",
        |x| (0.0..100.0).contains(&x),
        "expected a percentage from 0 up to (not including) 100, e.g. 10",
        at,
    )?;
    let confidence = number(
        &raw.confidence,
        "confidence",
        |x| x > 0.0 && x < 1.0,
        "expected a confidence between 0 and 1, e.g. 0.95",
        at,
    )?;
    let baseline = match (&raw.baseline, pct) {
        (None, None) => {
            if let Some(c) = &raw.confidence {
                return Err(GateError(format!(
                    "{}: confidence without a baseline; add baseline = \"RUN_DIR\" and max_regression_pct, or drop it",
                    at(c.span())
                )));
            }
            None
        }
        (None, Some(_)) => {
            let s = raw.max_regression_pct.as_ref().map_or(0..0, |s| s.span());
            return Err(GateError(format!(
                "{}: max_regression_pct without a baseline; add baseline = \"RUN_DIR\" (a stored run), or drop it",
                at(s)
            )));
        }
        (Some(b), None) => {
            return Err(GateError(format!(
                "{}: baseline = {:?} without max_regression_pct; add max_regression_pct = 10 (the regression allowed, \
                 percent)",
                at(b.span()),
                b.get_ref()
            )));
        }
        (Some(b), Some(pct)) => {
            let p = Path::new(b.get_ref());
            let dir = if p.is_absolute() { p.to_path_buf() } else { base.join(p) };
            let run = load_run(&dir).map_err(|e| {
                GateError(format!(
                    "{}: baseline = {:?}: cannot load the run ({e}); give a run directory xdpipe bench wrote (relative \
                     paths are relative to the gate file)",
                    at(b.span()),
                    b.get_ref()
                ))
            })?;
            let metrics = match &raw.baseline_metrics {
                None => vec![Metric::Rate],
                Some(list) => {
                    let bad = |why: String| {
                        GateError(format!(
                            "{}: baseline_metrics: {why}; expected a list of \"rate\", \"p99\", \"cpu\", e.g. [\"rate\", \"p99\"]",
                            at(list.span())
                        ))
                    };
                    let mut ms = Vec::new();
                    for name in list.get_ref() {
                        let m = Metric::parse(name).ok_or_else(|| bad(format!("{name:?} is not a metric")))?;
                        if ms.contains(&m) {
                            return Err(bad(format!("{name:?} is listed twice")));
                        }
                        ms.push(m);
                    }
                    if ms.is_empty() {
                        return Err(bad("empty".into()));
                    }
                    ms
                }
            };
            Some(Baseline {
                dir,
                run,
                max_regression_pct: pct,
                confidence: confidence.unwrap_or(DEFAULT_CONFIDENCE),
                metrics,
            })
        }
    };
    if raw.baseline.is_none()
        && let Some(m) = &raw.baseline_metrics
    {
        return Err(GateError(format!(
            "{}: baseline_metrics without a baseline; add baseline = \"RUN_DIR\" and max_regression_pct, or drop it",
            at(m.span())
        )));
    }
    Ok(Checks {
        min_rate_pps,
        min_zero_loss_pps,
        max_loss,
        max_p99_us,
        max_cpu_ns_per_frame,
        exact_counts: raw.exact_counts.is_some_and(|e| *e.get_ref()),
        baseline,
        strict: raw.strict.is_some_and(|s| *s.get_ref()),
    })
}

/// What one check said.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Met.
    Pass,
    /// Not failed, but not shown either (an undecided baseline comparison, not strict).
    Warn,
    /// Missed.
    Fail,
    /// The run has nothing to judge it on.
    CouldNotRun,
}

/// One check on one scenario.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The scenario's label (or the selector, when it matched none).
    pub scenario: String,
    /// The check, e.g. `min_rate_pps >= 50000`.
    pub check: String,
    /// What it said.
    pub outcome: Outcome,
    /// The measured value, in the check's unit.
    pub measured: Option<f64>,
    /// The threshold, in the same unit.
    pub threshold: Option<f64>,
    /// The line of the gate entry (0: not from an entry).
    pub line: usize,
    /// The measured value against the threshold, in words.
    pub message: String,
}

/// Every check of a gate on a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GateReport {
    /// The gate file.
    pub gate: String,
    /// The run judged.
    pub run: String,
    /// Each check, in gate order.
    pub checks: Vec<CheckResult>,
}

impl GateReport {
    /// How many checks had outcome `o`.
    pub fn count(&self, o: Outcome) -> usize {
        self.checks.iter().filter(|c| c.outcome == o).count()
    }

    /// 1 if any check failed, else 2 if any could not run, else 0 (warnings pass).
    pub fn exit_code(&self) -> u8 {
        if self.count(Outcome::Fail) > 0 {
            1
        } else if self.count(Outcome::CouldNotRun) > 0 {
            2
        } else {
            0
        }
    }
}

/// A value as a reader wants it: large round ones as 1e12, fractions to 6 places, the
/// rest to 3.
fn fmt_num(x: f64) -> String {
    if x.abs() >= 1e7 && x.fract() == 0.0 {
        format!("{x:e}")
    } else if x.abs() < 1.0 {
        format!("{}", (x * 1e6).round() / 1e6)
    } else {
        format!("{}", (x * 1e3).round() / 1e3)
    }
}

fn evaluate_scenario(r: &Rule, s: &ScenarioSummary, out: &mut Vec<CheckResult>) {
    let c = &r.checks;
    let mut push = |check: String, outcome: Outcome, measured: Option<f64>, threshold: Option<f64>, message: String| {
        out.push(CheckResult { scenario: s.label.clone(), check, outcome, measured, threshold, line: r.line, message })
    };
    // A bound on a measured value: at_least (else at most) `t`.
    let mut bound = |key: &str, unit: &str, value: Option<f64>, t: f64, at_least: bool, missing: &str| {
        let op = if at_least { ">=" } else { "<=" };
        let check = format!("{key} {op} {}", fmt_num(t));
        match value {
            None => push(check, Outcome::CouldNotRun, None, Some(t), format!("not measured: {missing}")),
            Some(v) => {
                let ok = if at_least { v >= t } else { v <= t };
                let with_unit = |x: f64| if unit.is_empty() { fmt_num(x) } else { format!("{} {unit}", fmt_num(x)) };
                let msg = format!(
                    "measured {}, threshold {} {}",
                    with_unit(v),
                    if at_least { "at least" } else { "at most" },
                    with_unit(t)
                );
                push(check, if ok { Outcome::Pass } else { Outcome::Fail }, Some(v), Some(t), msg)
            }
        }
    };
    let some_n = |sp: &crate::stats::Spread| (sp.n > 0).then_some(sp.median);
    if let Some(t) = c.min_rate_pps {
        bound("min_rate_pps", "pps", some_n(&s.mrr_pps), t, true, "no max-rate trial");
    }
    if let Some(t) = c.min_zero_loss_pps {
        bound("min_zero_loss_pps", "pps", s.zero_loss_pps, t, true, "the run did not search for the zero-loss rate");
    }
    if let Some(t) = c.max_p99_us {
        let v = s.latency.as_ref().and_then(|l| some_n(&l.p99_ns)).map(|ns| ns / 1e3);
        bound("max_p99_us", "us", v, t, false, "no latency trial measured latency");
    }
    if let Some(t) = c.max_cpu_ns_per_frame {
        let v = s.latency.as_ref().and_then(|l| some_n(&l.rx_cpu_ns_per_pkt));
        bound("max_cpu_ns_per_frame", "ns/frame", v, t, false, "no latency trial measured the receiver's CPU time");
    }
    if let Some(t) = c.max_loss {
        let lat = s.latency.as_ref().and_then(|l| match (l.sent, l.received) {
            (Some(sent), Some(rx)) if sent > 0 => Some(sent.saturating_sub(rx) as f64 / sent as f64),
            _ => None,
        });
        let count = s.count.as_ref().filter(|p| p.sent() > 0).map(|p| p.loss_ratio());
        if lat.is_none() && count.is_none() {
            bound("max_loss", "", None, t, false, "the run has no latency or count trials with counts");
        }
        if let Some(v) = lat {
            bound("max_loss (latency trials)", "", Some(v), t, false, "");
        }
        if let Some(v) = count {
            bound("max_loss (count trials)", "", Some(v), t, false, "");
        }
    }
    if c.exact_counts {
        let check = "exact_counts".to_owned();
        match &s.count {
            None => {
                push(check, Outcome::CouldNotRun, None, Some(0.0), "not measured: the run has no count trials".into())
            }
            Some(p) if p.trials.is_empty() => {
                push(check, Outcome::CouldNotRun, None, Some(0.0), "not measured: no count trial finished".into())
            }
            Some(p) if p.duplicates().is_none() => push(
                check,
                Outcome::CouldNotRun,
                None,
                Some(0.0),
                "the receiver kept no sequence accounting, so duplicates are unknown".into(),
            ),
            Some(p) => {
                let off = p.trials.iter().filter(|t| !t.exact()).count();
                let wrong = (p.sent() as i128 - p.received() as i128).unsigned_abs() as f64
                    + p.duplicates().unwrap_or(0) as f64;
                let msg = format!(
                    "{} count trial(s) of {} s at {} pps{}: sent {}, received {}, duplicates {}; {off} trial(s) not exact \
                     (threshold: sent = received, no duplicates)",
                    p.trials.len(),
                    p.secs,
                    fmt_num(p.offered_pps),
                    if p.capped { " (capped at half the zero-loss rate)" } else { "" },
                    p.sent(),
                    p.received(),
                    p.duplicates().unwrap_or(0),
                );
                push(check, if p.exact() { Outcome::Pass } else { Outcome::Fail }, Some(wrong), Some(0.0), msg)
            }
        }
    }
    if let Some(b) = &c.baseline {
        for &m in &b.metrics {
            baseline_check(b, m, c.strict, s, &mut push);
        }
    }
}

/// One baseline comparison of metric `m` on scenario `s`.
fn baseline_check(
    b: &Baseline,
    m: Metric,
    strict: bool,
    s: &ScenarioSummary,
    push: &mut dyn FnMut(String, Outcome, Option<f64>, Option<f64>, String),
) {
    let higher = m.higher_is_better();
    let t = if higher { 1.0 - b.max_regression_pct / 100.0 } else { 1.0 + b.max_regression_pct / 100.0 };
    let check = format!("{} max_regression_pct {} vs {}", m.name(), fmt_num(b.max_regression_pct), b.dir.display());
    let base = b.run.scenarios.iter().find(|x| x.label == s.label);
    let interval: Option<Interval> = base.and_then(|x| ratio_interval(m.values(s), m.values(x), b.confidence));
    match (base, interval) {
        (None, _) => push(
            check,
            Outcome::CouldNotRun,
            None,
            Some(t),
            format!("the baseline {} has no scenario {:?}", b.dir.display(), s.label),
        ),
        (Some(x), None) => push(
            check,
            Outcome::CouldNotRun,
            None,
            Some(t),
            format!(
                "no interval: this run keeps {} and the baseline {} {} trial value(s); an interval needs 2 or more on \
                 each side with a non-zero median",
                m.values(s).len(),
                m.values(x).len(),
                m.name()
            ),
        ),
        (Some(_), Some(i)) => {
            let (outcome, word) = match GoalVerdict::of(Some(&i), higher, t) {
                GoalVerdict::Met => (Outcome::Pass, "within the allowed regression"),
                GoalVerdict::Missed => (Outcome::Fail, "a regression beyond the allowed one"),
                GoalVerdict::Undecided if strict => (Outcome::Fail, "undecided (strict: counted as a failure)"),
                GoalVerdict::Undecided => (
                    Outcome::Warn,
                    "undecided: the interval holds the threshold (passes with a warning; strict = true fails it)",
                ),
            };
            let msg = format!(
                "{} / baseline = {i} at {:.0}% confidence, threshold {} {}: {word}",
                m.what(),
                b.confidence * 100.0,
                if higher { "at least" } else { "at most" },
                fmt_num(t)
            );
            push(check, outcome, Some(i.estimate), Some(t), msg)
        }
    }
}

#[cfg(test)]
mod tests;
