//! The conversion from flags to validated configs: one test per rule between flags, each
//! asserting the message names the flag and says how to fix it. No root, no device.
use clap::Parser as _;

use super::{Cli, CliError, Cmd};
use xdpipe::{
    config::{Engine, ModeKind, PollWait, XdpMode},
    generator::{Rate, SizeSpec},
    wire::udpgen::VlanTags,
};

fn parse(args: &[&str]) -> Cmd {
    let mut argv = vec!["xdpipe"];
    argv.extend(args);
    match super::parse_from(argv) {
        Ok(c) => c.cmd,
        Err(e) => panic!("{args:?} did not parse: {e}"),
    }
}

/// The message validation refused `args` with.
fn refused(args: &[&str]) -> String {
    let e: CliError = match parse(args) {
        Cmd::Run(a) => a.validate().err(),
        Cmd::Gen(a) => a.validate().err(),
        Cmd::Veth(a) => a.validate().err(),
        Cmd::Bench(a) => a.validate().err(),
        _ => panic!("no conversion for {args:?}"),
    }
    .unwrap_or_else(|| panic!("{args:?} was accepted"));
    e.0
}

fn assert_says(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "{msg:?} does not say {p:?}");
    }
}

/// What clap itself refuses (values outside a type's range or list).
fn clap_refuses(args: &[&str], part: &str) {
    let mut argv = vec!["xdpipe"];
    argv.extend(args);
    let e = Cli::try_parse_from(argv).err().unwrap_or_else(|| panic!("{args:?} parsed"));
    assert!(e.to_string().contains(part), "{args:?}: {e}");
}

/// `gen` with its required flags, then `extra`.
fn gen_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["gen", "-i", "xp-tx", "--src-ip", "10.0.0.1", "--dst-ip", "10.0.0.2"];
    v.extend(extra);
    v
}

// ---- run

#[test]
fn run_defaults_validate() {
    let Cmd::Run(a) = parse(&["run", "-i", "lo"]) else { unreachable!() };
    let c = a.validate().unwrap();
    assert_eq!(c.config.xsk.frames, 4096, "rxdrop keeps the fill ring's worth of frames");
    assert!(c.config.xsk.tx_size.is_none(), "rxdrop has no TX ring");
    let Cmd::Run(a) = parse(&["run", "-i", "a", "--mode", "fwd", "--out-iface", "b"]) else { unreachable!() };
    let c = a.validate().unwrap();
    assert_eq!(c.config.xsk.frames, 4096 + 2048 + 2048 + 2048);
    assert!(c.config.xsk.tx_size.is_some());
}

#[test]
fn run_cores_need_one_per_queue() {
    let m = refused(&["run", "-i", "lo", "-q", "0-2", "--cores", "0,1"]);
    assert_says(&m, &["--cores 0,1 gives 2 core(s) for 3 queue(s)", "give one core per queue"]);
}

#[test]
fn run_fwd_needs_out_iface() {
    let m = refused(&["run", "--iface", "lo", "--mode", "fwd"]);
    assert_says(&m, &["--mode fwd needs --out-iface"]);
}

#[test]
fn run_fwd_out_iface_differs_from_iface() {
    let m = refused(&["run", "-i", "lo", "--mode", "fwd", "--out-iface", "lo"]);
    assert_says(&m, &["--out-iface lo is the interface frames come in on", "use --mode l2fwd"]);
}

#[test]
fn run_out_iface_only_with_fwd() {
    let m = refused(&["run", "-i", "lo", "--out-iface", "eth1"]);
    assert_says(&m, &["--out-iface eth1 is for --mode fwd", "rxdrop", "drop --out-iface"]);
}

#[test]
fn run_frames_zero() {
    assert_says(&refused(&["run", "-i", "lo", "--frames", "0"]), &["--frames 0", "give 1 or more"]);
}

#[test]
fn run_duration_positive() {
    assert_says(&refused(&["run", "-i", "lo", "-d", "0"]), &["--duration 0", "positive number of seconds"]);
}

#[test]
fn run_tx_budget_within_tx_ring() {
    let m = refused(&["run", "-i", "lo", "--tx-ring", "256", "--tx-budget", "512"]);
    assert_says(&m, &["--tx-budget 512: out of range", "use 32 to 256", "--tx-ring"]);
    assert_says(&refused(&["run", "-i", "lo", "--tx-budget", "16"]), &["--tx-budget 16"]);
}

#[test]
fn run_value_types_refused_by_clap() {
    clap_refuses(&["run", "-i", "lo", "--rx-ring", "3000"], "power of two");
    clap_refuses(&["run", "-i", "lo", "--cores", "0,0"], "listed twice");
    clap_refuses(&["run", "-i", "lo", "--mode", "drop"], "possible values: rxdrop, parse, l2fwd, fwd");
    clap_refuses(&["run", "-i", "lo", "--poll", "soon"], "poll timeout \"soon\"");
}

// ---- gen

#[test]
fn gen_defaults_validate() {
    let Cmd::Gen(a) = parse(&gen_args(&[])) else { unreachable!() };
    let c = a.validate().unwrap();
    assert_eq!(c.config.duration, Some(std::time::Duration::from_secs(10)));
    assert_eq!(c.config.dst_mac, [0xff; 6]);
}

#[test]
fn gen_size_goes_to_jumbo_over_several_umem_frames() {
    // Past one UMEM frame, the AF_XDP engine sends multi-buffer frames, up to 9018 B.
    for size in ["9018", "4000"] {
        let Cmd::Gen(a) = parse(&gen_args(&["--size", size])) else { unreachable!() };
        assert_eq!(a.validate().unwrap().config.sizes, SizeSpec::Fixed(size.parse().unwrap()));
    }
    let Cmd::Gen(a) = parse(&gen_args(&["--size", "2000", "--frame-size", "2048"])) else { unreachable!() };
    a.validate().unwrap();
    let m = refused(&gen_args(&["--size", "9019"]));
    assert_says(&m, &["--size 9019", "frames up to 9018 B", "lower --size"]);
    // The in-kernel engine's frames fit one UMEM frame.
    let m = refused(&gen_args(&["--engine", "xdp-live", "--size", "4000"]));
    assert_says(&m, &["--size 4000 with --engine xdp-live", "up to 3844 B", "use --engine xsk"]);
    let m = refused(&gen_args(&["--engine", "xdp-live", "--size", "2000", "--frame-size", "2048"]));
    assert_says(&m, &["up to 1796 B", "lower --size, raise --frame-size"]);
}

#[test]
fn gen_xdp_live_is_unpaced() {
    let m = refused(&gen_args(&["--engine", "xdp-live", "--rate", "10kpps"]));
    assert_says(&m, &["--rate with --engine xdp-live", "use --rate max, or --engine xsk"]);
}

#[test]
fn gen_xdp_live_sends_one_size() {
    let m = refused(&gen_args(&["--engine", "xdp-live", "--size", "imix"]));
    assert_says(&m, &["--size imix", "--engine xsk"]);
}

#[test]
fn gen_flows_and_count_nonzero() {
    assert_says(&refused(&gen_args(&["--flows", "0"])), &["--flows 0", "give 1 to 65535"]);
    assert_says(&refused(&gen_args(&["--count", "0"])), &["--count 0", "at least one frame"]);
}

#[test]
fn gen_macs_are_six_hex_bytes() {
    assert_says(&refused(&gen_args(&["--dst-mac", "ff:ff"])), &["--dst-mac \"ff:ff\"", "six hex bytes"]);
    assert_says(&refused(&gen_args(&["--src-mac", "x"])), &["--src-mac \"x\""]);
}

#[test]
fn gen_tx_budget_within_tx_ring() {
    assert_says(&refused(&gen_args(&["--tx-budget", "16"])), &["--tx-budget 16: out of range"]);
}

#[test]
fn gen_size_below_headers_refused_by_clap() {
    clap_refuses(&gen_args(&["--size", "10"]), "at least 62 bytes");
    clap_refuses(&gen_args(&["--rate", "fast"]), "rate \"fast\"");
}

#[test]
fn gen_addresses_default_to_the_benchmarking_ranges() {
    let Cmd::Gen(a) = parse(&["gen", "-i", "xp-tx"]) else { unreachable!() };
    let c = a.validate().unwrap().config;
    assert_eq!((c.src_ip.to_string(), c.dst_ip.to_string()), ("198.18.0.1".into(), "198.19.0.1".into()));
    assert_eq!((c.sizes, c.vlan), (SizeSpec::Fixed(64), VlanTags::NONE));
    let Cmd::Gen(a) = parse(&["gen", "-i", "xp-tx", "--ipv6", "--vlan", "100,200"]) else { unreachable!() };
    let c = a.validate().unwrap().config;
    assert_eq!((c.src_ip.to_string(), c.dst_ip.to_string()), ("2001:2:0:1::1".into(), "2001:2:0:2::1".into()));
    // The smallest frame of IPv6 with two tags: 14 + 8 + 40 + 8 + 16 + 4 FCS.
    assert_eq!((c.sizes, c.vlan.ids()), (SizeSpec::Fixed(90), &[100, 200][..]));
    // An IPv6 address implies --ipv6.
    let Cmd::Gen(a) = parse(&["gen", "-i", "xp-tx", "--dst-ip", "2001:db8::1"]) else { unreachable!() };
    assert_eq!(a.validate().unwrap().config.src_ip.to_string(), "2001:2:0:1::1");
}

#[test]
fn gen_address_families_must_agree() {
    let m = refused(&gen_args(&["--ipv6"]));
    assert_says(&m, &["--src-ip 10.0.0.1", "IPv6 frames", "one family"]);
    let m = refused(&["gen", "-i", "xp-tx", "--src-ip", "10.0.0.1", "--dst-ip", "2001:db8::1"]);
    assert_says(&m, &["--src-ip 10.0.0.1", "one family"]);
}

#[test]
fn gen_size_must_hold_ipv6_and_vlan_headers() {
    let m = refused(&["gen", "-i", "xp-tx", "--ipv6", "--size", "64"]);
    assert_says(&m, &["--size 64", "IPv6", "at least 82 B", "give --size 82 or more"]);
    let m = refused(&gen_args(&["--vlan", "5,6", "--size", "64"]));
    assert_says(&m, &["--size 64", "IPv4/UDP with two VLAN tags", "at least 70 B"]);
    let m = refused(&["gen", "-i", "xp-tx", "--ipv6", "--size", "imix"]);
    assert_says(&m, &["--size imix", "fixed --size of 82"]);
    let m = refused(&gen_args(&["--vlan", "7", "--size", "imix"]));
    assert_says(&m, &["--size imix", "IPv4/UDP with a VLAN tag", "66 B"]);
}

#[test]
fn gen_vlan_ids_are_refused_by_clap() {
    clap_refuses(&gen_args(&["--vlan", "4095"]), "1 to 4094");
    clap_refuses(&gen_args(&["--vlan", "0"]), "1 to 4094");
    clap_refuses(&gen_args(&["--vlan", "1,2,3"]), "at most two");
    clap_refuses(&gen_args(&["--vlan", "ten"]), "a number from 1 to 4094");
}

#[test]
fn gen_xdp_live_sends_untagged_ipv4_only() {
    let m = refused(&["gen", "-i", "xp-tx", "--engine", "xdp-live", "--ipv6", "--size", "82"]);
    assert_says(&m, &["--ipv6 with --engine xdp-live", "untagged IPv4 frames at fixed offsets", "use --engine xsk"]);
    let m = refused(&gen_args(&["--engine", "xdp-live", "--vlan", "100"]));
    assert_says(&m, &["--vlan 100 with --engine xdp-live", "use --engine xsk"]);
}

// ---- veth

#[test]
fn veth_mtu_is_jumbo_for_jumbo_sizes_and_checked_against_the_size() {
    let mtu = |args: &[&str]| {
        let mut v = vec!["veth"];
        v.extend(args);
        let Cmd::Veth(a) = parse(&v) else { unreachable!() };
        a.validate().unwrap().config.mtu
    };
    assert_eq!(mtu(&[]), None, "the veth default (1500)");
    assert_eq!(mtu(&["--size", "1518"]), None);
    assert_eq!(mtu(&["--size", "1522", "--vlan", "5"]), None, "a tagged 1500 B MTU frame");
    assert_eq!(mtu(&["--size", "1519"]), Some(9000));
    assert_eq!(mtu(&["--size", "9018"]), Some(9000));
    assert_eq!(mtu(&["--size", "4000", "--mtu", "3982"]), Some(3982));
    let m = refused(&["veth", "--size", "4000", "--mtu", "3000"]);
    assert_says(&m, &["--size 4000 with --mtu 3000", "at most the MTU + 18 B (3018 B)", "raise --mtu to 3982"]);
    assert_says(&refused(&["veth", "--mtu", "9001"]), &["--mtu 9001", "68", "9000"]);
    assert_says(&refused(&["veth", "--size", "9019"]), &["--size 9019", "9018"]);
    let m = refused(&["veth", "--mode", "fwd", "--size", "3845"]);
    assert_says(&m, &["--mode fwd with --size 3845", "multi-buffer", "--mode l2fwd", "--size 3844 or less"]);
}

#[test]
fn veth_passes_ipv6_and_vlan_to_its_generator() {
    let Cmd::Veth(a) = parse(&["veth", "--ipv6", "--vlan", "100,200"]) else { unreachable!() };
    let g = a.validate().unwrap().config.gen_cfg;
    assert_eq!((g.src_ip.to_string(), g.dst_ip.to_string()), ("2001:2:0:77::2".into(), "2001:2:0:77::1".into()));
    assert_eq!((g.vlan.ids(), g.sizes), (&[100, 200][..], SizeSpec::Fixed(90)));
    let Cmd::Veth(a) = parse(&["veth"]) else { unreachable!() };
    let g = a.validate().unwrap().config.gen_cfg;
    assert_eq!((g.src_ip.to_string(), g.vlan, g.sizes), ("10.77.0.2".into(), VlanTags::NONE, SizeSpec::Fixed(64)));
    assert_says(&refused(&["veth", "--ipv6", "--engine", "xdp-live"]), &["--ipv6 with --engine xdp-live"]);
    assert_says(&refused(&["veth", "--ipv6", "--size", "78"]), &["--size 78", "at least 82 B"]);
}

#[test]
fn veth_flags_validate_into_typed_side_configs() {
    let Cmd::Veth(a) = parse(&["veth", "--rate", "1.5mpps", "--size", "imix", "--mode", "l2fwd"]) else {
        unreachable!()
    };
    let c = a.validate().unwrap();
    let (g, r) = (&c.config.gen_cfg, &c.config.rx);
    assert_eq!((g.sizes.clone(), g.rate, g.engine), (SizeSpec::Imix, Rate::Pps(1.5e6), Engine::Xsk));
    assert_eq!((r.mode, r.xdp_mode, r.poll), (ModeKind::L2fwd, XdpMode::Native, PollWait::Busy));
    assert_eq!(r.cores.as_ref().map(|c| c.ids().to_vec()), Some(vec![1]));
    assert!(r.xsk.tx_size.is_some(), "l2fwd transmits");
}

#[test]
fn veth_threaded_napi_needs_native() {
    let m = refused(&["veth", "--xdp-mode", "skb", "--threaded-napi"]);
    assert_says(&m, &["--threaded-napi with --xdp-mode skb", "use --xdp-mode native"]);
}

#[test]
fn veth_xdp_live_is_unpaced() {
    assert_says(&refused(&["veth", "--engine", "xdp-live", "--rate", "1gbit"]), &["--engine xdp-live", "--rate max"]);
}

#[test]
fn veth_duration_and_counts() {
    assert_says(&refused(&["veth", "-d=-1"]), &["--duration -1", "positive"]);
    assert_says(&refused(&["veth", "--flows", "0"]), &["--flows 0"]);
    assert_says(&refused(&["veth", "-n", "0"]), &["--count 0"]);
}

#[test]
fn veth_napi_core_requires_threaded_napi() {
    clap_refuses(&["veth", "--napi-core", "1"], "--threaded-napi");
}

// ---- bench

#[test]
fn bench_defaults_validate() {
    let Cmd::Bench(a) = parse(&["bench"]) else { unreachable!() };
    let c = a.validate().unwrap();
    assert_eq!(c.matrix.sizes.len(), 8, "RFC 2544 sizes plus imix");
    assert_eq!(c.matrix.scenarios().len(), 16);
    assert!(c.anchors.is_some());
    assert_eq!(c.label().to_string(), "veth");
}

#[test]
fn bench_kernel_baselines_only_on_device_targets() {
    let m = refused(&["bench", "--target", "vm:igb", "--kernel-baselines"]);
    assert_says(&m, &["--kernel-baselines", "not measure them on vm:igb", "drop the flag"]);
    let m = refused(&["bench", "--target", "path:kubevirt", "--sizes", "imix"]);
    assert_says(&m, &["--sizes imix", "one frame size", "--sizes 64,1518"]);
    for t in ["veth", "bridge", "vm:geneve"] {
        let Cmd::Bench(a) = parse(&["bench", "--target", t, "--kernel-baselines", "--anchors", "off"]) else {
            unreachable!()
        };
        if let Err(e) = a.validate() {
            panic!("--target {t} --kernel-baselines refused: {}", e.0);
        }
    }
}

#[test]
fn bench_sizes_in_range() {
    let m = refused(&["bench", "--sizes", "10"]);
    assert_says(&m, &["--sizes 10: out of range", "62", "e.g. 64,1518,jumbo or imix"]);
    assert_says(&refused(&["bench", "--sizes", "64,9019"]), &["--sizes 9019", "9018", "jumbo"]);
    clap_refuses(&["bench", "--sizes", "big"], "imix");
    // jumbo is 9018 B (a 9000 B MTU), sent multi-buffer by the AF_XDP engine only.
    let Cmd::Bench(a) = parse(&["bench", "--sizes", "64,4000,jumbo"]) else { unreachable!() };
    let c = a.validate().unwrap();
    assert_eq!(c.matrix.sizes.iter().map(|s| s.max_bytes()).collect::<Vec<_>>(), vec![64, 4000, 9018]);
    let m = refused(&["bench", "--sizes", "jumbo", "--engines", "xsk,xdp-live"]);
    assert_says(&m, &["--sizes 9018 with --engines xdp-live", "at most 3844 B", "drop xdp-live"]);
    let m = refused(&["bench", "--sizes", "4000", "--modes", "rxdrop,fwd"]);
    assert_says(&m, &["--sizes 4000 with --modes fwd", "multi-buffer", "drop fwd"]);
}

#[test]
fn bench_axes_not_empty_or_repeated() {
    assert_says(&refused(&["bench", "--modes", "rxdrop,rxdrop"]), &["--modes: rxdrop is listed twice"]);
    assert_says(&refused(&["bench", "--sizes", "64,64"]), &["--sizes: 64 is listed twice"]);
    clap_refuses(&["bench", "--modes", ""], "possible values");
}

#[test]
fn bench_unknown_axis_values_refused_by_clap() {
    clap_refuses(&["bench", "--xdp-modes", "auto"], "possible values: skb, native");
    clap_refuses(&["bench", "--engines", "pktgen"], "possible values: xsk, xdp-live");
    clap_refuses(&["bench", "--waits", "sleep"], "possible values: busy, poll, busy-poll");
    clap_refuses(&["bench", "--target", "vm:e1000"], "vm:igb, vm:virtio or vm:DEVICE");
    clap_refuses(&["bench", "--target", "vm:ipvlan"], "ipvlan-l2, ipvlan-l3");
    clap_refuses(&["bench", "--threaded-napi", "maybe"], "possible values");
}

#[test]
fn bench_guest_device_targets_take_the_device_targets_limits() {
    let m = refused(&["bench", "--target", "vm:netkit", "--queues", "1,4"]);
    assert_says(&m, &["--queues, --binds and --offloads"]);
    let m = refused(&["bench", "--target", "vm:geneve", "--engines", "xdp-live", "--sizes", "64"]);
    assert_says(&m, &["--target geneve", "Geneve device", "--engines xsk"]);
    let Cmd::Bench(b) = parse(&["bench", "--target", "ipvlan-l3", "--emulated-as", "vm:ipvlan-l3", "--anchors", "off"])
    else {
        panic!("not a bench")
    };
    assert_eq!(b.validate().unwrap().matrix.target.to_string(), "vm:ipvlan-l3");
}

#[test]
fn bench_kubevirt_stages_are_labelled_and_checked() {
    let m = refused(&["bench", "--target", "geneve", "--kubevirt-hop", "3", "--anchors", "off"]);
    assert_says(&m, &["--kubevirt-hop 3 (+ovs)", "--target kubevirt-ovs", "not geneve"]);
    let m = refused(&["bench", "--target", "veth", "--kubevirt-hop", "7"]);
    assert_says(&m, &["--kubevirt-hop 7", "stages 0 to 6"]);
    let m = refused(&["bench", "--target", "vm:kubevirt-ovs", "--kernel-baselines"]);
    assert_says(&m, &["--kernel-baselines with --target vm:kubevirt-ovs", "--target geneve"]);
    let m = refused(&["bench", "--target", "kubevirt-tap", "--anchors", "off"]);
    assert_says(&m, &["--target kubevirt-tap", "one frame size"]);
    let m = refused(&["bench", "--target", "path:kubevirt", "--queues", "4"]);
    assert_says(&m, &["--queues, --binds and --offloads"]);
    let Cmd::Bench(b) = parse(&["bench", "--target", "kubevirt-ovs", "--kubevirt-hop", "3", "--anchors", "off"]) else {
        panic!("not a bench")
    };
    let c = b.validate().unwrap_or_else(|e| panic!("{}", e.0));
    assert_eq!(c.matrix.target.to_string(), "path:kubevirt");
    assert_eq!(c.hop.map(|h| (h.index, h.name)), Some((3, "+ovs".to_owned())));
}

#[test]
fn bench_busy_poll_needs_native_and_coalescing_needs_poll() {
    let m = refused(&["bench", "--waits", "busy,busy-poll"]);
    assert_says(&m, &["--waits busy-poll", "skb mode has no NAPI", "--xdp-modes native"]);
    let Cmd::Bench(b) = parse(&["bench", "--waits", "busy-poll,poll", "--xdp-modes", "native", "--coalesce-us", "20"])
    else {
        panic!("not a bench")
    };
    let c = b.validate().unwrap_or_else(|e| panic!("{}", e.0));
    assert_eq!(c.coalesce, (Some(20), None));
    let m = refused(&["bench", "--xdp-modes", "native", "--coalesce-us", "20"]);
    assert_says(&m, &["--coalesce-us moderates the sleeping wait", "add poll to --waits"]);
    let m = refused(&["bench", "--waits", "poll", "--coalesce-frames", "0"]);
    assert_says(&m, &["--coalesce-frames \"0\""]);
}

#[test]
fn run_busy_poll_flags_parse_and_default_the_budget_to_the_batch() {
    let Cmd::Run(r) = parse(&["run", "-i", "x", "--poll", "busy-poll", "--batch", "32", "--busy-poll-usecs", "50"])
    else {
        panic!("not a run")
    };
    let c = r.validate().unwrap().config;
    assert_eq!(c.poll, PollWait::BusyPoll);
    assert_eq!((c.busy_poll.usecs, c.busy_poll.budget, c.busy_poll.defer_hard_irqs), (50, 32, 2));
    assert_eq!(c.coalesce, None);
    let Cmd::Run(r) = parse(&["run", "-i", "x", "--poll", "--coalesce-us", "30"]) else { panic!("not a run") };
    assert_eq!(r.validate().unwrap().config.coalesce, Some(xdpipe::config::Coalesce { us: 30, frames: 64 }));
}

#[test]
fn bench_veth_has_no_nic_axes() {
    let m = refused(&["bench", "--queues", "1,4"]);
    assert_says(&m, &["--queues, --binds and --offloads are axes of the nic and vm targets", "--target nic:IFACE"]);
    assert_says(&refused(&["bench", "--binds", "zero-copy"]), &["--binds"]);
}

#[test]
fn bench_queues_in_range() {
    assert_says(&refused(&["bench", "--target", "vm:igb", "--queues", "0"]), &["--queues 0", "1 to 64"]);
}

#[test]
fn bench_nic_needs_gen_iface() {
    let m = refused(&["bench", "--target", "nic:eth1"]);
    assert_says(&m, &["--target nic:eth1: give --gen-iface PORT"]);
    assert_says(
        &refused(&["bench", "--target", "nic:eth1", "--gen-iface", "eth1"]),
        &["--gen-iface eth1 is the target"],
    );
    assert_says(&refused(&["bench", "--gen-iface", "eth2"]), &["--gen-iface eth2: only --target nic:IFACE"]);
}

#[test]
fn bench_fwd_needs_veth() {
    let m = refused(&["bench", "--target", "nic:a", "--gen-iface", "b", "--modes", "fwd"]);
    assert_says(&m, &["--modes fwd needs the veth testbed", "xdpipe run --mode fwd"]);
}

#[test]
fn bench_threaded_napi_needs_native_on_veth() {
    let m = refused(&["bench", "--threaded-napi", "both"]);
    assert_says(&m, &["--threaded-napi both", "use --xdp-modes native"]);
    let m = refused(&["bench", "--target", "vm:igb", "--xdp-modes", "native", "--threaded-napi", "on"]);
    assert_says(&m, &["--threaded-napi", "--target veth"]);
    let Cmd::Bench(a) = parse(&["bench", "--threaded-napi", "on", "--xdp-modes", "native"]) else { unreachable!() };
    assert_eq!(a.validate().unwrap().matrix.threaded_napi, [true]);
}

#[test]
fn bench_napi_core_needs_threaded_napi() {
    assert_says(&refused(&["bench", "--napi-core", "1"]), &["--napi-core 1", "--threaded-napi on"]);
}

#[test]
fn bench_xdp_live_has_no_imix() {
    let m = refused(&["bench", "--engines", "xsk,xdp-live"]);
    assert_says(&m, &["--engines xdp-live", "--sizes 64,1518"]);
    let Cmd::Bench(a) = parse(&["bench", "--engines", "xdp-live", "--sizes", "64"]) else { unreachable!() };
    assert!(a.validate().is_ok());
}

#[test]
fn bench_trial_counts_and_durations() {
    assert_says(&refused(&["bench", "--trials", "0"]), &["--trials 0", "at least 1"]);
    assert_says(&refused(&["bench", "--trial-secs", "0"]), &["--trial-secs 0", "positive"]);
    assert_says(&refused(&["bench", "--search-secs=-1"]), &["--search-secs -1"]);
    assert_says(&refused(&["bench", "--latency-fraction", "2"]), &["--latency-fraction 2", "0 to 1"]);
}

#[test]
fn bench_anchor_rates_and_trials() {
    assert_says(&refused(&["bench", "--anchor-cpu-rate", "1gbit"]), &["--anchor-cpu-rate", "200kpps"]);
    assert_says(&refused(&["bench", "--anchor-trials", "0"]), &["--anchor-trials 0", "--anchors off"]);
    let Cmd::Bench(a) = parse(&["bench", "--anchors", "off", "--anchor-cpu-rate", "max"]) else { unreachable!() };
    assert!(a.validate().unwrap().anchors.is_none(), "off: the anchor flags are not used");
}

#[test]
fn bench_anchor_only_names_the_comparisons_it_could_mean() {
    let Cmd::Bench(a) = parse(&["bench", "--anchor-only", "CPU per frame,busy-poll"]) else { unreachable!() };
    let only = a.validate().unwrap().anchors.unwrap().only;
    assert_eq!(only, ["CPU per frame", "busy-poll"]);
    // A text no comparison holds: refused with the names it could have matched.
    let m = refused(&["bench", "--anchor-only", "cpu,nonsense"]);
    assert_says(&m, &["--anchor-only \"nonsense\"", "rxdrop --poll CPU per frame vs xdpsock -p", "l2fwd vs xdpsock"]);
    // busy-poll runs in native mode only: not in a skb-only run.
    assert_says(&refused(&["bench", "--xdp-modes", "skb", "--anchor-only", "busy-poll"]), &["\"busy-poll\""]);
    assert_says(&refused(&["bench", "--anchor-only", " "]), &["empty", "leave the flag out"]);
    assert_says(&refused(&["bench", "--anchors", "off", "--anchor-only", "cpu"]), &["--anchors off"]);
    assert_says(&refused(&["bench", "--target", "bridge", "--anchor-only", "cpu"]), &["plain veth testbed only"]);
}

#[test]
fn bench_emulated_as_is_a_vm() {
    assert_says(&refused(&["bench", "--emulated-as", "veth"]), &["--emulated-as veth", "vm:igb"]);
}

// ---- bench --quick and --gate

#[test]
fn bench_quick_is_the_short_end_to_end_preset() {
    let Cmd::Bench(a) = parse(&["bench", "--quick"]) else { unreachable!() };
    let c = a.validate().unwrap();
    let labels: Vec<String> = c.matrix.scenarios().iter().map(|s| s.label()).collect();
    assert_eq!(labels, ["veth skb copy rxdrop 64B xsk q1 busy"]);
    let p = c.procedure;
    assert_eq!((p.trials, p.trial_secs, p.search.search_secs, p.zero_loss), (3, 2.0, 0.5, true));
    assert_eq!((p.search.resolution, p.search.max_steps, p.search.confirm_attempts), (0.05, 6, 2));
    let count = p.count.expect("an exact-count trial");
    assert_eq!((count.trials, count.rate_pps, count.secs), (1, 100e3, 2.0));
    assert!(c.anchors.is_none(), "anchors off");
    // Without --quick: no count trials, anchors on, the full matrix.
    let Cmd::Bench(full) = parse(&["bench"]) else { unreachable!() };
    assert!(full.validate().unwrap().procedure.count.is_none());
}

#[test]
fn bench_quick_keeps_the_flags_given() {
    let Cmd::Bench(a) = parse(&["bench", "--quick", "--trials", "5", "--sizes", "64,128", "--anchors", "auto"]) else {
        unreachable!()
    };
    let c = a.validate().unwrap();
    assert_eq!(c.procedure.trials, 5);
    assert_eq!(c.matrix.scenarios().len(), 2);
    assert!(c.anchors.is_some());
    assert_eq!(c.procedure.trial_secs, 2.0, "the preset's other values stay");
    let Cmd::Bench(a) = parse(&["bench", "--quick", "--count-trials", "3", "--count-rate", "50kpps"]) else {
        unreachable!()
    };
    let count = a.validate().unwrap().procedure.count.unwrap();
    assert_eq!((count.trials, count.rate_pps), (3, 50e3));
}

#[test]
fn bench_quick_refuses_what_would_not_check_the_path() {
    assert_says(
        &refused(&["bench", "--quick", "--target", "nic:eth1", "--gen-iface", "eth2"]),
        &["--quick --target nic:eth1", "veth", "drop --quick"],
    );
    assert_says(
        &refused(&["bench", "--quick", "--count-trials", "0"]),
        &["--quick --count-trials 0", "give 1 or more"],
    );
    assert_says(&refused(&["bench", "--quick", "--engines", "xdp-live"]), &["--quick --engines xdp-live", "add xsk"]);
    assert_says(&refused(&["bench", "--count-trials", "1", "--count-rate", "max"]), &["--count-rate", "100kpps"]);
    assert_says(&refused(&["bench", "--junit", "j.xml"]), &["--junit j.xml", "add --gate FILE"]);
}

// ---- multi-queue generator

const GEN: [&str; 7] = ["gen", "-i", "xp-tx", "--src-ip", "10.0.0.1", "--dst-ip", "10.0.0.2"];

fn gen_with(extra: &[&'static str]) -> Vec<&'static str> {
    GEN.iter().chain(extra).copied().collect()
}

#[test]
fn gen_queues_and_cores_pair_up() {
    let Cmd::Gen(a) = parse(&gen_with(&["--queues", "0-1", "--cores", "1,0", "--flows", "4"])) else { unreachable!() };
    let c = a.validate().unwrap().config;
    assert_eq!(c.queues.ids(), &[0, 1]);
    assert_eq!(c.cores.as_ref().map(|c| c.ids().to_vec()), Some(vec![1, 0]));
    // The single-queue spellings still work.
    let Cmd::Gen(a) = parse(&gen_with(&["--queue", "3", "--core", "1"])) else { unreachable!() };
    let c = a.validate().unwrap().config;
    assert_eq!((c.queues.ids(), c.cores.map(|c| c.ids().to_vec())), (&[3][..], Some(vec![1])));
}

#[test]
fn gen_needs_a_flow_and_a_core_per_queue() {
    let m = refused(&gen_with(&["--queues", "0-3", "--flows", "2"]));
    assert_says(&m, &["--flows 2", "--queues 0,1,2,3", "--flows 4 or more"]);
    let m = refused(&gen_with(&["--queues", "0,1", "--flows", "2", "--cores", "0"]));
    assert_says(&m, &["--cores 0", "1 core(s) for 2 queue(s)", "one core per queue"]);
}

#[test]
fn veth_queues_default_to_shared_cores_and_split_flows() {
    let Cmd::Veth(a) = parse(&["veth", "--queues", "2"]) else { unreachable!() };
    let c = a.validate().unwrap().config;
    assert_eq!(c.queues, 2);
    assert_eq!(c.gen_cfg.queues.ids(), &[0, 1]);
    assert_eq!(c.gen_cfg.flows, 2, "one flow per queue by default");
    assert_eq!(c.gen_cfg.cores.as_ref().map(|c| c.ids().to_vec()), Some(vec![0, 1]));
    assert_eq!(c.rx.queues.ids(), &[0, 1]);
    assert_eq!(c.rx.cores.as_ref().map(|c| c.ids().to_vec()), Some(vec![0, 1]));
    // One queue keeps the old cores: generator 0, receiver 1.
    let Cmd::Veth(a) = parse(&["veth"]) else { unreachable!() };
    let c = a.validate().unwrap().config;
    assert_eq!(
        (c.gen_cfg.cores.map(|c| c.ids().to_vec()), c.rx.cores.map(|c| c.ids().to_vec())),
        (Some(vec![0]), Some(vec![1]))
    );
}

#[test]
fn veth_queues_refusals_name_the_flag() {
    assert_says(&refused(&["veth", "--queues", "0"]), &["--queues 0", "1 to 64"]);
    assert_says(&refused(&["veth", "--queues", "2", "--flows", "1"]), &["--flows 1 with --queues 2", "--flows 2"]);
    assert_says(
        &refused(&["veth", "--queues", "2", "--rx-cores", "1"]),
        &["--rx-cores 1", "--queues 2", "--rx-cores 0,1"],
    );
}
