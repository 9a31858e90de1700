//! Exact-count trials: a moderate, paced rate well below the receiver's capacity, where
//! every frame the generator sent must arrive exactly once. A frame lost there, or counted
//! twice, is a bug in the path (rings, accounting, the steering program), not load: below
//! the zero-loss rate the receiver keeps up, so loss is legitimately zero. The rate is
//! capped at half the scenario's zero-loss rate when the search found one: the search's
//! rate is the edge (the highest rate whose trial happened to lose nothing), and on a
//! shared machine a trial there can lose frames to a descheduled worker; half of it
//! leaves headroom, and above it a loss would say nothing about counting.
use serde::{Deserialize, Serialize};

/// What the count trials of a scenario run.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CountConfig {
    /// Offered rate, packets per second (capped at [`ZERO_LOSS_SHARE`] of the zero-loss
    /// rate when one was found).
    pub rate_pps: f64,
    /// Seconds per trial.
    pub secs: f64,
    /// Trials per scenario.
    pub trials: usize,
}

/// One count trial's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CountTrial {
    /// Frames the generator sent.
    pub sent: u64,
    /// Frames the receiver received.
    pub received: u64,
    /// Frames that arrived twice (the receiver's sequence accounting); `None` when the
    /// receiver kept no accounting.
    pub duplicates: Option<u64>,
}

impl CountTrial {
    /// Sent equals received and no frame arrived twice (and something was sent).
    pub fn exact(&self) -> bool {
        self.sent > 0 && self.sent == self.received && self.duplicates == Some(0)
    }
}

/// The count trials of a scenario.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CountPoint {
    /// The rate the trials ran at, packets per second.
    pub offered_pps: f64,
    /// True when the configured rate was above [`ZERO_LOSS_SHARE`] of the zero-loss rate
    /// and was lowered to it.
    pub capped: bool,
    /// Seconds per trial.
    pub secs: f64,
    /// Every trial, in order.
    pub trials: Vec<CountTrial>,
}

impl CountPoint {
    /// Frames sent over all trials.
    pub fn sent(&self) -> u64 {
        self.trials.iter().map(|t| t.sent).sum()
    }

    /// Frames received over all trials.
    pub fn received(&self) -> u64 {
        self.trials.iter().map(|t| t.received).sum()
    }

    /// Duplicates over all trials; `None` if any trial had no accounting.
    pub fn duplicates(&self) -> Option<u64> {
        self.trials.iter().map(|t| t.duplicates).sum()
    }

    /// (sent - received) / sent over all trials (0 when nothing was sent).
    pub fn loss_ratio(&self) -> f64 {
        let s = self.sent();
        if s == 0 { 0.0 } else { s.saturating_sub(self.received()) as f64 / s as f64 }
    }

    /// Every trial was exact (and there was at least one).
    pub fn exact(&self) -> bool {
        !self.trials.is_empty() && self.trials.iter().all(CountTrial::exact)
    }
}

/// The share of the zero-loss rate the count trials run at most.
pub const ZERO_LOSS_SHARE: f64 = 0.5;

/// The rate the count trials run at: the configured one, capped at [`ZERO_LOSS_SHARE`] of
/// a positive zero-loss rate; and whether it was capped.
pub fn count_rate(cfg: &CountConfig, zero_loss_pps: Option<f64>) -> (f64, bool) {
    match zero_loss_pps.map(|z| z * ZERO_LOSS_SHARE) {
        Some(z) if z > 0.0 && z < cfg.rate_pps => (z, true),
        _ => (cfg.rate_pps, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_needs_equal_counts_no_duplicates_and_accounting() {
        let t = |sent, received, duplicates| CountTrial { sent, received, duplicates };
        assert!(t(100, 100, Some(0)).exact());
        assert!(!t(100, 99, Some(0)).exact(), "one lost");
        assert!(!t(100, 100, Some(1)).exact(), "one twice");
        assert!(!t(100, 100, None).exact(), "no accounting: duplicates unknown");
        assert!(!t(0, 0, Some(0)).exact(), "nothing sent");
        let p = CountPoint { trials: vec![t(100, 100, Some(0)), t(50, 40, Some(2))], ..Default::default() };
        assert!(!p.exact());
        assert_eq!((p.sent(), p.received(), p.duplicates()), (150, 140, Some(2)));
        assert!((p.loss_ratio() - 10.0 / 150.0).abs() < 1e-12);
        assert!(!CountPoint::default().exact(), "no trials is not exact");
    }

    #[test]
    fn the_rate_is_capped_at_a_lower_zero_loss_rate() {
        let c = CountConfig { rate_pps: 100e3, secs: 2.0, trials: 1 };
        assert_eq!(count_rate(&c, None), (100e3, false));
        assert_eq!(count_rate(&c, Some(500e3)), (100e3, false));
        assert_eq!(count_rate(&c, Some(200e3)), (100e3, false));
        assert_eq!(count_rate(&c, Some(120e3)), (60e3, true), "half the zero-loss rate");
        assert_eq!(count_rate(&c, Some(0.0)), (100e3, false), "nothing passed: the configured rate");
    }
}
