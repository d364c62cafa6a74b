//! Check of the fuzz target `ffi_requests`.

use super::common;
use nim_signaling::client::*;
use nim_signaling::types::{nim_signaling_client, nim_signaling_result_cb};
use nim_signaling::MAX_JSON_BYTES;
use nim_signaling_protocol::Request;
use serde_json::Value;
use std::ffi::{c_char, c_void};
use std::ptr::{null, null_mut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use nim_signaling::client::REQUEST_FUNCTIONS as OPS;

static CALLS: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" fn on_result(_code: i32, _json: *const c_char, _ud: *mut c_void) {
    CALLS.fetch_add(1, Ordering::SeqCst);
}

/// One client for the whole run, never logged in (so it never connects).
fn client() -> *mut nim_signaling_client {
    static CLIENT: OnceLock<usize> = OnceLock::new();
    *CLIENT.get_or_init(|| {
        let cfg = b"{\"serverUrl\":\"ws://127.0.0.1:9\",\"account\":\"fuzz\"}\0";
        let mut c = null_mut();
        let code = unsafe { nim_signaling_client_new(cfg.as_ptr().cast(), &mut c) };
        assert_eq!(code, 200);
        c as usize
    }) as *mut nim_signaling_client
}

/// The code the library must return for `op` given `seen` (the string up
/// to its first NUL) on a client that is not logged in.
fn expected(op: &str, seen: &[u8]) -> i32 {
    if seen.len() > MAX_JSON_BYTES {
        return 414;
    }
    let Ok(s) = std::str::from_utf8(seen) else {
        return 414;
    };
    let Ok(v) = serde_json::from_str::<Value>(s) else {
        return 414;
    };
    match Request::parse(op, &v) {
        Ok(_) => 415,
        Err(_) => 414,
    }
}

/// Every request function of the C ABI with arbitrary bytes as
/// `params_json` (NUL appended), on a client that is not logged in.
/// Checks: no panic; the code is exactly what the documented order of
/// checks gives — 414 when the string (up to its first NUL) is over 1 MiB,
/// not UTF-8, not JSON or not valid parameters for the op, else 415 (not
/// logged in) — and the callback is never called.
pub fn ffi_requests(data: &[u8]) {
    let c = client();
    let params = common::c_string(data);
    let seen = common::visible(data);
    let cb: nim_signaling_result_cb = Some(on_result);
    for (op, f) in OPS {
        let code = unsafe { f(c, params.as_ptr().cast(), cb, null_mut()) };
        assert_eq!(code, expected(op, seen), "{op}");
        // NULL client and NULL params: 414 whatever the input.
        assert_eq!(
            unsafe { f(null_mut(), params.as_ptr().cast(), cb, null_mut()) },
            414
        );
        assert_eq!(unsafe { f(c, null(), cb, null_mut()) }, 414);
    }
    assert_eq!(
        CALLS.load(Ordering::SeqCst),
        0,
        "a request that was refused called its callback"
    );
}
