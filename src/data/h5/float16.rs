//! IEEE 754 half-precision (`float16`) datasets, which AnnData writes when asked
//! (`adata.X = X.astype("float16")`) and `hdf5-pure` hands over only as raw bytes: the
//! datatype is checked to be the standard binary16 layout and every value widened to
//! `f32` exactly (every f16 is an f32).

use hdf5_pure::{Datatype, DatatypeByteOrder};

/// Whether `dt` is IEEE binary16, and then whether it is big-endian.
pub(super) fn binary16_order(dt: &Datatype) -> Option<bool> {
    match dt {
        Datatype::FloatingPoint {
            size: 2,
            byte_order,
            layout,
        } if layout.bit_offset == 0
            && layout.bit_precision == 16
            && layout.exponent_location == 10
            && layout.exponent_size == 5
            && layout.mantissa_location == 0
            && layout.mantissa_size == 10
            && layout.exponent_bias == 15 =>
        {
            match byte_order {
                DatatypeByteOrder::LittleEndian => Some(false),
                DatatypeByteOrder::BigEndian => Some(true),
                DatatypeByteOrder::Vax => None,
            }
        }
        _ => None,
    }
}

/// Raw binary16 elements (2 bytes each; a trailing odd byte is ignored) as f32.
pub(super) fn decode(raw: &[u8], big_endian: bool) -> Vec<f32> {
    raw.chunks_exact(2)
        .map(|b| {
            let bits = if big_endian {
                u16::from_be_bytes([b[0], b[1]])
            } else {
                u16::from_le_bytes([b[0], b[1]])
            };
            to_f32(bits)
        })
        .collect()
}

/// One binary16 value widened to f32 (subnormals, infinities and NaN included).
pub(super) fn to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x3ff);
    let bits = match (exp, man) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal: m * 2^-24, exact in f32.
            let v = m as f32 * f32::from_bits(0x3380_0000); // 2^-24
            return if sign != 0 { -v } else { v };
        }
        (0x1f, 0) => sign | 0x7f80_0000,
        (0x1f, m) => sign | 0x7fc0_0000 | (m << 13),
        (e, m) => sign | ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_values_widen_exactly() {
        assert_eq!(to_f32(0x0000), 0.0);
        assert_eq!(to_f32(0x3c00), 1.0);
        assert_eq!(to_f32(0x4000), 2.0);
        assert_eq!(to_f32(0x4900), 10.0);
        assert_eq!(to_f32(0x7bff), 65504.0);
        assert_eq!(to_f32(0xc000), -2.0);
        assert_eq!(to_f32(0x3555), 0.333_251_95);
        assert_eq!(to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(to_f32(0x7c00), f32::INFINITY);
        assert!(to_f32(0x7e00).is_nan());
        assert_eq!(decode(&[0x00, 0x3c, 0x00, 0x40], false), [1.0, 2.0]);
        assert_eq!(decode(&[0x3c, 0x00], true), [1.0]);
    }
}
