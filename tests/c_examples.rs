//! Builds the C examples in `examples-c/` against the library cargo just
//! built (`<target>/debug/deps/libnim_signaling.so`) and runs them.
//!
//! Needs `make` and a C compiler (`cc`). The binaries go into
//! `<target>/c-examples/`, not `examples-c/build/`, so that a hand-made
//! build against another LIBDIR is never mistaken for this one.
//!
//! call_demo and group_call also run under AddressSanitizer, UBSan (its
//! findings fatal) and LeakSanitizer (`NIM_SIGNALING_ASAN=0` skips that,
//! for compilers without ASan).

#[path = "common/built.rs"]
mod built;
#[path = "common/call_demo.rs"]
mod call_demo;
#[path = "common/child.rs"]
mod child;

use built::{lib_dir, profile_dir, server_bin};
use call_demo::CALL_DEMO_LINES;

use child::{Run, Running};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// Longest any example may run: each of its steps gives up after 10 s.
const RUN_LIMIT: Duration = Duration::from_secs(120);

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples-c")
}

/// Runs `make -C examples-c all` with these extra variables; panics with
/// make's output on failure.
fn make(build: &Path, extra: &[&str]) {
    let mut make = Command::new("make");
    make.arg("-C")
        .arg(examples_dir())
        .arg("all")
        .arg(format!("LIBDIR={}", lib_dir().display()))
        .arg(format!("BUILD={}", build.display()))
        .args(extra);
    child::run(&mut make, "make (are make and cc installed?)", RUN_LIMIT).succeeded();
}

/// The examples built once for every test of this binary.
fn built() -> &'static Path {
    static BUILD: OnceLock<PathBuf> = OnceLock::new();
    BUILD.get_or_init(|| {
        let build = profile_dir().join("c-examples");
        make(&build, &[]);
        build
    })
}

/// Runs a built example, killing it after RUN_LIMIT.
fn run(exe: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(exe);
    cmd.args(args).envs(env.iter().copied());
    child::run(&mut cmd, "example", RUN_LIMIT)
}

#[test]
fn call_demo() {
    let r = run(&built().join("call_demo"), &[], &[]);
    r.assert_passed(CALL_DEMO_LINES, "call demo: OK");
    // The demo writes only to stdout, and the library writes nothing of its
    // own unless a log callback asks for it (nim_signaling_set_log_cb).
    assert!(r.stderr.is_empty(), "stderr not empty\n{}", r.describe());
}

const GROUP_CALL_LINES: &[&str] = &[
    "[bob-phone] event INVITE",
    "[bob-laptop] event INVITE",
    "[bob-phone] accept -> 200",
    "[bob-laptop] multi-client sync ACCEPT",
    "[carol] event INVITE",
    "[carol] accept -> 200",
    "[alice] event ROOM_JOIN",
    "[alice] members sync",
    "[alice] carol is gone from the room's members",
];

#[test]
fn group_call() {
    let r = run(&built().join("group_call"), &[], &[]);
    r.assert_passed(GROUP_CALL_LINES, "group call: OK");
}

#[test]
fn client_only_usage() {
    let r = run(&built().join("client_only"), &[], &[]);
    assert_eq!(r.status.code(), Some(64), "{}", r.describe());
    assert!(
        r.stderr
            .contains("usage: client_only URL ACCOUNT TOKEN [PEER [SECONDS]]"),
        "{}",
        r.describe()
    );
}

/// The C ABI load generator (examples-c/load.c), briefly, against a server
/// in its own process: every setup it starts completes, none fails.
fn assert_load_ran(r: &Run) {
    assert_eq!(r.status.code(), Some(0), "{}", r.describe());
    let report: serde_json::Value = serde_json::from_str(r.stdout.trim())
        .unwrap_or_else(|e| panic!("load --json printed no JSON ({e})\n{}", r.describe()));
    assert!(report["setups"].as_u64() > Some(0), "{report}");
    assert_eq!(report["failed"], 0, "{report}");
    assert_eq!(report["connection_drops"], 0, "{report}");
    let p50 = report["setup_us"]["p50"].as_u64().unwrap_or(0);
    assert!(p50 > 0, "{report}");
}

/// Its arguments for a short run: 3 pairs back to back, 2 idle clients.
const LOAD_ARGS: &[&str] = &[
    "--pairs",
    "3",
    "--idle",
    "2",
    "--warmup",
    "0.3",
    "--duration",
    "1",
    "--json",
];

#[test]
fn load_generator() {
    assert_load_ran(&run(&built().join("load"), LOAD_ARGS, &[]));
}

#[test]
fn load_generator_open_loop() {
    let mut args = LOAD_ARGS.to_vec();
    args.extend(["--rate", "50"]);
    assert_load_ran(&run(&built().join("load"), &args, &[]));
}

/// The examples built with AddressSanitizer and UndefinedBehaviorSanitizer
/// (UBSan findings fatal: `-fno-sanitize-recover=undefined`), once for the
/// tests below, into their own directory. None when `NIM_SIGNALING_ASAN=0`
/// opts out (for compilers without ASan).
fn sanitized() -> Option<&'static Path> {
    if std::env::var("NIM_SIGNALING_ASAN").as_deref() == Ok("0") {
        eprintln!("skipped: NIM_SIGNALING_ASAN=0");
        return None;
    }
    static BUILD: OnceLock<PathBuf> = OnceLock::new();
    Some(BUILD.get_or_init(|| {
        let build = profile_dir().join("c-examples-san");
        make(&build, &["SANITIZE=address,undefined"]);
        build
    }))
}

/// Runs a sanitized example with leak detection; fails on any report.
fn run_sanitized(exe: &Path, args: &[&str]) -> Run {
    let r = run(
        exe,
        args,
        &[
            ("ASAN_OPTIONS", "detect_leaks=1"),
            ("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1"),
        ],
    );
    for bad in ["ERROR: AddressSanitizer", "LeakSanitizer", "runtime error:"] {
        assert!(!r.stderr.contains(bad), "{bad} reported\n{}", r.describe());
    }
    r
}

/// call_demo under ASan + UBSan with leak detection.
#[test]
fn call_demo_asan() {
    let Some(build) = sanitized() else { return };
    let r = run_sanitized(&build.join("call_demo"), &[]);
    r.assert_passed(CALL_DEMO_LINES, "call demo: OK");
}

/// group_call (two devices of one account, members sync) under ASan +
/// UBSan with leak detection.
#[test]
fn group_call_asan() {
    let Some(build) = sanitized() else { return };
    let r = run_sanitized(&build.join("group_call"), &[]);
    r.assert_passed(GROUP_CALL_LINES, "group call: OK");
}

/// The load generator under ASan + UBSan with leak detection: its
/// callbacks start requests from library threads and share state with the
/// main thread.
#[test]
fn load_generator_asan() {
    let Some(build) = sanitized() else { return };
    assert_load_ran(&run_sanitized(&build.join("load"), LOAD_ARGS));
}

/// docs/OPERATORS.md's ten minutes, as a newcomer runs them: the
/// dev-receiver, the server from deploy/server.toml (free ports through the
/// environment), client_only ringing an offline bob, then curl against the
/// admin API to list and close the room. The receiver must see the
/// webhooks and the push, signed; the client the ROOM_CLOSE.
#[test]
fn the_operator_walkthrough() {
    const WAIT: Duration = Duration::from_secs(20);
    let receiver = Running::start(
        Command::new(server_bin()).args([
            "dev-receiver",
            "--listen",
            "127.0.0.1:0",
            "--secret",
            "change-me-webhook-secret",
            "--secret",
            "change-me-push-secret",
        ]),
        "dev-receiver",
    );
    let at = receiver.wait_line(true, WAIT, |l| l.contains("listening on http://"));
    let hooks = at.split_whitespace().nth(3).expect("the receiver's URL");
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/server.toml");
    let server = Running::start(
        Command::new(server_bin())
            .arg("--config")
            .arg(&sample)
            .env("NIM_SIGNALING_LISTEN", "127.0.0.1:0")
            .env("NIM_SIGNALING_ADMIN_LISTEN", "127.0.0.1:0")
            .env("NIM_SIGNALING_METRICS_LISTEN", "127.0.0.1:0")
            .env(
                "NIM_SIGNALING_WEBHOOKS__URLS",
                format!(r#"["{hooks}/webhooks"]"#),
            )
            .env("NIM_SIGNALING_PUSH__URL", format!("{hooks}/push")),
        "nim-signaling-server",
    );
    let url = server.wait_line(false, WAIT, |l| l.contains("listening on ws://"));
    let url = url.rsplit(' ').next().unwrap().to_string();
    let admin = server.wait_line(true, WAIT, |l| l.contains("admin API on "));
    let admin = admin
        .split("admin API on ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("admin URL")
        .trim_end_matches("/v1")
        .to_string();
    let token = Command::new(server_bin())
        .args([
            "token",
            "--secret",
            "change-me-login-secret",
            "--account",
            "alice",
        ])
        .output()
        .unwrap();
    let token = String::from_utf8(token.stdout).unwrap().trim().to_string();
    let client = Running::start(
        Command::new(built().join("client_only")).args([&url, "alice", &token, "bob", "60"]),
        "client_only",
    );
    client.wait_line(false, WAIT, |l| l.contains("listening for"));

    let received = |what: &str| {
        receiver.wait_line(false, WAIT, |l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap_or_default();
            v["event"] == what || (what == "push" && v["path"] == "/push")
        })
    };
    for what in ["room.created", "member.joined", "invitation.sent", "push"] {
        let line = received(what);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["signature"], "valid", "{line}");
    }
    let push: serde_json::Value = serde_json::from_str(&received("push")).unwrap();
    assert_eq!(push["body"]["account"], "bob");
    assert_eq!(push["body"]["title"], "alice calls");
    assert!(
        client
            .stdout()
            .iter()
            .any(|l| l.contains("invite") && l.contains("10201")),
        "client_only was told bob is offline and pushed: {:?}",
        client.stdout()
    );

    let curl = |args: &[&str]| {
        let out = Command::new("curl")
            .args([
                "-s",
                "-H",
                "Authorization: Bearer change-me-admin-token-0123456789",
            ])
            .args(args)
            .output()
            .expect("curl (apt-get install curl)");
        assert!(out.status.success(), "curl {args:?}: {out:?}");
        serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("JSON from the admin API")
    };
    let rooms = curl(&[&format!("{admin}/v1/rooms")]);
    let room = rooms["rooms"][0]["channelId"]
        .as_str()
        .unwrap_or_else(|| panic!("a room in {rooms}"))
        .to_string();
    let closed = curl(&["-X", "DELETE", &format!("{admin}/v1/rooms/{room}")]);
    assert_eq!(closed["closed"], true, "{closed}");
    client.wait_line(false, WAIT, |l| l.contains("ROOM_CLOSE"));
    let line = received("room.closed");
    assert!(
        line.contains(&room) && line.contains(r#""signature":"valid""#),
        "{line}"
    );
}
