//! xdpipe's benchmark suite, as a library with no I/O below the run directory:
//! - [`adaptive`]: how many trials a point gets (until its interval is narrow enough);
//! - [`axes`]: the matrix's axes as enums (stored as the strings they display as);
//! - [`config`]: a validated bench run (what `xdpipe bench` asked for);
//! - [`count`]: exact-count trials (sent must equal received);
//! - [`estimate`]: how long a run is expected to take;
//! - [`gate`]: pass/fail thresholds (a TOML gate file) evaluated on a stored run;
//! - [`junit`]: the gate's verdict as JUnit XML;
//! - [`scenario`]: the scenario matrix and its labels;
//! - [`search`]: the RFC 2544 zero-loss binary search over a trial function;
//! - [`stats`]: median and spread of trials;
//! - [`store`]: a run directory (`README.md`, `raw.csv`, `summary.json`);
//! - [`noise`]: the machine's noise during a trial, and when it flags the trial;
//! - [`compare`]: two stored runs, scenario for scenario, ratios with intervals;
//! - [`report`]: the markdown summary and the HTML page with SVG charts.
//!
//! The `xdpipe` binary supplies the [`Runner`] that turns a scenario and a rate into a
//! measured trial (on a veth testbed); tests supply synthetic ones.
pub mod adaptive;
pub mod axes;
pub mod chain;
pub mod compare;
pub mod config;
pub mod count;
pub mod devices;
pub mod estimate;
pub mod gate;
pub mod junit;
pub mod noise;
pub mod procedure;
pub mod report;
pub mod scenario;
pub mod search;
pub mod stats;
pub mod store;

use serde::{Deserialize, Serialize};

pub use scenario::Scenario;

/// Offered rate of a trial.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Rate {
    Max,
    Pps(f64),
}

/// Latency percentiles of one trial, nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

/// What one trial measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    pub sent: u64,
    pub received: u64,
    /// Generator rate over its run.
    pub tx_pps: f64,
    /// Receiver rate over the period traffic flowed.
    pub rx_pps: f64,
    pub duration_s: f64,
    pub latency: Option<Latency>,
    /// Receiver worker CPU time per received packet, nanoseconds.
    pub rx_cpu_ns_per_pkt: Option<f64>,
    /// The machine's noise over the trial (`None`: not probed, or a run stored before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise: Option<noise::Noise>,
    /// Frames the receiver saw twice (its sequence accounting); `None` without accounting.
    #[serde(default)]
    pub duplicates: Option<u64>,
}

impl Trial {
    pub fn lost(&self) -> u64 {
        self.sent.saturating_sub(self.received)
    }

    pub fn loss_ratio(&self) -> f64 {
        if self.sent == 0 { 0.0 } else { self.lost() as f64 / self.sent as f64 }
    }
}

/// Runs one trial of a scenario at a rate for a duration.
pub trait Runner {
    fn trial(&mut self, scenario: &Scenario, rate: Rate, secs: f64) -> Result<Trial, String>;
}
