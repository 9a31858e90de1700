//! A stage a user would write: a 5-tuple ACL. It drops the UDP/TCP flows on its deny
//! list, sends everything else back out of the queue it came in on with the MACs swapped
//! (l2fwd), and keeps its own counters, which come back per queue in the run's summary.
//!
//! The README's "Writing your own stage" shows how to run it on a veth testbed;
//! tests/example_acl.rs runs it and checks its counts exactly.
use std::{
    collections::HashSet,
    net::IpAddr,
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

use clap::Parser;
use serde::Serialize;
use xdpipe::{
    config::{QueueList, XdpMode},
    pipeline::{Batch, Pipeline, RunSummary, Stage, Verdict},
    wire::headers::{EthernetFrame, FlowKey, IPPROTO_TCP, IPPROTO_UDP, parse_frame},
};

/// Drops the listed flows, l2-forwards the rest.
pub struct Acl {
    deny: Arc<HashSet<FlowKey>>,
    counts: AclSummary,
}

/// What the ACL did on one queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AclSummary {
    /// Frames of a denied flow: dropped.
    pub denied: u64,
    /// Frames sent back out (MACs swapped).
    pub forwarded: u64,
    /// Frames too short for an Ethernet header: dropped.
    pub runts: u64,
}

impl Acl {
    /// An ACL with this deny list (shared by the queues' stages).
    pub fn new(deny: Arc<HashSet<FlowKey>>) -> Self {
        Self { deny, counts: AclSummary::default() }
    }
}

impl Stage for Acl {
    type Summary = AclSummary;

    fn on_batch(&mut self, batch: &mut Batch<'_>) {
        for mut frame in batch.frames() {
            let flow = parse_frame(frame.bytes()).ok().and_then(|info| info.flow);
            if flow.is_some_and(|f| self.deny.contains(&f)) {
                self.counts.denied += 1; // the default verdict: Drop
                continue;
            }
            match EthernetFrame::new_checked(frame.bytes_mut()) {
                Ok(mut eth) => {
                    eth.swap_macs();
                    frame.set_verdict(Verdict::Tx);
                    self.counts.forwarded += 1;
                }
                Err(_) => self.counts.runts += 1,
            }
        }
    }

    fn finish(self) -> AclSummary {
        self.counts
    }
}

/// A deny rule as `PROTO,SRC_IP,SRC_PORT,DST_IP,DST_PORT` (PROTO: udp or tcp).
pub fn parse_rule(s: &str) -> Result<FlowKey, String> {
    let bad = |why: &str| {
        format!(
            "--deny {s:?}: {why}; write PROTO,SRC_IP,SRC_PORT,DST_IP,DST_PORT, e.g. udp,10.77.0.2,40001,10.77.0.1,18000"
        )
    };
    let f: Vec<&str> = s.split(',').collect();
    let [proto, src, sport, dst, dport] = f[..] else { return Err(bad("five fields expected")) };
    let proto = match proto {
        "udp" => IPPROTO_UDP,
        "tcp" => IPPROTO_TCP,
        _ => return Err(bad("the protocol is udp or tcp")),
    };
    let ip = |a: &str| a.parse::<IpAddr>().map_err(|_| bad("not an IP address"));
    let port = |p: &str| p.parse::<u16>().map_err(|_| bad("a port is 0 to 65535"));
    Ok(FlowKey::new(proto, ip(src)?, port(sport)?, ip(dst)?, port(dport)?))
}

#[derive(Parser)]
#[command(about = "A 5-tuple ACL stage on the xdpipe pipeline: drop the listed flows, l2-forward the rest")]
struct Args {
    /// Interface to run on.
    #[arg(long, short = 'i')]
    iface: String,
    /// Network namespace to run in (/run/netns/NAME).
    #[arg(long)]
    netns: Option<String>,
    /// RX queues: 0, 0-3, 0,2.
    #[arg(long, default_value = "0")]
    queues: QueueList,
    /// A flow to drop: PROTO,SRC_IP,SRC_PORT,DST_IP,DST_PORT (repeatable).
    #[arg(long, value_parser = parse_rule)]
    deny: Vec<FlowKey>,
    /// Seconds to run (Ctrl-C stops earlier).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
}

/// Runs the ACL on `iface` (in `netns`) until `stop` or `duration`; `on_ready` is called
/// once frames steered to the queues are being processed.
pub fn run(
    iface: &str,
    netns: Option<&str>,
    queues: QueueList,
    deny: Vec<FlowKey>,
    stop: &AtomicBool,
    duration: Duration,
    on_ready: impl FnOnce(),
) -> Result<RunSummary<AclSummary>, xdpipe::pipeline::PipelineError> {
    let deny = Arc::new(deny.into_iter().collect::<HashSet<_>>());
    let mut p = Pipeline::on(iface).queues(queues).xdp_mode(XdpMode::Auto);
    if let Some(ns) = netns {
        p = p.netns(ns);
    }
    let running = p.stage(move |_queue| Acl::new(deny.clone())).start()?;
    on_ready();
    running.wait(stop, Some(duration), &mut |_| {})
}

fn main() -> std::process::ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let a = Args::parse();
    if !(a.duration > 0.0 && a.duration < 1e7) {
        eprintln!("acl: --duration {}: give a positive number of seconds", a.duration);
        return std::process::ExitCode::from(2);
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            eprintln!("acl: installing the signal handler: {e}");
            return std::process::ExitCode::FAILURE;
        }
    }
    let ready = || eprintln!("acl: ready on {}", a.iface);
    match run(
        &a.iface,
        a.netns.as_deref(),
        a.queues.clone(),
        a.deny.clone(),
        &stop,
        Duration::from_secs_f64(a.duration),
        ready,
    ) {
        Ok(s) => {
            let total = s.stages.iter().fold(AclSummary::default(), |t, q| AclSummary {
                denied: t.denied + q.denied,
                forwarded: t.forwarded + q.forwarded,
                runts: t.runts + q.runts,
            });
            println!(
                "acl on {}: {} frames, {} denied, {} forwarded, {} runts ({:?} XDP, {:?} bind)",
                s.iface, s.rx_packets, total.denied, total.forwarded, total.runts, s.xdp_mode, s.bind
            );
            match serde_json::to_string(&s) {
                Ok(j) => println!("{j}"),
                Err(e) => eprintln!("acl: {e}"),
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("acl: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
