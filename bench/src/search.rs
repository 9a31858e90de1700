//! RFC 2544 throughput: the highest offered rate with zero loss, by binary search with
//! short trials, then confirmed by a full-length trial (stepping down if it loses).
use serde::{Deserialize, Serialize};

use crate::{Rate, Trial};

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchConfig {
    /// Length of each search trial, seconds.
    pub search_secs: f64,
    /// Length of the confirming trial, seconds.
    pub confirm_secs: f64,
    /// Stop when the bracket is narrower than this fraction of the upper bound.
    pub resolution: f64,
    pub max_steps: u32,
    /// Loss ratio still counted as "zero loss" (RFC 2544: 0).
    pub loss_tolerance: f64,
    /// Confirmation attempts, each `resolution` lower than the last.
    pub confirm_attempts: u32,
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            search_secs: 1.0,
            confirm_secs: 5.0,
            resolution: 0.02,
            max_steps: 12,
            loss_tolerance: 0.0,
            confirm_attempts: 3,
        }
    }
}

/// One trial the search ran.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchStep {
    pub kind: String,
    pub offered_pps: f64,
    pub trial: Trial,
    pub passed: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SearchResult {
    /// The zero-loss rate found (0 if nothing passed).
    pub zero_loss_pps: f64,
    /// True if a full-length trial at `zero_loss_pps` lost nothing.
    pub confirmed: bool,
    pub steps: Vec<SearchStep>,
}

fn passes(t: &Trial, cfg: &SearchConfig) -> bool {
    t.received > 0 && t.loss_ratio() <= cfg.loss_tolerance
}

/// Searches (0, `upper_pps`]. `trial(rate, secs)` runs one trial. Stops early with what it
/// has if `trial` fails (e.g. Ctrl-C), returning the error with the partial result.
pub fn zero_loss_search(
    upper_pps: f64,
    cfg: &SearchConfig,
    trial: &mut dyn FnMut(Rate, f64) -> Result<Trial, String>,
) -> Result<SearchResult, (String, SearchResult)> {
    let mut res = SearchResult::default();
    if upper_pps <= 0.0 {
        return Ok(res);
    }
    let mut run = |res: &mut SearchResult, kind: &str, pps: f64, secs: f64| -> Result<bool, String> {
        let t = trial(Rate::Pps(pps), secs)?;
        let passed = passes(&t, cfg);
        res.steps.push(SearchStep { kind: kind.into(), offered_pps: pps, trial: t, passed });
        Ok(passed)
    };
    // The upper bound itself may pass (the receiver keeps up with the generator).
    let (mut lo, mut hi) = (0.0, upper_pps);
    match run(&mut res, "search", upper_pps, cfg.search_secs) {
        Ok(true) => lo = upper_pps,
        Ok(false) => {}
        Err(e) => return Err((e, res)),
    }
    let mut steps = 1;
    while lo < hi && steps < cfg.max_steps && (hi - lo) > cfg.resolution * upper_pps {
        let mid = (lo + hi) / 2.0;
        match run(&mut res, "search", mid, cfg.search_secs) {
            Ok(true) => lo = mid,
            Ok(false) => hi = mid,
            Err(e) => return Err((e, res)),
        }
        steps += 1;
    }
    let mut rate = lo;
    for _ in 0..cfg.confirm_attempts {
        if rate <= 0.0 {
            break;
        }
        match run(&mut res, "confirm", rate, cfg.confirm_secs) {
            Ok(true) => {
                res.zero_loss_pps = rate;
                res.confirmed = true;
                return Ok(res);
            }
            Ok(false) => rate -= cfg.resolution * upper_pps,
            Err(e) => return Err((e, res)),
        }
    }
    res.zero_loss_pps = rate.max(0.0);
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A receiver that handles `capacity` pps and loses the excess, plus optional loss
    /// below capacity in long trials (to exercise the confirmation step).
    fn model(capacity: f64, long_trial_margin: f64) -> impl FnMut(Rate, f64) -> Result<Trial, String> {
        move |rate, secs| {
            let pps = match rate {
                Rate::Pps(p) => p,
                Rate::Max => 10.0 * capacity,
            };
            let cap = if secs > 2.0 { capacity * (1.0 - long_trial_margin) } else { capacity };
            let sent = (pps * secs) as u64;
            let received = (pps.min(cap) * secs) as u64;
            Ok(Trial { sent, received, tx_pps: pps, rx_pps: pps.min(cap), duration_s: secs, ..Default::default() })
        }
    }

    #[test]
    fn converges_on_the_capacity() {
        let cfg = SearchConfig::default();
        let r = zero_loss_search(4e6, &cfg, &mut model(2.7e6, 0.0)).unwrap();
        assert!(r.confirmed);
        assert!(r.zero_loss_pps <= 2.7e6 && r.zero_loss_pps >= 2.7e6 - 0.02 * 4e6, "{}", r.zero_loss_pps);
        assert!(r.steps.len() <= cfg.max_steps as usize + cfg.confirm_attempts as usize);
    }

    #[test]
    fn an_upper_bound_without_loss_is_the_answer() {
        let r = zero_loss_search(1e6, &SearchConfig::default(), &mut model(2e6, 0.0)).unwrap();
        assert_eq!(r.zero_loss_pps, 1e6);
        assert_eq!(r.steps.len(), 2, "one search trial and the confirmation");
    }

    #[test]
    fn a_failed_confirmation_steps_down() {
        let cfg = SearchConfig::default();
        // Long trials handle 5% less than short ones.
        let r = zero_loss_search(4e6, &cfg, &mut model(2e6, 0.05)).unwrap();
        assert!(
            r.confirmed,
            "{:?}",
            r.steps.iter().map(|s| (s.kind.clone(), s.offered_pps, s.passed)).collect::<Vec<_>>()
        );
        assert!(r.zero_loss_pps <= 1.9e6, "{}", r.zero_loss_pps);
        assert!(r.steps.iter().filter(|s| s.kind == "confirm").count() >= 2);
    }

    #[test]
    fn a_trial_error_keeps_the_partial_result() {
        let mut n = 0;
        let mut t = |r: Rate, s: f64| {
            n += 1;
            if n == 3 { Err("interrupted".to_owned()) } else { model(1e6, 0.0)(r, s) }
        };
        let (e, partial) = zero_loss_search(4e6, &SearchConfig::default(), &mut t).unwrap_err();
        assert_eq!(e, "interrupted");
        assert_eq!(partial.steps.len(), 2);
    }
}
