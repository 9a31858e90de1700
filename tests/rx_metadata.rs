//! XDP RX metadata on veth: the steering program, loaded bound to the device in native
//! mode, calls the driver's RX timestamp and RX hash kfuncs and hands their answers to
//! the workers in front of each frame; in skb mode (not bound) the kfuncs are stubbed
//! and every frame says "no values". Also `xdpipe features` and the generator's TX
//! offload statement.
mod common;

use common::*;

const N: u64 = 20000;

/// `xdpipe veth` at a rate the shared VM keeps up with, 4 flows over 2 queues.
/// With `meta`, the receiver asks for the metadata (`--rx-metadata`).
fn veth_run(xdp_mode: &str, meta: bool) -> serde_json::Value {
    let n = N.to_string();
    let mut args = vec![
        "veth",
        "-n",
        &n,
        "-r",
        "50kpps",
        "--flows",
        "4",
        "--queues",
        "2",
        "--poll",
        "--json",
        "--xdp-mode",
        xdp_mode,
    ];
    if meta {
        args.push("--rx-metadata");
    }
    let (code, out, err) = xdpipe_once(&args);
    assert_eq!(code, Some(0), "xdpipe veth --xdp-mode {xdp_mode} failed: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("summary is not JSON ({e}): {out}"))
}

#[test]
fn native_veth_frames_carry_the_drivers_rx_hash_and_timestamp_answer() {
    if !privileged() {
        return;
    }
    let s = veth_run("native", true);
    assert_eq!(s["receiver"]["xdp_rx_metadata"], true, "veth lists the kfuncs: the program runs bound");
    let a = &s["receiver"]["accounting"];
    let received = u(&s, "received");
    assert!(received >= N * 9 / 10, "too few frames arrived to judge: {s}");
    // Every frame received carries the area, with an RX hash.
    assert_eq!(u(a, "rx_metadata.frames"), u(a, "stamped") + u(a, "unstamped"), "{a}");
    assert_eq!(u(a, "rx_metadata.frames"), received, "{a}");
    assert_eq!(u(a, "rx_metadata.hashes"), received, "every frame has veth's RX hash: {a}");
    // veth's timestamp kfunc answers (the flag is set) with the skb's hardware
    // timestamp, which nothing sets on a veth: 0, so no frame has a timestamp.
    assert_eq!(u(a, "rx_metadata.timestamps_zero"), received, "{a}");
    assert_eq!(u(a, "rx_metadata.timestamps"), 0, "{a}");
    assert!(a["rx_metadata"]["device_latency_ns"].is_null(), "{a}");
    // One flow, one hash, one queue. veth's hash is skb_get_hash() of the skb; on this
    // testbed it comes out without the ports (rss_type NONE, the same for every flow
    // between the two addresses), and some frames carry another value when the machine
    // is loaded: 0 to 9 in 20000 on a quiet one, 5829 with a TCG guest busy on the other
    // core (the cause is not known). Garbage read as metadata would change nearly every
    // frame; half of them or more is a failure.
    assert!(u(a, "rx_metadata.hash_changed_in_flow") * 2 < received, "{a}");
    assert_eq!(u(a, "rx_metadata.hash_on_other_queue"), 0, "{a}");
    assert_eq!(u(a, "flows"), 4);
    // Which clock the latency uses is stated.
    assert_eq!(a["latency_clock"], xdpipe::accounting::LATENCY_CLOCK);
    assert_eq!(a["rx_metadata"]["device_latency_clock"], xdpipe::accounting::DEVICE_LATENCY_CLOCK);
    // veth lists no AF_XDP TX metadata: checksums in software, said so.
    let t = &s["generator"]["tx_offload"];
    assert_eq!(t["xsk_features"], serde_json::json!([]), "{t}");
    assert_eq!(t["checksum"], "software");
    assert_eq!(t["tx_timestamps"], "none");
    assert!(t["why"].as_str().unwrap().contains("neither tx-checksum nor tx-timestamp"), "{t}");
}

#[test]
fn skb_mode_frames_carry_the_area_without_values() {
    if !privileged() {
        return;
    }
    let s = veth_run("skb", true);
    assert_eq!(s["receiver"]["xdp_rx_metadata"], false, "a program in skb mode is not bound");
    let a = &s["receiver"]["accounting"];
    let received = u(&s, "received");
    assert!(received > 0, "{s}");
    assert_eq!(u(a, "rx_metadata.frames"), received, "{a}");
    for field in ["hashes", "timestamps", "timestamps_zero", "vlan_tags"] {
        assert_eq!(u(a, &format!("rx_metadata.{field}")), 0, "{field}: {a}");
    }
}

/// Not asked for, the program does no metadata work: unbound, and no frame carries an
/// area (the accounting has no `rx_metadata` section).
#[test]
fn without_rx_metadata_the_program_writes_no_area() {
    if !privileged() {
        return;
    }
    let s = veth_run("native", false);
    assert_eq!(s["receiver"]["xdp_mode"], "native", "{s}");
    assert_eq!(s["receiver"]["xdp_rx_metadata"], false, "not asked for: not bound");
    let a = &s["receiver"]["accounting"];
    assert!(u(&s, "received") >= N * 9 / 10, "too few frames arrived to judge: {s}");
    assert!(a["rx_metadata"].is_null(), "no frame should carry an area: {a}");
}

#[test]
fn features_prints_the_rx_metadata_and_xsk_features() {
    if !privileged() {
        return;
    }
    let tb = testbed(1);
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &tb.rx_ns, XDPIPE, "features", "-i", RX_IFACE])
        .output()
        .expect("running xdpipe features");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text} {}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains(&format!("{RX_IFACE}: xdp-rx-metadata-features: timestamp hash vlan-tag")), "{text}");
    assert!(text.contains(&format!("{RX_IFACE}: xsk-features: none")), "{text}");
}

/// Deletes the namespace on drop.
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// A tap device has native XDP but none of the metadata kfuncs: the program is not
/// bound there (it would only get the kernel's -EOPNOTSUPP defaults) and runs as before.
#[test]
fn a_device_without_the_kfuncs_runs_the_unbound_program_natively() {
    if !privileged() {
        return;
    }
    let ns = Netns(xdpipe::testbed::unique_name("m"));
    let ip = |args: &[&str]| {
        let st = std::process::Command::new("ip").args(args).status().expect("ip");
        assert!(st.success(), "ip {args:?}");
    };
    ip(&["netns", "add", &ns.0]);
    ip(&["-n", &ns.0, "tuntap", "add", "dev", "xpmtap", "mode", "tap"]);
    ip(&["-n", &ns.0, "link", "set", "xpmtap", "up"]);
    let f = std::process::Command::new("ip")
        .args(["netns", "exec", &ns.0, XDPIPE, "features", "-i", "xpmtap"])
        .output()
        .expect("xdpipe features");
    assert!(String::from_utf8_lossy(&f.stdout).contains("xdp-rx-metadata-features: none"));
    let x = Xdpipe::start(
        &ns.0,
        &["run", "-i", "xpmtap", "--xdp-mode", "native", "--rx-metadata", "--poll", "-d", "1", "--json"],
    );
    let s = x.summary(std::time::Duration::from_secs(20));
    assert_eq!(s["xdp_mode"], "native", "{s}");
    assert_eq!(s["xdp_rx_metadata"], false, "{s}");
}
