//! The standalone `nim-signaling-server`: it starts from flags or a config
//! file, prints its URL, authenticates, mints HMAC tokens, and refuses bad
//! settings with a message.

mod common;

use common::client_for;
use common::{spawn_server as spawn, SERVER_BIN as BIN};
use serde_json::json;
use std::process::Command;

async fn login_code(url: &str, account: &str, token: &str) -> i32 {
    let c = client_for(
        url,
        account,
        "d1",
        json!({"token": token, "reconnect": false}),
    );
    let (code, _) = c.client.login().await;
    c.client.shutdown();
    code
}

#[tokio::test]
async fn static_accounts_from_flags() {
    let p = spawn(&[
        "--listen",
        "127.0.0.1:0",
        "--static-account",
        "alice=ta",
        "--static-account",
        "bob=tb",
    ]);
    assert_eq!(login_code(&p.1, "alice", "ta").await, 200);
    assert_eq!(login_code(&p.1, "alice", "tb").await, 302);
    assert_eq!(login_code(&p.1, "carol", "").await, 302);
}

#[tokio::test]
async fn hmac_tokens_from_the_token_command_and_a_toml_config() {
    let dir = std::env::temp_dir().join(format!("nim-sig-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("server.toml");
    std::fs::write(
        &cfg,
        "listen = \"127.0.0.1:0\"\nmaxMembers = 4\n[auth]\nmode = \"hmac\"\nsecret = \"s3\"\n",
    )
    .unwrap();
    let p = spawn(&["--config", cfg.to_str().unwrap()]);
    let out = Command::new(BIN)
        .args([
            "token",
            "--secret",
            "s3",
            "--account",
            "alice",
            "--ttl",
            "600",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(login_code(&p.1, "alice", &token).await, 200);
    assert_eq!(
        login_code(&p.1, "bob", &token).await,
        302,
        "a token is bound to its account"
    );
    let forged = Command::new(BIN)
        .args(["token", "--secret", "other", "--account", "alice"])
        .output()
        .unwrap();
    let forged = String::from_utf8(forged.stdout).unwrap().trim().to_string();
    assert_eq!(
        login_code(&p.1, "alice", &forged).await,
        302,
        "a token signed with another secret"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_settings_are_refused_with_the_key_named() {
    let dir = std::env::temp_dir().join(format!("nim-sig-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("bad.json");
    std::fs::write(&cfg, r#"{"listen":"127.0.0.1:0","roomTtl":5}"#).unwrap();
    let out = Command::new(BIN)
        .args(["--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("roomTtl"), "names the unknown key: {err}");
    let out = Command::new(BIN)
        .args(["--print-config", "--hmac-secret", "hush"])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("\"roomTtlMs\": 7200000"), "{shown}");
    assert!(!shown.contains("hush"), "secrets are masked: {shown}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// SIGTERM (what systemd sends) is a graceful shutdown: the connected
/// client is asked to reconnect (not dropped as disconnected) and the
/// process exits successfully.
#[cfg(unix)]
#[tokio::test]
async fn sigterm_shuts_down_gracefully() {
    use nim_signaling::client::ConnState;
    let mut p = spawn(&["--listen", "127.0.0.1:0"]);
    let mut c = client_for(&p.1, "alice", "a1", json!({}));
    assert_eq!(c.client.login().await.0, 200);
    c.expect_state(ConnState::Connected).await;
    let pid = p.0.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    assert_eq!(c.expect_state(ConnState::Reconnecting).await, 415);
    let status = tokio::task::spawn_blocking(move || p.0.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
    c.client.shutdown();
}

/// Without authentication the binary serves loopback only, unless told
/// --insecure: a server reachable from other machines where anyone can log
/// in as anyone is never started by accident.
#[test]
fn no_authentication_is_refused_off_loopback() {
    let out = Command::new(BIN)
        .args(["--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("authentication is off") && err.contains("--insecure"),
        "says why and how: {err}"
    );
    // Explicitly insecure, or with authentication, it starts.
    let p = spawn(&["--listen", "0.0.0.0:0", "--insecure"]);
    assert!(p.1.starts_with("ws://0.0.0.0:"), "{}", p.1);
    let p = spawn(&["--listen", "0.0.0.0:0", "--hmac-secret", "s"]);
    assert!(p.1.starts_with("ws://0.0.0.0:"), "{}", p.1);
}
