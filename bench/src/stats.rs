//! Median and spread over trials, and the bootstrap intervals every comparison carries.
//!
//! On a noisy machine a ratio of two medians says little by itself: the same command moved
//! ratios by 0.1-0.2 between two days here. So a ratio comes with a percentile-bootstrap
//! confidence interval (both samples resampled with replacement, independently, the median
//! of each taken, their ratio kept), and a [`Verdict`] read off the interval: only an
//! interval wholly above or below 1 (or wholly past a goal) says anything. The resampling
//! uses a fixed-seed generator, so the same trials always give the same interval.
use std::fmt;

use serde::{Deserialize, Serialize};

/// The resamples each interval draws.
pub const RESAMPLES: usize = 10_000;

/// The confidence of the intervals the report and `compare` give, unless asked otherwise.
pub const DEFAULT_CONFIDENCE: f64 = 0.95;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
    /// The trial values themselves, in trial order (runs stored before they were kept have
    /// none, and their intervals cannot be drawn).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<f64>,
}

/// Median (mean of the middle two for even counts), min and max; NaNs are ignored.
pub fn spread(values: &[f64]) -> Spread {
    let kept: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    let mut v = kept.clone();
    if v.is_empty() {
        return Spread::default();
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Spread { median: sorted_median(&v), min: v[0], max: v[n - 1], n, values: kept }
}

fn sorted_median(v: &[f64]) -> f64 {
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

impl Spread {
    /// (max - min) / median, as a fraction.
    pub fn relative_range(&self) -> f64 {
        if self.median == 0.0 { 0.0 } else { (self.max - self.min) / self.median }
    }
}

/// A deterministic generator for the resampling (SplitMix64): no dependency, and the
/// same trials give the same interval on every machine.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// An index below `n` (n > 0); the modulo bias is below 2^-50 for trial counts.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The median of one resample of `v` with replacement, `scratch` reused.
fn resampled_median(v: &[f64], rng: &mut SplitMix, scratch: &mut Vec<f64>) -> f64 {
    scratch.clear();
    scratch.extend((0..v.len()).map(|_| v[rng.below(v.len())]));
    scratch.sort_by(f64::total_cmp);
    sorted_median(scratch)
}

/// The `q` quantile of sorted `v` (linear between neighbours).
fn quantile(v: &[f64], q: f64) -> f64 {
    let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

fn finite(values: &[f64]) -> Vec<f64> {
    values.iter().copied().filter(|x| x.is_finite()).collect()
}

/// A point estimate with its interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub estimate: f64,
    pub lo: f64,
    pub hi: f64,
    pub confidence: f64,
}

impl Interval {
    /// (hi - lo) / estimate, as a fraction (infinite for a zero estimate).
    pub fn relative_width(&self) -> f64 {
        if self.estimate == 0.0 { f64::INFINITY } else { (self.hi - self.lo) / self.estimate.abs() }
    }

    pub fn contains(&self, x: f64) -> bool {
        self.lo <= x && x <= self.hi
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3} [{:.3}, {:.3}]", self.estimate, self.lo, self.hi)
    }
}

/// The median of `values` with its bootstrap interval; `None` with fewer than two finite
/// values (one trial has no spread to resample).
pub fn median_interval(values: &[f64], confidence: f64) -> Option<Interval> {
    let v = finite(values);
    if v.len() < 2 || !(0.0..1.0).contains(&confidence) {
        return None;
    }
    let mut sorted = v.clone();
    sorted.sort_by(f64::total_cmp);
    let mut rng = SplitMix(0x5EED_0001 ^ v.len() as u64);
    let mut scratch = Vec::with_capacity(v.len());
    let mut medians: Vec<f64> = (0..RESAMPLES).map(|_| resampled_median(&v, &mut rng, &mut scratch)).collect();
    medians.sort_by(f64::total_cmp);
    let tail = (1.0 - confidence) / 2.0;
    Some(Interval {
        estimate: sorted_median(&sorted),
        lo: quantile(&medians, tail),
        hi: quantile(&medians, 1.0 - tail),
        confidence,
    })
}

/// median(num) / median(den) with its bootstrap interval; `None` when either side has
/// fewer than two finite values or a median of zero.
pub fn ratio_interval(num: &[f64], den: &[f64], confidence: f64) -> Option<Interval> {
    let (a, b) = (finite(num), finite(den));
    if a.len() < 2 || b.len() < 2 || !(0.0..1.0).contains(&confidence) {
        return None;
    }
    let med = |v: &[f64]| {
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        sorted_median(&s)
    };
    let (ma, mb) = (med(&a), med(&b));
    if mb == 0.0 {
        return None;
    }
    let mut rng = SplitMix(0x5EED_0002 ^ ((a.len() as u64) << 32) ^ b.len() as u64);
    let mut scratch = Vec::with_capacity(a.len().max(b.len()));
    let mut ratios = Vec::with_capacity(RESAMPLES);
    for _ in 0..RESAMPLES {
        let x = resampled_median(&a, &mut rng, &mut scratch);
        let y = resampled_median(&b, &mut rng, &mut scratch);
        if y != 0.0 {
            ratios.push(x / y);
        }
    }
    if ratios.is_empty() {
        return None;
    }
    ratios.sort_by(f64::total_cmp);
    let tail = (1.0 - confidence) / 2.0;
    Some(Interval { estimate: ma / mb, lo: quantile(&ratios, tail), hi: quantile(&ratios, 1.0 - tail), confidence })
}

/// Which way a metric is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Better {
    /// Rates.
    Higher,
    /// CPU per frame, latency, loss.
    Lower,
}

/// What an interval of a ratio (ours / theirs, or new / baseline) says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The whole interval is on the better side of 1.
    Faster,
    /// The whole interval is on the worse side of 1.
    Slower,
    /// The interval holds 1 (or no interval could be drawn).
    #[default]
    Indistinguishable,
}

impl Verdict {
    /// The verdict of a ratio interval for a metric that is better `better`.
    pub fn of(ratio: Option<&Interval>, better: Better) -> Verdict {
        let Some(r) = ratio else { return Verdict::Indistinguishable };
        let (above, below) = (r.lo > 1.0, r.hi < 1.0);
        match (better, above, below) {
            (Better::Higher, true, _) | (Better::Lower, _, true) => Verdict::Faster,
            (Better::Higher, _, true) | (Better::Lower, true, _) => Verdict::Slower,
            _ => Verdict::Indistinguishable,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Faster => "faster",
            Verdict::Slower => "slower",
            Verdict::Indistinguishable => "indistinguishable",
        })
    }
}

/// A ratio as the progress lines, the report and `compare` show it: `0.97 [0.91, 1.04] at
/// 95%`, or `0.97 (no interval)` when none could be drawn (fewer than two trials a side,
/// or a run stored before trial values were kept).
pub fn describe_ratio(ci: Option<&Interval>, estimate: f64) -> String {
    match ci {
        Some(i) => format!("{:.2} [{:.2}, {:.2}] at {}%", i.estimate, i.lo, i.hi, trim_pct(i.confidence)),
        None => format!("{estimate:.2} (no interval)"),
    }
}

/// 0.95 -> "95", 0.995 -> "99.5".
fn trim_pct(c: f64) -> String {
    let s = format!("{:.1}", c * 100.0);
    s.strip_suffix(".0").map_or(s.clone(), str::to_owned)
}

/// What an interval says of a goal on the ratio ("at least 1.1", "at most 0.9").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GoalVerdict {
    /// The whole interval meets the goal.
    Met,
    /// The whole interval misses it.
    Missed,
    /// The interval straddles the goal: the trials cannot say.
    Undecided,
}

impl GoalVerdict {
    /// `at_least`: the goal is ratio >= x (else ratio <= x).
    pub fn of(ratio: Option<&Interval>, at_least: bool, x: f64) -> GoalVerdict {
        let Some(r) = ratio else { return GoalVerdict::Undecided };
        match (at_least, r.lo >= x, r.hi >= x, r.hi <= x, r.lo <= x) {
            (true, true, ..) | (false, _, _, true, _) => GoalVerdict::Met,
            (true, _, false, ..) | (false, _, _, _, false) => GoalVerdict::Missed,
            _ => GoalVerdict::Undecided,
        }
    }
}

impl fmt::Display for GoalVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GoalVerdict::Met => "met",
            GoalVerdict::Missed => "missed",
            GoalVerdict::Undecided => "undecided (the interval holds the goal)",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(spread(&[3.0, 1.0, 2.0]).median, 2.0);
        assert_eq!(spread(&[4.0, 1.0, 2.0, 3.0]).median, 2.5);
        let s = spread(&[5.0, f64::NAN, 1.0]);
        assert_eq!((s.min, s.max, s.n), (1.0, 5.0, 2));
        assert_eq!(s.values, [5.0, 1.0], "the values are kept in trial order");
        assert_eq!(spread(&[]).n, 0);
        assert!((spread(&[9.0, 10.0, 11.0]).relative_range() - 0.2).abs() < 1e-12);
    }

    #[test]
    fn an_interval_holds_its_estimate_and_narrows_with_agreeing_trials() {
        let wide = median_interval(&[80.0, 100.0, 120.0, 90.0, 110.0], 0.95).unwrap();
        assert_eq!(wide.estimate, 100.0);
        assert!(wide.lo < 100.0 && wide.hi > 100.0, "{wide}");
        let narrow = median_interval(&[99.0, 100.0, 101.0, 99.5, 100.5], 0.95).unwrap();
        assert!(narrow.relative_width() < wide.relative_width() / 5.0, "{narrow} vs {wide}");
        assert!(median_interval(&[1.0], 0.95).is_none(), "one trial has no interval");
        assert_eq!(median_interval(&[3.0, 1.0, 2.0], 0.95), median_interval(&[3.0, 1.0, 2.0], 0.95), "deterministic");
    }

    #[test]
    fn separated_samples_give_a_verdict_and_overlapping_ones_do_not() {
        let a = [200.0, 205.0, 198.0, 202.0, 201.0];
        let b = [100.0, 103.0, 99.0, 101.0, 100.0];
        let r = ratio_interval(&a, &b, 0.95).unwrap();
        assert!((r.estimate - 2.0).abs() < 0.02 && r.lo > 1.8 && r.hi < 2.2, "{r}");
        assert_eq!(Verdict::of(Some(&r), Better::Higher), Verdict::Faster);
        assert_eq!(Verdict::of(Some(&r), Better::Lower), Verdict::Slower);
        let inv = ratio_interval(&b, &a, 0.95).unwrap();
        assert_eq!(Verdict::of(Some(&inv), Better::Higher), Verdict::Slower);
        // The spreads overlap: one sample's best beats the other's worst.
        let c = [100.0, 120.0, 90.0, 110.0, 95.0];
        let d = [105.0, 92.0, 115.0, 99.0, 101.0];
        let o = ratio_interval(&c, &d, 0.95).unwrap();
        assert!(o.contains(1.0), "{o}");
        assert_eq!(Verdict::of(Some(&o), Better::Higher), Verdict::Indistinguishable);
        assert_eq!(Verdict::of(None, Better::Higher), Verdict::Indistinguishable);
        assert!(ratio_interval(&a, &[0.0, 0.0], 0.95).is_none());
    }

    #[test]
    fn a_ratio_is_described_with_its_interval_or_says_it_has_none() {
        let i = Interval { estimate: 0.97, lo: 0.91, hi: 1.04, confidence: 0.95 };
        assert_eq!(describe_ratio(Some(&i), 0.5), "0.97 [0.91, 1.04] at 95%");
        assert_eq!(describe_ratio(Some(&Interval { confidence: 0.995, ..i }), 0.5), "0.97 [0.91, 1.04] at 99.5%");
        assert_eq!(describe_ratio(None, 1.234), "1.23 (no interval)");
    }

    #[test]
    fn a_goal_is_met_only_when_the_whole_interval_meets_it() {
        let i = |lo, hi| Interval { estimate: (lo + hi) / 2.0, lo, hi, confidence: 0.95 };
        assert_eq!(GoalVerdict::of(Some(&i(1.12, 1.3)), true, 1.1), GoalVerdict::Met);
        assert_eq!(GoalVerdict::of(Some(&i(1.05, 1.3)), true, 1.1), GoalVerdict::Undecided);
        assert_eq!(GoalVerdict::of(Some(&i(0.9, 1.05)), true, 1.1), GoalVerdict::Missed);
        assert_eq!(GoalVerdict::of(Some(&i(0.7, 0.85)), false, 0.9), GoalVerdict::Met);
        assert_eq!(GoalVerdict::of(Some(&i(0.85, 0.95)), false, 0.9), GoalVerdict::Undecided);
        assert_eq!(GoalVerdict::of(Some(&i(0.95, 1.0)), false, 0.9), GoalVerdict::Missed);
        assert_eq!(GoalVerdict::of(None, true, 1.1), GoalVerdict::Undecided);
    }
}
