//! The standalone signaling server.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

use nim_signaling::server::auth::{hmac_token, AuthConfig};
use nim_signaling::server::{self, ServerConfig};

/// nim-signaling-server: a self-hosted call signaling server speaking the
/// NIM independent call signaling API over WebSocket.
///
/// Settings come from --config FILE (JSON, or TOML when the name ends in
/// .toml; keys as in docs/CONFIG.md), then the flags below override them.
/// With no settings at all it listens on 127.0.0.1:7800 without
/// authentication, for development.
///
/// Examples:
///   nim-signaling-server --listen 0.0.0.0:7800 --hmac-secret "$SECRET"
///   nim-signaling-server --config /etc/nim-signaling/server.toml
///   nim-signaling-server token --secret "$SECRET" --account alice --ttl 3600
#[derive(Parser, Debug)]
#[command(version, verbatim_doc_comment)]
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
    /// Print the effective settings as JSON and exit.
    #[arg(long)]
    print_config: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
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
    let mut cfg = match &cli.config {
        Some(path) => ServerConfig::from_file(path).map_err(|f| f.message)?,
        None => ServerConfig {
            listen: "127.0.0.1:7800".into(),
            ..ServerConfig::default()
        },
    };
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
    cfg.validate().map_err(|f| f.message)
}

fn main() {
    let cli = Cli::parse();
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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("NIM_SIGNALING_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cfg = match settings(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("nim-signaling-server: {e}");
            std::process::exit(2);
        }
    };
    if cli.print_config {
        let mut shown = serde_json::to_value(&cfg).unwrap_or_default();
        if let Some(auth) = shown.get_mut("auth") {
            mask_secrets(auth);
        }
        println!(
            "{}",
            serde_json::to_string_pretty(&shown).unwrap_or_default()
        );
        return;
    }
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
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
        handle.shutdown().await;
    });
}

/// Replaces secrets and tokens with "***" for display.
fn mask_secrets(v: &mut serde_json::Value) {
    if let Some(s) = v.get_mut("secret") {
        *s = "***".into();
    }
    if let Some(serde_json::Value::Object(accounts)) = v.get_mut("accounts") {
        for t in accounts.values_mut() {
            *t = "***".into();
        }
    }
}
