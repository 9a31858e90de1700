//! Checks made before xdpipe touches an interface, so it never cuts a lab machine off or
//! clobbers someone else's program: is this the uplink (default route, the SSH session)?
//! Is another XDP program attached? Does the MTU fit a UMEM frame? Each failure says what
//! is wrong and what to do. Reads iproute2's JSON output (`ip -j`).
use std::process::Command;

use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error(
        "{iface} looks like this machine's uplink ({why}); steering its traffic could cut the \
         machine off. Use a test interface, or pass --i-know-this-is-my-uplink if you really mean it"
    )]
    Uplink { iface: String, why: String },
    #[error(
        "{iface} already has an XDP program attached (id {id}, name {name:?}, {mode} mode); xdpipe \
         does not replace another program. Stop whatever attached it or detach it (`ip link set dev \
         {iface} {off} off`), or pass --force to have xdpipe detach it first"
    )]
    ForeignProgram { iface: String, id: u64, name: String, mode: &'static str, off: &'static str },
    #[error(
        "--force could not detach program {id} ({name:?}) from {iface}: it is held by a BPF link \
         of a running process (another xdpipe, or a libxdp/aya tool); stop that process"
    )]
    HeldByLink { iface: String, id: u64, name: String },
    #[error(
        "{iface} has MTU {mtu}: frames up to {frame_len} B do not fit the {room} B a {frame_size} B \
         UMEM frame holds after the kernel's 256 B headroom (copy mode without multi-buffer drops \
         them). Use --frame-size 4096 or lower the MTU (`ip link set dev {iface} mtu {max_mtu}`)"
    )]
    MtuTooBig { iface: String, mtu: u32, frame_len: u32, room: u32, frame_size: u32, max_mtu: u32 },
    #[error("running `{cmd}`: {detail}")]
    Ip { cmd: String, detail: String },
}

fn ip_json(args: &[&str]) -> Result<Value, PreflightError> {
    let cmd = format!("ip -j {}", args.join(" "));
    let out = Command::new("ip")
        .arg("-j")
        .args(args)
        .output()
        .map_err(|e| PreflightError::Ip { cmd: cmd.clone(), detail: format!("{e} (is iproute2 installed?)") })?;
    if !out.status.success() {
        return Err(PreflightError::Ip { cmd, detail: String::from_utf8_lossy(&out.stderr).trim().to_owned() });
    }
    if out.stdout.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Array(Vec::new()));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| PreflightError::Ip { cmd, detail: e.to_string() })
}

/// Why `iface` looks like the machine's uplink, if it does: it carries a default route, or
/// the address (or the route back to the client) of the SSH session we run in.
pub fn uplink_reason(iface: &str) -> Result<Option<String>, PreflightError> {
    for fam in ["-4", "-6"] {
        let routes = ip_json(&[fam, "route", "show", "default"])?;
        if routes.as_array().into_iter().flatten().any(|r| r["dev"] == iface) {
            return Ok(Some(format!("it carries the default route ({fam})")));
        }
    }
    if let Ok(ssh) = std::env::var("SSH_CONNECTION") {
        let parts: Vec<&str> = ssh.split_whitespace().collect();
        if let [client, _, server, _] = parts[..] {
            let addrs = ip_json(&["addr", "show", "dev", iface])?;
            let has_server = addrs
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
                .any(|a| a["local"] == server);
            if has_server {
                return Ok(Some(format!("it has {server}, the address of this SSH session")));
            }
            if let Ok(r) = ip_json(&["route", "get", client]) {
                if r[0]["dev"] == iface {
                    return Ok(Some(format!("the SSH client {client} is reached through it")));
                }
            }
        }
    }
    Ok(None)
}

/// An XDP program attached to an interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachedProgram {
    pub id: u64,
    pub name: String,
    pub mode: &'static str,
}

fn mode_name(m: u64) -> &'static str {
    match m {
        1 => "native",
        2 => "generic",
        3 => "offload",
        _ => "multi",
    }
}

/// The XDP program attached to `iface`, if any.
pub fn attached_program(iface: &str) -> Result<Option<AttachedProgram>, PreflightError> {
    let v = ip_json(&["-d", "link", "show", "dev", iface])?;
    let xdp = &v[0]["xdp"];
    if xdp.is_null() {
        return Ok(None);
    }
    let first = xdp["attached"].get(0).unwrap_or(xdp);
    let prog = if first["prog"].is_null() { &xdp["prog"] } else { &first["prog"] };
    Ok(Some(AttachedProgram {
        id: prog["id"].as_u64().unwrap_or(0),
        name: prog["name"].as_str().unwrap_or("?").to_owned(),
        mode: mode_name(first["mode"].as_u64().or(xdp["mode"].as_u64()).unwrap_or(0)),
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
    for mode in ["xdpgeneric", "xdpdrv", "xdpoffload"] {
        // Errors are expected for modes with nothing attached; the re-check decides.
        let _ = Command::new("ip").args(["link", "set", "dev", iface, mode, "off"]).output();
    }
    match attached_program(iface)? {
        None => Ok(()),
        Some(p) => Err(PreflightError::HeldByLink { iface: iface.into(), id: p.id, name: p.name }),
    }
}

/// Without multi-buffer, a frame larger than the UMEM frame minus the XDP headroom is
/// dropped in copy mode: refuse an MTU that allows such frames.
pub fn check_mtu(iface: &str, frame_size: u32) -> Result<(), PreflightError> {
    let v = ip_json(&["link", "show", "dev", iface])?;
    let Some(mtu) = v[0]["mtu"].as_u64().map(|m| m as u32) else { return Ok(()) };
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
    fn unknown_interface_is_an_ip_error() {
        assert!(matches!(attached_program("no-such-if0"), Err(PreflightError::Ip { .. })));
    }
}
