//! Kernel-stack baselines on the same device as the AF_XDP trials, each on a testbed and
//! topology of its own ([`crate::topology`]) with no XDP program attached, so frames go
//! up the stack:
//! - UDP: xdpipe's generator (the tap writer on tap) sends; one thread pinned to a core
//!   receives through a kernel UDP socket bound to the receiving device's address, with
//!   recvmmsg(2), 64 datagrams a call. Only datagrams carrying the generator's stamp are
//!   counted. With the offloads off, rx-checksum is off too, so the kernel verifies every
//!   UDP checksum (a bad one would be dropped, and the count would fall short).
//! - TCP: a kernel sender (std `TcpStream`, 1 MiB writes) in the generator namespace and
//!   a kernel receiver in the receiver namespace across the same path; Gbit/s of payload.
//!   Not on tap: its far side is a file descriptor, with no kernel stack to send from.
//!
//! Offloads off: GRO, GSO/TSO, scatter-gather and checksum offloads on every device of
//! the path ([`crate::topology::Topology::offload_devices`]), each restored exactly (the
//! guard is dropped inside the device's namespace) before the testbed is removed.
#![allow(unsafe_code)]

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddrV4, TcpListener, TcpStream, UdpSocket},
    os::fd::AsRawFd as _,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    thread,
    time::{Duration, Instant},
};

use serde::Serialize;

use crate::{
    generator::GenConfig,
    net::{ethtool::OffloadGuard, ns::with_netns},
    sys,
    testbed::{Testbed, unique_name},
    topology::{self, Device, Topology},
    veth::{VethError, start_generator},
    wire::stamp::Stamp,
};

/// The features the `offloads off` baselines turn off, by kernel name.
pub const OFFLOADS_OFF: [&str; 9] = [
    "rx-gro",
    "rx-checksum",
    "tx-checksum-ip-generic",
    "tx-scatter-gather",
    "tx-tcp-segmentation",
    "tx-tcp6-segmentation",
    "tx-generic-segmentation",
    "tx-udp-segmentation",
    "rx-udp-gro-forwarding",
];

/// The TCP baseline's port on the receiving address.
pub const TCP_PORT: u16 = 5201;

/// One kernel UDP trial.
#[derive(Clone, Debug, Serialize)]
pub struct UdpTrial {
    /// Frames the generator sent.
    pub sent: u64,
    /// Datagrams with the generator's stamp the socket received.
    pub received: u64,
    /// The generator's rate.
    pub tx_pps: f64,
    /// Datagrams per second over the time they arrived.
    pub rx_pps: f64,
    /// CPU time of the receiving thread per datagram, ns (the softirq work on the
    /// generator's core is not in it).
    pub cpu_ns_per_pkt: Option<f64>,
}

/// One kernel TCP trial.
#[derive(Clone, Debug, Serialize)]
pub struct TcpTrial {
    /// Payload bytes received.
    pub bytes: u64,
    /// Seconds from the first byte to the end of the stream.
    pub secs: f64,
    /// Payload Gbit/s.
    pub gbps: f64,
}

fn io_err(what: &'static str) -> impl Fn(std::io::Error) -> VethError {
    move |source| VethError::Spawn { what, source }
}

/// Offloads off on every device of the path, restored (inside each namespace) on drop.
struct PathOffloads(Vec<(String, Option<OffloadGuard>)>);

impl PathOffloads {
    fn off(t: &Topology) -> Result<Self, VethError> {
        let mut v = PathOffloads(Vec::new());
        for (ns, iface) in &t.offload_devices {
            let g = with_netns(ns, || OffloadGuard::off(iface, &OFFLOADS_OFF))
                .map_err(|e| VethError::Device(format!("turning the offloads of {iface} (netns {ns}) off: {e}")))?;
            v.0.push((ns.clone(), Some(g)));
        }
        Ok(v)
    }
}

impl Drop for PathOffloads {
    fn drop(&mut self) {
        for (ns, g) in &mut self.0 {
            let g = g.take();
            let _ = with_netns(ns, move || {
                drop(g);
                Ok(())
            });
        }
    }
}

/// Why the kernel UDP baseline is not measured on netkit.
pub const NETKIT_NO_UDP: &str = "no kernel UDP baseline on netkit: frames the AF_XDP generator sends across a netkit pair reach the far end but never IP when no XDP program takes them (the peer's rx_dropped counts every one, Ip InReceives stays 0; seen on the guest's Debian 7.3 kernel), while kernel-sent packets (ping) pass";

fn testbed(device: Device) -> Result<(Testbed, Topology), VethError> {
    let tb = Testbed::create(&unique_name("k"), 1)?;
    let t = topology::build(&tb, device)?;
    Ok((tb, t))
}

fn pin(core: Option<u32>) {
    if let Some(c) = core
        && !core_affinity::set_for_current(core_affinity::CoreId { id: c as usize })
    {
        log::warn!("could not pin to core {c}");
    }
}

/// Receives stamped datagrams on `sock` with recvmmsg until `stop`: (count, first and
/// last arrival ns, thread CPU ns).
fn recv_loop(sock: &UdpSocket, stop: &AtomicBool) -> (u64, u64, u64, u64) {
    const N: usize = 64;
    const LEN: usize = 2048;
    let mut bufs = vec![[0u8; LEN]; N];
    let mut iov: Vec<libc::iovec> =
        bufs.iter_mut().map(|b| libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: LEN }).collect();
    // SAFETY: mmsghdr is plain data; all-zero is a valid empty header.
    let mut msgs: Vec<libc::mmsghdr> = (0..N).map(|_| unsafe { std::mem::zeroed() }).collect();
    for (m, v) in msgs.iter_mut().zip(iov.iter_mut()) {
        m.msg_hdr.msg_iov = v;
        m.msg_hdr.msg_iovlen = 1;
    }
    let cpu0 = sys::thread_cpu_ns();
    let (mut n, mut first, mut last) = (0u64, 0u64, 0u64);
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: `msgs` holds N headers, each pointing at one iovec of `iov` over a
        // LEN-byte buffer of `bufs`; all live across the call. The socket's receive
        // timeout bounds the wait.
        let r = unsafe {
            libc::recvmmsg(sock.as_raw_fd(), msgs.as_mut_ptr(), N as u32, libc::MSG_WAITFORONE, std::ptr::null_mut())
        };
        if r <= 0 {
            continue;
        }
        let now = sys::monotonic_ns();
        for (m, b) in msgs.iter().zip(&bufs).take(r as usize) {
            let len = (m.msg_len as usize).min(LEN);
            if Stamp::parse(&b[..len]).is_some() {
                n += 1;
            }
        }
        if first == 0 {
            first = now;
        }
        last = now;
    }
    (n, first, last, sys::thread_cpu_ns() - cpu0)
}

/// One kernel UDP trial on `device`: `gen` (its addresses and MACs are set here; one
/// flow) sends, a socket pinned to `rx_core` receives. `offloads_off` turns the path's
/// offloads off for the trial.
pub fn udp_trial(
    device: Device,
    gen_cfg: &GenConfig,
    rx_core: Option<u32>,
    offloads_off: bool,
    stop: Arc<AtomicBool>,
) -> Result<UdpTrial, VethError> {
    if device == Device::Netkit {
        return Err(VethError::Device(NETKIT_NO_UDP.into()));
    }
    if gen_cfg.flows != 1 {
        return Err(VethError::Device(format!(
            "the kernel UDP baseline receives on one socket, one port: give one flow, not {}",
            gen_cfg.flows
        )));
    }
    let (tb, topo) = testbed(device)?;
    let offloads = if offloads_off { Some(PathOffloads::off(&topo)?) } else { None };
    let addr = SocketAddrV4::new(topo.rx_ip, gen_cfg.dst_port);
    let rx_stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready) = mpsc::channel();
    let (ns, s2) = (tb.rx_ns.clone(), rx_stop.clone());
    let rx = thread::Builder::new()
        .name("xdpipe-kudp".into())
        .spawn(move || -> Result<(u64, u64, u64, u64), String> {
            sys::enter_netns(&ns).map_err(|e| e.to_string())?;
            pin(rx_core);
            let sock = UdpSocket::bind(addr).map_err(|e| format!("binding a UDP socket to {addr}: {e}"))?;
            sock.set_read_timeout(Some(Duration::from_millis(50))).map_err(|e| e.to_string())?;
            let size: libc::c_int = 64 << 20;
            // SAFETY: SO_RCVBUFFORCE reads one c_int, which `size` is, for the call.
            unsafe {
                libc::setsockopt(
                    sock.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUFFORCE,
                    (&size as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as u32,
                );
            }
            let _ = ready_tx.send(());
            Ok(recv_loop(&sock, &s2))
        })
        .map_err(io_err("kernel UDP receiver"))?;
    if ready.recv_timeout(Duration::from_secs(10)).is_err() {
        rx_stop.store(true, Ordering::Relaxed);
        let e = rx.join().map_err(|_| VethError::Device("the kernel UDP receiver panicked".into()))?.err();
        return Err(VethError::Device(format!("the kernel UDP receiver did not start: {}", e.unwrap_or_default())));
    }
    let g = GenConfig {
        iface: topo.tx_iface.unwrap_or(topo.rx_iface).into(),
        dst_mac: topo.rx_mac,
        src_ip: topo.tx_ip.into(),
        dst_ip: topo.rx_ip.into(),
        ..gen_cfg.clone()
    };
    let generator = match &topo.tap {
        Some(fd) => {
            let fd = fd.try_clone().map_err(io_err("tap writer"))?;
            let mac = topo.tx_mac;
            thread::Builder::new()
                .name("xdpipe-tapgen".into())
                .spawn(move || {
                    crate::tapgen::write_tap(&fd, &g, mac, stop).map_err(|e| VethError::Generator(Box::new(e)))
                })
                .map_err(io_err("tap writer"))?
        }
        None => start_generator(Some(&tb.tx_ns), g, stop)?,
    };
    let gen_r = generator.join();
    thread::sleep(Duration::from_millis(300));
    rx_stop.store(true, Ordering::Relaxed);
    let rx_r = rx.join();
    drop(offloads);
    drop(topo);
    drop(tb);
    let summary = gen_r.map_err(|_| VethError::Device("the generator panicked".into()))??;
    let (received, first, last, cpu) =
        rx_r.map_err(|_| VethError::Device("the kernel UDP receiver panicked".into()))?.map_err(VethError::Device)?;
    // Arrivals span from the first to the last batch; at least the generator's time.
    let secs = ((last.saturating_sub(first)) as f64 / 1e9).max(summary.duration_s).max(1e-9);
    Ok(UdpTrial {
        sent: summary.sent,
        received,
        tx_pps: summary.pps,
        rx_pps: received as f64 / secs,
        cpu_ns_per_pkt: (received > 0).then(|| cpu as f64 / received as f64),
    })
}

/// One kernel TCP trial on `device`: a stream for `secs` seconds from the generator
/// namespace (sender on `tx_core`) to the receiving device's address (receiver on
/// `rx_core`).
pub fn tcp_trial(
    device: Device,
    secs: f64,
    cores: (Option<u32>, Option<u32>),
    offloads_off: bool,
    stop: Arc<AtomicBool>,
) -> Result<TcpTrial, VethError> {
    if device == Device::Tap {
        return Err(VethError::Device(
            "no kernel TCP baseline on tap: its far side is a file descriptor, with no kernel stack to send from"
                .into(),
        ));
    }
    let (tb, topo) = testbed(device)?;
    let offloads = if offloads_off { Some(PathOffloads::off(&topo)?) } else { None };
    let addr = SocketAddrV4::new(topo.rx_ip, TCP_PORT);
    let (ready_tx, ready) = mpsc::channel();
    let rx_ns = tb.rx_ns.clone();
    let rx = thread::Builder::new()
        .name("xdpipe-ktcp-rx".into())
        .spawn(move || -> Result<(u64, f64), String> {
            sys::enter_netns(&rx_ns).map_err(|e| e.to_string())?;
            pin(cores.1);
            let l = TcpListener::bind(addr).map_err(|e| format!("listening on {addr}: {e}"))?;
            let _ = ready_tx.send(());
            let (mut s, _) = l.accept().map_err(|e| format!("accepting on {addr}: {e}"))?;
            s.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
            let mut buf = vec![0u8; 1 << 20];
            let (mut bytes, mut start) = (0u64, None);
            loop {
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        start.get_or_insert_with(Instant::now);
                        bytes += n as u64;
                    }
                    Err(e) => return Err(format!("receiving the stream: {e}")),
                }
            }
            Ok((bytes, start.map_or(0.0, |t| t.elapsed().as_secs_f64())))
        })
        .map_err(io_err("kernel TCP receiver"))?;
    ready
        .recv_timeout(Duration::from_secs(10))
        .map_err(|_| VethError::Device("the TCP receiver did not start".into()))?;
    let tx_ns = tb.tx_ns.clone();
    let tx = thread::Builder::new()
        .name("xdpipe-ktcp-tx".into())
        .spawn(move || -> Result<(), String> {
            sys::enter_netns(&tx_ns).map_err(|e| e.to_string())?;
            pin(cores.0);
            let mut s = TcpStream::connect_timeout(&addr.into(), Duration::from_secs(5))
                .map_err(|e| format!("connecting to {addr}: {e}"))?;
            let buf = vec![0x5au8; 1 << 20];
            let end = Instant::now() + Duration::from_secs_f64(secs);
            while Instant::now() < end && !stop.load(Ordering::Relaxed) {
                s.write_all(&buf).map_err(|e| format!("sending the stream: {e}"))?;
            }
            s.shutdown(std::net::Shutdown::Write).map_err(|e| e.to_string())
        })
        .map_err(io_err("kernel TCP sender"))?;
    let tx_r = tx.join();
    let rx_r = rx.join();
    drop(offloads);
    drop(topo);
    drop(tb);
    tx_r.map_err(|_| VethError::Device("the TCP sender panicked".into()))?.map_err(VethError::Device)?;
    let (bytes, secs) =
        rx_r.map_err(|_| VethError::Device("the TCP receiver panicked".into()))?.map_err(VethError::Device)?;
    Ok(TcpTrial { bytes, secs, gbps: if secs > 0.0 { bytes as f64 * 8.0 / secs / 1e9 } else { 0.0 } })
}
