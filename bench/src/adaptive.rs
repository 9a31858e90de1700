//! How many trials a point gets: at least the minimum, then one more (or one more pair, for
//! an anchor comparison) until the interval of the median (or of the ratio) is narrower
//! than the target width, the maximum count is reached, or the point's time budget would
//! be overrun by the next trial. A quiet machine stops at the minimum; a noisy one buys
//! precision with trials, up to the cap.
use serde::{Deserialize, Serialize};

/// Trials a width must rest on before it can stop a series: the bootstrap interval of two
/// trials is little more than their range, too weak to call a point precise.
pub const MIN_TRIALS_FOR_WIDTH: usize = 3;

/// When a series of trials stops.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stopping {
    /// Trials always run (at least 1).
    pub min: usize,
    /// Trials never exceeded (at least `min`).
    pub max: usize,
    /// Relative width ((hi - lo) / estimate) the interval must get below; 0 never stops
    /// early (every series runs to `max` or the budget).
    pub target_width: f64,
    /// Seconds the series may take; a trial is not started if the time spent plus one
    /// more trial would pass it. `None`: no limit but `max`.
    pub budget_secs: Option<f64>,
    /// Confidence of the interval whose width is tested.
    pub confidence: f64,
}

/// Why a series stopped adding trials.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopReason {
    /// The interval got narrower than the target width.
    WidthReached,
    /// The maximum trial count was reached first.
    MaxTrials,
    /// One more trial would have overrun the time budget.
    Budget,
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StopReason::WidthReached => "width reached",
            StopReason::MaxTrials => "max trials",
            StopReason::Budget => "budget spent",
        })
    }
}

/// What a series of trials reached, as stored in the summary.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Precision {
    /// Trials (pairs, for an anchor comparison) the series ran.
    pub trials: usize,
    /// The relative width asked for.
    pub target_width: f64,
    /// The relative width of the interval reached (`None`: fewer than two trials).
    pub width: Option<f64>,
    /// Whether `width` is at most `target_width`.
    pub reached: bool,
    pub stopped: StopReason,
    pub confidence: f64,
}

impl Stopping {
    /// After `n` trials whose interval has relative width `width`, `spent_secs` into the
    /// series, with the next trial expected to take `next_secs`: `None` to run another,
    /// else why not.
    pub fn check(&self, n: usize, width: Option<f64>, spent_secs: f64, next_secs: f64) -> Option<StopReason> {
        if n < self.min.max(1) {
            return None;
        }
        if n >= MIN_TRIALS_FOR_WIDTH && width.is_some_and(|w| w <= self.target_width) {
            Some(StopReason::WidthReached)
        } else if n >= self.max.max(self.min) {
            Some(StopReason::MaxTrials)
        } else if self.budget_secs.is_some_and(|b| spent_secs + next_secs > b) {
            Some(StopReason::Budget)
        } else {
            None
        }
    }

    /// The record of a series that stopped for `stopped` after `n` trials.
    pub fn precision(&self, n: usize, width: Option<f64>, stopped: StopReason) -> Precision {
        Precision {
            trials: n,
            target_width: self.target_width,
            width,
            reached: n >= MIN_TRIALS_FOR_WIDTH && width.is_some_and(|w| w <= self.target_width),
            stopped,
            confidence: self.confidence,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s() -> Stopping {
        Stopping { min: 3, max: 10, target_width: 0.05, budget_secs: Some(20.0), confidence: 0.95 }
    }

    #[test]
    fn the_minimum_runs_then_width_cap_and_budget_stop_in_that_order() {
        assert_eq!(s().check(2, Some(0.0), 0.0, 1.0), None, "the minimum always runs");
        assert_eq!(s().check(3, Some(0.04), 0.0, 1.0), Some(StopReason::WidthReached));
        let two = Stopping { min: 2, ..s() };
        assert_eq!(two.check(2, Some(0.01), 0.0, 1.0), None, "two trials' width does not stop a series");
        assert!(!two.precision(2, Some(0.01), StopReason::MaxTrials).reached);
        assert_eq!(s().check(3, Some(0.2), 0.0, 1.0), None);
        assert_eq!(s().check(3, None, 0.0, 1.0), None);
        assert_eq!(s().check(10, Some(0.2), 0.0, 1.0), Some(StopReason::MaxTrials));
        assert_eq!(s().check(5, Some(0.2), 19.5, 1.0), Some(StopReason::Budget));
        assert_eq!(s().check(5, Some(0.2), 18.5, 1.0), None);
        let p = s().precision(4, Some(0.04), StopReason::WidthReached);
        assert!(p.reached && p.trials == 4);
        assert!(!s().precision(10, Some(0.2), StopReason::MaxTrials).reached);
    }
}
