//! The Open vSwitch kernel datapath over generic netlink, without ovs-vswitchd: a
//! datapath (family `ovs_datapath`), netdev vports on existing devices (`ovs_vport`) and
//! one wildcard flow `in_port=A actions=output:B` (`ovs_flow`), as `ovs-dpctl add-dp`,
//! `add-if` and `add-flow` would make them. Every message carries a `struct ovs_header`
//! (the datapath's ifindex, 0 for a new datapath) between the generic header and the
//! attributes. A datapath lives in the calling thread's network namespace and goes with
//! it (the module destroys a namespace's datapaths when the namespace is removed).
use super::{
    NetError,
    genl::{Attrs, Family},
    link::index,
};

const OVS_DATAPATH_VERSION: u8 = 2;
const OVS_VPORT_VERSION: u8 = 1;
const OVS_FLOW_VERSION: u8 = 1;
/// OVS_DP_CMD_NEW, OVS_VPORT_CMD_NEW, OVS_FLOW_CMD_NEW: 1 in each family.
const CMD_NEW: u8 = 1;
const OVS_DP_ATTR_NAME: u16 = 1;
const OVS_DP_ATTR_UPCALL_PID: u16 = 2;
const OVS_VPORT_ATTR_PORT_NO: u16 = 1;
const OVS_VPORT_ATTR_TYPE: u16 = 2;
const OVS_VPORT_ATTR_NAME: u16 = 3;
const OVS_VPORT_ATTR_UPCALL_PID: u16 = 5;
const OVS_VPORT_TYPE_NETDEV: u32 = 1;
const OVS_FLOW_ATTR_KEY: u16 = 1;
const OVS_FLOW_ATTR_ACTIONS: u16 = 2;
const OVS_FLOW_ATTR_MASK: u16 = 7;
const OVS_KEY_ATTR_IN_PORT: u16 = 3;
const OVS_KEY_ATTR_ETHERNET: u16 = 4;
const OVS_KEY_ATTR_ETHERTYPE: u16 = 6;
const OVS_KEY_ATTR_IPV4: u16 = 7;
const OVS_ACTION_ATTR_OUTPUT: u16 = 1;

const NEED: &str = "the openvswitch module (CONFIG_OPENVSWITCH)";
const WHAT: &str = "the ovs target";

/// `struct ovs_header` followed by `a`.
fn with_header(dp_ifindex: u32, a: Attrs) -> Attrs {
    let mut v = (dp_ifindex as i32).to_ne_bytes().to_vec();
    v.extend_from_slice(&a.0);
    Attrs(v)
}

/// Creates datapath `name` (`ovs-dpctl add-dp NAME`); it appears as an internal device
/// of that name. Misses (upcalls) go to no listener (pid 0) and are dropped.
pub fn add_datapath(name: &str) -> Result<(), NetError> {
    super::check_ifname(name)?;
    let mut f = Family::resolve("ovs_datapath", NEED, WHAT)?;
    let a = Attrs::default().string(OVS_DP_ATTR_NAME, name).u32(OVS_DP_ATTR_UPCALL_PID, 0);
    f.request(
        CMD_NEW,
        OVS_DATAPATH_VERSION,
        with_header(0, a),
        netlink_packet_core::NLM_F_CREATE | netlink_packet_core::NLM_F_EXCL,
        "creating OVS datapath",
        name,
    )?;
    Ok(())
}

/// Adds the existing device `dev` to datapath `dp` as netdev vport number `port`
/// (`ovs-dpctl add-if DP DEV,port_no=PORT`; 0 is the datapath's own internal port).
pub fn add_netdev_port(dp: &str, dev: &str, port: u32) -> Result<(), NetError> {
    let dp_index = index(dp)?;
    let mut f = Family::resolve("ovs_vport", NEED, WHAT)?;
    let a = Attrs::default()
        .u32(OVS_VPORT_ATTR_PORT_NO, port)
        .u32(OVS_VPORT_ATTR_TYPE, OVS_VPORT_TYPE_NETDEV)
        .string(OVS_VPORT_ATTR_NAME, dev)
        .u32(OVS_VPORT_ATTR_UPCALL_PID, 0);
    f.request(
        CMD_NEW,
        OVS_VPORT_VERSION,
        with_header(dp_index, a),
        netlink_packet_core::NLM_F_CREATE | netlink_packet_core::NLM_F_EXCL,
        "adding OVS vport",
        &format!("{dev} -> {dp} port {port}"),
    )?;
    Ok(())
}

/// Installs the flow `in_port=FROM, eth_type=0x0800 actions=output:TO` in datapath `dp`
/// (every other field wildcarded: the mask gives in_port and the EtherType exactly,
/// Ethernet addresses and the IPv4 header as zero), like `ovs-dpctl add-flow DP
/// "in_port(FROM),eth_type(0x0800),ipv4()" TO`.
pub fn add_output_flow(dp: &str, from: u32, to: u32) -> Result<(), NetError> {
    let dp_index = index(dp)?;
    let mut f = Family::resolve("ovs_flow", NEED, WHAT)?;
    let key = Attrs::default()
        .u32(OVS_KEY_ATTR_IN_PORT, from)
        .bytes(OVS_KEY_ATTR_ETHERNET, &[0; 12])
        .bytes(OVS_KEY_ATTR_ETHERTYPE, &0x0800u16.to_be_bytes())
        .bytes(OVS_KEY_ATTR_IPV4, &[0; 12]);
    let mask = Attrs::default()
        .u32(OVS_KEY_ATTR_IN_PORT, u32::MAX)
        .bytes(OVS_KEY_ATTR_ETHERNET, &[0; 12])
        .bytes(OVS_KEY_ATTR_ETHERTYPE, &[0xff, 0xff])
        .bytes(OVS_KEY_ATTR_IPV4, &[0; 12]);
    let actions = Attrs::default().u32(OVS_ACTION_ATTR_OUTPUT, to);
    let a = Attrs::default()
        .nested(OVS_FLOW_ATTR_KEY, key)
        .nested(OVS_FLOW_ATTR_MASK, mask)
        .nested(OVS_FLOW_ATTR_ACTIONS, actions);
    f.request(
        CMD_NEW,
        OVS_FLOW_VERSION,
        with_header(dp_index, a),
        netlink_packet_core::NLM_F_CREATE | netlink_packet_core::NLM_F_EXCL,
        "adding OVS flow",
        &format!("in_port={from} actions=output:{to} on {dp}"),
    )?;
    Ok(())
}
