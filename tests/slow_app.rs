//! An app that consumes notifications more slowly than the server sends
//! them: the client's queue stays bounded (it stops reading from the socket)
//! and, once the app catches up, every event arrives once and in order.

mod common;

use common::*;
use nim_signaling_client::{Backlog, Client, ClientConfig, Notification, MAX_BACKLOG};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

const EVENTS: usize = 3000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_app_bounds_the_queue_and_loses_nothing() {
    // A short server patience, so that the stalled connection is also
    // dropped by the server and the client has to resume.
    let srv = start_server(json!({
        "heartbeatIntervalMs": 300, "heartbeatTimeoutMs": 1500, "logMaxEvents": 5000,
    }))
    .await;
    let alice = login(srv.url(), "alice", "a1").await;
    let room = alice.create_joined(None).await;

    // bob's sink counts what it queued into the backlog, like the C ABI's
    // dispatcher; the test is the app and reads only when it wants to.
    let backlog = Arc::new(Backlog::default());
    let queued = Arc::new(AtomicUsize::new(0));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let sink = {
        let (backlog, queued) = (backlog.clone(), queued.clone());
        Arc::new(move |n: Notification| {
            backlog.add();
            queued.fetch_add(1, Ordering::SeqCst);
            let _ = tx.send(n);
        })
    };
    let cfg = json!({"serverUrl": srv.url(), "account": "bob", "deviceId": "b1",
                     "heartbeatIntervalMs": 300, "heartbeatTimeoutMs": 1500});
    let bob = Client::with_backlog(
        ClientConfig::from_json(&cfg.to_string()).unwrap(),
        sink,
        backlog.clone(),
    );
    assert_eq!(bob.login().await.0, 200);
    let (code, _) = bob.request("join", json!({"channelId": room})).await;
    assert_eq!(code, 200);

    // alice sends EVENTS controls to bob, who reads none of them yet.
    for chunk in (0..EVENTS).collect::<Vec<_>>().chunks(200) {
        let sends = chunk.iter().map(|i| {
            alice.req(
                "control",
                json!({"channelId": room, "account": "bob", "attachExt": i.to_string()}),
            )
        });
        for (code, v) in futures_util::future::join_all(sends).await {
            assert_eq!(code, 200, "{v}");
        }
    }
    // Wait until the server has done all it can: written every event (they
    // fit in loopback's socket buffers), or dropped bob's stalled session
    // where they do not. An unbounded client would then hold them all
    // within moments; this one must stop at its bound and stay there.
    let store = srv.service().store.clone();
    let sent = srv.events_sent();
    wait_until("the server to write every event or drop bob", || {
        let (store, sent) = (store.clone(), sent.clone());
        async move { sent.get() >= EVENTS as u64 || !store.account_online("bob").await.unwrap_or(true) }
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let held = queued.load(Ordering::SeqCst);
    assert!(
        held <= MAX_BACKLOG + 1,
        "the client queued {held} notifications for an app that consumed none"
    );
    assert!(held < EVENTS, "nothing held back");

    // Now the app catches up: every control once, in order.
    let mut seen = Vec::new();
    while seen.len() < EVENTS {
        let n = tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("stuck after {} controls", seen.len()))
            .expect("sink open");
        backlog.done();
        if let Notification::Online(t) = n {
            let ev: Value = serde_json::from_str(&t).unwrap();
            if ev["eventType"] == "CONTROL" {
                seen.push(ev["attachExt"].as_str().unwrap().parse::<usize>().unwrap());
            }
        }
    }
    assert_eq!(seen, (0..EVENTS).collect::<Vec<_>>());
    bob.shutdown();
    srv.shutdown().await;
}
