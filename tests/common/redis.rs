#![allow(dead_code)] // each test binary uses part of it
//! Redis for the tests: each test binary starts its own on a free loopback
//! port, so that `cargo test` needs no Redis running beforehand and no
//! fixed port, only `redis-server` on the PATH (`scripts/test.sh` installs
//! it). `NIM_TEST_REDIS_URL` points the tests at another Redis instead.

use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long a starting redis-server may take to accept connections.
const READY_WITHIN: Duration = Duration::from_secs(20);

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// The arguments of a throwaway redis-server on `port`: loopback only, no
/// persistence.
fn args(port: u16) -> [String; 8] {
    [
        "--port".into(),
        port.to_string(),
        "--bind".into(),
        "127.0.0.1".into(),
        "--save".into(),
        String::new(),
        "--appendonly".into(),
        "no".into(),
    ]
}

fn missing(e: std::io::Error) -> ! {
    panic!(
        "these tests need redis-server on the PATH ({e}): scripts/test.sh installs it, \
         or apt-get install redis-server, or set NIM_TEST_REDIS_URL"
    )
}

/// Waits until something accepts connections on `port`.
pub fn wait_ready(port: u16) {
    let end = Instant::now() + READY_WITHIN;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < end,
            "redis-server on port {port} did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts redis-server on `port` and waits until it is ready. The caller
/// owns the process (and kills it).
pub fn spawn(port: u16) -> Child {
    let child = Command::new("redis-server")
        .args(args(port))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| missing(e));
    wait_ready(port);
    child
}

/// The Redis the tests of this binary share: `NIM_TEST_REDIS_URL`, or one
/// started at the first call. A test binary ends with `exit`, which runs no
/// destructor, so that one is started under a shell that kills it as soon
/// as this process's end of its stdin closes, however the process ends.
pub fn url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("NIM_TEST_REDIS_URL") {
            return url;
        }
        // Said at once, rather than after waiting for a server that
        // cannot start.
        if let Err(e) = Command::new("redis-server").arg("--version").output() {
            missing(e);
        }
        // The port may be taken between free_port and redis binding it:
        // then the next port is tried.
        for _ in 0..5 {
            let port = free_port();
            let mut watchdog = Command::new("sh")
                .arg("-c")
                .arg(r#"redis-server "$@" & r=$!; trap 'kill $r' EXIT; read _"#)
                .arg("sh")
                .args(args(port))
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| missing(e));
            let end = Instant::now() + READY_WITHIN;
            loop {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    // Kept open (never dropped) for the life of the process.
                    std::mem::forget(watchdog.stdin.take());
                    std::mem::forget(watchdog);
                    return format!("redis://127.0.0.1:{port}");
                }
                if matches!(watchdog.try_wait(), Ok(Some(_))) || Instant::now() > end {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = watchdog.kill();
        }
        panic!("could not start redis-server on a free port (is it installed? scripts/test.sh)")
    })
    .clone()
}
