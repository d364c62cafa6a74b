//! Server settings: the keys of docs/CONFIG.md, read from JSON (C API,
//! config files) or TOML (config files). Unknown keys are refused so that a
//! misspelt setting is an error, not a silent default.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::engine::service::Quotas;
use crate::net::auth::AuthConfig;
use crate::net::tls::TlsConfig;
use crate::store::LogLimits;
use nim_signaling_core::rules::Limits;
use nim_signaling_protocol::codes::INVALID_PARAM;
use nim_signaling_protocol::Failure;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "camelCase", deny_unknown_fields)]
pub enum StoreConfig {
    // Empty, not unit: so that deny_unknown_fields applies to it too.
    Memory {},
    /// Cluster mode: state in the Redis at `url` (`redis://host:port/db`),
    /// under keys starting with `prefix` (default "nim"); nodes with the
    /// same url and prefix form one system.
    Redis {
        url: String,
        #[serde(default = "default_prefix")]
        prefix: String,
    },
}

/// The key prefix of a Redis store whose config names none.
pub const DEFAULT_REDIS_PREFIX: &str = "nim";

fn default_prefix() -> String {
    DEFAULT_REDIS_PREFIX.into()
}

/// Where webhooks go and how they are retried (see docs/WEBHOOKS.md).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// Receivers; each gets every event (of `events`), in order per room.
    pub urls: Vec<String>,
    /// Signs each POST (the `X-Nim-Signature` header).
    pub secret: String,
    /// The event names to send; empty: all of them.
    pub events: Vec<String>,
    /// Events waiting per receiver at most; beyond it new ones are dropped
    /// (and counted).
    pub queue_size: usize,
    /// Time allowed for one POST.
    pub timeout_ms: u64,
    /// Tries of one event before it is dropped (and counted).
    pub max_attempts: u32,
    /// The first retry waits this long; each next one twice as long.
    pub retry_base_ms: u64,
    /// No retry waits longer than this.
    pub retry_max_ms: u64,
    /// PEM CA certificates verifying `https://` receivers (absent: the
    /// system's roots).
    pub ca_file: Option<std::path::PathBuf>,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            urls: Vec::new(),
            secret: String::new(),
            events: Vec::new(),
            queue_size: 10_000,
            timeout_ms: 5_000,
            max_attempts: 8,
            retry_base_ms: 500,
            retry_max_ms: 60_000,
            ca_file: None,
        }
    }
}

/// The push gateway that rings offline invitees (see docs/PUSH.md).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct PushConfig {
    /// Where pushes are POSTed.
    pub url: String,
    /// Signs each POST (the `X-Nim-Signature` header); absent: unsigned.
    pub secret: Option<String>,
    /// Time allowed for the gateway's answer; no answer counts as refused.
    pub timeout_ms: u64,
    /// PEM CA certificates verifying an `https://` gateway.
    pub ca_file: Option<std::path::PathBuf>,
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig {
            url: String::new(),
            secret: None,
            timeout_ms: 3_000,
            ca_file: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum LogFormat {
    /// One human-readable line per record.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// The standalone binary's logs (a library logs through
/// `nim_signaling_set_log_cb` instead).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct LoggingConfig {
    pub format: LogFormat,
    /// Levels by module, `tracing` filter syntax:
    /// `"info,nim_signaling::server::session=debug"`.
    pub level: String,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// The largest `maxFrameBytes` an operator may set.
pub const MAX_FRAME_BYTES_BOUND: usize = 16 << 20;

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
    /// Logged-in sessions at once; a login beyond is answered 416.
    pub max_connections: usize,
    /// Connections accepted and not logged in yet (in the TLS or WebSocket
    /// handshake, or waiting for the login) at once; more wait in the
    /// listen backlog.
    pub max_pending_logins: usize,
    /// Of those, how many one IP address may have at once; one more is
    /// closed as soon as it is accepted.
    pub max_pending_logins_per_ip: usize,
    /// Largest frame accepted, bytes.
    pub max_frame_bytes: usize,
    pub log_max_events: usize,
    pub log_retention_ms: i64,
    /// How long an event kept for offline delivery waits for a login.
    pub offline_retention_ms: i64,
    /// Events kept for offline delivery per account at most.
    pub max_offline_events: usize,
    /// Events one account may have had kept for offline delivery (in
    /// other accounts' offline lists) within about two offline retentions;
    /// beyond it its offlineEnabled requests are refused with 403.
    pub max_offline_events_per_sender: usize,
    pub store: StoreConfig,
    /// Rooms one account may be a member of at once.
    pub max_rooms_per_account: usize,
    /// Unanswered invitations one account may have ringing at once.
    pub max_pending_invites_per_account: usize,
    /// Valid rooms one account may have created (by create or call) at
    /// once, whether or not it is in them.
    pub max_rooms_created_per_account: usize,
    /// Devices (live sessions) one account may have at once.
    pub max_devices_per_account: usize,
    /// Connections from one IP address at once, logged in or not; one
    /// more is closed as soon as it is accepted.
    pub max_connections_per_ip: usize,
    /// Requests per second one device may send to this node over all its
    /// connections (bursts up to twice that); beyond it requests are
    /// answered 416.
    pub max_requests_per_second: u32,
    /// Where `/metrics` (Prometheus) and `/healthz` are served; absent: not
    /// served.
    pub metrics_listen: Option<String>,
    /// Terminate TLS (clients connect with `wss://`); absent: plain `ws://`.
    /// The files are read by `start`, which fails naming a bad one.
    pub tls: Option<TlsConfig>,
    /// Where the admin HTTP API is served (docs/ADMIN.md); absent: not
    /// served. Needs `admin_token`.
    pub admin_listen: Option<String>,
    /// The bearer token every admin request must carry.
    pub admin_token: Option<String>,
    /// Absent: no webhooks.
    pub webhooks: Option<WebhooksConfig>,
    /// Absent: no push gateway (offline invitees wanting a push get 10202).
    pub push: Option<PushConfig>,
    pub logging: LoggingConfig,
}

/// The shortest secret accepted where a secret is all that stands between
/// a stranger and the server: `adminToken` and the HMAC `auth.secret`.
pub const MIN_SECRET_BYTES: usize = 16;

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:0".into(),
            auth: AuthConfig::None {},
            room_ttl_ms: 7_200_000,
            invite_ttl_ms: 120_000,
            member_drop_grace_ms: 60_000,
            max_members: 100,
            heartbeat_interval_ms: 10_000,
            heartbeat_timeout_ms: 20_000,
            login_timeout_ms: 10_000,
            max_connections: 100_000,
            max_pending_logins: 1_000,
            max_pending_logins_per_ip: 100,
            max_frame_bytes: 64 * 1024,
            log_max_events: 1000,
            log_retention_ms: 120_000,
            offline_retention_ms: 7_200_000,
            max_offline_events: 100,
            max_offline_events_per_sender: 1_000,
            store: StoreConfig::Memory {},
            max_rooms_per_account: 100,
            max_pending_invites_per_account: 100,
            max_rooms_created_per_account: 100,
            max_devices_per_account: 16,
            max_connections_per_ip: 10_000,
            max_requests_per_second: 100,
            metrics_listen: None,
            tls: None,
            admin_listen: None,
            admin_token: None,
            webhooks: None,
            push: None,
            logging: LoggingConfig::default(),
        }
    }
}

fn bad(msg: String) -> Failure {
    Failure::new(INVALID_PARAM, msg)
}

/// Where environment variables name settings: `NIM_SIGNALING_ROOM_TTL_MS`
/// is `roomTtlMs`, and `__` steps into a table: `NIM_SIGNALING_AUTH__SECRET`
/// is `auth.secret`.
pub const ENV_PREFIX: &str = "NIM_SIGNALING_";

/// Variables with [`ENV_PREFIX`] that are not settings: read by our tests,
/// scripts and bindings, so a server started beside them must not refuse
/// them. `LOG` is the older name of `logging.level`.
const ENV_NOT_SETTINGS: &[&str] = &["LIB", "PREBUILD", "ASAN", "PYTHON", "UPDATE_HEADER"];

/// `ROOM_TTL_MS` -> `roomTtlMs`.
fn camel(screaming: &str) -> String {
    let mut out = String::new();
    for (i, word) in screaming.split('_').filter(|w| !w.is_empty()).enumerate() {
        let word = word.to_ascii_lowercase();
        if i == 0 {
            out.push_str(&word);
        } else {
            let mut c = word.chars();
            if let Some(first) = c.next() {
                out.push(first.to_ascii_uppercase());
                out.extend(c);
            }
        }
    }
    out
}

/// Every setting with a value, the optional tables filled with their
/// defaults: what the environment may name, and each value's type.
fn every_key() -> Value {
    let mut v = serde_json::to_value(ServerConfig::default()).unwrap_or_default();
    v["webhooks"] = serde_json::to_value(WebhooksConfig::default()).unwrap_or_default();
    v["push"] = serde_json::to_value(PushConfig::default()).unwrap_or_default();
    v["tls"] = serde_json::json!({"certFile": "", "keyFile": ""});
    v
}

/// Applies the `NIM_SIGNALING_…` variables of `env` to the settings `into`;
/// returns the names of those applied. A value is taken as a number or a
/// boolean where the setting is one, as JSON when it starts with `[` or
/// `{`, and as a string otherwise (so a token of digits stays a string).
pub fn env_overrides(
    into: &mut Value,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<String>, Failure> {
    let known = every_key();
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX))
        .collect();
    vars.sort();
    let mut named = Vec::new();
    for (var, text) in vars {
        let rest = &var[ENV_PREFIX.len()..];
        if ENV_NOT_SETTINGS.contains(&rest) {
            continue;
        }
        let path: Vec<String> = if rest == "LOG" {
            vec!["logging".into(), "level".into()]
        } else {
            rest.split("__").map(camel).collect()
        };
        if path.iter().any(String::is_empty) || known.get(&path[0]).is_none() {
            return Err(bad(format!(
                "server config: environment variable {var}: no setting named {:?} (see docs/CONFIG.md)",
                path.join(".")
            )));
        }
        let sample = path.iter().try_fold(&known, |v, k| v.get(k));
        let trimmed = text.trim();
        let value = match sample {
            _ if trimmed.starts_with('[') || trimmed.starts_with('{') => {
                serde_json::from_str(trimmed).map_err(|e| {
                    bad(format!(
                        "server config: environment variable {var}: not valid JSON: {e}"
                    ))
                })?
            }
            Some(Value::Number(_)) | Some(Value::Bool(_)) => serde_json::from_str(trimmed)
                .map_err(|_| {
                    bad(format!(
                        "server config: environment variable {var}: {text:?} is not a {}",
                        if sample.is_some_and(Value::is_boolean) {
                            "boolean"
                        } else {
                            "number"
                        }
                    ))
                })?,
            _ => Value::String(text.clone()),
        };
        let mut at = &mut *into;
        for k in &path[..path.len() - 1] {
            if !at.get(k).is_some_and(Value::is_object) {
                at[k.as_str()] = Value::Object(Default::default());
            }
            at = &mut at[k.as_str()];
        }
        at[path[path.len() - 1].as_str()] = value;
        named.push(var);
    }
    Ok(named)
}

/// A config file as JSON: `.toml` files are TOML, anything else JSON; the
/// top level must be a table.
fn read_file(path: &std::path::Path) -> Result<serde_json::Map<String, Value>, Failure> {
    let shown = path.display();
    let text =
        std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read {shown}: {e}")))?;
    let v: Value = if path.extension().and_then(|e| e.to_str()) == Some("toml") {
        let t: toml::Table =
            toml::from_str(&text).map_err(|e| bad(format!("server config: {shown}: {e}")))?;
        serde_json::to_value(t).map_err(|e| bad(format!("server config: {shown}: {e}")))?
    } else if text.trim().is_empty() {
        Value::Object(Default::default())
    } else {
        serde_json::from_str(&text).map_err(|e| bad(format!("server config: {shown}: {e}")))?
    };
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(bad(format!(
            "server config: {shown}: must be a JSON object"
        ))),
    }
}

/// Refuses the first (key, value, least, most) whose value is out of range.
fn in_ranges(ranges: &[(&str, u64, u64, u64)]) -> Result<(), Failure> {
    for &(k, v, least, most) in ranges {
        if !(least..=most).contains(&v) {
            return Err(bad(format!(
                "server config: {k} must be between {least} and {most}"
            )));
        }
    }
    Ok(())
}

impl ServerConfig {
    pub fn from_json(text: &str) -> Result<Self, Failure> {
        let text = if text.trim().is_empty() { "{}" } else { text };
        // serde would also read the struct from a JSON array, by position.
        if !text.trim_start().starts_with('{') {
            return Err(bad("server config: must be a JSON object".into()));
        }
        let c: ServerConfig =
            serde_json::from_str(text).map_err(|e| bad(format!("server config: {e}")))?;
        c.validate()
    }

    /// Reads a config file; `.toml` files as TOML, anything else as JSON.
    pub fn from_file(path: &std::path::Path) -> Result<Self, Failure> {
        Self::load(serde_json::Map::new(), Some(path), std::iter::empty())
    }

    /// The settings of the standalone binary, in layers: `base` (its own
    /// defaults), then the config file, then the environment variables
    /// `NIM_SIGNALING_<KEY>` (see [`env_overrides`]). Keys the file or the
    /// environment names that no setting has are refused, naming them.
    pub fn load(
        base: serde_json::Map<String, Value>,
        file: Option<&std::path::Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, Failure> {
        let mut merged = base;
        if let Some(path) = file {
            merged.extend(read_file(path)?);
        }
        let mut merged = Value::Object(merged);
        let named = env_overrides(&mut merged, env)?;
        let from = match (file, named.is_empty()) {
            (Some(p), true) => format!("{}: ", p.display()),
            (Some(p), false) => format!("{} with {}: ", p.display(), named.join(", ")),
            (None, false) => format!("{}: ", named.join(", ")),
            (None, true) => String::new(),
        };
        let c: ServerConfig =
            serde_json::from_value(merged).map_err(|e| bad(format!("server config: {from}{e}")))?;
        c.validate()
    }

    /// The settings as JSON with every secret replaced by `"***"`: what
    /// `--print-config` shows.
    pub fn masked(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        let hide = |x: &mut Value| {
            if x.is_string() {
                *x = "***".into();
            }
        };
        if let Some(auth) = v.get_mut("auth") {
            auth.get_mut("secret").map(hide);
            if let Some(Value::Object(accounts)) = auth.get_mut("accounts") {
                accounts.values_mut().for_each(hide);
            }
        }
        v.get_mut("adminToken").map(hide);
        for section in ["webhooks", "push"] {
            if let Some(secret) = v.get_mut(section).and_then(|s| s.get_mut("secret")) {
                hide(secret);
            }
        }
        // A Redis URL may hold a password: redis://user:PASSWORD@host.
        if let Some(Value::String(url)) = v.get_mut("store").and_then(|s| s.get_mut("url")) {
            if let Some((scheme, rest)) = url.split_once("://") {
                if let Some((creds, host)) = rest.rsplit_once('@') {
                    if let Some((user, _password)) = creds.split_once(':') {
                        *url = format!("{scheme}://{user}:***@{host}");
                    }
                }
            }
        }
        v
    }

    pub fn validate(self) -> Result<Self, Failure> {
        self.validate_auth()?;
        const DAY: u64 = 86_400_000;
        const MONTH: u64 = 30 * DAY;
        // (key, value, least, most): every number has an upper bound too,
        // so that no setting can overflow the arithmetic done with it
        // (deadlines, buffer sizes, semaphore permits).
        let ms = |v: i64| u64::try_from(v).unwrap_or(0);
        let ranges = [
            ("roomTtlMs", ms(self.room_ttl_ms), 1, MONTH),
            ("inviteTtlMs", ms(self.invite_ttl_ms), 1, MONTH),
            ("memberDropGraceMs", ms(self.member_drop_grace_ms), 1, MONTH),
            ("logRetentionMs", ms(self.log_retention_ms), 1, MONTH),
            (
                "offlineRetentionMs",
                ms(self.offline_retention_ms),
                1,
                MONTH,
            ),
            ("heartbeatIntervalMs", self.heartbeat_interval_ms, 1, DAY),
            ("heartbeatTimeoutMs", self.heartbeat_timeout_ms, 1000, DAY),
            ("loginTimeoutMs", self.login_timeout_ms, 1, DAY),
            (
                "maxFrameBytes",
                self.max_frame_bytes as u64,
                1024,
                MAX_FRAME_BYTES_BOUND as u64,
            ),
            ("maxMembers", self.max_members as u64, 1, 100_000),
            (
                "maxConnections",
                self.max_connections as u64,
                1,
                100_000_000,
            ),
            (
                "maxPendingLogins",
                self.max_pending_logins as u64,
                1,
                100_000_000,
            ),
            (
                "maxPendingLoginsPerIp",
                self.max_pending_logins_per_ip as u64,
                1,
                100_000_000,
            ),
            ("logMaxEvents", self.log_max_events as u64, 1, 1_000_000),
            (
                "maxOfflineEvents",
                self.max_offline_events as u64,
                1,
                1_000_000,
            ),
            (
                "maxOfflineEventsPerSender",
                self.max_offline_events_per_sender as u64,
                1,
                100_000_000,
            ),
            (
                "maxRoomsPerAccount",
                self.max_rooms_per_account as u64,
                1,
                1_000_000,
            ),
            (
                "maxPendingInvitesPerAccount",
                self.max_pending_invites_per_account as u64,
                1,
                1_000_000,
            ),
            (
                "maxRoomsCreatedPerAccount",
                self.max_rooms_created_per_account as u64,
                1,
                1_000_000,
            ),
            (
                "maxDevicesPerAccount",
                self.max_devices_per_account as u64,
                1,
                100_000,
            ),
            (
                "maxConnectionsPerIp",
                self.max_connections_per_ip as u64,
                1,
                100_000_000,
            ),
            (
                "maxRequestsPerSecond",
                u64::from(self.max_requests_per_second),
                1,
                10_000_000,
            ),
        ];
        in_ranges(&ranges)?;
        self.validate_operator_side()?;
        if let StoreConfig::Redis { url, prefix } = &self.store {
            if !url.starts_with("redis://") && !url.starts_with("unix://") {
                return Err(bad(format!(
                    "server config: store.url must start with redis:// or unix://, not {url:?}"
                )));
            }
            // Braces would change which Redis Cluster slot each key is in
            // (the store's keys carry hash tags after the prefix).
            if prefix.is_empty()
                || prefix.len() > 64
                || prefix
                    .chars()
                    .any(|c| c.is_whitespace() || c == '{' || c == '}')
            {
                return Err(bad(
                    "server config: store.prefix must be 1 to 64 characters without spaces or braces"
                        .into(),
                ));
            }
        }
        Ok(self)
    }

    /// Secrets that let someone in: an HMAC secret short enough to guess
    /// (or empty, which anyone can sign with) and a static account whose
    /// token is empty (which logs in with no token) are refused.
    fn validate_auth(&self) -> Result<(), Failure> {
        match &self.auth {
            AuthConfig::None {} => Ok(()),
            AuthConfig::Hmac { secret } if secret.len() < MIN_SECRET_BYTES => Err(bad(format!(
                "server config: auth.secret (--hmac-secret) must be at least {MIN_SECRET_BYTES} \
                 bytes, not {}: anyone could sign tokens with a shorter one",
                secret.len()
            ))),
            AuthConfig::Hmac { .. } => Ok(()),
            AuthConfig::Static { accounts } => {
                let mut empty: Vec<&str> = accounts
                    .iter()
                    .filter(|(_, t)| t.is_empty())
                    .map(|(a, _)| a.as_str())
                    .collect();
                empty.sort_unstable();
                match empty.first() {
                    None => Ok(()),
                    Some(a) => Err(bad(format!(
                        "server config: auth.accounts (--static-account): the token of \
                         account {a:?} is empty; it would log in with no token"
                    ))),
                }
            }
        }
    }

    /// The admin API, webhooks, push gateway and logging keys.
    fn validate_operator_side(&self) -> Result<(), Failure> {
        match (&self.admin_listen, &self.admin_token) {
            (Some(_), None) => return Err(bad(
                "server config: adminListen needs adminToken (the bearer token of the admin API)"
                    .into(),
            )),
            (_, Some(t)) if t.len() < MIN_SECRET_BYTES => {
                return Err(bad(format!(
                    "server config: adminToken must be at least {MIN_SECRET_BYTES} characters"
                )))
            }
            _ => {}
        }
        if let Some(w) = &self.webhooks {
            if w.urls.is_empty() {
                return Err(bad(
                    "server config: webhooks.urls must name at least one receiver".into(),
                ));
            }
            for u in &w.urls {
                crate::ops::http::check_url(u)
                    .map_err(|e| bad(format!("server config: webhooks.urls: {e}")))?;
            }
            if w.secret.is_empty() {
                return Err(bad(
                    "server config: webhooks.secret must not be empty (it signs every POST)".into(),
                ));
            }
            for e in &w.events {
                if !crate::ops::webhooks::EVENTS.contains(&e.as_str()) {
                    return Err(bad(format!(
                        "server config: webhooks.events: no event named {e:?} (known: {})",
                        crate::ops::webhooks::EVENTS.join(", ")
                    )));
                }
            }
            let ranges = [
                ("webhooks.queueSize", w.queue_size as u64, 1, 10_000_000),
                ("webhooks.timeoutMs", w.timeout_ms, 1, 600_000),
                ("webhooks.maxAttempts", u64::from(w.max_attempts), 1, 1_000),
                ("webhooks.retryBaseMs", w.retry_base_ms, 1, 86_400_000),
                ("webhooks.retryMaxMs", w.retry_max_ms, 1, 86_400_000),
            ];
            in_ranges(&ranges)?;
        }
        if let Some(p) = &self.push {
            crate::ops::http::check_url(&p.url)
                .map_err(|e| bad(format!("server config: push.url: {e}")))?;
            in_ranges(&[("push.timeoutMs", p.timeout_ms, 1, 600_000)])?;
        }
        tracing_subscriber::EnvFilter::try_new(&self.logging.level).map_err(|e| {
            bad(format!(
                "server config: logging.level {:?} is not a level filter: {e}",
                self.logging.level
            ))
        })?;
        Ok(())
    }

    pub fn limits(&self) -> Limits {
        Limits {
            room_ttl_ms: self.room_ttl_ms,
            invite_ttl_ms: self.invite_ttl_ms,
            max_members: self.max_members,
        }
    }

    pub fn quotas(&self) -> Quotas {
        Quotas {
            rooms_per_account: self.max_rooms_per_account,
            pending_invites_per_account: self.max_pending_invites_per_account,
            rooms_created_per_account: self.max_rooms_created_per_account,
            offline_events_per_sender: self.max_offline_events_per_sender,
        }
    }

    pub fn log_limits(&self) -> LogLimits {
        LogLimits {
            max_events: self.log_max_events,
            retention_ms: self.log_retention_ms,
            offline_retention_ms: self.offline_retention_ms,
            max_offline: self.max_offline_events,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The values fuzzing found accepted and then fatal, and each bound at
    /// and past its edge: refused up front with the key named.
    #[test]
    fn every_number_is_bounded() {
        #[rustfmt::skip]
        let refused = [
            r#"{"heartbeatIntervalMs": 0}"#,
            r#"{"maxConnections": 2305843009213693952}"#,
            r#"{"maxFrameBytes": 4611686018427387904}"#,
            r#"{"roomTtlMs": 9223372036854775807}"#,
            r#"{"inviteTtlMs": 9223372036854775807}"#,
            r#"{"memberDropGraceMs": 9223372036854775807}"#,
            r#"{"roomTtlMs": -1}"#,
            r#"{"heartbeatTimeoutMs": 999}"#,
            r#"{"maxFrameBytes": 16777217}"#,
            r#"{"maxRequestsPerSecond": 0}"#,
            r#"{"maxPendingLogins": 0}"#,
            r#"{"maxPendingLogins": 100000001}"#,
            r#"{"maxOfflineEventsPerSender": 0}"#,
        ];
        // Stray keys inside nested settings are refused like top-level ones.
        for (text, key) in [
            (
                r#"{"store": {"kind": "memory", "maxConnections": 10}}"#,
                "maxConnections",
            ),
            (r#"{"auth": {"mode": "none", "secret": "x"}}"#, "secret"),
        ] {
            let err = ServerConfig::from_json(text).expect_err(text);
            assert!(err.message.contains(key), "{text}: {}", err.message);
        }
        let err = ServerConfig::from_json("[]").expect_err("an array");
        assert!(err.message.contains("JSON object"), "{}", err.message);
        for text in refused {
            let key = text.split('"').nth(1).unwrap();
            let err = ServerConfig::from_json(text).expect_err(text);
            assert_eq!(err.code, INVALID_PARAM, "{text}");
            assert!(err.message.contains(key), "{text}: {}", err.message);
        }
        #[rustfmt::skip]
        let accepted = [
            r#"{"heartbeatIntervalMs": 1}"#,
            r#"{"roomTtlMs": 2592000000}"#,
            r#"{"maxFrameBytes": 16777216}"#,
            r#"{"maxConnections": 100000000}"#,
            r#"{"maxPendingLogins": 1}"#,
        ];
        for text in accepted {
            ServerConfig::from_json(text).expect(text);
        }
    }

    /// A Redis key prefix with a brace would move every key's Redis
    /// Cluster slot (the keys carry hash tags after it): refused by name.
    #[test]
    fn a_store_prefix_with_braces_is_refused() {
        for prefix in ["a{b", "x}", "{t}"] {
            let text = format!(
                r#"{{"store": {{"kind": "redis", "url": "redis://127.0.0.1:6379", "prefix": "{prefix}"}}}}"#
            );
            let err = ServerConfig::from_json(&text).expect_err(&text);
            assert_eq!(err.code, INVALID_PARAM);
            assert!(err.message.contains("store.prefix"), "{}", err.message);
        }
        let ok = r#"{"store": {"kind": "redis", "url": "redis://127.0.0.1:6379", "prefix": "nim-eu.1"}}"#;
        ServerConfig::from_json(ok).expect(ok);
    }

    /// An HMAC secret shorter than MIN_SECRET_BYTES (the empty one signs
    /// tokens anyone can make) and a static account with an empty token
    /// (it logs in with no token) are refused, naming the setting.
    #[test]
    fn weak_auth_secrets_are_refused() {
        for (text, key) in [
            (r#"{"auth": {"mode": "hmac", "secret": ""}}"#, "auth.secret"),
            (
                r#"{"auth": {"mode": "hmac", "secret": "0123456789abcde"}}"#,
                "auth.secret",
            ),
            (
                r#"{"auth": {"mode": "static", "accounts": {"alice": "t-alice", "bob": ""}}}"#,
                "\"bob\"",
            ),
            (
                r#"{"adminListen": "127.0.0.1:0", "adminToken": "0123456789abcde"}"#,
                "adminToken",
            ),
        ] {
            let err = ServerConfig::from_json(text).expect_err(text);
            assert_eq!(err.code, INVALID_PARAM, "{text}");
            assert!(err.message.contains(key), "{text}: {}", err.message);
            assert!(
                !text.contains("accounts") || err.message.contains("auth.accounts"),
                "{}",
                err.message
            );
        }
        let err = ServerConfig::from_json(r#"{"auth": {"mode": "hmac", "secret": ""}}"#)
            .expect_err("empty");
        assert!(err.message.contains("at least 16 bytes"), "{}", err.message);
        for text in [
            r#"{"auth": {"mode": "hmac", "secret": "0123456789abcdef"}}"#,
            r#"{"auth": {"mode": "static", "accounts": {"alice": "t"}}}"#,
            r#"{"adminListen": "127.0.0.1:0", "adminToken": "0123456789abcdef"}"#,
        ] {
            ServerConfig::from_json(text).expect(text);
        }
    }

    fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
        vars.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Layers: the file's value is overridden by the environment's; types
    /// follow the setting (a token of digits stays a string); `__` nests.
    #[test]
    fn environment_overrides_the_file() {
        let dir = std::env::temp_dir().join(format!("nim-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("server.toml");
        std::fs::write(
            &file,
            "roomTtlMs = 1000\nmaxMembers = 4\n[auth]\nmode = \"hmac\"\nsecret = \"file-secret-0123456789\"\n",
        )
        .unwrap();
        let c = ServerConfig::load(
            Default::default(),
            Some(&file),
            env(&[
                ("NIM_SIGNALING_ROOM_TTL_MS", "5000"),
                ("NIM_SIGNALING_AUTH__SECRET", "1234567890123456"),
                ("NIM_SIGNALING_ADMIN_LISTEN", "127.0.0.1:0"),
                ("NIM_SIGNALING_ADMIN_TOKEN", "0123456789012345"),
                (
                    "NIM_SIGNALING_WEBHOOKS__URLS",
                    r#"["http://127.0.0.1:9/h"]"#,
                ),
                ("NIM_SIGNALING_WEBHOOKS__SECRET", "w"),
                ("NIM_SIGNALING_WEBHOOKS__MAX_ATTEMPTS", "3"),
                ("NIM_SIGNALING_LOG", "debug"),
                ("NIM_SIGNALING_LIB", "/not/a/setting.so"),
                ("NIM_SIGNALING_PREBUILD", "/bundled/in/a/package.so"),
                ("OTHER_VAR", "ignored"),
            ]),
        )
        .expect("valid");
        assert_eq!(c.room_ttl_ms, 5000, "environment over file");
        assert_eq!(c.max_members, 4, "file over default");
        assert_eq!(
            c.auth,
            AuthConfig::Hmac {
                secret: "1234567890123456".into()
            }
        );
        assert_eq!(c.admin_token.as_deref(), Some("0123456789012345"));
        let w = c.webhooks.as_ref().expect("webhooks");
        assert_eq!((w.urls.len(), w.max_attempts, w.queue_size), (1, 3, 10_000));
        assert_eq!(c.logging.level, "debug");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_environment_is_refused_naming_the_variable() {
        let load = |vars: &[(&str, &str)]| {
            ServerConfig::load(Default::default(), None, env(vars))
                .expect_err("refused")
                .message
        };
        let m = load(&[("NIM_SIGNALING_ROOM_TTL", "5")]);
        assert!(
            m.contains("NIM_SIGNALING_ROOM_TTL") && m.contains("roomTtl"),
            "{m}"
        );
        let m = load(&[("NIM_SIGNALING_MAX_MEMBERS", "many")]);
        assert!(
            m.contains("NIM_SIGNALING_MAX_MEMBERS") && m.contains("not a number"),
            "{m}"
        );
        let m = load(&[("NIM_SIGNALING_WEBHOOKS__URLS", "[oops")]);
        assert!(m.contains("not valid JSON"), "{m}");
        let m = load(&[("NIM_SIGNALING_PUSH__URLL", "http://x/")]);
        assert!(
            m.contains("NIM_SIGNALING_PUSH__URLL") && m.contains("urll"),
            "{m}"
        );
        let m = load(&[("NIM_SIGNALING_ADMIN_LISTEN", "127.0.0.1:0")]);
        assert!(m.contains("adminToken"), "{m}");
        let m = load(&[("NIM_SIGNALING_LOGGING__LEVEL", "info,=bogus=")]);
        assert!(m.contains("logging.level"), "{m}");
    }

    #[test]
    fn every_secret_is_masked() {
        let c = ServerConfig::from_json(
            r#"{"auth": {"mode": "static", "accounts": {"alice": "ta-secret"}},
                "adminListen": "127.0.0.1:0", "adminToken": "admin-secret-0123",
                "webhooks": {"urls": ["http://127.0.0.1:9/"], "secret": "hook-secret"},
                "push": {"url": "http://127.0.0.1:9/", "secret": "push-secret"},
                "store": {"kind": "redis", "url": "redis://user:redis-secret@127.0.0.1:6379/0"}}"#,
        )
        .unwrap();
        let shown = c.masked().to_string();
        for secret in [
            "ta-secret",
            "admin-secret",
            "hook-secret",
            "push-secret",
            "redis-secret",
        ] {
            assert!(!shown.contains(secret), "{secret} shown: {shown}");
        }
        assert!(
            shown.contains("redis://user:***@127.0.0.1:6379/0"),
            "{shown}"
        );
        assert!(shown.contains("\"alice\":\"***\""), "{shown}");
        let hmac = ServerConfig::from_json(
            r#"{"auth": {"mode": "hmac", "secret": "h-secret-0123456789"}}"#,
        )
        .unwrap()
        .masked()
        .to_string();
        assert!(!hmac.contains("h-secret"), "{hmac}");
    }

    /// The sample config holds every setting, and docs/CONFIG.md names each.
    #[test]
    fn the_sample_config_and_the_docs_cover_every_key() {
        let sample = include_str!("../../../deploy/server.toml");
        let doc = include_str!("../../../docs/CONFIG.md");
        let parsed: toml::Table = toml::from_str(sample).expect("sample parses");
        let Value::Object(all) = every_key() else {
            unreachable!()
        };
        for (key, v) in &all {
            assert!(
                doc.contains(&format!("`{key}`")),
                "docs/CONFIG.md lacks {key}"
            );
            match v {
                Value::Object(inner) if !matches!(key.as_str(), "auth" | "store") => {
                    // A table may be there, or shown commented out.
                    let table = parsed.get(key).and_then(|t| t.as_table());
                    assert!(
                        table.is_some() || sample.contains(&format!("# [{key}]")),
                        "sample lacks [{key}]"
                    );
                    for k in inner.keys() {
                        let commented = sample.contains(&format!("# {k} = "));
                        assert!(
                            table.is_some_and(|t| t.contains_key(k)) || commented,
                            "sample lacks {key}.{k}"
                        );
                        assert!(
                            doc.contains(&format!("`{k}`")),
                            "docs/CONFIG.md lacks {key}.{k}"
                        );
                    }
                }
                _ => {
                    let commented = sample.contains(&format!("# {key} = "));
                    assert!(parsed.contains_key(key) || commented, "sample lacks {key}");
                }
            }
        }
        // And it is a config the server takes.
        let dir = std::env::temp_dir().join(format!("nim-sample-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("server.toml");
        std::fs::write(&file, sample).unwrap();
        ServerConfig::from_file(&file).expect("the sample is valid");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
