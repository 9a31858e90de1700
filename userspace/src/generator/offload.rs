//! `gen --tx-offload`: which AF_XDP TX metadata requests the generator's frames carry
//! (a UDP checksum to fill in, a TX completion timestamp), whether the device or the
//! kernel can honour them, and the summary's account of who did the work.
//!
//! Who honours a request (net/xdp/xsk.c, read in Linux 6.18): in zero-copy mode only a
//! driver whose `xsk-features` list tx-checksum / tx-timestamp; in copy mode the kernel
//! (`xsk_skb_metadata`) for any device: a checksum request becomes a CHECKSUM_PARTIAL
//! skb, completed by the device's TX checksum offload or, lacking it, by the kernel
//! (`skb_checksum_help`), and a timestamp request a software CLOCK_TAI timestamp taken
//! when the skb is freed (`xsk_destruct_skb`).
use serde::Serialize;

use super::{Engine, GenError};
use crate::{config::BindMode, netdev::XdpFeatures, pipeline::TxStamps, sys};

/// What `--tx-offload` asks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TxOffload {
    /// Each request the device lists in `xsk-features`; the rest in software.
    #[default]
    Auto,
    /// No TX metadata: checksums in userspace, no TX timestamps.
    Software,
    /// These requests, from the device (zero-copy) or the kernel's copy path; refused
    /// where neither honours them.
    Ask {
        /// A UDP checksum to fill in.
        checksum: bool,
        /// A TX completion timestamp.
        timestamp: bool,
    },
}

impl std::str::FromStr for TxOffload {
    type Err = String;
    /// `auto`, `software`, or `checksum`, `timestamp`, `checksum,timestamp`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => return Ok(TxOffload::Auto),
            "software" => return Ok(TxOffload::Software),
            _ => {}
        }
        let (mut checksum, mut timestamp) = (false, false);
        for part in s.split(',') {
            match part {
                "checksum" => checksum = true,
                "timestamp" => timestamp = true,
                _ => {
                    return Err(format!(
                        "--tx-offload {s:?}: use auto, software, or checksum and/or timestamp (checksum,timestamp)"
                    ));
                }
            }
        }
        Ok(TxOffload::Ask { checksum, timestamp })
    }
}

/// The requests the frames carry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OffloadPlan {
    /// The UDP checksum is left to the kernel or the device.
    pub checksum: bool,
    /// Every frame asks for a TX completion timestamp.
    pub timestamp: bool,
}

impl OffloadPlan {
    /// True if the UMEM needs a TX metadata area.
    pub fn any(&self) -> bool {
        self.checksum || self.timestamp
    }
}

/// What `ask` comes to on a device with `features` (None: unreadable), bound `bind`.
pub fn plan(
    ask: TxOffload,
    engine: Engine,
    features: Option<&XdpFeatures>,
    bind: BindMode,
) -> Result<OffloadPlan, GenError> {
    let lists = |f: &str| features.is_some_and(|x| x.xsk_has(f));
    match (ask, engine) {
        (TxOffload::Software, _) | (TxOffload::Auto, Engine::XdpLive) => Ok(OffloadPlan::default()),
        (TxOffload::Ask { .. }, Engine::XdpLive) => Err(GenError::TxOffload(
            "--tx-offload asks for AF_XDP TX metadata, which the xdp-live engine (XDP_TX from a BPF program) has none of; \
             use --engine xsk or --tx-offload software"
                .into(),
        )),
        (TxOffload::Auto, Engine::Xsk) => {
            Ok(OffloadPlan { checksum: lists("tx-checksum"), timestamp: lists("tx-timestamp") })
        }
        (TxOffload::Ask { checksum, timestamp }, Engine::Xsk) => {
            // Zero-copy (asked, or auto on a driver that has it): only the driver reads
            // the metadata.
            let zero_copy = bind == BindMode::ZeroCopy
                || (bind == BindMode::Auto && features.is_some_and(|f| f.xdp.contains(&"xsk-zerocopy")));
            if zero_copy {
                for (asked, feature) in [(checksum, "tx-checksum"), (timestamp, "tx-timestamp")] {
                    if asked && !lists(feature) {
                        return Err(GenError::TxOffload(format!(
                            "--tx-offload asks for {feature} on a zero-copy socket (--bind zero-copy, or auto on a driver that has it), but the device's {}: in zero-copy mode \
                             only the driver honours it; use --bind copy (the kernel's copy path honours it) or --tx-offload software",
                            features.map_or("xsk-features could not be read (Linux 6.8+)".to_owned(), |f| f.describe_xsk())
                        )));
                    }
                }
            }
            Ok(OffloadPlan { checksum, timestamp })
        }
    }
}

/// AF_XDP TX metadata against what the generator did: the device's `xsk-features`, who
/// computed the UDP checksums and who took the TX completion timestamps.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TxOffloadReport {
    /// What `--tx-offload` asked.
    pub asked: TxOffload,
    /// The device's `xsk-features` (None: not readable, kernels before 6.8).
    pub xsk_features: Option<Vec<&'static str>>,
    /// Who computed the UDP checksums: "software" (xdpipe: each template's sum plus the
    /// stamp's, RFC 1624), "device" (the driver or the NIC, asked by TX metadata),
    /// "kernel" (copy mode on a device without TX checksum offload: skb_checksum_help)
    /// or "deferred" (copy mode on veth: the skb goes to the peer as CHECKSUM_PARTIAL,
    /// with the pseudo-header sum in the field, and the peer's stack takes it as
    /// verified; a capture there sees the unfilled field).
    pub checksum: &'static str,
    /// Who took the TX completion timestamps: "none", "device" (zero-copy: the driver,
    /// in its device's clock) or "kernel" (copy mode: software CLOCK_TAI when the skb
    /// was freed, not a hardware timestamp).
    pub tx_timestamps: &'static str,
    /// The timestamps read back, summed over the queues.
    pub stamps: TxStamps,
    /// Why, in words.
    pub why: String,
}

impl TxOffloadReport {
    /// The report for `engine` on `iface` (its features read once per run), after frames
    /// went out with `plan`, bound `bind`, with `stamps` read back.
    pub fn after(
        asked: TxOffload,
        engine: Engine,
        iface: &str,
        plan: OffloadPlan,
        bind: BindMode,
        stamps: TxStamps,
    ) -> Self {
        let features = sys::ifindex(iface).and_then(|i| crate::netdev::xdp_features(i).ok());
        let xsk_features = features.as_ref().map(|f| f.xsk.clone());
        let copy = bind != BindMode::ZeroCopy;
        let checksum = match (plan.checksum, copy) {
            (false, _) => "software",
            (true, false) => "device",
            (true, true) => copy_mode_checksum(iface),
        };
        let tx_timestamps = match (plan.timestamp, copy) {
            (false, _) => "none",
            (true, false) => "device",
            (true, true) => "kernel",
        };
        let why = match (engine, plan.any()) {
            (Engine::XdpLive, _) => {
                "the xdp-live engine transmits with XDP_TX from a BPF program: AF_XDP TX metadata does not apply"
                    .to_owned()
            }
            (Engine::Xsk, false) => match (&asked, &features) {
                (TxOffload::Software, _) => "--tx-offload software: no TX metadata requested".to_owned(),
                (_, None) => "the device's xsk-features could not be read (netdev family, Linux 6.8+)".to_owned(),
                (_, Some(f)) => format!(
                    "the device lists neither tx-checksum nor tx-timestamp in xsk-features ({}): auto asks only what \
                     the device lists (--tx-offload checksum,timestamp asks the kernel's copy path)",
                    f.describe_xsk()
                ),
            },
            (Engine::Xsk, true) => format!(
                "AF_XDP TX metadata requested ({}{}) on a {} socket; {}",
                if plan.checksum { "checksum" } else { "" },
                match (plan.checksum, plan.timestamp) {
                    (true, true) => ", timestamp",
                    (false, true) => "timestamp",
                    _ => "",
                },
                if copy { "copy-mode" } else { "zero-copy" },
                features.as_ref().map_or("xsk-features unreadable".to_owned(), |f| f.describe_xsk())
            ),
        };
        Self { asked, xsk_features, checksum, tx_timestamps, stamps, why }
    }
}

/// Who completes a CHECKSUM_PARTIAL skb on `iface` in copy mode: its TX checksum
/// offload ("device", or "deferred" on veth, which passes it on unfilled), or the kernel
/// when the device has none ("kernel").
fn copy_mode_checksum(iface: &str) -> &'static str {
    let offload = crate::net::ethtool::features(iface).map(|f| {
        ["tx-checksum-ip-generic", "tx-checksum-ipv4", "tx-checksum-ipv6", "tx-checksum-hw"]
            .iter()
            .any(|n| f.is_active(n))
    });
    let veth = crate::net::ethtool::driver_info(iface).is_ok_and(|d| d.driver == "veth");
    match offload {
        Ok(false) => "kernel",
        Ok(true) if veth => "deferred",
        Ok(true) => "device",
        Err(_) => "device or kernel (ethtool features unreadable)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn features(xsk: &[&'static str]) -> XdpFeatures {
        XdpFeatures { xsk: xsk.to_vec(), ..Default::default() }
    }

    #[test]
    fn the_flag_parses_and_bad_words_are_named() {
        assert_eq!("auto".parse::<TxOffload>(), Ok(TxOffload::Auto));
        assert_eq!("software".parse::<TxOffload>(), Ok(TxOffload::Software));
        assert_eq!("checksum".parse::<TxOffload>(), Ok(TxOffload::Ask { checksum: true, timestamp: false }));
        assert_eq!("timestamp,checksum".parse::<TxOffload>(), Ok(TxOffload::Ask { checksum: true, timestamp: true }));
        assert!("checksum,hw".parse::<TxOffload>().unwrap_err().contains("checksum and/or timestamp"));
    }

    #[test]
    fn auto_asks_only_what_the_device_lists_and_zero_copy_refuses_what_it_lacks() {
        let none = features(&[]);
        let csum = features(&["tx-checksum"]);
        let p = |ask, f, bind| plan(ask, Engine::Xsk, f, bind);
        assert_eq!(p(TxOffload::Auto, Some(&none), BindMode::Auto).unwrap(), OffloadPlan::default());
        assert_eq!(
            p(TxOffload::Auto, Some(&csum), BindMode::Auto).unwrap(),
            OffloadPlan { checksum: true, timestamp: false }
        );
        assert_eq!(p(TxOffload::Auto, None, BindMode::Auto).unwrap(), OffloadPlan::default());
        let both = TxOffload::Ask { checksum: true, timestamp: true };
        // Copy mode (or auto, which is copy on a device without zero-copy): the kernel
        // honours both for any device.
        assert_eq!(p(both, Some(&none), BindMode::Copy).unwrap(), OffloadPlan { checksum: true, timestamp: true });
        let e = p(both, Some(&csum), BindMode::ZeroCopy).unwrap_err().to_string();
        assert!(
            e.contains("tx-timestamp") && e.contains("xsk-features: tx-checksum") && e.contains("--bind copy"),
            "{e}"
        );
        assert!(plan(both, Engine::XdpLive, None, BindMode::Auto).is_err());
        assert_eq!(
            plan(TxOffload::Auto, Engine::XdpLive, Some(&csum), BindMode::Auto).unwrap(),
            OffloadPlan::default()
        );
    }
}
