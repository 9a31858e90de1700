//! A run directory under `bench/runs/`: `README.md` (command, versions, environment),
//! `raw.csv` (one row per trial, appended as trials finish) and `summary.json` (rewritten
//! after every scenario, so an interrupted run keeps what it finished).
use std::{
    collections::BTreeMap,
    fs::{self, File, OpenOptions},
    io::Write as _,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::{
    Scenario, Trial,
    adaptive::Precision,
    noise::NoiseSummary,
    stats::{GoalVerdict, Interval, Spread, Verdict},
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not an xdpipe run summary: {source}")]
    Parse {
        path: String,
        #[source]
        source: serde_json::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.display().to_string(), source }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub command: String,
    pub started: String,
    pub host: String,
    pub target: String,
    /// True for targets whose rates say nothing about real hardware (veth, emulated NICs).
    pub virtual_target: bool,
    /// Link speed in bit/s for physical targets (for the line-rate curve).
    pub link_bps: Option<f64>,
    pub env: BTreeMap<String, String>,
    pub complete: bool,
    pub trials_per_point: usize,
    pub notes: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyPoint {
    /// Fraction of the zero-loss rate the latency trials ran at.
    pub fraction: f64,
    pub offered_pps: f64,
    pub p50_ns: Spread,
    pub p90_ns: Spread,
    pub p99_ns: Spread,
    pub p999_ns: Spread,
    pub max_ns: Spread,
    /// Receiver worker CPU time per packet at this (below saturation) rate.
    pub rx_cpu_ns_per_pkt: Spread,
    /// Frames sent and received over the latency trials (runs stored before these were
    /// kept have none).
    #[serde(default)]
    pub sent: Option<u64>,
    #[serde(default)]
    pub received: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScenarioSummary {
    pub scenario: Scenario,
    pub label: String,
    /// Maximum receive rate: receiver pps with the generator at max.
    pub mrr_pps: Spread,
    /// Generator pps in the same trials.
    pub offered_max_pps: Spread,
    pub zero_loss_pps: Option<f64>,
    pub zero_loss_confirmed: bool,
    pub latency: Option<LatencyPoint>,
    /// Frames sent and received over the max-rate trials (correctness count).
    pub sent: u64,
    pub received: u64,
    /// How precise the max-rate trials got (`None` in runs stored before trials were adaptive).
    #[serde(default)]
    pub mrr_precision: Option<Precision>,
    /// How precise the latency trials' p99 got.
    #[serde(default)]
    pub latency_precision: Option<Precision>,
    /// The machine's noise over the scenario's trials (`None`: not probed).
    #[serde(default)]
    pub noise: Option<NoiseSummary>,
    /// The exact-count trials (none unless the run asked for them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<crate::count::CountPoint>,
}

#[cfg(test)]
impl ScenarioSummary {
    /// A summary of `scenario` whose max-rate trials are `mrr` and nothing else (tests).
    pub(crate) fn of_trials(scenario: crate::scenario::Scenario, mrr: &[f64]) -> Self {
        ScenarioSummary {
            label: scenario.label(),
            scenario,
            mrr_pps: crate::stats::spread(mrr),
            offered_max_pps: crate::stats::spread(mrr),
            zero_loss_pps: None,
            zero_loss_confirmed: false,
            latency: None,
            sent: 0,
            received: 0,
            mrr_precision: None,
            latency_precision: None,
            noise: None,
            count: None,
        }
    }
}

/// A baseline tool measured beside xdpipe in the same run (xdpsock, xdp-bench,
/// xdp-trafficgen), trial for trial alternately.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Anchor {
    pub name: String,
    pub xdp_mode: String,
    /// "pps" or "ns/frame".
    pub unit: String,
    pub ours_command: String,
    pub theirs_command: String,
    pub ours: Spread,
    pub theirs: Spread,
    /// ours / theirs, of the medians.
    pub ratio: f64,
    /// The bootstrap interval of `ratio` (`None`: fewer than two trials a side, or a run
    /// stored before intervals were kept).
    #[serde(default)]
    pub ratio_ci: Option<Interval>,
    /// What the interval says (for ns/frame lower is better).
    #[serde(default)]
    pub verdict: Verdict,
    /// "at least 1.1", "at most 0.9", or empty when the share itself is the finding.
    pub goal: String,
    /// What the interval says of the goal (`None`: no goal, or a run stored before; an old
    /// run's `met` field, a bare comparison of medians, is not read).
    #[serde(default)]
    pub goal_verdict: Option<GoalVerdict>,
    /// How precise the ratio got (pairs of trials run, width reached).
    #[serde(default)]
    pub precision: Option<Precision>,
    /// xdpipe's one-way p99 latency over its trials, us, where its side measured one (the
    /// CPU-per-frame pairings, from the generator's stamps): the latency a wait's CPU
    /// saving costs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ours_p99_us: Option<Spread>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub run: RunInfo,
    pub scenarios: Vec<ScenarioSummary>,
    pub anchors: Vec<Anchor>,
    /// Testbed targets: what the receiving device offers (`None`: not read, or an older run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<crate::devices::DeviceInfo>,
    /// The kernel-stack baselines measured on the same device (`--kernel-baselines`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kernel: Vec<crate::devices::KernelBaseline>,
    /// The stage of a composite path (`path:kubevirt`) this run measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hop: Option<crate::chain::PathHop>,
}

pub struct RunDir {
    pub path: PathBuf,
    csv: File,
}

const CSV_HEADER: &str = "scenario,target,size,xdp_mode,bind,mode,engine,queues,wait,threaded_napi,kind,trial,offered_pps,duration_s,sent,received,lost,tx_pps,rx_pps,p50_ns,p90_ns,p99_ns,p999_ns,max_ns,rx_cpu_ns_per_pkt,offloads,stalls,longest_stall_us,steal,iowait,noise_flagged";

impl RunDir {
    /// Creates `root/NAME` (NAME-2, -3... if taken) with an empty `raw.csv`.
    pub fn create(root: &Path, name: &str) -> Result<Self, StoreError> {
        fs::create_dir_all(root).map_err(io(root))?;
        let mut path = root.join(name);
        let mut n = 2;
        while path.exists() {
            path = root.join(format!("{name}-{n}"));
            n += 1;
        }
        fs::create_dir(&path).map_err(io(&path))?;
        let csv_path = path.join("raw.csv");
        let mut csv = OpenOptions::new().create(true).append(true).open(&csv_path).map_err(io(&csv_path))?;
        writeln!(csv, "{CSV_HEADER}").map_err(io(&csv_path))?;
        Ok(Self { path, csv })
    }

    /// Appends one trial row.
    pub fn record(
        &mut self,
        sc: &Scenario,
        kind: &str,
        index: usize,
        offered_pps: Option<f64>,
        t: &Trial,
    ) -> Result<(), StoreError> {
        let l = t.latency.unwrap_or_default();
        let lat = |v: f64| if t.latency.is_some() { format!("{v:.0}") } else { String::new() };
        let row = format!(
            "{},{},{},{},{},{},{},{},{},{},{kind},{index},{},{:.3},{},{},{},{:.0},{:.0},{},{},{},{},{},{},{},{}",
            sc.label(),
            sc.target,
            sc.size,
            sc.xdp_mode,
            sc.bind,
            sc.mode,
            sc.engine,
            sc.queues,
            sc.wait,
            sc.threaded_napi,
            offered_pps.map_or("max".to_owned(), |p| format!("{p:.0}")),
            t.duration_s,
            t.sent,
            t.received,
            t.lost(),
            t.tx_pps,
            t.rx_pps,
            lat(l.p50),
            lat(l.p90),
            lat(l.p99),
            lat(l.p999),
            lat(l.max),
            t.rx_cpu_ns_per_pkt.map_or(String::new(), |c| format!("{c:.1}")),
            sc.offloads,
            t.noise.map_or(",,,,".to_owned(), |n| format!(
                "{},{:.0},{:.4},{:.4},{}",
                n.stalls,
                n.longest_stall_us,
                n.steal,
                n.iowait,
                n.flagged()
            )),
        );
        let p = self.path.join("raw.csv");
        writeln!(self.csv, "{row}").map_err(io(&p))
    }

    /// Appends one anchor trial to `anchors.csv` (created with its header on first use).
    /// One argument per column of the row it writes.
    #[allow(clippy::too_many_arguments)]
    pub fn record_anchor(
        &self,
        name: &str,
        xdp_mode: &str,
        side: &str,
        trial: usize,
        value: f64,
        unit: &str,
        command: &str,
    ) -> Result<(), StoreError> {
        let p = self.path.join("anchors.csv");
        let new = !p.exists();
        let mut f = OpenOptions::new().create(true).append(true).open(&p).map_err(io(&p))?;
        if new {
            writeln!(f, "anchor,xdp_mode,side,trial,value,unit,command").map_err(io(&p))?;
        }
        let q = |x: &str| format!("\"{}\"", x.replace('"', "'"));
        writeln!(f, "{},{xdp_mode},{side},{trial},{value:.1},{unit},{}", q(name), q(command)).map_err(io(&p))
    }

    pub fn write_summary(&self, s: &RunSummary) -> Result<(), StoreError> {
        let p = self.path.join("summary.json");
        let text = serde_json::to_string_pretty(s)
            .map_err(|e| StoreError::Io { path: p.display().to_string(), source: e.into() })?;
        fs::write(&p, text).map_err(io(&p))
    }

    pub fn write_readme(&self, s: &RunSummary) -> Result<(), StoreError> {
        let p = self.path.join("README.md");
        let r = &s.run;
        let mut text = format!(
            "# xdpipe bench run: {target} on {host}\n\nStarted {started}{partial}.\n\n\
             Command:\n\n```sh\n{command}\n```\n\n",
            target = r.target,
            host = r.host,
            started = r.started,
            partial = if r.complete { "" } else { " (interrupted or in progress: the trials finished are kept)" },
            command = r.command,
        );
        if r.virtual_target {
            text += "This is a virtual target: its rates describe this host's software path, not NIC hardware.\n\n";
        }
        text += "## Environment\n\n| what | value |\n|---|---|\n";
        for (k, v) in &r.env {
            text += &format!("| {k} | {} |\n", v.replace('|', "\\|").replace('\n', "<br>"));
        }
        text += "\n## Files\n\n- `raw.csv`: one row per trial (kind `max`, `search`, `confirm`, `latency`, `count`).\n\
                 - `summary.json`: per scenario the median / min / max over trials, the zero-loss rate \
                 and the latency percentiles; anchors measured in the same run.\n\
                 - `anchors.csv` (when anchor tools were found): one row per anchor trial, ours and theirs.\n";
        for n in &r.notes {
            text += &format!("\nNote: {n}\n");
        }
        fs::write(&p, text).map_err(io(&p))
    }
}

/// Loads `summary.json` from a run directory (or the file itself).
pub fn load(path: &Path) -> Result<RunSummary, StoreError> {
    let file = if path.is_dir() { path.join("summary.json") } else { path.to_path_buf() };
    let text = fs::read_to_string(&file).map_err(io(&file))?;
    serde_json::from_str(&text).map_err(|source| StoreError::Parse { path: file.display().to_string(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_directory_round_trips() {
        // Under the workspace's target directory, not /tmp (a predictable path there is a
        // root hazard, and this crate has no private_temp_dir).
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../target/test-tmp")
            .join(format!("store-{}", std::process::id()));
        let mut d = RunDir::create(&root, "r").unwrap();
        let d2 = RunDir::create(&root, "r").unwrap();
        assert!(d2.path.ends_with("r-2"));
        let sc = Scenario::example();
        let t = Trial { sent: 10, received: 9, tx_pps: 1.0, rx_pps: 0.9, duration_s: 1.0, ..Default::default() };
        d.record(&sc, "max", 0, None, &t).unwrap();
        let s = RunSummary { run: RunInfo { target: "veth".into(), ..Default::default() }, ..Default::default() };
        d.write_summary(&s).unwrap();
        d.write_readme(&s).unwrap();
        assert_eq!(load(&d.path).unwrap(), s);
        let csv = fs::read_to_string(d.path.join("raw.csv")).unwrap();
        let lines: Vec<_> = csv.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].split(',').count(), lines[1].split(',').count());
        assert!(lines[1].contains(",max,0,max,1.000,10,9,1,"));
        fs::remove_dir_all(&root).unwrap();
    }
}
