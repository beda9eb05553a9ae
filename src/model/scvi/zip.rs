//! The few parts of the ZIP format a PyTorch checkpoint (`torch.save`, `model.pt`) uses:
//! the end-of-central-directory record, the central directory, local headers, and
//! entries stored (torch's own writer) or deflated. Read from memory, natively and in
//! wasm32, every offset and size checked against the buffer. (The `zip` crate would
//! bring `nix` and `getrandom` into the wasm build for this.)

use crate::error::{Error, Result};
use std::borrow::Cow;
use std::io::Read;

/// One entry of the archive.
pub struct Entry {
    /// Its name (`archive/data.pkl`, `archive/data/0`, ...).
    pub name: String,
    method: u16,
    compressed: usize,
    size: usize,
    local_header: usize,
}

/// The entries of a ZIP archive in memory.
pub struct Archive<'a> {
    bytes: &'a [u8],
    /// Every entry, in central-directory order.
    pub entries: Vec<Entry>,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

impl<'a> Archive<'a> {
    /// Reads the central directory of `bytes` (the file `name`, for errors).
    pub fn open(bytes: &'a [u8], name: &str) -> Result<Archive<'a>> {
        let damaged = |what: &str| {
            Error::input(
                name,
                format!("is not a readable PyTorch (zip) file: {what}; save the model again with scvi-tools"),
            )
        };
        // The end record is in the last 22 + 65535 bytes.
        let from = bytes.len().saturating_sub(22 + 65_535);
        let eocd = (from..bytes.len().saturating_sub(21))
            .rev()
            .find(|&i| bytes[i..].starts_with(b"PK\x05\x06"))
            .ok_or_else(|| damaged("no end of central directory"))?;
        let mut count = u16_at(bytes, eocd + 10).map(u64::from);
        let mut cd_offset = u32_at(bytes, eocd + 16).map(u64::from);
        // ZIP64: torch writes a ZIP64 end record for large files.
        if eocd >= 20 && bytes[eocd - 20..].starts_with(b"PK\x06\x07") {
            let rec =
                u64_at(bytes, eocd - 12).ok_or_else(|| damaged("a cut ZIP64 locator"))? as usize;
            if bytes
                .get(rec..)
                .is_some_and(|b| b.starts_with(b"PK\x06\x06"))
            {
                count = u64_at(bytes, rec + 32);
                cd_offset = u64_at(bytes, rec + 48);
            }
        }
        let count = count.ok_or_else(|| damaged("a cut end record"))?;
        let mut at = cd_offset.ok_or_else(|| damaged("a cut end record"))? as usize;
        if count > 100_000 {
            return Err(damaged("more than 100,000 entries"));
        }
        let mut entries = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let h = bytes
                .get(at..at + 46)
                .ok_or_else(|| damaged("a cut central directory"))?;
            if !h.starts_with(b"PK\x01\x02") {
                return Err(damaged("a damaged central directory"));
            }
            let method = u16_at(h, 10).unwrap_or(0);
            let mut compressed = u64::from(u32_at(h, 20).unwrap_or(0));
            let mut size = u64::from(u32_at(h, 24).unwrap_or(0));
            let name_len = usize::from(u16_at(h, 28).unwrap_or(0));
            let extra_len = usize::from(u16_at(h, 30).unwrap_or(0));
            let comment_len = usize::from(u16_at(h, 32).unwrap_or(0));
            let mut local = u64::from(u32_at(h, 42).unwrap_or(0));
            let name_bytes = bytes
                .get(at + 46..at + 46 + name_len)
                .ok_or_else(|| damaged("a cut entry name"))?;
            let entry_name = String::from_utf8_lossy(name_bytes).into_owned();
            // ZIP64 extra field: the sizes and offset that are 0xFFFFFFFF, in order.
            let extra = bytes
                .get(at + 46 + name_len..at + 46 + name_len + extra_len)
                .ok_or_else(|| damaged("a cut extra field"))?;
            let mut e = 0;
            while e + 4 <= extra.len() {
                let (id, len) = (
                    u16_at(extra, e).unwrap_or(0),
                    usize::from(u16_at(extra, e + 2).unwrap_or(0)),
                );
                if id == 1 {
                    let mut f = e + 4;
                    for v in [&mut size, &mut compressed, &mut local] {
                        if *v == 0xFFFF_FFFF {
                            *v = u64_at(extra, f).ok_or_else(|| damaged("a cut ZIP64 field"))?;
                            f += 8;
                        }
                    }
                }
                e += 4 + len;
            }
            entries.push(Entry {
                name: entry_name,
                method,
                compressed: compressed as usize,
                size: size as usize,
                local_header: local as usize,
            });
            at += 46 + name_len + extra_len + comment_len;
        }
        Ok(Archive { bytes, entries })
    }

    /// The entry whose name ends with `suffix` (torch prefixes every name with the
    /// archive's folder, which varies).
    pub fn find(&self, suffix: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.name.ends_with(suffix))
    }

    /// The content of `entry`, at most `limit` bytes.
    pub fn read(&self, entry: &Entry, name: &str, limit: usize) -> Result<Cow<'a, [u8]>> {
        let damaged = |what: String| {
            Error::input(
                name,
                format!(
                    "entry {} {what}; save the model again with scvi-tools",
                    entry.name
                ),
            )
        };
        let h = self
            .bytes
            .get(entry.local_header..entry.local_header + 30)
            .filter(|h| h.starts_with(b"PK\x03\x04"))
            .ok_or_else(|| damaged("has a damaged header".into()))?;
        let start = entry.local_header
            + 30
            + usize::from(u16_at(h, 26).unwrap_or(0))
            + usize::from(u16_at(h, 28).unwrap_or(0));
        let data = start
            .checked_add(entry.compressed)
            .and_then(|end| self.bytes.get(start..end))
            .ok_or_else(|| damaged("is cut short".into()))?;
        if entry.size > limit {
            return Err(damaged(format!(
                "holds {} bytes, more than the {limit} expected",
                entry.size
            )));
        }
        match entry.method {
            0 => Ok(Cow::Borrowed(data)),
            8 => {
                let mut out = Vec::with_capacity(entry.size);
                flate2::read::DeflateDecoder::new(data)
                    .take(limit as u64 + 1)
                    .read_to_end(&mut out)
                    .map_err(|e| damaged(format!("cannot be decompressed ({e})")))?;
                if out.len() != entry.size {
                    return Err(damaged("decompresses to the wrong size".into()));
                }
                Ok(Cow::Owned(out))
            }
            m => Err(damaged(format!(
                "uses compression method {m}, which cellvae does not read"
            ))),
        }
    }
}
