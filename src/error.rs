//! The library's one error type.
//!
//! Every error a user can cause names the file, the line or field, what is wrong and
//! what to do about it, on one line (`Display`). The command line prints that line and
//! exits non-zero; the web layer turns it into a `JsError` in one place.

use std::fmt;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in cellvae.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A user's input file is unreadable or holds something that is not a count matrix.
    #[error("{file}{}: {problem}", location_suffix(.location))]
    Input {
        /// The file (path or name as the user gave it).
        file: String,
        /// Where in the file: "line 12", "field 3 of line 12", "dataset /X/data", ...
        location: Option<String>,
        /// What is wrong and what to do, as one sentence or two.
        problem: String,
    },
    /// Reading a file from disk failed.
    #[error("{file}: cannot read: {source}")]
    Io {
        /// The path that failed.
        file: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A setting, option or combination of inputs that cannot work.
    #[error("{0}")]
    Config(String),
    /// The GPU (wgpu / WebGPU) failed: no adapter, a shader or validation error, a lost device.
    #[error("GPU: {0}")]
    Gpu(String),
}

fn location_suffix(location: &Option<String>) -> String {
    match location {
        Some(l) => format!(" ({l})"),
        None => String::new(),
    }
}

impl Error {
    /// An input error with no particular location in the file.
    pub fn input(file: impl fmt::Display, problem: impl fmt::Display) -> Self {
        Error::Input {
            file: file.to_string(),
            location: None,
            problem: problem.to_string(),
        }
    }

    /// An input error at a location (a line, a field, an HDF5 path).
    pub fn input_at(
        file: impl fmt::Display,
        location: impl fmt::Display,
        problem: impl fmt::Display,
    ) -> Self {
        Error::Input {
            file: file.to_string(),
            location: Some(location.to_string()),
            problem: problem.to_string(),
        }
    }
}
