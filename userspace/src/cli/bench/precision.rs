//! The adaptive-trial flags of `xdpipe bench` (`--max-trials`, `--ci-width`,
//! `--budget-secs`, `--confidence`) and their checks, and one anchor comparison's pairs of
//! alternating trials, added until the ratio's interval is narrow enough.
use xdpipe::anchors::Goal;
use xdpipe_bench::{
    adaptive::Stopping,
    stats::{Better, GoalVerdict, Interval, Verdict, describe_ratio, ratio_interval, spread},
    store::Anchor,
};

use crate::cli::{CliError, refuse};

/// The checked adaptive limits: (max trials, target width, budget seconds, confidence).
pub type Limits = (usize, f64, Option<f64>, f64);

/// Checks the adaptive flags against `--trials` (the minimum).
pub fn limits(
    trials: usize,
    max_trials: Option<usize>,
    ci_width: f64,
    budget_secs: Option<f64>,
    confidence: f64,
) -> Result<Limits, CliError> {
    let max = max_trials.unwrap_or(trials.saturating_mul(3));
    if max < trials {
        refuse!("--max-trials {max}: below --trials {trials} (the minimum); give at least {trials}, or lower --trials");
    }
    if max > 10_000 {
        refuse!("--max-trials {max}: give at most 10000 trials per point");
    }
    if !(ci_width.is_finite() && (0.0..10.0).contains(&ci_width)) {
        refuse!(
            "--ci-width {ci_width}: the relative width of the median's interval to stop at, a fraction from 0 to 10, \
             e.g. 0.05 for 5% (0: run every point to --max-trials)"
        );
    }
    if let Some(b) = budget_secs
        && !(b > 0.0 && b < 1e7)
    {
        refuse!("--budget-secs {b}: give a positive number of seconds per point, e.g. 60");
    }
    if !(confidence > 0.5 && confidence < 1.0) {
        refuse!("--confidence {confidence}: give a fraction between 0.5 and 1, e.g. 0.95 (95% intervals)");
    }
    Ok((max, ci_width, budget_secs, confidence))
}

/// `9 trials: median's interval 17.1% wide, target 5.0% not reached (max trials)`.
pub fn describe(p: &xdpipe_bench::adaptive::Precision) -> String {
    let w = p.width.map_or("no interval".to_owned(), |w| format!("median's interval {:.1}% wide", 100.0 * w));
    let reached = if p.reached { "reached".to_owned() } else { format!("not reached ({})", p.stopped) };
    format!("{} trials: {w}, target {:.1}% {reached}", p.trials, 100.0 * p.target_width)
}

/// One finished anchor trial pair, as the comparison reports it.
pub struct Pair {
    pub ours: f64,
    pub theirs: f64,
}

/// Runs pairs of alternating trials (`pair(i)`: ours then theirs) until `stopping` says
/// the ratio's interval is narrow enough, or the cap or budget stops it; `pair_secs` is
/// what one pair is expected to take. Returns the values of both sides and the precision.
pub fn run_pairs(
    stopping: &Stopping,
    pair_secs: f64,
    mut pair: impl FnMut(usize) -> Result<Pair, String>,
) -> Result<(Vec<f64>, Vec<f64>, xdpipe_bench::adaptive::Precision), String> {
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let started = std::time::Instant::now();
    loop {
        let width = ratio_interval(&ours, &theirs, stopping.confidence).map(|i| i.relative_width());
        let spent = started.elapsed().as_secs_f64();
        if let Some(stopped) = stopping.check(ours.len(), width, spent, pair_secs) {
            let p = stopping.precision(ours.len(), width, stopped);
            return Ok((ours, theirs, p));
        }
        let p = pair(ours.len())?;
        ours.push(p.ours);
        theirs.push(p.theirs);
    }
}

/// What goes in the summary and on the progress line for one comparison.
pub struct Finding {
    pub ratio: f64,
    pub ratio_ci: Option<Interval>,
    pub verdict: Verdict,
    pub goal: String,
    pub goal_verdict: Option<GoalVerdict>,
}

/// The ratio ours / theirs of the medians, its interval, the verdict (`lower_better` for
/// ns/frame) and the goal's verdict.
pub fn finding(ours: &[f64], theirs: &[f64], lower_better: bool, goal: &Goal, confidence: f64) -> Finding {
    let (o, t) = (spread(ours), spread(theirs));
    let ratio = if t.median > 0.0 { o.median / t.median } else { 0.0 };
    let ratio_ci = ratio_interval(ours, theirs, confidence);
    let better = if lower_better { Better::Lower } else { Better::Higher };
    let verdict = Verdict::of(ratio_ci.as_ref(), better);
    let (goal, goal_verdict) = match *goal {
        Goal::AtLeast(x) => (format!("at least {x}"), Some(GoalVerdict::of(ratio_ci.as_ref(), true, x))),
        Goal::AtMost(x) => (format!("at most {x}"), Some(GoalVerdict::of(ratio_ci.as_ref(), false, x))),
        Goal::Share => (String::new(), None),
    };
    Finding { ratio, ratio_ci, verdict, goal, goal_verdict }
}

impl Finding {
    /// `ratio 0.97 [0.91, 1.04] at 95%: indistinguishable (goal at least 1.1: missed)`.
    pub fn line(&self) -> String {
        let goal = match self.goal_verdict {
            Some(g) => format!(" (goal {}: {g})", self.goal),
            None => String::new(),
        };
        format!("ratio {}: {}{goal}", describe_ratio(self.ratio_ci.as_ref(), self.ratio), self.verdict)
    }

    /// The stored anchor, with its sides' names and commands.
    pub fn anchor(
        self,
        name: &str,
        xdp_mode: &str,
        unit: &str,
        cmds: (String, String),
        values: (&[f64], &[f64]),
    ) -> Anchor {
        Anchor {
            name: name.to_owned(),
            xdp_mode: xdp_mode.to_owned(),
            unit: unit.to_owned(),
            ours_command: cmds.0,
            theirs_command: cmds.1,
            ours: spread(values.0),
            theirs: spread(values.1),
            ratio: self.ratio,
            ratio_ci: self.ratio_ci,
            verdict: self.verdict,
            goal: self.goal,
            goal_verdict: self.goal_verdict,
            precision: None,
            ours_p99_us: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limits_are_checked() {
        assert_eq!(limits(5, None, 0.05, None, 0.95).unwrap(), (15, 0.05, None, 0.95));
        assert!(limits(5, Some(3), 0.05, None, 0.95).unwrap_err().0.contains("--max-trials 3: below --trials 5"));
        assert!(limits(5, None, -0.1, None, 0.95).unwrap_err().0.contains("--ci-width -0.1"));
        assert!(limits(5, None, f64::NAN, None, 0.95).unwrap_err().0.contains("--ci-width"));
        assert!(limits(5, None, 0.05, Some(0.0), 0.95).unwrap_err().0.contains("--budget-secs 0"));
        assert!(limits(5, None, 0.05, None, 1.0).unwrap_err().0.contains("--confidence 1"));
        assert!(limits(5, None, 0.05, None, 95.0).unwrap_err().0.contains("e.g. 0.95"));
    }

    fn stopping(max: usize) -> Stopping {
        Stopping { min: 3, max, target_width: 0.05, budget_secs: None, confidence: 0.95 }
    }

    #[test]
    fn noisy_pairs_get_more_trials_than_quiet_ones_up_to_the_cap() {
        let wobble = |i: usize| ((i * 7919) % 200) as f64 / 100.0 - 1.0;
        let quiet =
            run_pairs(&stopping(40), 0.0, |i| Ok(Pair { ours: 100.0 + 0.01 * wobble(i), theirs: 90.0 })).unwrap();
        assert_eq!((quiet.0.len(), quiet.2.reached), (3, true), "{:?}", quiet.2);
        let noisy = run_pairs(&stopping(40), 0.0, |i| {
            Ok(Pair { ours: 100.0 * (1.0 + 0.2 * wobble(i)), theirs: 90.0 * (1.0 + 0.2 * wobble(i + 50)) })
        })
        .unwrap();
        assert!(noisy.0.len() > 3 && noisy.0.len() == noisy.1.len(), "{:?}", noisy.2);
        let capped =
            run_pairs(&stopping(5), 0.0, |i| Ok(Pair { ours: 100.0 * (1.0 + wobble(i)), theirs: 90.0 })).unwrap();
        assert_eq!((capped.0.len(), capped.2.reached), (5, false));
        let budget = Stopping { budget_secs: Some(1.0), ..stopping(40) };
        let b = run_pairs(&budget, 2.0, |i| Ok(Pair { ours: 100.0 * (1.0 + wobble(i)), theirs: 90.0 })).unwrap();
        assert_eq!((b.0.len(), b.2.stopped), (3, xdpipe_bench::adaptive::StopReason::Budget));
        assert_eq!(run_pairs(&stopping(5), 0.0, |_| Err("interrupted".into())).unwrap_err(), "interrupted");
    }

    #[test]
    fn a_finding_reads_the_goal_off_the_interval() {
        let ours = [101.0, 99.0, 100.5, 100.0, 99.5];
        let theirs = [100.0, 101.0, 99.0, 100.0, 100.5];
        let f = finding(&ours, &theirs, false, &Goal::AtLeast(1.1), 0.95);
        assert_eq!(f.verdict, Verdict::Indistinguishable);
        assert_eq!(f.goal_verdict, Some(GoalVerdict::Missed), "{}", f.line());
        assert!(
            f.line().starts_with("ratio 1.00 [")
                && f.line().ends_with(": indistinguishable (goal at least 1.1: missed)"),
            "{}",
            f.line()
        );
        // ns/frame: lower is better, so a ratio wholly below 1 is faster.
        let f = finding(&[50.0, 51.0, 49.0], &[100.0, 101.0, 99.0], true, &Goal::AtMost(0.9), 0.95);
        assert_eq!((f.verdict, f.goal_verdict), (Verdict::Faster, Some(GoalVerdict::Met)));
        let f = finding(&[50.0], &[100.0], true, &Goal::Share, 0.95);
        assert_eq!((f.ratio_ci, f.goal_verdict), (None, None));
        assert_eq!(f.line(), "ratio 0.50 (no interval): indistinguishable");
    }
}
