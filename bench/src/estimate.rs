//! How long a run is expected to take, from its procedure: what `xdpipe bench` prints
//! before the first trial. The zero-loss search's length depends on what it finds, so the
//! estimate counts the bisection steps its resolution needs and one confirming trial
//! (each failed confirmation adds one trial more, up to the configured attempts).
use crate::{Scenario, procedure::Procedure};

/// Expected seconds for `scenarios` under `p`, with `overhead_s` per trial (testbed set
/// up and torn down, program attached, sockets bound), as (least, most): the least runs
/// every adaptive series at its minimum, the most adds trials up to `max_trials` or the
/// series' time budget.
pub fn expected_secs(p: &Procedure, scenarios: &[Scenario], overhead_s: f64) -> (f64, f64) {
    scenarios.iter().map(|sc| scenario_secs(p, sc, overhead_s)).fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y))
}

fn scenario_secs(p: &Procedure, sc: &Scenario, overhead_s: f64) -> (f64, f64) {
    let trial = |secs: f64, n: usize| n as f64 * (secs + overhead_s);
    // An adaptive series: at least `trials`, at most `max_trials`, and no trial started
    // that would pass the budget.
    let most = {
        let per = p.trial_secs + overhead_s;
        let by_budget = p.budget_secs.map_or(usize::MAX, |b| (b / per).floor() as usize);
        p.max_trials.min(by_budget).max(p.trials)
    };
    let series = (trial(p.trial_secs, p.trials), trial(p.trial_secs, most));
    let (mut lo, mut hi) = series;
    if !sc.can_pace() {
        return (lo, hi);
    }
    let mut fixed = 0.0;
    if p.zero_loss {
        fixed += trial(p.search.search_secs, search_steps(p)) + trial(p.search.confirm_secs, 1);
    }
    if p.latency_fraction > 0.0 {
        lo += series.0;
        hi += series.1;
    }
    if let Some(c) = &p.count {
        fixed += trial(c.secs, c.trials);
    }
    (lo + fixed, hi + fixed)
}

/// Search trials: the upper bound, then bisections until the bracket is below the
/// resolution (or the step limit).
fn search_steps(p: &Procedure) -> usize {
    let r = p.search.resolution.clamp(1e-6, 1.0);
    let bisections = (1.0 / r).log2().ceil().max(0.0) as usize;
    (1 + bisections).min(p.search.max_steps.max(1) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{count::CountConfig, search::SearchConfig};

    #[test]
    fn every_phase_counts() {
        let mut p = Procedure {
            trials: 3,
            max_trials: 3,
            target_width: 0.05,
            budget_secs: None,
            confidence: 0.95,
            trial_secs: 2.0,
            search: SearchConfig { search_secs: 0.5, confirm_secs: 2.0, resolution: 0.05, ..Default::default() },
            zero_loss: false,
            latency_fraction: 0.0,
            count: None,
        };
        let sc = [Scenario::example()];
        assert_eq!(expected_secs(&p, &sc, 1.0), (9.0, 9.0));
        p.zero_loss = true;
        // 1 + ceil(log2 20) = 6 search trials of 1.5 s, one confirm of 3 s.
        assert_eq!(expected_secs(&p, &sc, 1.0), (21.0, 21.0));
        p.latency_fraction = 0.5;
        p.count = Some(CountConfig { rate_pps: 1e5, secs: 2.0, trials: 1 });
        assert_eq!(expected_secs(&p, &sc, 1.0), (33.0, 33.0));
        assert_eq!(expected_secs(&p, &[sc[0].clone(), sc[0].clone()], 1.0), (66.0, 66.0));
        // Adaptive series (max-rate and latency) may add trials up to the cap...
        p.max_trials = 9;
        assert_eq!(expected_secs(&p, &sc, 1.0), (33.0, 33.0 + 2.0 * 18.0));
        // ... or as many as the budget holds (4 trials of 3 s in 13 s).
        p.budget_secs = Some(13.0);
        assert_eq!(expected_secs(&p, &sc, 1.0), (33.0, 33.0 + 2.0 * 3.0));
    }
}
