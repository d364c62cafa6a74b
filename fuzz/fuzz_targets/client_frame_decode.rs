//! cargo-fuzz target: the client's parse of a server frame and the text it
//! hands on to the app.
//!
//! The checks, written once, are `checks::client_frame_decode` in
//! fuzz/checks/client_frame_decode.rs (its doc says what they are).
//! scripts/fuzz-smoke.sh runs them here, coverage-guided; `cargo test` runs
//! them over fuzz/seeds/client_frame_decode/ and a fixed set of mutations
//! of those (tests/fuzz_smoke.rs).

#![no_main]

#[path = "../checks/mod.rs"]
mod checks;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| checks::client_frame_decode(data));
