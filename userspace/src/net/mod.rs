//! Kernel administration: namespaces, links, addresses, neighbours, routes, XDP attach
//! state, and the `netdev` and `ethtool` generic netlink families, all synchronous and
//! behind one error type, [`NetError`]. Nothing here runs `ip`, `ethtool` or a shell.
//!
//! Contract: every function acts in the network namespace of the calling thread unless
//! its name or arguments say otherwise; [`ns::with_netns`] runs a closure inside a named
//! namespace and puts the thread back. Every error names the operation, the interface or
//! namespace, and the errno, and says what to do.
//!
//! Crates, and why:
//! - `netlink-packet-route` (0.34): the rtnetlink messages (links with veth peers,
//!   IFLA_NET_NS_FD, queue counts, IFLA_XDP, stats64; addresses; neighbours; routes with
//!   RTA_MULTIPATH). Maintained by the rust-netlink group, used by `rtnetlink`/nmstate; it
//!   has every message this module sends, so no rtnetlink attribute is hand-written.
//! - `netlink-packet-core` (0.9): netlink framing (header, NLMSG_ERROR/DONE, attribute
//!   iterator and emitter) shared by the two message crates.
//! - `netlink-packet-generic` (0.5): the generic netlink header and the CTRL family used
//!   to resolve `netdev` and `ethtool` to their ids.
//! - `netlink-sys` (0.9, no features): a plain blocking `AF_NETLINK` socket. Its async
//!   features (tokio, smol) stay off, so no runtime comes in; [`socket`] adds sequence
//!   numbers, acks, multipart dumps and extended-ack messages on top (that is what the
//!   async `netlink-proto` would do, and it is ~150 lines synchronous).
//!
//! What is hand-written, and why:
//! - The `netdev` family's attributes ([`netdev`]): no crate on crates.io carries them;
//!   they sit on `netlink-packet-generic`'s framing.
//! - The `ethtool` family's attributes ([`ethtool`]): the `ethtool` crate (0.3) is built
//!   on `netlink-proto`/`genetlink` (futures, an async connection) and has no
//!   FEATURES_SET, which `bench --offloads off` needs; its message types alone would pull
//!   in that stack. The features, channels, rings, link-mode and link-state attributes
//!   used here are written on `netlink-packet-generic`'s framing. Driver info and the RSS
//!   flow hash have no netlink message at all (ETHTOOL_GDRVINFO / ETHTOOL_GRXFH ioctls).
//! - Nexthop objects ([`nexthop`]): netlink-packet-route 0.34 has no RTM_*NEXTHOP
//!   messages; the three attributes the uplink guard reads sit on its framing.
//! - Named namespaces ([`ns`]): no maintained crate makes iproute2-compatible
//!   /run/netns entries (`netns-rs` is not maintained and bind-mounts from a forked
//!   process); the steps are a few syscalls through `libc`.
//! - Threaded NAPI ([`sysfs`]): the device-wide switch xdpipe uses is the sysfs file
//!   `threaded`. Newer kernels also take a per-NAPI `threaded` attribute in the netdev
//!   family's `napi-set` (it needs the NAPI ids from a `napi-get` dump first); that was
//!   not checked on 6.18 here, so the sysfs write stays, done from a thread inside the
//!   namespace with its own sysfs mount, as `ip netns exec` does for a program.
#![allow(unsafe_code)]

pub mod devices;
pub mod ethtool;
pub mod genl;
pub mod link;
pub mod netdev;
pub mod nexthop;
pub mod ns;
pub mod ovs;
pub mod route;
pub mod socket;
pub mod sysfs;

use std::io;

/// What went wrong in kernel administration, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The kernel refused a netlink request.
    #[error("{op} {what}: {msg} (errno {errno}){hint}")]
    Kernel {
        /// The operation, e.g. `reading link`.
        op: &'static str,
        /// Its subject: the interface, namespace or family (with ` (netns NAME)` after
        /// [`NetError::in_ns`]).
        what: String,
        /// The errno of the NLMSG_ERROR (or NLMSG_DONE) reply, positive.
        errno: i32,
        /// strerror(errno), followed by the kernel's extended-ack message when it sent one.
        msg: String,
        /// What to do about `errno`, as a message suffix, or empty.
        hint: &'static str,
    },
    /// A system call or file operation failed.
    #[error("{op} {what}: {source}{hint}")]
    Io {
        /// The operation.
        op: &'static str,
        /// Its subject (with ` (netns NAME)` after [`NetError::in_ns`]).
        what: String,
        /// The error of the call.
        #[source]
        source: io::Error,
        /// What to do about its errno, or empty.
        hint: &'static str,
    },
    /// A kernel reply did not parse.
    #[error("the kernel's reply to {op} {what} could not be parsed ({detail}); please report this with `uname -r`")]
    Decode {
        /// The operation.
        op: &'static str,
        /// Its subject (with ` (netns NAME)` after [`NetError::in_ns`]).
        what: String,
        /// What was wrong with the reply (or, for work done on a helper thread, that the
        /// thread panicked).
        detail: String,
    },
    /// No interface of that name in the namespace asked.
    #[error("no interface {iface} {ns}; check the name (`xdpipe testbed` prints the testbed's interfaces)")]
    NoSuchLink {
        /// The interface name asked for.
        iface: String,
        /// Where it was looked for: `in this namespace` or `in netns NAME`.
        ns: String,
    },
    /// A name that cannot be a namespace or interface name.
    #[error("{kind} name {name:?}: {why}")]
    BadName {
        /// `interface` or `namespace`.
        kind: &'static str,
        /// The name given.
        name: String,
        /// The rule it breaks.
        why: &'static str,
    },
    /// A generic netlink family this kernel lacks.
    #[error("this kernel has no {family} generic netlink family ({need}): {what} cannot be read or set")]
    NoFamily {
        /// The family's name, e.g. `netdev`.
        family: &'static str,
        /// The kernel it needs, e.g. `Linux 6.3+`.
        need: &'static str,
        /// What xdpipe reads or sets through it, e.g. `XDP feature flags`.
        what: &'static str,
    },
}

/// What to do about an errno, as a suffix for messages.
pub(crate) fn hint(errno: i32) -> &'static str {
    match errno {
        libc::EPERM | libc::EACCES => "; run as root (CAP_NET_ADMIN and CAP_SYS_ADMIN are needed)",
        libc::EEXIST => "; it already exists: remove it first (`xdpipe cleanup`) or use another name",
        libc::ENODEV => "; no such device in this namespace: check the interface name",
        libc::ENOENT => "; it does not exist (already removed?)",
        libc::EOPNOTSUPP => "; the driver or this kernel does not support it",
        libc::EBUSY => "; it is in use: stop whatever holds it",
        _ => "",
    }
}

impl NetError {
    pub(crate) fn io(op: &'static str, what: impl Into<String>, source: io::Error) -> Self {
        let hint = source.raw_os_error().map_or("", hint);
        NetError::Io { op, what: what.into(), source, hint }
    }

    pub(crate) fn last(op: &'static str, what: impl Into<String>) -> Self {
        Self::io(op, what, io::Error::last_os_error())
    }

    /// The errno behind this error, if the kernel gave one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetError::Kernel { errno, .. } => Some(*errno),
            NetError::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    /// Adds the namespace an operation ran in to the error's subject.
    pub fn in_ns(mut self, ns: &str) -> Self {
        match &mut self {
            NetError::Kernel { what, .. } | NetError::Io { what, .. } | NetError::Decode { what, .. } => {
                *what = format!("{what} (netns {ns})")
            }
            NetError::NoSuchLink { ns: n, .. } => *n = format!("in netns {ns}"),
            _ => {}
        }
        self
    }
}

/// Checks an interface name the way the kernel does (1 to 15 bytes, no '/', ':' or
/// whitespace), so a bad name fails with a message before any request is sent.
pub fn check_ifname(name: &str) -> Result<(), NetError> {
    let bad = |why| Err(NetError::BadName { kind: "interface", name: name.to_owned(), why });
    if name.is_empty() || name.len() > 15 {
        return bad("use 1 to 15 bytes");
    }
    if name == "." || name == ".." || name.bytes().any(|b| b == b'/' || b == b':' || b == 0 || b.is_ascii_whitespace())
    {
        return bad("'/', ':', NUL and whitespace are not allowed, nor '.' or '..'");
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// True if the test runs as root; under CI=true a test that needs root must not pass
    /// by skipping, so a missing privilege fails it there.
    pub(crate) fn root_or_skip() -> bool {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        if !root && std::env::var("CI").as_deref() == Ok("true") {
            panic!("this test needs root and CI=true is set");
        }
        root
    }

    #[test]
    fn interface_names_are_checked() {
        assert!(check_ifname("xp-rx").is_ok());
        assert!(check_ifname("abcdefghijklmno").is_ok());
        for bad in ["", "abcdefghijklmnop", "a/b", "a b", "a:b", ".", "..", "a\0"] {
            assert!(matches!(check_ifname(bad), Err(NetError::BadName { .. })), "{bad:?}");
        }
    }

    #[test]
    fn errors_say_what_to_do() {
        let e = NetError::io("creating", "netns x", io::Error::from_raw_os_error(libc::EPERM)).in_ns("y");
        let s = e.to_string();
        assert!(s.contains("run as root") && s.contains("netns y"), "{s}");
        assert_eq!(e.errno(), Some(libc::EPERM));
    }
}
