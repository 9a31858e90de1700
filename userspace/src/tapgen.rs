//! The tap target's generator: writes the generator's frames (same templates, flows,
//! stamps and sequence numbers as `xdpipe gen`, so the receiver counts them the same way)
//! to a tap's /dev/net/tun fd, as QEMU writes a guest's transmitted frames. One write(2)
//! per frame is inherent to tun from userspace (it takes no batch; only vhost-net, in the
//! kernel, hands it several). Paced like the xsk engine: due = elapsed x rate.
use std::{
    io::Write as _,
    os::fd::OwnedFd,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering::Relaxed},
    },
};

use crate::{
    generator::{Engine, GenConfig, GenError, GenQueueSummary, GenSummary, SizeSpec, plan_flows},
    sys,
    wire::{
        stamp::Stamp,
        udpgen::{FCS_LEN, FrameTemplate, UdpFlow},
    },
};

/// Writes `cfg`'s frames to the tap `fd` (source MAC `src_mac`) until its count, its
/// duration or `stop`; one flow set, one "queue" (the fd). `cfg.iface` names the tap in
/// the summary. A write the tap refuses (EAGAIN: its queue towards the stack is full, or
/// EIO: it is down) is retried once the next frame is due, so every counted frame was
/// taken by the kernel.
pub fn write_tap(
    fd: &OwnedFd,
    cfg: &GenConfig,
    src_mac: [u8; 6],
    stop: Arc<AtomicBool>,
) -> Result<GenSummary, GenError> {
    let SizeSpec::Fixed(size) = cfg.sizes else {
        return Err(GenError::Worker("the tap target's writer sends one frame size: give --sizes N, not imix".into()));
    };
    if cfg.flows == 0 {
        return Err(GenError::Flows);
    }
    let target_pps = cfg.rate.pps(cfg.sizes.mean());
    let plan = plan_flows(
        &[0],
        cfg.cores.as_ref().map(|c| &c.ids()[..1]),
        cfg.flows,
        (cfg.src_port, cfg.dst_port),
        cfg.count,
        target_pps,
    )?;
    let mut templates = Vec::with_capacity(cfg.flows as usize);
    for f in 0..cfg.flows {
        let flow = UdpFlow {
            src_mac,
            dst_mac: cfg.dst_mac,
            src_ip: cfg.src_ip,
            dst_ip: cfg.dst_ip,
            src_port: cfg.src_port.wrapping_add(f),
            dst_port: cfg.dst_port.wrapping_add(f % 256),
            vlan: cfg.vlan,
        };
        let t = FrameTemplate::new(&flow, size - FCS_LEN)
            .map_err(|_| GenError::Worker(format!("frame size {size}: no UDP frame of that size can be built")))?;
        templates.push(t);
    }
    let mut file =
        std::fs::File::from(fd.try_clone().map_err(|e| GenError::Worker(format!("duplicating the tap fd: {e}")))?);
    if let Some(c) = plan[0].core
        && !core_affinity::set_for_current(core_affinity::CoreId { id: c as usize })
    {
        log::warn!("could not pin the tap writer to core {c}");
    }
    let limit = cfg.count.unwrap_or(u64::MAX);
    let deadline = cfg.duration.map(|d| d.as_nanos() as u64);
    let mut buf = vec![0u8; size];
    let mut seqs = vec![0u32; cfg.flows as usize];
    let mut per_flow = vec![0u64; cfg.flows as usize];
    let (mut sent, mut bytes, mut refused) = (0u64, 0u64, 0u64);
    let cpu0 = sys::thread_cpu_ns();
    let start = sys::monotonic_ns();
    while sent < limit && !stop.load(Relaxed) {
        let now = sys::monotonic_ns();
        let elapsed = now - start;
        if deadline.is_some_and(|d| elapsed >= d) {
            break;
        }
        if let Some(pps) = target_pps {
            let due = (elapsed as f64 * pps / 1e9) as u64 + 1;
            if due <= sent {
                let wait = start + ((sent as f64 + 1.0) * 1e9 / pps) as u64;
                std::thread::sleep(std::time::Duration::from_nanos(wait.saturating_sub(now).min(1_000_000)));
                continue;
            }
        }
        let flow = (sent % cfg.flows as u64) as usize;
        let stamp = Stamp { flow: flow as u16, seq: seqs[flow], tx_ns: now };
        let n = templates[flow].write(&mut buf, &stamp);
        match file.write(&buf[..n]) {
            Ok(w) if w == n => {
                seqs[flow] = seqs[flow].wrapping_add(1);
                per_flow[flow] += 1;
                sent += 1;
                bytes += n as u64;
            }
            Ok(w) => return Err(GenError::Worker(format!("the tap took {w} of a {n}-byte frame"))),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::ENOBUFS)) => {
                refused += 1;
                std::hint::spin_loop();
            }
            Err(e) => return Err(GenError::Worker(format!("writing a frame to tap {}: {e}", cfg.iface))),
        }
    }
    let secs = (sys::monotonic_ns() - start) as f64 / 1e9;
    if refused > 0 {
        log::info!("tap {}: {refused} write(s) refused and retried", cfg.iface);
    }
    let tx_offload = crate::generator::TxOffloadReport {
        asked: crate::generator::TxOffload::Software,
        stamps: Default::default(),
        xsk_features: None,
        checksum: "software",
        tx_timestamps: "none",
        why: "the tap writer writes each frame to /dev/net/tun: no AF_XDP TX ring, so no TX metadata".into(),
    };
    let totals = GenSummary::totals(cfg, Engine::Xsk, (sent, sent, bytes), secs, tx_offload);
    let (pps, mbps) = (totals.pps, totals.mbps);
    Ok(GenSummary {
        wakeups: sent,
        cpu_ns: sys::thread_cpu_ns() - cpu0,
        sent_per_flow: per_flow,
        per_queue: vec![GenQueueSummary { plan: plan[0].clone(), sent, completed: sent, bytes, pps, mbps }],
        ..totals
    })
}
