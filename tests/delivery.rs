//! Delivery guarantees under faults: lost connections, silent networks, a
//! restarted or shutting-down server, trimmed logs, retried requests,
//! invitations that run out or whose caller vanished, and readers that stop
//! reading. Every test checks what a user of the client sees: codes, event
//! fields, connection states, and events that arrive exactly once (or
//! provably not at all).

mod common;
use common::proxy::FaultProxy;
use common::*;
use nim_signaling_client::{Completer, ConnState, Notification, StateChange};
use rand::Rng;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// How long "nothing more arrives" is watched for.
const QUIET: Duration = Duration::from_millis(500);

// ---------------------------------------------------------------------------
// Helpers

/// The next notification of any kind, state changes included.
async fn next_any(c: &mut TestClient) -> Notification {
    tokio::time::timeout(WAIT, c.rx.recv())
        .await
        .unwrap_or_else(|_| panic!("{}: no notification within {WAIT:?}", c.account))
        .expect("notification channel open")
}

/// The very next notification must be a change to state `want`.
async fn expect_next_state(c: &mut TestClient, want: ConnState) -> StateChange {
    match next_any(c).await {
        Notification::ConnectionState(s) if s.state == want => s,
        other => panic!("{}: expected state {want:?}, got {other:?}", c.account),
    }
}

/// The connection was lost and came back: the next notifications must be
/// exactly Reconnecting and then Connected (nothing in between). Returns
/// (Reconnecting, Connected).
async fn expect_reconnect(c: &mut TestClient) -> (StateChange, StateChange) {
    let lost = expect_next_state(c, ConnState::Reconnecting).await;
    let back = expect_next_state(c, ConnState::Connected).await;
    (lost, back)
}

/// An online event (its JSON text) that must be a CONTROL whose attachExt
/// is an index: that index.
fn control_index(event: &str) -> usize {
    let ev: Value = serde_json::from_str(event).expect("event is JSON");
    assert_eq!(ev["eventType"], "CONTROL", "{ev}");
    let tag = ev["attachExt"].as_str().unwrap_or_else(|| panic!("{ev}"));
    tag.parse()
        .unwrap_or_else(|_| panic!("attachExt is no index: {ev}"))
}

/// A server with `server_cfg`; alice (a1) logged in to it directly and bob
/// (b1) through a fault proxy, each with extra client config; and a room
/// alice created and joined. Returns (server, proxy, alice, bob, room).
async fn alice_direct_bob_via_proxy(
    server_cfg: Value,
    alice_cfg: Value,
    bob_cfg: Value,
) -> (TestServer, FaultProxy, TestClient, TestClient, String) {
    let srv = start_server(server_cfg).await;
    let proxy = FaultProxy::start(srv.local_addr()).await;
    let alice = login_with(srv.url(), "alice", "a1", alice_cfg).await;
    let bob = login_with(&proxy.url(), "bob", "b1", bob_cfg).await;
    let room = alice.create_joined(None).await;
    (srv, proxy, alice, bob, room)
}

/// A server with default settings, alice (a1) and bob (b1) logged in to it,
/// and a room bob created: (server, alice, bob, room).
async fn alice_and_bob_with_a_room() -> (TestServer, TestClient, TestClient, String) {
    let srv = start_server(json!({})).await;
    let alice = login(srv.url(), "alice", "a1").await;
    let bob = login(srv.url(), "bob", "b1").await;
    let bobs = bob.create(None).await;
    (srv, alice, bob, bobs)
}

/// Shuts the server down, failing (instead of hanging) if it cannot.
async fn stop(srv: TestServer) {
    tokio::time::timeout(WAIT, srv.shutdown())
        .await
        .expect("server shut down in time");
}

/// Logs in a raw WebSocket (optionally naming a client instance); returns
/// the socket and the login result.
async fn raw_login(
    url: &str,
    account: &str,
    device: &str,
    instance: Option<&str>,
) -> (RawWs, Value) {
    let mut ws = raw_connect(url).await;
    let mut p = json!({"account": account, "token": "", "deviceId": device});
    if let Some(i) = instance {
        p["instance"] = i.into();
    }
    let r = raw_request(&mut ws, 0, "login", p)
        .await
        .expect("login reply");
    assert_eq!(r["code"], 200, "raw login of {account}/{device}: {r}");
    (ws, r)
}

/// Sends a request frame carrying `ack` and returns its reply's result.
async fn raw_request_ack(ws: &mut RawWs, id: u64, op: &str, params: Value, ack: u64) -> Value {
    let frame = json!({"t": "req", "id": id, "op": op, "params": params, "ack": ack});
    raw_request_frame(ws, frame).await.expect("reply")
}

/// Closes a raw WebSocket politely.
async fn raw_close(mut ws: RawWs) {
    let _ = ws.close(None).await;
}

/// Submits `params` (one per element) as requests `op` of `c`, in order and
/// without waiting for replies: request i not before `i * pace` from now,
/// and at most `window` outstanding. Returns the replies' codes and texts
/// by index.
async fn pipeline(
    c: &TestClient,
    op: &'static str,
    params: Vec<Value>,
    window: usize,
    pace: Duration,
) -> Vec<(i32, String)> {
    let n = params.len();
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, i32, String)>();
    let mut results: Vec<Option<(i32, String)>> = vec![None; n];
    let mut params = params.into_iter().enumerate().peekable();
    let (mut outstanding, mut done) = (0usize, 0usize);
    let t0 = tokio::time::Instant::now();
    let reply_limit = Duration::from_secs(30);
    let mut last_reply = tokio::time::Instant::now();
    while done < n {
        let due = params.peek().map(|(i, _)| t0 + pace * *i as u32);
        let now = tokio::time::Instant::now();
        if outstanding < window && due.is_some_and(|d| d <= now) {
            let (i, p) = params.next().unwrap();
            let tx = tx.clone();
            let completer = Completer::new(move |code, text| {
                let _ = tx.send((i, code, text));
            });
            if c.client.request_with(op, p, completer).is_err() {
                panic!("{}: request {i} refused up front", c.account);
            }
            outstanding += 1;
            continue;
        }
        let wake = match due {
            Some(d) if outstanding < window => d,
            _ => last_reply + reply_limit,
        };
        tokio::select! {
            r = rx.recv() => {
                let (i, code, text) = r.expect("reply channel open");
                assert!(results[i].is_none(), "{}: request {i} completed twice", c.account);
                results[i] = Some((code, text));
                outstanding -= 1;
                done += 1;
                last_reply = tokio::time::Instant::now();
            }
            _ = tokio::time::sleep_until(wake) => {
                assert!(
                    tokio::time::Instant::now() < last_reply + reply_limit,
                    "{}: no reply for {reply_limit:?}; {done} of {n} answered, {outstanding} outstanding",
                    c.account
                );
            }
        }
    }
    results.into_iter().map(|r| r.unwrap()).collect()
}

/// The connection was lost and the stream resumed: exactly Reconnecting
/// and then Connected without a resync, then the channels sync (returned).
async fn expect_resumed(c: &mut TestClient) -> Value {
    let (_, back) = expect_reconnect(c).await;
    assert_eq!(
        back.resync, None,
        "{}: the stream resumed: {back:?}",
        c.account
    );
    c.expect_channels().await
}

/// Every reply of a `pipeline` is 200.
fn assert_all_ok(replies: &[(i32, String)]) {
    for (i, (code, text)) in replies.iter().enumerate() {
        assert_eq!(*code, 200, "#{i}: {text}");
    }
}

// ---------------------------------------------------------------------------
// 1. A connection lost while an event is on its way

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invite_lost_in_a_cut_connection_arrives_once_after_reconnect() {
    let (srv, proxy, alice, mut bob, room) =
        alice_direct_bob_via_proxy(json!({}), json!({}), json!({})).await;

    // Bob's network freezes: his session still counts as online.
    proxy.stall(true);
    let sent = srv.events_sent();
    let sent_before = sent.get();
    alice
        .ok(
            "invite",
            json!({"channelId": room, "account": "bob", "requestId": "r1", "attachExt": "ring"}),
        )
        .await;
    // The server has written the INVITE into the frozen connection; lose it.
    wait_until("the INVITE to be written", || {
        let sent = sent.clone();
        async move { sent.get() > sent_before }
    })
    .await;
    proxy.cut();
    proxy.stall(false);

    let ch = expect_resumed(&mut bob).await;
    assert_eq!(ch["channels"], json!([]), "{ch}");
    let ev = bob.expect_invite(&room, "alice", "r1").await;
    assert_eq!(ev["toAccount"], "bob", "{ev}");
    assert_eq!(ev["attachExt"], "ring", "{ev}");
    bob.expect_silence(QUIET).await;

    // The invitation is answerable as usual.
    bob.ok("accept", invitation(&room, "alice", "r1")).await;
    assert!(proxy.accepted() >= 2, "bob came back through the proxy");
    stop(srv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invite_delivered_before_a_cut_is_not_repeated_after_reconnect() {
    let (srv, proxy, alice, mut bob, room) =
        alice_direct_bob_via_proxy(json!({}), json!({}), json!({})).await;
    let bobs = bob.create(None).await;

    alice.invite_rings(&mut bob, &room, "r1").await;

    proxy.cut();
    expect_resumed(&mut bob).await;
    bob.expect_silence(QUIET).await;
    // Nothing is queued for bob: the next thing he gets is a fresh CONTROL.
    fence(&alice, &bobs, &mut [&mut bob]).await;
    stop(srv).await;
}

// ---------------------------------------------------------------------------
// 2. A network that goes silent

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_detected_by_heartbeat_and_replaced() {
    let hb = json!({"heartbeatIntervalMs": 300, "heartbeatTimeoutMs": 1500});
    let (srv, proxy, alice, mut bob, room) =
        alice_direct_bob_via_proxy(hb.clone(), json!({}), hb).await;

    let t0 = Instant::now();
    proxy.blackhole_current();
    let lost = expect_next_state(&mut bob, ConnState::Reconnecting).await;
    let after = t0.elapsed();
    assert_eq!(lost.code, 408, "lost by heartbeat timeout: {lost:?}");
    assert!(
        after >= Duration::from_millis(1200) && after <= Duration::from_secs(6),
        "Reconnecting after {after:?}, expected about the 1.5 s heartbeat timeout"
    );
    let back = expect_next_state(&mut bob, ConnState::Connected).await;
    assert_eq!(back.resync, None, "the stream resumed: {back:?}");
    bob.expect_channels().await;

    alice.invite_rings(&mut bob, &room, "r1").await;
    bob.expect_silence(QUIET).await;
    stop(srv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_drops_a_client_that_neither_sends_nor_reads() {
    let srv = start_server(json!({"heartbeatIntervalMs": 300, "heartbeatTimeoutMs": 1500})).await;
    let (ws, _) = raw_login(srv.url(), "bob", "b1", None).await;
    let t0 = Instant::now();
    assert!(srv.service().store.account_online("bob").await.unwrap());
    // From here on the socket is neither written nor read (no pongs either).
    wait_offline(&srv, "bob").await;
    let after = t0.elapsed();
    assert!(
        after >= Duration::from_millis(1000) && after <= Duration::from_secs(5),
        "dropped after {after:?}, expected about the 1.5 s heartbeat timeout"
    );
    drop(ws);
    stop(srv).await;
}

// ---------------------------------------------------------------------------
// 3. The server restarts and lost its state

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_server_restart_the_client_resyncs_and_new_events_are_delivered() {
    let (a, proxy, alice, mut bob, room) =
        alice_direct_bob_via_proxy(json!({}), json!({"reconnect": false}), json!({})).await;
    bob.ok("join", json!({"channelId": room})).await;
    // Bob gets a few events from A (seq 1..=3 there).
    for i in 0..3 {
        alice
            .control_reaches(&mut bob, &room, &format!("a{i}"))
            .await;
    }

    stop(a).await;
    let lost = expect_next_state(&mut bob, ConnState::Reconnecting).await;
    assert_ne!(lost.code, 200, "{lost:?}");
    let b = start_server(json!({})).await;
    proxy.set_target(b.local_addr());

    let back = expect_next_state(&mut bob, ConnState::Connected).await;
    assert_eq!(back.resync.as_deref(), Some("stateLost"), "{back:?}");
    // A fresh start: B knows no rooms and kept nothing for bob.
    let ch = bob.expect_channels().await;
    assert_eq!(ch["channels"], json!([]), "{ch}");

    // B numbers bob's events from 1 again; they must not be taken for
    // repeats of A's.
    let mut alice = login(b.url(), "alice", "a1").await;
    let room2 = alice.create_joined(None).await;
    alice.invite_rings(&mut bob, &room2, "r1").await;
    alice.expect_delivered(&room2, "bob", "r1", 1).await;
    bob.ok("join", json!({"channelId": room2})).await;
    alice.expect_event("ROOM_JOIN").await;
    alice.control_reaches(&mut bob, &room2, "b0").await;
    bob.expect_silence(QUIET).await;
    stop(b).await;
}

// ---------------------------------------------------------------------------
// 4. Missed events trimmed from the log

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_past_the_trimmed_log_says_trimmed_and_replays_no_controls() {
    let (srv, proxy, alice, mut bob, room) =
        alice_direct_bob_via_proxy(json!({"logMaxEvents": 5}), json!({}), json!({})).await;
    bob.ok("join", json!({"channelId": room})).await;
    alice.control_reaches(&mut bob, &room, "before").await;

    proxy.refuse(true);
    proxy.cut();
    wait_offline(&srv, "bob").await;
    for i in 0..20 {
        alice
            .ok("control", control_to(&room, "bob", format!("missed-{i}")))
            .await;
    }
    proxy.refuse(false);

    let (_, back) = expect_reconnect(&mut bob).await;
    assert_eq!(back.resync.as_deref(), Some("trimmed"), "{back:?}");
    // Controls are online only: no offline list, just the rooms bob is in.
    let ch = bob.expect_channels().await;
    let list = ch["channels"].as_array().expect("channels array");
    assert_eq!(list.len(), 1, "{ch}");
    assert_eq!(list[0]["channelInfo"]["channelId"], room.as_str(), "{ch}");
    assert_eq!(accounts(&list[0]["members"]), ["alice", "bob"], "{ch}");
    // None of the missed controls (not even the last five the log kept).
    bob.expect_silence(QUIET).await;
    // And the stream goes on live.
    alice.control_reaches(&mut bob, &room, "after").await;
    bob.expect_silence(QUIET).await;
    stop(srv).await;
}

// ---------------------------------------------------------------------------
// 5. Many events under random cuts

/// One of bob's notifications in the thousand-controls test: a control's
/// index goes to `got`, a resync to `resyncs`; channels syncs (after each
/// reconnect) and other connection states are expected; anything else fails.
fn take(n: Notification, got: &mut Vec<usize>, resyncs: &mut Vec<StateChange>) {
    match n {
        Notification::ConnectionState(s) => {
            if s.resync.is_some() {
                resyncs.push(s);
            }
        }
        Notification::Channels(_) => {}
        Notification::Online(t) => got.push(control_index(&t)),
        other => panic!("bob: unexpected {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_controls_under_random_cuts_arrive_once_each_in_order() {
    const N: usize = 1000;
    let srv = start_server(json!({"logMaxEvents": 5000})).await;
    let pa = Arc::new(FaultProxy::start(srv.local_addr()).await);
    let pb = Arc::new(FaultProxy::start(srv.local_addr()).await);
    let cfg = json!({"requestTimeoutMs": 20000});
    let mut alice = login_with(&pa.url(), "alice", "a1", cfg.clone()).await;
    let mut bob = login_with(&pb.url(), "bob", "b1", cfg).await;
    let room = alice.create_joined(None).await;
    bob.ok("join", json!({"channelId": room})).await;
    alice.expect_event("ROOM_JOIN").await;

    let stop_cuts = Arc::new(AtomicBool::new(false));
    let cuts = Arc::new(AtomicUsize::new(0));
    let cutter = tokio::spawn({
        let (pa, pb, stop_cuts, cuts) = (pa.clone(), pb.clone(), stop_cuts.clone(), cuts.clone());
        async move {
            while !stop_cuts.load(Ordering::SeqCst) {
                let wait = rand::thread_rng().gen_range(50..=300);
                tokio::time::sleep(Duration::from_millis(wait)).await;
                if stop_cuts.load(Ordering::SeqCst) {
                    break;
                }
                match rand::thread_rng().gen_range(0..3) {
                    0 => pa.cut(),
                    1 => pb.cut(),
                    _ => {
                        pa.cut();
                        pb.cut();
                    }
                }
                cuts.fetch_add(1, Ordering::SeqCst);
            }
        }
    });

    // Submitted in index order (so applied in that order), one every 4 ms
    // (about 4 s in all, so the cuts fall in the middle of it), up to 300
    // in flight.
    let t0 = Instant::now();
    let params = (0..N)
        .map(|i| control_to(&room, "bob", i.to_string()))
        .collect();
    let replies = pipeline(&alice, "control", params, 300, Duration::from_millis(4)).await;
    stop_cuts.store(true, Ordering::SeqCst);
    cutter.await.unwrap();
    let took = t0.elapsed();
    let failed: Vec<_> = replies
        .iter()
        .enumerate()
        .filter(|(_, (code, _))| *code != 200)
        .map(|(i, (code, text))| format!("#{i}: {code} {text}"))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {N} controls failed (after {took:?}, {} cuts): {:?}",
        failed.len(),
        cuts.load(Ordering::SeqCst),
        &failed[..failed.len().min(10)]
    );

    // Bob: every index once, in the order alice's requests were applied.
    let mut got: Vec<usize> = Vec::new();
    let mut resyncs = Vec::new();
    let end = tokio::time::Instant::now() + WAIT;
    while got.last() != Some(&(N - 1)) {
        let n = match tokio::time::timeout_at(end, bob.rx.recv()).await {
            Ok(n) => n.expect("open"),
            Err(_) => panic!(
                "bob has {} of {N} controls after the wait; last {:?}; missing {:?}",
                got.len(),
                got.last(),
                (0..N)
                    .filter(|i| !got.contains(i))
                    .take(20)
                    .collect::<Vec<_>>()
            ),
        };
        take(n, &mut got, &mut resyncs);
    }
    // Anything after the last one would be a duplicate (the checks below
    // see it in `got`). A cut just before the last control was read can
    // still end in a reconnect, whose channels sync comes after the resumed
    // events: that is not a duplicate.
    let quiet = tokio::time::Instant::now() + QUIET;
    while let Ok(n) = tokio::time::timeout_at(quiet, bob.rx.recv()).await {
        take(n.expect("open"), &mut got, &mut resyncs);
    }
    assert!(resyncs.is_empty(), "bob had to resync: {resyncs:?}");
    let dups: Vec<_> = got
        .windows(2)
        .filter(|w| w[1] <= w[0])
        .map(|w| (w[0], w[1]))
        .collect();
    assert!(
        dups.is_empty(),
        "out of order or repeated (prev, next): {dups:?}"
    );
    assert_eq!(got, (0..N).collect::<Vec<_>>());
    // The faults did happen: both clients had to come back.
    let cut_count = cuts.load(Ordering::SeqCst);
    assert!(
        pa.accepted() >= 2 && pb.accepted() >= 2,
        "too few reconnects to prove anything: {cut_count} cuts in {took:?}, alice {} / bob {} connections",
        pa.accepted(),
        pb.accepted()
    );
    eprintln!(
        "{N} controls in {took:?} with {cut_count} cuts; connections: alice {}, bob {}",
        pa.accepted(),
        pb.accepted()
    );
    // Alice got nothing but her connection states and channels syncs.
    while let Ok(n) = alice.rx.try_recv() {
        assert!(
            matches!(
                n,
                Notification::ConnectionState(..) | Notification::Channels(..)
            ),
            "alice: unexpected {n:?}"
        );
    }
    stop(srv).await;
}

// ---------------------------------------------------------------------------
// 6. A request sent again after a reconnect

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_resent_after_a_reconnect_is_applied_once() {
    let srv = start_server(json!({})).await;
    let create = json!({"type": 1, "channelName": "once"});

    let (mut ws, _) = raw_login(srv.url(), "alice", "d1", Some("i1")).await;
    let first = raw_request(&mut ws, 5, "create", create.clone())
        .await
        .expect("reply");
    assert_eq!(first["code"], 200, "{first}");
    let room = cid(&first);
    raw_close(ws).await;

    // The same client instance sends id 5 again on a new connection (it never
    // saw the answer): the server answers from its record.
    let (mut ws, _) = raw_login(srv.url(), "alice", "d1", Some("i1")).await;
    let again = raw_request(&mut ws, 5, "create", create.clone())
        .await
        .expect("reply");
    assert_eq!(again, first, "a repeat gets the first answer");
    // Acknowledging id 5 does not disturb later requests' records.
    let b = raw_request_ack(
        &mut ws,
        6,
        "create",
        json!({"type": 1, "channelName": "once-b"}),
        5,
    )
    .await;
    assert_eq!(b["code"], 200, "{b}");
    raw_close(ws).await;
    let (mut ws, _) = raw_login(srv.url(), "alice", "d1", Some("i1")).await;
    let b_again = raw_request_ack(
        &mut ws,
        6,
        "create",
        json!({"type": 1, "channelName": "once-b"}),
        5,
    )
    .await;
    assert_eq!(b_again, b, "a repeat gets the first answer");
    raw_close(ws).await;

    // A new client instance of the same device: id 5 is a new request.
    let (mut ws, _) = raw_login(srv.url(), "alice", "d1", Some("i2")).await;
    let other = raw_request(&mut ws, 5, "create", create.clone())
        .await
        .expect("reply");
    assert_eq!(other["code"], 10405, "{other}");
    raw_close(ws).await;

    // Exactly one room of each name was made.
    let alice = login(srv.url(), "alice", "a9").await;
    let q = alice
        .ok("queryChannelInfo", json!({"channelName": "once"}))
        .await;
    assert_eq!(cid(&q), room);
    let q = alice
        .ok("queryChannelInfo", json!({"channelName": "once-b"}))
        .await;
    assert_eq!(cid(&q), cid(&b));
    stop(srv).await;
}

/// Alice (a1) and bob (b1) logged in to `srv`, both in a room alice made.
async fn alice_and_bob_in_a_room(srv: &TestServer) -> (TestClient, TestClient, String) {
    let alice = login(srv.url(), "alice", "a1").await;
    let bob = login(srv.url(), "bob", "b1").await;
    let room = alice.create_joined(None).await;
    bob.ok("join", json!({"channelId": room})).await;
    (alice, bob, room)
}

/// A control changes no room, so only the retry record stops its copy: the
/// repeat is answered from the record and tells nobody a second time
/// (its reads may run alongside the claim; its delivery waits for it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_resent_after_a_reconnect_reaches_its_peer_once() {
    let srv = start_server(json!({})).await;
    let (_alice, mut bob, room) = alice_and_bob_in_a_room(&srv).await;
    let control = control_to(&room, "bob", "once");

    let (mut ws, _) = raw_login(srv.url(), "alice", "d2", Some("i1")).await;
    let first = raw_request(&mut ws, 3, "control", control.clone())
        .await
        .expect("reply");
    assert_eq!(first["code"], 200, "{first}");
    raw_close(ws).await;
    let (mut ws, _) = raw_login(srv.url(), "alice", "d2", Some("i1")).await;
    let again = raw_request(&mut ws, 3, "control", control)
        .await
        .expect("reply");
    assert_eq!(again, first, "a repeat gets the first answer");
    raw_close(ws).await;

    let ev = bob.expect_event("CONTROL").await;
    assert_eq!(ev["attachExt"], "once", "{ev}");
    bob.expect_silence(Duration::from_millis(500)).await;
    stop(srv).await;
}

/// A long run of acknowledged requests on one client instance (a store
/// drops acknowledged answers as they come, and every 64th request makes a
/// fuller pass): an answer not yet acknowledged is still there for its
/// repeat, at the 64th request too, and the repeat tells nobody twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_survive_the_dropping_of_acknowledged_ones() {
    let srv = start_server(json!({})).await;
    let (_alice, mut bob, room) = alice_and_bob_in_a_room(&srv).await;

    let (mut ws, _) = raw_login(srv.url(), "alice", "d2", Some("i1")).await;
    let mut last = Value::Null;
    for id in 1..=64u64 {
        let control = control_to(&room, "bob", id.to_string());
        last = raw_request_ack(&mut ws, id, "control", control, id - 1).await;
        assert_eq!(last["code"], 200, "request {id}: {last}");
    }
    raw_close(ws).await;
    // Request 64 is sent again (its answer never arrived, say): it is
    // answered from the record, acknowledging 63 on the way.
    let (mut ws, _) = raw_login(srv.url(), "alice", "d2", Some("i1")).await;
    let control = control_to(&room, "bob", "64");
    let again = raw_request_ack(&mut ws, 64, "control", control, 63).await;
    assert_eq!(again, last, "a repeat gets the first answer");
    raw_close(ws).await;

    for id in 1..=64 {
        let ev = bob.expect_event("CONTROL").await;
        assert_eq!(ev["attachExt"], id.to_string(), "{ev}");
    }
    bob.expect_silence(Duration::from_millis(500)).await;
    stop(srv).await;
}

// ---------------------------------------------------------------------------
// 7. INVITE_TIMEOUT

fn check_timeout_event(ev: &Value, room: &str, rid: &str) {
    assert_eq!(ev["eventType"], "INVITE_TIMEOUT", "{ev}");
    assert_eq!(ev["eventTypeCode"], 9, "{ev}");
    assert_eq!(ev["fromAccountId"], "alice", "{ev}");
    assert_eq!(ev["toAccount"], "bob", "{ev}");
    assert_eq!(ev["requestId"], rid, "{ev}");
    assert_eq!(ev["channelInfo"]["channelId"], room, "{ev}");
    assert_eq!(ev["attachExt"], "", "{ev}");
    assert!(ev["time"].as_i64().unwrap_or(0) > 0, "{ev}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_invitation_times_out_on_both_sides() {
    let srv = start_server(json!({"inviteTtlMs": 500})).await;
    let mut a1 = login(srv.url(), "alice", "a1").await;
    let mut a2 = login(srv.url(), "alice", "a2").await;
    let mut bob = login(srv.url(), "bob", "b1").await;
    let room = a1.create_joined(None).await;

    let t0 = Instant::now();
    a1.ok(
        "invite",
        json!({"channelId": room, "account": "bob", "requestId": "r1", "attachExt": "x"}),
    )
    .await;
    let inv = bob.expect_invite(&room, "alice", "r1").await;
    assert_eq!(inv["attachExt"], "x", "{inv}");
    // Both of alice's devices hear that it rings on bob's one device.
    for a in [&mut a1, &mut a2] {
        a.expect_delivered(&room, "bob", "r1", 1).await;
    }

    for c in [&mut a1, &mut a2, &mut bob] {
        let ev = c.expect_event("INVITE_TIMEOUT").await;
        let after = t0.elapsed();
        check_timeout_event(&ev, &room, "r1");
        assert!(
            ev["time"].as_i64().unwrap() >= inv["time"].as_i64().unwrap() + 500,
            "not before the TTL: {ev} vs {inv}"
        );
        assert!(
            after >= Duration::from_millis(450) && after <= Duration::from_millis(3000),
            "{}: INVITE_TIMEOUT after {after:?}, TTL 500 ms",
            c.account
        );
    }
    // Once each.
    tokio::join!(
        a1.expect_silence(QUIET),
        a2.expect_silence(QUIET),
        bob.expect_silence(QUIET)
    );
    let ans = invitation(&room, "alice", "r1");
    bob.fails("accept", ans, 10408).await;
    stop(srv).await;
}

/// An invitation's own `timeoutMs` (an addition to NIM) ends it long before
/// the server's inviteTtlMs (here a minute: the events below come within
/// the 10 s a test waits only if the invitation's own timeout ran them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invitation_times_out_after_its_own_timeout() {
    let srv = start_server(json!({"inviteTtlMs": 60_000})).await;
    let mut alice = login(srv.url(), "alice", "a1").await;
    let mut bob = login(srv.url(), "bob", "b1").await;
    let room = alice.create_joined(None).await;
    let p = json!({"channelId": room, "account": "bob", "requestId": "r1", "timeoutMs": 400});
    alice.ok("invite", p).await;
    let inv = bob.expect_invite(&room, "alice", "r1").await;
    alice.expect_delivered(&room, "bob", "r1", 1).await;
    let q = alice.ok("queryInvitations", json!({})).await;
    assert_eq!(
        q["sent"][0]["expireTimestamp"].as_i64().unwrap(),
        inv["time"].as_i64().unwrap() + 400,
        "{q}"
    );
    for c in [&mut alice, &mut bob] {
        let ev = c.expect_event("INVITE_TIMEOUT").await;
        check_timeout_event(&ev, &room, "r1");
        assert!(ev["time"].as_i64().unwrap() >= inv["time"].as_i64().unwrap() + 400);
    }
    // A call rings for its own timeout too.
    let call = json!({"type": 1, "account": "bob", "requestId": "r2", "timeoutMs": 400});
    let r = alice.ok("call", call).await;
    let called = cid(&r);
    bob.expect_invite(&called, "alice", "r2").await;
    let ev = bob.expect_event("INVITE_TIMEOUT").await;
    assert_eq!(ev["requestId"], "r2", "{ev}");
    // Not a duration.
    for (bad, says) in [
        (json!(0), "timeoutMs must be at least 1"),
        (json!("400"), "`timeoutMs`: invalid type"),
    ] {
        let p = json!({"channelId": room, "account": "bob", "requestId": "r3", "timeoutMs": bad});
        let v = alice.fails("invite", p, 414).await;
        assert!(v["message"].as_str().unwrap().starts_with(says), "{v}");
    }
    stop(srv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_invitation_that_timed_out_is_in_the_offline_list_after_it() {
    let srv = start_server(json!({"inviteTtlMs": 500})).await;
    let mut alice = login(srv.url(), "alice", "a1").await;
    let room = alice.create_joined(None).await;
    alice.invite_offline(&room, "bob", "r1").await;
    // Alice is told when it runs out; by then bob's copy was kept too.
    let ev = alice.expect_event("INVITE_TIMEOUT").await;
    check_timeout_event(&ev, &room, "r1");

    let (mut bob, offline, _) = login_full(srv.url(), "bob", "b1", json!({})).await;
    let offline = offline.expect("bob has an offline list");
    let list = offline["eventList"].as_array().expect("eventList");
    let types: Vec<&str> = list
        .iter()
        .map(|e| e["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["INVITE", "INVITE_TIMEOUT"], "{offline}");
    assert_eq!(list[0]["requestId"], "r1", "{offline}");
    assert_eq!(list[0]["fromAccountId"], "alice", "{offline}");
    check_timeout_event(&list[1], &room, "r1");
    bob.expect_silence(QUIET).await;
    bob.fails("accept", invitation(&room, "alice", "r1"), 10408)
        .await;
    stop(srv).await;
}

// ---------------------------------------------------------------------------
// 8. The caller vanishes

/// A server with a 500 ms member drop grace, alice (a1, with the extra
/// client config `alice_cfg`) behind a fault proxy and bob (b1) direct;
/// alice has called bob ("r1") and it rang. Returns (server, proxy, alice,
/// bob, room).
async fn alice_via_proxy_called_bob(
    alice_cfg: Value,
) -> (TestServer, FaultProxy, TestClient, TestClient, String) {
    let srv = start_server(json!({"memberDropGraceMs": 500, "inviteTtlMs": 30000})).await;
    let proxy = FaultProxy::start(srv.local_addr()).await;
    let mut alice = login_with(&proxy.url(), "alice", "a1", alice_cfg).await;
    let mut bob = login(srv.url(), "bob", "b1").await;
    let room = alice.call_rings(&mut bob, "r1").await;
    alice.expect_delivered(&room, "bob", "r1", 1).await;
    (srv, proxy, alice, bob, room)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_caller_s_invitation_is_cancelled_after_the_grace() {
    let (srv, proxy, mut alice, mut bob, room) =
        alice_via_proxy_called_bob(json!({"reconnect": false})).await;

    let t0 = Instant::now();
    proxy.refuse(true);
    proxy.cut();
    let lost = expect_next_state(&mut alice, ConnState::Disconnected).await;
    assert_ne!(lost.code, 200, "{lost:?}");

    let ev = bob.expect_event_from("CANCEL_INVITE", &room, "alice").await;
    let after = t0.elapsed();
    assert_eq!(ev["eventTypeCode"], 4, "{ev}");
    assert_eq!(ev["toAccount"], "bob", "{ev}");
    assert_eq!(ev["requestId"], "r1", "{ev}");
    assert!(
        after >= Duration::from_millis(400) && after <= Duration::from_millis(3500),
        "CANCEL_INVITE after {after:?}, grace 500 ms"
    );
    bob.expect_silence(QUIET).await;
    bob.fails("accept", invitation(&room, "alice", "r1"), 10408)
        .await;
    let q = bob.ok("queryChannelInfo", json!({"channelId": room})).await;
    assert_eq!(q["members"], json!([]), "alice is no longer in: {q}");
    stop(srv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_back_within_the_grace_keeps_the_invitation_ringing() {
    let (srv, proxy, mut alice, mut bob, room) = alice_via_proxy_called_bob(json!({})).await;

    proxy.cut();
    expect_resumed(&mut alice).await;
    // Well past the grace: nothing for bob.
    bob.expect_silence(Duration::from_millis(1500)).await;
    bob.ok("accept", invitation(&room, "alice", "r1")).await;
    let ev = alice.expect_event_from("ACCEPT", &room, "bob").await;
    assert_eq!(ev["requestId"], "r1", "{ev}");
    let q = bob.ok("queryChannelInfo", json!({"channelId": room})).await;
    assert_eq!(accounts(&q["members"]), ["alice"], "{q}");
    stop(srv).await;
}

// ---------------------------------------------------------------------------
// 9. Graceful shutdown

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutting_down_server_hands_over_pending_events_then_asks_to_reconnect() {
    const N: usize = 100;
    let (srv, alice, mut bob, bobs) = alice_and_bob_with_a_room().await;

    // All stored for bob (answered 200); bob has not necessarily read any.
    let params = (0..N)
        .map(|i| control_to(&bobs, "bob", i.to_string()))
        .collect();
    let replies = pipeline(&alice, "control", params, N, Duration::ZERO).await;
    stop(srv).await;
    assert_all_ok(&replies);

    let (got, lost) = controls_until_state(&mut bob).await;
    assert_eq!(
        got,
        (0..N).collect::<Vec<_>>(),
        "bob: every CONTROL, in order"
    );
    assert_eq!(lost.state, ConnState::Reconnecting, "{lost:?}");
    assert_ne!(lost.code, 200, "{lost:?}");
    // It keeps trying: no Disconnected, nothing else.
    let end = tokio::time::Instant::now() + QUIET;
    if let Ok(n) = tokio::time::timeout_at(end, bob.rx.recv()).await {
        panic!("bob: expected nothing while reconnecting, got {n:?}");
    }
}

/// Reads bob's notifications up to his first connection state change: the
/// indices (attachExt) of the CONTROLs before it, and the change.
async fn controls_until_state(bob: &mut TestClient) -> (Vec<usize>, StateChange) {
    let mut got = Vec::new();
    loop {
        match next_any(bob).await {
            Notification::Online(t) => got.push(control_index(&t)),
            Notification::ConnectionState(s) => return (got, s),
            other => panic!("bob: unexpected {other:?}"),
        }
    }
}

/// Every control alice had a 200 for is among bob's, which are in order.
fn acked_were_delivered(acked: &[usize], got: &[usize]) -> Result<(), String> {
    if !got.windows(2).all(|w| w[0] < w[1]) {
        return Err(format!("bob's controls out of order or repeated: {got:?}"));
    }
    let missing: Vec<_> = acked.iter().filter(|i| !got.contains(i)).collect();
    if !missing.is_empty() {
        return Err(format!(
            "acknowledged to alice (200) but not delivered to bob before his connection \
             closed: {missing:?} ({} acknowledged, bob got {}: {:?}..{:?})",
            acked.len(),
            got.len(),
            got.first(),
            got.last()
        ));
    }
    Ok(())
}

/// Submits `n` controls from alice to bob at once, without waiting.
fn submit_controls(
    alice: &TestClient,
    room: &str,
    n: usize,
) -> mpsc::UnboundedReceiver<(usize, i32, String)> {
    let (tx, rx) = mpsc::unbounded_channel();
    for i in 0..n {
        let tx = tx.clone();
        let done = Completer::new(move |code, text| {
            let _ = tx.send((i, code, text));
        });
        let p = control_to(room, "bob", i.to_string());
        assert!(alice.client.request_with("control", p, done).is_ok());
    }
    rx
}

/// The indices answered 200 among all `n` completions still to come on
/// `rx` plus those in `replies`. Requests the server never answered are
/// failed by shutting the client down once its connection is gone.
async fn acked_controls(
    alice: &mut TestClient,
    mut replies: Vec<(usize, i32, String)>,
    rx: &mut mpsc::UnboundedReceiver<(usize, i32, String)>,
    n: usize,
) -> Vec<usize> {
    alice.expect_state(ConnState::Reconnecting).await;
    alice.client.shutdown();
    while replies.len() < n {
        let r = tokio::time::timeout(WAIT, rx.recv()).await;
        replies.push(r.expect("every request completes").unwrap());
    }
    for (i, code, text) in &replies {
        // 200, or unknown outcome: the answer did not get out any more.
        assert!([200, 415].contains(code), "#{i}: unexpected {code} {text}");
    }
    let mut acked: Vec<usize> = replies
        .iter()
        .filter(|(_, code, _)| *code == 200)
        .map(|(i, _, _)| *i)
        .collect();
    acked.sort();
    acked
}

/// The first `k` completions to come on `rx`, in the order they came.
async fn first_replies(
    rx: &mut mpsc::UnboundedReceiver<(usize, i32, String)>,
    k: usize,
) -> Vec<(usize, i32, String)> {
    let mut replies = Vec::new();
    while replies.len() < k {
        replies.push(rx.recv().await.unwrap());
    }
    replies
}

/// After the server shut down: bob's CONTROL indices up to his first state
/// change, which must be Reconnecting; then, with bob shut down, the indices
/// alice had a 200 for (see `acked_controls`). Returns (acked, bob's).
async fn acked_and_delivered(
    alice: &mut TestClient,
    bob: &mut TestClient,
    replies: Vec<(usize, i32, String)>,
    rx: &mut mpsc::UnboundedReceiver<(usize, i32, String)>,
    n: usize,
) -> (Vec<usize>, Vec<usize>) {
    let (got, lost) = controls_until_state(bob).await;
    assert_eq!(lost.state, ConnState::Reconnecting, "{lost:?}");
    bob.client.shutdown();
    (acked_controls(alice, replies, rx, n).await, got)
}

/// Runs `one` `runs` times and fails with the first run's error: its
/// outcome depends on timing, and several runs make a miss visible.
async fn in_runs<F, Fut>(runs: usize, one: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    for run in 0..runs {
        if let Err(e) = one().await {
            panic!("run {run}: {e}");
        }
    }
}

/// One run: alice has many controls for bob in flight when the server shuts
/// down (after her 20th answer).
async fn shutdown_with_controls_in_flight() -> Result<(), String> {
    const N: usize = 500;
    let (srv, mut alice, mut bob, bobs) = alice_and_bob_with_a_room().await;

    let mut rx = submit_controls(&alice, &bobs, N);
    let replies = first_replies(&mut rx, 20).await;
    stop(srv).await;

    let (acked, got) = acked_and_delivered(&mut alice, &mut bob, replies, &mut rx, N).await;
    acked_were_delivered(&acked, &got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controls_acknowledged_while_the_server_shuts_down_all_reach_the_receiver() {
    in_runs(8, shutdown_with_controls_in_flight).await;
}

/// One run: alice's controls were all answered 200 before the server shuts
/// down, while bob keeps sending requests of his own.
async fn shutdown_with_a_busy_receiver() -> Result<(), String> {
    const N: usize = 100;
    let (srv, mut alice, mut bob, bobs) = alice_and_bob_with_a_room().await;

    let busy = Arc::new(AtomicBool::new(true));
    let sender = tokio::spawn({
        let (client, busy, bobs) = (bob.client.clone(), busy.clone(), bobs.clone());
        async move {
            while busy.load(Ordering::SeqCst) {
                for _ in 0..4 {
                    let q = json!({"channelId": bobs});
                    let ignore = Completer::new(|_, _| {});
                    let _ = client.request_with("queryChannelInfo", q, ignore);
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut rx = submit_controls(&alice, &bobs, N);
    let replies = first_replies(&mut rx, N).await;
    stop(srv).await;
    busy.store(false, Ordering::SeqCst);
    sender.await.unwrap();

    let (acked, got) = acked_and_delivered(&mut alice, &mut bob, replies, &mut rx, N).await;
    assert_eq!(acked.len(), N, "all answered before the shutdown");
    acked_were_delivered(&acked, &got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_busy_with_requests_at_shutdown_still_gets_every_event() {
    in_runs(8, shutdown_with_a_busy_receiver).await;
}

/// One run at the protocol level: a raw WebSocket bob reads all the time;
/// alice's controls are all answered 200 and then the server shuts down.
/// Returns bob's control indices and how his stream ended.
async fn raw_receiver_at_shutdown(n: usize) -> (Vec<usize>, String) {
    use futures_util::StreamExt;
    let srv = start_server(json!({})).await;
    let alice = login(srv.url(), "alice", "a1").await;
    let (mut ws, _) = raw_login(srv.url(), "bob", "b1", None).await;
    let made = raw_request(&mut ws, 1, "create", json!({"type": 1}))
        .await
        .expect("reply");
    let bobs = cid(&made);
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        loop {
            let msg = tokio::time::timeout(WAIT, ws.next()).await;
            match msg.expect("bob's stream ends in time") {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if v["t"] == "evt" {
                        let tag = v["event"]["attachExt"].as_str().unwrap();
                        got.push(tag.parse::<usize>().unwrap());
                    }
                }
                Some(Ok(Message::Close(c))) => return (got, format!("close {c:?}")),
                Some(Ok(_)) => {}
                Some(Err(e)) => return (got, format!("error {e}")),
                None => return (got, "end without a close frame".to_string()),
            }
        }
    });
    let params = (0..n)
        .map(|i| control_to(&bobs, "bob", i.to_string()))
        .collect();
    let replies = pipeline(&alice, "control", params, n, Duration::ZERO).await;
    assert_all_ok(&replies);
    stop(srv).await;
    reader.await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_shutdown_a_session_gets_all_its_events_then_a_close_1012() {
    const N: usize = 100;
    // The outcome depends on timing; several runs make a miss visible.
    for run in 0..16 {
        let (got, end) = raw_receiver_at_shutdown(N).await;
        assert!(
            end.contains("Restart") || end.contains("1012"),
            "run {run}: bob's stream ended with {end} after {} of {N} controls \
             (last {:?}); expected every control and then a close frame 1012",
            got.len(),
            got.last()
        );
        assert_eq!(got, (0..N).collect::<Vec<_>>(), "run {run}");
    }
}

// ---------------------------------------------------------------------------
// 10. A reader that stops reading

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_reading_is_dropped_and_slows_nobody() {
    let srv = start_server(json!({"heartbeatIntervalMs": 300, "heartbeatTimeoutMs": 1500})).await;
    let alice = login(srv.url(), "alice", "a1").await;
    let mut carol = login(srv.url(), "carol", "c1").await;
    let carols = carol.create(None).await;
    let (mut bob_ws, _) = raw_login(srv.url(), "bob", "b1", None).await;
    let made = raw_request(&mut bob_ws, 1, "create", json!({"type": 1}))
        .await
        .expect("reply");
    assert_eq!(made["code"], 200, "{made}");
    let bobs = cid(&made);
    // From here on bob reads nothing (the socket stays open).
    let t0 = Instant::now();

    let mut params = Vec::new();
    for i in 0..300 {
        // 4 KiB, the most attachExt may hold.
        let tag = format!("{i}:");
        let big = format!("{tag}{}", "x".repeat(4096 - tag.len()));
        params.push(control_to(&bobs, "bob", big));
        if i % 3 == 0 {
            params.push(control_to(&carols, "carol", (i / 3).to_string()));
        }
    }
    let replies = pipeline(&alice, "control", params, 400, Duration::ZERO).await;
    assert_all_ok(&replies);
    let sent = t0.elapsed();
    for i in 0..100 {
        let ev = carol.expect_event_from("CONTROL", &carols, "alice").await;
        assert_eq!(ev["attachExt"], i.to_string(), "{ev}");
    }
    let carol_done = t0.elapsed();
    carol.expect_silence(Duration::from_millis(200)).await;
    assert!(
        carol_done <= Duration::from_secs(5) && carol_done - sent <= Duration::from_secs(2),
        "carol waited: all hers after {carol_done:?} (alice's replies after {sent:?})"
    );

    wait_offline(&srv, "bob").await;
    let dropped = t0.elapsed();
    assert!(
        dropped <= Duration::from_secs(6),
        "bob's session dropped only after {dropped:?} (heartbeat timeout 1.5 s)"
    );
    // Others are still served normally.
    alice.control_reaches(&mut carol, &carols, "later").await;
    drop(bob_ws);
    stop(srv).await;
}
