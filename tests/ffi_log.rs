//! `nim_signaling_set_log_cb`: the library's logs reach the host's callback
//! with their level, module and fields; the level filters them; off means
//! not called; calls from inside the callback are safe. One test, run in
//! order, because the log callback is process-wide.
//!
//! What is logged comes from real library paths: an embedded server that
//! cannot listen (an error, logged on the caller's thread before
//! `nim_signaling_server_start` returns, so "not called" can be checked at
//! once) and a login refused for a bad token (info, on a server thread).
// Test code: the blocks call the C ABI as a C program would, as the header documents.
#![allow(clippy::undocumented_unsafe_blocks)]

#[path = "common/keep.rs"]
mod keep;

use keep::keep;
use nim_signaling::client::*;
use nim_signaling::log::nim_signaling_set_log_cb;
use nim_signaling::server::*;
use nim_signaling::types::nim_signaling_server;
use std::ffi::{c_char, c_void, CStr, CString};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Mutex;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

/// (level, target, message)
type Line = (i32, String, String);

struct Inbox {
    tx: Mutex<Sender<Line>>,
    /// Calls of `set_log_cb` from inside the callback, and what they returned.
    reentrant: AtomicU32,
}

unsafe extern "C" fn on_log(
    level: i32,
    target: *const c_char,
    message: *const c_char,
    ud: *mut c_void,
) {
    // SAFETY: `ud` is the user data the test registered: a `keep`-ed
    // value of this type, alive for the whole process.
    let ib = unsafe { &*(ud as *const Inbox) };
    // SAFETY: the library's strings, valid until the callback returns.
    let (target, message) = unsafe { (CStr::from_ptr(target), CStr::from_ptr(message)) };
    let target = target.to_string_lossy().into_owned();
    let message = message.to_string_lossy().into_owned();
    let _ = ib.tx.lock().unwrap().send((level, target, message));
}

/// Like `on_log`, and also tries to change the registration from inside.
unsafe extern "C" fn on_log_reentrant(
    level: i32,
    target: *const c_char,
    message: *const c_char,
    ud: *mut c_void,
) {
    // SAFETY: `ud` is the user data the test registered: a `keep`-ed
    // value of this type, alive for the whole process.
    let ib = unsafe { &*(ud as *const Inbox) };
    let code = nim_signaling_set_log_cb(0, None, null_mut());
    ib.reentrant.store(code as u32, Ordering::SeqCst);
    // SAFETY: this callback's own arguments, still valid.
    unsafe { on_log(level, target, message, ud) };
}

fn inbox() -> (&'static Inbox, Receiver<Line>) {
    let (tx, rx) = channel();
    let ib = keep(Inbox {
        tx: Mutex::new(tx),
        reentrant: AtomicU32::new(0),
    });
    (ib, rx)
}

fn ud(ib: &'static Inbox) -> *mut c_void {
    ib as *const Inbox as *mut c_void
}

fn cs(s: &str) -> CString {
    CString::new(s).unwrap()
}

/// Starts an embedded server on `cfg`; the handle or the code.
fn server(cfg: &str) -> Result<*mut nim_signaling_server, i32> {
    let mut s = null_mut();
    match unsafe { nim_signaling_server_start(cs(cfg).as_ptr(), &mut s) } {
        200 => Ok(s),
        code => Err(code),
    }
}

/// A server start that fails (its address is taken): logs one error on
/// this thread before returning.
fn failed_start(taken: &str) {
    let cfg = format!(r#"{{"listen":"{taken}"}}"#);
    assert!(
        server(&cfg).is_err(),
        "a second server on {taken} must fail"
    );
}

/// A login as `account` with a wrong token, to completion.
fn refused_login(url: &str, account: &str) {
    let cfg = format!(
        r#"{{"serverUrl":"{url}","account":"{account}","token":"wrong","reconnect":false}}"#
    );
    let mut c = null_mut();
    assert_eq!(
        unsafe { nim_signaling_client_new(cs(&cfg).as_ptr(), &mut c) },
        200
    );
    let (tx, rx) = channel::<i32>();
    let done = keep(Mutex::new(tx));
    unsafe extern "C" fn on_login(code: i32, _: *const c_char, ud: *mut c_void) {
        // SAFETY: `ud` is the `keep`-ed `Mutex<Sender<i32>>` registered
        // with this callback, alive for the whole process.
        let tx = unsafe { &*(ud as *const Mutex<Sender<i32>>) };
        let _ = tx.lock().unwrap().send(code);
    }
    let r = unsafe {
        nim_signaling_login(
            c,
            Some(on_login),
            done as *const Mutex<Sender<i32>> as *mut c_void,
        )
    };
    assert_eq!(r, 200);
    assert_eq!(rx.recv_timeout(WAIT).expect("login answered"), 302);
    unsafe { nim_signaling_client_free(c) };
}

/// Logs in as `account` with `token`, sends one room query (answered
/// 10404) and frees the client.
fn one_request(url: &str, account: &str, token: &str) {
    let cfg = format!(
        r#"{{"serverUrl":"{url}","account":"{account}","token":"{token}","reconnect":false}}"#
    );
    let mut c = null_mut();
    assert_eq!(
        unsafe { nim_signaling_client_new(cs(&cfg).as_ptr(), &mut c) },
        200
    );
    let (tx, rx) = channel::<i32>();
    let done = keep(Mutex::new(tx)) as *const Mutex<Sender<i32>> as *mut c_void;
    unsafe extern "C" fn on_done(code: i32, _: *const c_char, ud: *mut c_void) {
        // SAFETY: `ud` is the `keep`-ed `Mutex<Sender<i32>>` registered
        // with this callback, alive for the whole process.
        let tx = unsafe { &*(ud as *const Mutex<Sender<i32>>) };
        let _ = tx.lock().unwrap().send(code);
    }
    assert_eq!(unsafe { nim_signaling_login(c, Some(on_done), done) }, 200);
    assert_eq!(rx.recv_timeout(WAIT).expect("login answered"), 200);
    let q = cs(r#"{"channelName":"no-such-room"}"#);
    let r = unsafe { nim_signaling_query_channel_info(c, q.as_ptr(), Some(on_done), done) };
    assert_eq!(r, 200);
    assert_eq!(rx.recv_timeout(WAIT).expect("query answered"), 10404);
    unsafe { nim_signaling_client_free(c) };
}

/// The value of ` key=value` in a log line.
fn field<'a>(message: &'a str, key: &str) -> Option<&'a str> {
    let at = message.find(&format!(" {key}="))? + key.len() + 2;
    message[at..].split(' ').next()
}

fn next(rx: &Receiver<Line>, what: &str) -> Line {
    rx.recv_timeout(WAIT)
        .unwrap_or_else(|_| panic!("no log line for {what} within {WAIT:?}"))
}

#[test]
fn logs_reach_the_callback_filtered_by_level() {
    // A server with static accounts: the login of "mallory" with a wrong
    // token is refused (logged at info by the server's session).
    let srv = server(r#"{"auth":{"mode":"static","accounts":{"mallory":"right"}}}"#)
        .expect("server starts");
    let url = unsafe { CStr::from_ptr(nim_signaling_server_url(srv)) }
        .to_str()
        .unwrap()
        .to_string();
    let taken = url.trim_start_matches("ws://").to_string();

    // Bad levels are refused and change nothing.
    let (ib, rx) = inbox();
    assert_eq!(nim_signaling_set_log_cb(6, Some(on_log), ud(ib)), 414);
    assert_eq!(nim_signaling_set_log_cb(-1, Some(on_log), ud(ib)), 414);

    // Before any registration, logging is off (nothing to call): a failing
    // start still fails cleanly.
    failed_start(&taken);

    // Info: the refused login arrives with its module and fields.
    assert_eq!(nim_signaling_set_log_cb(3, Some(on_log), ud(ib)), 200);
    refused_login(&url, "mallory");
    let (level, target, message) = loop {
        let l = next(&rx, "the refused login");
        if l.2.contains("login refused") {
            break l;
        }
        assert!(l.0 <= 3, "a line above the info level: {l:?}");
    };
    assert_eq!(level, 3, "{message}");
    assert!(
        target.starts_with("nim_signaling_server"),
        "target {target}"
    );
    assert!(message.contains("bad token"), "{message}");
    assert!(message.contains("account=mallory"), "{message}");

    // An error on the caller's thread: delivered before the call returns.
    failed_start(&taken);
    let l = rx
        .try_recv()
        .expect("the failed start was logged before it returned");
    assert_eq!(l.0, 1, "{l:?}");
    assert!(l.2.contains("embedded server did not start"), "{l:?}");
    assert!(
        l.1.starts_with("nim_signaling"),
        "target of the failed start: {}",
        l.1
    );

    // Warn: the info line of a refused login is filtered out; the error of
    // a failed start, logged after it, is the next line to arrive.
    while rx.try_recv().is_ok() {}
    assert_eq!(nim_signaling_set_log_cb(2, Some(on_log), ud(ib)), 200);
    refused_login(&url, "mallory");
    failed_start(&taken);
    let l = next(&rx, "the failed start at warn");
    assert!(
        l.2.contains("embedded server did not start"),
        "the first line at warn must be the error, got {l:?}"
    );

    // Debug: one request is followed from the client library to the
    // server by its request id: the client's line and the server's carry
    // the same `rid` (the server's from the request's span).
    while rx.try_recv().is_ok() {}
    assert_eq!(nim_signaling_set_log_cb(4, Some(on_log), ud(ib)), 200);
    one_request(&url, "mallory", "right");
    assert_eq!(nim_signaling_set_log_cb(0, None, null_mut()), 200);
    let lines: Vec<Line> = rx.try_iter().collect();
    let queued = lines
        .iter()
        .find(|l| l.2.contains("request queued") && l.2.contains("op=queryChannelInfo"))
        .unwrap_or_else(|| panic!("no client line for the request: {lines:#?}"));
    assert!(queued.1.starts_with("nim_signaling_client"), "{queued:?}");
    let rid = field(&queued.2, "rid").expect("the client's line has a rid");
    let done = lines
        .iter()
        .find(|l| l.1.starts_with("nim_signaling_server") && l.2.contains("request done"))
        .unwrap_or_else(|| panic!("no server line for the request: {lines:#?}"));
    assert_eq!(field(&done.2, "rid"), Some(rid), "{done:?}");
    assert_eq!(field(&done.2, "code"), Some("10404"), "{done:?}");
    assert_eq!(field(&done.2, "account"), Some("mallory"), "{done:?}");
    assert_eq!(field(&done.2, "op"), Some("queryChannelInfo"), "{done:?}");

    // Off (level 0, or a NULL callback): not called.
    while rx.try_recv().is_ok() {}
    assert_eq!(nim_signaling_set_log_cb(0, Some(on_log), ud(ib)), 200);
    failed_start(&taken);
    assert!(rx.try_recv().is_err(), "level 0: no call");
    assert_eq!(nim_signaling_set_log_cb(5, None, ud(ib)), 200);
    failed_start(&taken);
    assert!(rx.try_recv().is_err(), "NULL callback: no call");

    // From inside the callback, set_log_cb is refused (403) and the
    // registration stays.
    let (ib2, rx2) = inbox();
    assert_eq!(
        nim_signaling_set_log_cb(1, Some(on_log_reentrant), ud(ib2)),
        200
    );
    failed_start(&taken);
    let l = rx2
        .try_recv()
        .expect("logged through the re-entrant callback");
    assert!(l.2.contains("embedded server did not start"), "{l:?}");
    assert_eq!(ib2.reentrant.load(Ordering::SeqCst), 403);
    failed_start(&taken);
    assert!(rx2.try_recv().is_ok(), "still registered after the refusal");

    assert_eq!(nim_signaling_set_log_cb(0, None, null_mut()), 200);
    unsafe { nim_signaling_server_stop(srv) };
}
