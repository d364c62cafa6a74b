//! Check of the fuzz target `ffi_client_new`.

use super::common;
use nim_signaling::client::{nim_signaling_client_free, nim_signaling_client_new};
use serde_json::Value;
use std::ptr::null_mut;

/// `nim_signaling_client_new` with arbitrary bytes as `config_json` (NUL
/// appended; an embedded NUL must act as the end of the string). Checks: no
/// panic; 200 with a handle (then freed) or 414 with `*out_client`
/// untouched; the bytes after an embedded NUL make no difference.
///
/// A config naming a `caFile` is given without it: the library reads that
/// file, and the check must not read (or hang on) files of this machine.
pub fn ffi_client_new(data: &[u8]) {
    let input = without_files(data);
    let code = new_and_free(&input);
    let seen = common::visible(&input);
    if seen.len() < input.len() {
        assert_eq!(
            code,
            new_and_free(seen),
            "bytes after an embedded NUL changed the outcome"
        );
    }
}

fn new_and_free(bytes: &[u8]) -> i32 {
    let c = common::c_string(bytes);
    let mut out = null_mut();
    let code = unsafe { nim_signaling_client_new(c.as_ptr().cast(), &mut out) };
    match code {
        200 => {
            assert!(!out.is_null(), "200 without a handle");
            unsafe { nim_signaling_client_free(out) };
        }
        414 => assert!(out.is_null(), "out_client written on failure"),
        other => panic!("nim_signaling_client_new returned {other}"),
    }
    code
}

/// `data`, or (when what the library would see names a caFile) that JSON
/// without its caFile.
fn without_files(data: &[u8]) -> Vec<u8> {
    let seen = common::visible(data);
    let Some(mut v) = std::str::from_utf8(seen)
        .ok()
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
    else {
        // Not JSON: refused before any file is opened.
        return data.to_vec();
    };
    match v.as_object_mut() {
        Some(m)
            if m.get("caFile")
                .and_then(Value::as_str)
                .is_some_and(|f| !f.is_empty()) =>
        {
            m.remove("caFile");
            serde_json::to_vec(&v).expect("serialize")
        }
        _ => data.to_vec(),
    }
}
