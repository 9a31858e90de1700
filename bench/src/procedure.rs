//! What one scenario of a run does: max-rate trials (median and spread), the RFC 2544
//! zero-loss search below the generator's max, and latency trials at a fraction of the
//! zero-loss rate. Every finished trial is reported through `on_trial` before the next
//! starts, so an interrupted run keeps it. The max-rate and the latency trials are
//! adaptive ([`crate::adaptive`]): at least `trials`, more until the interval of the
//! median is narrower than `target_width`, up to `max_trials` and `budget_secs`.
use std::time::Instant;

use crate::{
    Rate, Runner, Scenario, Trial,
    adaptive::{Precision, Stopping},
    count::{CountConfig, CountPoint, CountTrial, count_rate},
    noise,
    search::{SearchConfig, zero_loss_search},
    stats::{median_interval, spread},
    store::{LatencyPoint, ScenarioSummary},
};

#[derive(Clone, Copy, Debug)]
pub struct Procedure {
    /// Trials per point at least.
    pub trials: usize,
    /// Trials per point at most (at least `trials`).
    pub max_trials: usize,
    /// Relative width of the median's interval at which a point stops adding trials
    /// (0: never early).
    pub target_width: f64,
    /// Seconds each adaptive series of a point (its max-rate trials, its latency trials,
    /// an anchor comparison) may take; `None`: no limit but `max_trials`.
    pub budget_secs: Option<f64>,
    /// Confidence of the intervals.
    pub confidence: f64,
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
    let stopping = p.stopping(p.trials);
    let mut noisy: Vec<Trial> = Vec::new();
    let (max_trials, precision) =
        match adaptive(runner, sc, Rate::Max, p.trial_secs, &stopping, "max", |t| t.rx_pps, on_trial) {
            Ok(r) => r,
            Err((e, done)) => return Err((e, summarize(sc, &done, None, None).map(Box::new))),
        };
    let mut summary = summarize(sc, &max_trials, None, None).ok_or_else(|| ("no trials".to_owned(), None))?;
    summary.mrr_precision = Some(precision);
    noisy.extend(max_trials);
    summary.noise = noise::summarize(&noisy);
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
            noisy.push(t.clone());
            Ok(t)
        };
        match zero_loss_search(upper, &p.search, &mut trial) {
            Ok(r) => {
                summary.zero_loss_pps = Some(r.zero_loss_pps);
                summary.zero_loss_confirmed = r.confirmed;
            }
            Err((e, _)) => {
                summary.noise = noise::summarize(&noisy);
                return Err((e, Some(Box::new(summary))));
            }
        }
        summary.noise = noise::summarize(&noisy);
    }
    if p.latency_fraction > 0.0 {
        let base = summary.zero_loss_pps.unwrap_or(summary.mrr_pps.median);
        let rate = base * p.latency_fraction;
        if rate > 0.0 {
            let p99 = |t: &Trial| t.latency.map_or(f64::NAN, |l| l.p99);
            match adaptive(runner, sc, Rate::Pps(rate), p.trial_secs, &stopping, "latency", p99, on_trial) {
                Ok((lat, precision)) => {
                    summary.latency = latency_point(p.latency_fraction, rate, &lat);
                    summary.latency_precision = Some(precision);
                    noisy.extend(lat);
                    summary.noise = noise::summarize(&noisy);
                }
                Err((e, lat)) => {
                    noisy.extend(lat);
                    summary.noise = noise::summarize(&noisy);
                    return Err((e, Some(Box::new(summary))));
                }
            }
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

impl Procedure {
    /// When a series of at least `min` trials stops (`min` is `trials` for a scenario's
    /// series, the anchor trial count for an anchor comparison).
    pub fn stopping(&self, min: usize) -> Stopping {
        Stopping {
            min,
            max: self.max_trials.max(min),
            target_width: self.target_width,
            budget_secs: self.budget_secs,
            confidence: self.confidence,
        }
    }
}

/// One adaptive series of trials at `rate`: stops as `stopping` says on the interval of
/// the median of `metric` over the trials. A runner error returns with the trials that
/// finished.
#[allow(clippy::too_many_arguments)]
fn adaptive(
    runner: &mut dyn Runner,
    sc: &Scenario,
    rate: Rate,
    secs: f64,
    stopping: &Stopping,
    kind: &str,
    metric: impl Fn(&Trial) -> f64,
    on_trial: &mut dyn FnMut(&TrialEvent),
) -> Result<(Vec<Trial>, Precision), (String, Vec<Trial>)> {
    let mut trials: Vec<Trial> = Vec::new();
    let mut spent = 0.0;
    let offered_pps = match rate {
        Rate::Pps(x) => Some(x),
        Rate::Max => None,
    };
    loop {
        let values: Vec<f64> = trials.iter().map(&metric).collect();
        let width = median_interval(&values, stopping.confidence).map(|i| i.relative_width());
        // The next trial is expected to take as long as the longest so far (or its duration).
        let next = trials.iter().map(|t| t.duration_s).fold(secs, f64::max);
        if let Some(stopped) = stopping.check(trials.len(), width, spent, next) {
            let precision = stopping.precision(trials.len(), width, stopped);
            return Ok((trials, precision));
        }
        let started = Instant::now();
        match runner.trial(sc, rate, secs) {
            Ok(t) => {
                spent += started.elapsed().as_secs_f64().max(t.duration_s);
                on_trial(&TrialEvent { kind, index: trials.len(), offered_pps, trial: &t });
                trials.push(t);
            }
            Err(e) => return Err((e, trials)),
        }
    }
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
        mrr_precision: None,
        latency_precision: None,
        noise: noise::summarize(max),
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
        /// Relative spread of the receive rate from trial to trial (0: always the same).
        jitter: f64,
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
            // A fixed sequence spread over [-1, 1): the same trials on every run.
            let wobble = ((self.calls * 7919) % 200) as f64 / 100.0 - 1.0;
            let rx = pps.min(self.cap) * (1.0 + self.jitter * wobble);
            Ok(Trial {
                sent: (pps * secs) as u64,
                received: (rx * secs) as u64,
                tx_pps: pps,
                rx_pps: rx,
                duration_s: secs,
                latency: Some(Latency { p50: 1000.0, p90: 2000.0, p99: 3000.0, p999: 4000.0, max: 5000.0 }),
                rx_cpu_ns_per_pkt: Some(50.0),
                noise: None,
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
            max_trials: 3,
            target_width: 0.05,
            budget_secs: None,
            confidence: 0.95,
            trial_secs: 2.0,
            search: SearchConfig { confirm_secs: 2.0, ..Default::default() },
            zero_loss: true,
            latency_fraction: 0.5,
            count: Some(CountConfig { rate_pps: 100e3, secs: 2.0, trials: 2 }),
        }
    }

    #[test]
    fn a_scenario_measures_max_zero_loss_and_latency() {
        let mut r = Synthetic { cap: 3e6, generator: 5e6, calls: 0, fail_at: None, jitter: 0.0 };
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
        let mut r = Synthetic { cap: 60e3, generator: 1e6, calls: 0, fail_at: None, jitter: 0.0 };
        let s = run_scenario(&mut r, &sc(), &proc(), &mut |_| {}).unwrap();
        let c = s.count.unwrap();
        assert!(c.capped && c.offered_pps == s.zero_loss_pps.unwrap() / 2.0 && c.offered_pps > 15e3, "{c:?}");
        assert!(c.exact(), "below capacity nothing is lost: {c:?}");
    }

    fn max_rate_trials(jitter: f64, p: &Procedure) -> ScenarioSummary {
        let mut r = Synthetic { cap: 3e6, generator: 5e6, calls: 0, fail_at: None, jitter };
        run_scenario(&mut r, &sc(), &Procedure { zero_loss: false, latency_fraction: 0.0, ..*p }, &mut |_| {}).unwrap()
    }

    #[test]
    fn a_noisy_runner_gets_more_trials_than_a_quiet_one() {
        let p = Procedure { max_trials: 30, ..proc() };
        let quiet = max_rate_trials(0.001, &p);
        let noisy = max_rate_trials(0.1, &p);
        let (q, n) = (quiet.mrr_precision.unwrap(), noisy.mrr_precision.unwrap());
        assert_eq!((quiet.mrr_pps.n, q.trials, q.reached), (3, 3, true), "{q:?}");
        assert_eq!(q.stopped, crate::adaptive::StopReason::WidthReached);
        assert!(noisy.mrr_pps.n > quiet.mrr_pps.n, "{n:?}");
        assert_eq!(noisy.mrr_pps.n, n.trials);
        assert!(n.reached == (n.width.unwrap() <= 0.05), "{n:?}");
    }

    #[test]
    fn the_trial_cap_holds() {
        let s = max_rate_trials(0.5, &Procedure { max_trials: 7, target_width: 0.001, ..proc() });
        let p = s.mrr_precision.unwrap();
        assert_eq!((s.mrr_pps.n, p.trials, p.reached), (7, 7, false), "{p:?}");
        assert_eq!(p.stopped, crate::adaptive::StopReason::MaxTrials);
    }

    #[test]
    fn the_time_budget_holds() {
        // 2 s trials (the synthetic runner reports them so), 9 s per series: 4 trials.
        let p = Procedure { max_trials: 100, target_width: 0.001, budget_secs: Some(9.0), ..proc() };
        let s = max_rate_trials(0.5, &p);
        let pr = s.mrr_precision.unwrap();
        assert_eq!((s.mrr_pps.n, pr.stopped), (4, crate::adaptive::StopReason::Budget), "{pr:?}");
        // The minimum runs even past the budget.
        let s = max_rate_trials(0.5, &Procedure { budget_secs: Some(1.0), ..p });
        assert_eq!(s.mrr_pps.n, 3);
    }

    #[test]
    fn latency_trials_are_adaptive_too() {
        let mut r = Synthetic { cap: 3e6, generator: 5e6, calls: 0, fail_at: None, jitter: 0.0 };
        let p = Procedure { max_trials: 6, target_width: 0.0, zero_loss: false, ..proc() };
        let s = run_scenario(&mut r, &sc(), &p, &mut |_| {}).unwrap();
        // A width of 0 is never beaten by a real interval... except a zero-width one: equal p99s.
        let l = s.latency_precision.unwrap();
        assert_eq!((l.trials, l.reached), (3, true), "{l:?}");
        let p = Procedure { target_width: -1.0, ..p };
        let s = run_scenario(&mut r, &sc(), &p, &mut |_| {}).unwrap();
        assert_eq!(s.latency.unwrap().p99_ns.n, 6);
    }

    #[test]
    fn an_interruption_keeps_the_finished_trials() {
        let mut r = Synthetic { cap: 3e6, generator: 5e6, calls: 0, fail_at: Some(5), jitter: 0.0 };
        let (e, partial) = run_scenario(&mut r, &sc(), &proc(), &mut |_| {}).unwrap_err();
        assert_eq!(e, "interrupted");
        let p = partial.expect("the max trials finished");
        assert_eq!(p.mrr_pps.n, 3);
        assert_eq!(p.zero_loss_pps, None);
    }
}
