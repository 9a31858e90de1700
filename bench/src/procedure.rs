//! What one scenario of a run does: max-rate trials (median and spread), the RFC 2544
//! zero-loss search below the generator's max, and latency trials at a fraction of the
//! zero-loss rate. Every finished trial is reported through `on_trial` before the next
//! starts, so an interrupted run keeps it.
use crate::{
    Rate, Runner, Scenario, Trial,
    count::{CountConfig, CountPoint, CountTrial, count_rate},
    search::{SearchConfig, zero_loss_search},
    stats::spread,
    store::{LatencyPoint, ScenarioSummary},
};

#[derive(Clone, Copy, Debug)]
pub struct Procedure {
    pub trials: usize,
    pub trial_secs: f64,
    pub search: SearchConfig,
    /// Run the zero-loss search (off: max-rate trials only).
    pub zero_loss: bool,
    /// Latency trials at this fraction of the zero-loss rate (0: none).
    pub latency_fraction: f64,
    /// Exact-count trials after the latency trials (None: none).
    pub count: Option<CountConfig>,
}

/// A trial as it finished: kind, index within its kind, offered pps (None = max).
pub struct TrialEvent<'a> {
    pub kind: &'a str,
    pub index: usize,
    pub offered_pps: Option<f64>,
    pub trial: &'a Trial,
}

/// Runs one scenario. On a runner error (Ctrl-C), returns the error with the summary of
/// what finished.
pub fn run_scenario(
    runner: &mut dyn Runner,
    sc: &Scenario,
    p: &Procedure,
    on_trial: &mut dyn FnMut(&TrialEvent),
) -> Result<ScenarioSummary, (String, Option<Box<ScenarioSummary>>)> {
    let mut max_trials = Vec::new();
    for i in 0..p.trials {
        match runner.trial(sc, Rate::Max, p.trial_secs) {
            Ok(t) => {
                on_trial(&TrialEvent { kind: "max", index: i, offered_pps: None, trial: &t });
                max_trials.push(t);
            }
            Err(e) => return Err((e, summarize(sc, &max_trials, None, None).map(Box::new))),
        }
    }
    let mut summary = summarize(sc, &max_trials, None, None).ok_or_else(|| ("no trials".to_owned(), None))?;
    // The in-kernel generator cannot pace: its scenarios get max-rate trials only.
    if !sc.can_pace() {
        return Ok(summary);
    }
    if p.zero_loss {
        let upper = summary.offered_max_pps.median;
        let mut n = 0;
        let mut trial = |rate: Rate, secs: f64| {
            let t = runner.trial(sc, rate, secs)?;
            let pps = match rate {
                Rate::Pps(x) => Some(x),
                Rate::Max => None,
            };
            on_trial(&TrialEvent {
                kind: if secs >= p.search.confirm_secs { "confirm" } else { "search" },
                index: n,
                offered_pps: pps,
                trial: &t,
            });
            n += 1;
            Ok(t)
        };
        match zero_loss_search(upper, &p.search, &mut trial) {
            Ok(r) => {
                summary.zero_loss_pps = Some(r.zero_loss_pps);
                summary.zero_loss_confirmed = r.confirmed;
            }
            Err((e, _)) => return Err((e, Some(Box::new(summary)))),
        }
    }
    if p.latency_fraction > 0.0 {
        let base = summary.zero_loss_pps.unwrap_or(summary.mrr_pps.median);
        let rate = base * p.latency_fraction;
        if rate > 0.0 {
            let mut lat = Vec::new();
            for i in 0..p.trials {
                match runner.trial(sc, Rate::Pps(rate), p.trial_secs) {
                    Ok(t) => {
                        on_trial(&TrialEvent { kind: "latency", index: i, offered_pps: Some(rate), trial: &t });
                        lat.push(t);
                    }
                    Err(e) => return Err((e, Some(Box::new(summary)))),
                }
            }
            summary.latency = latency_point(p.latency_fraction, rate, &lat);
        }
    }
    if let Some(c) = &p.count {
        let (rate, capped) = count_rate(c, summary.zero_loss_pps);
        let mut point = CountPoint { offered_pps: rate, capped, secs: c.secs, trials: Vec::new() };
        for i in 0..c.trials {
            match runner.trial(sc, Rate::Pps(rate), c.secs) {
                Ok(t) => {
                    on_trial(&TrialEvent { kind: "count", index: i, offered_pps: Some(rate), trial: &t });
                    point.trials.push(CountTrial { sent: t.sent, received: t.received, duplicates: t.duplicates });
                }
                Err(e) => return Err((e, Some(Box::new(summary)))),
            }
        }
        summary.count = Some(point);
    }
    Ok(summary)
}

fn summarize(
    sc: &Scenario,
    max: &[Trial],
    zero_loss: Option<f64>,
    latency: Option<LatencyPoint>,
) -> Option<ScenarioSummary> {
    if max.is_empty() {
        return None;
    }
    Some(ScenarioSummary {
        scenario: sc.clone(),
        label: sc.label(),
        mrr_pps: spread(&max.iter().map(|t| t.rx_pps).collect::<Vec<_>>()),
        offered_max_pps: spread(&max.iter().map(|t| t.tx_pps).collect::<Vec<_>>()),
        zero_loss_pps: zero_loss,
        zero_loss_confirmed: false,
        latency,
        sent: max.iter().map(|t| t.sent).sum(),
        received: max.iter().map(|t| t.received).sum(),
        count: None,
    })
}

fn latency_point(fraction: f64, rate: f64, trials: &[Trial]) -> Option<LatencyPoint> {
    let l: Vec<_> = trials.iter().filter_map(|t| t.latency).collect();
    if l.is_empty() {
        return None;
    }
    let f = |g: fn(&crate::Latency) -> f64| spread(&l.iter().map(g).collect::<Vec<_>>());
    Some(LatencyPoint {
        fraction,
        offered_pps: rate,
        p50_ns: f(|x| x.p50),
        p90_ns: f(|x| x.p90),
        p99_ns: f(|x| x.p99),
        p999_ns: f(|x| x.p999),
        max_ns: f(|x| x.max),
        rx_cpu_ns_per_pkt: spread(&trials.iter().filter_map(|t| t.rx_cpu_ns_per_pkt).collect::<Vec<_>>()),
        sent: Some(trials.iter().map(|t| t.sent).sum()),
        received: Some(trials.iter().map(|t| t.received).sum()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Latency;

    /// A synthetic receiver with capacity `cap` pps and a generator maxing at `gen` pps.
    struct Synthetic {
        cap: f64,
        generator: f64,
        calls: usize,
        fail_at: Option<usize>,
    }

    impl Runner for Synthetic {
        fn trial(&mut self, _: &Scenario, rate: Rate, secs: f64) -> Result<Trial, String> {
            self.calls += 1;
            if Some(self.calls) == self.fail_at {
                return Err("interrupted".into());
            }
            let pps = match rate {
                Rate::Max => self.generator,
                Rate::Pps(p) => p.min(self.generator),
            };
            let rx = pps.min(self.cap);
            Ok(Trial {
                sent: (pps * secs) as u64,
                received: (rx * secs) as u64,
                tx_pps: pps,
                rx_pps: rx,
                duration_s: secs,
                latency: Some(Latency { p50: 1000.0, p90: 2000.0, p99: 3000.0, p999: 4000.0, max: 5000.0 }),
                rx_cpu_ns_per_pkt: Some(50.0),
                duplicates: Some(0),
            })
        }
    }

    fn sc() -> Scenario {
        Scenario::example()
    }

    fn proc() -> Procedure {
        Procedure {
            trials: 3,
            trial_secs: 2.0,
            search: SearchConfig { confirm_secs: 2.0, ..Default::default() },
            zero_loss: true,
            latency_fraction: 0.5,
            count: Some(CountConfig { rate_pps: 100e3, secs: 2.0, trials: 2 }),
        }
    }

    #[test]
    fn a_scenario_measures_max_zero_loss_and_latency() {
        let mut r = Synthetic { cap: 3e6, generator: 5e6, calls: 0, fail_at: None };
        let mut kinds = Vec::new();
        let s = run_scenario(&mut r, &sc(), &proc(), &mut |e| kinds.push(e.kind.to_owned())).unwrap();
        assert_eq!(s.mrr_pps.median, 3e6);
        assert_eq!(s.offered_max_pps.median, 5e6);
        let zl = s.zero_loss_pps.unwrap();
        assert!(s.zero_loss_confirmed && zl <= 3e6 && zl > 2.85e6, "{zl}");
        let l = s.latency.unwrap();
        assert_eq!(l.offered_pps, zl * 0.5);
        assert_eq!(l.p99_ns.median, 3000.0);
        assert_eq!(kinds.iter().filter(|k| *k == "max").count(), 3);
        assert_eq!(kinds.iter().filter(|k| *k == "latency").count(), 3);
        assert!(kinds.iter().any(|k| k == "search") && kinds.iter().any(|k| k == "confirm"));
        let c = s.count.unwrap();
        assert_eq!((c.trials.len(), c.offered_pps, c.capped), (2, 100e3, false));
        assert!(c.exact() && c.sent() == 400_000, "{c:?}");
        assert_eq!(kinds.iter().filter(|k| *k == "count").count(), 2);
        assert_eq!(l.sent, Some(3 * (zl * 0.5 * 2.0) as u64));
    }

    #[test]
    fn count_trials_run_below_a_lower_zero_loss_rate() {
        let mut r = Synthetic { cap: 60e3, generator: 1e6, calls: 0, fail_at: None };
        let s = run_scenario(&mut r, &sc(), &proc(), &mut |_| {}).unwrap();
        let c = s.count.unwrap();
        assert!(c.capped && c.offered_pps == s.zero_loss_pps.unwrap() / 2.0 && c.offered_pps > 15e3, "{c:?}");
        assert!(c.exact(), "below capacity nothing is lost: {c:?}");
    }

    #[test]
    fn an_interruption_keeps_the_finished_trials() {
        let mut r = Synthetic { cap: 3e6, generator: 5e6, calls: 0, fail_at: Some(5) };
        let (e, partial) = run_scenario(&mut r, &sc(), &proc(), &mut |_| {}).unwrap_err();
        assert_eq!(e, "interrupted");
        let p = partial.expect("the max trials finished");
        assert_eq!(p.mrr_pps.n, 3);
        assert_eq!(p.zero_loss_pps, None);
    }
}
