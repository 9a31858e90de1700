//! How long a run is expected to take, from its procedure: what `xdpipe bench` prints
//! before the first trial. The zero-loss search's length depends on what it finds, so the
//! estimate counts the bisection steps its resolution needs and one confirming trial
//! (each failed confirmation adds one trial more, up to the configured attempts).
use crate::{Scenario, procedure::Procedure};

/// Expected seconds for `scenarios` under `p`, with `overhead_s` per trial (testbed set
/// up and torn down, program attached, sockets bound).
pub fn expected_secs(p: &Procedure, scenarios: &[Scenario], overhead_s: f64) -> f64 {
    scenarios.iter().map(|sc| scenario_secs(p, sc, overhead_s)).sum()
}

fn scenario_secs(p: &Procedure, sc: &Scenario, overhead_s: f64) -> f64 {
    let trial = |secs: f64, n: usize| n as f64 * (secs + overhead_s);
    let mut t = trial(p.trial_secs, p.trials);
    if !sc.can_pace() {
        return t;
    }
    if p.zero_loss {
        t += trial(p.search.search_secs, search_steps(p)) + trial(p.search.confirm_secs, 1);
    }
    if p.latency_fraction > 0.0 {
        t += trial(p.trial_secs, p.trials);
    }
    if let Some(c) = &p.count {
        t += trial(c.secs, c.trials);
    }
    t
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
            trial_secs: 2.0,
            search: SearchConfig { search_secs: 0.5, confirm_secs: 2.0, resolution: 0.05, ..Default::default() },
            zero_loss: false,
            latency_fraction: 0.0,
            count: None,
        };
        let sc = [Scenario::example()];
        assert_eq!(expected_secs(&p, &sc, 1.0), 9.0);
        p.zero_loss = true;
        // 1 + ceil(log2 20) = 6 search trials of 1.5 s, one confirm of 3 s.
        assert_eq!(expected_secs(&p, &sc, 1.0), 9.0 + 9.0 + 3.0);
        p.latency_fraction = 0.5;
        p.count = Some(CountConfig { rate_pps: 1e5, secs: 2.0, trials: 1 });
        assert_eq!(expected_secs(&p, &sc, 1.0), 21.0 + 9.0 + 3.0);
        assert_eq!(expected_secs(&p, &[sc[0].clone(), sc[0].clone()], 1.0), 66.0);
    }
}
