//! Client settings, the `config_json` of `nim_signaling_client_new`.

use serde::Deserialize;

use super::tls::CaRoots;
use nim_signaling_protocol::codes::INVALID_PARAM;
use nim_signaling_protocol::{params, Failure};

/// Longest time setting accepted (a day): longer is a mistake, and would
/// overflow deadline arithmetic near the top of the range.
pub const MAX_TIME_MS: u64 = 86_400_000;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClientConfig {
    /// `ws://host:port` (or `wss://`) of the server.
    pub server_url: String,
    /// Further nodes; on reconnect the client moves on to the next URL.
    #[serde(default)]
    pub server_urls: Vec<String>,
    pub account: String,
    #[serde(default)]
    pub token: String,
    /// Made up when absent, unique per client object.
    #[serde(default)]
    pub device_id: Option<String>,
    #[serde(default = "defaults::request_timeout_ms")]
    pub request_timeout_ms: u64,
    #[serde(default = "defaults::reconnect")]
    pub reconnect: bool,
    #[serde(default = "defaults::heartbeat_interval_ms")]
    pub heartbeat_interval_ms: u64,
    #[serde(default = "defaults::heartbeat_timeout_ms")]
    pub heartbeat_timeout_ms: u64,
    /// Acknowledge each INVITE that reaches this device, so the inviter
    /// gets INVITE_DELIVERED (default true). Off: no receipts from here
    /// (one request and one event less per invitation).
    #[serde(default = "defaults::invite_receipts")]
    pub invite_receipts: bool,
    /// PEM file of one or more CA certificates that verify `wss://`
    /// servers instead of the system's roots (a private CA).
    #[serde(default)]
    pub ca_file: Option<String>,
    /// `ca_file`'s certificates, read by `from_json`.
    #[serde(skip)]
    pub(crate) ca_roots: Option<CaRoots>,
}

mod defaults {
    pub fn request_timeout_ms() -> u64 {
        10_000
    }
    pub fn reconnect() -> bool {
        true
    }
    pub fn invite_receipts() -> bool {
        true
    }
    pub fn heartbeat_interval_ms() -> u64 {
        5_000
    }
    pub fn heartbeat_timeout_ms() -> u64 {
        20_000
    }
}

fn bad(msg: impl Into<String>) -> Failure {
    Failure::new(INVALID_PARAM, msg)
}

impl ClientConfig {
    /// Parses and checks a config; unknown keys are ignored.
    /// Reads and checks a client config (JSON). 414 naming the key when a
    /// value is out of range.
    pub fn from_json(text: &str) -> Result<Self, Failure> {
        let mut c: ClientConfig =
            serde_json::from_str(text).map_err(|e| bad(format!("client config: {e}")))?;
        for url in std::iter::once(&c.server_url).chain(&c.server_urls) {
            if !(url.starts_with("ws://") || url.starts_with("wss://")) {
                return Err(bad(format!(
                    "client config: \"{url}\" is not a ws:// or wss:// URL"
                )));
            }
        }
        // The same rule the server applies at login, so a bad account or
        // deviceId fails here rather than later in the login callback.
        let named = |field: &str, v: &str| {
            if v.is_empty() {
                return Err(bad(format!("client config: {field} must not be empty")));
            }
            params::name(field, v).map_err(|f| bad(format!("client config: {}", f.message)))
        };
        named("account", &c.account)?;
        if let Some(d) = c.device_id.as_deref().filter(|d| !d.is_empty()) {
            named("deviceId", d)?;
        }
        // Bounded so that deadlines computed from them cannot overflow.
        let times = [
            ("requestTimeoutMs", c.request_timeout_ms),
            ("heartbeatIntervalMs", c.heartbeat_interval_ms),
            ("heartbeatTimeoutMs", c.heartbeat_timeout_ms),
        ];
        for (k, v) in times {
            if v == 0 || v > MAX_TIME_MS {
                return Err(bad(format!(
                    "client config: {k} must be between 1 and {MAX_TIME_MS}"
                )));
            }
        }
        if c.heartbeat_timeout_ms < c.heartbeat_interval_ms {
            return Err(bad(
                "client config: heartbeatTimeoutMs must be >= heartbeatIntervalMs",
            ));
        }
        if c.device_id.as_deref().map(str::is_empty).unwrap_or(true) {
            c.device_id = Some(format!("dev-{:016x}", rand::random::<u64>()));
        }
        // An empty caFile means none (what a C caller may pass for "unset").
        c.ca_file = c.ca_file.filter(|f| !f.is_empty());
        if let Some(path) = &c.ca_file {
            c.ca_roots = Some(CaRoots::load(path)?);
        }
        Ok(c)
    }

    pub fn device_id(&self) -> &str {
        self.device_id.as_deref().unwrap_or("")
    }

    /// The URLs to try, in order.
    pub fn urls(&self) -> Vec<String> {
        std::iter::once(self.server_url.clone())
            .chain(self.server_urls.iter().cloned())
            .collect()
    }
}
