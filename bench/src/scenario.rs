//! The scenario matrix: every combination of the axes a run asked for.
use serde::{Deserialize, Serialize};

pub use crate::axes::{
    Axis, AxisError, Bind, Engine, HostDevice, Mode, Offloads, PathKind, Size, Target, VmKind, Wait, XdpMode,
};

/// The RFC 2544 frame sizes (with FCS).
pub const RFC2544_SIZES: [u32; 7] = [64, 128, 256, 512, 1024, 1280, 1518];

/// The sizes a run measures by default: the RFC 2544 set plus IMIX.
pub fn default_sizes() -> Vec<Size> {
    RFC2544_SIZES.iter().map(|&n| Size::Bytes(n)).chain([Size::Imix]).collect()
}

/// One point of the matrix.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Scenario {
    /// `veth`, `nic:IF` or `vm:igb` (emulated runs are labelled with the guest's kind).
    pub target: Target,
    /// Frame size with FCS, or `imix`.
    pub size: Size,
    /// skb or native.
    pub xdp_mode: XdpMode,
    /// copy or zero-copy.
    pub bind: Bind,
    /// Receiver worker mode: rxdrop, parse, l2fwd, fwd.
    pub mode: Mode,
    /// Generator engine: xsk or xdp-live.
    pub engine: Engine,
    pub queues: u32,
    /// Receiver wait policy: need_wakeup with busy polling (`busy`) or poll() (`poll`).
    pub wait: Wait,
    pub threaded_napi: bool,
    /// Receive-port offloads: "default" (as the driver set them) or "off" (every one
    /// `ethtool -K` could turn off; the run's environment lists which).
    #[serde(default = "default_offloads")]
    pub offloads: Offloads,
}

fn default_offloads() -> Offloads {
    Offloads::Default
}

impl Scenario {
    /// One plain scenario (veth, native, copy, rxdrop, 64 B, xsk, one queue, busy), for
    /// the unit tests of the modules that record and run scenarios.
    #[cfg(test)]
    pub(crate) fn example() -> Self {
        Scenario {
            target: Target::Veth,
            size: Size::Bytes(64),
            xdp_mode: XdpMode::Native,
            bind: Bind::Copy,
            mode: Mode::Rxdrop,
            engine: Engine::Xsk,
            queues: 1,
            wait: Wait::Busy,
            threaded_napi: false,
            offloads: Offloads::Default,
        }
    }

    /// A short unique label, e.g. `veth native copy rxdrop 64B xsk q1 busy`.
    pub fn label(&self) -> String {
        self.label_with_size(&match self.size {
            Size::Imix => "imix".to_owned(),
            Size::Bytes(n) => format!("{n}B"),
        })
    }

    fn label_with_size(&self, size: &str) -> String {
        let mut l = format!(
            "{} {} {} {} {} {} q{} {}",
            self.target, self.xdp_mode, self.bind, self.mode, size, self.engine, self.queues, self.wait
        );
        if self.threaded_napi {
            l += " threaded-napi";
        }
        if self.offloads != Offloads::Default {
            l += &format!(" offloads-{}", self.offloads);
        }
        l
    }

    /// Mean frame size with FCS (IMIX 7:4:1 of 64/570/1518).
    pub fn mean_size(&self) -> f64 {
        self.size.mean()
    }

    /// False for the in-kernel generator (xdp-live), which sends at full speed only: no
    /// zero-loss search or latency trials at a fraction of it.
    pub fn can_pace(&self) -> bool {
        self.engine != Engine::XdpLive
    }

    /// The same scenario with the series axis (everything but size) as a key.
    pub fn series(&self) -> String {
        self.label_with_size("*B").replace(" *B", "")
    }
}

/// The axes of a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Matrix {
    pub target: Target,
    pub sizes: Vec<Size>,
    pub xdp_modes: Vec<XdpMode>,
    pub binds: Vec<Bind>,
    pub modes: Vec<Mode>,
    pub engines: Vec<Engine>,
    pub queues: Vec<u32>,
    pub waits: Vec<Wait>,
    pub threaded_napi: Vec<bool>,
    pub offloads: Vec<Offloads>,
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
                                            size: *size,
                                            xdp_mode: *xdp_mode,
                                            bind: *bind,
                                            mode: *mode,
                                            engine: *engine,
                                            queues,
                                            wait: *wait,
                                            threaded_napi: *threaded_napi,
                                            offloads: *offloads,
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
            target: Target::Veth,
            sizes: vec![Size::Bytes(64), Size::Imix],
            xdp_modes: vec![XdpMode::Skb, XdpMode::Native],
            binds: vec![Bind::Copy],
            modes: vec![Mode::Rxdrop],
            engines: vec![Engine::Xsk],
            queues: vec![1],
            waits: vec![Wait::Busy],
            threaded_napi: vec![false, true],
            offloads: vec![Offloads::Default],
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
