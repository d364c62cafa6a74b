//! The standalone `nim-signaling-server`: it starts from flags or a config
//! file, prints its URL, authenticates, mints HMAC tokens, and refuses bad
//! settings with a message.

mod common;

use common::client_for;
use common::{raw_connect, raw_request, spawn_server_with};
use common::{server_bin, spawn_server as spawn};
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
        "listen = \"127.0.0.1:0\"\nmaxMembers = 4\n[auth]\nmode = \"hmac\"\nsecret = \"s3-toml-secret-0123\"\n",
    )
    .unwrap();
    let p = spawn(&["--config", cfg.to_str().unwrap()]);
    let out = Command::new(server_bin())
        .args([
            "token",
            "--secret",
            "s3-toml-secret-0123",
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
    let forged = Command::new(server_bin())
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
    let out = Command::new(server_bin())
        .args(["--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("roomTtl"), "names the unknown key: {err}");
    let out = Command::new(server_bin())
        .args(["--print-config", "--hmac-secret", "hush-hush-0123456789"])
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
    use nim_signaling_client::ConnState;
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
    let out = Command::new(server_bin())
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
    let p = spawn(&[
        "--listen",
        "0.0.0.0:0",
        "--hmac-secret",
        "s-long-enough-0123",
    ]);
    assert!(p.1.starts_with("ws://0.0.0.0:"), "{}", p.1);
}

fn repo(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn hmac_token_for(secret: &str, account: &str) -> String {
    let out = Command::new(server_bin())
        .args(["token", "--secret", secret, "--account", account])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// What deploy/ ships works as shipped: the systemd unit's command line,
/// with the sample config and the secrets of the sample environment file,
/// starts a server, and the environment's login secret wins over the
/// file's.
#[tokio::test]
async fn the_systemd_unit_runs_the_sample_config_with_the_env_file() {
    let unit = std::fs::read_to_string(repo("deploy/nim-signaling-server.service")).unwrap();
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    let words: Vec<&str> = exec.split_whitespace().collect();
    assert!(words[0].ends_with("/nim-signaling-server"), "{exec}");
    let sample = repo("deploy/server.toml");
    let args: Vec<&str> = words[1..]
        .iter()
        .map(|w| {
            if *w == "/etc/nim-signaling/server.toml" {
                sample.to_str().unwrap()
            } else {
                w
            }
        })
        .collect();
    let env_file = std::fs::read_to_string(repo("deploy/nim-signaling.env")).unwrap();
    let mut env: Vec<(String, String)> = env_file
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && l.contains('='))
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect();
    let login_secret = env
        .iter()
        .find(|(k, _)| k == "NIM_SIGNALING_AUTH__SECRET")
        .map(|(_, v)| v.clone())
        .expect("the env file sets the login secret");
    // Free ports instead of the sample's fixed ones, through the same
    // environment layer.
    for key in ["LISTEN", "ADMIN_LISTEN", "METRICS_LISTEN"] {
        env.push((format!("NIM_SIGNALING_{key}"), "127.0.0.1:0".into()));
    }
    let p = spawn_server_with(&args, &env, std::process::Stdio::null());
    let from_env = hmac_token_for(&login_secret, "alice");
    assert_eq!(login_code(&p.1, "alice", &from_env).await, 200);
    let from_file = hmac_token_for("change-me-login-secret", "alice");
    assert_eq!(
        login_code(&p.1, "alice", &from_file).await,
        302,
        "the environment overrides the file"
    );
    // --print-config shows the layered result, masked.
    let mut print = Command::new(server_bin());
    print
        .args(&args)
        .arg("--print-config")
        .envs(env.iter().map(|(k, v)| (k, v)));
    let out = print.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["listen"], "127.0.0.1:0");
    assert_eq!(shown["auth"]["secret"], "***");
    assert_eq!(shown["adminToken"], "***");
    assert_eq!(shown["webhooks"]["secret"], "***");
    assert_eq!(shown["push"]["secret"], "***");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("change-me"), "no secret shown: {text}");
}

#[test]
fn a_misspelt_environment_variable_stops_the_start() {
    let out = Command::new(server_bin())
        .args(["--listen", "127.0.0.1:0"])
        .env("NIM_SIGNALING_MAX_MEMBER", "5")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("NIM_SIGNALING_MAX_MEMBER"), "{err}");
}

/// JSON logs, one object per line; a request's lines carry its request id
/// (`rid`: the client's instance and frame id) from the request's span.
#[tokio::test]
async fn json_logs_carry_the_request_id() {
    let dir = std::env::temp_dir().join(format!("nim-sig-logs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("stderr.log");
    let p = spawn_server_with(
        &[
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--log-level",
            "info,nim_signaling_server::net::session=debug",
        ],
        &[],
        std::fs::File::create(&log).unwrap().into(),
    );
    let mut ws = raw_connect(&p.1).await;
    let login = json!({"account": "alice", "deviceId": "d1", "instance": "inst7f"});
    let r = raw_request(&mut ws, 1, "login", login)
        .await
        .expect("login");
    assert_eq!(r["code"], 200);
    let r = raw_request(&mut ws, 42, "create", json!({"type": 1}))
        .await
        .expect("reply");
    assert_eq!(r["code"], 200);
    drop(ws);
    drop(p);
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let done = lines
        .iter()
        .find(|l| l["fields"]["message"] == "request done" && l["span"]["op"] == "create")
        .unwrap_or_else(|| panic!("no request line in {text}"));
    assert_eq!(done["span"]["rid"], "inst7f-42", "{done}");
    assert_eq!(done["span"]["account"], "alice", "{done}");
    assert_eq!(done["fields"]["code"], 200, "{done}");
    assert_eq!(done["level"], "DEBUG", "{done}");
    // The filter is by module: nothing below info from elsewhere.
    assert!(
        lines.iter().all(|l| l["level"] != "DEBUG"
            || l["target"]
                .as_str()
                .is_some_and(|t| t.starts_with("nim_signaling_server::net::session"))),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Text logs going to a file or a pipe (journald, `2>log`, `| tee`) are
/// plain text: no ANSI colour codes. On a terminal they are coloured,
/// unless NO_COLOR is set (`script` gives the binary a terminal; checked
/// when it is installed, said otherwise).
#[tokio::test]
async fn text_logs_have_no_colour_codes_off_a_terminal() {
    use std::io::Read;
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "127.0.0.1:0",
        "--log-level",
        "info,nim_signaling_server::net::session=debug",
    ];
    // SIGTERM and wait: every line is written before the process ends.
    async fn stop(mut p: common::ServerProcess) {
        let pid = p.0.id().to_string();
        let term = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(term.success());
        let status = tokio::task::spawn_blocking(move || p.0.wait().unwrap())
            .await
            .unwrap();
        assert!(status.success(), "{status}");
    }
    // A request's debug line carries span fields, which colours would dim.
    async fn one_request(url: &str) {
        let mut ws = raw_connect(url).await;
        let login = json!({"account": "alice", "deviceId": "d1"});
        let r = raw_request(&mut ws, 1, "login", login).await;
        assert_eq!(r.expect("login")["code"], 200);
        let r = raw_request(&mut ws, 2, "create", json!({"type": 1})).await;
        assert_eq!(r.expect("create")["code"], 200);
    }
    let dir = std::env::temp_dir().join(format!("nim-sig-colour-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("stderr.log");
    let p = spawn_server_with(&args, &[], std::fs::File::create(&log).unwrap().into());
    one_request(&p.1).await;
    stop(p).await;
    let to_file = std::fs::read_to_string(&log).unwrap();

    let mut p = spawn_server_with(&args, &[], std::process::Stdio::piped());
    one_request(&p.1).await;
    let mut stderr = p.0.stderr.take().unwrap();
    let reading = std::thread::spawn(move || {
        let mut text = String::new();
        stderr.read_to_string(&mut text).map(|_| text)
    });
    stop(p).await;
    let to_pipe = reading.join().unwrap().unwrap();
    for (to, text) in [("a file", &to_file), ("a pipe", &to_pipe)] {
        assert!(
            ["metrics on http://", "request done", "shutting down"]
                .iter()
                .all(|l| text.contains(l)),
            "no log lines written to {to}:\n{text}"
        );
        assert!(
            !text.contains("\x1b["),
            "ANSI codes in the logs written to {to}:\n{text:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);

    // On a terminal: coloured, and plain with NO_COLOR.
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("NOT CHECKED: colours on a terminal (no `script`: apt-get install bsdutils)");
        return;
    }
    let on_terminal = |no_color: Option<&str>| {
        let line = format!(
            "timeout -s TERM 1 {} --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0",
            server_bin()
        );
        let mut cmd = Command::new("script");
        cmd.args(["-qec", &line, "/dev/null"])
            .stdin(std::process::Stdio::null())
            .env_remove("NO_COLOR");
        if let Some(v) = no_color {
            cmd.env("NO_COLOR", v);
        }
        let out = cmd.output().expect("run script");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let tty = on_terminal(None);
    assert!(
        tty.contains("metrics on http://") && tty.contains("\x1b["),
        "no colours on a terminal:\n{tty:?}"
    );
    let plain = on_terminal(Some("1"));
    assert!(
        plain.contains("metrics on http://") && !plain.contains("\x1b["),
        "colours on a terminal with NO_COLOR=1:\n{plain:?}"
    );
}

/// A login secret anyone could guess is refused at start, naming the
/// setting: an empty or short HMAC secret (a token signed with the empty
/// key would log in as anyone) and a static account whose token is empty
/// (it would log in with no token), from flags and from the config file.
#[test]
fn weak_login_secrets_are_refused_at_start() {
    let dir = std::env::temp_dir().join(format!("nim-sig-weak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("server.toml");
    std::fs::write(
        &cfg,
        "listen = \"127.0.0.1:0\"\n[auth]\nmode = \"hmac\"\nsecret = \"0123456789abcde\"\n",
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap().to_string();
    let cases: [(&[&str], &str); 4] = [
        (
            &["--listen", "127.0.0.1:0", "--hmac-secret", ""],
            "--hmac-secret",
        ),
        (
            &["--listen", "127.0.0.1:0", "--hmac-secret", "short"],
            "--hmac-secret",
        ),
        (&["--config", &cfg], "auth.secret"),
        (
            &[
                "--listen",
                "127.0.0.1:0",
                "--static-account",
                "alice=ta",
                "--static-account",
                "bob=",
            ],
            "--static-account",
        ),
    ];
    for (args, setting) in cases {
        let out = exit_within(Command::new(server_bin()).args(args), 10);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?} must not start: {err}");
        assert!(err.contains(setting), "{args:?}: names {setting}: {err}");
        if setting == "--static-account" {
            assert!(err.contains("\"bob\"") && err.contains("empty"), "{err}");
        } else {
            assert!(err.contains("at least 16 bytes"), "{args:?}: {err}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `cmd` to its exit; one still running after `secs` (a server that
/// started when it should have refused) is killed and fails the test.
fn exit_within(cmd: &mut Command, secs: u64) -> std::process::Output {
    use std::process::Stdio;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > until {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{cmd:?} started instead of refusing: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}
