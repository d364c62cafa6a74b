//! The push gateway: an invitation with `pushInfo.needPush` to an account
//! with no device online is POSTed to the configured gateway, carrying the
//! push tokens the account's devices registered (registerPushToken); the
//! gateway's answer gives the inviter 10201 (taken) or 10202 (refused, no
//! answer, or no gateway configured).

mod common;
use common::receiver::{signed_by, Receiver};
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

const SECRET: &str = "push-secret";

fn with_gateway(gw: &Receiver) -> Value {
    json!({"push": {"url": format!("{}/push", gw.url), "secret": SECRET, "timeoutMs": 500}})
}

fn push_info() -> Value {
    json!({"needPush": true, "pushTitle": "Alice calls", "pushContent": "tap to answer",
           "pushPayload": {"call": 1}, "needBadge": false})
}

/// bob registers a token on each of his two devices, then both go offline.
async fn bob_registered_and_gone(srv: &TestServer) {
    for (device, token, provider) in [("b1", "tok-1", Some("fcm")), ("b2", "tok-2", None)] {
        let bob = login(srv.url(), "bob", device).await;
        let mut p = json!({"token": token});
        if let Some(provider) = provider {
            p["provider"] = json!(provider);
        }
        bob.ok("registerPushToken", p).await;
        bob.client.logout().await;
    }
    wait_offline(srv, "bob").await;
}

#[tokio::test]
async fn an_offline_invitee_is_pushed_with_its_devices_tokens() {
    let gw = Receiver::start().await;
    let srv = start_server(with_gateway(&gw)).await;
    bob_registered_and_gone(&srv).await;
    let alice = login(srv.url(), "alice", "a1").await;
    let room = alice.create_joined(Some("push-room")).await;
    let mut inv = invitation(&room, "bob", "r1");
    inv["pushInfo"] = push_info();
    inv["attachExt"] = json!("video?");
    // The gateway took it: "offline, pushed".
    alice.fails("invite", inv, 10201).await;

    let seen = gw.requests();
    assert_eq!(seen.len(), 1, "one push");
    assert_eq!(seen[0].path, "/push");
    assert!(signed_by(SECRET, &seen[0]), "signed with push.secret");
    assert!(!signed_by("another secret", &seen[0]), "the check can fail");
    let mut forged = seen[0].clone();
    forged.body = bytes::Bytes::from(String::from_utf8_lossy(&seen[0].body).replace("bob", "eve"));
    assert!(
        !signed_by(SECRET, &forged),
        "a changed body fails the check"
    );

    let body = &gw.bodies()[0];
    assert_eq!(body["account"], "bob");
    assert_eq!(body["title"], "Alice calls");
    assert_eq!(body["content"], "tap to answer");
    assert_eq!(body["payload"], json!({"call": 1}));
    assert_eq!(body["badge"], false);
    let devices = body["devices"].as_array().expect("devices");
    let tokens: Vec<(&str, &str, Option<&str>)> = devices
        .iter()
        .map(|d| {
            (
                d["deviceId"].as_str().unwrap(),
                d["token"].as_str().unwrap(),
                d["provider"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        tokens,
        vec![("b1", "tok-1", Some("fcm")), ("b2", "tok-2", None)]
    );
    let i = &body["invitation"];
    assert_eq!(i["channelInfo"]["channelId"], json!(room));
    assert_eq!(i["channelInfo"]["channelName"], "push-room");
    assert_eq!(
        (&i["from"], &i["to"], &i["requestId"], &i["attachExt"]),
        (
            &json!("alice"),
            &json!("bob"),
            &json!("r1"),
            &json!("video?")
        )
    );
    assert!(body["at"].as_i64().unwrap() > 0);
}

#[tokio::test]
async fn a_call_to_an_offline_invitee_is_pushed_too() {
    let gw = Receiver::start().await;
    let srv = start_server(with_gateway(&gw)).await;
    let alice = login(srv.url(), "alice", "a1").await;
    let r = alice
        .fails(
            "call",
            json!({"type": 1, "account": "carol", "requestId": "c1", "pushInfo": push_info()}),
            10201,
        )
        .await;
    // The call's result still carries the room it made.
    let room = r["channelInfo"]["channelId"].as_str().expect("room");
    let bodies = gw.bodies();
    assert_eq!(bodies.len(), 1);
    assert_eq!(bodies[0]["account"], "carol");
    assert_eq!(bodies[0]["devices"], json!([]), "carol registered no token");
    assert_eq!(bodies[0]["invitation"]["channelInfo"]["channelId"], room);
}

#[tokio::test]
async fn a_refusing_or_silent_gateway_gives_10202_and_the_invitation_stands() {
    let gw = Receiver::start().await;
    let srv = start_server(with_gateway(&gw)).await;
    let alice = login(srv.url(), "alice", "a1").await;
    let room = alice.create_joined(None).await;
    let invite = |id: &str| {
        let mut p = invitation(&room, "bob", id);
        p["pushInfo"] = push_info();
        p
    };
    gw.answer_with(503, Duration::ZERO);
    alice.fails("invite", invite("r1"), 10202).await;
    gw.answer_with(400, Duration::ZERO);
    alice.fails("invite", invite("r2"), 10202).await;
    // Slower than push.timeoutMs (500 ms): counts as refused.
    gw.answer_with(200, Duration::from_secs(3));
    alice.fails("invite", invite("r3"), 10202).await;
    assert_eq!(gw.requests().len(), 3);
    // Refused pushes do not undo the invitations: each can be cancelled.
    for id in ["r1", "r2", "r3"] {
        alice.ok("cancel", invitation(&room, "bob", id)).await;
    }
}

#[tokio::test]
async fn no_push_unless_asked_for_and_the_invitee_is_offline() {
    let gw = Receiver::start().await;
    let srv = start_server(with_gateway(&gw)).await;
    let alice = login(srv.url(), "alice", "a1").await;
    let mut bob = login(srv.url(), "bob", "b1").await;
    let room = alice.create_joined(None).await;
    // Online: it rings, nothing is pushed.
    let mut p = invitation(&room, "bob", "r1");
    p["pushInfo"] = push_info();
    alice.ok("invite", p).await;
    bob.expect_invite(&room, "alice", "r1").await;
    // Offline without needPush (or without pushInfo): just "offline".
    let mut p = invitation(&room, "carol", "r2");
    p["pushInfo"] = json!({"needPush": false, "pushTitle": "x"});
    alice.fails("invite", p, 10201).await;
    alice
        .fails("invite", invitation(&room, "carol", "r3"), 10201)
        .await;
    // The push is sent before the reply, so none of the above will come.
    assert_eq!(gw.requests().len(), 0, "{:?}", gw.bodies());
}

#[tokio::test]
async fn an_empty_token_removes_the_device_from_the_push() {
    let gw = Receiver::start().await;
    let srv = start_server(with_gateway(&gw)).await;
    bob_registered_and_gone(&srv).await;
    let b1 = login(srv.url(), "bob", "b1").await;
    b1.ok("registerPushToken", json!({"token": "tok-1b"})).await;
    let b2 = login(srv.url(), "bob", "b2").await;
    b2.ok("registerPushToken", json!({"token": ""})).await;
    b1.client.logout().await;
    b2.client.logout().await;
    wait_offline(&srv, "bob").await;
    let alice = login(srv.url(), "alice", "a1").await;
    let room = alice.create_joined(None).await;
    let mut p = invitation(&room, "bob", "r1");
    p["pushInfo"] = push_info();
    alice.fails("invite", p, 10201).await;
    let devices = &gw.bodies()[0]["devices"];
    let devices: Vec<(&str, &str)> = devices
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["deviceId"].as_str().unwrap(),
                d["token"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(devices, vec![("b1", "tok-1b")], "replaced, and removed");
}

#[tokio::test]
async fn registering_checks_its_params() {
    let srv = start_server(json!({})).await;
    let bob = login(srv.url(), "bob", "b1").await;
    let r = bob.fails("registerPushToken", json!({}), 414).await;
    assert!(r["message"].as_str().unwrap().contains("token"), "{r}");
    bob.fails("registerPushToken", json!({"token": "a\nb"}), 414)
        .await;
    // Without a gateway the token is kept all the same (one may be
    // configured later), and needPush invitations get 10202.
    bob.ok(
        "registerPushToken",
        json!({"token": "t", "provider": "apns"}),
    )
    .await;
}
