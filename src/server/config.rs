//! Server settings: the keys of docs/CONFIG.md, read from JSON (C API,
//! config files) or TOML (config files). Unknown keys are refused so that a
//! misspelt setting is an error, not a silent default.

use serde::{Deserialize, Serialize};

use super::auth::AuthConfig;
use super::rules::Limits;
use crate::protocol::codes::INVALID_PARAM;
use crate::protocol::Failure;
use crate::store::LogLimits;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum StoreConfig {
    Memory,
    Redis { url: String },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on; port 0 picks a free one.
    pub listen: String,
    pub auth: AuthConfig,
    pub room_ttl_ms: i64,
    pub invite_ttl_ms: i64,
    pub member_drop_grace_ms: i64,
    pub max_members: usize,
    /// How often the server expects to hear from a client (clients ping at
    /// their own interval; this is advertised in the login reply).
    pub heartbeat_interval_ms: u64,
    /// A connection silent this long is closed.
    pub heartbeat_timeout_ms: u64,
    /// Time allowed between connecting and logging in.
    pub login_timeout_ms: u64,
    pub max_connections: usize,
    /// Largest frame accepted, bytes.
    pub max_frame_bytes: usize,
    pub log_max_events: usize,
    pub log_retention_ms: i64,
    pub store: StoreConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:0".into(),
            auth: AuthConfig::None,
            room_ttl_ms: 7_200_000,
            invite_ttl_ms: 120_000,
            member_drop_grace_ms: 60_000,
            max_members: 100,
            heartbeat_interval_ms: 10_000,
            heartbeat_timeout_ms: 20_000,
            login_timeout_ms: 10_000,
            max_connections: 100_000,
            max_frame_bytes: 64 * 1024,
            log_max_events: 1000,
            log_retention_ms: 120_000,
            store: StoreConfig::Memory,
        }
    }
}

fn bad(msg: String) -> Failure {
    Failure::new(INVALID_PARAM, msg)
}

impl ServerConfig {
    pub fn from_json(text: &str) -> Result<Self, Failure> {
        let text = if text.trim().is_empty() { "{}" } else { text };
        let c: ServerConfig =
            serde_json::from_str(text).map_err(|e| bad(format!("server config: {e}")))?;
        c.validate()
    }

    pub fn from_toml(text: &str) -> Result<Self, Failure> {
        let c: ServerConfig =
            toml::from_str(text).map_err(|e| bad(format!("server config: {e}")))?;
        c.validate()
    }

    /// Reads a config file; `.toml` files as TOML, anything else as JSON.
    pub fn from_file(path: &std::path::Path) -> Result<Self, Failure> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?;
        if path.extension().and_then(|e| e.to_str()) == Some("toml") {
            Self::from_toml(&text)
        } else {
            Self::from_json(&text)
        }
    }

    pub fn validate(self) -> Result<Self, Failure> {
        let positive = [
            ("roomTtlMs", self.room_ttl_ms),
            ("inviteTtlMs", self.invite_ttl_ms),
            ("memberDropGraceMs", self.member_drop_grace_ms),
            ("logRetentionMs", self.log_retention_ms),
        ];
        for (k, v) in positive {
            if v <= 0 {
                return Err(bad(format!("server config: {k} must be > 0")));
            }
        }
        if self.max_members == 0 || self.max_connections == 0 || self.log_max_events == 0 {
            return Err(bad(
                "server config: maxMembers, maxConnections and logMaxEvents must be > 0".into(),
            ));
        }
        if self.heartbeat_timeout_ms < 1000 || self.login_timeout_ms == 0 {
            return Err(bad(
                "server config: heartbeatTimeoutMs must be >= 1000 and loginTimeoutMs > 0".into(),
            ));
        }
        if self.max_frame_bytes < 1024 {
            return Err(bad("server config: maxFrameBytes must be >= 1024".into()));
        }
        if let StoreConfig::Redis { .. } = self.store {
            return Err(bad(
                "server config: store kind \"redis\" is not available in this build yet".into(),
            ));
        }
        Ok(self)
    }

    pub fn limits(&self) -> Limits {
        Limits {
            room_ttl_ms: self.room_ttl_ms,
            invite_ttl_ms: self.invite_ttl_ms,
            max_members: self.max_members,
        }
    }

    pub fn log_limits(&self) -> LogLimits {
        LogLimits {
            max_events: self.log_max_events,
            retention_ms: self.log_retention_ms,
        }
    }
}
