//! The embedded server and the version string. The functions exist in every
//! build, so that one header serves both: a client-only build (without the
//! `embedded-server` feature) answers `nim_signaling_server_start` with 501.

use std::ffi::c_char;

use super::guard;
use super::last_error::answer;
use super::types::nim_signaling_server;
use nim_signaling_protocol::codes::INVALID_PARAM;
#[cfg(not(feature = "embedded-server"))]
use nim_signaling_protocol::codes::UNSUPPORTED;
use nim_signaling_protocol::Failure;

/// The server half, compiled only with the `embedded-server` feature: the
/// Redis client, the HTTP stack and toml come with it.
#[cfg(feature = "embedded-server")]
mod embedded {
    use std::ffi::{c_char, CString};

    use super::super::types::nim_signaling_server;
    use super::super::{c_str, RUNTIME};
    use ::nim_signaling_server::{self as server, ServerConfig, ServerHandle};
    use nim_signaling_protocol::codes::INTERNAL;
    use nim_signaling_protocol::Failure;

    pub(super) struct Handle {
        pub(super) server: Option<ServerHandle>,
        pub(super) url: CString,
    }

    /// Runs `fut` on the shared runtime and waits for it on this thread
    /// (which may be any thread but a runtime worker).
    pub(super) fn block_on<T: Send + 'static>(
        fut: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = std::sync::mpsc::channel();
        RUNTIME.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().ok()
    }

    /// # Safety
    /// As `nim_signaling_server_start`; `out_server` is not NULL.
    pub(super) unsafe fn start(
        config_json: *const c_char,
        out_server: *mut *mut nim_signaling_server,
    ) -> Result<(), Failure> {
        // SAFETY: the caller's string is NUL-terminated and valid for the call.
        let cfg = unsafe { c_str(config_json, "config_json") }.and_then(ServerConfig::from_json)?;
        let started = block_on(server::start(cfg)).unwrap_or_else(|| Err(Failure::code(INTERNAL)));
        let s = started.inspect_err(|f| {
            tracing::error!(error = %f, "embedded server did not start");
        })?;
        let url = CString::new(s.url()).unwrap_or_default();
        let handle = Box::into_raw(Box::new(Handle {
            server: Some(s),
            url,
        }));
        // SAFETY: the caller checked that `out_server` is not NULL.
        unsafe { *out_server = handle as *mut nim_signaling_server };
        Ok(())
    }
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
/// with a Redis store, cannot reach Redis), 501 in a client-only build.
#[no_mangle]
pub unsafe extern "C" fn nim_signaling_server_start(
    config_json: *const c_char,
    out_server: *mut *mut nim_signaling_server,
) -> i32 {
    answer(|| {
        if out_server.is_null() {
            return Err(Failure::new(INVALID_PARAM, "out_server is NULL"));
        }
        #[cfg(feature = "embedded-server")]
        // SAFETY: the caller's arguments are as documented; `out_server`
        // was checked above.
        return unsafe { embedded::start(config_json, out_server) };
        #[cfg(not(feature = "embedded-server"))]
        {
            let _ = config_json;
            tracing::warn!("this build of the library is client-only: no embedded server");
            Err(Failure::new(
                UNSUPPORTED,
                "this build of the library is client-only: no embedded server",
            ))
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
        #[cfg(feature = "embedded-server")]
        // SAFETY: `server` is NULL or a handle from
        // `nim_signaling_server_start` that is not yet stopped.
        return match unsafe { (server as *const embedded::Handle).as_ref() } {
            Some(h) => h.url.as_ptr(),
            None => std::ptr::null(),
        };
        // A client-only build never hands out a server handle.
        #[cfg(not(feature = "embedded-server"))]
        {
            let _ = server;
            std::ptr::null()
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
        #[cfg(feature = "embedded-server")]
        {
            // SAFETY: a handle from `nim_signaling_server_start`, stopped
            // once: ownership comes back here.
            let mut h = unsafe { Box::from_raw(server as *mut embedded::Handle) };
            if let Some(s) = h.server.take() {
                embedded::block_on(s.shutdown());
            }
        }
    })
}

/// The library version, e.g. `"0.1.0"`. A static string; never freed.
#[no_mangle]
pub extern "C" fn nim_signaling_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr() as *const c_char
}
