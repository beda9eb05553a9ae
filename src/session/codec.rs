//! The hand-off codec: a matrix read in one Web Worker travels to another thread as
//! bytes (`CVMATRX1`, a private, versioned, little-endian format of one build). Decoding
//! trusts nothing: every length is checked against the bytes left, codes against their
//! levels, and the result is validated as a [`CountMatrix`].

use crate::data::{CountMatrix, ObsColumn, ObsTable, ObsValues};
use crate::error::{Error, Result};

const MATRIX_MAGIC: &[u8; 8] = b"CVMATRX1";

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u64(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn put_strs(out: &mut Vec<u8>, v: &[String]) {
    put_u64(out, v.len() as u64);
    for s in v {
        put_str(out, s);
    }
}

/// A private, versioned binary form of `m` (a worker hands a matrix to the page with it;
/// same build only).
pub fn encode_matrix(m: &CountMatrix) -> Vec<u8> {
    // The exact size up front: a buffer that doubles as it grows would need up to three
    // times the matrix's size for a moment (a browser tab's memory).
    let mut out = Vec::with_capacity(encoded_len(m));
    out.extend_from_slice(MATRIX_MAGIC);
    put_u64(&mut out, m.n_cells as u64);
    put_u64(&mut out, m.n_genes as u64);
    put_u64(&mut out, m.indptr.len() as u64);
    for &p in &m.indptr {
        put_u64(&mut out, p as u64);
    }
    put_u64(&mut out, m.indices.len() as u64);
    for &i in &m.indices {
        out.extend_from_slice(&i.to_le_bytes());
    }
    for &v in &m.data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    put_strs(&mut out, &m.gene_ids);
    put_strs(&mut out, &m.gene_names);
    put_strs(&mut out, &m.cell_ids);
    put_str(&mut out, &m.format);
    put_str(&mut out, &m.source);
    put_strs(&mut out, &m.notes);
    put_u64(&mut out, m.obs.columns.len() as u64);
    for c in &m.obs.columns {
        put_str(&mut out, &c.name);
        match &c.values {
            ObsValues::Categorical { levels, codes } => {
                out.push(0);
                put_strs(&mut out, levels);
                put_u64(&mut out, codes.len() as u64);
                for code in codes {
                    out.extend_from_slice(&code.unwrap_or(u32::MAX).to_le_bytes());
                }
            }
            ObsValues::Text(v) => {
                out.push(1);
                put_strs(&mut out, v);
            }
            ObsValues::Numeric(v) => {
                out.push(2);
                put_u64(&mut out, v.len() as u64);
                for x in v {
                    out.extend_from_slice(&x.to_le_bytes());
                }
            }
        }
    }
    out
}

/// The length of [`encode_matrix`]'s output.
fn encoded_len(m: &CountMatrix) -> usize {
    let strs = |v: &[String]| 8 + v.iter().map(|s| 8 + s.len()).sum::<usize>();
    let obs: usize = m
        .obs
        .columns
        .iter()
        .map(|c| {
            8 + c.name.len()
                + 1
                + match &c.values {
                    ObsValues::Categorical { levels, codes } => strs(levels) + 8 + codes.len() * 4,
                    ObsValues::Text(v) => strs(v),
                    ObsValues::Numeric(v) => 8 + v.len() * 8,
                }
        })
        .sum();
    MATRIX_MAGIC.len()
        + 8 * 4
        + m.indptr.len() * 8
        + m.indices.len() * 4
        + m.data.len() * 4
        + strs(&m.gene_ids)
        + strs(&m.gene_names)
        + strs(&m.cell_ids)
        + 8
        + m.format.len()
        + 8
        + m.source.len()
        + strs(&m.notes)
        + 8
        + obs
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let s = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(s)
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn len(&mut self, each: usize) -> Option<usize> {
        let n = usize::try_from(self.u64()?).ok()?;
        // Never trust a length beyond what the bytes can hold.
        (n.checked_mul(each)? <= self.bytes.len() - self.at).then_some(n)
    }
    fn u32s(&mut self, n: usize) -> Option<Vec<u32>> {
        let b = self.take(n.checked_mul(4)?)?;
        Some(
            b.chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        )
    }
    fn string(&mut self) -> Option<String> {
        let n = self.len(1)?;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
    fn strings(&mut self) -> Option<Vec<String>> {
        let n = self.len(8)?;
        (0..n).map(|_| self.string()).collect()
    }
}

fn decode_parts(bytes: &[u8]) -> Option<CountMatrix> {
    let mut r = Reader { bytes, at: 0 };
    if r.take(8)? != MATRIX_MAGIC {
        return None;
    }
    let n_cells = usize::try_from(r.u64()?).ok()?;
    let n_genes = usize::try_from(r.u64()?).ok()?;
    let np = r.len(8)?;
    let indptr = (0..np)
        .map(|_| r.u64().and_then(|v| usize::try_from(v).ok()))
        .collect::<Option<Vec<usize>>>()?;
    let nnz = r.len(8)?;
    let indices = r.u32s(nnz)?;
    let data = r
        .u32s(nnz)?
        .into_iter()
        .map(f32::from_bits)
        .collect::<Vec<f32>>();
    let gene_ids = r.strings()?;
    let gene_names = r.strings()?;
    let cell_ids = r.strings()?;
    let format = r.string()?;
    let source = r.string()?;
    let notes = r.strings()?;
    let ncol = r.len(9)?;
    let mut columns = Vec::with_capacity(ncol);
    for _ in 0..ncol {
        let name = r.string()?;
        let kind = r.take(1)?[0];
        let values = match kind {
            0 => {
                let levels = r.strings()?;
                let n = r.len(4)?;
                let codes = r
                    .u32s(n)?
                    .into_iter()
                    .map(|c| (c != u32::MAX).then_some(c))
                    .collect::<Vec<_>>();
                if codes.iter().flatten().any(|&c| c as usize >= levels.len()) {
                    return None;
                }
                ObsValues::Categorical { levels, codes }
            }
            1 => ObsValues::Text(r.strings()?),
            2 => {
                let n = r.len(8)?;
                let v = (0..n)
                    .map(|_| r.u64().map(f64::from_bits))
                    .collect::<Option<Vec<f64>>>()?;
                ObsValues::Numeric(v)
            }
            _ => return None,
        };
        columns.push(ObsColumn { name, values });
    }
    if r.at != bytes.len() {
        return None;
    }
    Some(CountMatrix {
        n_cells,
        n_genes,
        indptr,
        indices,
        data,
        gene_ids,
        gene_names,
        cell_ids,
        obs: ObsTable { columns },
        format,
        source,
        notes,
    })
}

/// Reads what [`encode_matrix`] wrote; damaged or foreign bytes are an error.
pub fn decode_matrix(bytes: &[u8]) -> Result<CountMatrix> {
    let m = decode_parts(bytes).ok_or_else(|| {
        Error::Config("the matrix handed over between threads is damaged; reload the page".into())
    })?;
    m.validate()
        .map_err(|e| Error::Config(format!("the matrix handed over between threads: {e}")))?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CountMatrix {
        CountMatrix {
            n_cells: 3,
            n_genes: 4,
            indptr: vec![0, 2, 2, 5],
            indices: vec![0, 3, 1, 2, 3],
            data: vec![1.0, 7.0, 2.0, 1.0, 30.0],
            gene_ids: (0..4).map(|g| format!("ENSG{g}")).collect(),
            gene_names: vec!["CD3E".into(), "MS4A1".into(), "<b>x</b>".into(), "é".into()],
            cell_ids: vec!["a".into(), "b\tc".into(), "".into()],
            obs: ObsTable {
                columns: vec![
                    ObsColumn {
                        name: "cell_type".into(),
                        values: ObsValues::Categorical {
                            levels: vec!["T".into(), "B".into()],
                            codes: vec![Some(0), None, Some(1)],
                        },
                    },
                    ObsColumn {
                        name: "note".into(),
                        values: ObsValues::Text(vec!["x".into(), "y".into(), "z".into()]),
                    },
                    ObsColumn {
                        name: "pct".into(),
                        values: ObsValues::Numeric(vec![0.5, f64::NAN, -2.0]),
                    },
                ],
            },
            format: "mtx".into(),
            source: "test".into(),
            notes: vec!["a note".into()],
        }
    }

    #[test]
    fn round_trip_keeps_every_field() {
        let m = sample();
        let back = decode_matrix(&encode_matrix(&m)).unwrap();
        assert_eq!(
            (back.n_cells, back.n_genes, &back.indptr, &back.indices),
            (m.n_cells, m.n_genes, &m.indptr, &m.indices)
        );
        assert_eq!(back.data, m.data);
        assert_eq!(
            (&back.gene_ids, &back.gene_names, &back.cell_ids),
            (&m.gene_ids, &m.gene_names, &m.cell_ids)
        );
        assert_eq!(
            (&back.format, &back.source, &back.notes),
            (&m.format, &m.source, &m.notes)
        );
        assert_eq!(back.obs.columns.len(), 3);
        for (a, b) in back.obs.columns.iter().zip(&m.obs.columns) {
            assert_eq!(a.name, b.name);
            match (&a.values, &b.values) {
                (ObsValues::Numeric(x), ObsValues::Numeric(y)) => {
                    let bits = |v: &[f64]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(x), bits(y));
                }
                (x, y) => assert_eq!(x, y),
            }
        }
    }

    #[test]
    fn the_buffer_is_sized_exactly_up_front() {
        let m = sample();
        let bytes = encode_matrix(&m);
        assert_eq!(bytes.len(), encoded_len(&m));
        assert_eq!(bytes.capacity(), bytes.len(), "no regrowth, no slack");
    }

    #[test]
    fn damaged_bytes_are_an_error_never_a_panic() {
        let bytes = encode_matrix(&sample());
        // Every truncation, and a flipped byte at every position, either decodes to a
        // valid matrix or is an error.
        for n in 0..bytes.len() {
            assert!(decode_matrix(&bytes[..n]).is_err(), "truncated at {n}");
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0xA5;
            if let Ok(m) = decode_matrix(&b) {
                assert!(m.validate().is_ok());
            }
        }
        let mut wrong = bytes.clone();
        wrong.push(0);
        assert!(decode_matrix(&wrong).is_err(), "trailing bytes");
        let e = decode_matrix(b"NOTAMATRIX").unwrap_err().to_string();
        assert!(e.contains("damaged"), "{e}");
    }
}
