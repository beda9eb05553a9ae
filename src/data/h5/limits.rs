//! What a dataset may claim before it is read: its declared size against the file that
//! holds it and against the most cellvae reads from one file.

use super::H5;
use crate::error::Result;
use hdf5_pure::Dataset;

/// How many times its stored size compressed data can expand to, at most: deflate's
/// limit is about 1032 (258-byte matches in 2-bit codes); a margin on top.
const MAX_EXPANSION: u64 = 1100;

impl H5 {
    /// Refuses, before it is read, a dataset the file cannot hold or that is too large:
    /// a chunked dataset declares its dimensions and the chunks it lacks are filled in,
    /// so a 2 KB file could otherwise ask for gigabytes (a fuzz finding: 5 GB and a
    /// minute for 2^28 declared values).
    pub(super) fn check_size(&self, ds: &Dataset, path: &str) -> Result<()> {
        let shape = ds.shape().map_err(|e| self.fail(path, e))?;
        let element = ds.element_size().map_err(|e| self.fail(path, e))?.max(1);
        let bytes = shape
            .iter()
            .try_fold(u128::from(element), |acc, &d| {
                acc.checked_mul(u128::from(d))
            })
            .unwrap_or(u128::MAX);
        let values = bytes / u128::from(element);
        if bytes > u128::from(self.file_len) * u128::from(MAX_EXPANSION) {
            return Err(self.err(
                format!("dataset /{path}"),
                format!(
                    "declares {values} values ({bytes} bytes) but the whole file is {} bytes; \
                     even compressed it cannot hold them: the file is damaged",
                    self.file_len
                ),
            ));
        }
        if bytes > u128::from(self.max_expanded) {
            return Err(self.err(
                format!("dataset /{path}"),
                format!(
                    "holds {values} values ({}), more than the {} cellvae reads from one \
                     file{}: too large to read here, not damaged; keep fewer genes or cells \
                     before exporting, or split the cells into several files",
                    crate::data::human_bytes(u64::try_from(bytes).unwrap_or(u64::MAX)),
                    crate::data::human_bytes(self.max_expanded),
                    if cfg!(target_arch = "wasm32") {
                        " in the browser (the command line reads more)"
                    } else {
                        ""
                    }
                ),
            ));
        }
        Ok(())
    }
}
