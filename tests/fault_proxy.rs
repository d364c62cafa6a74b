//! Self-tests of the fault-injecting proxy in tests/common/proxy.rs, against
//! plain TCP echo servers.

mod common;
use common::proxy::FaultProxy;

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Upper bound for things that should happen "at once" (slow shared machine).
const SOON: Duration = Duration::from_secs(2);

/// An echo server; with `upper` it answers in upper case so tests can tell
/// two servers apart.
async fn echo_server(upper: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    if upper {
                        buf[..n].make_ascii_uppercase();
                    }
                    if s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// Reads exactly `want.len()` bytes within `limit` and checks them.
async fn expect_echo(s: &mut TcpStream, want: &[u8], limit: Duration) {
    let mut got = vec![0u8; want.len()];
    tokio::time::timeout(limit, s.read_exact(&mut got))
        .await
        .expect("echo in time")
        .expect("read echo");
    assert_eq!(got, want);
}

/// Sends `msg` and expects it back.
async fn roundtrip(s: &mut TcpStream, msg: &[u8], reply: &[u8]) {
    s.write_all(msg).await.unwrap();
    expect_echo(s, reply, SOON).await;
}

/// True if the stream reaches EOF (or an error) within `limit`.
async fn closes_within(s: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(limit, s.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

/// Nothing at all (no bytes, no EOF) arrives within `d`.
async fn silent_for(s: &mut TcpStream, d: Duration) {
    let mut buf = [0u8; 64];
    if let Ok(r) = tokio::time::timeout(d, s.read(&mut buf)).await {
        panic!("expected silence, got {r:?}");
    }
}

/// Polls `f` until it holds or `SOON` passes.
async fn eventually(what: &str, f: impl Fn() -> bool) {
    let end = Instant::now() + SOON;
    while !f() {
        assert!(Instant::now() < end, "not within {SOON:?}: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn setup() -> (SocketAddr, FaultProxy) {
    let echo = echo_server(false).await;
    (echo, FaultProxy::start(echo).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_through_and_counts() {
    let (_, proxy) = setup().await;
    assert!(proxy.url().starts_with("ws://127.0.0.1:"));
    assert_eq!(proxy.url(), format!("ws://{}", proxy.addr()));
    assert_eq!((proxy.accepted(), proxy.open_connections()), (0, 0));

    let mut a = TcpStream::connect(proxy.addr()).await.unwrap();
    roundtrip(&mut a, b"hello", b"hello").await;
    let mut b = TcpStream::connect(proxy.addr()).await.unwrap();
    roundtrip(&mut b, b"world", b"world").await;
    roundtrip(&mut a, b"again", b"again").await;
    assert_eq!(proxy.accepted(), 2);
    assert_eq!(proxy.open_connections(), 2);

    drop(a);
    eventually("one left open", || proxy.open_connections() == 1).await;
    drop(b);
    eventually("none left open", || proxy.open_connections() == 0).await;
    assert_eq!(proxy.accepted(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_closes_current_connections_only() {
    let (_, proxy) = setup().await;
    let mut a = TcpStream::connect(proxy.addr()).await.unwrap();
    roundtrip(&mut a, b"hi", b"hi").await;
    proxy.cut();
    assert!(closes_within(&mut a, SOON).await, "cut connection sees EOF");
    eventually("cut connection no longer open", || {
        proxy.open_connections() == 0
    })
    .await;

    let mut b = TcpStream::connect(proxy.addr()).await.unwrap();
    roundtrip(&mut b, b"after", b"after").await;
    assert_eq!(proxy.open_connections(), 1);
    assert_eq!(proxy.accepted(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_closes_an_idle_connection_blocked_in_read() {
    let (_, proxy) = setup().await;
    // Never sends anything: both direction tasks sit in read().
    let mut a = TcpStream::connect(proxy.addr()).await.unwrap();
    eventually("connected", || proxy.open_connections() == 1).await;
    proxy.cut();
    assert!(closes_within(&mut a, SOON).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stall_holds_bytes_until_released() {
    let (_, proxy) = setup().await;
    let mut a = TcpStream::connect(proxy.addr()).await.unwrap();
    roundtrip(&mut a, b"x", b"x").await;

    proxy.stall(true);
    a.write_all(b"one").await.unwrap();
    a.write_all(b"two").await.unwrap();
    silent_for(&mut a, Duration::from_millis(300)).await;
    // New connections are stalled too, but stay open.
    let mut b = TcpStream::connect(proxy.addr()).await.unwrap();
    b.write_all(b"new").await.unwrap();
    silent_for(&mut b, Duration::from_millis(300)).await;

    proxy.stall(false);
    expect_echo(&mut a, b"onetwo", SOON).await;
    expect_echo(&mut b, b"new", SOON).await;
    assert_eq!(proxy.open_connections(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blackhole_silences_current_connections_only() {
    let (_, proxy) = setup().await;
    let mut old = TcpStream::connect(proxy.addr()).await.unwrap();
    roundtrip(&mut old, b"hi", b"hi").await;

    proxy.blackhole_current();
    old.write_all(b"lost").await.unwrap();
    silent_for(&mut old, Duration::from_millis(500)).await;

    let mut new = TcpStream::connect(proxy.addr()).await.unwrap();
    roundtrip(&mut new, b"fine", b"fine").await;
    // Still silent, still not closed.
    old.write_all(b"more").await.unwrap();
    silent_for(&mut old, Duration::from_millis(200)).await;

    // Dropping the proxy releases the silent connection.
    drop(proxy);
    assert!(closes_within(&mut old, SOON).await, "released on drop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_slows_every_chunk() {
    let (_, proxy) = setup().await;
    let mut a = TcpStream::connect(proxy.addr()).await.unwrap();
    roundtrip(&mut a, b"warm", b"warm").await;

    proxy.set_delay(Duration::from_millis(200));
    let t = Instant::now();
    roundtrip(&mut a, b"slow", b"slow").await;
    // Delayed on the way there and back.
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t.elapsed()
    );

    proxy.set_delay(Duration::ZERO);
    let t = Instant::now();
    roundtrip(&mut a, b"fast", b"fast").await;
    assert!(
        t.elapsed() < Duration::from_millis(400),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuse_closes_new_connections() {
    let (_, proxy) = setup().await;
    let mut old = TcpStream::connect(proxy.addr()).await.unwrap();
    roundtrip(&mut old, b"hi", b"hi").await;

    proxy.refuse(true);
    let mut a = TcpStream::connect(proxy.addr()).await.unwrap();
    assert!(closes_within(&mut a, SOON).await, "refused");
    // Existing connections are not affected.
    roundtrip(&mut old, b"still", b"still").await;
    assert_eq!(proxy.accepted(), 2);
    assert_eq!(proxy.open_connections(), 1);

    proxy.refuse(false);
    let mut b = TcpStream::connect(proxy.addr()).await.unwrap();
    roundtrip(&mut b, b"back", b"back").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_target_redirects_new_connections() {
    let (_, proxy) = setup().await;
    let mut old = TcpStream::connect(proxy.addr()).await.unwrap();
    roundtrip(&mut old, b"abc", b"abc").await;

    proxy.set_target(echo_server(true).await);
    let mut new = TcpStream::connect(proxy.addr()).await.unwrap();
    roundtrip(&mut new, b"abc", b"ABC").await;
    // The old connection keeps its server.
    roundtrip(&mut old, b"def", b"def").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_target_closes_client() {
    // A port nobody listens on (bound, then released).
    let dead = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let proxy = FaultProxy::start(dead).await;
    let mut a = TcpStream::connect(proxy.addr()).await.unwrap();
    assert!(closes_within(&mut a, SOON).await);
    assert_eq!(proxy.accepted(), 1);
    assert_eq!(proxy.open_connections(), 0);
}
