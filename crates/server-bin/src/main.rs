//! The standalone signaling server.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

use nim_signaling_server::config::{LogFormat, LoggingConfig, DEFAULT_REDIS_PREFIX};
use nim_signaling_server::net::auth::{hmac_token, AuthConfig};
use nim_signaling_server::{self as server, ServerConfig, StoreConfig, TlsConfig};

/// nim-signaling-server: a self-hosted call signaling server speaking the
/// NIM independent call signaling API over WebSocket.
///
/// Settings come from --config FILE (JSON, or TOML when the name ends in
/// .toml; keys as in docs/CONFIG.md), then environment variables
/// NIM_SIGNALING_<KEY> (NIM_SIGNALING_ROOM_TTL_MS=60000,
/// NIM_SIGNALING_AUTH__SECRET=...: `__` steps into a table), then the flags
/// below.
/// With no settings at all it listens on 127.0.0.1:7800 without
/// authentication, for development; without authentication it refuses any
/// address other than loopback unless --insecure is given.
///
/// Examples:
///   nim-signaling-server --listen 0.0.0.0:7800 --hmac-secret "$SECRET"
///   nim-signaling-server --config /etc/nim-signaling/server.toml
///   nim-signaling-server --listen 0.0.0.0:7843 --hmac-secret "$SECRET" \
///       --tls-cert /etc/nim-signaling/cert.pem --tls-key /etc/nim-signaling/key.pem
///   nim-signaling-server token --secret "$SECRET" --account alice --ttl 3600
#[derive(Parser, Debug)]
#[command(name = "nim-signaling-server", version, verbatim_doc_comment)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Config file (JSON, or TOML when it ends in .toml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on, e.g. 0.0.0.0:7800 (default 127.0.0.1:7800).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Accept tokens signed with this HMAC secret (see the token command).
    #[arg(long, value_name = "SECRET", conflicts_with = "static_account")]
    hmac_secret: Option<String>,
    /// Accept ACCOUNT with TOKEN; may be repeated (static authentication).
    #[arg(long = "static-account", value_name = "ACCOUNT=TOKEN")]
    static_account: Vec<String>,
    /// Lifetime of an unjoined room, and of a closed room's memory (ms).
    #[arg(long, value_name = "MS")]
    room_ttl_ms: Option<i64>,
    /// How long an invitation can be answered (ms).
    #[arg(long, value_name = "MS")]
    invite_ttl_ms: Option<i64>,
    /// Grace before a vanished device's memberships are dropped (ms).
    #[arg(long, value_name = "MS")]
    member_drop_grace_ms: Option<i64>,
    /// Members per room.
    #[arg(long, value_name = "N")]
    max_members: Option<usize>,
    /// Serve TLS (wss://) with this PEM certificate chain; needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve Prometheus /metrics and /healthz on this address, e.g.
    /// 127.0.0.1:9100 (keep it off the public network).
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<String>,
    /// Serve the admin HTTP API (docs/ADMIN.md) on this address, e.g.
    /// 127.0.0.1:9200; needs adminToken from the config (never a flag:
    /// command lines are visible to every user through ps).
    #[arg(long, value_name = "ADDR")]
    admin_listen: Option<String>,
    /// Cluster mode: keep state in the Redis (or Valkey) at this URL, e.g.
    /// redis://127.0.0.1:6379; every node started with the same URL (and
    /// --redis-prefix) serves one system.
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
    /// Key prefix in Redis (default "nim"): separates systems sharing one Redis.
    #[arg(long, value_name = "PREFIX", requires = "redis")]
    redis_prefix: Option<String>,
    /// Print the effective settings as JSON (secrets masked) and exit.
    #[arg(long)]
    print_config: bool,
    /// Log format: text (default) or json (one object per line).
    #[arg(long, value_name = "FORMAT", value_parser = ["text", "json"])]
    log_format: Option<String>,
    /// Log levels by module, e.g. info or
    /// info,nim_signaling_server::net::session=debug.
    #[arg(long, value_name = "FILTER")]
    log_level: Option<String>,
    /// Allow authentication mode "none" on an address other than loopback
    /// (anyone could then log in as anyone; for closed test networks only).
    #[arg(long)]
    insecure: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// A stand-in for your backend while you try things out: prints every
    /// webhook and push POST it gets as one JSON line on stdout, with
    /// whether its X-Nim-Signature is valid for one of the secrets, and
    /// answers them all with --status.
    DevReceiver {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9000", value_name = "ADDR")]
        listen: String,
        /// A secret signatures are checked with (webhooks.secret,
        /// push.secret); may be repeated.
        #[arg(long = "secret", value_name = "SECRET")]
        secrets: Vec<String>,
        /// The HTTP status every POST is answered with (e.g. 503 to watch
        /// webhooks retried and pushes refused).
        #[arg(long, default_value_t = 200)]
        status: u16,
    },
    /// Print an HMAC token for ACCOUNT on stdout.
    Token {
        #[arg(long)]
        secret: String,
        #[arg(long)]
        account: String,
        /// Validity in seconds from now.
        #[arg(long, default_value_t = 86_400)]
        ttl: u64,
    },
}

fn settings(cli: &Cli) -> Result<ServerConfig, String> {
    // The binary's own default address (a library server picks a free port).
    let mut base = serde_json::Map::new();
    base.insert("listen".into(), "127.0.0.1:7800".into());
    let mut cfg =
        ServerConfig::load(base, cli.config.as_deref(), std::env::vars()).map_err(|f| f.message)?;
    if let Some(l) = &cli.listen {
        cfg.listen = l.clone();
    }
    if let Some(s) = &cli.hmac_secret {
        cfg.auth = AuthConfig::Hmac { secret: s.clone() };
    }
    if !cli.static_account.is_empty() {
        let mut accounts = std::collections::HashMap::new();
        for pair in &cli.static_account {
            let (a, t) = pair
                .split_once('=')
                .ok_or_else(|| format!("--static-account wants ACCOUNT=TOKEN, got \"{pair}\""))?;
            accounts.insert(a.to_string(), t.to_string());
        }
        cfg.auth = AuthConfig::Static { accounts };
    }
    if let Some(v) = cli.room_ttl_ms {
        cfg.room_ttl_ms = v;
    }
    if let Some(v) = cli.invite_ttl_ms {
        cfg.invite_ttl_ms = v;
    }
    if let Some(v) = cli.member_drop_grace_ms {
        cfg.member_drop_grace_ms = v;
    }
    if let Some(v) = cli.max_members {
        cfg.max_members = v;
    }
    if let Some(url) = &cli.redis {
        cfg.store = StoreConfig::Redis {
            url: url.clone(),
            prefix: cli
                .redis_prefix
                .clone()
                .unwrap_or_else(|| DEFAULT_REDIS_PREFIX.into()),
        };
    }
    if let Some(v) = &cli.metrics_listen {
        cfg.metrics_listen = Some(v.clone());
    }
    if let Some(v) = &cli.admin_listen {
        cfg.admin_listen = Some(v.clone());
    }
    if let Some(f) = &cli.log_format {
        cfg.logging.format = if f == "json" {
            LogFormat::Json
        } else {
            LogFormat::Text
        };
    }
    if let Some(l) = &cli.log_level {
        cfg.logging.level = l.clone();
    }
    if let (Some(cert_file), Some(key_file)) = (&cli.tls_cert, &cli.tls_key) {
        cfg.tls = Some(TlsConfig {
            cert_file: cert_file.clone(),
            key_file: key_file.clone(),
        });
    }
    if matches!(cfg.auth, AuthConfig::None {}) && !cli.insecure && !loopback_only(&cfg.listen) {
        return Err(format!(
            "authentication is off (auth mode \"none\") and {} is reachable from other \
             machines: anyone could log in as anyone. Set --hmac-secret, --static-account \
             or auth in the config file; or pass --insecure to run without authentication \
             anyway",
            cfg.listen
        ));
    }
    cfg.validate().map_err(|f| f.message)
}

/// Whether `listen` only ever accepts connections from this machine: every
/// address it resolves to is a loopback address. An unresolvable address
/// counts as not loopback (the listener will fail on it anyway).
fn loopback_only(listen: &str) -> bool {
    use std::net::ToSocketAddrs;
    match listen.to_socket_addrs() {
        Ok(addrs) => {
            let addrs: Vec<_> = addrs.collect();
            !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback())
        }
        Err(_) => false,
    }
}

/// Serves `dev-receiver` until Ctrl-C.
fn dev_receiver(listen: &str, secrets: Vec<String>, status: u16) {
    use nim_signaling_server::ops::http::{self, HttpResponse, SIGNATURE_HEADER};
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    rt.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("nim-signaling-server dev-receiver: cannot listen on {listen}: {e}");
                std::process::exit(1);
            }
        };
        let at = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        eprintln!("dev-receiver listening on http://{at} (answering {status})");
        let secrets = std::sync::Arc::new(secrets);
        let serving = http::serve(listener, move |req| {
            let secrets = secrets.clone();
            async move {
                let header = req
                    .headers
                    .get(SIGNATURE_HEADER)
                    .and_then(|v| v.to_str().ok());
                let signature = match header {
                    None => "missing",
                    Some(h)
                        if secrets
                            .iter()
                            .any(|s| http::signature_valid(s, h, &req.body)) =>
                    {
                        "valid"
                    }
                    Some(_) => "invalid",
                };
                let body = serde_json::from_slice::<serde_json::Value>(&req.body)
                    .unwrap_or_else(|_| String::from_utf8_lossy(&req.body).into_owned().into());
                let event = req.headers.get("x-nim-event").and_then(|v| v.to_str().ok());
                let line = serde_json::json!({
                    "method": req.method.as_str(), "path": req.path,
                    "event": event, "signature": signature, "body": body,
                });
                println!("{line}");
                HttpResponse::text(status, "")
            }
        });
        tokio::select! {
            _ = serving => {}
            _ = stop_requested() => {}
        }
    });
}

fn main() {
    let cli = Cli::parse();
    if let Some(Command::DevReceiver {
        listen,
        secrets,
        status,
    }) = &cli.command
    {
        dev_receiver(listen, secrets.clone(), *status);
        return;
    }
    if let Some(Command::Token {
        secret,
        account,
        ttl,
    }) = &cli.command
    {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        println!("{}", hmac_token(secret, account, now + ttl));
        return;
    }
    let cfg = match settings(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("nim-signaling-server: {e}");
            std::process::exit(2);
        }
    };
    if cli.print_config {
        let shown = serde_json::to_string_pretty(&cfg.masked()).unwrap_or_default();
        println!("{shown}");
        return;
    }
    init_logs(&cfg.logging);
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    rt.block_on(async move {
        let handle = match server::start(cfg).await {
            Ok(h) => h,
            Err(f) => {
                eprintln!("nim-signaling-server: {}", f.message);
                std::process::exit(1);
            }
        };
        // The URL line is what scripts and tests wait for.
        println!("nim-signaling-server listening on {}", handle.url());
        if let Some(m) = handle.metrics_url() {
            tracing::info!("metrics on {m}/metrics, health on {m}/healthz");
        }
        if let Some(a) = handle.admin_url() {
            tracing::info!("admin API on {a}/v1 (docs/ADMIN.md)");
        }
        #[cfg(unix)]
        let drains = drain_on_sigusr1(&handle);
        stop_requested().await;
        #[cfg(unix)]
        drains.abort();
        tracing::info!("shutting down");
        handle.shutdown().await;
    });
}

/// SIGUSR1 marks the node draining (new connections refused, /healthz
/// 503), SIGUSR2 serving again: take a node out of a cluster without
/// cutting the calls on it.
#[cfg(unix)]
fn drain_on_sigusr1(handle: &server::ServerHandle) -> tokio::task::JoinHandle<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let service = handle.service().clone();
    tokio::spawn(async move {
        let (Ok(mut on), Ok(mut off)) = (
            signal(SignalKind::user_defined1()),
            signal(SignalKind::user_defined2()),
        ) else {
            return;
        };
        loop {
            let draining = tokio::select! {
                _ = on.recv() => true,
                _ = off.recv() => false,
            };
            tracing::info!(draining, "drain state changed");
            service
                .draining
                .store(draining, std::sync::atomic::Ordering::Relaxed);
        }
    })
}

/// Ctrl-C, or SIGTERM (what systemd and container runtimes send): both end
/// in a graceful shutdown (see docs/DELIVERY.md).
async fn stop_requested() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Whether text logs get ANSI colours: only on a terminal, and never with
/// `NO_COLOR` set to anything but the empty string (no-color.org), so that
/// journald, a file or a pipe gets plain text.
fn colour_logs(stderr_is_terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    stderr_is_terminal && !matches!(no_color, Some(v) if !v.is_empty())
}

/// Logs to stderr as text or JSON lines, filtered by module (validated
/// with the config, so the filter parses).
fn init_logs(cfg: &LoggingConfig) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_new(&cfg.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let colour = colour_logs(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR"),
    );
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    match cfg.format {
        // Span fields (the request id `rid`, account, op) go into each
        // record, so a shipper can follow one request across lines.
        LogFormat::Json => logs
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
        LogFormat::Text => logs.init(),
    }
}

#[cfg(test)]
mod tests {
    use super::colour_logs;

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        assert!(colour_logs(true, None));
        assert!(colour_logs(true, Some("".into())), "NO_COLOR= is unset");
        assert!(!colour_logs(true, Some("1".into())));
        assert!(!colour_logs(false, None));
        assert!(!colour_logs(false, Some("1".into())));
    }
}
