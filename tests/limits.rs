//! Per-account and per-connection limits: each refusal has a clear code and
//! a message naming the setting, and the account recovers once it is back
//! under the limit.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn rooms_per_account() {
    let srv = start_server(json!({"maxRoomsPerAccount": 2})).await;
    let alice = login(srv.url(), "alice", "a1").await;
    let first = alice.create_joined(None).await;
    alice.create_joined(None).await;
    let third = alice.create(None).await;
    let v = alice.fails("join", json!({"channelId": third}), 403).await;
    names_setting(&v, "maxRoomsPerAccount");
    let v = alice
        .fails(
            "call",
            json!({"type": 1, "account": "bob", "requestId": "r1"}),
            403,
        )
        .await;
    names_setting(&v, "maxRoomsPerAccount");
    // Already in the room: that is the rule's answer, not the quota's.
    alice
        .fails("join", json!({"channelId": first}), 10407)
        .await;
    // Back under the limit.
    alice.ok("leave", json!({"channelId": first})).await;
    alice.ok("join", json!({"channelId": third})).await;
    srv.shutdown().await;
}

#[tokio::test]
async fn accept_with_auto_join_counts_as_joining() {
    let srv = start_server(json!({"maxRoomsPerAccount": 1})).await;
    let alice = login(srv.url(), "alice", "a1").await;
    let mut bob = login(srv.url(), "bob", "b1").await;
    bob.create_joined(None).await;
    let room = alice.create_joined(None).await;
    alice.invite_rings(&mut bob, &room, "r1").await;
    let answer =
        json!({"channelId": room, "account": "alice", "requestId": "r1", "autoJoin": true});
    bob.fails("accept", answer, 403).await;
    // Refused as a whole: the invitation is still there to answer.
    bob.ok("accept", invitation(&room, "alice", "r1")).await;
    srv.shutdown().await;
}

#[tokio::test]
async fn pending_invitations_per_account() {
    let srv = start_server(json!({"maxPendingInvitesPerAccount": 2})).await;
    let alice = login(srv.url(), "alice", "a1").await;
    let room = alice.create_joined(None).await;
    alice.invite_offline(&room, "bob", "r1").await;
    alice.invite_offline(&room, "carol", "r2").await;
    let v = alice
        .fails("invite", invitation(&room, "dave", "r3"), 403)
        .await;
    names_setting(&v, "maxPendingInvitesPerAccount");
    // A cancelled invitation no longer rings, so there is room for one more.
    alice.ok("cancel", invitation(&room, "bob", "r1")).await;
    alice.invite_offline(&room, "dave", "r3").await;
    srv.shutdown().await;
}

/// Creating is bounded apart from joining: an account that makes rooms and
/// never enters them stops at maxRoomsCreatedPerAccount valid rooms (create
/// and call both make one); closing one makes room for another, and other
/// accounts are not affected.
#[tokio::test]
async fn rooms_created_per_account() {
    let srv = start_server(json!({"maxRoomsCreatedPerAccount": 2})).await;
    let alice = login(srv.url(), "alice", "a1").await;
    let bob = login(srv.url(), "bob", "b1").await;
    let first = alice.create(None).await;
    alice.create(None).await;
    let v = alice.fails("create", json!({"type": 1}), 403).await;
    names_setting(&v, "maxRoomsCreatedPerAccount");
    let v = alice
        .fails(
            "call",
            json!({"type": 1, "account": "carol", "requestId": "r1"}),
            403,
        )
        .await;
    names_setting(&v, "maxRoomsCreatedPerAccount");
    bob.create(None).await;
    // Back under the limit.
    alice.ok("close", json!({"channelId": first})).await;
    alice.create(None).await;
    alice.fails("create", json!({"type": 1}), 403).await;
    srv.shutdown().await;
}

/// A refusal whose message names the setting behind it.
fn names_setting(v: &serde_json::Value, setting: &str) {
    let msg = v["message"].as_str().unwrap_or_default();
    assert!(msg.contains(setting), "names {setting}: {v}");
}

/// A login refused with 416 by the limit named `setting`.
async fn login_refused(url: &str, account: &str, device: &str, setting: &str) {
    let c = client_for(url, account, device, json!({"reconnect": false}));
    let (code, body) = c.client.login().await;
    assert_eq!(code, 416, "{body}");
    assert!(body.contains(setting), "names {setting}: {body}");
}

#[tokio::test]
async fn devices_per_account() {
    let srv = start_server(json!({"maxDevicesPerAccount": 2})).await;
    let _a1 = login(srv.url(), "alice", "a1").await;
    let a2 = login(srv.url(), "alice", "a2").await;
    login_refused(srv.url(), "alice", "a3", "maxDevicesPerAccount").await;
    // A device already online may log in again (it replaces itself).
    let _a1_again = login(srv.url(), "alice", "a1").await;
    // One leaves: there is room for the third.
    assert_eq!(a2.client.logout().await.0, 200);
    login(srv.url(), "alice", "a3").await;
    srv.shutdown().await;
}

#[tokio::test]
async fn connections_per_ip_address() {
    let srv = start_server(json!({"maxConnectionsPerIp": 2})).await;
    let alice = login(srv.url(), "alice", "a1").await;
    let _bob = login(srv.url(), "bob", "b1").await;
    login_refused(srv.url(), "carol", "c1", "maxConnectionsPerIp").await;
    // When a connection from the address closes, its place is free again.
    assert_eq!(alice.client.logout().await.0, 200);
    let mut admitted = false;
    for _ in 0..50 {
        let c = client_for(srv.url(), "carol", "c1", json!({"reconnect": false}));
        if c.client.login().await.0 == 200 {
            admitted = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(admitted, "carol gets in once alice's connection is gone");
    srv.shutdown().await;
}

#[tokio::test]
async fn requests_per_second_per_connection() {
    let srv = start_server(json!({"maxRequestsPerSecond": 5})).await;
    let alice = login(srv.url(), "alice", "a1").await;
    let burst = (0..30).map(|_| alice.req("sync", json!({})));
    let replies = futures_util::future::join_all(burst).await;
    let ok = replies.iter().filter(|(c, _)| *c == 200).count();
    let refused: Vec<_> = replies.iter().filter(|(c, _)| *c == 416).collect();
    assert_eq!(ok + refused.len(), 30, "only 200 or 416: {replies:?}");
    assert!(ok >= 10, "a burst of twice the rate passes: {ok}");
    assert!(!refused.is_empty(), "the rest is refused");
    let msg = refused[0].1["message"].as_str().unwrap();
    assert!(msg.contains("maxRequestsPerSecond"), "{msg}");
    // The bucket refills: after a pause requests pass again.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    alice.ok("sync", json!({})).await;
    srv.shutdown().await;
}

/// The rate is per device, not per connection: a device that reconnects
/// (or opens a second connection) draws from the bucket it emptied, and
/// malformed frames take from it like requests.
#[tokio::test]
async fn requests_per_second_per_device_survive_reconnects_and_count_malformed_frames() {
    let srv = start_server(json!({"maxRequestsPerSecond": 5})).await;
    let raw_login = |device: &'static str| {
        let url = srv.url().to_string();
        async move {
            let mut ws = raw_connect(&url).await;
            let login = json!({"account": "mallory", "deviceId": device, "token": ""});
            let r = raw_request(&mut ws, 1, "login", login)
                .await
                .expect("login reply");
            assert_eq!(r["code"], 200, "{r}");
            ws
        }
    };
    // Ten requests (the burst) on one connection, then a new connection.
    let mut ws = raw_login("m1").await;
    for id in 2..12 {
        raw_request(&mut ws, id, "queryInvitations", json!({}))
            .await
            .expect("reply");
    }
    drop(ws);
    let mut ws = raw_login("m1").await;
    let r = raw_request(&mut ws, 2, "queryInvitations", json!({}))
        .await
        .expect("reply");
    assert_eq!(r["code"], 416, "the reconnect found the bucket empty: {r}");
    // Another device: malformed frames empty its bucket as well.
    let mut ws2 = raw_login("m2").await;
    use futures_util::{SinkExt, StreamExt};
    for _ in 0..10 {
        ws2.send(tokio_tungstenite::tungstenite::Message::text("{not json"))
            .await
            .expect("send");
        // The reply names no request (id 0); the channels sync of the
        // login may come first.
        let reply = loop {
            let f = ws2.next().await.expect("a reply").expect("a frame");
            let Ok(v) = serde_json::from_str::<serde_json::Value>(f.to_text().unwrap_or("")) else {
                continue; // a ping
            };
            if v["id"] == 0 {
                break v;
            }
        };
        assert!(reply.to_string().contains("malformed"), "{reply}");
    }
    let r = raw_request(&mut ws2, 2, "queryInvitations", json!({}))
        .await
        .expect("reply");
    assert_eq!(r["code"], 416, "malformed frames took the burst: {r}");
    srv.shutdown().await;
}
