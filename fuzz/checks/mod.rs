//! The checks of the fuzz targets: one `pub fn <target>(data: &[u8])` per
//! target, saying what that target makes of one input. A failed check
//! panics.
//!
//! Written once, run two ways: each fuzz target in fuzz/fuzz_targets/ is a
//! one-line call of its check (coverage-guided, `scripts/fuzz-smoke.sh`),
//! and `tests/fuzz_smoke.rs` runs every check in `cargo test` over the
//! seeds in fuzz/seeds/<target>/ and a fixed set of mutations of them.
//! Both include this folder with `#[path = ...] mod checks;`, so it uses
//! only std, serde_json and nim_signaling.

// Each fuzz target calls one of the checks: the others are dead code there.
#![allow(dead_code)]

mod client_frame_decode;
mod common;
mod ffi_client_new;
mod ffi_requests;
mod ffi_server_start;
mod frame_decode;

// Likewise: a fuzz target uses one of these.
#[allow(unused_imports)]
pub use self::{
    client_frame_decode::client_frame_decode, ffi_client_new::ffi_client_new,
    ffi_requests::ffi_requests, ffi_server_start::ffi_server_start, frame_decode::frame_decode,
};
