//! A device's XDP feature flags, read from the kernel's `netdev` generic netlink family
//! (NETDEV_CMD_DEV_GET, Linux 6.3+): what `ip link` does not show; and its NAPI instances'
//! busy-polling settings (NETDEV_CMD_NAPI_GET, Linux 6.9+; NETDEV_CMD_NAPI_SET, Linux
//! 6.13+). A few requests per call; nothing here is on a hot path. No crate carries this family's
//! messages, so its few attribute numbers (from include/uapi/linux/netdev.h) are here, on
//! the framing of [`super::genl`].
use serde::Serialize;

use super::{
    NetError,
    genl::{Attrs, Family, attrs, uint},
};

const NETDEV_CMD_DEV_GET: u8 = 1;
const NETDEV_A_DEV_IFINDEX: u16 = 1;
const NETDEV_A_DEV_XDP_FEATURES: u16 = 3;
const NETDEV_A_DEV_XDP_ZC_MAX_SEGS: u16 = 4;
const NETDEV_A_DEV_XDP_RX_METADATA_FEATURES: u16 = 5;
const NETDEV_A_DEV_XSK_FEATURES: u16 = 6;
const NETDEV_CMD_NAPI_GET: u8 = 11;
const NETDEV_CMD_NAPI_SET: u8 = 14;
const NETDEV_A_NAPI_IFINDEX: u16 = 1;
const NETDEV_A_NAPI_ID: u16 = 2;
const NETDEV_A_NAPI_DEFER_HARD_IRQS: u16 = 5;
const NETDEV_A_NAPI_GRO_FLUSH_TIMEOUT: u16 = 6;
const NETDEV_A_NAPI_IRQ_SUSPEND_TIMEOUT: u16 = 7;

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
/// `enum netdev_xdp_rx_metadata` bits: the XDP RX metadata kfuncs the driver implements.
const RX_METADATA: [(u64, &str); 3] = [(1, "timestamp"), (2, "hash"), (4, "vlan-tag")];
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
    /// AF_XDP TX metadata the driver supports (`xsk-features`): tx-timestamp (a TX
    /// completion timestamp), tx-checksum (checksum offload), tx-launch-time-fifo.
    pub xsk: Vec<&'static str>,
    /// The XDP RX metadata kfuncs the driver implements (`xdp-rx-metadata-features`):
    /// timestamp, hash, vlan-tag. Empty: each returns -EOPNOTSUPP.
    pub rx_metadata: Vec<&'static str>,
}

impl XdpFeatures {
    /// `xdp-rx-metadata-features: timestamp hash ...` (or `none`), as `ynl` names it.
    pub fn describe_rx_metadata(&self) -> String {
        let names = if self.rx_metadata.is_empty() { "none".to_owned() } else { self.rx_metadata.join(" ") };
        format!("xdp-rx-metadata-features: {names}")
    }

    /// `xsk-features: tx-timestamp tx-checksum ...` (or `none`), as `ynl` names it.
    pub fn describe_xsk(&self) -> String {
        let names = if self.xsk.is_empty() { "none".to_owned() } else { self.xsk.join(" ") };
        format!("xsk-features: {names}")
    }

    /// Whether AF_XDP TX metadata can ask the device for `feature` (tx-checksum,
    /// tx-timestamp); otherwise that work is software's.
    pub fn xsk_has(&self, feature: &str) -> bool {
        self.xsk.contains(&feature)
    }

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

fn malformed(what: &str) -> NetError {
    NetError::Decode { op: "netdev dev-get", what: what.into(), detail: "no or bad xdp-features".into() }
}

/// Parses a NETDEV_CMD_DEV_GET reply's attributes.
fn parse_dev(reply: &[u8]) -> Result<XdpFeatures, NetError> {
    let mut f = XdpFeatures::default();
    let mut found = false;
    for (typ, p) in attrs(reply) {
        match typ {
            NETDEV_A_DEV_XDP_FEATURES => {
                f.xdp_bits = uint(p).ok_or_else(|| malformed("xdp-features"))?;
                f.xdp = names(f.xdp_bits, &XDP_ACT);
                found = true;
            }
            NETDEV_A_DEV_XDP_ZC_MAX_SEGS => f.zc_max_segs = uint(p).map(|v| v as u32),
            NETDEV_A_DEV_XSK_FEATURES => f.xsk = names(uint(p).unwrap_or(0), &XSK_FLAGS),
            NETDEV_A_DEV_XDP_RX_METADATA_FEATURES => f.rx_metadata = names(uint(p).unwrap_or(0), &RX_METADATA),
            _ => {}
        }
    }
    if !found {
        return Err(malformed("reply"));
    }
    Ok(f)
}

/// The XDP features of the device with `ifindex` in this network namespace.
pub fn xdp_features(ifindex: u32) -> Result<XdpFeatures, NetError> {
    let mut fam = Family::resolve("netdev", "Linux 6.3+", "XDP feature flags")?;
    let a = Attrs::default().u32(NETDEV_A_DEV_IFINDEX, ifindex);
    let r = fam.request(NETDEV_CMD_DEV_GET, 1, a, 0, "netdev dev-get", &format!("ifindex {ifindex}"))?;
    parse_dev(r.first().ok_or_else(|| malformed("no reply"))?)
}

/// One NAPI instance's busy-polling settings, as `napi-get` reports them. A field the
/// kernel does not report (older than the per-NAPI settings, Linux 6.13) is None.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NapiConfig {
    /// The NAPI id (what SO_INCOMING_NAPI_ID and busy polling name).
    pub id: u32,
    /// napi_defer_hard_irqs.
    pub defer_hard_irqs: Option<u32>,
    /// gro_flush_timeout, ns.
    pub gro_flush_timeout_ns: Option<u64>,
    /// irq_suspend_timeout, ns (Linux 6.13+).
    pub irq_suspend_timeout_ns: Option<u64>,
}

/// Parses one NETDEV_CMD_NAPI_GET reply; None without an id.
fn parse_napi(reply: &[u8]) -> Option<NapiConfig> {
    let mut n = NapiConfig::default();
    let mut id = None;
    for (typ, p) in attrs(reply) {
        match typ {
            NETDEV_A_NAPI_ID => id = uint(p).map(|v| v as u32),
            NETDEV_A_NAPI_DEFER_HARD_IRQS => n.defer_hard_irqs = uint(p).map(|v| v as u32),
            NETDEV_A_NAPI_GRO_FLUSH_TIMEOUT => n.gro_flush_timeout_ns = uint(p),
            NETDEV_A_NAPI_IRQ_SUSPEND_TIMEOUT => n.irq_suspend_timeout_ns = uint(p),
            _ => {}
        }
    }
    n.id = id?;
    Some(n)
}

/// A socket on the netdev family, opened in the calling thread's namespace: it keeps
/// talking to that namespace's devices from any thread (an undo action run at exit).
pub struct Netdev(Family);

impl Netdev {
    /// Resolves the family here; [`NetError::NoFamily`] on a kernel without it.
    pub fn open() -> Result<Self, NetError> {
        Ok(Self(Family::resolve("netdev", "Linux 6.9+ for NAPI settings", "per-NAPI busy-poll settings")?))
    }

    /// The NAPI instances of the device with `ifindex` (a dump filtered by ifindex).
    pub fn napis(&mut self, ifindex: u32) -> Result<Vec<NapiConfig>, NetError> {
        let a = Attrs::default().u32(NETDEV_A_NAPI_IFINDEX, ifindex);
        let r = self.0.request(
            NETDEV_CMD_NAPI_GET,
            1,
            a,
            netlink_packet_core::NLM_F_DUMP,
            "netdev napi-get",
            &format!("ifindex {ifindex}"),
        )?;
        Ok(r.iter().filter_map(|m| parse_napi(m)).collect())
    }

    /// Sets the fields of `c` that are Some on NAPI `c.id` (NETDEV_CMD_NAPI_SET, Linux
    /// 6.13+; an older kernel answers EOPNOTSUPP or EINVAL).
    pub fn set(&mut self, c: &NapiConfig) -> Result<(), NetError> {
        let mut a = Attrs::default().u32(NETDEV_A_NAPI_ID, c.id);
        if let Some(v) = c.defer_hard_irqs {
            a = a.u32(NETDEV_A_NAPI_DEFER_HARD_IRQS, v);
        }
        if let Some(v) = c.gro_flush_timeout_ns {
            a = a.bytes(NETDEV_A_NAPI_GRO_FLUSH_TIMEOUT, &v.to_ne_bytes());
        }
        if let Some(v) = c.irq_suspend_timeout_ns {
            a = a.bytes(NETDEV_A_NAPI_IRQ_SUSPEND_TIMEOUT, &v.to_ne_bytes());
        }
        self.0.request(NETDEV_CMD_NAPI_SET, 1, a, 0, "netdev napi-set", &format!("napi {}", c.id))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dev_reply_parses_and_garbage_does_not_panic() {
        let r = Attrs::default()
            .u32(NETDEV_A_DEV_IFINDEX, 7)
            .bytes(NETDEV_A_DEV_XDP_FEATURES, &(1u64 | 2 | 8 | 32).to_ne_bytes())
            .u32(NETDEV_A_DEV_XDP_ZC_MAX_SEGS, 1)
            .bytes(NETDEV_A_DEV_XSK_FEATURES, &2u64.to_ne_bytes())
            .bytes(NETDEV_A_DEV_XDP_RX_METADATA_FEATURES, &(1u64 | 2).to_ne_bytes())
            .0;
        let f = parse_dev(&r).unwrap();
        assert_eq!(f.xdp, ["basic", "redirect", "xsk-zerocopy", "rx-sg"]);
        assert_eq!(f.rx_metadata, ["timestamp", "hash"]);
        assert_eq!(f.describe_rx_metadata(), "xdp-rx-metadata-features: timestamp hash");
        assert_eq!(f.describe_xsk(), "xsk-features: tx-checksum");
        assert!(f.xsk_has("tx-checksum") && !f.xsk_has("tx-timestamp"));
        assert_eq!(f.describe(), "basic redirect xsk-zerocopy rx-sg; zc-max-segs 1; xsk: tx-checksum");
        for cut in 0..r.len() {
            let _ = parse_dev(&r[..cut]);
        }
        assert!(parse_dev(&[0xff; 9]).is_err());
    }

    #[test]
    fn a_napi_reply_parses_and_one_without_an_id_is_skipped() {
        let r = Attrs::default()
            .u32(NETDEV_A_NAPI_IFINDEX, 7)
            .u32(NETDEV_A_NAPI_ID, 8193)
            .u32(NETDEV_A_NAPI_DEFER_HARD_IRQS, 2)
            .bytes(NETDEV_A_NAPI_GRO_FLUSH_TIMEOUT, &200_000u64.to_ne_bytes())
            .u32(NETDEV_A_NAPI_IRQ_SUSPEND_TIMEOUT, 0)
            .0;
        let n = parse_napi(&r).unwrap();
        assert_eq!(
            n,
            NapiConfig {
                id: 8193,
                defer_hard_irqs: Some(2),
                gro_flush_timeout_ns: Some(200_000),
                irq_suspend_timeout_ns: Some(0)
            }
        );
        assert_eq!(parse_napi(&Attrs::default().u32(NETDEV_A_NAPI_DEFER_HARD_IRQS, 2).0), None);
        for cut in 0..r.len() {
            let _ = parse_napi(&r[..cut]);
        }
    }

    #[test]
    fn loopback_features_are_read_or_the_family_is_missing() {
        let lo = super::super::link::index("lo").unwrap();
        match xdp_features(lo) {
            Ok(_) | Err(NetError::NoFamily { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
}
