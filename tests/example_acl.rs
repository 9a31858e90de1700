//! The example stage (userspace/examples/acl.rs) on a veth testbed: in-process, in the
//! receiver's namespace, with kernel UDP traffic of four flows from the generator's side.
//! Every frame is counted exactly: the denied flows dropped, the rest forwarded.
mod common;

#[path = "../userspace/examples/acl.rs"]
#[allow(dead_code)]
mod acl;

use std::{
    net::UdpSocket,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    thread,
    time::Duration,
};

use common::{RX_IFACE, RX_IP, TX_IP};
use xdpipe::config::QueueList;

const DPORT: u16 = 18000;
const PER_FLOW: usize = 250;

#[test]
fn the_acl_example_drops_the_listed_flows_and_forwards_the_rest() {
    if !common::privileged() {
        return;
    }
    let tb = common::testbed(1);
    let deny: Vec<_> =
        [40002, 40004].iter().map(|p| acl::parse_rule(&format!("udp,{TX_IP},{p},{RX_IP},{DPORT}")).unwrap()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready) = mpsc::channel();
    let (ns, stop2) = (tb.rx_ns.clone(), stop.clone());
    let receiver = thread::spawn(move || {
        let queues = QueueList::from_ids([0]).unwrap();
        acl::run(RX_IFACE, Some(&ns), queues, deny, &stop2, Duration::from_secs(60), || ready_tx.send(()).unwrap())
    });
    ready.recv_timeout(Duration::from_secs(30)).expect("the ACL pipeline became ready");

    let tx_ns = tb.tx_ns.clone();
    thread::spawn(move || {
        xdpipe::sys::enter_netns(&tx_ns).expect("entering the generator namespace");
        let socks: Vec<UdpSocket> =
            (40001..=40004).map(|p| UdpSocket::bind((TX_IP, p)).expect("binding a UDP socket")).collect();
        for i in 0..PER_FLOW {
            for s in &socks {
                s.send_to(&[0xab; 18], (RX_IP, DPORT)).expect("sendto");
            }
            if i % 8 == 7 {
                thread::sleep(Duration::from_micros(500));
            }
        }
    })
    .join()
    .expect("sender thread");
    thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let s = receiver.join().expect("receiver thread").expect("the ACL pipeline ran");
    let total = s.stages.iter().fold(acl::AclSummary::default(), |t, q| acl::AclSummary {
        denied: t.denied + q.denied,
        forwarded: t.forwarded + q.forwarded,
        runts: t.runts + q.runts,
    });
    assert_eq!(s.rx_packets, 4 * PER_FLOW as u64, "every datagram reached the stage: {s:?}");
    assert_eq!(total, acl::AclSummary { denied: 2 * PER_FLOW as u64, forwarded: 2 * PER_FLOW as u64, runts: 0 });
    assert_eq!(s.tx_packets, 2 * PER_FLOW as u64, "the forwarded frames went out");
    assert_eq!(s.queues[0].counters.unsendable, 0);
}
