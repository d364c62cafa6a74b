//! cargo-fuzz target: `nim_signaling_client_new` with arbitrary bytes as
//! `config_json`.
//!
//! The checks, written once, are `checks::ffi_client_new` in
//! fuzz/checks/ffi_client_new.rs (its doc says what they are).
//! scripts/fuzz-smoke.sh runs them here, coverage-guided; `cargo test` runs
//! them over fuzz/seeds/ffi_client_new/ and a fixed set of mutations of
//! those (tests/fuzz_smoke.rs).

#![no_main]

#[path = "../checks/mod.rs"]
mod checks;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| checks::ffi_client_new(data));
