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
    /// exceeds the UMEM frame less the kernel's 256 B XDP headroom.
    #[error(
        "{iface} has MTU {mtu}: frames up to {frame_len} B do not fit the {room} B a {frame_size} B \
         UMEM frame holds after the kernel's 256 B headroom (copy mode without multi-buffer drops \
         them). Use --frame-size 4096 or lower the MTU (`ip link set dev {iface} mtu {max_mtu}`)"
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
        /// The largest MTU that fits, bytes: `room - 18`.
        max_mtu: u32,
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

/// Why `iface` looks like the machine's uplink, if it does: it carries a default route, or
/// the address (or the route back to the client) of the SSH session we run in.
pub fn uplink_reason(iface: &str) -> Result<Option<String>, PreflightError> {
    let index = net::link::index(iface).map_err(net_err(iface))?;
    for r in net::route::default_routes().map_err(net_err(iface))? {
        if r.oifs.contains(&index) {
            return Ok(Some(format!("it carries the default route ({})", if r.ipv6 { "-6" } else { "-4" })));
        }
    }
    if let Ok(ssh) = std::env::var("SSH_CONNECTION") {
        let parts: Vec<&str> = ssh.split_whitespace().collect();
        if let [client, _, server, _] = parts[..] {
            let has_server = net::link::addresses(index)
                .map_err(net_err(iface))?
                .iter()
                .any(|a| server.parse::<std::net::IpAddr>().is_ok_and(|s| s == *a));
            if has_server {
                return Ok(Some(format!("it has {server}, the address of this SSH session")));
            }
            if let Ok(c) = client.parse()
                && let Ok(Some(oif)) = net::route::route_to(c)
                && oif == index
            {
                return Ok(Some(format!("the SSH client {client} is reached through it")));
            }
        }
    }
    Ok(None)
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
pub fn check_mtu(iface: &str, frame_size: u32) -> Result<(), PreflightError> {
    let mtu = net::link::get(iface).map_err(net_err(iface))?.mtu;
    // Ethernet header plus one VLAN tag.
    let frame_len = mtu + 18;
    let room = frame_size - 256;
    if frame_len > room {
        return Err(PreflightError::MtuTooBig {
            iface: iface.into(),
            mtu,
            frame_len,
            room,
            frame_size,
            max_mtu: room - 18,
        });
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
        // lo has a 65536 MTU: far too big for any UMEM frame.
        let e = check_mtu("lo", 4096).unwrap_err().to_string();
        assert!(e.contains("--frame-size 4096 or lower the MTU"), "{e}");
    }

    #[test]
    fn unknown_interface_is_a_net_error() {
        assert!(matches!(
            attached_program("no-such-if0"),
            Err(PreflightError::Net { source: NetError::NoSuchLink { .. }, .. })
        ));
    }
}
