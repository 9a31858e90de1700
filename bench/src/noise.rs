//! The machine's noise during a trial, as the binary's probe measured it (late wakeups of
//! a thread sleeping 1 ms at a time, and steal and iowait time from `/proc/stat`), and the
//! flag a trial gets when the machine was too busy elsewhere for its rate to be trusted.
use serde::{Deserialize, Serialize};

use crate::Trial;

/// A wakeup later than this (past the 1 ms asked for) flags the trial, microseconds.
pub const STALL_FLAG_US: f64 = 5000.0;

/// Steal time above this fraction of the CPU time over the trial flags it.
pub const STEAL_FLAG: f64 = 0.02;

/// What the noise probe saw over one trial.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Noise {
    /// 1 ms sleeps that woke more than 1 ms late.
    pub stalls: u64,
    /// The latest wakeup past its deadline, microseconds.
    pub longest_stall_us: f64,
    /// Steal time as a fraction of all CPU time over the trial (all CPUs).
    pub steal: f64,
    /// Iowait as a fraction of all CPU time over the trial.
    pub iowait: f64,
}

impl Noise {
    /// Whether the trial ran on a machine too disturbed to trust: a stall longer than
    /// [`STALL_FLAG_US`] or steal above [`STEAL_FLAG`].
    pub fn flagged(&self) -> bool {
        self.longest_stall_us > STALL_FLAG_US || self.steal > STEAL_FLAG
    }
}

/// The noise over a scenario's trials, as the summary keeps it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NoiseSummary {
    /// Trials that carried a noise record.
    pub probed: usize,
    /// Of them, the flagged ones.
    pub flagged: usize,
    /// Stalls over all of them.
    pub stalls: u64,
    /// The longest stall of any, microseconds.
    pub longest_stall_us: f64,
    /// The largest steal fraction of any trial.
    pub max_steal: f64,
    /// The largest iowait fraction of any trial.
    pub max_iowait: f64,
}

/// The noise over `trials` (`None` when none was probed).
pub fn summarize<'a>(trials: impl IntoIterator<Item = &'a Trial>) -> Option<NoiseSummary> {
    let mut s = NoiseSummary::default();
    for n in trials.into_iter().filter_map(|t| t.noise) {
        s.probed += 1;
        s.flagged += usize::from(n.flagged());
        s.stalls += n.stalls;
        s.longest_stall_us = s.longest_stall_us.max(n.longest_stall_us);
        s.max_steal = s.max_steal.max(n.steal);
        s.max_iowait = s.max_iowait.max(n.iowait);
    }
    (s.probed > 0).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_stalls_and_steal_flag_a_trial_and_the_summary_counts_them() {
        let quiet = Noise { stalls: 3, longest_stall_us: 1200.0, steal: 0.001, iowait: 0.0 };
        let stalled = Noise { longest_stall_us: 7000.0, ..quiet };
        let stolen = Noise { steal: 0.05, ..quiet };
        assert!(!quiet.flagged() && stalled.flagged() && stolen.flagged());
        let t = |n| Trial { noise: n, ..Default::default() };
        let trials = [t(Some(quiet)), t(Some(stalled)), t(None), t(Some(stolen))];
        let s = summarize(&trials).unwrap();
        assert_eq!((s.probed, s.flagged, s.stalls), (3, 2, 9));
        assert_eq!((s.longest_stall_us, s.max_steal), (7000.0, 0.05));
        assert_eq!(summarize(&[t(None)]), None);
    }
}
