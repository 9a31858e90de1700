//! The veth testbed: two network namespaces joined by a veth pair, created over netlink
//! ([`crate::net`]) and always removed. `xdpipe testbed`, `xdpipe veth`, the benchmark and the tests all
//! build testbeds here.
//!
//! Layout for a testbed named N:
//!   namespace `xdpipe-N-rx`: interface `xp-rx`, 10.77.0.1/24 (the receiver side)
//!   namespace `xdpipe-N-tx`: interface `xp-tx`, 10.77.0.2/24 (the generator side)
//! Each side has a permanent neighbour entry for the other, so no ARP is needed before the
//! first frame. Removing the namespaces removes the veth pair with them.
//!
//! [`Testbed::add_fwd_pair`] adds a second pair for mode fwd: `xp-fwd` in the receiver
//! namespace to `xp-sink` in the generator namespace, so forwarded frames come back to
//! the generator side where a second receiver counts them.
use std::{
    net::Ipv4Addr,
    os::fd::AsFd as _,
    sync::atomic::{AtomicU32, Ordering},
};

use crate::net::{
    self, NetError,
    link::{VethEnd, VethPair},
    ns::with_netns,
};

/// Prefix of every namespace xdpipe creates; `xdpipe cleanup` removes what carries it.
pub const NETNS_PREFIX: &str = "xdpipe-";
/// The receiver's veth end, in namespace `xdpipe-N-rx`.
pub const RX_IFACE: &str = "xp-rx";
/// The generator's veth end, in namespace `xdpipe-N-tx`.
pub const TX_IFACE: &str = "xp-tx";
/// Mode fwd's out interface, in the receiver namespace (peer of [`SINK_IFACE`]).
pub const FWD_IFACE: &str = "xp-fwd";
/// Where forwarded frames arrive, in the generator namespace (peer of [`FWD_IFACE`]).
pub const SINK_IFACE: &str = "xp-sink";
/// The IPv4 address of [`RX_IFACE`] (/24).
pub const RX_IP: &str = "10.77.0.1";
/// The IPv4 address of [`TX_IFACE`] (/24).
pub const TX_IP: &str = "10.77.0.2";

/// Why a testbed could not be built or removed.
#[derive(Debug, thiserror::Error)]
pub enum TestbedError {
    /// The testbed name is empty, longer than 24 bytes, or has a character other than an
    /// ASCII letter, digit or '-'.
    #[error("testbed name {0:?}: use 1 to 24 letters, digits or '-'")]
    BadName(String),
    /// One of the testbed's namespaces (name, namespace) already exists.
    #[error(
        "testbed {0:?} already exists (namespace {1} is present); remove it with `xdpipe testbed destroy --name {0}` or `xdpipe cleanup`"
    )]
    Exists(String, String),
    /// A queue count outside 1..=64.
    #[error("queue count {0}: a veth testbed has 1 to 64 queues")]
    BadQueues(u32),
    /// A namespace, link, address or neighbour operation failed.
    #[error("building the testbed: {0}")]
    Net(#[from] NetError),
}

/// A veth pair between two fresh namespaces, removed on drop unless [`Testbed::keep`].
#[derive(Debug)]
pub struct Testbed {
    /// The testbed's name N.
    pub name: String,
    /// The receiver namespace, `xdpipe-N-rx`.
    pub rx_ns: String,
    /// The generator namespace, `xdpipe-N-tx`.
    pub tx_ns: String,
    /// RX and TX queues of each veth end (1 to 64).
    pub queues: u32,
    /// MAC of `xp-rx`.
    pub rx_mac: [u8; 6],
    /// MAC of `xp-tx`.
    pub tx_mac: [u8; 6],
    /// MAC of `xp-sink` once [`Testbed::add_fwd_pair`] ran.
    pub sink_mac: Option<[u8; 6]>,
    keep: bool,
}

/// Where each testbed records its owner: `<name>` holds "pid starttime", or "kept" for a
/// testbed `xdpipe testbed create` made for the user.
const OWNER_DIR: &str = "/run/xdpipe/testbeds";

/// This process's identity: pid and start time (field 22 of /proc/self/stat), so a
/// recycled pid is not mistaken for the owner.
fn self_identity() -> String {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    format!("{} {}", std::process::id(), start_time(&stat).unwrap_or(0))
}

fn start_time(stat: &str) -> Option<u64> {
    // The command name (field 2) may contain spaces; fields resume after its ')'.
    stat.rsplit_once(')')?.1.split_whitespace().nth(19)?.parse().ok()
}

/// True if the testbed `name` has no living owner: its process ended (crashed, SIGKILL)
/// without removing it. Testbeds kept for the user, or owned by a live process, are not.
pub fn is_orphan(name: &str) -> bool {
    let Ok(owner) = std::fs::read_to_string(format!("{OWNER_DIR}/{name}")) else {
        return true;
    };
    let owner = owner.trim();
    if owner == "kept" {
        return false;
    }
    let mut it = owner.split_whitespace();
    let (Some(pid), Some(start)) = (it.next(), it.next()) else { return true };
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => start_time(&stat).map(|s| s.to_string()) != Some(start.to_owned()),
        Err(_) => true,
    }
}

/// The testbed name of an xdpipe namespace (`xdpipe-NAME-rx` -> `NAME`).
pub fn testbed_of(ns: &str) -> Option<&str> {
    ns.strip_prefix(NETNS_PREFIX)?.strip_suffix("-rx").or_else(|| ns.strip_prefix(NETNS_PREFIX)?.strip_suffix("-tx"))
}

/// Forgets the owner record of a removed testbed.
pub fn forget_owner(name: &str) {
    let _ = std::fs::remove_file(format!("{OWNER_DIR}/{name}"));
}

/// Namespaces whose name starts with [`NETNS_PREFIX`].
pub fn xdpipe_namespaces() -> Vec<String> {
    net::ns::list().into_iter().filter(|n| n.starts_with(NETNS_PREFIX)).collect()
}

/// Deletes a namespace (and with it any veth end inside it).
pub fn delete_namespace(ns: &str) -> Result<(), TestbedError> {
    Ok(net::ns::delete(ns)?)
}

/// A name no other testbed of this process uses: `<prefix><pid>x<n>`.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}{}x{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.trim().split(':');
    for b in mac.iter_mut() {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Formats a MAC as `aa:bb:cc:dd:ee:ff` (lower-case hex).
pub fn fmt_mac(m: &[u8; 6]) -> String {
    format!("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
}

fn read_mac(ns: &str, iface: &str) -> Result<[u8; 6], TestbedError> {
    let l = with_netns(ns, || net::link::get(iface))?;
    l.mac.ok_or_else(|| {
        TestbedError::Net(NetError::Decode {
            op: "reading the MAC of",
            what: format!("{iface} (netns {ns})"),
            detail: "no address".into(),
        })
    })
}

fn ip4(s: &str) -> Ipv4Addr {
    s.parse().expect("testbed addresses are valid")
}

/// A veth pair `a` (in `a_ns`) <-> `b` (in `b_ns`), `queues` queues each, both up.
fn veth_between(a: &str, a_ns: &str, b: &str, b_ns: &str, queues: u32) -> Result<(), TestbedError> {
    let (fa, fb) = (net::ns::open(a_ns)?, net::ns::open(b_ns)?);
    net::link::add_veth(&VethPair {
        end: VethEnd { name: a, netns: Some(fa.as_fd()) },
        peer: VethEnd { name: b, netns: Some(fb.as_fd()) },
        queues,
    })?;
    Ok(())
}

impl Testbed {
    /// Builds the testbed. On any failure, what was created is removed again.
    pub fn create(name: &str, queues: u32) -> Result<Self, TestbedError> {
        if name.is_empty() || name.len() > 24 || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(TestbedError::BadName(name.to_owned()));
        }
        if !(1..=64).contains(&queues) {
            return Err(TestbedError::BadQueues(queues));
        }
        let rx_ns = format!("{NETNS_PREFIX}{name}-rx");
        let tx_ns = format!("{NETNS_PREFIX}{name}-tx");
        for ns in [&rx_ns, &tx_ns] {
            if net::ns::exists(ns) {
                return Err(TestbedError::Exists(name.to_owned(), ns.clone()));
            }
        }
        // The owner record comes first, so a crash at any later point leaves an orphan
        // that `xdpipe cleanup` recognises.
        let _ = std::fs::create_dir_all(OWNER_DIR);
        let _ = std::fs::write(format!("{OWNER_DIR}/{name}"), self_identity());
        // From the first namespace on, dropping `tb` removes whatever exists.
        let mut tb = Testbed {
            name: name.to_owned(),
            rx_ns,
            tx_ns,
            queues,
            rx_mac: [0; 6],
            tx_mac: [0; 6],
            sink_mac: None,
            keep: false,
        };
        net::ns::create(&tb.rx_ns)?;
        net::ns::create(&tb.tx_ns)?;
        veth_between(RX_IFACE, &tb.rx_ns, TX_IFACE, &tb.tx_ns, queues)?;
        for (ns, ifc, addr) in [(&tb.rx_ns, RX_IFACE, RX_IP), (&tb.tx_ns, TX_IFACE, TX_IP)] {
            with_netns(ns, || {
                net::link::set_up("lo", true)?;
                net::link::add_ipv4(ifc, ip4(addr), 24)?;
                net::link::set_up(ifc, true)
            })?;
        }
        tb.rx_mac = read_mac(&tb.rx_ns, RX_IFACE)?;
        tb.tx_mac = read_mac(&tb.tx_ns, TX_IFACE)?;
        with_netns(&tb.rx_ns, || net::link::add_permanent_neighbour(RX_IFACE, ip4(TX_IP), tb.tx_mac))?;
        with_netns(&tb.tx_ns, || net::link::add_permanent_neighbour(TX_IFACE, ip4(RX_IP), tb.rx_mac))?;
        Ok(tb)
    }

    /// Adds the forwarding pair `xp-fwd` (receiver side) <-> `xp-sink` (generator side),
    /// with as many queues as the main pair.
    pub fn add_fwd_pair(&mut self) -> Result<(), TestbedError> {
        veth_between(FWD_IFACE, &self.rx_ns, SINK_IFACE, &self.tx_ns, self.queues)?;
        with_netns(&self.rx_ns, || net::link::set_up(FWD_IFACE, true))?;
        with_netns(&self.tx_ns, || net::link::set_up(SINK_IFACE, true))?;
        self.sink_mac = Some(read_mac(&self.tx_ns, SINK_IFACE)?);
        Ok(())
    }

    /// Turns GRO on at the receiving end (`xp-rx`): frames XDP injects into a veth whose
    /// peer runs no native XDP program are taken in only with GRO on there (VETH-FACTS).
    pub fn rx_gro_on(&self) -> Result<(), TestbedError> {
        with_netns(&self.rx_ns, || net::ethtool::set_features(RX_IFACE, &["rx-gro"], true))?;
        Ok(())
    }

    /// Leaves the testbed in place when this value is dropped (for `xdpipe testbed create`);
    /// `xdpipe cleanup` leaves it alone too (`xdpipe testbed destroy` removes it).
    pub fn keep(mut self) {
        let _ = std::fs::write(format!("{OWNER_DIR}/{}", self.name), "kept");
        self.keep = true;
    }

    /// Removes both namespaces; errors for namespaces already gone are ignored.
    pub fn destroy(&mut self) {
        for ns in [&self.rx_ns, &self.tx_ns] {
            if net::ns::exists(ns)
                && let Err(e) = delete_namespace(ns)
            {
                log::warn!("removing namespace {ns}: {e}");
            }
        }
        forget_owner(&self.name);
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        if !self.keep {
            self.destroy();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_parse_and_print() {
        let m = parse_mac("02:42:ac:11:00:02").unwrap();
        assert_eq!(fmt_mac(&m), "02:42:ac:11:00:02");
        assert!(parse_mac("02:42:ac:11:00").is_none());
        assert!(parse_mac("02:42:ac:11:00:02:03").is_none());
        assert!(parse_mac("zz:42:ac:11:00:02").is_none());
    }

    #[test]
    fn names_are_validated_before_anything_is_created() {
        assert!(matches!(Testbed::create("bad name", 1), Err(TestbedError::BadName(_))));
        assert!(matches!(Testbed::create("", 1), Err(TestbedError::BadName(_))));
        assert!(matches!(Testbed::create("ok", 0), Err(TestbedError::BadQueues(0))));
    }

    #[test]
    fn owner_records() {
        let stat = "1234 (a b) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 99887 20";
        assert_eq!(start_time(stat), Some(99887));
        assert_eq!(testbed_of("xdpipe-t1x2-rx"), Some("t1x2"));
        assert_eq!(testbed_of("xdpipe-a-b-tx"), Some("a-b"));
        assert_eq!(testbed_of("other-rx"), None);
        assert!(is_orphan("no-record-for-this-name"));
        assert!(!self_identity().ends_with(" 0"));
    }

    #[test]
    fn unique_names_differ() {
        assert_ne!(unique_name("t"), unique_name("t"));
    }
}
