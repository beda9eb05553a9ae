//! Shared helpers for the text readers (Matrix Market, dense CSV/TSV, metadata tables):
//! line iteration over decompressed bytes, delimiter detection, quoted-field splitting
//! and number parsing, each reporting the 1-based line and field of a problem.
//!
//! Lines: a UTF-8 byte-order mark at the start is skipped; LF and CRLF endings are both
//! accepted; a last line without a newline is read; a final newline does not make an
//! extra empty line. Fields: RFC 4180 quoting (`"a, b"`, `""` for a quote inside a
//! quoted field) on one line; a quoted field cannot span lines.

use crate::error::{Error, Result};
use std::borrow::Cow;

/// The UTF-8 byte-order mark some programs (Excel) write at the start of a text file.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Lines of a byte buffer as `(line number, bytes without the line ending)`.
pub(crate) struct ByteLines<'a> {
    rest: &'a [u8],
    number: usize,
}

impl<'a> ByteLines<'a> {
    /// Bytes not yet read (used to bound allocations by what the file can still hold).
    pub(crate) fn remaining_len(&self) -> usize {
        self.rest.len()
    }
}

impl<'a> Iterator for ByteLines<'a> {
    type Item = (usize, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        self.number += 1;
        let (line, rest) = match self.rest.iter().position(|&b| b == b'\n') {
            Some(i) => {
                let (line, rest) = self.rest.split_at(i);
                (line, rest.get(1..).unwrap_or(&[]))
            }
            None => (self.rest, &[][..]),
        };
        self.rest = rest;
        Some((self.number, line.strip_suffix(b"\r").unwrap_or(line)))
    }
}

/// Iterates over the lines of decompressed bytes (byte-order mark skipped).
pub(crate) fn byte_lines(bytes: &[u8]) -> ByteLines<'_> {
    ByteLines {
        rest: bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes),
        number: 0,
    }
}

/// Refuses UTF-16 text (Excel's "Unicode text"), which would otherwise fail later with
/// a less helpful message.
pub(crate) fn check_not_utf16(file: &str, bytes: &[u8]) -> Result<()> {
    if bytes.starts_with(b"\xFF\xFE") || bytes.starts_with(b"\xFE\xFF") {
        return Err(Error::input(
            file,
            "the file is UTF-16 text; save it as UTF-8 (or plain text / CSV UTF-8) and load it again",
        ));
    }
    Ok(())
}

/// One line as text, or an error naming the line when it is not valid UTF-8.
pub(crate) fn line_str<'a>(file: &str, number: usize, line: &'a [u8]) -> Result<&'a str> {
    std::str::from_utf8(line).map_err(|e| {
        Error::input_at(
            file,
            format!("line {number}"),
            format!(
                "the text is not valid UTF-8 (bad byte at column {}); save the file as UTF-8 text",
                e.valid_up_to() + 1
            ),
        )
    })
}

/// Lines as text: `(line number, text)`, skipping lines that are empty or hold only
/// spaces. Invalid UTF-8 is an error naming the line.
pub(crate) fn text_lines<'a>(
    file: &'a str,
    bytes: &'a [u8],
) -> impl Iterator<Item = Result<(usize, &'a str)>> + 'a {
    byte_lines(bytes)
        .filter(|(_, l)| !l.iter().all(|b| b.is_ascii_whitespace()))
        .map(move |(n, l)| line_str(file, n, l).map(|s| (n, s)))
}

/// Picks the field delimiter from the header line and the file name: the character
/// (tab, comma, or semicolon) that occurs in the header outside quotes, preferring the
/// one the extension names (`.csv` comma, `.tsv`/`.tab` tab) when it occurs; with
/// `allow_space`, a header with none of them but several space-separated words is read
/// as space-delimited (R's `write.table` default). Falls back to the extension, then tab.
pub(crate) fn detect_delimiter(base_name: &str, header: &str, allow_space: bool) -> u8 {
    let (mut tabs, mut commas, mut semicolons, mut spaces) = (0usize, 0usize, 0usize, 0usize);
    let mut in_quotes = false;
    for b in header.bytes() {
        match b {
            b'"' => in_quotes = !in_quotes,
            _ if in_quotes => {}
            b'\t' => tabs += 1,
            b',' => commas += 1,
            b';' => semicolons += 1,
            b' ' => spaces += 1,
            _ => {}
        }
    }
    let by_extension = if base_name.ends_with(".csv") {
        Some(b',')
    } else if base_name.ends_with(".tsv") || base_name.ends_with(".tab") {
        Some(b'\t')
    } else {
        None
    };
    match by_extension {
        Some(b',') if commas > 0 => return b',',
        Some(b'\t') if tabs > 0 => return b'\t',
        _ => {}
    }
    if tabs > 0 && tabs >= commas {
        b'\t'
    } else if commas > 0 {
        b','
    } else if semicolons > 0 {
        b';'
    } else if allow_space && spaces > 0 && !header.trim().is_empty() {
        b' '
    } else {
        by_extension.unwrap_or(b'\t')
    }
}

/// A delimiter's name for messages.
pub(crate) fn delimiter_name(delimiter: u8) -> &'static str {
    match delimiter {
        b'\t' => "tab",
        b',' => "comma",
        b';' => "semicolon",
        b' ' => "space",
        _ => "delimiter",
    }
}

/// Splits one line into fields at `delimiter` (an ASCII byte), honouring CSV quoting.
/// Unquoted fields and quoted fields without doubled quotes borrow from the line; only
/// a field with `""` inside allocates. The problem is returned as a sentence naming the
/// 1-based field.
pub(crate) fn split_fields<'a>(
    line: &'a str,
    delimiter: u8,
    out: &mut Vec<Cow<'a, str>>,
) -> std::result::Result<(), String> {
    out.clear();
    let bytes = line.as_bytes();
    let mut start = 0;
    loop {
        if bytes.get(start) != Some(&b'"') {
            // Unquoted: up to the next delimiter or the end of the line.
            let rest = line.get(start..).unwrap_or("");
            match rest.bytes().position(|b| b == delimiter) {
                Some(p) => {
                    out.push(Cow::Borrowed(rest.get(..p).unwrap_or("")));
                    start += p + 1;
                }
                None => {
                    out.push(Cow::Borrowed(rest));
                    return Ok(());
                }
            }
            continue;
        }
        // Quoted: up to the next quote that is not doubled.
        let mut owned: Option<String> = None;
        let mut piece_start = start + 1;
        let mut j = start + 1;
        loop {
            match bytes.get(j) {
                None => {
                    return Err(format!(
                        "field {} opens a quote (\") that is never closed on this line; \
                         quoted fields cannot span lines, and a quote inside one must be doubled",
                        out.len() + 1
                    ))
                }
                Some(b'"') if bytes.get(j + 1) == Some(&b'"') => {
                    let s = owned.get_or_insert_with(String::new);
                    s.push_str(line.get(piece_start..=j).unwrap_or(""));
                    j += 2;
                    piece_start = j;
                }
                Some(b'"') => break,
                Some(_) => j += 1,
            }
        }
        let last_piece = line.get(piece_start..j).unwrap_or("");
        out.push(match owned {
            Some(mut s) => {
                s.push_str(last_piece);
                Cow::Owned(s)
            }
            None => Cow::Borrowed(last_piece),
        });
        let mut k = j + 1;
        while bytes.get(k) == Some(&b' ') && delimiter != b' ' {
            k += 1;
        }
        match bytes.get(k) {
            None => return Ok(()),
            Some(&b) if b == delimiter => start = k + 1,
            Some(_) => {
                return Err(format!(
                    "field {}: text follows the closing quote; a quote inside a quoted field \
                     must be doubled (\"\")",
                    out.len()
                ))
            }
        }
    }
}

/// A field for an error message: quoted, at most 40 characters, control characters
/// escaped.
pub(crate) fn show(field: &str) -> String {
    let mut s: String = field
        .chars()
        .take(40)
        .flat_map(char::escape_debug)
        .collect();
    if field.chars().count() > 40 {
        s.push_str("...");
    }
    format!("'{s}'")
}

/// [`show`] for raw bytes.
pub(crate) fn show_bytes(field: &[u8]) -> String {
    show(&String::from_utf8_lossy(field))
}

/// Parses a number: a fast path for plain non-negative integers, else Rust's float
/// syntax (`1.5`, `-2`, `1e3`, `nan`, `inf`, `infinity`, any case). Surrounding spaces
/// are ignored. `None` when it is not a number.
pub(crate) fn parse_number(field: &[u8]) -> Option<f64> {
    let field = field.trim_ascii();
    if !field.is_empty() && field.len() <= 15 && field.iter().all(u8::is_ascii_digit) {
        let v = field
            .iter()
            .fold(0u64, |acc, &b| acc * 10 + u64::from(b - b'0'));
        return Some(v as f64);
    }
    std::str::from_utf8(field).ok()?.parse::<f64>().ok()
}

/// Parses a 1-based index or a size: ASCII digits only, no overflow.
pub(crate) fn parse_index(field: &[u8]) -> Option<u64> {
    if field.is_empty() {
        return None;
    }
    field.iter().try_fold(0u64, |acc, &b| {
        if b.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

/// Parses one count and checks it with [`super::check_count`]; errors name the file,
/// line and field.
pub(crate) fn parse_count(
    file: &str,
    line: usize,
    field_number: usize,
    field: &[u8],
    allow_non_counts: bool,
) -> Result<f64> {
    let at = || format!("line {line}, field {field_number}");
    let value = parse_number(field).ok_or_else(|| {
        let problem = if field.trim_ascii().is_empty() {
            "the field is empty; write 0 for a zero count".to_string()
        } else {
            format!(
                "{} is not a number; counts must be plain numbers (check the delimiter and \
                 that every row has a label in the first column)",
                show_bytes(field.trim_ascii())
            )
        };
        Error::input_at(file, at(), problem)
    })?;
    super::check_count(value, allow_non_counts).map_err(|p| Error::input_at(file, at(), p))?;
    Ok(value)
}

/// How many names occur more than once, with one example.
pub(crate) fn duplicates(names: &[String]) -> (usize, Option<&str>) {
    let mut seen = std::collections::HashSet::with_capacity(names.len());
    let mut n = 0;
    let mut example = None;
    for name in names {
        if !seen.insert(name.as_str()) {
            n += 1;
            example.get_or_insert(name.as_str());
        }
    }
    (n, example)
}

/// A text field as written into a TSV (`latent.tsv`) or CSV the tool writes, so that
/// the file stays one record per line with the right columns: a field holding the
/// delimiter `delimiter`, a double quote, or a line break (CR or LF) is put in double
/// quotes with every quote doubled (RFC 4180, as pandas' `read_csv(sep="\t")`, R's
/// `read.delim` and this crate's readers read it; this crate's readers take a line break
/// inside quotes as the end of the line, so such ids read back only with pandas or R).
/// Any other field is written as it is.
pub fn quote_field(field: &str, delimiter: char) -> std::borrow::Cow<'_, str> {
    if field.contains([delimiter, '"', '\n', '\r']) {
        std::borrow::Cow::Owned(format!("\"{}\"", field.replace('"', "\"\"")))
    } else {
        std::borrow::Cow::Borrowed(field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_fields_keep_the_columns() {
        assert_eq!(quote_field("AAAC-1", '\t'), "AAAC-1");
        assert_eq!(quote_field("a\tb", '\t'), "\"a\tb\"");
        assert_eq!(quote_field("a,b", '\t'), "a,b");
        assert_eq!(quote_field("a,b", ','), "\"a,b\"");
        assert_eq!(quote_field("say \"hi\"", '\t'), "\"say \"\"hi\"\"\"");
        assert_eq!(quote_field("two\nlines", '\t'), "\"two\nlines\"");
        // What is quoted reads back through the same splitter.
        let mut f = Vec::new();
        let line = format!("{}\t1", quote_field("x\t\"y\"", '\t'));
        split_fields(&line, b'\t', &mut f).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[0], "x\t\"y\"");
    }

    fn split(line: &str, d: u8) -> Vec<String> {
        let mut out = Vec::new();
        split_fields(line, d, &mut out).unwrap();
        out.into_iter().map(|c| c.into_owned()).collect()
    }

    #[test]
    fn lines_bom_crlf_and_last_line() {
        let lines: Vec<_> = byte_lines(b"\xEF\xBB\xBFa\r\nb\n\nc").collect();
        assert_eq!(
            lines,
            vec![
                (1, &b"a"[..]),
                (2, &b"b"[..]),
                (3, &b""[..]),
                (4, &b"c"[..])
            ]
        );
        assert_eq!(byte_lines(b"a\n").count(), 1);
        assert_eq!(byte_lines(b"").count(), 0);
    }

    #[test]
    fn invalid_utf8_names_line() {
        let e = text_lines("f.csv", b"ok\nbad\xFF\n")
            .collect::<Result<Vec<_>>>()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("f.csv") && e.contains("line 2") && e.contains("UTF-8"),
            "{e}"
        );
    }

    #[test]
    fn quoted_fields() {
        assert_eq!(split("a,b,,c", b','), ["a", "b", "", "c"]);
        assert_eq!(split("a,", b','), ["a", ""]);
        assert_eq!(split("\"x, y\",\"q\"\"q\",z", b','), ["x, y", "q\"q", "z"]);
        assert_eq!(split("\"\",\"a\" ,b", b','), ["", "a", "b"]);
        assert_eq!(split("\"é\"\t\"\"\"\"", b'\t'), ["é", "\""]);
        let mut out = Vec::new();
        assert!(split_fields("\"open,b", b',', &mut out).is_err());
        assert!(split_fields("\"a\"b,c", b',', &mut out).is_err());
    }

    #[test]
    fn delimiters() {
        assert_eq!(detect_delimiter("x.csv", "a,b,c", true), b',');
        assert_eq!(detect_delimiter("x.csv", "a\tb", true), b'\t');
        assert_eq!(detect_delimiter("x.txt", "a\tb,c\td", true), b'\t');
        assert_eq!(detect_delimiter("x.txt", "\"a,b\"\tc", true), b'\t');
        assert_eq!(detect_delimiter("x.txt", "a;b", true), b';');
        assert_eq!(detect_delimiter("x.txt", "a b", true), b' ');
        assert_eq!(detect_delimiter("x.txt", "a b", false), b'\t');
        assert_eq!(detect_delimiter("x.csv", "a", true), b',');
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_number(b"42"), Some(42.0));
        assert_eq!(parse_number(b" 3.5 "), Some(3.5));
        assert_eq!(parse_number(b"1e3"), Some(1000.0));
        assert!(parse_number(b"NaN").unwrap().is_nan());
        assert_eq!(parse_number(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_number(b"abc"), None);
        assert_eq!(parse_number(b""), None);
        assert_eq!(parse_index(b"18446744073709551616"), None);
        assert_eq!(parse_index(b"12"), Some(12));
        let e = parse_count("m.csv", 5, 3, b"abc", false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("m.csv (line 5, field 3): 'abc' is not a number"),
            "{e}"
        );
    }
}
