//! Fuzz target `tenx_h5`: the body is `tests/fuzz_regressions/targets.rs::tenx_h5` (shared with
//! the stable regression tests); see fuzz/README.md for what it covers.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/fuzz_regressions/targets.rs"]
mod targets;

fuzz_target!(|data: &[u8]| targets::tenx_h5(data));
