//! cargo-fuzz target: the server's parse of a client frame (and of its
//! params for every op).
//!
//! The checks, written once, are `checks::frame_decode` in
//! fuzz/checks/frame_decode.rs (its doc says what they are).
//! scripts/fuzz-smoke.sh runs them here, coverage-guided; `cargo test` runs
//! them over fuzz/seeds/frame_decode/ and a fixed set of mutations of those
//! (tests/fuzz_smoke.rs).

#![no_main]

#[path = "../checks/mod.rs"]
mod checks;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| checks::frame_decode(data));
