//! TLS: the server terminates TLS from PEM files (config `tls`, or the
//! binary's --tls-cert/--tls-key), clients connect with `wss://` and verify
//! the server with their `caFile` or the system's roots. The certificates
//! are made here with rcgen: a private CA, and a server certificate it signs
//! for "localhost" and 127.0.0.1.

mod common;

use common::*;
use nim_signaling::client::*;
use nim_signaling::server::*;
use nim_signaling_client::ClientConfig;
use nim_signaling_server::{self as server, ServerConfig};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use serde_json::{json, Value};
use std::ffi::{c_char, c_void, CStr, CString};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Duration;

/// A CA and a server certificate it signed, as PEM files in a directory of
/// their own (removed on drop).
struct Pki {
    dir: PathBuf,
    ca: String,
    cert: String,
    key: String,
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn path_str(p: &Path) -> String {
    p.to_str().expect("temp paths are UTF-8").to_string()
}

impl Pki {
    /// A CA and a certificate for "localhost" and 127.0.0.1.
    fn new() -> Pki {
        Pki::for_names(&["localhost", "127.0.0.1"])
    }

    fn for_names(names: &[&str]) -> Pki {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("nim-sig-tls-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();

        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        // A name of its own: two CAs of one name would meet as "bad
        // signature" rather than "unknown issuer".
        ca.distinguished_name
            .push(DnType::CommonName, format!("nim-signaling test CA {n}"));
        let ca = ca.self_signed(&ca_key).unwrap();

        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut leaf = CertificateParams::new(names.clone()).unwrap();
        leaf.distinguished_name.push(DnType::CommonName, &names[0]);
        let leaf = leaf.signed_by(&key, &ca, &ca_key).unwrap();

        let write = |name: &str, text: String| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            path_str(&p)
        };
        Pki {
            ca: write("ca.pem", ca.pem()),
            cert: write("cert.pem", leaf.pem()),
            key: write("key.pem", key.serialize_pem()),
            dir,
        }
    }

    /// A file in this directory holding `text`.
    fn file(&self, name: &str, text: &str) -> String {
        let p = self.dir.join(name);
        std::fs::write(&p, text).unwrap();
        path_str(&p)
    }

    fn server_config(&self) -> Value {
        json!({"tls": {"certFile": self.cert, "keyFile": self.key}})
    }
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().unwrap().parse().unwrap()
}

/// Logs in once (no reconnect) and returns (code, message).
async fn login_result(url: &str, account: &str, mut extra: Value) -> (i32, String) {
    extra["reconnect"] = false.into();
    let c = client_for(url, account, "d1", extra);
    let (code, body) = c.client.login().await;
    c.client.shutdown();
    let v: Value = serde_json::from_str(&body).unwrap();
    (code, v["message"].as_str().unwrap_or_default().to_string())
}

#[tokio::test]
async fn a_whole_call_over_wss() {
    let pki = Pki::new();
    let srv = start_server(pki.server_config()).await;
    assert!(srv.url().starts_with("wss://127.0.0.1:"), "{}", srv.url());
    let ca = json!({"caFile": pki.ca});
    // By IP address (the certificate's IP SAN) and by name ("localhost").
    let mut alice = login_with(srv.url(), "alice", "a1", ca.clone()).await;
    let by_name = format!("wss://localhost:{}", port_of(srv.url()));
    let mut bob = login_with(&by_name, "bob", "b1", ca).await;

    let room = alice.call_rings(&mut bob, "r1").await;
    alice.expect_delivered(&room, "bob", "r1", 1).await;
    let acc = bob
        .ok(
            "accept",
            json!({"channelId": room, "account": "alice", "requestId": "r1", "autoJoin": true}),
        )
        .await;
    assert_eq!(acc["members"].as_array().unwrap().len(), 2, "{acc}");
    alice.expect_event_from("ACCEPT", &room, "bob").await;
    srv.shutdown().await;
}

#[tokio::test]
async fn the_system_roots_or_another_ca_do_not_trust_the_server() {
    let pki = Pki::new();
    let other = Pki::new();
    let srv = start_server(pki.server_config()).await;

    let (code, msg) = login_result(srv.url(), "carol", json!({})).await;
    assert_eq!(code, 415, "{msg}");
    assert!(
        msg.contains("TLS handshake") && msg.contains("certificate"),
        "{msg}"
    );

    let (code, msg) = login_result(srv.url(), "carol", json!({"caFile": other.ca})).await;
    assert_eq!(code, 415, "{msg}");
    assert!(
        msg.contains("TLS handshake") && msg.contains("certificate"),
        "{msg}"
    );

    srv.shutdown().await;

    // The right CA, but the certificate is for another name.
    let elsewhere = Pki::for_names(&["elsewhere.example"]);
    let srv = start_server(elsewhere.server_config()).await;
    let (code, msg) = login_result(srv.url(), "carol", json!({"caFile": elsewhere.ca})).await;
    assert_eq!(code, 415, "{msg}");
    assert!(
        msg.contains("TLS handshake") && msg.contains("not valid for name"),
        "{msg}"
    );
    srv.shutdown().await;
}

/// The server's own POSTs (webhooks, the push gateway) verify an
/// `https://` receiver with their caFile, or the system's roots. The
/// receiver here is the server's own TLS listener, which hangs up on a POST
/// once the handshake has passed: with the right CA that is all that fails.
#[tokio::test]
async fn posts_to_https_receivers_trust_their_ca_file() {
    use nim_signaling_server::ops::http::{Endpoint, Roots};
    let pki = Pki::new();
    let other = Pki::new();
    let srv = start_server(pki.server_config()).await;
    let url = format!("https://localhost:{}/hooks", port_of(srv.url()));
    let post = |roots: Roots| {
        let to = Endpoint::new(&url, &roots, Duration::from_secs(5)).unwrap();
        async move { to.post_json(&[], bytes::Bytes::from_static(b"{}")).await }
    };
    let ca = Roots::load(Some(Path::new(&pki.ca))).unwrap();
    match post(ca).await {
        Ok(_) => {}
        Err(e) => assert!(!e.contains("certificate") && e.contains("close"), "{e}"),
    }
    let elsewhere = Roots::load(Some(Path::new(&other.ca))).unwrap();
    for roots in [Roots::default(), elsewhere] {
        let err = post(roots).await.unwrap_err();
        assert!(err.contains("certificate"), "{err}");
    }
    let bad = Roots::load(Some(&pki.dir.join("nope.pem"))).unwrap_err();
    assert!(bad.contains("caFile") && bad.contains("nope.pem"), "{bad}");
    srv.shutdown().await;
}

#[tokio::test]
async fn plain_ws_against_tls_fails_cleanly_and_others_are_served() {
    let pki = Pki::new();
    let srv = start_server(pki.server_config()).await;
    let plain = srv.url().replace("wss://", "ws://");
    let (code, msg) = login_result(&plain, "mallory", json!({})).await;
    assert_eq!(code, 415, "{msg}");

    let (code, msg) = login_result(srv.url(), "dave", json!({"caFile": pki.ca})).await;
    assert_eq!(code, 200, "{msg}");
    srv.shutdown().await;
}

#[tokio::test]
async fn a_peer_that_never_finishes_the_tls_handshake_is_closed_at_the_login_timeout() {
    let pki = Pki::new();
    let mut cfg = pki.server_config();
    cfg["loginTimeoutMs"] = 300.into();
    let srv = start_server(cfg).await;
    let addr = srv.local_addr();
    let closed = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 64];
        // EOF or a reset: either way the server let go (a read timeout is
        // WouldBlock or TimedOut: it did not).
        match s.read(&mut buf) {
            Ok(n) => n == 0,
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        }
    });
    let start = std::time::Instant::now();
    assert!(closed.await.unwrap(), "connection still open");
    assert!(start.elapsed() < Duration::from_secs(4));
    srv.shutdown().await;
}

/// `start` with these TLS settings fails; its message.
async fn start_error(tls: Value) -> String {
    let cfg = ServerConfig::from_json(&json!({ "tls": tls }).to_string()).expect("config parses");
    match server::start(cfg).await {
        Ok(h) => {
            h.shutdown().await;
            panic!("started with {tls}")
        }
        Err(f) => {
            assert_eq!(f.code, 414, "{}", f.message);
            f.message
        }
    }
}

#[tokio::test]
async fn bad_server_tls_settings_fail_the_start_naming_the_file() {
    let pki = Pki::new();
    let other = Pki::new();
    let missing = path_str(&pki.dir.join("missing.pem"));
    let garbage = pki.file("garbage.pem", "this is not PEM\n");

    let msg = start_error(json!({"certFile": missing, "keyFile": pki.key})).await;
    assert!(
        msg.contains(&missing) && msg.contains("cannot read"),
        "{msg}"
    );
    let msg = start_error(json!({"certFile": pki.cert, "keyFile": missing})).await;
    assert!(
        msg.contains(&missing) && msg.contains("cannot read"),
        "{msg}"
    );
    let msg = start_error(json!({"certFile": garbage, "keyFile": pki.key})).await;
    assert!(
        msg.contains(&garbage) && msg.contains("no certificate"),
        "{msg}"
    );
    let msg = start_error(json!({"certFile": pki.cert, "keyFile": garbage})).await;
    assert!(
        msg.contains(&garbage) && msg.contains("private key"),
        "{msg}"
    );
    // A key and certificate file swapped, and a key that is not the certificate's.
    let msg = start_error(json!({"certFile": pki.key, "keyFile": pki.cert})).await;
    assert!(msg.contains(&pki.key), "{msg}");
    let msg = start_error(json!({"certFile": pki.cert, "keyFile": other.key})).await;
    assert!(msg.contains(&other.key) && msg.contains(&pki.cert), "{msg}");

    // Misspelt keys are refused when the config is read.
    let e = ServerConfig::from_json(r#"{"tls": {"certFile": "c", "keyfile": "k"}}"#).unwrap_err();
    assert!(e.message.contains("keyfile"), "{}", e.message);
}

#[test]
fn a_bad_ca_file_is_a_client_config_error_naming_the_file() {
    let pki = Pki::new();
    let missing = path_str(&pki.dir.join("missing.pem"));
    let garbage = pki.file("garbage.pem", "-----BEGIN CERTIFICATE-----\n!!!\n");
    let cfg = |ca: &str| {
        json!({"serverUrl": "wss://localhost:1", "account": "a", "caFile": ca}).to_string()
    };
    for (ca, what) in [(&missing, "cannot read"), (&garbage, "PEM")] {
        let e = ClientConfig::from_json(&cfg(ca)).unwrap_err();
        assert_eq!(e.code, 414);
        assert!(
            e.message.contains(ca.as_str()) && e.message.contains(what),
            "{}",
            e.message
        );
    }
    let key_only = ClientConfig::from_json(&cfg(&pki.key)).unwrap_err();
    assert!(
        key_only.message.contains("no certificate"),
        "{}",
        key_only.message
    );
    assert!(ClientConfig::from_json(&cfg(&pki.ca)).is_ok());
}

// ---------------------------------------------------------------------------
// The C ABI and the standalone binary.

fn cs(s: &str) -> CString {
    CString::new(s).unwrap()
}

unsafe extern "C" fn on_result(code: i32, json: *const c_char, ud: *mut c_void) {
    // SAFETY: `ud` is the user data the test registered: a leaked
    // `Mutex<Sender>`, alive for the whole process.
    let tx = unsafe { &*(ud as *const Mutex<mpsc::Sender<(i32, String)>>) };
    // SAFETY: the library's string, valid until the callback returns.
    let s = unsafe { CStr::from_ptr(json) }
        .to_string_lossy()
        .into_owned();
    let _ = tx.lock().unwrap().send((code, s));
}

#[test]
fn the_c_abi_serves_and_connects_over_wss() {
    let pki = Pki::new();
    // SAFETY: each string is a CString alive across its call, the out
    // pointers are locals, the handles are used only between their
    // start/new and stop/free, and the callback's user data is leaked.
    unsafe {
        let mut srv = null_mut();
        let cfg = cs(&pki.server_config().to_string());
        assert_eq!(nim_signaling_server_start(cfg.as_ptr(), &mut srv), 200);
        let url = CStr::from_ptr(nim_signaling_server_url(srv))
            .to_str()
            .unwrap()
            .to_string();
        assert!(url.starts_with("wss://"), "{url}");

        // A bad caFile is refused by client_new.
        let mut c = null_mut();
        let bad = json!({"serverUrl": url, "account": "a", "caFile": path_str(&pki.dir.join("nope.pem"))});
        assert_eq!(
            nim_signaling_client_new(cs(&bad.to_string()).as_ptr(), &mut c),
            414
        );
        assert!(c.is_null());

        let good = json!({"serverUrl": url, "account": "alice", "caFile": pki.ca});
        assert_eq!(
            nim_signaling_client_new(cs(&good.to_string()).as_ptr(), &mut c),
            200
        );
        // Leaked: a callback may still be inside send after recv returned.
        let (tx, rx) = mpsc::channel::<(i32, String)>();
        let inbox: &'static Mutex<_> = Box::leak(Box::new(Mutex::new(tx)));
        let ud = inbox as *const _ as *mut c_void;
        assert_eq!(nim_signaling_login(c, Some(on_result), ud), 200);
        let (code, body) = rx.recv_timeout(WAIT).expect("login callback");
        assert_eq!(code, 200, "{body}");
        nim_signaling_client_free(c);
        nim_signaling_server_stop(srv);
    }
}

#[tokio::test]
async fn the_binary_serves_wss_with_tls_flags() {
    let pki = Pki::new();
    let server = spawn_server(&[
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        &pki.cert,
        "--tls-key",
        &pki.key,
    ]);
    let url = server.1.clone();
    let result = login_result(&url, "alice", json!({"caFile": pki.ca})).await;
    drop(server);
    assert!(url.starts_with("wss://127.0.0.1:"), "{url}");
    assert_eq!(result.0, 200, "{}", result.1);

    // A bad file: exit 1 with a message naming it.
    let out = Command::new(server_bin())
        .args([
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            &pki.key,
            "--tls-key",
            &pki.key,
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&pki.key), "{err}");

    // One flag without the other is a usage error.
    let out = Command::new(server_bin())
        .args(["--tls-cert", &pki.cert])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
