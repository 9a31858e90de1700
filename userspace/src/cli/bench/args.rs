//! `xdpipe bench` and `xdpipe report` flags, and the conversion of bench's into a
//! validated `BenchConfig`: every axis and value checked here, before anything is made.
use std::path::PathBuf;

use clap::Args;
use xdpipe::{config::FrameSize, generator::Rate, wire::udpgen::FCS_LEN, wire::udpgen::MIN_FRAME_LEN};
use xdpipe_bench::{
    config::{AnchorConfig, BenchConfig},
    count::CountConfig,
    procedure::Procedure,
    scenario::{Bind, Engine, Matrix, Mode, Offloads, Size, Target, Wait, XdpMode, default_sizes},
    search::SearchConfig,
};

use crate::cli::{
    CliError, refuse,
    values::{AnchorsArg, OnOffBoth, axis},
};

#[derive(Args, Clone, Debug)]
pub struct BenchArgs {
    /// Where to run: veth (a testbed xdpipe builds and removes per trial); bridge, macvlan,
    /// vxlan or tap (the same testbed with that device in the path, the receiver on it);
    /// nic:IFACE (a NIC port, with --gen-iface the port cabled to it, or --remote-gen for a
    /// generator on a second host); vm:igb or vm:virtio (the QEMU guest of scripts/vm,
    /// emulated NICs, results labelled emulated); vm:DEVICE (a device topology in the
    /// guest's kernel: ipvlan-l2, ipvlan-l3, geneve, netkit, ovs, ...); path:kubevirt (the
    /// KubeVirt + Kube-OVN chain in the guest, measured after each hop is added).
    #[arg(long, default_value = "veth")]
    pub target: Target,
    /// With --target nic:IFACE: the port of this host cabled back to back to IFACE, which
    /// the generator sends from.
    #[arg(long)]
    pub gen_iface: Option<String>,
    #[command(flatten)]
    pub remote: crate::cli::agent::RemoteArgs,
    /// Queue counts (RSS; nic and vm targets): 1,4 runs every point on 1 and on 4 queues.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub queues: Vec<u32>,
    /// Socket binds (nic and vm targets).
    #[arg(long, value_delimiter = ',', default_value = "copy", value_parser = axis::<Bind>())]
    pub binds: Vec<Bind>,
    /// Receive-port offloads (nic and vm targets): default (as the driver set them), off
    /// (every offload ethtool -K can turn off); default,off runs both.
    #[arg(long, value_delimiter = ',', default_value = "default", value_parser = axis::<Offloads>())]
    pub offloads: Vec<Offloads>,
    /// Label the run as emulated hardware (set by --target vm:* inside the guest).
    #[arg(long, hide = true)]
    pub emulated_as: Option<Target>,
    /// Label the run as stage N of path:kubevirt (set by --target path:kubevirt inside the
    /// guest; the target must be that stage's).
    #[arg(long, hide = true)]
    pub kubevirt_hop: Option<usize>,
    /// Frame sizes with FCS, 62 up to the testbed's MTU + 18 (at most 9018, `jumbo`; a
    /// veth testbed gets MTU 9000 for sizes past 1518), or imix (default: the RFC 2544
    /// set plus imix).
    #[arg(long, value_delimiter = ',')]
    pub sizes: Option<Vec<Size>>,
    /// Receiver XDP modes.
    #[arg(long, value_delimiter = ',', default_value = "skb,native", value_parser = axis::<XdpMode>())]
    pub xdp_modes: Vec<XdpMode>,
    /// Receiver modes (fwd: veth target only).
    #[arg(long, value_delimiter = ',', default_value = "rxdrop", value_parser = axis::<Mode>())]
    pub modes: Vec<Mode>,
    /// Generator engines (xdp-live: max rate only, one frame size, so no imix).
    #[arg(long, value_delimiter = ',', default_value = "xsk", value_parser = axis::<Engine>())]
    pub engines: Vec<Engine>,
    /// Receiver wait policy: busy (need_wakeup, spinning on the ring), poll (sleep until
    /// frames arrive, `run --poll`) and/or busy-poll (kernel busy polling, `run --poll
    /// busy-poll`; native XDP on veth).
    #[arg(long, value_delimiter = ',', default_value = "busy", value_parser = axis::<Wait>())]
    pub waits: Vec<Wait>,
    /// Threaded NAPI on the receiving veth (labelled in the results); native XDP mode
    /// only (a veth in skb mode has no NAPI to move).
    #[arg(long, value_enum, default_value_t = OnOffBoth::Off)]
    pub threaded_napi: OnOffBoth,
    /// Threaded-NAPI scenarios: pin the receive NAPI thread to this core (default: the
    /// scheduler's choice).
    #[arg(long)]
    pub napi_core: Option<u32>,
    /// `--waits poll` scenarios: after each wakeup the receiver lets frames gather for up
    /// to US microseconds (`run --coalesce-us`). One value per run: compare settings
    /// across runs with `xdpipe compare` or `xdpipe report RUN RUN`.
    #[arg(long, value_name = "US")]
    pub coalesce_us: Option<u32>,
    /// `--waits poll` scenarios: frames to gather after each wakeup (`run
    /// --coalesce-frames`).
    #[arg(long, value_name = "FRAMES")]
    pub coalesce_frames: Option<u32>,
    /// Trials per point (median and spread over them).
    #[arg(long, default_value_t = 5)]
    pub trials: usize,
    /// Trials per point at most: more than --trials are run until the median's interval is
    /// narrower than --ci-width (default: 3 x --trials).
    #[arg(long)]
    pub max_trials: Option<usize>,
    /// Relative width of the interval (of the median, of an anchor's ratio) at which a
    /// point stops adding trials, e.g. 0.05 for 5% (0: always --max-trials).
    #[arg(long, default_value_t = 0.05)]
    pub ci_width: f64,
    /// Seconds each point's series of trials may take before no more are added (default:
    /// no limit but --max-trials).
    #[arg(long)]
    pub budget_secs: Option<f64>,
    /// Confidence of the bootstrap intervals.
    #[arg(long, default_value_t = 0.95)]
    pub confidence: f64,
    /// Seconds per max-rate, confirming and latency trial.
    #[arg(long, default_value_t = 5.0)]
    pub trial_secs: f64,
    /// Seconds per zero-loss search trial.
    #[arg(long, default_value_t = 1.0)]
    pub search_secs: f64,
    /// Skip the RFC 2544 zero-loss search.
    #[arg(long)]
    pub no_search: bool,
    /// Latency trials at this fraction of the zero-loss rate (0: none).
    #[arg(long, default_value_t = 0.5)]
    pub latency_fraction: f64,
    /// Directory the run directory goes under.
    #[arg(long, default_value = "bench/runs")]
    pub out: PathBuf,
    /// Anchors measured beside xdpipe (xdpsock, xdp-bench, xdp-trafficgen, where found).
    #[arg(long, value_enum, default_value_t = AnchorsArg::Auto)]
    pub anchors: AnchorsArg,
    /// Directories to look for the anchor tools in before PATH.
    #[arg(long)]
    pub anchor_dir: Vec<PathBuf>,
    /// Trials per side of each anchor comparison (default: --trials).
    #[arg(long)]
    pub anchor_trials: Option<usize>,
    /// Offered rate of the CPU-per-frame comparison (below saturation), a packet rate.
    #[arg(long, default_value = "200kpps")]
    pub anchor_cpu_rate: Rate,
    /// Run only the anchor comparisons whose name holds one of these texts
    /// (case-insensitive), e.g. `--anchor-only "CPU per frame",busy-poll`. The names are
    /// those of the report's Anchors table.
    #[arg(long, value_delimiter = ',')]
    pub anchor_only: Vec<String>,
    /// Exact-count trials per scenario (sent must equal received, none twice), after the
    /// latency trials (0: none; --quick: 1).
    #[arg(long, default_value_t = 0)]
    pub count_trials: usize,
    /// Offered rate of the count trials, a packet rate (lowered to half the zero-loss
    /// rate when the search found one below twice this).
    #[arg(long, default_value = "100kpps")]
    pub count_rate: Rate,
    /// Seconds per count trial.
    #[arg(long, default_value_t = 2.0)]
    pub count_secs: f64,
    /// The short end-to-end check (20-30 s on a 2-core VM): veth, skb mode, 64 B, rxdrop, xsk; 3
    /// max-rate trials of 2 s, a coarse zero-loss search, 3 latency trials, one exact-count
    /// trial at 100 kpps; anchors off. Flags given with it override its values.
    #[arg(long)]
    pub quick: bool,
    /// A gate file (TOML): thresholds the run must meet. Exit 0 pass, 1 fail, 2 could not
    /// run; junit.xml and verdict.json go into the run directory.
    #[arg(long)]
    pub gate: Option<PathBuf>,
    /// With --gate: also write the JUnit report here.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Testbed targets (veth, bridge, macvlan, vxlan, tap): after the scenarios, measure
    /// the kernel-stack baselines on the same device (UDP through a kernel socket with
    /// recvmmsg, a kernel TCP stream), each with the path's offloads on and off, --trials
    /// trials of --trial-secs each.
    #[arg(long)]
    pub kernel_baselines: bool,
    /// The flags given on the command line (clap ids), which --quick leaves as given.
    #[arg(skip)]
    pub given: Vec<String>,
}

#[derive(Args, Clone, Debug)]
pub struct GateArgs {
    /// The gate file (TOML).
    pub gate: PathBuf,
    /// The run directory (bench/runs/...) to judge.
    pub run: PathBuf,
    /// Also write the JUnit report here (it always goes into the run directory too).
    #[arg(long)]
    pub junit: Option<PathBuf>,
}

#[derive(Args, Clone, Debug)]
pub struct ReportArgs {
    /// Run directories (bench/runs/...) to compare.
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Where report.md and report.html go.
    #[arg(long, default_value = "bench/report")]
    pub out: PathBuf,
}

/// Queue counts a bench point may ask for.
pub const MAX_BENCH_QUEUES: u32 = 64;

/// The generator's UMEM frame in bench trials (its default).
const GEN_FRAME: u32 = 4096;

/// Refuses an empty axis or one listing a value twice.
fn axis_ok<T: PartialEq + std::fmt::Display>(flag: &str, values: &[T]) -> Result<(), CliError> {
    if values.is_empty() {
        refuse!("{flag}: empty; give at least one value");
    }
    for (i, v) in values.iter().enumerate() {
        if values[..i].contains(v) {
            refuse!("{flag}: {v} is listed twice; list each value once");
        }
    }
    Ok(())
}

fn positive_secs(flag: &str, s: f64) -> Result<f64, CliError> {
    if !(s > 0.0 && s < 1e6) {
        refuse!("{flag} {s}: give a positive number of seconds, e.g. 1");
    }
    Ok(s)
}

impl BenchArgs {
    /// Every check that needs no device, the --quick preset applied first. `cmd_bench`
    /// checks the rest (interfaces, MTU, CPUs) before it makes the run directory.
    pub fn validate(&self) -> Result<BenchConfig, CliError> {
        if let Some(j) = &self.junit
            && self.gate.is_none()
        {
            refuse!("--junit {}: the JUnit report is the gate's; add --gate FILE", j.display());
        }
        if self.quick {
            let mut cfg = super::quick::preset(self)?.validate_flags()?;
            super::quick::tune(&mut cfg);
            return Ok(cfg);
        }
        self.validate_flags()
    }

    fn validate_flags(&self) -> Result<BenchConfig, CliError> {
        let sizes = self.sizes.clone().unwrap_or_else(default_sizes);
        axis_ok("--sizes", &sizes)?;
        axis_ok("--xdp-modes", &self.xdp_modes)?;
        axis_ok("--modes", &self.modes)?;
        axis_ok("--engines", &self.engines)?;
        axis_ok("--waits", &self.waits)?;
        axis_ok("--binds", &self.binds)?;
        axis_ok("--offloads", &self.offloads)?;
        axis_ok("--queues", &self.queues)?;
        // Past one UMEM frame the AF_XDP generator sends multi-buffer frames; the in-kernel
        // engine's frames fit one.
        let (min, max) = (MIN_FRAME_LEN + FCS_LEN, crate::cli::generator::MAX_GEN_SIZE);
        let one_frame = crate::cli::generator::max_frame_len(FrameSize::new(GEN_FRAME)?);
        for s in &sizes {
            if let Size::Bytes(n) = *s
                && !(min..=max).contains(&(n as usize))
            {
                refuse!(
                    "--sizes {n}: out of range; frame sizes with FCS are {min} (headers and the 16-byte stamp) to {max} \
                     (jumbo: a 9000 B MTU), and at most the testbed's MTU + 18, e.g. 64,1518,jumbo or imix"
                );
            }
            if let Size::Bytes(n) = *s
                && n as usize > one_frame
                && self.modes.contains(&Mode::Fwd)
            {
                refuse!(
                    "--sizes {n} with --modes fwd: frames past {one_frame} B arrive as multi-buffer frames, which fwd cannot pass to another port yet; drop fwd from --modes for jumbo sizes (l2fwd sends them back out)"
                );
            }
            if let Size::Bytes(n) = *s
                && n as usize > one_frame
                && self.engines.contains(&Engine::XdpLive)
            {
                refuse!(
                    "--sizes {n} with --engines xdp-live: that engine's frames fit one {GEN_FRAME} B UMEM frame (at most {one_frame} B with FCS); drop xdp-live or give --sizes up to {one_frame}"
                );
            }
        }
        if let Some(q) = self.queues.iter().find(|&&q| !(1..=MAX_BENCH_QUEUES).contains(&q)) {
            refuse!("--queues {q}: give queue counts from 1 to {MAX_BENCH_QUEUES}, e.g. 1,4");
        }
        match (&self.target, &self.gen_iface) {
            (Target::Nic(i), None) if self.remote.remote_gen.is_none() => refuse!(
                "--target nic:{i}: give --gen-iface PORT, the port of this host cabled to {i} that the generator sends \
                 from, or --remote-gen ssh://USER@HOST with --remote-gen-iface PORT for a generator on a second host"
            ),
            (Target::Nic(i), Some(g)) if g == i => {
                refuse!("--gen-iface {g} is the target port itself; give the port cabled to it")
            }
            (Target::Nic(_), Some(_)) | (_, None) => {}
            (t, Some(g)) => {
                refuse!("--gen-iface {g}: only --target nic:IFACE takes a generator port (the target is {t})")
            }
        }
        super::devices::check_args(self)?;
        if (self.target.is_testbed() || matches!(self.target, Target::VmDev(_) | Target::Path(_)))
            && (self.queues != [1] || self.binds != [Bind::Copy] || self.offloads != [Offloads::Default])
        {
            refuse!(
                "--queues, --binds and --offloads are axes of the nic and vm targets: veth has one queue per pair here, \
                 binds copy only, and its offloads act on skbs after XDP; drop them or use --target nic:IFACE"
            );
        }
        if self.target != Target::Veth && self.modes.contains(&Mode::Fwd) {
            refuse!(
                "--modes fwd needs the veth testbed's second pair; on a NIC, run `xdpipe run --mode fwd --out-iface` by hand"
            );
        }
        let threaded = self.threaded_napi.values();
        if threaded.contains(&true) && self.target != Target::Veth {
            refuse!(
                "--threaded-napi: threaded NAPI is an axis of the veth target (a NIC's NAPI threads are the driver's); \
                 drop it or use --target veth"
            );
        }
        if threaded.contains(&true) && self.xdp_modes.contains(&XdpMode::Skb) {
            refuse!(
                "--threaded-napi {}: a veth in skb mode has no NAPI to move; use --xdp-modes native",
                match self.threaded_napi {
                    OnOffBoth::Both => "both",
                    _ => "on",
                }
            );
        }
        if let Some(c) = self.napi_core
            && !threaded.contains(&true)
        {
            refuse!("--napi-core {c}: only threaded-NAPI scenarios have a NAPI thread to pin; add --threaded-napi on");
        }
        if self.waits.contains(&Wait::BusyPoll) && self.target == Target::Veth && self.xdp_modes.contains(&XdpMode::Skb)
        {
            refuse!(
                "--waits busy-poll: a veth in skb mode has no NAPI to busy-poll (it has one only with a native program); \
                 use --xdp-modes native"
            );
        }
        if let Some(flag) =
            self.coalesce_us.map(|_| "--coalesce-us").or(self.coalesce_frames.map(|_| "--coalesce-frames"))
        {
            if !self.waits.contains(&Wait::Poll) {
                refuse!(
                    "{flag} moderates the sleeping wait, and --waits has no poll; add poll to --waits or drop {flag}"
                );
            }
            xdpipe::config::Coalesce::new(self.coalesce_us, self.coalesce_frames, 64)?;
        }
        if self.engines.contains(&Engine::XdpLive) && sizes.contains(&Size::Imix) {
            refuse!(
                "--engines xdp-live sends one frame size per run, and --sizes has imix (the default sizes do); \
                 give --sizes without imix, e.g. --sizes 64,1518, or drop xdp-live"
            );
        }
        if self.trials == 0 {
            refuse!("--trials 0: give at least 1 trial per point");
        }
        let (max_trials, target_width, budget_secs, confidence) =
            super::precision::limits(self.trials, self.max_trials, self.ci_width, self.budget_secs, self.confidence)?;
        let trial_secs = positive_secs("--trial-secs", self.trial_secs)?;
        let count = match (self.count_trials, self.count_rate) {
            (0, _) => None,
            (trials, Rate::Pps(rate_pps)) if rate_pps >= 1.0 => {
                Some(CountConfig { rate_pps, secs: positive_secs("--count-secs", self.count_secs)?, trials })
            }
            _ => refuse!(
                "--count-rate: give a packet rate such as 100kpps (count trials run paced, below capacity; not max or a \
                 bit rate)"
            ),
        };
        let search_secs = positive_secs("--search-secs", self.search_secs)?;
        if !(0.0..=1.0).contains(&self.latency_fraction) {
            refuse!(
                "--latency-fraction {}: a fraction of the zero-loss rate, 0 to 1 (0: no latency trials)",
                self.latency_fraction
            );
        }
        if self.kernel_baselines && !(self.target.is_testbed() || self.target.host_device().is_some()) {
            refuse!(
                "--kernel-baselines: measured on the device targets xdpipe builds (veth, bridge, macvlan, vxlan, tap, \
                 vm:DEVICE); xdpipe does not measure them on {} (a NIC, or the kubevirt chain, whose kernel sender \
                 would skip the hops): drop the flag",
                self.target
            );
        }
        if matches!(self.target, Target::Path(_))
            && self.sizes.as_ref().is_some_and(|v| v.iter().all(|s| *s == Size::Imix))
        {
            refuse!(
                "--target {} --sizes imix: the chain's tap writer sends one frame size, so path:kubevirt leaves imix \
                 out and nothing would be left; give fixed sizes, e.g. --sizes 64,1518",
                self.target
            );
        }
        if let Some(e) = &self.emulated_as
            && !e.is_vm()
        {
            refuse!("--emulated-as {e}: only vm:igb, vm:virtio or vm:DEVICE");
        }
        let hop = match self.kubevirt_hop {
            None => None,
            Some(i) => {
                let Some(spec) = xdpipe_bench::chain::KUBEVIRT.get(i) else {
                    refuse!(
                        "--kubevirt-hop {i}: path:kubevirt has stages 0 to {}",
                        xdpipe_bench::chain::KUBEVIRT.len() - 1
                    );
                };
                if self.target.to_string() != spec.target {
                    refuse!(
                        "--kubevirt-hop {i} ({}) runs with --target {}, not {}",
                        spec.name,
                        spec.target,
                        self.target
                    );
                }
                xdpipe_bench::chain::PathHop::kubevirt(i)
            }
        };
        if self.target.host_device().is_some_and(|d| d.name().starts_with("kubevirt-")) && self.kernel_baselines {
            refuse!(
                "--kernel-baselines with --target {}: a kernel sender in the sending namespace routes straight to the Geneve device, past the hops in front of it; measure baselines on --target geneve",
                self.target
            );
        }
        if !self.anchor_only.is_empty() && self.anchors == AnchorsArg::Off {
            refuse!("--anchor-only with --anchors off: no comparison runs; drop one of the two");
        }
        let anchors = match self.anchors {
            AnchorsArg::Off => None,
            AnchorsArg::Auto => {
                let Rate::Pps(cpu_pps) = self.anchor_cpu_rate else {
                    refuse!("--anchor-cpu-rate: give a packet rate such as 200kpps (not max or a bit rate)");
                };
                if self.anchor_trials == Some(0) {
                    refuse!("--anchor-trials 0: give at least 1 trial per side, or --anchors off");
                }
                if !self.anchor_only.is_empty() {
                    xdpipe::anchors::check_only(
                        &self.anchor_only,
                        &names(&self.xdp_modes),
                        &names(&self.engines),
                        cpu_pps,
                        &xdpipe::anchors::coalesce_times(self.coalesce_us),
                    )
                    .map_err(CliError)?;
                }
                Some(AnchorConfig {
                    dirs: self.anchor_dir.clone(),
                    trials: self.anchor_trials.unwrap_or(self.trials),
                    cpu_pps,
                    only: self.anchor_only.clone(),
                })
            }
        };
        let label = match &hop {
            Some(_) => Target::Path(xdpipe_bench::scenario::PathKind::Kubevirt),
            None => self.emulated_as.clone().unwrap_or_else(|| self.target.clone()),
        };
        Ok(BenchConfig {
            target: self.target.clone(),
            gen_iface: self.gen_iface.clone(),
            emulated_as: if hop.is_some() { Some(label.clone()) } else { self.emulated_as.clone() },
            hop,
            matrix: Matrix {
                target: label,
                sizes,
                xdp_modes: self.xdp_modes.clone(),
                binds: self.binds.clone(),
                modes: self.modes.clone(),
                engines: self.engines.clone(),
                queues: self.queues.clone(),
                waits: self.waits.clone(),
                threaded_napi: threaded,
                offloads: self.offloads.clone(),
            },
            procedure: Procedure {
                trials: self.trials,
                max_trials,
                target_width,
                budget_secs,
                confidence,
                trial_secs,
                search: SearchConfig { search_secs, confirm_secs: trial_secs, ..Default::default() },
                zero_loss: !self.no_search,
                latency_fraction: self.latency_fraction,
                count,
            },
            napi_core: self.napi_core,
            coalesce: (self.coalesce_us, self.coalesce_frames),
            out: self.out.clone(),
            anchors,
            kernel_baselines: self.kernel_baselines,
        })
    }
}

/// An axis's values as the strings the anchors' plan takes.
fn names<T: std::fmt::Display>(values: &[T]) -> Vec<String> {
    values.iter().map(ToString::to_string).collect()
}
