//! Packet views over byte buffers, smoltcp style: `new_checked` validates lengths once,
//! after which no accessor can panic; setters work on `AsMut<[u8]>`. Pure: no I/O, and it
//! never reaches the rings, the loader or `sys`.
pub mod headers;
pub mod stamp;
pub mod udpgen;

#[cfg(test)]
mod fuzz;

/// Why bytes are not a well-formed frame. Counted, never a panic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// Shorter than the header it claims to carry.
    Truncated,
    /// A length or version field that contradicts the buffer.
    BadField,
}

/// The 16-bit one's complement sum of `data` (RFC 1071), not yet folded or inverted.
pub fn ones_sum(data: &[u8], mut acc: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc = acc.wrapping_add(u16::from_be_bytes([c[0], c[1]]) as u32);
        // Fold early enough that u32 never overflows on jumbo frames.
        if acc > 0xffff_0000 {
            acc = (acc & 0xffff) + (acc >> 16);
        }
    }
    if let [b] = chunks.remainder() {
        acc = acc.wrapping_add((*b as u32) << 8);
    }
    acc
}

/// Folds a one's complement sum to 16 bits and inverts it: the checksum field value.
pub fn fold_checksum(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3 example bytes.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold_checksum(ones_sum(&data, 0)), !0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(ones_sum(&[0x12], 0), 0x1200);
    }
}
