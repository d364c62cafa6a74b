//! Why the last call on this thread was refused at once: a C caller gets
//! only a code back from a function, so the message that names what was
//! wrong (the field, the setting, the state) waits here, per thread, as
//! `git_error_last` does in libgit2.

use std::cell::RefCell;
use std::ffi::{c_char, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use nim_signaling_protocol::codes::{INTERNAL, OK};
use nim_signaling_protocol::Failure;

use super::to_cstring;

thread_local! {
    static LAST: RefCell<Option<CString>> = const { RefCell::new(None) };
}

/// Runs the body of an exported function that answers with a code: Ok is
/// 200 and clears this thread's last error; Err is its code, its message
/// kept as the last error; a panic is 500 (never unwinding into C).
pub(crate) fn answer(body: impl FnOnce() -> Result<(), Failure>) -> i32 {
    let outcome = catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|_| {
        Err(Failure::new(
            INTERNAL,
            "internal error: the library panicked (its log says where)",
        ))
    });
    let code = outcome.as_ref().map_or_else(|f| f.code, |()| OK);
    let message = outcome.err().map(|f| to_cstring(f.message));
    // `try_with`: a call made while this thread is being torn down has no
    // last error to keep.
    let _ = LAST.try_with(|l| {
        if let Ok(mut l) = l.try_borrow_mut() {
            *l = message;
        }
    });
    code
}

/// The message of the last call on this thread that answered with a code
/// other than 200, naming what was wrong (``missing field `requestId` ``,
/// `` `type`: invalid type: string "x", expected u8 ``, ``unknown key
/// `acount`: did you mean `account`? ``, `params_json is not valid JSON:
/// …`, `not logged in: …`), or NULL when the last such call answered 200
/// or none was made. Every function that returns a code sets it; the others
/// (`_free`, `_stop`, `_url`, `_version`) leave it as it was.
///
/// Owned by the library, per thread: valid until the next call on this
/// thread of a function that returns a code. Copy it to keep it. Results
/// that come later through a callback carry their own message.
#[no_mangle]
pub extern "C" fn nim_signaling_last_error() -> *const c_char {
    LAST.try_with(|l| {
        l.try_borrow()
            .ok()
            .and_then(|l| l.as_ref().map(|m| m.as_ptr()))
    })
    .ok()
    .flatten()
    .unwrap_or(std::ptr::null())
}
