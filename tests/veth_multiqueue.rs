//! The multi-queue generator on a two-queue veth testbed: `xdpipe veth --queues 2` sends
//! from two TX workers into rxdrop on two RX queues, and every RX queue receives exactly
//! what the matching TX queue sent, for the AF_XDP engine and for the in-kernel engine
//! (two threads, two program instances: each flow's sequence numbers come from one of
//! them, so the receiver sees every flow with no duplicate and no gap). `gen --rss-of`
//! on veth, which has no RSS settings, is refused by name.
mod common;

use std::{process::Command, time::Duration};

use common::*;

fn veth(args: &[&str]) -> serde_json::Value {
    let out = Command::new(XDPIPE).arg("veth").args(args).arg("--json").output().expect("running xdpipe veth");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "xdpipe veth {args:?} failed:\n{stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("report is not JSON ({e}); stderr:\n{stderr}"))
}

/// Per-queue and total counts match exactly; the flows are split 4 + 4 and every flow
/// arrives complete, in sequence, once.
fn two_queues_count_exactly(r: &serde_json::Value, total: u64) {
    let per = total / 2;
    assert_eq!(u(r, "sent"), total, "{r}");
    assert_eq!(u(r, "received"), total, "{r}");
    assert_eq!(r["lost"], 0);
    let g = r["generator"]["per_queue"].as_array().expect("generator.per_queue");
    let q = r["receiver"]["queues"].as_array().expect("receiver.queues");
    assert_eq!((g.len(), q.len()), (2, 2), "two TX and two RX workers; {r}");
    for i in 0..2 {
        assert_eq!(u(&g[i], "queue"), i as u64);
        assert_eq!(u(&g[i], "sent"), per, "TX queue {i}: {}", g[i]);
        assert_eq!((u(&g[i], "flow_base"), u(&g[i], "flows")), (4 * i as u64, 4), "TX queue {i}'s flows: {}", g[i]);
        assert_eq!(u(&q[i], "queue"), i as u64);
        assert_eq!(u(&q[i], "rx_packets"), u(&g[i], "sent"), "RX queue {i} received what TX queue {i} sent; {r}");
    }
    let a = &r["receiver"]["accounting"];
    assert_eq!(u(a, "stamped"), total, "{a}");
    assert_eq!(u(a, "flows"), 8, "flows 0-7, none sent by both workers; {a}");
    assert_eq!(u(a, "duplicates"), 0, "{a}");
    assert_eq!(u(a, "lost_in_sequence"), 0, "{a}");
    assert_eq!(u(a, "reordered"), 0, "{a}");
    let flows = r["generator"]["sent_per_flow"].as_array().unwrap();
    assert_eq!(flows.len(), 8);
    assert_eq!(flows.iter().map(|n| n.as_u64().unwrap()).sum::<u64>(), total);
}

#[test]
fn two_queues_xsk_exact_per_queue() {
    if !privileged() {
        return;
    }
    // 50 kpps per queue; the receiver's workers sleep between frames, as they share the
    // two cores with the generator's.
    let r = veth(&["--queues", "2", "--flows", "8", "--count", "40000", "--rate", "100kpps", "--poll", "50"]);
    assert_eq!(r["generator"]["engine"], "xsk");
    two_queues_count_exactly(&r, 40000);
    assert_eq!(r["generator"]["per_queue"][1]["target_pps"].as_f64(), Some(50000.0), "rate per queue");
}

#[test]
fn two_queues_xdp_live_exact_per_queue_and_per_flow_sequence() {
    if !privileged() {
        return;
    }
    // Full speed: a count below the RX rings' size, so a worker that does not get the
    // core while the sender runs still loses nothing.
    let r = veth(&["--queues", "2", "--flows", "8", "--engine", "xdp-live", "--count", "3000", "--poll", "50"]);
    assert_eq!(r["generator"]["engine"], "xdp-live");
    two_queues_count_exactly(&r, 3000);
}

/// `gen --rss-of` on a receiver without RSS settings (veth) is refused before anything
/// is sent or attached, naming the device and what to do; so is it with the xdp-live
/// engine, whose program derives the ports itself.
#[test]
fn rss_of_a_device_without_rss_is_refused_by_name() {
    if !privileged() {
        return;
    }
    let tb = testbed(2);
    let cases: [(&[&str], &[&str]); 2] = [
        (&[], &["--rss-of xp-tx: its RSS settings cannot be read", "leave --rss-of out"]),
        (&["--engine", "xdp-live"], &["--rss-of works with --engine xsk only"]),
    ];
    for (extra, says) in cases {
        let mut args = vec!["gen", "-i", "xp-tx", "--rss-of", "xp-tx", "-n", "4"];
        args.extend(extra);
        let (code, _, err) = Xdpipe::spawn(&tb.tx_ns, &args).finish(Duration::from_secs(20));
        assert_eq!(code, Some(1), "gen {args:?}: {err}");
        assert!(says.iter().all(|s| err.contains(s)), "gen {args:?} does not say {says:?}: {err}");
        assert!(!xdp_attached(&tb.tx_ns, "xp-tx"), "gen {args:?} left a program on xp-tx");
    }
}
