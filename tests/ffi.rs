//! The C ABI called as a C program would: bad input, a whole call, and
//! exactly-once callbacks under load, timeouts and client_free.

use nim_signaling::ffi::client::*;
use nim_signaling::ffi::server::*;
use nim_signaling::ffi::types::{
    nim_signaling_client, nim_signaling_result_cb, nim_signaling_server,
};
use serde_json::{json, Value};
use std::ffi::{c_char, c_void, CStr, CString};
use std::ptr::{null, null_mut};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Mutex;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

fn cs(s: &str) -> CString {
    CString::new(s).unwrap()
}

/// Where a callback reports: (code, json, thread) or (json, thread).
struct Inbox {
    tx: Mutex<Sender<(i32, String, std::thread::ThreadId)>>,
}

/// Leaked on purpose: a callback may still be inside `send` after the test
/// thread's `recv` returned, so its user data must outlive the test (a C app
/// likewise keeps user data alive until `client_free` has returned).
fn inbox() -> (
    &'static Inbox,
    Receiver<(i32, String, std::thread::ThreadId)>,
) {
    let (tx, rx) = channel();
    (Box::leak(Box::new(Inbox { tx: Mutex::new(tx) })), rx)
}

unsafe extern "C" fn on_result(code: i32, json: *const c_char, ud: *mut c_void) {
    let inbox = &*(ud as *const Inbox);
    let s = CStr::from_ptr(json).to_str().unwrap().to_string();
    let _ = inbox
        .tx
        .lock()
        .unwrap()
        .send((code, s, std::thread::current().id()));
}

unsafe extern "C" fn on_event(json: *const c_char, ud: *mut c_void) {
    on_result(0, json, ud)
}

/// Counts its calls: each request gets its own counter.
unsafe extern "C" fn count(_code: i32, _json: *const c_char, ud: *mut c_void) {
    (*(ud as *const AtomicU32)).fetch_add(1, Ordering::SeqCst);
}

fn ud<T>(b: &T) -> *mut c_void {
    b as *const T as *mut c_void
}

struct Server(*mut nim_signaling_server);
impl Server {
    fn start(cfg: &str) -> Server {
        let mut s = null_mut();
        assert_eq!(
            unsafe { nim_signaling_server_start(cs(cfg).as_ptr(), &mut s) },
            200
        );
        assert!(!s.is_null());
        Server(s)
    }
    fn url(&self) -> String {
        unsafe {
            CStr::from_ptr(nim_signaling_server_url(self.0))
                .to_str()
                .unwrap()
                .to_string()
        }
    }
}
impl Drop for Server {
    fn drop(&mut self) {
        unsafe { nim_signaling_server_stop(self.0) }
    }
}

fn new_client(cfg: Value) -> *mut nim_signaling_client {
    let mut c = null_mut();
    assert_eq!(
        unsafe { nim_signaling_client_new(cs(&cfg.to_string()).as_ptr(), &mut c) },
        200
    );
    c
}

fn logged_in(url: &str, account: &str) -> *mut nim_signaling_client {
    let c = new_client(
        json!({"serverUrl": url, "account": account, "deviceId": format!("{account}-d")}),
    );
    let (ib, rx) = inbox();
    assert_eq!(
        unsafe { nim_signaling_login(c, Some(on_result), ud(&*ib)) },
        200
    );
    let (code, body, _) = rx.recv_timeout(WAIT).expect("login callback");
    assert_eq!(code, 200, "{body}");
    c
}

type OpFn = unsafe extern "C" fn(
    *mut nim_signaling_client,
    *const c_char,
    nim_signaling_result_cb,
    *mut c_void,
) -> i32;

const OPS: &[(&str, OpFn)] = &[
    ("create", nim_signaling_create),
    ("close", nim_signaling_close),
    ("join", nim_signaling_join),
    ("leave", nim_signaling_leave),
    ("invite", nim_signaling_invite),
    ("cancel", nim_signaling_cancel_invite),
    ("accept", nim_signaling_accept),
    ("reject", nim_signaling_reject),
    ("control", nim_signaling_control),
    ("call", nim_signaling_call),
    ("sync", nim_signaling_sync),
    ("query", nim_signaling_query_channel_info),
];

#[test]
fn bad_input_gives_414_or_415_and_no_callback() {
    let srv = Server::start("{}");
    let c = logged_in(&srv.url(), "hostile");
    let not_logged = new_client(json!({"serverUrl": srv.url(), "account": "idle"}));
    let calls = AtomicU32::new(0);
    let huge = cs(&format!("{{\"channelId\":\"{}\"}}", "x".repeat(8 << 20)));
    let invalid_utf8: &[u8] = b"{\"channelId\":\"\xff\xfe\"}\0";
    for (name, op) in OPS {
        unsafe {
            let cb = Some(count as unsafe extern "C" fn(i32, *const c_char, *mut c_void));
            assert_eq!(
                op(null_mut(), cs("{}").as_ptr(), cb, ud(&calls)),
                414,
                "{name}: NULL client"
            );
            assert_eq!(op(c, null(), cb, ud(&calls)), 414, "{name}: NULL json");
            assert_eq!(
                op(c, cs("{not json").as_ptr(), cb, ud(&calls)),
                414,
                "{name}: unparsable"
            );
            assert_eq!(
                op(c, cs("[1,2]").as_ptr(), cb, ud(&calls)),
                414,
                "{name}: not an object"
            );
            assert_eq!(
                op(c, invalid_utf8.as_ptr() as *const c_char, cb, ud(&calls)),
                414,
                "{name}: bad UTF-8"
            );
            assert_eq!(op(c, huge.as_ptr(), cb, ud(&calls)), 414, "{name}: 8 MiB");
            if *name != "sync" {
                // (sync takes no parameters, so there is no type to get wrong)
                let wrong =
                    cs(r#"{"channelId":5,"channelName":6,"type":"x","account":7,"requestId":[]}"#);
                assert_eq!(
                    op(c, wrong.as_ptr(), cb, ud(&calls)),
                    414,
                    "{name}: wrong types"
                );
            }
        }
    }
    unsafe {
        let cb = Some(count as unsafe extern "C" fn(i32, *const c_char, *mut c_void));
        assert_eq!(
            nim_signaling_join(c, cs("{}").as_ptr(), cb, ud(&calls)),
            414,
            "missing channelId"
        );
        assert_eq!(
            nim_signaling_create(c, cs(r#"{"type":9}"#).as_ptr(), cb, ud(&calls)),
            414,
            "type out of range"
        );
        assert_eq!(
            nim_signaling_create(not_logged, cs(r#"{"type":1}"#).as_ptr(), cb, ud(&calls)),
            415,
            "not logged in"
        );
        assert_eq!(nim_signaling_logout(not_logged, cb, ud(&calls)), 415);
        assert_eq!(nim_signaling_login(null_mut(), cb, ud(&calls)), 414);
        assert_eq!(
            nim_signaling_reg_online_notify_cb(null_mut(), None, null_mut()),
            414
        );
        // Lifecycle functions with NULLs.
        let mut out = null_mut();
        assert_eq!(nim_signaling_client_new(null(), &mut out), 414);
        assert!(out.is_null(), "out-param untouched on failure");
        assert_eq!(
            nim_signaling_client_new(cs("{}").as_ptr(), &mut out),
            414,
            "no serverUrl/account"
        );
        assert_eq!(
            nim_signaling_client_new(
                cs(r#"{"serverUrl":"http://x","account":"a"}"#).as_ptr(),
                &mut out
            ),
            414
        );
        assert!(out.is_null());
        assert_eq!(
            nim_signaling_client_new(
                cs(r#"{"serverUrl":"ws://x","account":"a"}"#).as_ptr(),
                null_mut()
            ),
            414
        );
        let mut s = null_mut();
        assert_eq!(
            nim_signaling_server_start(cs(r#"{"roomTtlMs":"soon"}"#).as_ptr(), &mut s),
            414
        );
        assert_eq!(
            nim_signaling_server_start(cs(r#"{"nosuchkey":1}"#).as_ptr(), &mut s),
            414
        );
        assert_eq!(nim_signaling_server_start(null(), &mut s), 414);
        assert!(s.is_null());
        assert!(nim_signaling_server_url(null()).is_null());
        nim_signaling_server_stop(null_mut());
        nim_signaling_client_free(null_mut());
        assert_eq!(
            CStr::from_ptr(nim_signaling_version()).to_str().unwrap(),
            env!("CARGO_PKG_VERSION")
        );
        nim_signaling_client_free(not_logged);
        nim_signaling_client_free(c);
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "no callback for a request that was not started"
    );
}

#[test]
fn a_whole_call_through_the_c_abi() {
    let srv = Server::start("{}");
    let alice = logged_in(&srv.url(), "alice");
    let bob = logged_in(&srv.url(), "bob");
    let (bob_events, bob_rx) = inbox();
    let (alice_events, alice_rx) = inbox();
    unsafe {
        assert_eq!(
            nim_signaling_reg_online_notify_cb(bob, Some(on_event), ud(&*bob_events)),
            200
        );
        assert_eq!(
            nim_signaling_reg_online_notify_cb(alice, Some(on_event), ud(&*alice_events)),
            200
        );
    }
    let (res, res_rx) = inbox();
    let me = std::thread::current().id();
    let call = |client, op: OpFn, params: Value| -> Value {
        assert_eq!(
            unsafe {
                op(
                    client,
                    cs(&params.to_string()).as_ptr(),
                    Some(on_result),
                    ud(&*res),
                )
            },
            200
        );
        let (code, body, thread) = res_rx.recv_timeout(WAIT).expect("result callback");
        assert_ne!(thread, me, "callbacks never run on the calling thread");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["code"], code);
        v
    };
    let r = call(
        alice,
        nim_signaling_call,
        json!({"type": 2, "account": "bob", "requestId": "q1", "uid": "42"}),
    );
    assert_eq!(r["code"], 200, "{r}");
    assert_eq!(
        r["members"][0]["uid"], 42,
        "uid given as a string comes back as a number"
    );
    let cid = r["channelInfo"]["channelId"].as_str().unwrap().to_string();
    let (_, invite, _) = bob_rx.recv_timeout(WAIT).unwrap();
    let invite: Value = serde_json::from_str(&invite).unwrap();
    assert_eq!(
        (
            invite["eventType"].as_str(),
            invite["eventTypeCode"].as_i64()
        ),
        (Some("INVITE"), Some(3))
    );
    let r = call(
        bob,
        nim_signaling_accept,
        json!({"channelId": cid, "account": "alice", "requestId": "q1", "autoJoin": true}),
    );
    assert_eq!(r["members"].as_array().unwrap().len(), 2, "{r}");
    let (_, accept, _) = alice_rx.recv_timeout(WAIT).unwrap();
    assert!(accept.contains("\"ACCEPT\""), "{accept}");
    let (_, join, _) = alice_rx.recv_timeout(WAIT).unwrap();
    assert!(join.contains("\"ROOM_JOIN\""), "{join}");
    let r = call(alice, nim_signaling_close, json!({"channelId": cid}));
    assert_eq!(r["code"], 200);
    let (_, close, _) = bob_rx.recv_timeout(WAIT).unwrap();
    let close: Value = serde_json::from_str(&close).unwrap();
    assert_eq!(close["eventType"], "ROOM_CLOSE");
    assert_eq!(close["channelInfo"]["invalid"], 1);
    let r = call(bob, nim_signaling_join, json!({"channelId": cid}));
    assert_eq!(r["code"], 10404);
    assert!(r["message"].is_string());
    unsafe {
        nim_signaling_client_free(alice);
        nim_signaling_client_free(bob);
    }
}

/// A WebSocket peer that accepts logins and then never answers, so
/// requests can be held in flight for as long as a test wants.
fn black_hole() -> (String, std::thread::JoinHandle<()>) {
    use futures_util::{SinkExt, StreamExt};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let h = std::thread::spawn(move || {
        rt.block_on(async move {
            loop {
                let Ok((s, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
                    let echo = |_: &Request, mut r: Response| {
                        r.headers_mut().insert(
                            "Sec-WebSocket-Protocol",
                            "nim-signaling.v1".parse().unwrap(),
                        );
                        Ok(r)
                    };
                    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(s, echo).await else {
                        return;
                    };
                    while let Some(Ok(m)) = ws.next().await {
                        if let tokio_tungstenite::tungstenite::Message::Text(t) = m {
                            if t.contains("\"login\"") {
                                let _ = ws
                                    .send(
                                        r#"{"t":"res","id":0,"result":{"code":200,"seq":0}}"#
                                            .into(),
                                    )
                                    .await;
                            }
                        }
                    }
                });
            }
        })
    });
    (url, h)
}

fn counters(n: usize) -> Vec<AtomicU32> {
    (0..n).map(|_| AtomicU32::new(0)).collect()
}

fn start_many(c: *mut nim_signaling_client, slots: &[AtomicU32]) {
    for slot in slots {
        let p = cs(r#"{"channelId":"nowhere"}"#);
        assert_eq!(
            unsafe { nim_signaling_query_channel_info(c, p.as_ptr(), Some(count), ud(slot)) },
            200
        );
    }
}

#[test]
fn every_request_completes_exactly_once() {
    // Answered by a real server.
    let srv = Server::start("{}");
    let c = logged_in(&srv.url(), "busy");
    let slots = counters(500);
    start_many(c, &slots);
    unsafe { nim_signaling_client_free(c) };
    assert!(
        slots.iter().all(|s| s.load(Ordering::SeqCst) == 1),
        "answered: each callback exactly once"
    );

    // Timed out: nobody answers within 150 ms.
    let (url, _t) = black_hole();
    let cfg = json!({"serverUrl": url, "account": "patient", "requestTimeoutMs": 150});
    let c = new_client(cfg.clone());
    let (ib, rx) = inbox();
    unsafe { nim_signaling_login(c, Some(on_result), ud(&*ib)) };
    let (code, body, _) = rx.recv_timeout(WAIT).unwrap();
    assert_eq!(code, 200, "{body}");
    let slots = counters(300);
    start_many(c, &slots);
    let deadline = std::time::Instant::now() + WAIT;
    while slots.iter().any(|s| s.load(Ordering::SeqCst) == 0)
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    unsafe { nim_signaling_client_free(c) };
    assert!(
        slots.iter().all(|s| s.load(Ordering::SeqCst) == 1),
        "timed out: each callback exactly once"
    );

    // Freed mid-flight: pending requests complete before free returns.
    let c = new_client(json!({"serverUrl": url, "account": "quitter", "requestTimeoutMs": 60000}));
    unsafe { nim_signaling_login(c, Some(on_result), ud(&*ib)) };
    assert_eq!(rx.recv_timeout(WAIT).unwrap().0, 200);
    let slots = counters(300);
    start_many(c, &slots);
    unsafe { nim_signaling_client_free(c) };
    assert!(
        slots.iter().all(|s| s.load(Ordering::SeqCst) == 1),
        "freed: each callback exactly once, before free returned"
    );
}

/// user_data for the free-from-callback test.
struct SelfFree {
    client: std::sync::atomic::AtomicPtr<nim_signaling_client>,
    done: Mutex<Sender<()>>,
}

unsafe extern "C" fn free_me(_code: i32, _json: *const c_char, ud: *mut c_void) {
    let s = &*(ud as *const SelfFree);
    nim_signaling_client_free(s.client.swap(null_mut(), Ordering::SeqCst));
    let _ = s.done.lock().unwrap().send(());
}

unsafe extern "C" fn create_from_callback(code: i32, _json: *const c_char, ud: *mut c_void) {
    // Login finished: start another request from inside the callback.
    let s = &*(ud as *const SelfFree);
    assert_eq!(code, 200);
    let r = nim_signaling_create(
        s.client.load(Ordering::SeqCst),
        c"{\"type\":1}".as_ptr(),
        Some(free_me),
        ud,
    );
    assert_eq!(r, 200);
}

#[test]
fn api_calls_and_free_from_inside_callbacks() {
    let srv = Server::start("{}");
    let c = new_client(json!({"serverUrl": srv.url(), "account": "reentrant"}));
    let (tx, rx) = channel();
    // Leaked for the same reason as `inbox`.
    let s: &'static SelfFree = Box::leak(Box::new(SelfFree {
        client: std::sync::atomic::AtomicPtr::new(c),
        done: Mutex::new(tx),
    }));
    unsafe {
        assert_eq!(
            nim_signaling_login(c, Some(create_from_callback), ud(&*s)),
            200
        );
    }
    rx.recv_timeout(WAIT)
        .expect("free from inside a callback returned (no deadlock)");
    assert!(s.client.load(Ordering::SeqCst).is_null());
}

#[test]
fn requests_complete_once_when_the_connection_is_lost() {
    let srv = Server::start("{}");
    let c = new_client(json!({"serverUrl": srv.url(), "account": "stranded", "reconnect": false}));
    let (ib, rx) = inbox();
    unsafe { nim_signaling_login(c, Some(on_result), ud(&*ib)) };
    assert_eq!(rx.recv_timeout(WAIT).unwrap().0, 200);
    let slots = counters(300);
    start_many(c, &slots);
    drop(srv); // stops the server with requests in flight
    let deadline = std::time::Instant::now() + WAIT;
    while slots.iter().any(|s| s.load(Ordering::SeqCst) == 0)
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        slots.iter().all(|s| s.load(Ordering::SeqCst) == 1),
        "each callback exactly once before free"
    );
    // Not logged in any more: new requests are refused up front.
    let p = cs(r#"{"channelId":"x"}"#);
    assert_eq!(
        unsafe { nim_signaling_join(c, p.as_ptr(), Some(count), ud(&slots[0])) },
        415
    );
    unsafe { nim_signaling_client_free(c) };
    assert!(
        slots.iter().all(|s| s.load(Ordering::SeqCst) == 1),
        "and nothing more after it"
    );
}

#[test]
fn too_many_outstanding_requests_are_refused_up_front() {
    let (url, _t) = black_hole();
    let c = new_client(json!({"serverUrl": url, "account": "flood", "requestTimeoutMs": 60000}));
    let (ib, rx) = inbox();
    unsafe { nim_signaling_login(c, Some(on_result), ud(ib)) };
    assert_eq!(rx.recv_timeout(WAIT).unwrap().0, 200);
    let slots = counters(nim_signaling::client::MAX_IN_FLIGHT);
    start_many(c, &slots);
    let refused = AtomicU32::new(0);
    let p = cs(r#"{"channelId":"nowhere"}"#);
    let r = unsafe { nim_signaling_query_channel_info(c, p.as_ptr(), Some(count), ud(&refused)) };
    assert_eq!(r, 416, "one more than the limit");
    unsafe { nim_signaling_client_free(c) };
    assert!(
        slots.iter().all(|s| s.load(Ordering::SeqCst) == 1),
        "the accepted ones complete exactly once"
    );
    assert_eq!(
        refused.load(Ordering::SeqCst),
        0,
        "the refused one never calls back"
    );
}
