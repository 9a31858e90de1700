//! Panics leave nothing attached or running: a user stage that panics in `on_batch`, a
//! progress callback that panics in `ReadyRun::wait`, and the `xdpipe run` and `veth`
//! binaries panicking on their own (output written to a closed pipe; that panic unwinds
//! and ends with status 141). After each, no XDP
//! program is on the interface, no worker thread of this process is left, and the testbed
//! is removed normally.
mod common;

use std::{
    process::{Command, Stdio},
    sync::atomic::AtomicBool,
    thread,
    time::{Duration, Instant},
};

use common::*;
use xdpipe::{
    config::QueueList,
    pipeline::{Batch, EndReason, Pipeline, Stage},
    stages::RxDrop,
};

/// Counts frames and panics once it has seen `after` of them.
struct PanicsAfter {
    seen: u64,
    after: u64,
}

impl Stage for PanicsAfter {
    type Summary = u64;
    fn on_batch(&mut self, batch: &mut Batch<'_>) {
        self.seen += batch.len() as u64;
        if self.seen >= self.after {
            panic!("test stage gave up after {} frames", self.seen);
        }
    }
    fn finish(self) -> u64 {
        self.seen
    }
}

/// Names of this process's threads starting with `prefix`, waiting up to a second for
/// them to go (a thread's /proc entry may outlive its join by a moment).
fn threads_left(prefix: &str) -> Vec<String> {
    let t0 = Instant::now();
    loop {
        let mut left = Vec::new();
        for e in std::fs::read_dir("/proc/self/task").expect("reading /proc/self/task") {
            if let Ok(comm) = std::fs::read_to_string(e.expect("a task entry").path().join("comm"))
                && comm.trim().starts_with(prefix)
            {
                left.push(comm.trim().to_owned());
            }
        }
        if left.is_empty() || t0.elapsed() > Duration::from_secs(1) {
            return left;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Both tests below look at this process's xdpipe-q* threads: they run one at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn a_stage_that_panics_ends_the_run_detached_with_no_worker_left() {
    if !privileged() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut tb = testbed(1);
    let rx_ns = tb.rx_ns.clone();
    let receiver = thread::spawn(move || {
        Pipeline::on(RX_IFACE)
            .netns(rx_ns)
            .queues(QueueList::from_ids([0]).unwrap())
            .stage(|_| PanicsAfter { seen: 0, after: 100 })
            .run_for(Duration::from_secs(20))
    });
    let t0 = Instant::now();
    while !xdp_attached(&tb.rx_ns, RX_IFACE) {
        assert!(t0.elapsed() < Duration::from_secs(30), "the pipeline never attached");
        thread::sleep(Duration::from_millis(20));
    }
    thread::sleep(Duration::from_millis(200));
    send_udp(&tb, 1000, 18000, 18);
    let summary = receiver.join().expect("the run itself must not panic").expect("the run started");
    match &summary.end {
        EndReason::WorkerFailed(why) => {
            assert!(why.contains("queue 0 panicked: test stage gave up after"), "{why}")
        }
        other => panic!("the run must end with the worker's panic, not {other:?}"),
    }
    assert!(summary.duration_s < 15.0, "the run must end at the panic, not its duration: {summary:?}");
    assert!(summary.stages.is_empty(), "the panicked worker has no stage summary");
    assert!(!xdp_attached(&tb.rx_ns, RX_IFACE), "the program must be detached after a worker's panic");
    assert_eq!(threads_left("xdpipe-q"), Vec::<String>::new(), "worker threads left after the panic");
    tb.destroy();
    assert!(!xdpipe::net::ns::exists(&tb.rx_ns) && !xdpipe::net::ns::exists(&tb.tx_ns), "testbed not removed");
}

#[test]
fn a_progress_callback_that_panics_stops_the_workers_and_detaches() {
    if !privileged() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut tb = testbed(1);
    let rx_ns = tb.rx_ns.clone();
    let receiver = thread::spawn(move || {
        let run = Pipeline::on(RX_IFACE)
            .netns(rx_ns)
            .queues(QueueList::from_ids([0]).unwrap())
            .stage(|_| RxDrop)
            .start()
            .expect("the run started");
        let stop = AtomicBool::new(false);
        run.wait(&stop, Some(Duration::from_secs(30)), &mut |_| panic!("the progress callback failed"))
    });
    let joined = receiver.join();
    let msg = match joined {
        Err(p) => p.downcast_ref::<&str>().map(|s| s.to_string()).unwrap_or_default(),
        Ok(r) => panic!("the callback's panic must propagate, got {:?}", r.map(|s| s.end)),
    };
    assert_eq!(msg, "the progress callback failed");
    assert_eq!(threads_left("xdpipe-q"), Vec::<String>::new(), "worker threads left running after the panic");
    assert!(!xdp_attached(&tb.rx_ns, RX_IFACE), "the program must be detached after the panic");
    tb.destroy();
    assert!(!xdpipe::net::ns::exists(&tb.rx_ns) && !xdpipe::net::ns::exists(&tb.tx_ns), "testbed not removed");
}

/// `xdpipe run` writes its progress line on stderr once a second; with stderr a pipe
/// nobody reads any more, the write fails (EPIPE) and the binary panics in its progress
/// callback, mid-run. The panic unwinds through every teardown guard and main ends the
/// command with the closed-pipe status (141); no program is left attached.
#[test]
fn the_run_binary_panicking_mid_run_leaves_no_program() {
    if !privileged() {
        return;
    }
    let tb = testbed(1);
    let mut child = Command::new("ip")
        .args(["netns", "exec", &tb.rx_ns, XDPIPE, "run", "-i", RX_IFACE, "--xdp-mode", "native", "-d", "20"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting xdpipe run");
    // Wait for the program, then close the only read end of xdpipe's stderr.
    let t0 = Instant::now();
    while !xdp_attached(&tb.rx_ns, RX_IFACE) {
        assert!(t0.elapsed() < Duration::from_secs(30), "xdpipe run never attached");
        assert!(child.try_wait().unwrap().is_none(), "xdpipe run ended before attaching");
        thread::sleep(Duration::from_millis(20));
    }
    drop(child.stderr.take());
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t0.elapsed() > Duration::from_secs(15) {
            let _ = child.kill();
            panic!("xdpipe run did not end after its stderr closed");
        }
        thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(141), "the EPIPE panic ends with the closed-pipe status: {status}");
    assert!(!xdp_attached(&tb.rx_ns, RX_IFACE), "program left attached after the binary panicked");
}

/// `xdpipe veth` writes its report on stdout at the end; with stdout a pipe nobody reads
/// any more, that write panics (EPIPE), unwinds, and main ends the command with status 141
/// and no panic message. Its testbed (namespaces `xdpipe-v<pid>x*`) must be gone and no
/// program left.
#[test]
fn the_veth_binary_panicking_on_its_report_leaves_no_testbed() {
    if !privileged() {
        return;
    }
    let mut child = Command::new(XDPIPE)
        .args(["veth", "-d", "1", "--rate", "10kpps"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting xdpipe veth");
    drop(child.stdout.take());
    let stderr = child.stderr.take().unwrap();
    let err = thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t0.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("xdpipe veth did not end");
        }
        thread::sleep(Duration::from_millis(50));
    };
    let err = err.join().unwrap();
    assert_eq!(status.code(), Some(141), "the report's write must have met the closed pipe: {status}; stderr:\n{err}");
    assert!(!err.contains("panicked"), "a closed pipe is not reported as a panic: {err}");
    let prefix = format!("xdpipe-v{}x", child.id());
    let left: Vec<_> = xdpipe::testbed::xdpipe_namespaces().into_iter().filter(|n| n.starts_with(&prefix)).collect();
    assert!(left.is_empty(), "namespaces left after the panic: {left:?}");
}
