//! Three additions to NIM through real Rust clients: the invitation query
//! (queryInvitations), the delivery receipts the client library sends by
//! itself (INVITE_DELIVERED to the inviter) and the room update
//! (updateChannel, CHANNEL_UPDATE).

mod common;
use common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// How long "nothing more arrives" is watched for.
const QUIET: Duration = Duration::from_millis(500);

/// requestId → (channelId, other side, state) of one list of a
/// queryInvitations reply, after checking it is in (createTimestamp,
/// channelId) order.
fn by_request(list: &Value) -> BTreeMap<String, (String, String, String)> {
    let items = list.as_array().unwrap_or_else(|| panic!("a list: {list}"));
    let keys: Vec<(i64, String)> = items
        .iter()
        .map(|i| {
            let t = i["createTimestamp"].as_i64().expect("createTimestamp");
            assert!(i["expireTimestamp"].as_i64().expect("expireTimestamp") > t);
            (t, i["channelId"].as_str().unwrap().to_string())
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "oldest first, then by channelId: {list}");
    items
        .iter()
        .map(|i| {
            let s = |k: &str| {
                i[k].as_str()
                    .unwrap_or_else(|| panic!("{k}: {i}"))
                    .to_string()
            };
            (s("requestId"), (s("channelId"), s("account"), s("state")))
        })
        .collect()
}

#[tokio::test]
async fn after_a_restart_the_query_shows_every_invitation_and_its_state() {
    let srv = start_server(json!({"inviteTtlMs": 2000})).await;
    let alice = login(srv.url(), "alice", "a1").await;
    let mut bob = login(srv.url(), "bob", "b1").await;
    // One runs out first, in a room of its own (a later invitation into
    // the same room would drop it once it is told).
    let old = alice.create_joined(None).await;
    alice.invite_rings(&mut bob, &old, "r-exp").await;
    bob.expect_event("INVITE_TIMEOUT").await;
    let room = alice.create_joined(None).await;
    for rid in ["r-pend", "r-acc", "r-rej", "r-can"] {
        alice.invite_rings(&mut bob, &room, rid).await;
    }
    bob.ok("accept", invitation(&room, "alice", "r-acc")).await;
    bob.ok("reject", invitation(&room, "alice", "r-rej")).await;
    alice.ok("cancel", invitation(&room, "bob", "r-can")).await;

    // Both apps restart: the old clients go, new ones log in.
    alice.client.shutdown();
    bob.client.shutdown();
    let alice = login(srv.url(), "alice", "a1").await;
    let bob = login(srv.url(), "bob", "b1").await;

    let want = |other: &str| {
        let row = |rid: &str, ch: &str, state: &str| {
            (
                rid.to_string(),
                (ch.to_string(), other.to_string(), state.to_string()),
            )
        };
        BTreeMap::from([
            row("r-exp", &old, "expired"),
            row("r-pend", &room, "pending"),
            row("r-acc", &room, "accepted"),
            row("r-rej", &room, "rejected"),
            row("r-can", &room, "cancelled"),
        ])
    };
    let a = alice.ok("queryInvitations", json!({})).await;
    assert_eq!(by_request(&a["sent"]), want("bob"), "{a}");
    assert_eq!(a["received"], json!([]), "{a}");
    let b = bob.ok("queryInvitations", json!({})).await;
    assert_eq!(by_request(&b["received"]), want("alice"), "{b}");
    assert_eq!(b["sent"], json!([]), "{b}");
    // Oldest first: the one that ran out was made before the others.
    assert_eq!(a["sent"][0]["requestId"], "r-exp", "{a}");
    // Someone with no invitations gets two empty lists.
    let carol = login(srv.url(), "carol", "c1").await;
    let c = carol.ok("queryInvitations", json!({})).await;
    assert_eq!(c, json!({"code": 200, "sent": [], "received": []}));
    srv.shutdown().await;
}

/// alice has created and joined a room; bob is logged in on b1 and b2.
async fn alice_in_a_room_and_bob_on_two_devices(
) -> (TestServer, TestClient, TestClient, TestClient, String) {
    let srv = start_server(json!({})).await;
    let alice = login(srv.url(), "alice", "a1").await;
    let b1 = login(srv.url(), "bob", "b1").await;
    let b2 = login(srv.url(), "bob", "b2").await;
    let room = alice.create_joined(None).await;
    (srv, alice, b1, b2, room)
}

#[tokio::test]
async fn two_devices_of_the_invitee_make_two_receipts_and_a_repeat_makes_none() {
    let (srv, mut alice, mut b1, mut b2, room) = alice_in_a_room_and_bob_on_two_devices().await;
    alice.invite_rings(&mut b1, &room, "r1").await;
    b2.expect_invite(&room, "alice", "r1").await;
    alice.expect_delivered(&room, "bob", "r1", 1).await;
    let ev = alice.expect_delivered(&room, "bob", "r1", 2).await;
    assert_eq!(ev["channelInfo"]["channelId"], room.as_str(), "{ev}");
    // A device acknowledging again counts nothing and tells nobody.
    b1.ok("inviteDelivered", invitation(&room, "alice", "r1"))
        .await;
    alice.expect_silence(QUIET).await;
    // Receipts go to the inviter only: bob's devices hear nothing of them.
    b1.expect_silence(Duration::ZERO).await;
    b2.expect_silence(Duration::ZERO).await;
    srv.shutdown().await;
}

#[tokio::test]
async fn an_invitee_that_was_offline_acknowledges_from_its_offline_list() {
    let srv = start_server(json!({})).await;
    let mut alice = login(srv.url(), "alice", "a1").await;
    let room = alice.create_joined(None).await;
    alice.invite_offline(&room, "bob", "r1").await;
    alice.expect_silence(QUIET).await;
    let (_bob, offline, _) = login_full(srv.url(), "bob", "b1", json!({})).await;
    let list = offline.expect("the INVITE kept for bob");
    assert_eq!(list["eventList"][0]["eventType"], "INVITE", "{list}");
    alice.expect_delivered(&room, "bob", "r1", 1).await;
    srv.shutdown().await;
}

#[tokio::test]
async fn no_receipt_for_an_invitation_already_answered_or_cancelled() {
    let srv = start_server(json!({})).await;
    let mut alice = login(srv.url(), "alice", "a1").await;
    let room = alice.create_joined(None).await;
    // Cancelled while bob was away: his offline list still has the INVITE
    // (and the cancel), but the late acknowledgement is refused.
    alice.invite_offline(&room, "bob", "r1").await;
    let cancel =
        json!({"channelId": room, "account": "bob", "requestId": "r1", "offlineEnabled": true});
    alice.ok("cancel", cancel).await;
    let (mut b1, offline, _) = login_full(srv.url(), "bob", "b1", json!({})).await;
    let types: Vec<Value> = offline.expect("offline list")["eventList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["eventType"].clone())
        .collect();
    assert_eq!(types, [json!("INVITE"), json!("CANCEL_INVITE")]);
    alice.expect_silence(QUIET).await;

    // Rejected on one device: another device's acknowledgement changes
    // nothing (10409) and tells nobody.
    alice.invite_rings(&mut b1, &room, "r2").await;
    alice.expect_delivered(&room, "bob", "r2", 1).await;
    b1.ok("reject", invitation(&room, "alice", "r2")).await;
    alice.expect_event_from("REJECT", &room, "bob").await;
    // (b2 is new: it gets r1's INVITE and cancel as its offline list too,
    // and its library's acknowledgement of r1 is refused as well.)
    let (b2, _, _) = login_full(srv.url(), "bob", "b2", json!({})).await;
    b2.fails("inviteDelivered", invitation(&room, "alice", "r2"), 10409)
        .await;
    alice.expect_silence(QUIET).await;
    srv.shutdown().await;
}

#[tokio::test]
async fn a_member_updates_the_room_and_everyone_else_hears_it() {
    let (srv, mut alice, mut b1, mut b2, room) = alice_in_a_room_and_bob_on_two_devices().await;
    let mut carol = login(srv.url(), "carol", "c1").await;
    let mut dave = login(srv.url(), "dave", "d1").await;
    b1.ok("join", json!({"channelId": room})).await;
    alice.expect_event("ROOM_JOIN").await;
    carol.ok("join", json!({"channelId": room})).await;
    alice.expect_event("ROOM_JOIN").await;
    b1.expect_event("ROOM_JOIN").await;
    b2.expect_event("ROOM_JOIN").await;

    let r = b1
        .ok(
            "updateChannel",
            json!({"channelId": room, "ext": "{\"topic\":\"q3\"}"}),
        )
        .await;
    assert_eq!(r["channelInfo"]["channelId"], room.as_str(), "{r}");
    assert_eq!(r["channelInfo"]["ext"], "{\"topic\":\"q3\"}", "{r}");
    for c in [&mut alice, &mut carol] {
        let ev = c.expect_event_from("CHANNEL_UPDATE", &room, "bob").await;
        assert_eq!(ev["eventTypeCode"], 11, "{ev}");
        assert_eq!(ev["channelInfo"], r["channelInfo"], "{ev}");
    }
    let sync = b2.expect_sync("CHANNEL_UPDATE").await;
    assert_eq!(sync["channelInfo"], r["channelInfo"], "{sync}");
    let q = dave
        .ok("queryChannelInfo", json!({"channelId": room}))
        .await;
    assert_eq!(q["channelInfo"]["ext"], "{\"topic\":\"q3\"}");

    // Not a member: 10406, nothing changes and nobody hears of it.
    dave.fails(
        "updateChannel",
        json!({"channelId": room, "ext": "mine"}),
        10406,
    )
    .await;
    let too_long = "e".repeat(4097);
    b1.fails(
        "updateChannel",
        json!({"channelId": room, "ext": too_long}),
        414,
    )
    .await;
    tokio::join!(
        alice.expect_silence(QUIET),
        b1.expect_silence(QUIET),
        b2.expect_silence(QUIET),
        carol.expect_silence(QUIET),
        dave.expect_silence(QUIET),
    );
    let q = dave
        .ok("queryChannelInfo", json!({"channelId": room}))
        .await;
    assert_eq!(q["channelInfo"]["ext"], "{\"topic\":\"q3\"}");
    // A closed room is gone for updates.
    alice.ok("close", json!({"channelId": room})).await;
    alice
        .fails(
            "updateChannel",
            json!({"channelId": room, "ext": ""}),
            10404,
        )
        .await;
    srv.shutdown().await;
}

/// A client configured with `inviteReceipts: false` sends no receipts: its
/// inviter hears nothing after the INVITE, while a device with receipts on
/// still makes one.
#[tokio::test]
async fn a_client_with_receipts_off_sends_none() {
    let srv = start_server(json!({})).await;
    let mut alice = login(srv.url(), "alice", "a1").await;
    let mut quiet = login_with(srv.url(), "bob", "b1", json!({"inviteReceipts": false})).await;
    let room = alice.create_joined(None).await;
    alice.invite_rings(&mut quiet, &room, "r1").await;
    alice.expect_silence(QUIET).await;
    let mut loud = login(srv.url(), "bob", "b2").await;
    alice.invite_rings(&mut loud, &room, "r2").await;
    quiet.expect_invite(&room, "alice", "r2").await;
    alice.expect_delivered(&room, "bob", "r2", 1).await;
    alice.expect_silence(QUIET).await;
}
