//! A device's XDP feature flags, read from the kernel's `netdev` generic netlink family
//! (NETDEV_CMD_DEV_GET, Linux 6.3+): what `ip link` does not show. One request and one
//! reply per call; nothing here is on a hot path.
#![allow(unsafe_code)]

use std::{
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
};

use serde::Serialize;

const NETLINK_GENERIC: libc::c_int = 16;
const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NETDEV_CMD_DEV_GET: u8 = 1;
const NETDEV_A_DEV_IFINDEX: u16 = 1;
const NETDEV_A_DEV_XDP_FEATURES: u16 = 3;
const NETDEV_A_DEV_XDP_ZC_MAX_SEGS: u16 = 4;
const NETDEV_A_DEV_XSK_FEATURES: u16 = 6;

/// `enum netdev_xdp_act` bits and their names (as `ynl` prints them).
const XDP_ACT: [(u64, &str); 7] = [
    (1, "basic"),
    (2, "redirect"),
    (4, "ndo-xmit"),
    (8, "xsk-zerocopy"),
    (16, "hw-offload"),
    (32, "rx-sg"),
    (64, "ndo-xmit-sg"),
];
/// `enum netdev_xsk_flags` bits.
const XSK_FLAGS: [(u64, &str); 3] = [(1, "tx-timestamp"), (2, "tx-checksum"), (4, "tx-launch-time-fifo")];

/// What the driver declares for XDP and AF_XDP.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct XdpFeatures {
    /// Raw `xdp-features` bits.
    pub xdp_bits: u64,
    /// Their names: basic (native XDP), redirect, ndo-xmit (a redirect target),
    /// xsk-zerocopy, hw-offload, rx-sg (multi-buffer receive), ndo-xmit-sg.
    pub xdp: Vec<&'static str>,
    /// Fragments a zero-copy frame may span (1: no multi-buffer in zero-copy).
    pub zc_max_segs: Option<u32>,
    /// AF_XDP TX metadata the driver supports.
    pub xsk: Vec<&'static str>,
}

impl XdpFeatures {
    /// One line: `basic redirect xsk-zerocopy ...; zc-max-segs N; xsk: ...`.
    pub fn describe(&self) -> String {
        let mut s = if self.xdp.is_empty() { "none".to_owned() } else { self.xdp.join(" ") };
        if let Some(n) = self.zc_max_segs {
            s += &format!("; zc-max-segs {n}");
        }
        if !self.xsk.is_empty() {
            s += &format!("; xsk: {}", self.xsk.join(" "));
        }
        s
    }
}

fn names(bits: u64, table: &[(u64, &'static str)]) -> Vec<&'static str> {
    table.iter().filter(|(b, _)| bits & b != 0).map(|(_, n)| *n).collect()
}

#[derive(Debug, thiserror::Error)]
pub enum NetdevError {
    #[error("netlink: {0}")]
    Io(#[from] io::Error),
    #[error("this kernel has no netdev netlink family (Linux 6.3+): XDP feature flags cannot be read")]
    NoFamily,
    #[error("netlink reply to {what} is malformed")]
    Malformed { what: &'static str },
}

/// The `N` bytes at `at`, if `b` has them (netlink fields are in host byte order).
fn field<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at + N)?.try_into().ok()
}

/// A generic netlink socket.
struct Genl(OwnedFd);

impl Genl {
    fn open() -> io::Result<Self> {
        // SAFETY: plain socket(2).
        let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, NETLINK_GENERIC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a new descriptor nothing else owns.
        Ok(Self(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Sends one request (`nlmsg_type`, generic netlink `cmd`, attributes) and returns the
    /// reply's attribute bytes, or the kernel's error.
    fn request(&self, nlmsg_type: u16, cmd: u8, attrs: &[u8]) -> io::Result<Vec<u8>> {
        let len = 16 + 4 + attrs.len();
        let mut msg = Vec::with_capacity(len);
        msg.extend_from_slice(&(len as u32).to_ne_bytes());
        msg.extend_from_slice(&nlmsg_type.to_ne_bytes());
        msg.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
        msg.extend_from_slice(&1u32.to_ne_bytes()); // seq
        msg.extend_from_slice(&0u32.to_ne_bytes()); // pid: the kernel assigns ours
        msg.extend_from_slice(&[cmd, 1, 0, 0]); // genlmsghdr: cmd, version, reserved
        msg.extend_from_slice(attrs);
        // SAFETY: `msg` is a valid buffer of its length.
        let rc = unsafe { libc::send(self.0.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = vec![0u8; 16384];
        // SAFETY: `buf` is writable for its length.
        let n = unsafe { libc::recv(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let buf = &buf[..n as usize];
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "short netlink reply");
        let hdr_len = u32::from_ne_bytes(field(buf, 0).ok_or_else(bad)?) as usize;
        let typ = u16::from_ne_bytes(field(buf, 4).ok_or_else(bad)?);
        if typ == NLMSG_ERROR {
            let errno = i32::from_ne_bytes(field(buf, 16).ok_or_else(bad)?);
            return Err(io::Error::from_raw_os_error(-errno));
        }
        buf.get(20..hdr_len.min(buf.len())).map(<[u8]>::to_vec).ok_or_else(bad)
    }
}

/// Appends one netlink attribute (padded to 4 bytes).
fn put_attr(out: &mut Vec<u8>, typ: u16, payload: &[u8]) {
    out.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
    out.extend_from_slice(&typ.to_ne_bytes());
    out.extend_from_slice(payload);
    out.resize(out.len().next_multiple_of(4), 0);
}

/// Iterates over (type, payload) of a run of netlink attributes; stops at malformed data.
fn attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let len = u16::from_ne_bytes(field(b, 0)?) as usize;
        let typ = u16::from_ne_bytes(field(b, 2)?) & 0x3fff;
        let payload = b.get(4..len)?;
        b = b.get(len.next_multiple_of(4)..).unwrap_or(&[]);
        Some((typ, payload))
    })
}

fn u64_of(p: &[u8]) -> Option<u64> {
    match p.len() {
        8 => Some(u64::from_ne_bytes(field(p, 0)?)),
        4 => Some(u32::from_ne_bytes(field(p, 0)?) as u64),
        _ => None,
    }
}

/// Parses a NETDEV_CMD_DEV_GET reply's attributes.
fn parse_dev(reply: &[u8]) -> Result<XdpFeatures, NetdevError> {
    let mut f = XdpFeatures::default();
    let mut found = false;
    for (typ, p) in attrs(reply) {
        match typ {
            NETDEV_A_DEV_XDP_FEATURES => {
                f.xdp_bits = u64_of(p).ok_or(NetdevError::Malformed { what: "dev-get (xdp-features)" })?;
                f.xdp = names(f.xdp_bits, &XDP_ACT);
                found = true;
            }
            NETDEV_A_DEV_XDP_ZC_MAX_SEGS => f.zc_max_segs = u64_of(p).map(|v| v as u32),
            NETDEV_A_DEV_XSK_FEATURES => f.xsk = names(u64_of(p).unwrap_or(0), &XSK_FLAGS),
            _ => {}
        }
    }
    if !found {
        return Err(NetdevError::Malformed { what: "dev-get (no xdp-features)" });
    }
    Ok(f)
}

/// The XDP features of the device with `ifindex` in this network namespace.
pub fn xdp_features(ifindex: u32) -> Result<XdpFeatures, NetdevError> {
    let sock = Genl::open()?;
    let mut a = Vec::new();
    put_attr(&mut a, CTRL_ATTR_FAMILY_NAME, b"netdev\0");
    let fam = match sock.request(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, &a) {
        Ok(r) => r,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Err(NetdevError::NoFamily),
        Err(e) => return Err(e.into()),
    };
    let family = attrs(&fam)
        .find(|(t, _)| *t == CTRL_ATTR_FAMILY_ID)
        .and_then(|(_, p)| Some(u16::from_ne_bytes(field(p, 0)?)))
        .ok_or(NetdevError::Malformed { what: "getfamily" })?;
    let mut a = Vec::new();
    put_attr(&mut a, NETDEV_A_DEV_IFINDEX, &ifindex.to_ne_bytes());
    parse_dev(&sock.request(family, NETDEV_CMD_DEV_GET, &a)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dev_reply_parses_and_garbage_does_not_panic() {
        let mut r = Vec::new();
        put_attr(&mut r, NETDEV_A_DEV_IFINDEX, &7u32.to_ne_bytes());
        put_attr(&mut r, NETDEV_A_DEV_XDP_FEATURES, &(1u64 | 2 | 8 | 32).to_ne_bytes());
        put_attr(&mut r, NETDEV_A_DEV_XDP_ZC_MAX_SEGS, &1u32.to_ne_bytes());
        put_attr(&mut r, NETDEV_A_DEV_XSK_FEATURES, &2u64.to_ne_bytes());
        let f = parse_dev(&r).unwrap();
        assert_eq!(f.xdp, ["basic", "redirect", "xsk-zerocopy", "rx-sg"]);
        assert_eq!(f.describe(), "basic redirect xsk-zerocopy rx-sg; zc-max-segs 1; xsk: tx-checksum");
        for cut in 0..r.len() {
            let _ = parse_dev(&r[..cut]);
        }
        assert!(parse_dev(&[0xff; 9]).is_err());
    }
}
