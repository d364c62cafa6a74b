//! An embedded server started through the C ABI, stopped when dropped.

use nim_signaling::server::*;
use nim_signaling::types::nim_signaling_server;
use std::ffi::{CStr, CString};
use std::ptr::null_mut;

pub struct Server(pub *mut nim_signaling_server);

impl Server {
    /// Starts one on `cfg` (JSON) with the test servers' rate limit lifted
    /// (see `unthrottled`); panics unless that answers 200.
    pub fn start(cfg: &str) -> Server {
        let cfg = super::unthrottled(serde_json::from_str(cfg).unwrap()).to_string();
        let mut s = null_mut();
        let cfg = CString::new(cfg).unwrap();
        // SAFETY: a CString alive across the call and a local out pointer.
        let code = unsafe { nim_signaling_server_start(cfg.as_ptr(), &mut s) };
        assert_eq!(code, 200);
        assert!(!s.is_null());
        Server(s)
    }

    pub fn url(&self) -> String {
        // SAFETY: a running server (stopped only on drop) gives its URL, a
        // NUL-terminated string it keeps until stopped; `self` outlives the
        // borrow, copied before returning.
        unsafe { CStr::from_ptr(nim_signaling_server_url(self.0)) }
            .to_str()
            .unwrap()
            .to_string()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: the handle `start` got, stopped once: here.
        unsafe { nim_signaling_server_stop(self.0) }
    }
}
