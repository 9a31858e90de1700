//! Privileges after setup: while a receive pipeline and a transmit pipeline run in-process
//! on a veth testbed, every worker thread (xdpipe-q*, xdpipe-tx*) runs as nobody/nogroup
//! with no capability, an empty bounding set and no_new_privs; the test's own thread
//! stays root; and traffic still flows with exact counts.
mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc,
    },
    thread,
    time::Duration,
};

use common::{RX_IFACE, RX_IP, TX_IFACE, TX_IP};
use xdpipe::{
    config::QueueList,
    pipeline::{Pipeline, Source, SourceStep, TxBatch},
    stages::RxDrop,
    wire::udpgen::{FrameTemplate, UdpFlow, VlanTags},
};

const FRAMES: u64 = 20_000;
/// Frames per millisecond: the run lasts about a second.
const PER_MS: u64 = 20;

/// Sends FRAMES copies of one UDP frame, PER_MS per millisecond.
struct Paced {
    frame: Vec<u8>,
    sent: Arc<AtomicU64>,
    start_ns: Option<u64>,
}

impl Source for Paced {
    type Summary = ();
    fn on_tx(&mut self, b: &mut TxBatch<'_>, now_ns: u64) -> SourceStep {
        let start = *self.start_ns.get_or_insert(now_ns);
        let due = (((now_ns - start) / 1_000_000 + 1) * PER_MS).min(FRAMES);
        let mut sent = self.sent.load(Ordering::Relaxed);
        while sent < due && b.push(self.frame.len(), |buf| buf.copy_from_slice(&self.frame[..buf.len()])) {
            sent += 1;
        }
        self.sent.store(sent, Ordering::Relaxed);
        if sent == FRAMES { SourceStep::Done } else { SourceStep::Continue }
    }
    fn finish(self) {}
}

/// A `Name: value` line of a status file.
fn field<'a>(status: &'a str, name: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
        .unwrap_or_else(|| panic!("no {name} in {status}"))
        .trim()
}

/// (name, status) of every thread of this process whose name starts with `prefix`.
fn threads(prefix: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc/self/task").expect("reading /proc/self/task") {
        let dir = e.expect("a task entry").path();
        let (Ok(comm), Ok(status)) =
            (std::fs::read_to_string(dir.join("comm")), std::fs::read_to_string(dir.join("status")))
        else {
            continue; // the thread ended meanwhile
        };
        if comm.trim().starts_with(prefix) {
            out.push((comm.trim().to_owned(), status));
        }
    }
    out
}

fn assert_confined(name: &str, status: &str) {
    assert_eq!(field(status, "Uid"), "65534\t65534\t65534\t65534", "{name}: {status}");
    assert_eq!(field(status, "Gid"), "65534\t65534\t65534\t65534", "{name}: {status}");
    assert_eq!(field(status, "Groups"), "", "{name}: {status}");
    for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(u64::from_str_radix(field(status, cap), 16), Ok(0), "{name} {cap}: {status}");
    }
    assert_eq!(field(status, "NoNewPrivs"), "1", "{name}: {status}");
}

#[test]
fn workers_run_unprivileged_and_traffic_still_flows_exactly() {
    if !common::privileged() {
        return;
    }
    let tb = common::testbed(1);
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready) = mpsc::channel();
    let (rx_ns, stop2) = (tb.rx_ns.clone(), stop.clone());
    let receiver = thread::spawn(move || {
        let run =
            Pipeline::on(RX_IFACE).netns(rx_ns).queues(QueueList::from_ids([0]).unwrap()).stage(|_| RxDrop).start()?;
        ready_tx.send(()).unwrap();
        run.wait(&stop2, Some(Duration::from_secs(60)), &mut |_| {})
    });
    ready.recv_timeout(Duration::from_secs(30)).expect("the receiver became ready");

    let flow = UdpFlow {
        src_mac: tb.tx_mac,
        dst_mac: tb.rx_mac,
        src_ip: TX_IP.parse().unwrap(),
        dst_ip: RX_IP.parse().unwrap(),
        src_port: 40000,
        dst_port: 18000,
        vlan: VlanTags::NONE,
    };
    let frame = FrameTemplate::new(&flow, 64).expect("a 64 B frame").bytes().to_vec();
    let sent = Arc::new(AtomicU64::new(0));
    let (tx_ns, sent2, gen_stop) = (tb.tx_ns.clone(), sent.clone(), Arc::new(AtomicBool::new(false)));
    let gen_stop2 = gen_stop.clone();
    let generator = thread::spawn(move || {
        xdpipe::sys::enter_netns(&tx_ns).expect("entering the generator namespace");
        Pipeline::on(TX_IFACE)
            .queues(QueueList::from_ids([0]).unwrap())
            .source(move |_| Paced { frame: frame.clone(), sent: sent2.clone(), start_ns: None })
            .run(&gen_stop2, Some(Duration::from_secs(60)))
    });
    // The source has sent frames: its worker is past its confinement.
    while sent.load(Ordering::Relaxed) < FRAMES / 4 {
        assert!(!generator.is_finished(), "the generator ended early: {:?}", generator.join());
        thread::sleep(Duration::from_millis(5));
    }
    let (rx_workers, tx_workers) = (threads("xdpipe-q"), threads("xdpipe-tx"));
    let mut checked = 0;
    for (name, status) in rx_workers.iter().chain(&tx_workers) {
        assert_confined(name, status);
        checked += 1;
    }
    // The receiver and generator setup threads are other threads: the test's stays root.
    let own = std::fs::read_to_string("/proc/thread-self/status").unwrap();
    assert_eq!(field(&own, "Uid"), "0\t0\t0\t0", "{own}");
    assert_ne!(u64::from_str_radix(field(&own, "CapEff"), 16), Ok(0), "{own}");
    assert_eq!(
        (rx_workers.len(), tx_workers.len(), checked),
        (1, 1, 2),
        "one worker each: {rx_workers:?} {tx_workers:?}"
    );

    let g = generator.join().expect("generator thread").expect("the generator ran");
    assert_eq!(g.failed, None);
    assert_eq!(g.totals().sent, FRAMES);
    thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let s = receiver.join().expect("receiver thread").expect("the receiver ran");
    assert_eq!(s.rx_packets, FRAMES, "every frame arrived: {s:?}");
    // Read through the map fds the setup thread holds.
    assert_eq!(s.program.redirected, FRAMES, "{:?}", s.program);
}
