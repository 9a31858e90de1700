//! The stamp xdpipe's generator writes at the start of each UDP payload and receivers
//! read: flow id, sequence number and monotonic TX time. 16 bytes, so it fits the 18-byte
//! payload of a 64-byte frame.
//!
//! Layout (network byte order): magic u16 = 0x5850 ("XP"), flow u16, seq u32, tx_ns u64.

/// Bytes of a stamp on the wire.
pub const STAMP_LEN: usize = 16;
/// The stamp's first two bytes ("XP"), telling xdpipe's payloads from others.
pub const STAMP_MAGIC: u16 = 0x5850;

/// One frame's stamp, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// Flow id: the generator's index of the frame's flow.
    pub flow: u16,
    /// Sequence number within the flow, from 0, wrapping at 2^32.
    pub seq: u32,
    /// CLOCK_MONOTONIC nanoseconds at the sender.
    pub tx_ns: u64,
}

impl Stamp {
    /// Reads a stamp from a UDP payload; `None` if it is too short or not ours.
    #[inline]
    pub fn parse(payload: &[u8]) -> Option<Stamp> {
        let b: &[u8; STAMP_LEN] = payload.get(..STAMP_LEN)?.try_into().ok()?;
        if u16::from_be_bytes([b[0], b[1]]) != STAMP_MAGIC {
            return None;
        }
        Some(Stamp {
            flow: u16::from_be_bytes([b[2], b[3]]),
            seq: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            tx_ns: u64::from_be_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]),
        })
    }

    /// Writes the stamp to the first 16 bytes of `out` (which must be that long).
    #[inline]
    pub fn emit(&self, out: &mut [u8; STAMP_LEN]) {
        out[0..2].copy_from_slice(&STAMP_MAGIC.to_be_bytes());
        out[2..4].copy_from_slice(&self.flow.to_be_bytes());
        out[4..8].copy_from_slice(&self.seq.to_be_bytes());
        out[8..16].copy_from_slice(&self.tx_ns.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_fixture() {
        let s = Stamp { flow: 3, seq: 0x01020304, tx_ns: 0x1122334455667788 };
        let mut b = [0u8; STAMP_LEN];
        s.emit(&mut b);
        assert_eq!(b, [0x58, 0x50, 0, 3, 1, 2, 3, 4, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]);
        assert_eq!(Stamp::parse(&b), Some(s));
    }

    #[test]
    fn rejects_short_and_foreign_payloads() {
        assert_eq!(Stamp::parse(&[0x58, 0x50, 0]), None);
        assert_eq!(Stamp::parse(&[0u8; 32]), None);
    }
}
