//! cargo-fuzz target: every request function of the C ABI with arbitrary
//! bytes as `params_json`, on a client that is not logged in.
//!
//! The checks, written once, are `checks::ffi_requests` in
//! fuzz/checks/ffi_requests.rs (its doc says what they are).
//! scripts/fuzz-smoke.sh runs them here, coverage-guided; `cargo test` runs
//! them over fuzz/seeds/ffi_requests/ and a fixed set of mutations of those
//! (tests/fuzz_smoke.rs).

#![no_main]

#[path = "../checks/mod.rs"]
mod checks;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| checks::ffi_requests(data));
