//! The C ABI called as a C program would: bad input, a whole call, and
//! exactly-once callbacks under load, timeouts and client_free; and the
//! delivery guarantees (resume, resend, resync, INVITE_TIMEOUT) with a
//! fault-injecting proxy between the C clients and the server.
// Test code: the blocks call the C ABI as a C program would, as the header documents.
#![allow(clippy::undocumented_unsafe_blocks)]

mod common;

use common::c_server::Server;
use common::keep::keep;
use common::proxy::FaultProxy;
use common::receiver::Receiver as Gateway;
use common::{cid, WAIT};
use nim_signaling::client::*;
use nim_signaling::server::*;
use nim_signaling::types::{nim_signaling_client, nim_signaling_event_cb};
use serde_json::{json, Value};
use std::ffi::{c_char, c_void, CStr, CString};
use std::net::SocketAddr;
use std::ptr::{null, null_mut};
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Mutex;
use std::time::{Duration, Instant};

fn cs(s: &str) -> CString {
    CString::new(s).unwrap()
}

/// What a callback reports: (code, json, thread); notifications have code 0.
type Report = (i32, String, std::thread::ThreadId);

/// Where a callback reports.
struct Inbox {
    tx: Mutex<Sender<Report>>,
}

/// Kept for the whole process (see `common::keep`).
fn inbox() -> (&'static Inbox, Receiver<Report>) {
    let (tx, rx) = channel();
    (keep(Inbox { tx: Mutex::new(tx) }), rx)
}

unsafe extern "C" fn on_result(code: i32, json: *const c_char, ud: *mut c_void) {
    // SAFETY: `ud` is the user data the test registered: a `keep`-ed
    // value of this type, alive for the whole process.
    let inbox = unsafe { &*(ud as *const Inbox) };
    // SAFETY: the library's string, valid until the callback returns.
    let s = unsafe { CStr::from_ptr(json) }
        .to_str()
        .unwrap()
        .to_string();
    let _ = inbox
        .tx
        .lock()
        .unwrap()
        .send((code, s, std::thread::current().id()));
}

unsafe extern "C" fn on_event(json: *const c_char, ud: *mut c_void) {
    // SAFETY: the same user data and string as a result callback's.
    unsafe { on_result(0, json, ud) }
}

/// Counts its calls: each request gets its own counter.
unsafe extern "C" fn count(_code: i32, _json: *const c_char, ud: *mut c_void) {
    // SAFETY: `ud` is the user data the test registered: a `keep`-ed
    // value of this type, alive for the whole process.
    unsafe { &*(ud as *const AtomicU32) }.fetch_add(1, Ordering::SeqCst);
}

fn ud<T>(b: &T) -> *mut c_void {
    b as *const T as *mut c_void
}

fn new_client(cfg: Value) -> *mut nim_signaling_client {
    let mut c = null_mut();
    assert_eq!(
        unsafe { nim_signaling_client_new(cs(&cfg.to_string()).as_ptr(), &mut c) },
        200
    );
    c
}

/// A client of `account` (device "`account`-d") for the server at `url`.
fn client_at(url: &str, account: &str) -> *mut nim_signaling_client {
    new_client(json!({"serverUrl": url, "account": account, "deviceId": format!("{account}-d")}))
}

/// A client of `account` logged in to the server at `url`.
fn logged_in(url: &str, account: &str) -> *mut nim_signaling_client {
    let c = client_at(url, account);
    login(c);
    c
}

/// A `nim_signaling_reg_..._cb` function.
type RegFn =
    unsafe extern "C" fn(*mut nim_signaling_client, nim_signaling_event_cb, *mut c_void) -> i32;

/// Registers `on_event` with `reg` on `c`, reporting to `ib` (accepted: 200).
fn listen(c: *mut nim_signaling_client, reg: RegFn, ib: &'static Inbox) {
    assert_eq!(unsafe { reg(c, Some(on_event), ud(ib)) }, 200);
}

/// A new queue of `c`'s notifications of the kind `reg` registers for.
fn notifications(c: *mut nim_signaling_client, reg: RegFn) -> Receiver<Report> {
    let (ib, rx) = inbox();
    listen(c, reg, ib);
    rx
}

/// A client of `account` logged in to the server at `url`, and the queue of
/// its online notifications.
fn logged_in_listening(url: &str, account: &str) -> (*mut nim_signaling_client, Receiver<Report>) {
    let c = logged_in(url, account);
    (c, notifications(c, nim_signaling_reg_online_notify_cb))
}

/// The next notification on `rx` (within WAIT), parsed.
fn next_event(rx: &Receiver<Report>) -> Value {
    let (_, s, _) = rx.recv_timeout(WAIT).expect("a notification");
    serde_json::from_str(&s).expect("notification is JSON")
}

use nim_signaling::client::{RequestFn as OpFn, REQUEST_FUNCTIONS as OPS};

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
            if !matches!(*name, "sync" | "queryInvitations") {
                // (these take no parameters, so there is no type to get wrong)
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
        // A login secret anyone could guess: an empty or short HMAC secret,
        // an empty static token.
        for weak in [
            r#"{"auth":{"mode":"hmac","secret":""}}"#,
            r#"{"auth":{"mode":"hmac","secret":"0123456789abcde"}}"#,
            r#"{"auth":{"mode":"static","accounts":{"alice":""}}}"#,
        ] {
            assert_eq!(
                nim_signaling_server_start(cs(weak).as_ptr(), &mut s),
                414,
                "{weak}"
            );
        }
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

/// This thread's `nim_signaling_last_error`, copied (None: NULL).
fn last_error() -> Option<String> {
    let p = nim_signaling::last_error::nim_signaling_last_error();
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_string())
}

/// A call refused at once gives only a code; `nim_signaling_last_error`
/// says which field was wrong and how, on the calling thread, until its
/// next call that returns a code.
#[test]
fn a_refusal_says_which_field_was_wrong() {
    let srv = Server::start("{}");
    let c = logged_in(&srv.url(), "careless");
    let room = cid(&ok(c, nim_signaling_create, json!({"type": 1})));
    let invite = |params: Value| unsafe {
        nim_signaling_invite(
            c,
            cs(&params.to_string()).as_ptr(),
            Some(on_result),
            null_mut(),
        )
    };
    let cases = [
        (
            json!({"channelId": room, "acount": "bob", "requestId": "r1"}),
            "unknown key `acount`: did you mean `account`?",
        ),
        (
            json!({"channelID": room, "account": "bob", "requestId": "r1"}),
            "unknown key `channelID`: did you mean `channelId`?",
        ),
        (
            json!({"channelId": room, "account": "bob"}),
            "missing field `requestId`",
        ),
        (
            json!({"channelId": room, "account": 42, "requestId": "r1"}),
            "`account`: invalid type: integer `42`, expected a string",
        ),
        (
            json!({"channelId": room, "account": "b".repeat(200), "requestId": "r1"}),
            "account is longer than 128 bytes",
        ),
    ];
    for (params, want) in cases {
        assert_eq!(invite(params.clone()), 414, "{params}");
        assert_eq!(last_error().as_deref(), Some(want), "{params}");
    }
    assert_eq!(
        unsafe { nim_signaling_invite(c, cs("{").as_ptr(), Some(on_result), null_mut()) },
        414
    );
    let m = last_error().unwrap();
    assert!(m.starts_with("params_json is not valid JSON"), "{m}");
    // Per thread: another thread has its own (none).
    assert_eq!(std::thread::spawn(last_error).join().unwrap(), None);
    // A call that answers 200 clears it.
    assert_eq!(
        unsafe { nim_signaling_reg_online_notify_cb(c, None, null_mut()) },
        200
    );
    assert_eq!(last_error(), None);
    // Not a parameter: the state, the setting.
    let idle = new_client(json!({"serverUrl": srv.url(), "account": "idle"}));
    let r = unsafe { nim_signaling_sync(idle, cs("{}").as_ptr(), Some(on_result), null_mut()) };
    assert_eq!(r, 415);
    assert!(last_error().unwrap().contains("nim_signaling_login"));
    assert_eq!(unsafe { nim_signaling_client_new(null(), null_mut()) }, 414);
    assert_eq!(last_error().as_deref(), Some("out_client is NULL"));
    let mut s = null_mut();
    let r = unsafe { nim_signaling_server_start(cs(r#"{"roomTtl": 1}"#).as_ptr(), &mut s) };
    assert_eq!(r, 414);
    assert!(
        last_error().unwrap().contains("roomTtl"),
        "{:?}",
        last_error()
    );
    unsafe {
        nim_signaling_client_free(idle);
        nim_signaling_client_free(c);
    }
}

#[test]
fn a_whole_call_through_the_c_abi() {
    let srv = Server::start("{}");
    let (alice, alice_rx) = logged_in_listening(&srv.url(), "alice");
    let (bob, bob_rx) = logged_in_listening(&srv.url(), "bob");
    let r = ok(
        alice,
        nim_signaling_call,
        json!({"type": 2, "account": "bob", "requestId": "q1", "uid": "42"}),
    );
    assert_eq!(
        r["members"][0]["uid"], 42,
        "uid given as a string comes back as a number"
    );
    let cid = cid(&r);
    let invite = next_event(&bob_rx);
    assert_eq!(
        (
            invite["eventType"].as_str(),
            invite["eventTypeCode"].as_i64()
        ),
        (Some("INVITE"), Some(3))
    );
    let r = ok(
        bob,
        nim_signaling_accept,
        json!({"channelId": cid, "account": "alice", "requestId": "q1", "autoJoin": true}),
    );
    assert_eq!(r["members"].as_array().unwrap().len(), 2, "{r}");
    // bob's library acknowledged the INVITE (before his accept, on the same
    // connection): alice's notify callback gets the receipt first.
    let receipt = next_event(&alice_rx);
    assert_eq!(
        (
            receipt["eventType"].as_str(),
            receipt["eventTypeCode"].as_i64(),
            receipt["fromAccountId"].as_str(),
            receipt["requestId"].as_str(),
            receipt["deliveredCount"].as_i64(),
        ),
        (
            Some("INVITE_DELIVERED"),
            Some(10),
            Some("bob"),
            Some("q1"),
            Some(1)
        ),
        "{receipt}"
    );
    assert_eq!(receipt["channelInfo"]["channelId"], cid.as_str());
    let accept = next_event(&alice_rx);
    assert_eq!(accept["eventType"], "ACCEPT", "{accept}");
    let join = next_event(&alice_rx);
    assert_eq!(join["eventType"], "ROOM_JOIN", "{join}");
    ok(alice, nim_signaling_close, json!({"channelId": cid}));
    let close = next_event(&bob_rx);
    assert_eq!(close["eventType"], "ROOM_CLOSE");
    assert_eq!(close["channelInfo"]["invalid"], 1);
    let (code, r) = request(bob, nim_signaling_join, json!({"channelId": cid}));
    assert_eq!(code, 10404, "{r}");
    assert!(r["message"].is_string());
    unsafe {
        nim_signaling_client_free(alice);
        nim_signaling_client_free(bob);
    }
}

/// inviteMany through the C ABI: one result per invitee (200, 10430 for a
/// busy one, 10201 for an offline one), the ringing invitee's INVITE and
/// no ring for the busy one; then the invitee calling back glares: it joins
/// the inviter's room, and the inviter gets ACCEPT and ROOM_JOIN.
#[test]
fn invite_many_and_a_glaring_call_through_the_c_abi() {
    let srv = Server::start("{}");
    let (alice, alice_rx) = logged_in_listening(&srv.url(), "alice");
    let (bob, bob_rx) = logged_in_listening(&srv.url(), "bob");
    let (carol, carol_rx) = logged_in_listening(&srv.url(), "carol");
    let room = cid(&ok(alice, nim_signaling_create, json!({"type": 2})));
    ok(alice, nim_signaling_join, json!({"channelId": room}));
    let first = json!({"channelId": room, "account": "carol", "requestId": "r0"});
    ok(alice, nim_signaling_invite, first);
    assert_eq!(next_event(&carol_rx)["requestId"], "r0");
    let receipt = next_event(&alice_rx);
    assert_eq!(
        (&receipt["eventType"], &receipt["requestId"]),
        (&json!("INVITE_DELIVERED"), &json!("r0")),
        "{receipt}"
    );

    // Refused up front: a repeated account (414, no callback).
    let twice =
        cs(&json!({"channelId": room, "accounts": ["bob", "bob"], "requestId": "g"}).to_string());
    let rc = unsafe { nim_signaling_invite_many(alice, twice.as_ptr(), None, null_mut()) };
    assert_eq!(rc, 414);

    let many = json!({"channelId": room, "accounts": ["bob", "carol", "nobody"],
                      "requestId": "g1", "busyCheck": true, "attachExt": "team"});
    let r = ok(alice, nim_signaling_invite_many, many);
    assert_eq!(
        r,
        json!({"code": 200, "results": [
            {"account": "bob", "code": 200},
            {"account": "carol", "code": 10430},
            {"account": "nobody", "code": 10201},
        ]})
    );
    let inv = next_event(&bob_rx);
    assert_eq!(
        (&inv["eventType"], &inv["requestId"], &inv["attachExt"]),
        (&json!("INVITE"), &json!("g1"), &json!("team")),
        "{inv}"
    );
    let receipt = next_event(&alice_rx);
    assert_eq!(
        (
            &receipt["eventType"],
            &receipt["requestId"],
            &receipt["fromAccountId"]
        ),
        (&json!("INVITE_DELIVERED"), &json!("g1"), &json!("bob")),
        "{receipt}"
    );
    assert!(
        carol_rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "the busy invitee is not rung"
    );

    // bob calls alice back while g1 rings: he joins her room.
    let back = json!({"type": 1, "account": "alice", "requestId": "b1", "uid": 9});
    let r = ok(bob, nim_signaling_call, back);
    assert_eq!((cid(&r), &r["glare"]), (room.clone(), &json!(true)), "{r}");
    let accept = next_event(&alice_rx);
    assert_eq!(
        (
            &accept["eventType"],
            &accept["requestId"],
            &accept["fromAccountId"]
        ),
        (&json!("ACCEPT"), &json!("g1"), &json!("bob")),
        "{accept}"
    );
    let join = next_event(&alice_rx);
    assert_eq!(join["eventType"], "ROOM_JOIN", "{join}");
    assert_eq!(join["member"]["uid"], 9, "{join}");
    unsafe {
        nim_signaling_client_free(alice);
        nim_signaling_client_free(bob);
        nim_signaling_client_free(carol);
    }
}

/// The additions to NIM through the C ABI: nim_signaling_query_invitations
/// lists both sides of an invitation, and nim_signaling_update_channel
/// changes the ext (the other member hears CHANNEL_UPDATE at its notify
/// callback; an outsider gets 10406).
#[test]
fn query_invitations_and_update_channel_through_the_c_abi() {
    let srv = Server::start("{}");
    let (alice, alice_rx) = logged_in_listening(&srv.url(), "alice");
    let (bob, bob_rx) = logged_in_listening(&srv.url(), "bob");
    let cid = cid(&ok(
        alice,
        nim_signaling_call,
        json!({"type": 1, "account": "bob", "requestId": "q1"}),
    ));
    assert_eq!(next_event(&bob_rx)["eventType"], "INVITE");
    assert_eq!(next_event(&alice_rx)["eventType"], "INVITE_DELIVERED");
    let sent = ok(alice, nim_signaling_query_invitations, json!({}));
    let received = ok(bob, nim_signaling_query_invitations, json!({}));
    for (r, list, other) in [(&sent, "sent", "bob"), (&received, "received", "alice")] {
        let items = r[list].as_array().unwrap_or_else(|| panic!("{r}"));
        assert_eq!(items.len(), 1, "{r}");
        assert_eq!(items[0]["channelId"], cid.as_str(), "{r}");
        assert_eq!(items[0]["account"], other, "{r}");
        assert_eq!(items[0]["requestId"], "q1", "{r}");
        assert_eq!(items[0]["state"], "pending", "{r}");
    }
    assert_eq!(sent["received"], json!([]));
    assert_eq!(received["sent"], json!([]));

    ok(
        bob,
        nim_signaling_accept,
        json!({"channelId": cid, "account": "alice", "requestId": "q1", "autoJoin": true}),
    );
    assert_eq!(next_event(&alice_rx)["eventType"], "ACCEPT");
    assert_eq!(next_event(&alice_rx)["eventType"], "ROOM_JOIN");
    let r = ok(
        alice,
        nim_signaling_update_channel,
        json!({"channelId": cid, "ext": "topic"}),
    );
    assert_eq!(r["channelInfo"]["ext"], "topic", "{r}");
    let ev = next_event(&bob_rx);
    assert_eq!(
        (ev["eventType"].as_str(), ev["eventTypeCode"].as_i64()),
        (Some("CHANNEL_UPDATE"), Some(11)),
        "{ev}"
    );
    assert_eq!(ev["channelInfo"]["ext"], "topic", "{ev}");
    assert_eq!(ev["fromAccountId"], "alice", "{ev}");
    let carol = logged_in(&srv.url(), "carol");
    let (code, r) = request(
        carol,
        nim_signaling_update_channel,
        json!({"channelId": cid, "ext": "x"}),
    );
    assert_eq!(code, 10406, "{r}");
    let state = ok(bob, nim_signaling_query_invitations, json!({}));
    assert_eq!(state["received"][0]["state"], "accepted", "{state}");
    unsafe {
        nim_signaling_client_free(alice);
        nim_signaling_client_free(bob);
        nim_signaling_client_free(carol);
    }
}

/// registerPushToken through the C ABI, and the push codes it leads to: the
/// gateway gets the token bob registered; 10201 when it takes the push,
/// 10202 when it refuses.
#[test]
fn push_tokens_and_push_codes_through_the_c_abi() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let gw = rt.block_on(Gateway::start());
    let srv = Server::start(&json!({"push": {"url": gw.url, "timeoutMs": 2000}}).to_string());
    let bob = logged_in(&srv.url(), "bob");
    // Bad params are refused by the call itself, without a callback.
    let bad = cs(r#"{"token": 5}"#);
    let r = unsafe { nim_signaling_register_push_token(bob, bad.as_ptr(), None, null_mut()) };
    assert_eq!(r, 414);
    ok(
        bob,
        nim_signaling_register_push_token,
        json!({"token": "tok-c", "provider": "apns"}),
    );
    unsafe { nim_signaling_client_free(bob) };
    let alice = logged_in(&srv.url(), "alice");
    let room = cid(&ok(alice, nim_signaling_create, json!({"type": 1})));
    ok(alice, nim_signaling_join, json!({"channelId": room}));
    let push = json!({"needPush": true, "pushTitle": "hi"});
    // bob's connection closing reaches the server soon; until then the
    // invitation rings (200) and nothing is pushed.
    let deadline = Instant::now() + WAIT;
    let mut n = 0;
    let code = loop {
        n += 1;
        let inv = json!({"channelId": room, "account": "bob", "requestId": format!("r{n}"), "pushInfo": push});
        let (code, _) = request(alice, nim_signaling_invite, inv);
        if code != 200 || Instant::now() > deadline {
            break code;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code, 10201, "pushed");
    let bodies = gw.bodies();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert_eq!(bodies[0]["devices"][0]["token"], "tok-c", "{}", bodies[0]);
    assert_eq!(bodies[0]["devices"][0]["provider"], "apns");
    assert_eq!(bodies[0]["invitation"]["requestId"], format!("r{n}"));
    gw.answer_with(503, Duration::ZERO);
    let inv = json!({"channelId": room, "account": "bob", "requestId": "last", "pushInfo": push});
    let (code, r) = request(alice, nim_signaling_invite, inv);
    assert_eq!(code, 10202, "{r}");
    assert!(r["message"].is_string(), "{r}");
    unsafe { nim_signaling_client_free(alice) };
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

/// Each of `slots` was called exactly once.
fn assert_each_called_once(slots: &[AtomicU32], what: &str) {
    assert!(
        slots.iter().all(|s| s.load(Ordering::SeqCst) == 1),
        "{what}"
    );
}

/// Polls every 20 ms until `done` holds or WAIT has passed (the caller
/// then checks what it waited for).
fn poll_until(done: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every one of `slots` has been called at least once.
fn all_called(slots: &[AtomicU32]) -> bool {
    slots.iter().all(|s| s.load(Ordering::SeqCst) > 0)
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
    assert_each_called_once(&slots, "answered: each callback exactly once");

    // Timed out: nobody answers within 150 ms.
    let (url, _t) = black_hole();
    let c = new_client(json!({"serverUrl": url, "account": "patient", "requestTimeoutMs": 150}));
    login(c);
    let slots = counters(300);
    start_many(c, &slots);
    poll_until(|| all_called(&slots));
    unsafe { nim_signaling_client_free(c) };
    assert_each_called_once(&slots, "timed out: each callback exactly once");

    // Freed mid-flight: pending requests complete before free returns.
    let c = new_client(json!({"serverUrl": url, "account": "quitter", "requestTimeoutMs": 60000}));
    login(c);
    let slots = counters(300);
    start_many(c, &slots);
    unsafe { nim_signaling_client_free(c) };
    assert_each_called_once(
        &slots,
        "freed: each callback exactly once, before free returned",
    );
}

/// user_data for the free-from-callback test.
struct SelfFree {
    client: std::sync::atomic::AtomicPtr<nim_signaling_client>,
    done: Mutex<Sender<()>>,
}

unsafe extern "C" fn free_me(_code: i32, _json: *const c_char, ud: *mut c_void) {
    // SAFETY: `ud` is the user data the test registered: a `keep`-ed
    // value of this type, alive for the whole process.
    let s = unsafe { &*(ud as *const SelfFree) };
    // SAFETY: the client this callback belongs to, freed once (swapped out).
    unsafe { nim_signaling_client_free(s.client.swap(null_mut(), Ordering::SeqCst)) };
    let _ = s.done.lock().unwrap().send(());
}

unsafe extern "C" fn create_from_callback(code: i32, _json: *const c_char, ud: *mut c_void) {
    // Login finished: start another request from inside the callback.
    // SAFETY: `ud` is the user data the test registered: a `keep`-ed
    // value of this type, alive for the whole process.
    let s = unsafe { &*(ud as *const SelfFree) };
    assert_eq!(code, 200);
    // SAFETY: a live client (only `free_me` frees it, later) and a
    // NUL-terminated literal.
    let r = unsafe {
        nim_signaling_create(
            s.client.load(Ordering::SeqCst),
            c"{\"type\":1}".as_ptr(),
            Some(free_me),
            ud,
        )
    };
    assert_eq!(r, 200);
}

#[test]
fn api_calls_and_free_from_inside_callbacks() {
    let srv = Server::start("{}");
    let c = new_client(json!({"serverUrl": srv.url(), "account": "reentrant"}));
    let (tx, rx) = channel();
    let s: &'static SelfFree = keep(SelfFree {
        client: std::sync::atomic::AtomicPtr::new(c),
        done: Mutex::new(tx),
    });
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
    login(c);
    let slots = counters(300);
    start_many(c, &slots);
    drop(srv); // stops the server with requests in flight
    poll_until(|| all_called(&slots));
    assert_each_called_once(&slots, "each callback exactly once before free");
    // Not logged in any more: new requests are refused up front.
    let p = cs(r#"{"channelId":"x"}"#);
    assert_eq!(
        unsafe { nim_signaling_join(c, p.as_ptr(), Some(count), ud(&slots[0])) },
        415
    );
    unsafe { nim_signaling_client_free(c) };
    assert_each_called_once(&slots, "and nothing more after it");
}

#[test]
fn too_many_outstanding_requests_are_refused_up_front() {
    let (url, _t) = black_hole();
    let c = new_client(json!({"serverUrl": url, "account": "flood", "requestTimeoutMs": 60000}));
    login(c);
    let slots = counters(::nim_signaling_client::MAX_IN_FLIGHT);
    start_many(c, &slots);
    let refused = AtomicU32::new(0);
    let p = cs(r#"{"channelId":"nowhere"}"#);
    let r = unsafe { nim_signaling_query_channel_info(c, p.as_ptr(), Some(count), ud(&refused)) };
    assert_eq!(r, 416, "one more than the limit");
    unsafe { nim_signaling_client_free(c) };
    assert_each_called_once(&slots, "the accepted ones complete exactly once");
    assert_eq!(
        refused.load(Ordering::SeqCst),
        0,
        "the refused one never calls back"
    );
}

// ---------------------------------------------------------------------------
// Delivery guarantees through the C ABI: a fault-injecting proxy between the
// C clients and the embedded server.

/// "ws://127.0.0.1:PORT" → the socket address (for the proxy's target).
fn addr_of(url: &str) -> SocketAddr {
    url.trim_start_matches("ws://")
        .parse()
        .expect("ws://IP:PORT")
}

/// A proxy in front of `target`; `rt` must outlive it.
fn proxy_to(rt: &tokio::runtime::Runtime, target: &str) -> FaultProxy {
    rt.block_on(FaultProxy::start(addr_of(target)))
}

/// Logs `c` in and waits for the result.
fn login(c: *mut nim_signaling_client) {
    let (ib, rx) = inbox();
    assert_eq!(
        unsafe { nim_signaling_login(c, Some(on_result), ud(ib)) },
        200
    );
    let (code, body, _) = rx.recv_timeout(WAIT).expect("login callback");
    assert_eq!(code, 200, "login: {body}");
}

/// Starts one request and waits for its callback: (code, result object).
fn request(c: *mut nim_signaling_client, op: OpFn, params: Value) -> (i32, Value) {
    let (ib, rx) = inbox();
    let p = cs(&params.to_string());
    assert_eq!(
        unsafe { op(c, p.as_ptr(), Some(on_result), ud(ib)) },
        200,
        "{params}"
    );
    let (code, body, thread) = rx.recv_timeout(WAIT).expect("result callback");
    assert_ne!(
        thread,
        std::thread::current().id(),
        "callbacks never run on the calling thread"
    );
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["code"], code, "{body}");
    (code, v)
}

/// Like `request`, but the code must be 200.
fn ok(c: *mut nim_signaling_client, op: OpFn, params: Value) -> Value {
    let (code, v) = request(c, op, params.clone());
    assert_eq!(code, 200, "{params}: {v}");
    v
}

/// A room `creator` created (type 1) and joined, and `other` joined too:
/// its channelId.
fn room_with(creator: *mut nim_signaling_client, other: *mut nim_signaling_client) -> String {
    let cid = cid(&ok(creator, nim_signaling_create, json!({"type": 1})));
    ok(creator, nim_signaling_join, json!({"channelId": cid}));
    ok(other, nim_signaling_join, json!({"channelId": cid}));
    cid
}

/// The JSON strings received on `rx` until `done` says the list is
/// complete; panics with what was seen if that takes longer than WAIT.
fn collect_until(
    rx: &Receiver<Report>,
    what: &str,
    mut done: impl FnMut(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    while !done(&seen) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((_, s, _)) => seen.push(serde_json::from_str(&s).unwrap()),
            Err(_) => panic!("{what}: not within {WAIT:?}; seen {}: {seen:?}", seen.len()),
        }
    }
    seen
}

/// Like `collect_until`, but also takes what follows as long as more keeps
/// coming (a quiet 500 ms ends it), and `done` must hold at the end.
fn settled(rx: &Receiver<Report>, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    let mut seen = collect_until(rx, what, &done);
    loop {
        match rx.recv_timeout(Duration::from_millis(500)) {
            Ok((_, s, _)) => seen.push(serde_json::from_str(&s).unwrap()),
            Err(_) if done(&seen) => return seen,
            Err(_) if Instant::now() > deadline => {
                panic!("{what}: not within {WAIT:?}; seen {}: {seen:?}", seen.len())
            }
            Err(_) => {}
        }
    }
}

/// What one request's callback reported: how often, and the last code.
#[derive(Default)]
struct Outcome {
    calls: AtomicU32,
    code: AtomicI32,
}

unsafe extern "C" fn record(code: i32, _json: *const c_char, ud: *mut c_void) {
    // SAFETY: `ud` is the user data the test registered: a `keep`-ed
    // value of this type, alive for the whole process.
    let o = unsafe { &*(ud as *const Outcome) };
    o.code.store(code, Ordering::SeqCst);
    o.calls.fetch_add(1, Ordering::SeqCst);
}

/// Kept for the whole process, like `inbox`.
fn outcomes(n: usize) -> &'static [Outcome] {
    keep((0..n).map(|_| Outcome::default()).collect::<Vec<_>>())
}

fn events_of_type<'a>(events: &'a [Value], t: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["eventType"] == t).collect()
}

#[test]
fn cut_and_resume_through_the_c_abi() {
    use rand::Rng;
    const N: usize = 300;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let srv = Server::start("{}");
    let bob_proxy = proxy_to(&rt, &srv.url());
    let alice_proxy = proxy_to(&rt, &srv.url());

    let bob = client_at(&bob_proxy.url(), "bob");
    let alice = client_at(&alice_proxy.url(), "alice");
    let bob_rx = notifications(bob, nim_signaling_reg_online_notify_cb);
    let bob_state_rx = notifications(bob, nim_signaling_reg_connection_state_cb);
    let alice_state_rx = notifications(alice, nim_signaling_reg_connection_state_cb);
    login(bob);
    login(alice);

    let cid = room_with(alice, bob);

    // 300 controls from alice to bob. Phase 1 breaks alice's connection at
    // two chosen moments; phase 2 sends the rest in bursts with random
    // pauses while another thread cuts bob's and alice's connections in
    // turn at random moments.
    let results = outcomes(N);
    let send = |i: usize| {
        let p = json!({"channelId": cid, "account": "bob", "attachExt": i.to_string()});
        let p = cs(&p.to_string());
        let r = unsafe { nim_signaling_control(alice, p.as_ptr(), Some(record), ud(&results[i])) };
        assert_eq!(r, 200, "control {i} started");
    };
    let mut i = 0;

    // (a) Applied, but the answers are lost: every chunk through alice's
    // proxy is held 200 ms, so bob has the first control of the burst well
    // before alice's answers get through; the cut then loses those answers.
    // The resent copies must be answered from the server's record: applying
    // them again would give bob duplicates.
    alice_proxy.set_delay(Duration::from_millis(200));
    let first = i;
    for _ in 0..20 {
        send(i);
        i += 1;
    }
    let early = collect_until(&bob_rx, "bob got the delayed burst", |seen| {
        seen.iter()
            .any(|e| e["attachExt"] == first.to_string().as_str())
    });
    assert_eq!(
        results[first].calls.load(Ordering::SeqCst),
        0,
        "the answer is still held by the proxy"
    );
    alice_proxy.cut();
    alice_proxy.set_delay(Duration::ZERO);

    // (b) Lost before being applied: the burst leaves alice's client but
    // the proxy holds it and drops it with the cut; it must be sent again.
    alice_proxy.stall(true);
    for _ in 0..20 {
        send(i);
        i += 1;
    }
    std::thread::sleep(Duration::from_millis(50));
    alice_proxy.cut();
    alice_proxy.stall(false);

    let sending = std::sync::atomic::AtomicBool::new(true);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut rng = rand::thread_rng();
            let mut k = 0;
            while sending.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(rng.gen_range(20..120)));
                let victim = if k % 2 == 0 { &bob_proxy } else { &alice_proxy };
                // Only where a connection is up (or being set up), so that
                // most cuts land.
                if victim.open_connections() > 0 {
                    victim.cut();
                    k += 1;
                }
            }
        });
        let mut rng = rand::thread_rng();
        while i < N {
            let burst = rng.gen_range(10..40).min(N - i);
            for _ in 0..burst {
                send(i);
                i += 1;
            }
            std::thread::sleep(Duration::from_millis(rng.gen_range(30..150)));
        }
        sending.store(false, Ordering::SeqCst);
    });

    // Every control completes exactly once, with 200 (a copy resent after a
    // reconnect is answered from the server's record, not applied again).
    poll_until(|| results.iter().all(|o| o.calls.load(Ordering::SeqCst) > 0));
    let bad: Vec<_> = results
        .iter()
        .enumerate()
        .filter(|(_, o)| {
            o.calls.load(Ordering::SeqCst) != 1 || o.code.load(Ordering::SeqCst) != 200
        })
        .map(|(i, o)| {
            (
                i,
                o.calls.load(Ordering::SeqCst),
                o.code.load(Ordering::SeqCst),
            )
        })
        .collect();
    assert!(
        bad.is_empty(),
        "(index, calls, code) not (_, 1, 200): {bad:?}"
    );

    // Bob got each control exactly once, in order, across his reconnects.
    let rest = collect_until(&bob_rx, "bob's 300 controls", |seen| {
        events_of_type(&early, "CONTROL").len() + events_of_type(seen, "CONTROL").len() >= N
    });
    // Anything extra (a duplicate) would arrive right behind them.
    let late: Vec<Value> =
        std::iter::from_fn(|| bob_rx.recv_timeout(Duration::from_millis(300)).ok())
            .map(|(_, s, _)| serde_json::from_str(&s).unwrap())
            .collect();
    let events: Vec<Value> = early.into_iter().chain(rest).collect();
    let controls: Vec<&Value> = events_of_type(&events, "CONTROL")
        .into_iter()
        .chain(events_of_type(&late, "CONTROL"))
        .collect();
    let exts: Vec<&str> = controls
        .iter()
        .map(|e| e["attachExt"].as_str().unwrap_or("?"))
        .collect();
    let want: Vec<String> = (0..N).map(|i| i.to_string()).collect();
    assert_eq!(
        exts, want,
        "bob's CONTROL attachExt: 0..299, each once, in order"
    );
    assert!(
        controls
            .iter()
            .all(|e| e["eventTypeCode"] == 8 && e["fromAccountId"] == "alice"),
        "{controls:?}"
    );

    // Both state callbacks: connecting, connected, then for every cut that
    // landed reconnecting → connected, each a seamless resume (no resync).
    for (who, rx) in [("bob", &bob_state_rx), ("alice", &alice_state_rx)] {
        let states = settled(rx, &format!("{who} settled on connected"), |seen| {
            let n = |s: &str| seen.iter().filter(|v| v["state"] == s).count();
            n("reconnecting") >= 1 && n("connected") == n("reconnecting") + 1
        });
        let names: Vec<&str> = states
            .iter()
            .map(|v| v["state"].as_str().unwrap())
            .collect();
        eprintln!(
            "{who}: {} reconnects, all resumed",
            names.iter().filter(|n| **n == "reconnecting").count()
        );
        assert_eq!(
            &names[..2],
            ["connecting", "connected"],
            "{who}: {states:?}"
        );
        for pair in names[2..].chunks(2) {
            assert_eq!(pair, ["reconnecting", "connected"], "{who}: {states:?}");
        }
        for s in &states {
            assert!(
                s.get("resync").is_none(),
                "{who} resumed without a gap: {s}"
            );
            if s["state"] == "connected" {
                assert_eq!(s["code"], 200, "{who}: {s}");
            }
        }
    }

    unsafe {
        nim_signaling_client_free(alice);
        nim_signaling_client_free(bob);
    }
    assert!(
        results.iter().all(|o| o.calls.load(Ordering::SeqCst) == 1),
        "nothing more after free"
    );
    drop(srv);
    drop((bob_proxy, alice_proxy));
}

#[test]
fn server_restart_is_reported_as_resync_through_the_c_abi() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let srv_a = Server::start(r#"{"listen":"127.0.0.1:0"}"#);
    let proxy = proxy_to(&rt, &srv_a.url());

    let bob = client_at(&proxy.url(), "bob");
    let bob_rx = notifications(bob, nim_signaling_reg_online_notify_cb);
    // State changes and channels syncs on one queue, to see their order.
    let (bob_life, life_rx) = inbox();
    listen(bob, nim_signaling_reg_connection_state_cb, bob_life);
    listen(bob, nim_signaling_reg_channels_sync_cb, bob_life);
    login(bob);
    let first = collect_until(&life_rx, "first login's channels sync", |seen| {
        seen.iter().any(|v| v.get("channels").is_some())
    });
    assert_eq!(first[0]["state"], "connecting", "{first:?}");

    // Bob sees a few events of A, so he has a seq in A's log that B's
    // events will not exceed: after the restart they must not be taken for
    // duplicates.
    let alice = logged_in(&srv_a.url(), "alice");
    let cid = room_with(alice, bob);
    for i in 0..5 {
        let p = json!({"channelId": cid, "account": "bob", "attachExt": format!("a{i}")});
        ok(alice, nim_signaling_control, p);
    }
    let on_a = collect_until(&bob_rx, "bob's controls from A", |seen| {
        events_of_type(seen, "CONTROL").len() >= 5
    });
    assert_eq!(events_of_type(&on_a, "CONTROL")[4]["attachExt"], "a4");
    unsafe { nim_signaling_client_free(alice) };

    // Restart: A goes away with its state, B comes up in its place.
    drop(srv_a);
    let srv_b = Server::start(r#"{"listen":"127.0.0.1:0"}"#);
    proxy.set_target(addr_of(&srv_b.url()));

    let after = collect_until(&life_rx, "connected with resync, then channels", |seen| {
        seen.iter()
            .position(|v| v.get("resync").is_some())
            .map(|i| seen.len() > i + 1)
            .unwrap_or(false)
    });
    let i = after
        .iter()
        .position(|v| v.get("resync").is_some())
        .unwrap();
    assert_eq!(
        after[i],
        json!({"state": "connected", "code": 200, "resync": "stateLost"}),
        "{after:?}"
    );
    assert_eq!(after[0]["state"], "reconnecting", "{after:?}");
    assert!(
        after[1..i].iter().all(|v| v["state"] == "reconnecting"),
        "only reconnecting before it: {after:?}"
    );
    assert_eq!(
        after[i + 1],
        json!({"channels": []}),
        "channels sync right after it (B has no rooms): {after:?}"
    );

    // An event of B reaches bob's online callback.
    let alice = logged_in(&srv_b.url(), "alice");
    ok(
        alice,
        nim_signaling_call,
        json!({"type": 1, "account": "bob", "requestId": "after-restart"}),
    );
    let on_b = collect_until(&bob_rx, "bob's INVITE from B", |seen| {
        !events_of_type(seen, "INVITE").is_empty()
    });
    let invite = events_of_type(&on_b, "INVITE")[0];
    assert_eq!(invite["fromAccountId"], "alice", "{invite}");
    assert_eq!(invite["requestId"], "after-restart", "{invite}");
    assert!(
        events_of_type(&on_b, "CONTROL").is_empty(),
        "nothing of A again: {on_b:?}"
    );

    unsafe {
        nim_signaling_client_free(alice);
        nim_signaling_client_free(bob);
    }
    drop(srv_b);
    drop(proxy);
}

#[test]
fn invite_timeout_event_through_the_c_abi() {
    let srv = Server::start(r#"{"inviteTtlMs":300}"#);
    let (alice, alice_rx) = logged_in_listening(&srv.url(), "alice");
    let (bob, bob_rx) = logged_in_listening(&srv.url(), "bob");
    let r = ok(
        alice,
        nim_signaling_call,
        json!({"type": 1, "account": "bob", "requestId": "ring"}),
    );
    let cid = cid(&r);
    for (who, rx) in [("alice", &alice_rx), ("bob", &bob_rx)] {
        let seen = collect_until(rx, &format!("{who}'s INVITE_TIMEOUT"), |seen| {
            !events_of_type(seen, "INVITE_TIMEOUT").is_empty()
        });
        let e = events_of_type(&seen, "INVITE_TIMEOUT")[0];
        assert_eq!(e["eventTypeCode"], 9, "{who}: {e}");
        assert_eq!(e["fromAccountId"], "alice", "{who}: {e}");
        assert_eq!(e["toAccount"], "bob", "{who}: {e}");
        assert_eq!(e["requestId"], "ring", "{who}: {e}");
        assert_eq!(e["channelInfo"]["channelId"], cid.as_str(), "{who}: {e}");
    }
    // Exactly once: nothing more after a few timer ticks.
    std::thread::sleep(Duration::from_millis(600));
    for (who, rx) in [("alice", &alice_rx), ("bob", &bob_rx)] {
        let more: Vec<String> = rx.try_iter().map(|(_, s, _)| s).collect();
        assert!(
            more.iter().all(|s| !s.contains("INVITE_TIMEOUT")),
            "{who}: second INVITE_TIMEOUT: {more:?}"
        );
    }
    // The invitation is gone: accepting it now fails with 10408.
    let (code, v) = request(
        bob,
        nim_signaling_accept,
        json!({"channelId": cid, "account": "alice", "requestId": "ring"}),
    );
    assert_eq!(code, 10408, "{v}");
    unsafe {
        nim_signaling_client_free(alice);
        nim_signaling_client_free(bob);
    }
}

/// A request whose frame is over the server's maxFrameBytes (a sync with a
/// 100 KB unknown field passes validation) is refused at once with 414 and
/// no callback, instead of going out, closing the connection (1009) and
/// being sent again on every reconnect. The limit is the one the login
/// reply advertised: a server with a larger one takes the same request.
#[test]
fn a_request_over_max_frame_bytes_gets_414_at_once_and_no_reconnect() {
    let big = json!({"junk": "x".repeat(100_000)});
    let srv = Server::start("{}");
    let c = logged_in(&srv.url(), "bigframe");
    let states = notifications(c, nim_signaling_reg_connection_state_cb);
    let calls = keep(AtomicU32::new(0));
    let cb = Some(count as unsafe extern "C" fn(i32, *const c_char, *mut c_void));
    let p = cs(&big.to_string());
    let started = Instant::now();
    assert_eq!(
        unsafe { nim_signaling_sync(c, p.as_ptr(), cb, ud(calls)) },
        414
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "refused at once"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(calls.load(Ordering::SeqCst), 0, "no callback for a refusal");
    // (Registering reports the current state, connected, once.)
    let changes: Vec<String> = states.try_iter().map(|(_, s, _)| s).collect();
    assert!(
        changes.iter().all(|s| !s.contains("reconnecting")) && changes.len() <= 1,
        "no reconnect cycle: {changes:?}"
    );
    // The connection is still the one logged in: a normal request works.
    ok(c, nim_signaling_sync, json!({}));
    unsafe { nim_signaling_client_free(c) };

    let roomy = Server::start(r#"{"maxFrameBytes": 262144}"#);
    let c = logged_in(&roomy.url(), "bigframe");
    ok(c, nim_signaling_sync, big);
    unsafe { nim_signaling_client_free(c) };
}
