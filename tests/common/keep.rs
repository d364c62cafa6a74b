//! User data for C callbacks that lives as long as the test process.
//!
//! A callback may still be running (inside `send`, say) after the test
//! thread saw its report, so the data it points at must outlive the test —
//! as a C app keeps its user data alive until `client_free` has returned.
//! Leaking it would do, but LeakSanitizer (scripts/sanitizers.sh) would then
//! report it and whatever hangs off it (a channel's wakers). Kept here it
//! stays reachable from a static, so the sanitizer runs need no suppressions
//! and every leak they report is the library's.

use std::any::Any;
use std::sync::Mutex;

static KEPT: Mutex<Vec<Box<dyn Any + Send + Sync>>> = Mutex::new(Vec::new());

/// `value`, moved to the heap and kept until the process exits.
pub fn keep<T: Any + Send + Sync>(value: T) -> &'static T {
    let boxed = Box::new(value);
    let r: *const T = &*boxed;
    KEPT.lock().unwrap_or_else(|e| e.into_inner()).push(boxed);
    // SAFETY: the box is never removed from KEPT nor dropped before the
    // process exits, and moving a Box does not move its contents.
    unsafe { &*r }
}
