//! Writes the bad-input corpus, `tests/corpus/` (see its README.md): small malformed,
//! truncated, hostile and absurd inputs that `tests/corpus.rs` runs through
//! `cellvae inspect` and `tests/e2e/corpus.test.mjs` drops on the page. The files are
//! committed; run this again after changing it:
//!
//! ```sh
//! cargo run --example make_corpus -- tests/corpus
//! ```
//!
//! The gzip bombs are not committed (a bomb that passes the command line's 4 GiB limit
//! is 4 MB): the tests build them with [`cellvae`]-independent code of their own.

use hdf5_pure::{AttrValue, FileBuilder, GroupBuilder};
use std::io::Write;
use std::path::Path;

const BANNER: &str = "%%MatrixMarket matrix coordinate integer general\n";

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn s(v: &str) -> AttrValue {
    AttrValue::VarLenString(v.into())
}

fn encoding(g: &mut GroupBuilder, kind: &str) {
    g.set_attr("encoding-type", s(kind));
    g.set_attr("encoding-version", s("0.1.0"));
}

/// `obs` (3 cells) and `var` (4 genes) of a current-encoding AnnData file.
fn frames(fb: &mut FileBuilder) {
    fb.set_attr("encoding-type", s("anndata"));
    let mut obs = fb.create_group("obs");
    encoding(&mut obs, "dataframe");
    obs.set_attr("_index", s("cell"));
    obs.set_attr("column-order", AttrValue::VarLenStringArray(vec![]));
    obs.create_dataset("cell")
        .with_vlen_strings(&["a", "b", "c"]);
    fb.add_group(obs.finish());
    let mut var = fb.create_group("var");
    encoding(&mut var, "dataframe");
    var.set_attr("_index", s("_index"));
    var.set_attr("column-order", AttrValue::VarLenStringArray(vec![]));
    var.create_dataset("_index")
        .with_vlen_strings(&["G0", "G1", "G2", "G3"]);
    fb.add_group(var.finish());
}

/// An AnnData file with a CSR `X` of 3 cells x 4 genes holding `data`.
fn csr_h5ad(data: &[f32], indptr: &[i32], shape: [i64; 2]) -> Vec<u8> {
    let mut fb = FileBuilder::new();
    frames(&mut fb);
    let mut x = fb.create_group("X");
    encoding(&mut x, "csr_matrix");
    x.set_attr("shape", AttrValue::I64Array(shape.to_vec()));
    x.create_dataset("data").with_f32_data(data);
    x.create_dataset("indices").with_i32_data(&[0, 2, 1, 3]);
    x.create_dataset("indptr").with_i32_data(indptr);
    fb.add_group(x.finish());
    fb.finish().unwrap()
}

/// A Cell Ranger v3 `.h5` (genes x cells CSC) with the `shape` given.
fn tenx_h5(shape: [i32; 2]) -> Vec<u8> {
    let mut fb = FileBuilder::new();
    let mut g = fb.create_group("matrix");
    g.create_dataset("data").with_i32_data(&[1, 3, 2, 5]);
    g.create_dataset("indices").with_i64_data(&[0, 2, 1, 3]);
    g.create_dataset("indptr").with_i64_data(&[0, 2, 2, 4]);
    g.create_dataset("shape").with_i32_data(&shape);
    g.create_dataset("barcodes")
        .with_ascii_strings(&["a", "b", "c"])
        .unwrap();
    let mut f = g.create_group("features");
    f.create_dataset("id")
        .with_ascii_strings(&["E0", "E1", "E2", "E3"])
        .unwrap();
    f.create_dataset("name")
        .with_ascii_strings(&["G0", "G1", "G2", "G3"])
        .unwrap();
    g.add_group(f.finish());
    fb.add_group(g.finish());
    fb.finish().unwrap()
}

/// IEEE binary16 little-endian, as AnnData writes `X.astype("float16")`.
fn float16() -> hdf5_pure::Datatype {
    hdf5_pure::Datatype::FloatingPoint {
        size: 2,
        byte_order: hdf5_pure::DatatypeByteOrder::LittleEndian,
        layout: hdf5_pure::FloatingPointLayout {
            bit_offset: 0,
            bit_precision: 16,
            exponent_location: 10,
            exponent_size: 5,
            mantissa_location: 0,
            mantissa_size: 10,
            exponent_bias: 15,
        },
    }
}

/// Small non-negative integers as binary16 bytes (exact below 2048).
fn half_bytes(values: &[f64]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|&v| {
            let bits: u16 = if v == 0.0 {
                0
            } else {
                let e = v.log2().floor() as i32;
                let m = ((v / 2f64.powi(e) - 1.0) * 1024.0).round() as u16;
                (((e + 15) as u16) << 10) | m
            };
            bits.to_le_bytes()
        })
        .collect()
}

fn main() {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "tests/corpus".into());
    let dir = Path::new(&dir);
    std::fs::create_dir_all(dir).unwrap();
    let put = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(p, bytes).unwrap();
    };
    let mtx = |name: &str, body: &str| put(name, format!("{BANNER}{body}").as_bytes());

    // Matrix Market.
    mtx(
        "mtx_rows_1e12.mtx",
        "1000000000000 5 3\n1 1 1\n2 2 2\n3 3 3\n",
    );
    mtx("mtx_unnamed_5e7.mtx", "50000000 50000000 1\n1 1 1\n");
    mtx("mtx_nnz_over_shape.mtx", "4 3 1000000000000\n1 1 1\n");
    mtx("mtx_truncated.mtx", "4 3 6\n1 1 1\n2 1 3\n3 2\n");
    mtx("mtx_fewer_entries.mtx", "4 3 6\n1 1 1\n2 1 3\n3 2 1\n");
    put(
        "mtx_array_format.mtx",
        b"%%MatrixMarket matrix array integer general\n2 2\n1\n2\n3\n4\n",
    );
    put(
        "mtx_complex_field.mtx",
        b"%%MatrixMarket matrix coordinate complex general\n2 2 1\n1 1 1 0\n",
    );
    mtx("mtx_index_out_of_range.mtx", "4 3 2\n1 1 1\n9 2 1\n");
    mtx("mtx_zero_index.mtx", "4 3 2\n1 1 1\n0 2 1\n");
    put(
        "mtx_normalised.mtx",
        b"%%MatrixMarket matrix coordinate real general\n4 3 3\n1 1 0.693\n2 2 1.386\n3 3 2.197\n",
    );
    mtx("mtx_negative.mtx", "4 3 2\n1 1 4\n2 2 -3\n");
    put(
        "mtx_nan.mtx",
        b"%%MatrixMarket matrix coordinate real general\n4 3 2\n1 1 4\n2 2 nan\n",
    );
    put(
        "mtx_1e40.mtx",
        b"%%MatrixMarket matrix coordinate real general\n4 3 2\n1 1 4\n2 2 1e40\n",
    );
    mtx("mtx_text_value.mtx", "4 3 2\n1 1 4\n2 2 many\n");
    mtx("mtx_bad_size_line.mtx", "4 three 2\n1 1 4\n2 2 1\n");

    // 10x triplet whose barcodes file is one short.
    mtx(
        "tenx_short_barcodes/matrix.mtx",
        "4 3 4\n1 1 1\n3 1 3\n2 3 2\n4 3 5\n",
    );
    put(
        "tenx_short_barcodes/features.tsv",
        b"E0\tG0\tGene Expression\nE1\tG1\tGene Expression\nE2\tG2\tGene Expression\nE3\tG3\tGene Expression\n",
    );
    put("tenx_short_barcodes/barcodes.tsv", b"AAAC-1\nAAAG-1\n");

    // Dense tables.
    put(
        "csv_ragged.csv",
        b"cell,G0,G1,G2\nc1,1,0,2\nc2,0,3\nc3,1,1,1\n",
    );
    put(
        "csv_text_value.csv",
        b"cell,G0,G1,G2\nc1,1,0,2\nc2,0,three,1\n",
    );
    put(
        "csv_headerless.csv",
        b"1,0,3,0,2\n0,0,1,4,0\n2,1,0,0,1\n0,5,0,1,0\n3,0,0,2,1\n",
    );
    put("csv_nan.csv", b"cell,G0,G1,G2\nc1,1,0,2\nc2,0,NaN,1\n");
    put(
        "tsv_inf.tsv",
        b"cell\tG0\tG1\tG2\nc1\t1\t0\t2\nc2\t0\tinf\t1\n",
    );
    put("csv_1e40.csv", b"cell,G0,G1,G2\nc1,1,0,2\nc2,0,1e40,1\n");
    put(
        "csv_normalised.csv",
        b"cell,G0,G1,G2\nc1,0.693,0,1.099\nc2,0,1.386,0.693\n",
    );
    put("csv_negative.csv", b"cell,G0,G1,G2\nc1,1,0,2\nc2,0,-1,1\n");
    // Valid, with notes: duplicated names are kept apart (scanpy's -1, -2 for genes) and
    // said; hostile strings are names like any other, shown as text.
    put(
        "valid_csv_duplicate_names.csv",
        b"cell,G0,G1,G0\nc1,1,0,2\nc2,0,1,1\nc1,3,0,0\n",
    );
    put(
        "valid_tsv_hostile_names.tsv",
        b"cell\t<script>window.pwned=1</script>\t<img src=x onerror=window.pwned=2>\tG\x1b[31m2\n\
          <b onmouseover=window.pwned=3>c1</b>\t1\t0\t2\n\
          c\x072\t0\t1\t1\n",
    );
    put(
        "csv_hostile_strings.csv",
        b"cell,<script>window.pwned=1</script>,\"<img src=x onerror=\"\"window.pwned=2\"\">\",G2\n\
          \"<b onmouseover=alert(1)>c1</b>\",1,0,2\n\
          c2,0,<svg onload=window.pwned=3>,1\n",
    );
    put(
        "tsv_control_chars.tsv",
        b"cell\tG\x1b[31m0\tG\x071\tG2\nc\x001\t1\t0\t2\nc2\t0\t\x08\x7f\t1\n",
    );
    put("csv_empty.csv", b"");
    put("csv_header_only.csv", b"cell,G0,G1,G2\n");
    let garbage: Vec<u8> = (0u32..512)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    put("csv_binary_garbage.csv", &garbage);
    let utf16: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain(
            "cell,G0\nc1,1\n"
                .encode_utf16()
                .flat_map(|u| u.to_le_bytes()),
        )
        .collect();
    put("csv_utf16.csv", &utf16);

    // Compressed.
    let table = gzip(b"cell,G0,G1,G2\nc1,1,0,2\nc2,0,3,1\nc3,1,1,1\n");
    put("csv_truncated.csv.gz", &table[..table.len() / 2]);
    put("csv_double_gzip.csv.gz", &gzip(&table));
    let mut bad = table[..10].to_vec();
    bad.extend_from_slice(&garbage[..64]);
    put("csv_gzip_garbage.csv.gz", &bad);

    // HDF5: 10x Cell Ranger and AnnData.
    put("h5_shape_2e9.h5", &tenx_h5([2_000_000_000, 2_000_000_000]));
    {
        let mut fb = FileBuilder::new();
        fb.create_dataset("X")
            .with_dtype(hdf5_pure::make_f32_type())
            .with_shape(&[0, 1 << 40]);
        put("h5ad_dense_0x1e12.h5ad", &fb.finish().unwrap());
    }
    put(
        "h5ad_csr_shape_1e12.h5ad",
        &csr_h5ad(&[1., 3., 2., 5.], &[0, 2, 2, 4], [1_000_000_000_000, 4]),
    );
    put(
        "h5ad_indptr_decreasing.h5ad",
        &csr_h5ad(&[1., 3., 2., 5.], &[0, 3, 1, 4], [3, 4]),
    );
    put(
        "h5ad_normalised.h5ad",
        &csr_h5ad(&[0.693, 1.099, 1.386, 0.5], &[0, 2, 2, 4], [3, 4]),
    );
    put(
        "h5ad_nan.h5ad",
        &csr_h5ad(&[1., f32::NAN, 2., 5.], &[0, 2, 2, 4], [3, 4]),
    );
    let whole = csr_h5ad(&[1., 3., 2., 5.], &[0, 2, 2, 4], [3, 4]);
    put("h5ad_truncated.h5ad", &whole[..whole.len() * 2 / 3]);
    {
        let mut fb = FileBuilder::new();
        frames(&mut fb);
        fb.create_dataset("X")
            .with_vlen_strings(&["1", "0", "3", "0", "0", "0", "0", "0", "0", "2", "0", "5"])
            .with_shape(&[3, 4]);
        put("h5ad_x_strings.h5ad", &fb.finish().unwrap());
    }
    {
        let mut fb = FileBuilder::new();
        frames(&mut fb);
        put("h5_no_matrix.h5", &fb.finish().unwrap());
    }
    put("h5_not_hdf5.h5", b"cell,G0\nc1,1\n");
    {
        // Valid: float16 counts, as `adata.X = X.astype("float16")` writes them.
        let mut fb = FileBuilder::new();
        frames(&mut fb);
        let dense = [1., 0., 3., 0., 0., 0., 0., 0., 0., 2., 0., 5.];
        fb.create_dataset("X")
            .with_raw_data(float16(), half_bytes(&dense), 12)
            .with_shape(&[3, 4]);
        put("valid_h5ad_float16.h5ad", &fb.finish().unwrap());
    }
    // Metadata tables, given with the built-in demo's counts (www/demo; its barcodes).
    put(
        "obs_duplicate_ids.csv",
        b"cell,kind\nAAAGCCTGGCTAAC-1,x\nAAATTCGATGCACA-1,y\nAAAGCCTGGCTAAC-1,z\n",
    );
    put(
        "obs_ragged.tsv",
        b"cell\tkind\nAAAGCCTGGCTAAC-1\tx\nAAATTCGATGCACA-1\ty\tsurplus\n",
    );
    put(
        "obs_no_matching_ids.csv",
        b"cell,kind\n<script>window.pwned=4</script>,x\nnot-a-cell,y\n",
    );
    put("obs_empty.csv", b"");
    println!("wrote the corpus to {}", dir.display());
}
