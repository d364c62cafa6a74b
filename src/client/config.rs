//! Client settings, the `config_json` of `nim_signaling_client_new`.

use serde::Deserialize;

use crate::protocol::codes::INVALID_PARAM;
use crate::protocol::Failure;

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
    /// PEM CA bundle for `wss://` with a private CA.
    #[serde(default)]
    pub ca_file: Option<String>,
}

mod defaults {
    pub fn request_timeout_ms() -> u64 {
        10_000
    }
    pub fn reconnect() -> bool {
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
        if c.account.is_empty() || c.account.len() > crate::protocol::params::MAX_NAME_LEN {
            return Err(bad("client config: account must be 1 to 128 bytes"));
        }
        if c.request_timeout_ms == 0 || c.heartbeat_interval_ms == 0 {
            return Err(bad(
                "client config: requestTimeoutMs and heartbeatIntervalMs must be > 0",
            ));
        }
        if c.heartbeat_timeout_ms < c.heartbeat_interval_ms {
            return Err(bad(
                "client config: heartbeatTimeoutMs must be >= heartbeatIntervalMs",
            ));
        }
        if c.device_id.as_deref().map(str::is_empty).unwrap_or(true) {
            c.device_id = Some(format!("dev-{:016x}", rand::random::<u64>()));
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
