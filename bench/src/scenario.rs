//! The scenario matrix: every combination of the axes a run asked for.
use serde::{Deserialize, Serialize};

/// The RFC 2544 frame sizes (with FCS).
pub const RFC2544_SIZES: [&str; 7] = ["64", "128", "256", "512", "1024", "1280", "1518"];

/// One point of the matrix.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Scenario {
    /// `veth` (or later `nic:IF`, `vm:igb`).
    pub target: String,
    /// Frame size with FCS, or `imix`.
    pub size: String,
    /// skb or native.
    pub xdp_mode: String,
    /// copy or zero-copy.
    pub bind: String,
    /// Receiver worker mode: rxdrop, parse, l2fwd, fwd.
    pub mode: String,
    /// Generator engine: xsk or xdp-live.
    pub engine: String,
    pub queues: u32,
    /// Receiver wait policy: need_wakeup with busy polling (`busy`) or poll() (`poll`).
    pub wait: String,
    pub threaded_napi: bool,
    /// Receive-port offloads: "default" (as the driver set them) or "off" (every one
    /// `ethtool -K` could turn off; the run's environment lists which).
    #[serde(default = "default_offloads")]
    pub offloads: String,
}

fn default_offloads() -> String {
    "default".into()
}

impl Scenario {
    /// One plain scenario (veth, native, copy, rxdrop, 64 B, xsk, one queue, busy), for
    /// the unit tests of the modules that record and run scenarios.
    #[cfg(test)]
    pub(crate) fn example() -> Self {
        Scenario {
            target: "veth".into(),
            size: "64".into(),
            xdp_mode: "native".into(),
            bind: "copy".into(),
            mode: "rxdrop".into(),
            engine: "xsk".into(),
            queues: 1,
            wait: "busy".into(),
            threaded_napi: false,
            offloads: "default".into(),
        }
    }

    /// A short unique label, e.g. `veth native copy rxdrop 64B xsk q1 busy`.
    pub fn label(&self) -> String {
        let size = if self.size == "imix" { "imix".to_owned() } else { format!("{}B", self.size) };
        let mut l = format!(
            "{} {} {} {} {} {} q{} {}",
            self.target, self.xdp_mode, self.bind, self.mode, size, self.engine, self.queues, self.wait
        );
        if self.threaded_napi {
            l += " threaded-napi";
        }
        if self.offloads != "default" {
            l += &format!(" offloads-{}", self.offloads);
        }
        l
    }

    /// Mean frame size with FCS (IMIX 7:4:1 of 64/570/1518).
    pub fn mean_size(&self) -> f64 {
        match self.size.parse::<f64>() {
            Ok(s) => s,
            Err(_) => (7.0 * 64.0 + 4.0 * 570.0 + 1518.0) / 12.0,
        }
    }

    /// False for the in-kernel generator (xdp-live), which sends at full speed only: no
    /// zero-loss search or latency trials at a fraction of it.
    pub fn can_pace(&self) -> bool {
        self.engine != "xdp-live"
    }

    /// The same scenario with the series axis (everything but size) as a key.
    pub fn series(&self) -> String {
        let mut s = self.clone();
        s.size = "*".into();
        s.label().replace(" *B", "")
    }
}

/// The axes of a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Matrix {
    pub target: String,
    pub sizes: Vec<String>,
    pub xdp_modes: Vec<String>,
    pub binds: Vec<String>,
    pub modes: Vec<String>,
    pub engines: Vec<String>,
    pub queues: Vec<u32>,
    pub waits: Vec<String>,
    pub threaded_napi: Vec<bool>,
    pub offloads: Vec<String>,
}

impl Matrix {
    /// Every combination, sizes innermost.
    pub fn scenarios(&self) -> Vec<Scenario> {
        let mut out = Vec::new();
        for threaded_napi in &self.threaded_napi {
            for engine in &self.engines {
                for mode in &self.modes {
                    for xdp_mode in &self.xdp_modes {
                        for bind in &self.binds {
                            for &queues in &self.queues {
                                for wait in &self.waits {
                                    for (size, offloads) in
                                        self.sizes.iter().flat_map(|s| self.offloads.iter().map(move |o| (s, o)))
                                    {
                                        out.push(Scenario {
                                            target: self.target.clone(),
                                            size: size.clone(),
                                            xdp_mode: xdp_mode.clone(),
                                            bind: bind.clone(),
                                            mode: mode.clone(),
                                            engine: engine.clone(),
                                            queues,
                                            wait: wait.clone(),
                                            threaded_napi: *threaded_napi,
                                            offloads: offloads.clone(),
                                        });
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m() -> Matrix {
        Matrix {
            target: "veth".into(),
            sizes: vec!["64".into(), "imix".into()],
            xdp_modes: vec!["skb".into(), "native".into()],
            binds: vec!["copy".into()],
            modes: vec!["rxdrop".into()],
            engines: vec!["xsk".into()],
            queues: vec![1],
            waits: vec!["busy".into()],
            threaded_napi: vec![false, true],
            offloads: vec!["default".into()],
        }
    }

    #[test]
    fn matrix_expands_every_combination_with_unique_labels() {
        let s = m().scenarios();
        assert_eq!(s.len(), 2 * 2 * 2);
        let mut labels: Vec<_> = s.iter().map(Scenario::label).collect();
        labels.sort();
        labels.dedup();
        assert_eq!(labels.len(), 8);
        assert_eq!(s[0].label(), "veth skb copy rxdrop 64B xsk q1 busy");
        assert_eq!(s[0].series(), "veth skb copy rxdrop xsk q1 busy");
        assert!((s[1].mean_size() - 4246.0 / 12.0).abs() < 1e-9, "{}", s[1].mean_size());
    }
}
