//! Loads xdpipe's XDP steering program with aya, attaches it to one interface, fills the
//! XSKMAP with AF_XDP sockets and reads the program's per-queue counters.
//!
//! The attachment is a BPF link owned by this process: dropping [`Steering`] detaches it,
//! and if the process dies (even by SIGKILL) the kernel detaches it when the link's last
//! file descriptor closes. Nothing stays attached behind us.
use std::{io, os::fd::RawFd};

use aya::{
    Ebpf, EbpfLoader,
    maps::{MapError, PerCpuArray, XskMap},
    programs::{ProgramError, Xdp, XdpMode as AyaXdpMode, xdp::XdpLinkId},
};
use xdp_common::{
    COUNTERS_MAP_NAME, GEN_COUNTER_MAP_NAME, GEN_GLOBAL_NAME, GEN_PROGRAM_NAME, GenConfig, MAX_QUEUES, PROGRAM_NAME,
    ProgCounters, QueueCounters, STEER_GLOBAL_NAME, STEER_RX_METADATA, SteerConfig, XSK_MAP_NAME,
};

use crate::{
    config::{SteerFilter, XdpMode},
    devbound,
};

/// The XDP object built from `xdp-ebpf` by build.rs. Its XDP RX metadata kfunc calls
/// are unresolved: aya is given [`stub_object`] or, bound to a device, [`kfunc_object`].
static STEER_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xdpipe-steer"));

/// The object with its kfunc calls replaced by `r0 = -EOPNOTSUPP` (the kernel refuses
/// them in a program not bound to a device): what aya loads.
fn stub_object() -> Result<&'static [u8], LoaderError> {
    static OBJ: std::sync::OnceLock<Result<devbound::ObjectBytes, String>> = std::sync::OnceLock::new();
    OBJ.get_or_init(|| devbound::patch_kfunc_calls(STEER_OBJECT, None).map(|(o, _)| o).map_err(|e| e.to_string()))
        .as_ref()
        .map(|o| o.bytes())
        .map_err(|e| LoaderError::Patch(e.clone()))
}

/// The object with its kfunc calls resolved against the running kernel's BTF, if it has
/// at least one of them: for a program bound to a device.
fn kfunc_object() -> Option<&'static [u8]> {
    static OBJ: std::sync::OnceLock<Option<devbound::ObjectBytes>> = std::sync::OnceLock::new();
    OBJ.get_or_init(|| {
        let ids = devbound::kernel_kfunc_ids()?;
        match devbound::patch_kfunc_calls(STEER_OBJECT, Some(ids)) {
            Ok((o, n)) if n > 0 => Some(o),
            Ok(_) => None,
            Err(e) => {
                log::warn!("{e}");
                None
            }
        }
    })
    .as_ref()
    .map(|o| o.bytes())
}

/// Why loading, attaching or running one of xdpipe's XDP programs failed.
#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    /// `iface` has no ifindex in this network namespace.
    #[error("no interface named {iface:?} in this network namespace; list them with `ip link`")]
    NoSuchInterface {
        /// The interface asked for.
        iface: String,
    },
    /// The attach failed with EBUSY or EEXIST: another XDP program is on `iface`.
    #[error(
        "{iface} already has an XDP program attached; xdpipe will not replace another program. \
         See it with `ip link show dev {iface}` or `bpftool net`, and detach it first \
         (`ip link set dev {iface} xdp off`) if it is yours to remove"
    )]
    AlreadyAttached {
        /// The interface.
        iface: String,
    },
    /// A native (driver-mode) attach failed with EOPNOTSUPP: the driver has no XDP support.
    #[error(
        "the driver of {iface} has no native XDP support ({source}); use --xdp-mode skb (generic \
         XDP) or --xdp-mode auto"
    )]
    NativeUnsupported {
        /// The interface.
        iface: String,
        /// The EOPNOTSUPP error.
        source: io::Error,
    },
    /// Parsing the embedded object, or loading (verifying) a program into the kernel, failed.
    #[error("loading the XDP program failed (are you root, with CAP_BPF and CAP_NET_ADMIN?)")]
    Load(#[source] aya::EbpfError),
    /// Attaching failed for a reason other than [`LoaderError::AlreadyAttached`] or
    /// [`LoaderError::NativeUnsupported`].
    #[error("attaching the XDP program to {iface} in {mode:?} mode failed")]
    Attach {
        /// The interface.
        iface: String,
        /// The mode of the last attempt (never `Auto`).
        mode: XdpMode,
        /// aya's error.
        #[source]
        source: ProgramError,
    },
    /// The embedded object lacks a map the code needs.
    #[error("XDP object is missing {what}; the build is broken")]
    Missing {
        /// Which map, e.g. `the XSKMAP`.
        what: &'static str,
    },
    /// The embedded object has no XDP program of this name.
    #[error("the XDP object has no XDP program named {0}; the build is broken")]
    NoProgram(&'static str),
    /// Opening, reading or updating a BPF map failed.
    #[error("map {map}: {source}")]
    Map {
        /// The map's name in the object.
        map: &'static str,
        /// aya's error.
        #[source]
        source: MapError,
    },
    /// The in-kernel generator's BPF_PROG_RUN failed (other than EINTR).
    #[error(
        "running the in-kernel generator (BPF_PROG_RUN, live frames) failed: {source}; it needs \
         Linux 5.18 or newer"
    )]
    LiveRun {
        /// aya's error.
        #[source]
        source: ProgramError,
    },
    /// [`SteerProbe::matches`]'s BPF_PROG_RUN of the steering program failed.
    #[error("running the steering program on a test frame (BPF_PROG_RUN) failed: {source}")]
    TestRun {
        /// aya's error.
        #[source]
        source: ProgramError,
    },
    /// [`SteerProbe::matches`]: the steering program did not return XDP_PASS, or did not
    /// count the frame exactly once.
    #[error(
        "the steering program returned action {action} and counted the frame {counted} times (expected XDP_PASS, once); the build is broken"
    )]
    ProbeVerdict {
        /// The XDP action the program returned.
        action: u32,
        /// How many times its `seen` counter grew for the frame.
        counted: u64,
    },
    /// The embedded object's kfunc calls could not be rewritten.
    #[error("{0}")]
    Patch(String),
    /// A queue id at or above `MAX_QUEUES`, the size of the XSKMAP and counters map.
    #[error("queue {queue} is beyond the program's {MAX_QUEUES} queue slots")]
    QueueOutOfRange {
        /// The queue id asked for.
        queue: u32,
    },
}

/// The steering program, attached to one interface.
pub struct Steering {
    ebpf: Ebpf,
    iface: String,
    mode: XdpMode,
    link: Option<Attachment>,
    /// Queues with a socket in the XSKMAP.
    bound: Vec<u32>,
}

/// How the steering program is attached.
enum Attachment {
    /// aya loaded and attached it (not bound to the device: no RX metadata).
    Aya(XdpLinkId),
    /// Loaded bound to the device with its metadata kfuncs ([`devbound`]); closing the
    /// link detaches it.
    Bound { _prog: std::os::fd::OwnedFd, _link: std::os::fd::OwnedFd },
}

impl Steering {
    /// Loads the program with `filter` baked in and attaches it to `iface`. `XdpMode::Auto`
    /// tries native first and falls back to skb; [`Steering::mode`] says which took.
    /// If `iface` had carrier before, returns once it has it again (up to 10 s): physical
    /// drivers (igb, ixgbe, i40e...) reset the device to attach a native program, and
    /// frames sent meanwhile would be lost uncounted.
    ///
    /// With `rx_metadata`, in native mode on a driver with the XDP RX metadata kfuncs, the
    /// program is loaded bound to the device and writes each redirected frame's
    /// [`xdp_common::RxMeta`] ([`Steering::rx_metadata`] says whether it does). Without,
    /// it does no metadata work at all (the kfuncs and the area cost about a sixth of
    /// native rxdrop's rate on veth).
    pub fn attach(iface: &str, mode: XdpMode, filter: SteerFilter, rx_metadata: bool) -> Result<Self, LoaderError> {
        let ifindex =
            crate::sys::ifindex(iface).ok_or_else(|| LoaderError::NoSuchInterface { iface: iface.to_owned() })?;
        let had_carrier = crate::sys::iface_up_running(iface) == Some((true, true));
        if mode != XdpMode::Skb && rx_metadata {
            match Self::attach_dev_bound(iface, ifindex, filter) {
                Ok(Some(s)) => {
                    if had_carrier {
                        crate::sys::wait_for_carrier(iface, std::time::Duration::from_secs(10));
                    }
                    return Ok(s);
                }
                Ok(None) => {}
                Err(e @ LoaderError::AlreadyAttached { .. }) => return Err(e),
                Err(e @ LoaderError::NativeUnsupported { .. }) if mode == XdpMode::Native => return Err(e),
                Err(e) => log::info!("{iface}: {e}; attaching without XDP RX metadata"),
            }
        }
        // Asked for but not bound (skb mode, no kfuncs, a bind that failed): frames carry
        // the area, saying "no values".
        let flags = if rx_metadata { STEER_RX_METADATA } else { 0 };
        let mut ebpf = load_program(STEER_GLOBAL_NAME, &SteerConfig { flags, ..filter.config() }, PROGRAM_NAME)?;
        let prog = xdp_program(&mut ebpf, PROGRAM_NAME)?;

        let tries: &[XdpMode] = match mode {
            XdpMode::Auto => &[XdpMode::Native, XdpMode::Skb],
            XdpMode::Skb => &[XdpMode::Skb],
            XdpMode::Native => &[XdpMode::Native],
        };
        let mut last = None;
        for &m in tries {
            let aya_mode = if m == XdpMode::Skb { AyaXdpMode::Skb } else { AyaXdpMode::Driver };
            match prog.attach_to_if_index(ifindex, aya_mode) {
                Ok(link) => {
                    log::info!("attached {PROGRAM_NAME} to {iface} in {m:?} mode, filter {filter}");
                    if had_carrier {
                        crate::sys::wait_for_carrier(iface, std::time::Duration::from_secs(10));
                    }
                    return Ok(Self {
                        ebpf,
                        iface: iface.to_owned(),
                        mode: m,
                        link: Some(Attachment::Aya(link)),
                        bound: Vec::new(),
                    });
                }
                Err(e) => last = Some(classify_attach_error(iface, m, e)),
            }
            if matches!(last, Some(LoaderError::AlreadyAttached { .. })) {
                break;
            }
        }
        Err(last.expect("at least one mode tried"))
    }

    /// Native mode, bound to the device so the metadata kfuncs reach the driver. Ok(None)
    /// if the kernel has none of them (nothing to gain); an error if loading or attaching
    /// failed (the caller falls back to the unbound program, without metadata).
    fn attach_dev_bound(iface: &str, ifindex: u32, filter: SteerFilter) -> Result<Option<Self>, LoaderError> {
        let Some(object) = kfunc_object() else { return Ok(None) };
        // A device that implements none of the kfuncs would get the kernel's defaults
        // (-EOPNOTSUPP) bound or not: keep aya's program. Unknown (no netdev family):
        // try, the kernel decides.
        if crate::netdev::xdp_features(ifindex).is_ok_and(|f| f.rx_metadata.is_empty()) {
            return Ok(None);
        }
        let config = SteerConfig { flags: STEER_RX_METADATA, ..filter.config() };
        let ebpf = EbpfLoader::new()
            .override_global(STEER_GLOBAL_NAME, &config, true)
            .load(stub_object()?)
            .map_err(LoaderError::Load)?;
        let prog = devbound::load_dev_bound(&ebpf, object, PROGRAM_NAME, ifindex)
            .map_err(|e| LoaderError::Patch(e.to_string()))?;
        const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
        let link =
            devbound::attach_link(std::os::fd::AsFd::as_fd(&prog), ifindex, XDP_FLAGS_DRV_MODE).map_err(|e| match e
                .raw_os_error()
            {
                Some(libc::EBUSY) | Some(libc::EEXIST) => LoaderError::AlreadyAttached { iface: iface.to_owned() },
                Some(libc::EOPNOTSUPP) => LoaderError::NativeUnsupported { iface: iface.to_owned(), source: e },
                _ => LoaderError::Patch(format!("attaching the device-bound program to {iface}: {e}")),
            })?;
        log::info!(
            "attached {PROGRAM_NAME} to {iface} in Native mode, bound to the device (RX metadata), filter {filter}"
        );
        Ok(Some(Self {
            ebpf,
            iface: iface.to_owned(),
            mode: XdpMode::Native,
            link: Some(Attachment::Bound { _prog: prog, _link: link }),
            bound: Vec::new(),
        }))
    }

    /// True if the program was loaded bound to the device, so the driver's XDP RX
    /// metadata kfuncs run (frames then carry an `RxMeta` with the values the driver has).
    /// False: frames carry no `RxMeta` (not asked for, skb mode, or no kfuncs).
    pub fn rx_metadata(&self) -> bool {
        matches!(self.link, Some(Attachment::Bound { .. }))
    }

    /// The interface the program is attached to.
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// The mode the program runs in (never `Auto`).
    pub fn mode(&self) -> XdpMode {
        self.mode
    }

    /// Steers `queue`'s matched frames to the AF_XDP socket `fd`.
    pub fn bind_socket(&mut self, queue: u32, fd: RawFd) -> Result<(), LoaderError> {
        if queue >= MAX_QUEUES {
            return Err(LoaderError::QueueOutOfRange { queue });
        }
        let map = self.ebpf.map_mut(XSK_MAP_NAME).ok_or(LoaderError::Missing { what: "the XSKMAP" })?;
        let mut xsks = XskMap::try_from(map).map_err(|source| LoaderError::Map { map: XSK_MAP_NAME, source })?;
        xsks.set(queue, fd, 0).map_err(|source| LoaderError::Map { map: XSK_MAP_NAME, source })?;
        self.bound.push(queue);
        Ok(())
    }

    /// Takes every socket out of the XSKMAP: from then on the program passes what it
    /// would have redirected (counted as no-socket), so the sockets' counts stop growing
    /// while their workers drain. Returns once the program runs that still found a socket
    /// have ended and their frames are on its RX ring ([`crate::sys::wait_for_in_flight_xdp`]):
    /// a worker that drains its ring after this misses none of them. Errors are ignored:
    /// the detach that follows ends the redirects anyway.
    pub fn unbind_all(&mut self) {
        let Some(map) = self.ebpf.map_mut(XSK_MAP_NAME) else { return };
        let Ok(mut xsks) = XskMap::try_from(map) else { return };
        if self.bound.is_empty() {
            return;
        }
        for q in self.bound.drain(..) {
            let _ = xsks.unset(q);
        }
        crate::sys::wait_for_in_flight_xdp();
    }

    /// The program's counters for `queue`, summed over CPUs.
    pub fn counters(&self, queue: u32) -> Result<QueueCounters, LoaderError> {
        if queue >= MAX_QUEUES {
            return Err(LoaderError::QueueOutOfRange { queue });
        }
        read_counters(&self.ebpf, queue)
    }

    /// Detaches now (also done on drop).
    pub fn detach(&mut self) {
        match self.link.take() {
            None => {}
            Some(Attachment::Bound { .. }) => {
                // Dropping the link's fd (here) detached it.
                log::info!("detached {PROGRAM_NAME} from {}", self.iface);
            }
            Some(Attachment::Aya(link)) => {
                let prog: Option<&mut Xdp> = self.ebpf.program_mut(PROGRAM_NAME).and_then(|p| p.try_into().ok());
                match prog.map(|p| p.detach(link)) {
                    Some(Ok(())) => log::info!("detached {PROGRAM_NAME} from {}", self.iface),
                    Some(Err(e)) => log::warn!("detaching from {}: {e}", self.iface),
                    None => {}
                }
            }
        }
    }
}

impl Drop for Steering {
    fn drop(&mut self) {
        self.detach();
    }
}

/// The steering program's counters for `queue` (below MAX_QUEUES), summed over CPUs.
fn read_counters(ebpf: &Ebpf, queue: u32) -> Result<QueueCounters, LoaderError> {
    let map = ebpf.map(COUNTERS_MAP_NAME).ok_or(LoaderError::Missing { what: "the counters map" })?;
    let arr: PerCpuArray<_, ProgCounters> =
        PerCpuArray::try_from(map).map_err(|source| LoaderError::Map { map: COUNTERS_MAP_NAME, source })?;
    let per_cpu = arr.get(&queue, 0).map_err(|source| LoaderError::Map { map: COUNTERS_MAP_NAME, source })?;
    let mut sum = QueueCounters::default();
    for c in per_cpu.iter() {
        sum.add_prog(c);
    }
    Ok(sum)
}

/// The embedded object, with its read-only global `global` set to `value`, and its XDP
/// program `program` loaded into the kernel (verified, attached nowhere).
fn load_program<T: aya::Pod>(global: &str, value: &T, program: &'static str) -> Result<Ebpf, LoaderError> {
    let mut ebpf =
        EbpfLoader::new().override_global(global, value, true).load(stub_object()?).map_err(LoaderError::Load)?;
    xdp_program(&mut ebpf, program)?.load().map_err(|e| LoaderError::Load(aya::EbpfError::ProgramError(e)))?;
    Ok(ebpf)
}

/// The XDP program `name` of the embedded object.
fn xdp_program<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut Xdp, LoaderError> {
    ebpf.program_mut(name).ok_or(LoaderError::NoProgram(name))?.try_into().map_err(|_| LoaderError::NoProgram(name))
}

fn classify_attach_error(iface: &str, mode: XdpMode, e: ProgramError) -> LoaderError {
    let errno = match &e {
        ProgramError::SyscallError(s) => s.io_error.raw_os_error(),
        _ => None,
    };
    match errno {
        Some(libc::EBUSY) | Some(libc::EEXIST) => LoaderError::AlreadyAttached { iface: iface.to_owned() },
        Some(libc::EOPNOTSUPP) if mode == XdpMode::Native => {
            let source = io::Error::from_raw_os_error(libc::EOPNOTSUPP);
            LoaderError::NativeUnsupported { iface: iface.to_owned(), source }
        }
        _ => LoaderError::Attach { iface: iface.to_owned(), mode, source: e },
    }
}

/// The steering program loaded but attached nowhere, run on given frames with
/// BPF_PROG_RUN: what a filter decides for a frame, without traffic or an interface.
pub struct SteerProbe {
    ebpf: Ebpf,
}

impl SteerProbe {
    /// Loads the steering program with `filter` baked in (needs CAP_BPF; attaches nothing).
    pub fn load(filter: SteerFilter) -> Result<Self, LoaderError> {
        Ok(Self { ebpf: load_program(STEER_GLOBAL_NAME, &filter.config(), PROGRAM_NAME)? })
    }

    /// Runs the program once on `frame` (queue 0, no socket bound) and says whether the
    /// filter matched it: a matched frame finds no socket and is counted `no_socket`, an
    /// unmatched one `unmatched`; both are passed.
    pub fn matches(&mut self, frame: &[u8]) -> Result<bool, LoaderError> {
        use aya::programs::{TestRun as _, TestRunOptions};
        let before = self.counters()?;
        let prog = xdp_program(&mut self.ebpf, PROGRAM_NAME)?;
        let out = prog
            .test_run(TestRunOptions { data_in: Some(frame), repeat: 1, ..TestRunOptions::new() })
            .map_err(|source| LoaderError::TestRun { source })?;
        let after = self.counters()?;
        // The program never drops: with no socket bound, every frame is passed, and
        // counted exactly once.
        const XDP_PASS: u32 = 2;
        if out.return_value != XDP_PASS || after.seen != before.seen + 1 {
            return Err(LoaderError::ProbeVerdict { action: out.return_value, counted: after.seen - before.seen });
        }
        Ok(after.matched > before.matched)
    }

    fn counters(&self) -> Result<QueueCounters, LoaderError> {
        read_counters(&self.ebpf, 0)
    }
}

/// The in-kernel generator: `xdpipe_gen` run with BPF_PROG_RUN and
/// BPF_F_TEST_XDP_LIVE_FRAMES, so the kernel transmits each run's frame (XDP_TX) out of
/// the interface named in the context, as xdp-trafficgen does. Nothing is attached.
pub struct LiveGen {
    ebpf: Ebpf,
}

/// The kernel's `struct xdp_md`, passed as the test run's context.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct XdpMd {
    data: u32,
    data_end: u32,
    data_meta: u32,
    ingress_ifindex: u32,
    rx_queue_index: u32,
    egress_ifindex: u32,
}

impl LiveGen {
    /// Loads `xdpipe_gen` with `cfg` (flows and UDP ports) set as its read-only global.
    pub fn load(cfg: GenConfig) -> Result<Self, LoaderError> {
        Ok(Self { ebpf: load_program(GEN_GLOBAL_NAME, &cfg, GEN_PROGRAM_NAME)? })
    }

    /// Transmits `frame` `repeat` times out of `ifindex` (live frames, `batch` per
    /// kernel batch, at most 256). Returns early on a signal; [`LiveGen::count`] says how
    /// many frames the program handled.
    pub fn run(&mut self, frame: &[u8], ifindex: u32, repeat: u32, batch: u32) -> Result<(), LoaderError> {
        use aya::programs::{TestRun as _, TestRunAttrs, TestRunOptions};
        let md = XdpMd { data_end: frame.len() as u32, ingress_ifindex: ifindex, ..Default::default() };
        let ctx: Vec<u8> =
            [md.data, md.data_end, md.data_meta, md.ingress_ifindex, md.rx_queue_index, md.egress_ifindex]
                .iter()
                .flat_map(|v| v.to_ne_bytes())
                .collect();
        let prog = xdp_program(&mut self.ebpf, GEN_PROGRAM_NAME)?;
        let opts = TestRunOptions {
            data_in: Some(frame),
            ctx_in: Some(&ctx),
            repeat,
            attrs: TestRunAttrs::new().xdp_live_frames(batch.clamp(1, 256)),
            ..TestRunOptions::new()
        };
        match prog.test_run(opts) {
            Ok(_) => Ok(()),
            Err(ProgramError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::EINTR) => Ok(()),
            Err(source) => Err(LoaderError::LiveRun { source }),
        }
    }

    /// Frames this instance of the program has stamped and returned XDP_TX for.
    pub fn count(&self) -> Result<u64, LoaderError> {
        let map = self.ebpf.map(GEN_COUNTER_MAP_NAME).ok_or(LoaderError::Missing { what: "the generator counter" })?;
        let arr: aya::maps::Array<_, u64> =
            aya::maps::Array::try_from(map).map_err(|source| LoaderError::Map { map: GEN_COUNTER_MAP_NAME, source })?;
        arr.get(&0, 0).map_err(|source| LoaderError::Map { map: GEN_COUNTER_MAP_NAME, source })
    }
}

/// After a transmit-only socket bound on `iface`: the program it needs, if it bound
/// zero-copy: `early` (attached before the bind, so a driver's reset on attach could not
/// catch a bound socket) or, failing that, one attached now. A copy-mode socket needs
/// none, and `early` is detached.
pub fn keep_zero_copy_tx_program(iface: &str, early: Option<Steering>, zerocopy: bool) -> Option<Steering> {
    if !zerocopy {
        return None;
    }
    early.or_else(|| zero_copy_tx_program(iface))
}

/// Whether a socket bound with `bind` on `iface` may come out zero-copy: asked for it, or
/// `auto` on a driver that declares xsk-zerocopy (netlink), and for a multi-buffer socket
/// (`sg`) also a zc-max-segs above 1: the kernel binds such a socket in copy mode
/// otherwise (xp_assign_dev). If the features cannot be read (kernels before 6.3 have no
/// netdev family), it may.
pub fn may_bind_zero_copy(iface: &str, bind: crate::config::BindMode, sg: bool) -> bool {
    use crate::config::BindMode;
    match bind {
        BindMode::Copy => false,
        BindMode::ZeroCopy => true,
        BindMode::Auto => crate::sys::ifindex(iface)
            .and_then(|i| crate::netdev::xdp_features(i).ok())
            .is_none_or(|f| f.xdp.contains(&"xsk-zerocopy") && (!sg || f.zc_max_segs.unwrap_or(1) > 1)),
    }
}

/// Drivers such as igb run AF_XDP zero-copy TX only while an XDP program is attached
/// (without one the frames sit in the TX ring, never completed). For a socket that only
/// transmits on `iface`, this attaches xdpipe's steering program there (it passes
/// everything not for a socket to the kernel) unless a program is attached already.
/// The link goes with the returned value, or with the process.
pub fn zero_copy_tx_program(iface: &str) -> Option<Steering> {
    if crate::preflight::attached_program(iface).ok().flatten().is_some() {
        // Somebody's program (say `xdpipe run` on the same port) is there already.
        return None;
    }
    match Steering::attach(iface, crate::config::XdpMode::Native, crate::config::SteerFilter::default(), false) {
        Ok(s) => Some(s),
        Err(e) => {
            log::warn!(
                "{iface}: zero-copy bind, but no XDP program could be attached ({e}); some drivers (igb) then never send"
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::STEER_OBJECT;

    /// The BPF instructions of the object's section `name` (ELF64, little-endian).
    fn section<'a>(elf: &'a [u8], name: &str) -> Option<&'a [u8]> {
        let u16_at = |o: usize| u16::from_le_bytes(elf[o..o + 2].try_into().unwrap()) as usize;
        let u32_at = |o: usize| u32::from_le_bytes(elf[o..o + 4].try_into().unwrap()) as usize;
        let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap()) as usize;
        let (shoff, shentsize, shnum, shstrndx) = (u64_at(0x28), u16_at(0x3a), u16_at(0x3c), u16_at(0x3e));
        let header = |i: usize| shoff + i * shentsize;
        let strtab = u64_at(header(shstrndx) + 0x18);
        (0..shnum).map(header).find_map(|h| {
            let at = strtab + u32_at(h);
            let end = at + elf[at..].iter().position(|&b| b == 0)?;
            (&elf[at..end] == name.as_bytes()).then(|| &elf[u64_at(h + 0x18)..][..u64_at(h + 0x20)])
        })
    }

    /// The steering fast path reads the ethertype and the IPv4 version byte as one u32
    /// at offset 12 (`ldxw rD, [rS + 12]`, opcode 0x61) only if bpf-linker honoured
    /// `allows-misaligned-mem-access` (xdp-ebpf/build.rs); otherwise it is byte loads.
    #[test]
    fn the_program_was_linked_with_unaligned_loads() {
        assert_eq!(&STEER_OBJECT[..4], b"\x7fELF");
        let xdp = section(STEER_OBJECT, "xdp.frags").expect("the steering program is in an xdp.frags section");
        let word_load_at_12 =
            xdp.chunks_exact(8).any(|insn| insn[0] == 0x61 && i16::from_le_bytes([insn[2], insn[3]]) == 12);
        assert!(
            word_load_at_12,
            "no 32-bit load at offset 12 in the xdp.frags section: the link lost allows-misaligned-mem-access"
        );
    }
}
