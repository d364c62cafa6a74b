//! The C ABI: opaque handles, JSON strings in and out, C callbacks. This is
//! a shell over [`nim_signaling_client`] and [`nim_signaling_server`] and holds no
//! signaling rule. Every exported function runs inside [`guard`], so a
//! panic becomes an error code instead of unwinding into C.
//!
//! - `types`: handles, callback types, the code and event enums (header).
//! - `dispatch`: the callback thread pool with per-client order.
//! - `last_error`: the message of a call refused at once, per thread.
//! - `client`: client lifecycle, requests, notification registration.
//! - `server`: the embedded server and the version string.
//! - `log`: the library's logs routed to a C callback.

#![allow(non_camel_case_types)]

pub mod client;
pub mod dispatch;
pub mod last_error;
pub mod log;
pub mod server;
pub mod types;

use once_cell::sync::Lazy;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use nim_signaling_protocol::codes::INVALID_PARAM;
use nim_signaling_protocol::Failure;

/// The runtime every client and embedded server of the process shares.
pub(crate) static RUNTIME: Lazy<tokio::runtime::Runtime> = Lazy::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
                .clamp(1, 4),
        )
        .thread_name("nim-signaling-rt")
        .enable_all()
        .build()
        .expect("tokio runtime")
});

/// Largest JSON parameter string accepted (bytes); beyond it, 414.
pub const MAX_JSON_BYTES: usize = 1 << 20;

/// Runs `f`, turning a panic into `on_panic`. (Functions that answer with
/// a code use [`last_error::answer`] instead, which also keeps the
/// message.)
pub(crate) fn guard<R>(on_panic: R, f: impl FnOnce() -> R) -> R {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(on_panic)
}

/// Borrows a NUL-terminated UTF-8 string from C, checking NULL, size and
/// encoding.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string valid for the call.
pub(crate) unsafe fn c_str<'a>(p: *const c_char, what: &str) -> Result<&'a str, Failure> {
    if p.is_null() {
        return Err(Failure::new(INVALID_PARAM, format!("{what} is NULL")));
    }
    // SAFETY: not NULL, so by this function's contract a NUL-terminated
    // string that stays valid while the returned borrow is used (the call).
    let bytes = unsafe { CStr::from_ptr(p) }.to_bytes();
    if bytes.len() > MAX_JSON_BYTES {
        return Err(Failure::new(
            INVALID_PARAM,
            format!("{what} is larger than {MAX_JSON_BYTES} bytes"),
        ));
    }
    std::str::from_utf8(bytes)
        .map_err(|_| Failure::new(INVALID_PARAM, format!("{what} is not valid UTF-8")))
}

/// Parses a C JSON argument into a value.
///
/// # Safety
/// As [`c_str`].
pub(crate) unsafe fn c_json(p: *const c_char, what: &str) -> Result<serde_json::Value, Failure> {
    // SAFETY: this function's contract is `c_str`'s.
    let s = unsafe { c_str(p, what) }?;
    serde_json::from_str(s)
        .map_err(|e| Failure::new(INVALID_PARAM, format!("{what} is not valid JSON: {e}")))
}

/// JSON text as a C string. Our JSON never holds a raw NUL (serde escapes
/// it), but should one appear the text is cut there rather than lost.
pub(crate) fn to_cstring(s: String) -> CString {
    CString::new(s).unwrap_or_else(|e| {
        let pos = e.nul_position();
        let mut v = e.into_vec();
        v.truncate(pos);
        CString::new(v).unwrap_or_default()
    })
}
