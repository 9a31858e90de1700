//! `xdpipe bench --quick`: the short end-to-end check CI runs. One scenario on the veth
//! testbed (XDP in skb mode, which every kernel and runner has; 64 B; rxdrop; the xsk
//! generator), 3 max-rate trials of 2 s, a coarse zero-loss search (0.5 s steps to 5% of
//! the generator's rate, one confirming trial, at most one retry), 3 latency trials at
//! half the zero-loss rate, and one exact-count trial of 2 s at 100 kpps. The max-rate and
//! latency series may add trials for precision within 12 s each. Anchors are off.
//! 20-26 s on the project's 2-core VM (the expected duration is printed at the start).
//!
//! A flag given with --quick keeps its value (more sizes, more trials, anchors on); what
//! would stop the run from checking the path end to end is refused.
use xdpipe_bench::{
    config::BenchConfig,
    scenario::{Engine, Mode, Size, Target, Wait, XdpMode},
};

use super::BenchArgs;
use crate::cli::{CliError, refuse, values::AnchorsArg};

/// `a` with the preset's value in every flag not given on the command line.
pub fn preset(a: &BenchArgs) -> Result<BenchArgs, CliError> {
    let given = |id: &str| a.given.iter().any(|g| g == id);
    if a.target != Target::Veth {
        refuse!(
            "--quick --target {}: the quick check runs on the veth testbed; drop --quick and give the axes for this \
             target yourself",
            a.target
        );
    }
    let mut q = a.clone();
    if !given("sizes") {
        q.sizes = Some(vec![Size::Bytes(64)]);
    }
    if !given("xdp_modes") {
        q.xdp_modes = vec![XdpMode::Skb];
    }
    if !given("modes") {
        q.modes = vec![Mode::Rxdrop];
    }
    if !given("engines") {
        q.engines = vec![Engine::Xsk];
    }
    if !given("waits") {
        q.waits = vec![Wait::Busy];
    }
    if !given("trials") {
        q.trials = 3;
    }
    if !given("trial_secs") {
        q.trial_secs = 2.0;
    }
    // Adaptive series may add trials, but within 12 s each (4 trials of 2 s with the
    // testbed's set-up), so the check stays well under 90 s.
    if !given("budget_secs") {
        q.budget_secs = Some(12.0);
    }
    if !given("search_secs") {
        q.search_secs = 0.5;
    }
    if !given("anchors") {
        q.anchors = AnchorsArg::Off;
    }
    if !given("count_trials") {
        q.count_trials = 1;
    }
    if q.count_trials == 0 {
        refuse!(
            "--quick --count-trials 0: the quick check always counts frames exactly; give 1 or more, or drop --quick"
        );
    }
    if !q.engines.contains(&Engine::Xsk) {
        refuse!(
            "--quick --engines {}: the quick check's latency and count trials need a paced generator, and only xsk \
             paces; add xsk (--engines xsk,xdp-live)",
            q.engines.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
        );
    }
    Ok(q)
}

/// The search of the preset: coarse (5% of the generator's rate) and short.
pub fn tune(cfg: &mut BenchConfig) {
    let s = &mut cfg.procedure.search;
    s.resolution = 0.05;
    s.max_steps = 6;
    s.confirm_attempts = 2;
}
