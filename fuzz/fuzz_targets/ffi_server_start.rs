//! cargo-fuzz target: `nim_signaling_server_start` with arbitrary bytes as
//! `config_json`, then a client's login, create and call on a server that
//! started.
//!
//! The checks, written once, are `checks::ffi_server_start` in
//! fuzz/checks/ffi_server_start.rs (its doc says what they are).
//! scripts/fuzz-smoke.sh runs them here, coverage-guided; `cargo test` runs
//! them over fuzz/seeds/ffi_server_start/ and a fixed set of mutations of
//! those (tests/fuzz_smoke.rs).

#![no_main]

#[path = "../checks/mod.rs"]
mod checks;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| checks::ffi_server_start(data));
