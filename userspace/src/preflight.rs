//! Checks made before xdpipe touches an interface, so it never cuts a lab machine off or
//! clobbers someone else's program: is this the uplink (default route, the SSH session)?
//! Is another XDP program attached? Does the MTU fit a UMEM frame? Each failure says what
//! is wrong and what to do. Reads routes, addresses and XDP state over rtnetlink
//! ([`crate::net`]).
use crate::net::{
    self, NetError,
    link::{XdpAttachment, XdpMode},
};

/// Why xdpipe refuses to use an interface, or could not check it.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    /// [`uplink_reason`] found a reason, and `--i-know-this-is-my-uplink` was not given.
    #[error(
        "{iface} looks like this machine's uplink ({why}); steering its traffic could cut the \
         machine off. Use a test interface, or pass --i-know-this-is-my-uplink if you really mean it"
    )]
    Uplink {
        /// The interface.
        iface: String,
        /// The reason, as [`uplink_reason`] words it.
        why: String,
    },
    /// Another XDP program is attached and `--force` was not given.
    #[error(
        "{iface} already has an XDP program attached (id {id}, name {name:?}, {mode} mode); xdpipe \
         does not replace another program. Stop whatever attached it or detach it (`ip link set dev \
         {iface} {off} off`), or pass --force to have xdpipe detach it first"
    )]
    ForeignProgram {
        /// The interface.
        iface: String,
        /// The attached program's BPF id.
        id: u64,
        /// Its name (`?` if it could not be read).
        name: String,
        /// Its attach mode: `native`, `generic`, `offload`, or `multi`.
        mode: &'static str,
        /// The `ip link` keyword that detaches it: `xdpdrv`, `xdpoffload` or `xdpgeneric`.
        off: &'static str,
    },
    /// `--force` detached in every mode and a program is still attached: a BPF link holds it.
    #[error(
        "--force could not detach program {id} ({name:?}) from {iface}: it is held by a BPF link \
         of a running process (another xdpipe, or a libxdp/aya tool); stop that process"
    )]
    HeldByLink {
        /// The interface.
        iface: String,
        /// The program still attached, its BPF id.
        id: u64,
        /// Its name (`?` if it could not be read).
        name: String,
    },
    /// The largest frame the MTU allows (MTU + 18 B of Ethernet header and one VLAN tag)
    /// needs more UMEM frames (each less the kernel's 256 B XDP headroom) than one
    /// multi-buffer frame may span.
    #[error(
        "{iface} has MTU {mtu}: frames up to {frame_len} B would span more than {max_segs} UMEM \
         frames of {room} B (a {frame_size} B UMEM frame after the kernel's 256 B headroom), more \
         than one multi-buffer frame may. Use --frame-size 4096 or lower the MTU (`ip link set dev \
         {iface} mtu {max_mtu}`)"
    )]
    MtuTooBig {
        /// The interface.
        iface: String,
        /// Its MTU, bytes (IFLA_MTU).
        mtu: u32,
        /// The largest frame that MTU allows, bytes: `mtu + 18`.
        frame_len: u32,
        /// The room for a frame in a UMEM frame, bytes: `frame_size - 256`.
        room: u32,
        /// The UMEM frame size, bytes.
        frame_size: u32,
        /// The largest MTU that fits, bytes: `room * max_segs - 18`.
        max_mtu: u32,
        /// The most UMEM frames one frame may span ([`crate::xsk::MAX_SEGS`]).
        max_segs: u32,
    },
    /// Frames longer than a UMEM frame's room need multi-buffer AF_XDP (XDP_USE_SG), and
    /// the driver does not declare it for this setup (netdev `xdp-features`).
    #[error(
        "{iface}: frames up to {frame_len} B span {segs} UMEM frames of {room} B (multi-buffer), \
         and {what} (netdev xdp-features: {features}). {fix}"
    )]
    NoMultiBuffer {
        /// The interface.
        iface: String,
        /// The largest frame, bytes.
        frame_len: u32,
        /// UMEM frames it spans.
        segs: u32,
        /// Room per UMEM frame, bytes.
        room: u32,
        /// What the driver lacks.
        what: String,
        /// The driver's XDP features, as `XdpFeatures::describe` words them.
        features: String,
        /// How to get going anyway.
        fix: String,
    },
    /// Reading the interface's link, address or route state over rtnetlink failed (for an
    /// unknown interface, [`NetError::NoSuchLink`]).
    #[error("checking {iface}: {source}")]
    Net {
        /// The interface being checked.
        iface: String,
        /// The netlink error.
        #[source]
        source: NetError,
    },
}

fn net_err(iface: &str) -> impl FnOnce(NetError) -> PreflightError + '_ {
    move |source| PreflightError::Net { iface: iface.to_owned(), source }
}

/// Why `iface` looks like the machine's uplink, if it does: it carries a default route (a
/// multipath route's next hops included, and the devices of the nexthop object a route
/// names, each member's for a group), or is a lower device (bridge or bond port,
/// VLAN's or macvlan's parent, at any depth) of an interface that does; or it has the
/// address of an SSH session, or the route back to its client, whether the session is
/// named by SSH_CONNECTION or found as an established TCP connection to local port 22
/// (sudo strips SSH_CONNECTION). In the calling thread's network namespace.
pub fn uplink_reason(iface: &str) -> Result<Option<String>, PreflightError> {
    let index = net::link::index(iface).map_err(net_err(iface))?;
    let links = net::link::list().map_err(net_err(iface))?;
    let name = |i: u32| links.iter().find(|l| l.index == i).map_or_else(|| format!("ifindex {i}"), |l| l.name.clone());
    for r in net::route::default_routes().map_err(net_err(iface))? {
        let fam = if r.ipv6 { "-6" } else { "-4" };
        // Named by its nexthop object (`nhid N`): "-4, nexthop 10".
        let fam = match r.nhid {
            Some(id) => format!("{fam}, nexthop {id}"),
            None => fam.to_owned(),
        };
        if r.oifs.contains(&index) {
            return Ok(Some(if r.oifs.len() > 1 {
                let hops: Vec<String> = r.oifs.iter().map(|&i| name(i)).collect();
                format!("it is a next hop of the multipath default route ({fam}, over {})", hops.join(", "))
            } else {
                format!("it carries the default route ({fam})")
            }));
        }
        if let Some(upper) = lower_devices(&r.oifs, &links).into_iter().find_map(|(i, up)| (i == index).then_some(up)) {
            return Ok(Some(format!(
                "it is a lower device of {}, which carries the default route ({fam})",
                name(upper)
            )));
        }
    }
    let mut sessions = Vec::new();
    if let Ok(ssh) = std::env::var("SSH_CONNECTION") {
        let parts: Vec<&str> = ssh.split_whitespace().collect();
        if let [client, _, server, _] = parts[..]
            && let (Ok(c), Ok(s)) = (client.parse(), server.parse())
        {
            sessions.push((c, s));
        }
    }
    for f in ["/proc/thread-self/net/tcp", "/proc/thread-self/net/tcp6"] {
        // A kernel without IPv6 has no tcp6: nothing to find there.
        if let Ok(text) = std::fs::read_to_string(f) {
            sessions.extend(ssh_sessions(&text));
        }
    }
    let addrs = net::link::addresses(index).map_err(net_err(iface))?;
    for (client, server) in sessions {
        if addrs.iter().any(|a| unmapped(*a) == unmapped(server)) {
            return Ok(Some(format!("it has {server}, the address of the SSH session from {client}")));
        }
        if let Ok(Some(oif)) = net::route::route_to(unmapped(client))
            && oif == index
        {
            return Ok(Some(format!("the SSH client {client} is reached through it")));
        }
    }
    Ok(None)
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is; others unchanged.
fn unmapped(a: std::net::IpAddr) -> std::net::IpAddr {
    match a {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(a, std::net::IpAddr::V4),
        v4 => v4,
    }
}

/// The devices under `carriers` (an interface's bridge or bond ports, a VLAN's or
/// macvlan's parent, and theirs in turn), each with the carrier above it. A veth's
/// IFLA_LINK is its peer, not a lower device, and is not followed.
pub fn lower_devices(carriers: &[u32], links: &[net::link::Link]) -> Vec<(u32, u32)> {
    let mut seen: Vec<u32> = carriers.to_vec();
    let mut out = Vec::new();
    let mut i = 0;
    while i < seen.len() {
        let upper = seen[i];
        let under = links.iter().filter_map(|l| {
            if l.master == Some(upper) {
                return Some(l.index);
            }
            if l.index == upper && l.kind.as_deref() != Some("veth") {
                return l.link;
            }
            None
        });
        for low in under.collect::<Vec<_>>() {
            if !seen.contains(&low) {
                seen.push(low);
                out.push((low, upper));
            }
        }
        i += 1;
    }
    out
}

/// The established TCP connections to local port 22 in a /proc/net/tcp or tcp6 text, as
/// (client, server) addresses. Lines that do not parse are skipped.
pub fn ssh_sessions(text: &str) -> Vec<(std::net::IpAddr, std::net::IpAddr)> {
    fn addr(field: &str) -> Option<(std::net::IpAddr, u16)> {
        let (ip, port) = field.split_once(':')?;
        let port = u16::from_str_radix(port, 16).ok()?;
        // Each 32-bit word is printed as the integer the kernel holds in network order.
        let mut bytes = Vec::with_capacity(16);
        for w in 0..ip.len() / 8 {
            let word = u32::from_str_radix(ip.get(w * 8..w * 8 + 8)?, 16).ok()?;
            bytes.extend_from_slice(&word.to_ne_bytes());
        }
        let ip = match bytes.len() {
            4 => std::net::IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?),
            16 => std::net::IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?),
            _ => return None,
        };
        Some((ip, port))
    }
    const ESTABLISHED: &str = "01";
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (local, remote, state) = (f.get(1)?, f.get(2)?, f.get(3)?);
            let ((server, port), (client, _)) = (addr(local)?, addr(remote)?);
            (port == 22 && *state == ESTABLISHED).then_some((client, server))
        })
        .collect()
}

/// An XDP program attached to an interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachedProgram {
    /// The program's BPF id (IFLA_XDP_PROG_ID).
    pub id: u64,
    /// The loaded program's name (`?` if it could not be read).
    pub name: String,
    /// The attach mode: `native`, `generic`, `offload`, or `multi` for programs in more
    /// than one mode (XDP_ATTACHED_MULTI).
    pub mode: &'static str,
}

fn mode_name(m: Option<XdpMode>) -> &'static str {
    m.map_or("multi", XdpMode::name)
}

/// The name of the loaded BPF program `id`, if it can be read.
fn program_name(id: u32) -> String {
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .find(|p| p.id() == id)
        .and_then(|p| p.name_as_str().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

/// The XDP program attached to `iface`, if any.
pub fn attached_program(iface: &str) -> Result<Option<AttachedProgram>, PreflightError> {
    let link = net::link::get(iface).map_err(net_err(iface))?;
    Ok(link.xdp.map(|XdpAttachment { prog_id, mode }| AttachedProgram {
        id: prog_id as u64,
        name: program_name(prog_id),
        mode: mode_name(mode),
    }))
}

/// Refuses if another program is attached; with `force`, detaches it (netlink) first.
pub fn check_no_foreign_program(iface: &str, force: bool) -> Result<(), PreflightError> {
    let Some(p) = attached_program(iface)? else { return Ok(()) };
    let off = match p.mode {
        "native" => "xdpdrv",
        "offload" => "xdpoffload",
        _ => "xdpgeneric",
    };
    if !force {
        return Err(PreflightError::ForeignProgram { iface: iface.into(), id: p.id, name: p.name, mode: p.mode, off });
    }
    log::warn!("--force: detaching XDP program {} ({:?}, {} mode) from {iface}", p.id, p.name, p.mode);
    for mode in XdpMode::ALL {
        // Errors are expected for modes with nothing attached; the re-check decides.
        let _ = net::link::detach_xdp(iface, mode);
    }
    match attached_program(iface)? {
        None => Ok(()),
        Some(p) => Err(PreflightError::HeldByLink { iface: iface.into(), id: p.id, name: p.name }),
    }
}

/// Without multi-buffer, a frame larger than the UMEM frame minus the XDP headroom is
/// dropped in copy mode: refuse an MTU that allows such frames.
/// Checks that the largest frame `iface`'s MTU allows (with one VLAN tag) fits a
/// frame's UMEM chunks, and returns `(frame_len, segs)`: that frame's length and how many
/// chunks of `frame_size` (after the 256 B headroom) it spans. More than 1 needs a socket
/// bound with XDP_USE_SG (multi-buffer); more than [`crate::xsk::MAX_SEGS`] is refused.
pub fn check_mtu(iface: &str, frame_size: u32) -> Result<(u32, u32), PreflightError> {
    let mtu = net::link::get(iface).map_err(net_err(iface))?.mtu;
    // Ethernet header plus one VLAN tag.
    let frame_len = mtu + 18;
    let room = frame_size - 256;
    let segs = frame_len.div_ceil(room);
    let max_segs = crate::xsk::MAX_SEGS as u32;
    if segs > max_segs {
        return Err(PreflightError::MtuTooBig {
            iface: iface.into(),
            mtu,
            frame_len,
            room,
            frame_size,
            max_mtu: room * max_segs - 18,
            max_segs,
        });
    }
    Ok((frame_len, segs))
}

/// Frames of up to `frame_len` B span `segs` UMEM chunks of `room` B: refuses a setup
/// whose driver declares no multi-buffer support for it. Native XDP needs the driver's
/// `rx-sg` to receive such frames (generic XDP builds them from the skb itself); a
/// zero-copy bind needs `zc-max-segs` of at least `segs`. Kernels without the netdev
/// family (before 6.3) are not refused here: the bind then says what it lacks.
pub fn check_multi_buffer(
    iface: &str,
    frame_len: u32,
    segs: u32,
    room: u32,
    native_rx: bool,
    zerocopy: bool,
) -> Result<(), PreflightError> {
    if segs <= 1 || (!native_rx && !zerocopy) {
        return Ok(());
    }
    // A missing interface or netdev family: the bind that follows names the problem.
    let Some(Ok(f)) = crate::sys::ifindex(iface).map(net::netdev::xdp_features) else {
        return Ok(());
    };
    let err = |what: String, fix: &str| PreflightError::NoMultiBuffer {
        iface: iface.into(),
        frame_len,
        segs,
        room,
        what,
        features: f.describe(),
        fix: fix.into(),
    };
    if native_rx && !f.xdp.contains(&"rx-sg") {
        return Err(err(
            "its driver lacks rx-sg: native XDP cannot receive them".into(),
            "Use --xdp-mode skb, or lower the MTU to fit one UMEM frame",
        ));
    }
    if zerocopy && f.zc_max_segs.unwrap_or(1) < segs {
        return Err(err(
            format!("its zero-copy frames span at most zc-max-segs {}", f.zc_max_segs.unwrap_or(1)),
            "Use --bind copy, or lower the MTU / --size",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_not_an_uplink_and_has_no_program() {
        // Safe anywhere: lo never carries the default route.
        assert_eq!(uplink_reason("lo").unwrap(), None);
        assert_eq!(attached_program("lo").unwrap(), None);
    }

    #[test]
    fn mtu_check_uses_frame_room() {
        // lo has a 65536 MTU: 65554 B frames span 18 UMEM frames of 3840 B (the most a
        // multi-buffer frame may), and 37 of 1792 B.
        assert_eq!(check_mtu("lo", 4096).unwrap(), (65554, 18));
        let e = check_mtu("lo", 2048).unwrap_err().to_string();
        assert!(e.contains("--frame-size 4096 or lower the MTU"), "{e}");
        assert!(e.contains("more than 18 UMEM frames of 1792 B"), "{e}");
    }

    #[test]
    fn multi_buffer_needs_rx_sg_in_native_mode() {
        // lo declares no XDP features at all: no rx-sg.
        if net::netdev::xdp_features(1).is_err() {
            eprintln!("skipped: no netdev genetlink family (Linux 6.3+)");
            return;
        }
        let e = check_multi_buffer("lo", 9018, 3, 3840, true, false).unwrap_err().to_string();
        assert!(e.contains("lo: frames up to 9018 B span 3 UMEM frames of 3840 B"), "{e}");
        assert!(e.contains("lacks rx-sg") && e.contains("--xdp-mode skb"), "{e}");
        let e = check_multi_buffer("lo", 9018, 3, 3840, false, true).unwrap_err().to_string();
        assert!(e.contains("zc-max-segs 1") && e.contains("--bind copy"), "{e}");
        // Generic XDP in copy mode, or frames that fit one UMEM frame: nothing to check.
        check_multi_buffer("lo", 9018, 3, 3840, false, false).unwrap();
        check_multi_buffer("lo", 1518, 1, 3840, true, true).unwrap();
    }

    #[test]
    fn unknown_interface_is_a_net_error() {
        assert!(matches!(
            attached_program("no-such-if0"),
            Err(PreflightError::Net { source: NetError::NoSuchLink { .. }, .. })
        ));
    }

    #[test]
    fn ssh_sessions_are_read_from_proc_net_tcp() {
        // Real lines (x86-64, little-endian): 10.0.2.15:22 <- 10.0.2.2:51234 established;
        // a listener on 22; an established connection to another port.
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
            0: 0F02000A:0016 0202000A:C822 01 00000000:00000000 02:00000 00000000 0 0 1 1\n\
            1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 2 1\n\
            2: 0F02000A:01BB 0202000A:C823 01 00000000:00000000 00:00000000 00000000 0 0 3 1\n";
        let v4 = |a: [u8; 4]| std::net::IpAddr::from(a);
        if cfg!(target_endian = "little") {
            assert_eq!(ssh_sessions(tcp), vec![(v4([10, 0, 2, 2]), v4([10, 0, 2, 15]))]);
        }
        // tcp6: ::ffff:10.0.2.15 (an IPv4 client on a dual-stack sshd).
        let tcp6 = "  sl  local_address remote_address st\n\
            0: 0000000000000000FFFF00000F02000A:0016 0000000000000000FFFF00000202000A:C822 01 0\n";
        let s = ssh_sessions(tcp6);
        assert_eq!(s.len(), 1);
        if cfg!(target_endian = "little") {
            assert_eq!(unmapped(s[0].1), v4([10, 0, 2, 15]));
        }
        assert!(ssh_sessions("garbage\n0: zz:yy 01\n1:\n").is_empty());
    }

    #[test]
    fn lower_devices_follow_ports_and_vlan_parents_but_not_veth_peers() {
        use net::link::Link;
        let l = |index, master, link, kind: Option<&str>| Link {
            index,
            master,
            link,
            kind: kind.map(str::to_owned),
            ..Link::default()
        };
        // 10 bridge carries the route; 11, 12 its ports; 12 is vlan on 13 (a bond) with
        // port 14; 15 a veth whose peer is 11 (not a lower device of anything).
        let links = [
            l(10, None, None, Some("bridge")),
            l(11, Some(10), Some(15), Some("veth")),
            l(12, Some(10), Some(13), Some("vlan")),
            l(13, None, None, Some("bond")),
            l(14, Some(13), None, None),
            l(15, None, Some(11), Some("veth")),
        ];
        assert_eq!(lower_devices(&[10], &links), vec![(11, 10), (12, 10), (13, 12), (14, 13)]);
        assert_eq!(lower_devices(&[15], &links), vec![]);
    }
}
