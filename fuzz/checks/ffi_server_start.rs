//! Check of the fuzz target `ffi_server_start`.

use super::common;
use nim_signaling::client::{
    nim_signaling_call, nim_signaling_client_free, nim_signaling_client_new, nim_signaling_create,
    nim_signaling_login,
};
use nim_signaling::server::{
    nim_signaling_server_start, nim_signaling_server_stop, nim_signaling_server_url,
};
use nim_signaling_server::ServerConfig;
use serde_json::{json, Value};
use std::ffi::{c_char, c_void, CStr, CString};
use std::ptr::null_mut;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

const LOOPBACK: &str = "127.0.0.1:0";

/// `nim_signaling_server_start` with arbitrary bytes as `config_json` (NUL
/// appended). Checks: no panic; 200 exactly when the config is valid, else
/// 414 with `*out_server` untouched. A server that started (at
/// ws://127.0.0.1:PORT) is then used, so that settings which only matter
/// once a client is there (heartbeat, frame size, TTLs, limits) are
/// exercised too: a client logs in, creates a room and calls someone (an
/// invitation), then leaves and the server is stopped. A panic in the
/// server (on any thread) is a failure too: under libFuzzer its panic hook
/// makes every panic a crash, and tests/fuzz_smoke.rs counts panics on
/// other threads than the check's.
///
/// The configs this target once crashed on (numbers without an upper
/// bound) are regression seeds: fuzz/seeds/ffi_server_start/fixed-*.
///
/// The check never opens a port beyond 127.0.0.1:0 nor reads a file: a
/// config the library would accept is handed over with `listen` set to
/// "127.0.0.1:0" and without `tls` (whose certificate and key files the
/// library reads); one it refuses is handed over as it is (refused before
/// binding). The same public parser the library uses decides which.
pub fn ffi_server_start(data: &[u8]) {
    let seen = common::visible(data);
    let parsed = std::str::from_utf8(seen).ok().map(ServerConfig::from_json);
    let input = match &parsed {
        Some(Ok(cfg)) => confined(cfg).unwrap_or_else(|| data.to_vec()),
        _ => data.to_vec(),
    };
    let valid = matches!(parsed, Some(Ok(_)));

    let c = common::c_string(&input);
    let mut out = null_mut();
    let code = unsafe { nim_signaling_server_start(c.as_ptr().cast(), &mut out) };
    match code {
        200 => {
            assert!(valid, "started with a config the parser refuses");
            assert!(!out.is_null(), "200 without a handle");
            let url = unsafe { CStr::from_ptr(nim_signaling_server_url(out)) };
            let url = url.to_str().expect("URL is UTF-8");
            assert!(url.starts_with("ws://127.0.0.1:"), "listening at {url}");
            use_server(url);
            unsafe { nim_signaling_server_stop(out) };
        }
        414 => {
            assert!(!valid, "a valid config refused");
            assert!(out.is_null(), "out_server written on failure");
        }
        other => panic!("nim_signaling_server_start returned {other}"),
    }
}

/// The config as JSON with listen = 127.0.0.1:0 and no tls, if it differs
/// from that; None when it already is confined.
fn confined(cfg: &ServerConfig) -> Option<Vec<u8>> {
    let mut v = serde_json::to_value(cfg).expect("serialize the config");
    let m = v.as_object_mut().expect("a config is an object");
    let tls = m.get("tls").is_some_and(|t| !t.is_null());
    if m.get("listen") == Some(&json!(LOOPBACK)) && !tls {
        return None;
    }
    m.insert("listen".into(), Value::from(LOOPBACK));
    m.remove("tls");
    Some(serde_json::to_vec(&v).expect("serialize"))
}

type Results = (Mutex<Sender<i32>>, Mutex<Receiver<i32>>);

/// Where result callbacks report (static: nothing is leaked per input).
fn results() -> &'static Results {
    static CH: OnceLock<Results> = OnceLock::new();
    CH.get_or_init(|| {
        let (tx, rx) = channel();
        (Mutex::new(tx), Mutex::new(rx))
    })
}

unsafe extern "C" fn on_result(code: i32, _json: *const c_char, _ud: *mut c_void) {
    let _ = results().0.lock().unwrap().send(code);
}

/// The next result, if one comes within the client's request timeout.
fn next_result() -> Option<i32> {
    results()
        .1
        .lock()
        .unwrap()
        .recv_timeout(Duration::from_secs(5))
        .ok()
}

/// A client logs in (whatever the auth mode says) and, if it may, creates
/// a room and makes a call; then it is freed (its device goes away).
fn use_server(url: &str) {
    while results().1.lock().unwrap().try_recv().is_ok() {}
    let cfg = format!(
        r#"{{"serverUrl":"{url}","account":"fuzz","deviceId":"d1","reconnect":false,"requestTimeoutMs":2000}}"#
    );
    let cfg = CString::new(cfg).unwrap();
    let mut c = null_mut();
    assert_eq!(
        unsafe { nim_signaling_client_new(cfg.as_ptr(), &mut c) },
        200
    );
    unsafe {
        assert_eq!(nim_signaling_login(c, Some(on_result), null_mut()), 200);
        if next_result() == Some(200) {
            let p = CString::new(r#"{"type":1,"channelName":"fuzz"}"#).unwrap();
            if nim_signaling_create(c, p.as_ptr(), Some(on_result), null_mut()) == 200 {
                let _ = next_result();
            }
            let p = CString::new(r#"{"type":2,"account":"peer","requestId":"r1"}"#).unwrap();
            if nim_signaling_call(c, p.as_ptr(), Some(on_result), null_mut()) == 200 {
                let _ = next_result();
            }
        }
        nim_signaling_client_free(c);
    }
}
