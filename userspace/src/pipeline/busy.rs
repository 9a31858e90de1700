//! Kernel busy polling's device side ([`crate::config::PollWait::BusyPoll`]): each of the
//! device's NAPIs gets napi_defer_hard_irqs and gro_flush_timeout, per NAPI over the
//! netdev family's `napi-set` (Linux 6.13+) or, where that is missing, through the
//! device's sysfs knobs. Every value is read first and an undo action that writes it back
//! is registered in [`crate::teardown`] before it is changed, so the normal end, an
//! error, a panic and the second signal all restore it.
//!
//! After SIGKILL nothing runs in the process, so the old values are also written to a
//! knob record ([`crate::knobs`]) before they change, and `xdpipe cleanup` restores them
//! once the owner is gone (on veth the NAPIs exist only while the XDP program is
//! attached, and the kernel detaches it when the killed process's BPF link closes, so
//! there they mostly go by themselves).
use serde::Serialize;

use crate::{
    config::{BusyPollKnobs, BusyPollSettings},
    net::{
        NetError,
        netdev::{NapiConfig, Netdev},
        sysfs,
    },
    teardown::{self, Undo},
};

/// What busy-poll setup did, for the run summary.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct BusyPollInfo {
    /// The settings asked for (socket options and device knobs).
    pub settings: BusyPollSettings,
    /// How the device knobs were set: `napi-set` (per NAPI, netdev netlink) or `sysfs`
    /// (the device's napi_defer_hard_irqs and gro_flush_timeout files).
    pub mechanism: &'static str,
    /// The NAPI ids set (napi-set), or those the device reported (sysfs).
    pub napi_ids: Vec<u32>,
    /// The values found before, restored at the end: (napi id or 0 for the device,
    /// napi_defer_hard_irqs, gro_flush_timeout ns).
    pub previous: Vec<(u32, u32, u64)>,
    /// Whether epoll IRQ suspension took (`--irq-suspend-us`) and with what value, as
    /// napi-get reads it back after the napi-set; without the flag, that it is not used
    /// (the recvfrom busy poll), or that the kernel lacks it.
    pub irq_suspend: String,
    /// With `--irq-suspend-us`: (napi id, irq-suspend-timeout ns) found before, restored
    /// at the end.
    pub irq_suspend_previous: Vec<(u32, u64)>,
    /// Each socket's NAPI as the kernel's busy polling sees it (SO_INCOMING_NAPI_ID,
    /// read at setup); 0: the socket has none, and busy polling (recvfrom or epoll) runs
    /// no NAPI for it, so frames arrive as without it (on veth: the peer schedules the
    /// NAPI). A note says so.
    pub socket_napi_ids: Vec<u32>,
    /// Why the fallback (or a missing piece) was taken, when it was.
    pub notes: Vec<String>,
}

impl BusyPollInfo {
    /// Records the sockets' NAPI ids, with a note where busy polling has none to run.
    pub(super) fn set_socket_napi_ids(&mut self, ids: Vec<u32>) {
        if ids.contains(&0) {
            self.notes.push(
                "a socket has no NAPI id (SO_INCOMING_NAPI_ID 0; veth names none for its queues): busy polling runs no NAPI for it"
                    .into(),
            );
        }
        self.socket_napi_ids = ids;
    }
}

/// The device knobs as changed; restores them when dropped.
pub(super) struct BusyPollDevice {
    /// What was done.
    pub info: BusyPollInfo,
    undo: Option<Undo>,
}

impl BusyPollDevice {
    /// Restores the device's values now (before the XDP program detaches: a veth's NAPIs
    /// go with it).
    pub fn restore(mut self) {
        if let Some(u) = self.undo.take() {
            u.run();
        }
    }
}

/// Sets the knobs of `iface` (index `ifindex`, in the calling thread's namespace).
pub(super) fn apply(iface: &str, ifindex: u32, s: &BusyPollSettings) -> Result<BusyPollDevice, NetError> {
    if let Some(ns) = s.irq_suspend_ns {
        return apply_with_irq_suspend(iface, ifindex, s, ns);
    }
    let mut notes = Vec::new();
    let mut napi_ids = Vec::new();
    let mut irq_suspend = "kernel lacks it";
    if s.knobs == BusyPollKnobs::Sysfs {
        notes.push("--busy-poll-knobs sysfs: the device's sysfs files, napi-set not tried".into());
        return set_sysfs(iface, s).map(|d| d.finish(s, napi_ids, irq_suspend.into(), notes));
    }
    match Netdev::open().and_then(|mut nd| nd.napis(ifindex).map(|n| (nd, n))) {
        Ok((_, napis)) if napis.is_empty() => notes.push(format!(
            "{iface} reports no NAPI (veth has one only with native XDP): busy polling has nothing to drive"
        )),
        Ok((mut nd, napis)) => {
            napi_ids = napis.iter().map(|n| n.id).collect();
            if napis.iter().any(|n| n.irq_suspend_timeout_ns.is_some()) {
                irq_suspend = "not used (recvfrom busy polling; --irq-suspend-us uses epoll busy polling with it)";
            }
            if napis.iter().all(|n| n.defer_hard_irqs.is_some() && n.gro_flush_timeout_ns.is_some()) {
                match set_per_napi(&mut nd, iface, &napis, s) {
                    Ok(d) => return Ok(d.finish(s, napi_ids, irq_suspend.into(), notes)),
                    Err(e) => notes.push(format!("napi-set failed ({e}); using sysfs")),
                }
            } else {
                notes.push("napi-get reports no per-NAPI settings (Linux < 6.13); using sysfs".into());
            }
        }
        Err(e) => notes.push(format!("netdev napi-get unavailable ({e}); using sysfs")),
    }
    if s.knobs == BusyPollKnobs::Napi {
        return Err(unsupported(
            "setting the busy-poll knobs per NAPI (--busy-poll-knobs napi) of",
            iface,
            notes.join("; "),
            "; use --busy-poll-knobs sysfs or auto",
        ));
    }
    for n in &notes {
        log::info!("busy-poll on {iface}: {n}");
    }
    set_sysfs(iface, s).map(|d| d.finish(s, napi_ids, irq_suspend.into(), notes))
}

fn unsupported(op: &'static str, iface: &str, why: String, hint: &'static str) -> NetError {
    NetError::Io { op, what: iface.into(), source: std::io::Error::new(std::io::ErrorKind::Unsupported, why), hint }
}

/// `--irq-suspend-us`: napi-set only (sysfs has no irq-suspend-timeout), each NAPI's value
/// read back after the set; anything missing is refused, with nothing left changed.
fn apply_with_irq_suspend(
    iface: &str,
    ifindex: u32,
    s: &BusyPollSettings,
    ns: u64,
) -> Result<BusyPollDevice, NetError> {
    const OP: &str = "setting irq-suspend-timeout (--irq-suspend-us) on the NAPIs of";
    const HINT: &str =
        "; IRQ suspension needs Linux 6.13+ and a device with NAPI (veth: native XDP); drop --irq-suspend-us";
    if s.knobs == BusyPollKnobs::Sysfs {
        return Err(unsupported(OP, iface, "--busy-poll-knobs sysfs has no irq-suspend-timeout".into(), HINT));
    }
    let mut nd = Netdev::open()?;
    let napis = nd.napis(ifindex)?;
    if napis.is_empty() {
        return Err(unsupported(OP, iface, format!("{iface} reports no NAPI"), HINT));
    }
    if !napis
        .iter()
        .all(|n| n.defer_hard_irqs.is_some() && n.gro_flush_timeout_ns.is_some() && n.irq_suspend_timeout_ns.is_some())
    {
        return Err(unsupported(OP, iface, "napi-get reports no irq-suspend-timeout (Linux < 6.13)".into(), HINT));
    }
    let changed = set_per_napi(&mut nd, iface, &napis, s)?;
    // Whether it took: what napi-get says now (dropping `changed` on an error restores).
    let now = nd.napis(ifindex)?;
    let ids: Vec<u32> = napis.iter().map(|n| n.id).collect();
    for id in &ids {
        let got = now.iter().find(|n| n.id == *id).and_then(|n| n.irq_suspend_timeout_ns);
        if got != Some(ns) {
            return Err(unsupported(
                OP,
                iface,
                format!("napi {id} reads irq-suspend-timeout {got:?} after napi-set of {ns} ns"),
                HINT,
            ));
        }
    }
    let irq_suspend = format!("on: irq-suspend-timeout {ns} ns on napi {ids:?} (read back), epoll busy polling");
    let mut d = changed.finish(s, ids, irq_suspend, Vec::new());
    d.info.irq_suspend_previous = napis.iter().map(|n| (n.id, n.irq_suspend_timeout_ns.unwrap_or(0))).collect();
    Ok(d)
}

/// The undo and the values it restores.
struct Changed {
    mechanism: &'static str,
    previous: Vec<(u32, u32, u64)>,
    undo: Undo,
}

impl Changed {
    fn finish(
        self,
        s: &BusyPollSettings,
        napi_ids: Vec<u32>,
        irq_suspend: String,
        notes: Vec<String>,
    ) -> BusyPollDevice {
        BusyPollDevice {
            info: BusyPollInfo {
                settings: *s,
                mechanism: self.mechanism,
                napi_ids,
                previous: self.previous,
                irq_suspend,
                irq_suspend_previous: Vec::new(),
                socket_napi_ids: Vec::new(),
                notes,
            },
            undo: Some(self.undo),
        }
    }
}

/// Sets each NAPI's defer_hard_irqs and gro_flush_timeout, and irq-suspend-timeout where
/// `s` asks for it (then the old value of that is recorded and restored too).
fn set_per_napi(nd: &mut Netdev, iface: &str, napis: &[NapiConfig], s: &BusyPollSettings) -> Result<Changed, NetError> {
    // The undo gets its own socket, opened here (so in this namespace) and usable from
    // any thread.
    let restore_nd = std::sync::Mutex::new(Netdev::open()?);
    let old: Vec<NapiConfig> = napis
        .iter()
        .map(|n| NapiConfig {
            id: n.id,
            defer_hard_irqs: n.defer_hard_irqs,
            gro_flush_timeout_ns: n.gro_flush_timeout_ns,
            irq_suspend_timeout_ns: s.irq_suspend_ns.and(n.irq_suspend_timeout_ns),
        })
        .collect();
    let previous =
        old.iter().map(|n| (n.id, n.defer_hard_irqs.unwrap_or(0), n.gro_flush_timeout_ns.unwrap_or(0))).collect();
    let iface2 = iface.to_owned();
    // Recorded first, so `xdpipe cleanup` puts them back after a SIGKILL.
    let record = crate::knobs::record(
        &format!("the NAPI settings of {iface}"),
        old.iter()
            .map(|n| crate::knobs::Restore::Napi {
                id: n.id,
                defer_hard_irqs: n.defer_hard_irqs,
                gro_flush_timeout_ns: n.gro_flush_timeout_ns,
                irq_suspend_timeout_ns: n.irq_suspend_timeout_ns,
            })
            .collect(),
    )
    .map_err(|e| NetError::io("writing the knob record for", format!("the NAPI settings of {iface}"), e))?;
    let undo = teardown::register(format!("restoring the NAPI settings of {iface}"), move || {
        let mut nd = restore_nd.lock().unwrap_or_else(|p| p.into_inner());
        for n in &old {
            match nd.set(n) {
                Ok(()) => {}
                // The NAPI went with its device, or (veth) with the XDP program.
                Err(e) if e.errno() == Some(libc::ENOENT) => {}
                Err(e) => log::warn!("restoring napi {} of {iface2}: {e}", n.id),
            }
        }
        drop(record);
    });
    for n in napis {
        nd.set(&NapiConfig {
            id: n.id,
            defer_hard_irqs: Some(s.defer_hard_irqs),
            gro_flush_timeout_ns: Some(s.gro_flush_timeout_ns),
            irq_suspend_timeout_ns: s.irq_suspend_ns,
        })?;
    }
    Ok(Changed { mechanism: "napi-set", previous, undo })
}

const DEFER: &str = "napi_defer_hard_irqs";
const GRO: &str = "gro_flush_timeout";

fn set_sysfs(iface: &str, s: &BusyPollSettings) -> Result<Changed, NetError> {
    let ns = sysfs::current_netns()?;
    let label = "this thread's netns";
    let read = |knob: &str| -> Result<u64, NetError> {
        let v = sysfs::read_net_in(&ns, label, &format!("{iface}/{knob}"))?;
        v.parse().map_err(|_| NetError::Decode { op: "reading", what: format!("{iface}/{knob}"), detail: v })
    };
    let (defer, gro) = (read(DEFER)?, read(GRO)?);
    let ns2 = ns.try_clone().map_err(|e| NetError::io("duplicating", "the netns fd", e))?;
    let iface2 = iface.to_owned();
    let record = crate::knobs::record(
        &format!("{DEFER} and {GRO} of {iface}"),
        [(DEFER, defer), (GRO, gro)]
            .iter()
            .map(|(knob, v)| crate::knobs::Restore::Sysfs { rel: format!("{iface}/{knob}"), value: v.to_string() })
            .collect(),
    )
    .map_err(|e| NetError::io("writing the knob record for", format!("{DEFER} and {GRO} of {iface}"), e))?;
    let undo = teardown::register(format!("restoring {DEFER} and {GRO} of {iface}"), move || {
        for (knob, v) in [(DEFER, defer), (GRO, gro)] {
            if let Err(e) = sysfs::write_net_in(&ns2, label, &format!("{iface2}/{knob}"), &v.to_string()) {
                log::warn!("restoring {iface2}/{knob} to {v}: {e}");
            }
        }
        drop(record);
    });
    sysfs::write_net_in(&ns, label, &format!("{iface}/{DEFER}"), &s.defer_hard_irqs.to_string())?;
    sysfs::write_net_in(&ns, label, &format!("{iface}/{GRO}"), &s.gro_flush_timeout_ns.to_string())?;
    Ok(Changed { mechanism: "sysfs", previous: vec![(0, defer as u32, gro)], undo })
}
