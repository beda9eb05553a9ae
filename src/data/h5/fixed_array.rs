//! A guard for a panic inside `hdf5-pure` 0.47.0: a Fixed Array chunk index header
//! (`FAHD`, HDF5's index for a fixed-size chunked dataset) whose page-size field
//! `max_nelmts_bits` is 64 or more makes `fixed_array.rs` compute `1u64 << bits`, which
//! panics where overflow checks are on (debug and fuzz builds) and wraps in release. A
//! fuzz finding (`tests/fuzz_regressions/tenx_h5/fixed-array-shift-overflow.h5`).
//!
//! The crate does not expose where a dataset's index lives, so the file is scanned for
//! header signatures: a candidate counts only when its version is 0 and its trailing
//! Jenkins lookup3 checksum verifies, exactly the headers `hdf5-pure` would go on to use.
//! HDF5 itself writes at most 32 bits here (pages of at most 2^32 elements), so no
//! sound file is refused. Remove this when `hdf5-pure` checks the shift.

/// Refuses `file` (named `name`) when it holds a Fixed Array header whose page bits
/// would overflow, before hdf5-pure reads any chunk index.
pub(super) fn refuse_overflowing_header(
    name: &str,
    file: &hdf5_pure::File,
) -> crate::error::Result<()> {
    let sb = file.superblock();
    refuse_overflowing_header_in_bytes(name, file.as_bytes(), sb.offset_size, sb.length_size)
}

/// [`refuse_overflowing_header`] for a file read in place (its bytes and its
/// superblock's offset and length sizes).
pub(super) fn refuse_overflowing_header_in_bytes(
    name: &str,
    bytes: &[u8],
    offset_size: u8,
    length_size: u8,
) -> crate::error::Result<()> {
    match overflowing_header(bytes, offset_size, length_size) {
        None => Ok(()),
        Some((at, bits)) => Err(overflow_error(name, at, bits)),
    }
}

/// The error for a Fixed Array header at byte `at` declaring pages of 2^`bits`.
pub(super) fn overflow_error(name: &str, at: usize, bits: u8) -> crate::error::Error {
    crate::error::Error::input_at(
        name,
        format!("byte {at}"),
        format!(
            "is a damaged HDF5 file: a chunk index (Fixed Array header) declares pages \
             of 2^{bits} elements, which cannot be; download or copy the file again"
        ),
    )
}

/// [`overflowing_header`] over a file read in blocks of 8 MiB (a streamed file is never
/// held whole); blocks overlap by one header, so none is missed at a boundary.
#[cfg(not(target_arch = "wasm32"))]
pub(super) fn overflowing_header_in(
    file: impl std::io::Read,
    offset_size: u8,
    length_size: u8,
) -> std::io::Result<Option<(usize, u8)>> {
    scan_blocks(file, offset_size, length_size, 8 << 20)
}

#[cfg(not(target_arch = "wasm32"))]
fn scan_blocks(
    mut file: impl std::io::Read,
    offset_size: u8,
    length_size: u8,
    block: usize,
) -> std::io::Result<Option<(usize, u8)>> {
    let size = 8 + usize::from(length_size) + usize::from(offset_size) + 4;
    let mut buf = vec![0u8; block + size];
    let (mut kept, mut base) = (0usize, 0usize);
    loop {
        let n = file.read(&mut buf[kept..])?;
        let filled = kept + n;
        if let Some((at, bits)) = overflowing_header(&buf[..filled], offset_size, length_size) {
            return Ok(Some((base + at, bits)));
        }
        if n == 0 {
            return Ok(None);
        }
        // Keep the last header's worth of bytes (minus one) for the next block.
        let keep = filled.min(size - 1);
        buf.copy_within(filled - keep..filled, 0);
        base += filled - keep;
        kept = keep;
    }
}

/// The most `max_nelmts_bits` a header may hold: `1u64 << bits` must not overflow.
const MAX_PAGE_BITS: u8 = 63;

/// The first Fixed Array header whose page bits would overflow, as (byte offset, bits).
/// `offset_size` and `length_size` are the superblock's address and length widths.
pub(super) fn overflowing_header(
    bytes: &[u8],
    offset_size: u8,
    length_size: u8,
) -> Option<(usize, u8)> {
    // signature(4) version(1) client(1) element size(1) bits(1) elements(length)
    // data block address(offset) checksum(4)
    let size = 8 + usize::from(length_size) + usize::from(offset_size) + 4;
    memchr::memmem::find_iter(bytes, b"FAHD").find_map(|at| {
        let h = bytes.get(at..at.checked_add(size)?)?;
        let (body, sum) = h.split_at(size - 4);
        let bits = h[7];
        let stored = u32::from_le_bytes([sum[0], sum[1], sum[2], sum[3]]);
        (h[4] == 0 && bits > MAX_PAGE_BITS && lookup3(body) == stored).then_some((at, bits))
    })
}

/// Bob Jenkins' lookup3 `hashlittle` with an initial value of 0: HDF5's metadata
/// checksum (`H5_checksum_lookup3`).
pub(super) fn lookup3(data: &[u8]) -> u32 {
    let init = 0xdead_beef_u32.wrapping_add(data.len() as u32);
    let (mut a, mut b, mut c) = (init, init, init);
    let word = |k: &[u8], i: usize| {
        let mut w = [0u8; 4];
        for (j, x) in w.iter_mut().enumerate() {
            *x = k.get(i + j).copied().unwrap_or(0);
        }
        u32::from_le_bytes(w)
    };
    let mut k = data;
    while k.len() > 12 {
        a = a.wrapping_add(word(k, 0));
        b = b.wrapping_add(word(k, 4));
        c = c.wrapping_add(word(k, 8));
        // mix
        a = a.wrapping_sub(c) ^ c.rotate_left(4);
        c = c.wrapping_add(b);
        b = b.wrapping_sub(a) ^ a.rotate_left(6);
        a = a.wrapping_add(c);
        c = c.wrapping_sub(b) ^ b.rotate_left(8);
        b = b.wrapping_add(a);
        a = a.wrapping_sub(c) ^ c.rotate_left(16);
        c = c.wrapping_add(b);
        b = b.wrapping_sub(a) ^ a.rotate_left(19);
        a = a.wrapping_add(c);
        c = c.wrapping_sub(b) ^ b.rotate_left(4);
        b = b.wrapping_add(a);
        k = &k[12..];
    }
    if k.is_empty() {
        return c;
    }
    // The last 1..=12 bytes, zero-padded.
    a = a.wrapping_add(word(k, 0));
    b = b.wrapping_add(word(k, 4));
    c = c.wrapping_add(word(k, 8));
    // final
    c = (c ^ b).wrapping_sub(b.rotate_left(14));
    a = (a ^ c).wrapping_sub(c.rotate_left(11));
    b = (b ^ a).wrapping_sub(a.rotate_left(25));
    c = (c ^ b).wrapping_sub(b.rotate_left(16));
    a = (a ^ c).wrapping_sub(c.rotate_left(4));
    b = (b ^ a).wrapping_sub(a.rotate_left(14));
    (c ^ b).wrapping_sub(b.rotate_left(24))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference values of `hashlittle` (lookup3.c's self-test: "" with 0 gives
    /// 0xdeadbeef; "Four score and seven years ago" with 0 gives 0x17770551).
    #[test]
    fn lookup3_matches_the_reference() {
        assert_eq!(lookup3(b""), 0xdead_beef);
        assert_eq!(lookup3(b"Four score and seven years ago"), 0x1777_0551);
    }

    /// A header as `hdf5-pure` writes it verifies; with its bits raised past 63 and the
    /// checksum redone it is found; with a stale checksum it is not (hdf5-pure refuses it).
    #[test]
    fn a_header_with_overflowing_bits_and_a_valid_checksum_is_found() {
        let mut h = b"FAHD\x00\x01\x10\x20".to_vec();
        h.extend_from_slice(&7u64.to_le_bytes());
        h.extend_from_slice(&4096u64.to_le_bytes());
        let sum = lookup3(&h);
        h.extend_from_slice(&sum.to_le_bytes());
        let mut file = vec![0u8; 100];
        file.extend_from_slice(&h);
        assert_eq!(overflowing_header(&file, 8, 8), None);
        file[100 + 7] = 64;
        assert_eq!(overflowing_header(&file, 8, 8), None, "stale checksum");
        let n = file.len();
        let sum = lookup3(&file[100..n - 4]);
        file[n - 4..].copy_from_slice(&sum.to_le_bytes());
        assert_eq!(overflowing_header(&file, 8, 8), Some((100, 64)));
        // Read in blocks of every size, the header straddling their boundaries.
        for block in 1..40 {
            let found = scan_blocks(&file[..], 8, 8, block).expect("reading a slice");
            assert_eq!(found, Some((100, 64)), "block of {block} bytes");
        }
        // Cut short: no header.
        assert_eq!(overflowing_header(&file[..n - 1], 8, 8), None);
    }

    /// The Fixed Array header of a real file (the 10x v3 fuzz seed, written by
    /// hdf5-pure, whose reader verifies it) checks with this lookup3.
    #[test]
    fn a_real_header_verifies() {
        let file = include_bytes!("../../../fuzz/corpus/tenx_h5/seed-v3.h5");
        let at = memchr::memmem::find(file, b"FAHD").expect("the seed has a Fixed Array");
        let h = &file[at..at + 8 + 8 + 8 + 4];
        let stored = u32::from_le_bytes([h[24], h[25], h[26], h[27]]);
        assert_eq!(lookup3(&h[..24]), stored);
        assert!(h[7] <= 32);
    }
}
