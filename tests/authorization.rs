//! Who may do what. Identity comes from the login alone (no request can
//! name its actor), and each operation checks the actor's standing in the
//! room: one row per rule, each tried by someone who must be refused.

mod common;

use common::*;
use nim_signaling_server::net::auth::hmac_token;
use serde_json::{json, Value};
use std::time::Duration;

/// alice created and joined a room and invited dave (r1); bob joined it;
/// carol is a stranger; dave is the invitee, logged in.
struct World {
    srv: TestServer,
    alice: TestClient,
    bob: TestClient,
    carol: TestClient,
    dave: TestClient,
    room: String,
}

async fn world() -> World {
    let srv = start_server(json!({})).await;
    let alice = login(srv.url(), "alice", "a1").await;
    let bob = login(srv.url(), "bob", "b1").await;
    let carol = login(srv.url(), "carol", "c1").await;
    let mut dave = login(srv.url(), "dave", "d1").await;
    let room = alice.create_joined(None).await;
    bob.ok("join", json!({"channelId": room})).await;
    alice.invite_rings(&mut dave, &room, "r1").await;
    World {
        srv,
        alice,
        bob,
        carol,
        dave,
        room,
    }
}

#[tokio::test]
async fn each_operation_checks_who_acts() {
    let w = world().await;
    let room = w.room.as_str();
    let r1 = |account: &str| invitation(room, account, "r1");
    // (rule, actor, op, params, code)
    #[rustfmt::skip]
    let rows: Vec<(&str, &TestClient, &str, Value, i32)> = vec![
        ("only the inviter cancels: a member",        &w.bob,   "cancel", r1("dave"),  10408),
        ("only the inviter cancels: the invitee",     &w.dave,  "cancel", r1("dave"),  10408),
        ("only the inviter cancels: a stranger",      &w.carol, "cancel", r1("dave"),  10408),
        ("only the invitee accepts: a member",        &w.bob,   "accept", r1("alice"), 10408),
        ("only the invitee accepts: the inviter",     &w.alice, "accept", r1("alice"), 10408),
        ("only the invitee accepts: a stranger",      &w.carol, "accept", r1("alice"), 10408),
        ("only the invitee rejects: a stranger",      &w.carol, "reject", r1("alice"), 10408),
        ("naming another inviter finds nothing",      &w.dave,  "accept", r1("bob"),   10408),
        ("a stranger cannot invite into the room",    &w.carol, "invite", json!({"channelId": room, "account": "erin", "requestId": "x"}), 10406),
        ("the invitee cannot invite before joining",  &w.dave,  "invite", json!({"channelId": room, "account": "erin", "requestId": "x"}), 10406),
        ("a stranger cannot close the room",          &w.carol, "close",  json!({"channelId": room}), 10406),
        ("a stranger cannot leave the room",          &w.carol, "leave",  json!({"channelId": room}), 10406),
        ("control only to members or the creator",    &w.alice, "control", json!({"channelId": room, "account": "carol"}), 10406),
    ];
    for (rule, actor, op, params, code) in rows {
        let (got, v) = actor.req(op, params.clone()).await;
        assert_eq!(got, code, "{rule}: {} {op} {params}: {v}", actor.account);
    }
    // None of that changed anything: dave's invitation still answers, and
    // the room still holds alice and bob.
    w.dave.ok("accept", r1("alice")).await;
    let q = w
        .carol
        .ok("queryChannelInfo", json!({"channelId": room}))
        .await;
    assert_eq!(accounts(&q["members"]), ["alice", "bob"]);
    w.srv.shutdown().await;
}

#[tokio::test]
async fn a_request_cannot_name_its_actor() {
    // Keys naming someone else as the actor are not part of any operation:
    // they are ignored, and the request acts as the logged-in account.
    let w = world().await;
    let v = w
        .carol
        .ok(
            "create",
            json!({"type": 1, "creatorId": "alice", "fromAccountId": "alice", "account": "alice"}),
        )
        .await;
    assert_eq!(v["channelInfo"]["creatorId"], "carol", "{v}");
    let (code, v) = w
        .carol
        .req(
            "cancel",
            json!({"channelId": w.room, "account": "dave", "requestId": "r1", "fromAccountId": "alice"}),
        )
        .await;
    assert_eq!(code, 10408, "{v}");
    w.srv.shutdown().await;
}

#[tokio::test]
async fn hmac_tokens_bind_account_and_expiry() {
    let srv = start_server(json!({"auth": {"mode": "hmac", "secret": "s3cret-0123456789"}})).await;
    let now = now_ms() as u64 / 1000;
    let good = hmac_token("s3cret-0123456789", "alice", now + 60);
    let forged = {
        // A valid token with one hex digit of its signature changed.
        let mut t = good.clone().into_bytes();
        let last = t.len() - 1;
        t[last] = if t[last] == b'0' { b'1' } else { b'0' };
        String::from_utf8(t).unwrap()
    };
    // (case, account, token)
    #[rustfmt::skip]
    let refused = [
        ("another account's token", "bob",   good.clone()),
        ("expired",                 "alice", hmac_token("s3cret-0123456789", "alice", now - 1)),
        ("another secret",          "alice", hmac_token("other", "alice", now + 60)),
        ("forged signature",        "alice", forged),
        ("expiry moved later",      "alice", good.replacen(&(now + 60).to_string(), &(now + 6000).to_string(), 1)),
        ("empty",                   "alice", String::new()),
        ("not a token",             "alice", "alice".to_string()),
    ];
    for (case, account, token) in refused {
        let c = client_for(
            srv.url(),
            account,
            "d1",
            json!({"token": token, "reconnect": false}),
        );
        let (code, body) = c.client.login().await;
        assert_eq!(code, 302, "{case}: {body}");
        c.client.shutdown();
    }
    login_with(srv.url(), "alice", "a1", json!({"token": good})).await;
    srv.shutdown().await;
}

#[tokio::test]
async fn nothing_but_login_before_login_and_a_bounded_wait_for_it() {
    let srv = start_server(json!({"loginTimeoutMs": 300})).await;
    // Any other first frame: 415, then the server closes the connection.
    let mut ws = raw_connect(srv.url()).await;
    let r = raw_request(&mut ws, 1, "join", json!({"channelId": "x"}))
        .await
        .expect("a reply");
    assert_eq!(r["code"], 415, "{r}");
    assert_eq!(raw_request(&mut ws, 2, "sync", json!({})).await, None);
    // Saying nothing: closed once loginTimeoutMs has passed.
    let mut idle = raw_connect(srv.url()).await;
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        use futures_util::StreamExt;
        while let Some(Ok(_)) = idle.next().await {}
    })
    .await;
    assert!(end.is_ok(), "an idle connection is closed");
    srv.shutdown().await;
}

/// The login timeout counts from TCP connect: a peer that finishes the
/// WebSocket handshake late and then says nothing is closed
/// loginTimeoutMs after it connected, not a whole timeout after the
/// handshake (which used to give it up to twice the timeout).
#[tokio::test]
async fn the_login_timeout_counts_from_connect_not_from_the_handshake() {
    use futures_util::StreamExt;
    // Long enough that a loaded machine cannot blur the two: the old
    // behaviour closed at 1.8 + 2 s, the documented one at 2 s.
    let srv = start_server(json!({"loginTimeoutMs": 2000})).await;
    let addr = srv.url().trim_start_matches("ws://").to_string();
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let connected = std::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(1800)).await;
    let (mut ws, _) = tokio_tungstenite::client_async(srv.url(), tcp)
        .await
        .expect("the handshake, within the login timeout");
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
    let after = connected.elapsed();
    assert!(end.is_ok(), "a silent connection is closed");
    assert!(
        after >= Duration::from_millis(1900) && after < Duration::from_millis(3000),
        "closed {after:?} after connect; loginTimeoutMs is 2000 from connect"
    );
    srv.shutdown().await;
}
