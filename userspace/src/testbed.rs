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
/// The IPv6 address of [`RX_IFACE`] (/64, in RFC 5180's benchmarking range 2001:2::/48).
pub const RX_IP6: &str = "2001:2:0:77::1";
/// The IPv6 address of [`TX_IFACE`] (/64).
pub const TX_IP6: &str = "2001:2:0:77::2";

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
    /// The testbed name starts like a QEMU guest's namespace (`xdpipe-vm-...`), so
    /// `xdpipe cleanup` would take it for a guest.
    #[error(
        "testbed name {0:?}: names \"vm\" and \"vm-...\" are reserved for the QEMU guest's namespaces (xdpipe-vm-*); choose another"
    )]
    GuestName(String),
    /// The owner record could not be written (path, error); nothing was created.
    #[error("writing the testbed's owner record {0}: {1}; is /run writable (run as root)?")]
    Record(String, std::io::Error),
    /// The kernel lacks the link kind a device target needs (kind, target name).
    #[error("this kernel has no {kind} (IFLA_INFO_KIND {kind} refused); run it in the guest: --target vm:{device}")]
    MissingKind {
        /// The IFLA_INFO_KIND, e.g. `ipvlan`.
        kind: &'static str,
        /// The target, e.g. `ipvlan-l2`.
        device: &'static str,
    },
    /// The kernel has no Open vSwitch datapath (generic netlink family ovs_datapath).
    #[error(
        "this kernel has no openvswitch (generic netlink family ovs_datapath absent); run it in the guest: --target vm:{device}"
    )]
    MissingOvs {
        /// The target, e.g. `ovs`.
        device: &'static str,
    },
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
    /// Removes the namespaces and the owner record: when dropped, or on the second
    /// signal ([`crate::teardown::run_all`]); None once kept.
    undo: Option<crate::teardown::Undo>,
}

/// Where each testbed records its owner: `<name>` holds "pid starttime", or "kept" for a
/// testbed `xdpipe testbed create` made for the user. The directory is 0700, the records
/// 0600: only root reads or writes them.
pub const OWNER_DIR: &str = "/run/xdpipe/testbeds";

/// Checks that `name` can be a path component and a namespace name: 1 to 24 ASCII
/// letters, digits or '-' (so no '/', no "..", nothing a shell would read twice), and not
/// a guest's (`vm`, `vm-...`).
pub fn validate_name(name: &str) -> Result<(), TestbedError> {
    if name.is_empty() || name.len() > 24 || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(TestbedError::BadName(name.to_owned()));
    }
    if name == "vm" || name.starts_with("vm-") {
        return Err(TestbedError::GuestName(name.to_owned()));
    }
    Ok(())
}

/// Writes an owner record `dir/name` (mode 0600, `dir` made 0700), replacing any.
pub fn write_record(dir: &str, name: &str, content: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    use std::{
        io::Write as _,
        os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _},
    };
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    // An existing directory (made by an older xdpipe or guest.sh) gets the mode too.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(format!("{dir}/{name}"))?;
    f.write_all(content.as_bytes())
}

/// A process's identity "pid starttime" (start time: field 22 of /proc/PID/stat, clock
/// ticks since boot), so a recycled pid is not mistaken for the owner. None if the
/// process does not exist.
pub fn identity(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(format!("{pid} {}", start_time(&stat)?))
}

/// This process's identity (see [`identity`]).
fn self_identity() -> String {
    identity(std::process::id()).unwrap_or_else(|| format!("{} 0", std::process::id()))
}

fn start_time(stat: &str) -> Option<u64> {
    // The command name (field 2) may contain spaces; fields resume after its ')'.
    stat.rsplit_once(')')?.1.split_whitespace().nth(19)?.parse().ok()
}

/// Who owns a testbed or guest, from its owner record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// No record: xdpipe did not make it, or cannot prove it did. `xdpipe cleanup`
    /// leaves it alone (`--all` removes it).
    NoRecord,
    /// Kept for the user (`xdpipe testbed create`): only `testbed destroy` or `--all`.
    Kept,
    /// The recorded process (same pid and start time) is running.
    Running,
    /// The recorded process is gone: no such pid, or the pid now belongs to a process
    /// with another start time. Only these are orphans.
    Gone,
    /// The record does not read as "pid starttime ..."; left alone like [`Owner::NoRecord`].
    Unreadable(String),
}

/// Judges an owner record's content (None: no record). `alive(pid)` gives the identity
/// ("pid starttime") of the process now holding `pid`, None if there is none.
pub fn judge_owner(record: Option<&str>, alive: impl Fn(u32) -> Option<String>) -> Owner {
    let Some(record) = record else { return Owner::NoRecord };
    let record = record.trim();
    if record == "kept" {
        return Owner::Kept;
    }
    let mut it = record.split_whitespace();
    let (Some(pid), Some(start)) = (it.next(), it.next()) else { return Owner::Unreadable(record.to_owned()) };
    let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else {
        return Owner::Unreadable(record.to_owned());
    };
    match alive(pid) {
        Some(now) if now == format!("{pid} {start}") => Owner::Running,
        _ => Owner::Gone,
    }
}

/// The owner of record `dir/name` on this host.
pub fn owner_of(dir: &str, name: &str) -> Owner {
    if validate_record_name(name).is_err() {
        return Owner::Unreadable(format!("bad record name {name:?}"));
    }
    let record = std::fs::read_to_string(format!("{dir}/{name}")).ok();
    judge_owner(record.as_deref(), identity)
}

/// A record's file name: no '/', not "." or "..", not empty.
pub fn validate_record_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(format!("{name:?} cannot name a record file: no '/', '.', '..' or NUL"));
    }
    Ok(())
}

/// The owner of testbed `name` (see [`Owner`]).
pub fn testbed_owner(name: &str) -> Owner {
    owner_of(OWNER_DIR, name)
}

/// True if the testbed `name` has an owner record whose process ended (crashed, SIGKILL)
/// without removing it.
pub fn is_orphan(name: &str) -> bool {
    testbed_owner(name) == Owner::Gone
}

/// The testbed name of an xdpipe namespace (`xdpipe-NAME-rx` -> `NAME`).
pub fn testbed_of(ns: &str) -> Option<&str> {
    ns.strip_prefix(NETNS_PREFIX)?.strip_suffix("-rx").or_else(|| ns.strip_prefix(NETNS_PREFIX)?.strip_suffix("-tx"))
}

/// Forgets the owner record of a removed testbed (nothing for a name that is not a
/// valid record name).
pub fn forget_owner(name: &str) {
    if validate_record_name(name).is_ok() {
        let _ = std::fs::remove_file(format!("{OWNER_DIR}/{name}"));
    }
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
        validate_name(name)?;
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
        write_record(OWNER_DIR, name, &self_identity())
            .map_err(|e| TestbedError::Record(format!("{OWNER_DIR}/{name}"), e))?;
        // From the first namespace on, dropping `tb` (or a second signal) removes
        // whatever exists.
        let (n, r, t) = (name.to_owned(), rx_ns.clone(), tx_ns.clone());
        let undo = crate::teardown::register(format!("testbed {name}"), move || remove(&n, &r, &t));
        let mut tb = Testbed {
            name: name.to_owned(),
            rx_ns,
            tx_ns,
            queues,
            rx_mac: [0; 6],
            tx_mac: [0; 6],
            sink_mac: None,
            undo: Some(undo),
        };
        net::ns::create(&tb.rx_ns)?;
        net::ns::create(&tb.tx_ns)?;
        veth_between(RX_IFACE, &tb.rx_ns, TX_IFACE, &tb.tx_ns, queues)?;
        for (ns, ifc, addr, addr6) in [(&tb.rx_ns, RX_IFACE, RX_IP, RX_IP6), (&tb.tx_ns, TX_IFACE, TX_IP, TX_IP6)] {
            with_netns(ns, || {
                net::link::set_up("lo", true)?;
                net::link::add_ipv4(ifc, ip4(addr), 24)?;
                net::link::add_ipv6(ifc, addr6.parse().expect("testbed addresses are valid"), 64)?;
                net::link::set_up(ifc, true)
            })?;
        }
        tb.rx_mac = read_mac(&tb.rx_ns, RX_IFACE)?;
        tb.tx_mac = read_mac(&tb.tx_ns, TX_IFACE)?;
        let ip6 = |s: &str| s.parse::<std::net::Ipv6Addr>().expect("testbed addresses are valid");
        with_netns(&tb.rx_ns, || {
            net::link::add_permanent_neighbour(RX_IFACE, ip4(TX_IP), tb.tx_mac)?;
            net::link::add_permanent_neighbour(RX_IFACE, ip6(TX_IP6), tb.tx_mac)
        })?;
        with_netns(&tb.tx_ns, || {
            net::link::add_permanent_neighbour(TX_IFACE, ip4(RX_IP), tb.rx_mac)?;
            net::link::add_permanent_neighbour(TX_IFACE, ip6(RX_IP6), tb.rx_mac)
        })?;
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

    /// Sets the MTU of both ends of every pair (a jumbo testbed: 9000). Deleting the
    /// testbed's namespaces deletes the pairs, so nothing is left to restore.
    pub fn set_mtu(&self, mtu: u32) -> Result<(), TestbedError> {
        let fwd = self.sink_mac.is_some();
        with_netns(&self.rx_ns, || {
            net::link::set_mtu(RX_IFACE, mtu)?;
            if fwd { net::link::set_mtu(FWD_IFACE, mtu) } else { Ok(()) }
        })?;
        with_netns(&self.tx_ns, || {
            net::link::set_mtu(TX_IFACE, mtu)?;
            if fwd { net::link::set_mtu(SINK_IFACE, mtu) } else { Ok(()) }
        })?;
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
    pub fn keep(mut self) -> Result<(), TestbedError> {
        let path = format!("{OWNER_DIR}/{}", self.name);
        // If the record cannot say "kept", the testbed is removed (dropped) instead of
        // being left for cleanup to take as an orphan.
        write_record(OWNER_DIR, &self.name, "kept").map_err(|e| TestbedError::Record(path, e))?;
        if let Some(u) = self.undo.take() {
            u.disarm();
        }
        Ok(())
    }

    /// Removes both namespaces and the owner record; errors for namespaces already gone
    /// are ignored.
    pub fn destroy(&mut self) {
        match self.undo.take() {
            Some(u) => u.run(),
            None => remove(&self.name, &self.rx_ns, &self.tx_ns),
        }
    }
}

/// Removes a testbed's namespaces and its owner record.
fn remove(name: &str, rx_ns: &str, tx_ns: &str) {
    for ns in [rx_ns, tx_ns] {
        if net::ns::exists(ns)
            && let Err(e) = delete_namespace(ns)
        {
            log::warn!("removing namespace {ns}: {e}");
        }
    }
    forget_owner(name);
}

impl Drop for Testbed {
    fn drop(&mut self) {
        if let Some(u) = self.undo.take() {
            u.run();
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
        assert!(!self_identity().ends_with(" 0"));
    }

    #[test]
    fn owners_match_by_pid_and_start_time() {
        let alive = |pid: u32| (pid == 42).then(|| "42 1000".to_owned());
        assert_eq!(judge_owner(Some("42 1000\n"), alive), Owner::Running);
        // Same pid, another start time: the pid was recycled, the owner is gone.
        assert_eq!(judge_owner(Some("42 999"), alive), Owner::Gone);
        assert_eq!(judge_owner(Some("43 1000"), alive), Owner::Gone);
        // Guest records carry the state directory after the identity.
        assert_eq!(judge_owner(Some("42 1000 /tmp/xdpipe-vm-bench.x"), alive), Owner::Running);
        assert_eq!(judge_owner(Some("kept"), alive), Owner::Kept);
        // No record, or one that does not parse: not an orphan, never removed by cleanup.
        assert_eq!(judge_owner(None, alive), Owner::NoRecord);
        assert!(matches!(judge_owner(Some("42"), alive), Owner::Unreadable(_)));
        assert!(matches!(judge_owner(Some("x 1"), alive), Owner::Unreadable(_)));
        assert!(!is_orphan("no-record-for-this-name"));
        assert_eq!(judge_owner(identity(std::process::id()).as_deref(), identity), Owner::Running);
    }

    #[test]
    fn names_that_are_not_one_path_component_or_collide_with_a_guest_are_refused() {
        for bad in ["../x", "a/b", "..", "."] {
            assert!(matches!(validate_name(bad), Err(TestbedError::BadName(_))), "{bad}");
        }
        assert!(validate_record_name("../x").is_err() && validate_record_name("..").is_err());
        for bad in ["vm", "vm-1", "vm-abc"] {
            assert!(matches!(validate_name(bad), Err(TestbedError::GuestName(_))), "{bad}");
            assert!(matches!(Testbed::create(bad, 1), Err(TestbedError::GuestName(_))), "{bad}");
        }
        assert!(validate_name("vmx").is_ok() && validate_name("v123x4").is_ok());
    }

    #[test]
    fn records_have_explicit_modes() {
        use std::os::unix::fs::PermissionsExt as _;
        let d = crate::sys::private_temp_dir("xdpipe-rec").unwrap();
        let dir = d.join("sub");
        let dir = dir.to_str().unwrap();
        write_record(dir, "r", "1 2").unwrap();
        let mode = |p: &str| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode(dir), mode(&format!("{dir}/r"))), (0o700, 0o600));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn unique_names_differ() {
        assert_ne!(unique_name("t"), unique_name("t"));
    }
}
