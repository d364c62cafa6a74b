//! The embedded server and the version string.

use std::ffi::{c_char, CString};

use super::types::nim_signaling_server;
use super::{c_str, guard, RUNTIME};
use crate::protocol::codes::{INTERNAL, INVALID_PARAM, OK};
use crate::protocol::Failure;
use crate::server::{self, ServerConfig, ServerHandle};

struct Handle {
    server: Option<ServerHandle>,
    url: CString,
}

/// Runs `fut` on the shared runtime and waits for it on this thread (which
/// may be any thread but a runtime worker).
pub(crate) fn block_on<T: Send + 'static>(
    fut: impl std::future::Future<Output = T> + Send + 'static,
) -> Option<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    RUNTIME.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv().ok()
}

/// Starts a signaling server inside this process.
///
/// `config_json` (borrowed for the call; `"{}"` for defaults): `listen`
/// (`"127.0.0.1:0"`: a free port), `auth` (`{"mode":"none"}` default,
/// `{"mode":"static","accounts":{...}}`, `{"mode":"hmac","secret":"..."}`),
/// `roomTtlMs`, `inviteTtlMs`, `memberDropGraceMs`, `maxMembers`,
/// `heartbeatIntervalMs`, `heartbeatTimeoutMs`, `tls` (`{"certFile":...,
/// "keyFile":...}`, PEM: serve `wss://`), the per-account and per-connection
/// limits, `store` — see docs/CONFIG.md.
/// Unknown keys are refused (414) so that typos do not pass silently.
///
/// On 200 `*out_server` receives a handle the caller owns and must release
/// with `nim_signaling_server_stop`; otherwise it is not written. Returns
/// 414 for NULL arguments or a bad config, 500 when it cannot listen (or,
/// with a Redis store, cannot reach Redis).
#[no_mangle]
pub unsafe extern "C" fn nim_signaling_server_start(
    config_json: *const c_char,
    out_server: *mut *mut nim_signaling_server,
) -> i32 {
    guard(INTERNAL, || {
        if out_server.is_null() {
            return INVALID_PARAM;
        }
        let cfg = match c_str(config_json, "config_json").and_then(ServerConfig::from_json) {
            Ok(c) => c,
            Err(f) => return f.code,
        };
        let started = block_on(server::start(cfg)).unwrap_or_else(|| Err(Failure::code(INTERNAL)));
        match started {
            Ok(s) => {
                let url = CString::new(s.url()).unwrap_or_default();
                *out_server = Box::into_raw(Box::new(Handle {
                    server: Some(s),
                    url,
                })) as *mut nim_signaling_server;
                OK
            }
            Err(f) => {
                tracing::error!(error = %f, "embedded server did not start");
                f.code
            }
        }
    })
}

/// The server's URL, `"ws://127.0.0.1:PORT"` (`"wss://…"` with `tls`).
/// Owned by the server: valid
/// until `nim_signaling_server_stop`. NULL for a NULL server.
#[no_mangle]
pub unsafe extern "C" fn nim_signaling_server_url(
    server: *const nim_signaling_server,
) -> *const c_char {
    guard(std::ptr::null(), || {
        match (server as *const Handle).as_ref() {
            Some(h) => h.url.as_ptr(),
            None => std::ptr::null(),
        }
    })
}

/// Stops the server (closing every connection), waits for it to finish and
/// frees it. NULL is a no-op. Connected clients see the connection drop.
#[no_mangle]
pub unsafe extern "C" fn nim_signaling_server_stop(server: *mut nim_signaling_server) {
    guard((), || {
        if server.is_null() {
            return;
        }
        let mut h = Box::from_raw(server as *mut Handle);
        if let Some(s) = h.server.take() {
            block_on(s.shutdown());
        }
    })
}

/// The library version, e.g. `"0.1.0"`. A static string; never freed.
#[no_mangle]
pub extern "C" fn nim_signaling_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr() as *const c_char
}
