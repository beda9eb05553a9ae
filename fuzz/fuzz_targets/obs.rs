//! Fuzz target `obs`: the body is `tests/fuzz_regressions/targets.rs::obs` (shared with
//! the stable regression tests); see fuzz/README.md for what it covers.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/fuzz_regressions/targets.rs"]
mod targets;

fuzz_target!(|data: &[u8]| targets::obs(data));
