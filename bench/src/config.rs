//! A validated `xdpipe bench` run: every axis parsed and checked against the others, the
//! procedure's counts and durations positive. The CLI builds it from its flags; what
//! needs the device (a size above the testbed's MTU) is checked before a run directory
//! is made.
use std::path::PathBuf;

use crate::{procedure::Procedure, scenario::Matrix, scenario::Target};

#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// Where the trials run (the label stored with them is `matrix.target`).
    pub target: Target,
    /// `nic:` targets: the port cabled to the target port, which the generator sends from.
    pub gen_iface: Option<String>,
    /// Inside the QEMU guest: the `vm:` target the run is labelled as (emulated).
    pub emulated_as: Option<Target>,
    /// Inside the QEMU guest: the stage of path:kubevirt this run measures.
    pub hop: Option<crate::chain::PathHop>,
    /// The axes; `matrix.target` is the label (`emulated_as`, else `target`).
    pub matrix: Matrix,
    pub procedure: Procedure,
    /// Threaded-NAPI scenarios: the core the receive NAPI thread is pinned to.
    pub napi_core: Option<u32>,
    /// `poll` scenarios: `run --coalesce-us` and `--coalesce-frames` (interrupt
    /// moderation of the sleeping wait); the run's command records them.
    pub coalesce: (Option<u32>, Option<u32>),
    /// Directory the run directory goes under.
    pub out: PathBuf,
    /// The anchor phase; `None`: off.
    pub anchors: Option<AnchorConfig>,
    /// Testbed targets: measure the kernel-stack baselines (UDP socket, TCP stream, each
    /// with offloads on and off) after the scenarios.
    pub kernel_baselines: bool,
}

impl BenchConfig {
    /// The run's label: the emulated target, else the target.
    pub fn label(&self) -> &Target {
        self.emulated_as.as_ref().unwrap_or(&self.target)
    }
}

/// The anchors measured beside xdpipe.
#[derive(Clone, Debug)]
pub struct AnchorConfig {
    /// Directories to look for the anchor tools in before PATH.
    pub dirs: Vec<PathBuf>,
    /// Trials per side of each comparison.
    pub trials: usize,
    /// Offered rate of the CPU-per-frame comparison, packets per second.
    pub cpu_pps: f64,
    /// Only the comparisons whose name holds one of these (case-insensitive); all when
    /// empty.
    pub only: Vec<String>,
}
