//! Protocol scenarios through the Rust client over real sockets: every
//! operation, every notification kind, and the codes of the seed.

mod common;
use common::*;
use nim_signaling_client::{ConnState, Notification};
use serde_json::{json, Value};

fn default_server() -> Value {
    json!({})
}

/// alice in a room of her own has invited bob ("r1"), and the INVITE has
/// rung on both of bob's devices, b1 and b2.
async fn bob_rung_on_two_devices() -> (TestServer, TestClient, TestClient, TestClient, String) {
    let srv = start_server(default_server()).await;
    let mut alice = login(srv.url(), "alice", "a1").await;
    let mut b1 = login(srv.url(), "bob", "b1").await;
    let mut b2 = login(srv.url(), "bob", "b2").await;
    let room = alice.create_joined(None).await;
    alice.invite_rings(&mut b1, &room, "r1").await;
    b2.expect_invite(&room, "alice", "r1").await;
    // Both of bob's devices acknowledge it.
    alice.expect_delivered(&room, "bob", "r1", 1).await;
    alice.expect_delivered(&room, "bob", "r1", 2).await;
    (srv, alice, b1, b2, room)
}

// ---------------------------------------------------------------------------
// 1. create, close, join, leave

#[tokio::test]
async fn create_named_and_auto_named_rooms() {
    let srv = start_server(default_server()).await;
    let alice = login(srv.url(), "alice", "a1").await;

    let t0 = now_ms();
    let r = alice
        .ok(
            "create",
            json!({"type": 2, "channelName": "room-1", "ext": "hello"}),
        )
        .await;
    let info = &r["channelInfo"];
    assert!(!info["channelId"].as_str().unwrap().is_empty(), "{r}");
    assert_eq!(info["channelName"], "room-1");
    assert_eq!(info["type"], 2);
    assert_eq!(info["ext"], "hello");
    assert_eq!(info["creatorId"], "alice");
    assert_eq!(info["invalid"], 0);
    let created = info["createTimestamp"].as_i64().unwrap();
    assert!(created >= t0 - 1000 && created <= now_ms() + 1000, "{r}");
    assert!(info["expireTimestamp"].as_i64().unwrap() > created, "{r}");

    // No name: the server makes one up, different for every room.
    let a = alice.ok("create", json!({"type": 1})).await;
    let b = alice
        .ok("create", json!({"type": 3, "channelName": ""}))
        .await;
    for x in [&a, &b] {
        assert!(
            !x["channelInfo"]["channelName"].as_str().unwrap().is_empty(),
            "{x}"
        );
        assert_eq!(x["channelInfo"]["ext"], "", "{x}");
    }
    assert_ne!(cid(&a), cid(&b));
    assert_ne!(
        a["channelInfo"]["channelName"],
        b["channelInfo"]["channelName"]
    );

    // The name is taken while the room lives, by anyone.
    let bob = login(srv.url(), "bob", "b1").await;
    bob.fails("create", json!({"type": 1, "channelName": "room-1"}), 10405)
        .await;
    alice
        .fails("create", json!({"type": 1, "channelName": "room-1"}), 10405)
        .await;

    // Closing frees it.
    alice.ok("close", json!({"channelId": cid(&r)})).await;
    let again = bob
        .ok("create", json!({"type": 1, "channelName": "room-1"}))
        .await;
    assert_ne!(cid(&again), cid(&r));
    assert_eq!(again["channelInfo"]["creatorId"], "bob");
    srv.shutdown().await;
}

/// A name that looks like a channelId is held like any other (the Redis
/// store writes rooms under such names without reading first, and must
/// fall back to reading when the name is taken), and so is the id of a
/// room created without a name, which is named by it.
#[tokio::test]
async fn names_shaped_like_channel_ids_are_held_like_any_other() {
    let srv = start_server(default_server()).await;
    let alice = login(srv.url(), "alice", "a1").await;
    let bob = login(srv.url(), "bob", "b1").await;
    let name = "0123456789abcdef0123456789abcdef";
    let r = alice
        .ok("create", json!({"type": 1, "channelName": name}))
        .await;
    bob.fails("create", json!({"type": 1, "channelName": name}), 10405)
        .await;
    let unnamed = cid(&alice.ok("create", json!({"type": 1})).await);
    bob.fails("create", json!({"type": 1, "channelName": unnamed}), 10405)
        .await;
    // Closed, its name is free again: held by a room no longer valid.
    alice.ok("close", json!({"channelId": cid(&r)})).await;
    let again = bob
        .ok("create", json!({"type": 1, "channelName": name}))
        .await;
    assert_ne!(cid(&again), cid(&r));
    assert_eq!(again["channelInfo"]["creatorId"], "bob");
    srv.shutdown().await;
}

#[tokio::test]
async fn close_notifies_the_other_members_only() {
    let srv = start_server(default_server()).await;
    let mut alice = login(srv.url(), "alice", "a1").await;
    let mut bob = login(srv.url(), "bob", "b1").await;
    let mut carol = login(srv.url(), "carol", "c1").await;
    let dave = login(srv.url(), "dave", "d1").await;

    let room = alice.create_joined(Some("closing")).await;
    bob.ok("join", json!({"channelId": room})).await;
    alice.expect_event_from("ROOM_JOIN", &room, "bob").await;
    carol.ok("join", json!({"channelId": room})).await;
    alice.expect_event_from("ROOM_JOIN", &room, "carol").await;
    bob.expect_event_from("ROOM_JOIN", &room, "carol").await;

    // Outsiders may not close.
    dave.fails("close", json!({"channelId": room}), 10406).await;
    // Unknown rooms do not exist.
    dave.fails("close", json!({"channelId": "no-such-room"}), 10404)
        .await;

    // A member (not the creator) closes.
    bob.ok("close", json!({"channelId": room, "ext": "bye"}))
        .await;
    for c in [&mut alice, &mut carol] {
        let ev = c.expect_event_from("ROOM_CLOSE", &room, "bob").await;
        assert_eq!(ev["eventTypeCode"], 1);
        assert_eq!(ev["channelInfo"]["invalid"], 1, "{ev}");
        assert_eq!(ev["attachExt"], "bye", "{ev}");
        assert!(ev["time"].as_i64().unwrap() > 0);
    }
    // Nobody gets a LEAVE, and the closer hears nothing.
    let f_alice = alice.create(None).await;
    let f_carol = carol.create(None).await;
    let f_bob = bob.create(None).await;
    fence(&dave, &f_alice, &mut [&mut alice]).await;
    fence(&dave, &f_carol, &mut [&mut carol]).await;
    fence(&dave, &f_bob, &mut [&mut bob]).await;

    // The room is gone for every purpose.
    let q = dave
        .ok("queryChannelInfo", json!({"channelId": room}))
        .await;
    assert_eq!(q["channelInfo"]["invalid"], 1, "{q}");
    assert_eq!(q["members"], json!([]), "{q}");
    dave.fails("join", json!({"channelId": room}), 10404).await;
    alice
        .fails("leave", json!({"channelId": room}), 10404)
        .await;
    alice
        .fails("close", json!({"channelId": room}), 10404)
        .await;
    srv.shutdown().await;
}

#[tokio::test]
async fn the_creator_may_close_without_joining() {
    let srv = start_server(default_server()).await;
    let alice = login(srv.url(), "alice", "a1").await;
    let mut bob = login(srv.url(), "bob", "b1").await;
    let room = alice.create(None).await;
    bob.ok("join", json!({"channelId": room})).await;
    alice.ok("close", json!({"channelId": room})).await;
    let ev = bob.expect_event_from("ROOM_CLOSE", &room, "alice").await;
    assert_eq!(ev["channelInfo"]["invalid"], 1);
    srv.shutdown().await;
}

#[tokio::test]
async fn join_tells_the_others_and_checks_everything() {
    let srv = start_server(default_server()).await;
    let mut alice = login(srv.url(), "alice", "a1").await;
    let mut bob = login(srv.url(), "bob", "b1").await;
    let carol = login(srv.url(), "carol", "c1").await;

    let room = alice.create(Some("joinable")).await;
    // The creator joins like anyone; nobody else is there to be told.
    let r = alice.ok("join", json!({"channelId": room, "uid": 5})).await;
    assert_eq!(cid(&r), room);
    assert_eq!(r["channelInfo"]["invalid"], 0);
    assert_eq!(accounts(&r["members"]), ["alice"]);
    let me = member_of(&r["members"], "alice");
    assert_eq!(me["uid"], 5);
    assert!(me["createTimestamp"].as_i64().unwrap() > 0, "{me}");
    assert!(me["expireTimestamp"].is_i64(), "{me}");

    // uid as a numeric string (as the seed shows it) comes back as a number.
    let r = bob
        .ok(
            "join",
            json!({"channelId": room, "uid": "132", "attachExt": "hi all"}),
        )
        .await;
    assert_eq!(accounts(&r["members"]), ["alice", "bob"]);
    assert_eq!(member_of(&r["members"], "bob")["uid"], json!(132));
    let ev = alice.expect_event_from("ROOM_JOIN", &room, "bob").await;
    assert_eq!(ev["eventTypeCode"], 2);
    assert_eq!(ev["attachExt"], "hi all");
    assert_eq!(ev["member"]["account"], "bob");
    assert_eq!(ev["member"]["uid"], json!(132), "{ev}");
    assert_eq!(ev["channelInfo"]["invalid"], 0);

    // No uid: the server picks a positive one that nobody else has.
    let r = carol.ok("join", json!({"channelId": room, "uid": 0})).await;
    let uid = member_of(&r["members"], "carol")["uid"].as_u64().unwrap();
    assert!(uid > 0 && uid != 5 && uid != 132, "{r}");
    let ev = alice.expect_event_from("ROOM_JOIN", &room, "carol").await;
    assert_eq!(ev["member"]["uid"], uid);
    bob.expect_event_from("ROOM_JOIN", &room, "carol").await;

    // Errors: already in (same device), uid taken, unknown room.
    bob.fails("join", json!({"channelId": room}), 10407).await;
    let dave = login(srv.url(), "dave", "d1").await;
    dave.fails("join", json!({"channelId": room, "uid": "5"}), 10417)
        .await;
    dave.fails("join", json!({"channelId": "nope"}), 10404)
        .await;
    // None of these told anyone anything.
    fence(&dave, &room, &mut [&mut alice]).await;
    fence(&dave, &room, &mut [&mut bob]).await;
    srv.shutdown().await;
}

#[tokio::test]
async fn join_beyond_max_members_is_refused() {
    let srv = start_server(json!({"maxMembers": 2})).await;
    let alice = login(srv.url(), "alice", "a1").await;
    let bob = login(srv.url(), "bob", "b1").await;
    let carol = login(srv.url(), "carol", "c1").await;
    let room = alice.create_joined(None).await;
    bob.ok("join", json!({"channelId": room})).await;
    carol.fails("join", json!({"channelId": room}), 10419).await;
    // Nor can anyone be invited into a full room.
    alice
        .fails("invite", invitation(&room, "carol", "r1"), 10419)
        .await;
    // A place frees up when someone leaves.
    bob.ok("leave", json!({"channelId": room})).await;
    carol.ok("join", json!({"channelId": room})).await;
    srv.shutdown().await;
}

#[tokio::test]
async fn leave_tells_the_others() {
    let srv = start_server(default_server()).await;
    let mut alice = login(srv.url(), "alice", "a1").await;
    let mut bob = login(srv.url(), "bob", "b1").await;
    let carol = login(srv.url(), "carol", "c1").await;
    let room = alice.create_joined(None).await;
    bob.ok("join", json!({"channelId": room})).await;
    alice.expect_event_from("ROOM_JOIN", &room, "bob").await;

    bob.ok(
        "leave",
        json!({"channelId": room, "attachExt": "gotta go", "offlineEnabled": false}),
    )
    .await;
    let ev = alice.expect_event_from("LEAVE", &room, "bob").await;
    assert_eq!(ev["eventTypeCode"], 7);
    assert_eq!(ev["attachExt"], "gotta go");
    assert_eq!(ev["channelInfo"]["invalid"], 0);

    // Not in the room (any more): 10406.
    bob.fails("leave", json!({"channelId": room}), 10406).await;
    carol
        .fails("leave", json!({"channelId": room}), 10406)
        .await;
    carol
        .fails("leave", json!({"channelId": "nope"}), 10404)
        .await;
    let q = carol
        .ok("queryChannelInfo", json!({"channelId": room}))
        .await;
    assert_eq!(accounts(&q["members"]), ["alice"]);
    // The leaver hears nothing of its own leave.
    let f = bob.create(None).await;
    fence(&carol, &f, &mut [&mut bob]).await;

    // The last member leaving keeps the room valid (joinable again).
    alice.ok("leave", json!({"channelId": room})).await;
    let q = carol
        .ok("queryChannelInfo", json!({"channelId": room}))
        .await;
    assert_eq!(q["channelInfo"]["invalid"], 0, "{q}");
    assert_eq!(q["members"], json!([]));
    carol.ok("join", json!({"channelId": room})).await;
    srv.shutdown().await;
}

// ---------------------------------------------------------------------------
// 2. invite, cancel, accept, reject, control

fn push_info() -> Value {
    json!({
        "needPush": true, "pushTitle": "title", "pushContent": "you are invited",
        "pushPayload": {"from": 111}, "needBadge": false,
    })
}

#[tokio::test]
async fn invite_rings_every_device_of_the_invitee() {
    let srv = start_server(default_server()).await;
    let alice = login(srv.url(), "alice", "a1").await;
    let mut b1 = login(srv.url(), "bob", "b1").await;
    let mut b2 = login(srv.url(), "bob", "b2").await;
    // The creator may invite without joining.
    let room = alice.create(Some("ring")).await;
    let r = alice
        .ok(
            "invite",
            json!({
                "channelId": room, "account": "bob", "requestId": "req-1",
                "offlineEnabled": true, "attachExt": "12", "pushInfo": push_info(),
            }),
        )
        .await;
    assert_eq!(r, json!({"code": 200}));
    for b in [&mut b1, &mut b2] {
        let ev = b.expect_invite(&room, "alice", "req-1").await;
        assert_eq!(ev["eventTypeCode"], 3);
        assert_eq!(ev["toAccount"], "bob");
        assert_eq!(ev["attachExt"], "12");
        assert_eq!(ev["channelInfo"]["channelName"], "ring");
        assert_eq!(ev["channelInfo"]["invalid"], 0);
        let p = &ev["pushInfo"];
        assert_eq!(p["needPush"], true, "{ev}");
        assert_eq!(p["pushTitle"], "title");
        assert_eq!(p["pushContent"], "you are invited");
        assert_eq!(p["pushPayload"], json!({"from": 111}));
        assert_eq!(p["needBadge"], false);
    }
    srv.shutdown().await;
}

#[tokio::test]
async fn invite_to_an_offline_invitee() {
    let srv = start_server(default_server()).await;
    let alice = login(srv.url(), "alice", "a1").await;
    let room = alice.create_joined(None).await;
    // Nobody to ring: 10201 (the invitation still stands).
    let r = alice
        .fails("invite", invitation(&room, "bob", "r1"), 10201)
        .await;
    assert_eq!(r["code"], 10201);
    // Push asked for and no push provider: 10202.
    alice
        .fails(
            "invite",
            json!({"channelId": room, "account": "carol", "requestId": "r2",
                   "offlineEnabled": true, "pushInfo": push_info()}),
            10202,
        )
        .await;
    // Push info without needPush is still just "offline".
    alice
        .fails(
            "invite",
            json!({"channelId": room, "account": "dave", "requestId": "r3",
                   "pushInfo": {"needPush": false, "pushTitle": "t"}}),
            10201,
        )
        .await;
    // The invitation made while bob was offline can be answered later.
    let bob = login(srv.url(), "bob", "b1").await;
    bob.ok("accept", invitation(&room, "alice", "r1")).await;
    srv.shutdown().await;
}

#[tokio::test]
async fn invite_errors() {
    let srv = start_server(default_server()).await;
    let alice = login(srv.url(), "alice", "a1").await;
    let mut bob = login(srv.url(), "bob", "b1").await;
    let carol = login(srv.url(), "carol", "c1").await;
    let room = alice.create_joined(None).await;
    bob.ok("join", json!({"channelId": room})).await;
    // carol is neither creator nor member.
    carol
        .fails("invite", invitation(&room, "dave", "x"), 10406)
        .await;
    // bob is already in.
    alice
        .fails("invite", invitation(&room, "bob", "x"), 10407)
        .await;
    alice
        .fails("invite", invitation("nope", "bob", "x"), 10404)
        .await;
    // None of it rang bob.
    fence(&carol, &room, &mut [&mut bob]).await;
    srv.shutdown().await;
}

#[tokio::test]
async fn cancel_withdraws_an_invitation() {
    let srv = start_server(default_server()).await;
    let alice = login(srv.url(), "alice", "a1").await;
    let mut bob = login(srv.url(), "bob", "b1").await;
    let room = alice.create_joined(None).await;
    alice.invite_rings(&mut bob, &room, "r1").await;
    let inv = invitation(&room, "bob", "r1");

    // Wrong request id: no such invitation.
    alice
        .fails("cancel", invitation(&room, "bob", "r2"), 10408)
        .await;
    // Right id, wrong invitee.
    alice
        .fails("cancel", invitation(&room, "carol", "r1"), 10408)
        .await;
    alice
        .fails("cancel", invitation("nope", "bob", "r1"), 10404)
        .await;

    alice
        .ok(
            "cancel",
            json!({"channelId": room, "account": "bob", "requestId": "r1", "attachExt": "never mind"}),
        )
        .await;
    let ev = bob.expect_event_from("CANCEL_INVITE", &room, "alice").await;
    assert_eq!(ev["eventTypeCode"], 4);
    assert_eq!(ev["requestId"], "r1");
    assert_eq!(ev["toAccount"], "bob");
    assert_eq!(ev["attachExt"], "never mind");

    // A cancelled invitation can be neither cancelled again nor answered.
    alice.fails("cancel", inv, 10408).await;
    let ans = invitation(&room, "alice", "r1");
    bob.fails("accept", ans.clone(), 10408).await;
    bob.fails("reject", ans, 10408).await;
    srv.shutdown().await;
}

#[tokio::test]
async fn cancel_after_the_answer() {
    let srv = start_server(default_server()).await;
    let alice = login(srv.url(), "alice", "a1").await;
    let mut bob = login(srv.url(), "bob", "b1").await;
    let room = alice.create_joined(None).await;
    for (rid, op, code) in [("acc", "accept", 10410), ("rej", "reject", 10409)] {
        alice.invite_rings(&mut bob, &room, rid).await;
        let ans = invitation(&room, "alice", rid);
        bob.ok(op, ans.clone()).await;
        alice
            .fails("cancel", invitation(&room, "bob", rid), code)
            .await;
        // An answered invitation cannot be answered again, either way.
        bob.fails("accept", ans.clone(), code).await;
        bob.fails("reject", ans, code).await;
    }
    srv.shutdown().await;
}

#[tokio::test]
async fn accept_tells_the_inviter_and_the_invitees_other_devices() {
    let (srv, mut alice, mut b1, mut b2, room) = bob_rung_on_two_devices().await;

    let r = b1
        .ok(
            "accept",
            json!({"channelId": room, "account": "alice", "requestId": "r1", "attachExt": "yes"}),
        )
        .await;
    // Without autoJoin: no room data, and bob is not a member.
    assert_eq!(r, json!({"code": 200}));
    let ev = alice.expect_event_from("ACCEPT", &room, "bob").await;
    assert_eq!(ev["eventTypeCode"], 6);
    assert_eq!(ev["toAccount"], "alice");
    assert_eq!(ev["requestId"], "r1");
    assert_eq!(ev["attachExt"], "yes");
    let sync = b2.expect_sync("ACCEPT").await;
    assert_eq!(sync["fromAccountId"], "bob");
    assert_eq!(sync["toAccount"], "alice");
    assert_eq!(sync["requestId"], "r1");
    assert_eq!(sync["channelInfo"]["channelId"], room.as_str());
    // The accepting device gets no sync of its own accept.
    let f = b1.create(None).await;
    fence(&alice, &f, &mut [&mut b1, &mut b2]).await;
    // The other device cannot accept what was accepted.
    b2.fails("accept", invitation(&room, "alice", "r1"), 10410)
        .await;
    let q = alice
        .ok("queryChannelInfo", json!({"channelId": room}))
        .await;
    assert_eq!(accounts(&q["members"]), ["alice"]);
    // Joining is then up to bob; alice hears about it.
    b1.ok("join", json!({"channelId": room})).await;
    alice.expect_event_from("ROOM_JOIN", &room, "bob").await;
    srv.shutdown().await;
}

#[tokio::test]
async fn accept_with_auto_join() {
    let (srv, mut alice, mut b1, mut b2, room) = bob_rung_on_two_devices().await;
    let r = b1
        .ok(
            "accept",
            json!({"channelId": room, "account": "alice", "requestId": "r1",
                   "attachExt": "ok", "autoJoin": true, "uid": "123", "joinAttachExt": "join ext"}),
        )
        .await;
    assert_eq!(cid(&r), room);
    assert_eq!(r["channelInfo"]["invalid"], 0);
    assert_eq!(accounts(&r["members"]), ["alice", "bob"]);
    assert_eq!(member_of(&r["members"], "bob")["uid"], json!(123));

    let ev = alice.expect_event_from("ACCEPT", &room, "bob").await;
    assert_eq!(ev["attachExt"], "ok");
    let ev = alice.expect_event_from("ROOM_JOIN", &room, "bob").await;
    assert_eq!(ev["attachExt"], "join ext");
    assert_eq!(ev["member"]["account"], "bob");
    assert_eq!(ev["member"]["uid"], json!(123));
    b2.expect_sync("ACCEPT").await;
    // bob is a member now: the fence can use the room.
    fence(&alice, &room, &mut [&mut b1, &mut b2]).await;
    // bob is in the room on b1, so b2 cannot join.
    b2.fails("join", json!({"channelId": room}), 10420).await;
    srv.shutdown().await;
}

#[tokio::test]
async fn accept_with_auto_join_that_cannot_join_changes_nothing() {
    let srv = start_server(json!({"maxMembers": 1})).await;
    let mut alice = login(srv.url(), "alice", "a1").await;
    let mut bob = login(srv.url(), "bob", "b1").await;
    // alice invites without joining, then fills the room with carol.
    let room = alice.create(None).await;
    alice.invite_rings(&mut bob, &room, "r1").await;
    alice.expect_delivered(&room, "bob", "r1", 1).await;
    let carol = login(srv.url(), "carol", "c1").await;
    carol.ok("join", json!({"channelId": room})).await;
    let acc = json!({"channelId": room, "account": "alice", "requestId": "r1", "autoJoin": true});
    bob.fails("accept", acc, 10419).await;
    // Both or neither: the invitation is still open and alice heard nothing.
    let f = alice.create(None).await;
    fence(&carol, &f, &mut [&mut alice]).await;
    bob.ok("reject", invitation(&room, "alice", "r1")).await;
    alice.expect_event_from("REJECT", &room, "bob").await;
    srv.shutdown().await;
}

#[tokio::test]
async fn reject_tells_the_inviter_and_the_rejecter_can_still_join() {
    let (srv, mut alice, mut b1, mut b2, room) = bob_rung_on_two_devices().await;
    b2.ok(
        "reject",
        json!({"channelId": room, "account": "alice", "requestId": "r1", "attachExt": "busy"}),
    )
    .await;
    let ev = alice.expect_event_from("REJECT", &room, "bob").await;
    assert_eq!(ev["eventTypeCode"], 5);
    assert_eq!(ev["toAccount"], "alice");
    assert_eq!(ev["requestId"], "r1");
    assert_eq!(ev["attachExt"], "busy");
    let sync = b1.expect_sync("REJECT").await;
    assert_eq!(sync["fromAccountId"], "bob");
    assert_eq!(sync["attachExt"], "busy");
    let f = b1.create(None).await;
    fence(&alice, &f, &mut [&mut b1, &mut b2]).await;

    b1.fails("accept", invitation(&room, "alice", "r1"), 10409)
        .await;
    let r = b2.ok("join", json!({"channelId": room})).await;
    assert_eq!(accounts(&r["members"]), ["alice", "bob"]);
    alice.expect_event_from("ROOM_JOIN", &room, "bob").await;
    srv.shutdown().await;
}

#[tokio::test]
async fn answers_to_an_offline_inviter() {
    let srv = start_server(default_server()).await;
    let alice = login(srv.url(), "alice", "a1").await;
    let bob = login(srv.url(), "bob", "b1").await;
    let room = alice.create(None).await;
    for rid in ["r1", "r2"] {
        alice.ok("invite", invitation(&room, "bob", rid)).await;
    }
    alice.client.logout().await;
    wait_offline(&srv, "alice").await;
    // The answer counts, but the inviter is not there to hear it: 10201.
    bob.fails("accept", invitation(&room, "alice", "r1"), 10201)
        .await;
    bob.fails("reject", invitation(&room, "alice", "r2"), 10201)
        .await;
    bob.fails("accept", invitation(&room, "alice", "r1"), 10410)
        .await;
    srv.shutdown().await;
}

#[tokio::test]
async fn control_reaches_one_member_or_all() {
    let srv = start_server(default_server()).await;
    let mut alice = login(srv.url(), "alice", "a1").await;
    let mut bob = login(srv.url(), "bob", "b1").await;
    let mut carol = login(srv.url(), "carol", "c1").await;
    let mut dave = login(srv.url(), "dave", "d1").await;
    let room = alice.create_joined(None).await;
    bob.ok("join", json!({"channelId": room})).await;
    alice.expect_event("ROOM_JOIN").await;
    carol.ok("join", json!({"channelId": room})).await;
    alice.expect_event("ROOM_JOIN").await;
    bob.expect_event("ROOM_JOIN").await;

    // To one member.
    let ev = alice.control_reaches(&mut bob, &room, "mute").await;
    assert_eq!(ev["eventTypeCode"], 8);
    // ... and to nobody else: carol's next event is the broadcast below.

    // To every member when no account is given (the sender excepted).
    alice
        .ok("control", json!({"channelId": room, "attachExt": "all"}))
        .await;
    for c in [&mut bob, &mut carol] {
        let ev = c.expect_event_from("CONTROL", &room, "alice").await;
        assert_eq!(ev["attachExt"], "all");
    }
    // An empty account means everyone too.
    bob.ok(
        "control",
        json!({"channelId": room, "account": "", "attachExt": "all2"}),
    )
    .await;
    for c in [&mut alice, &mut carol] {
        let ev = c.expect_event_from("CONTROL", &room, "bob").await;
        assert_eq!(ev["attachExt"], "all2");
    }

    // The sender need not be a member.
    dave.control_reaches(&mut carol, &room, "from outside")
        .await;
    // The receiver must be a member (or the creator).
    alice
        .fails(
            "control",
            json!({"channelId": room, "account": "dave"}),
            10406,
        )
        .await;
    alice
        .fails(
            "control",
            json!({"channelId": "nope", "account": "bob"}),
            10404,
        )
        .await;
    // The creator is a valid receiver after leaving.
    alice.ok("leave", json!({"channelId": room})).await;
    bob.expect_event("LEAVE").await;
    carol.expect_event("LEAVE").await;
    dave.control_reaches(&mut alice, &room, "creator").await;

    // Nothing else reached anyone.
    fence(&dave, &room, &mut [&mut alice]).await;
    fence(&dave, &room, &mut [&mut bob]).await;
    fence(&dave, &room, &mut [&mut carol]).await;
    let f = dave.create(None).await;
    fence(&alice, &f, &mut [&mut dave]).await;
    srv.shutdown().await;
}

// ---------------------------------------------------------------------------
// 3. call

#[tokio::test]
async fn call_creates_joins_and_invites() {
    let srv = start_server(default_server()).await;
    let mut alice = login(srv.url(), "alice", "a1").await;
    let mut bob = login(srv.url(), "bob", "b1").await;
    let r = alice
        .ok(
            "call",
            json!({"type": 2, "channelName": "call-1", "ext": "e", "uid": "7",
                   "account": "bob", "requestId": "r1", "attachExt": "ring",
                   // The seed's call example sends numbers for the flags.
                   "pushInfo": {"needPush": 1, "needBadge": 0, "pushTitle": "t"}}),
        )
        .await;
    let room = cid(&r);
    assert_eq!(r["channelInfo"]["channelName"], "call-1");
    assert_eq!(r["channelInfo"]["type"], 2);
    assert_eq!(r["channelInfo"]["ext"], "e");
    assert_eq!(r["channelInfo"]["creatorId"], "alice");
    assert_eq!(r["channelInfo"]["invalid"], 0);
    assert_eq!(accounts(&r["members"]), ["alice"]);
    assert_eq!(member_of(&r["members"], "alice")["uid"], json!(7));

    let ev = bob.expect_invite(&room, "alice", "r1").await;
    assert_eq!(ev["toAccount"], "bob");
    assert_eq!(ev["attachExt"], "ring");
    assert_eq!(ev["pushInfo"]["needPush"], true);
    assert_eq!(ev["pushInfo"]["needBadge"], false);
    assert_eq!(ev["pushInfo"]["pushTitle"], "t");
    alice.expect_delivered(&room, "bob", "r1", 1).await;

    // The name is taken.
    alice
        .fails(
            "call",
            json!({"type": 1, "channelName": "call-1", "account": "bob", "requestId": "r2"}),
            10405,
        )
        .await;
    let r = bob
        .ok(
            "accept",
            json!({"channelId": room, "account": "alice", "requestId": "r1", "autoJoin": true}),
        )
        .await;
    assert_eq!(accounts(&r["members"]), ["alice", "bob"]);
    alice.expect_event_from("ACCEPT", &room, "bob").await;
    alice.expect_event_from("ROOM_JOIN", &room, "bob").await;
    srv.shutdown().await;
}

#[tokio::test]
async fn call_to_an_offline_callee_keeps_the_room() {
    let srv = start_server(default_server()).await;
    let alice = login(srv.url(), "alice", "a1").await;
    let r = alice
        .fails(
            "call",
            json!({"type": 1, "account": "bob", "requestId": "r1"}),
            10201,
        )
        .await;
    // The reply still carries the room.
    let room = cid(&r);
    assert_eq!(accounts(&r["members"]), ["alice"]);
    let q = alice
        .ok("queryChannelInfo", json!({"channelId": room}))
        .await;
    assert_eq!(q["channelInfo"]["invalid"], 0);
    assert_eq!(accounts(&q["members"]), ["alice"]);
    // With push asked for: 10202, room kept too.
    let r = alice
        .fails(
            "call",
            json!({"type": 1, "account": "bob", "requestId": "r2",
                   "pushInfo": {"needPush": true}}),
            10202,
        )
        .await;
    let q = alice
        .ok("queryChannelInfo", json!({"channelId": cid(&r)}))
        .await;
    assert_eq!(accounts(&q["members"]), ["alice"]);
    srv.shutdown().await;
}

#[tokio::test]
async fn calling_yourself_fails_and_leaves_no_room() {
    let srv = start_server(default_server()).await;
    let alice = login(srv.url(), "alice", "a1").await;
    let mut a2 = login(srv.url(), "alice", "a2").await;
    alice
        .fails(
            "call",
            json!({"type": 1, "channelName": "self", "account": "alice", "requestId": "r1"}),
            10407,
        )
        .await;
    alice
        .fails("queryChannelInfo", json!({"channelName": "self"}), 10404)
        .await;
    // alice is in no room, and her other device was not rung.
    let (_a3, _, channels) = login_full(srv.url(), "alice", "a3", json!({})).await;
    assert_eq!(channels["channels"], json!([]));
    let f = a2.create(None).await;
    fence(&alice, &f, &mut [&mut a2]).await;
    // The name is free.
    alice
        .ok("create", json!({"type": 1, "channelName": "self"}))
        .await;
    srv.shutdown().await;
}

// ---------------------------------------------------------------------------
// 4. one account, two devices

#[tokio::test]
async fn one_account_on_two_devices() {
    let srv = start_server(default_server()).await;
    let alice = login(srv.url(), "alice", "a1").await;
    let mut b1 = login(srv.url(), "bob", "b1").await;
    let mut b2 = login(srv.url(), "bob", "b2").await;
    let room = alice.call_rings(&mut b1, "r1").await;
    b2.expect_invite(&room, "alice", "r1").await;
    b1.ok("join", json!({"channelId": room})).await;
    b2.fails("join", json!({"channelId": room}), 10420).await;
    b1.fails("join", json!({"channelId": room}), 10407).await;
    // Events about the room reach both devices of the member account.
    let carol = login(srv.url(), "carol", "c1").await;
    carol.ok("join", json!({"channelId": room})).await;
    for b in [&mut b1, &mut b2] {
        b.expect_event_from("ROOM_JOIN", &room, "carol").await;
    }
    // Either device may leave for the account.
    b2.ok("leave", json!({"channelId": room})).await;
    let q = carol
        .ok("queryChannelInfo", json!({"channelId": room}))
        .await;
    assert_eq!(accounts(&q["members"]), ["alice", "carol"]);
    b2.ok("join", json!({"channelId": room})).await;
    srv.shutdown().await;
}

#[tokio::test]
async fn a_second_login_of_the_same_device_replaces_the_first() {
    let srv = start_server(default_server()).await;
    let mut first = login(srv.url(), "bob", "b1").await;
    let second = login(srv.url(), "bob", "b1").await;
    let code = first.expect_state(ConnState::Kicked).await;
    assert_eq!(code, 403);
    assert!(!first.client.is_logged_in());
    let (c, _) = first.client.request("sync", json!({})).await;
    assert_eq!(c, 415);
    second.ok("sync", json!({})).await;
    srv.shutdown().await;
}

// ---------------------------------------------------------------------------
// 5. offline delivery and sync

#[tokio::test]
async fn offline_invite_shows_the_room_as_it_is_at_delivery() {
    let srv = start_server(default_server()).await;
    let alice = login(srv.url(), "alice", "a1").await;

    // Kept for bob: offlineEnabled.
    let closed = alice.create(Some("closed-later")).await;
    alice
        .fails(
            "invite",
            json!({"channelId": closed, "account": "bob", "requestId": "r1",
                   "offlineEnabled": true, "attachExt": "call me"}),
            10201,
        )
        .await;
    // Not kept: offlineEnabled false or absent.
    let other = alice.create(None).await;
    alice
        .fails(
            "invite",
            json!({"channelId": other, "account": "bob", "requestId": "r2", "offlineEnabled": false}),
            10201,
        )
        .await;
    alice
        .fails("invite", invitation(&other, "bob", "r3"), 10201)
        .await;
    // Kept, in a room that stays open.
    let open = alice.create(None).await;
    alice
        .fails(
            "invite",
            json!({"channelId": open, "account": "bob", "requestId": "r4", "offlineEnabled": true}),
            10201,
        )
        .await;
    alice.ok("close", json!({"channelId": closed})).await;

    let (bob, offline, channels) = login_full(srv.url(), "bob", "b1", json!({})).await;
    let offline = offline.expect("an offline list");
    let list = offline["eventList"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{offline}");
    let ids: Vec<&str> = list
        .iter()
        .map(|e| e["requestId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["r1", "r4"], "in the order they happened");
    let ev = &list[0];
    assert_eq!(ev["eventType"], "INVITE");
    assert_eq!(ev["eventTypeCode"], 3);
    assert_eq!(ev["fromAccountId"], "alice");
    assert_eq!(ev["toAccount"], "bob");
    assert_eq!(ev["attachExt"], "call me");
    assert_eq!(ev["channelInfo"]["channelId"], closed.as_str());
    assert_eq!(ev["channelInfo"]["invalid"], 1, "closed since: {ev}");
    assert_eq!(list[1]["channelInfo"]["channelId"], open.as_str());
    assert_eq!(list[1]["channelInfo"]["invalid"], 0);
    assert_eq!(channels["channels"], json!([]));

    // sync returns the same list, and the rooms.
    let s = bob.ok("sync", json!({})).await;
    assert_eq!(&s["eventList"], &offline["eventList"]);
    assert_eq!(s["channels"], json!([]));

    // The open invitation can still be answered.
    bob.ok(
        "accept",
        json!({"channelId": open, "account": "alice", "requestId": "r4", "autoJoin": true}),
    )
    .await;
    let s = bob.ok("sync", json!({})).await;
    let ch = s["channels"].as_array().unwrap();
    assert_eq!(ch.len(), 1, "{s}");
    assert_eq!(ch[0]["channelInfo"]["channelId"], open.as_str());
    assert_eq!(accounts(&ch[0]["members"]), ["bob"]);

    // The same device logging in again does not get them again.
    bob.client.logout().await;
    let (_bob, offline, channels) = login_full(srv.url(), "bob", "b1", json!({})).await;
    assert!(offline.is_none(), "delivered twice: {offline:?}");
    assert_eq!(channels["channels"].as_array().unwrap().len(), 1);
    srv.shutdown().await;
}

#[tokio::test]
async fn offline_invite_then_cancel_are_both_delivered() {
    let srv = start_server(default_server()).await;
    let alice = login(srv.url(), "alice", "a1").await;
    let room = alice.create_joined(None).await;
    let inv =
        json!({"channelId": room, "account": "bob", "requestId": "r1", "offlineEnabled": true});
    alice.fails("invite", inv.clone(), 10201).await;
    alice.ok("cancel", inv).await;
    let (bob, offline, _) = login_full(srv.url(), "bob", "b1", json!({})).await;
    let offline = offline.expect("an offline list");
    let kinds: Vec<&str> = offline["eventList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["INVITE", "CANCEL_INVITE"], "{offline}");
    // The room is still valid; the app learns from the list that the
    // invitation is void, and the server agrees.
    assert_eq!(offline["eventList"][0]["channelInfo"]["invalid"], 0);
    bob.fails("accept", invitation(&room, "alice", "r1"), 10408)
        .await;
    srv.shutdown().await;
}

#[tokio::test]
async fn control_is_never_kept_offline() {
    let srv = start_server(default_server()).await;
    let alice = login(srv.url(), "alice", "a1").await;
    let bob = login(srv.url(), "bob", "b1").await;
    let room = alice.create_joined(None).await;
    bob.ok("join", json!({"channelId": room})).await;
    bob.client.logout().await;
    wait_offline(&srv, "bob").await;
    // bob is still a member (drop grace), so the control is accepted ...
    alice
        .ok("control", json!({"channelId": room, "account": "bob"}))
        .await;
    // ... but it is not an offline event.
    let (_bob, offline, channels) = login_full(srv.url(), "bob", "b1", json!({})).await;
    assert!(offline.is_none(), "{offline:?}");
    assert_eq!(channels["channels"].as_array().unwrap().len(), 1);
    srv.shutdown().await;
}

#[tokio::test]
async fn offline_room_close_for_a_member_who_went_away() {
    let srv = start_server(default_server()).await;
    let alice = login(srv.url(), "alice", "a1").await;
    let bob = login(srv.url(), "bob", "b1").await;
    let room = alice.create_joined(None).await;
    bob.ok("join", json!({"channelId": room})).await;
    bob.client.logout().await;
    wait_offline(&srv, "bob").await;
    // bob is still a member during the drop grace period.
    alice
        .ok(
            "close",
            json!({"channelId": room, "offlineEnabled": true, "ext": "over"}),
        )
        .await;
    let (_bob, offline, channels) = login_full(srv.url(), "bob", "b1", json!({})).await;
    let offline = offline.expect("an offline list");
    let list = offline["eventList"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{offline}");
    assert_eq!(list[0]["eventType"], "ROOM_CLOSE");
    assert_eq!(list[0]["attachExt"], "over");
    assert_eq!(list[0]["channelInfo"]["invalid"], 1);
    assert_eq!(channels["channels"], json!([]));
    srv.shutdown().await;
}

// Several worker threads, as a real server has: the session's clean-up then
// runs truly in parallel with the next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_logout_returns_events_are_kept_offline() {
    let srv = start_server(default_server()).await;
    let alice = login(srv.url(), "alice", "a1").await;
    let room = alice.create(None).await;
    // Repeated, because a server that marks the account offline only some
    // time after answering the logout loses an invitation only sometimes.
    for i in 0..40 {
        let (bob, offline, _) = login_full(srv.url(), "bob", "b1", json!({})).await;
        if i > 0 {
            let list = offline.expect("the invitation made after the last logout");
            assert_eq!(list["eventList"].as_array().unwrap().len(), 1, "{list}");
            assert_eq!(list["eventList"][0]["requestId"], format!("r{}", i - 1));
        }
        let (code, body) = bob.client.logout().await;
        assert_eq!(code, 200, "{body}");
        // Once bob's logout has succeeded, bob is offline.
        alice
            .fails(
                "invite",
                json!({"channelId": room, "account": "bob", "requestId": format!("r{i}"),
                       "offlineEnabled": true}),
                10201,
            )
            .await;
    }
    srv.shutdown().await;
}

#[tokio::test]
async fn events_to_an_online_account_are_not_offline_events() {
    let srv = start_server(default_server()).await;
    let alice = login(srv.url(), "alice", "a1").await;
    let mut b1 = login(srv.url(), "bob", "b1").await;
    let room = alice.create(None).await;
    alice
        .ok(
            "invite",
            json!({"channelId": room, "account": "bob", "requestId": "r1", "offlineEnabled": true}),
        )
        .await;
    b1.expect_invite(&room, "alice", "r1").await;
    // bob's other device was not logged in when it happened; it was
    // delivered online, so it is no offline event for anyone.
    let (_b2, offline, _) = login_full(srv.url(), "bob", "b2", json!({})).await;
    assert!(offline.is_none(), "{offline:?}");
    srv.shutdown().await;
}

// ---------------------------------------------------------------------------
// 6. channels sync, 7. members sync

#[tokio::test]
async fn channels_sync_lists_my_rooms_after_login() {
    let srv = start_server(default_server()).await;
    let alice = login(srv.url(), "alice", "a1").await;
    let bob = login(srv.url(), "bob", "b1").await;
    let r1 = alice.create_joined(Some("one")).await;
    let r2 = alice.create_joined(Some("two")).await;
    let _not_joined = alice.create(Some("three")).await;
    let left = alice.create_joined(Some("four")).await;
    alice.ok("leave", json!({"channelId": left})).await;
    bob.ok("join", json!({"channelId": r2, "uid": 9})).await;

    let (_a2, _, channels) = login_full(srv.url(), "alice", "a2", json!({})).await;
    let list = channels["channels"].as_array().unwrap();
    let mut ids: Vec<&str> = list
        .iter()
        .map(|c| c["channelInfo"]["channelId"].as_str().unwrap())
        .collect();
    ids.sort();
    let mut want = vec![r1.as_str(), r2.as_str()];
    want.sort();
    assert_eq!(ids, want, "{channels}");
    for c in list {
        assert_eq!(c["channelInfo"]["invalid"], 0);
        let id = c["channelInfo"]["channelId"].as_str().unwrap();
        if id == r2 {
            assert_eq!(c["channelInfo"]["channelName"], "two");
            assert_eq!(accounts(&c["members"]), ["alice", "bob"]);
            assert_eq!(member_of(&c["members"], "bob")["uid"], 9);
        } else {
            assert_eq!(accounts(&c["members"]), ["alice"]);
        }
    }
    let (_b2, _, channels) = login_full(srv.url(), "bob", "b2", json!({})).await;
    assert_eq!(channels["channels"].as_array().unwrap().len(), 1);
    srv.shutdown().await;
}

#[tokio::test]
async fn members_sync_when_a_member_vanishes() {
    let srv = start_server(json!({"memberDropGraceMs": 300})).await;
    let mut alice = login(srv.url(), "alice", "a1").await;
    let mut bob = login(srv.url(), "bob", "b1").await;
    let carol = login(srv.url(), "carol", "c1").await;
    let room = alice.create_joined(None).await;
    bob.ok("join", json!({"channelId": room})).await;
    alice.expect_event("ROOM_JOIN").await;
    carol.ok("join", json!({"channelId": room})).await;
    alice.expect_event("ROOM_JOIN").await;
    bob.expect_event("ROOM_JOIN").await;

    bob.client.shutdown();
    let m = alice.expect_members_sync().await;
    assert_eq!(m["channelInfo"]["channelId"], room.as_str());
    assert_eq!(m["channelInfo"]["invalid"], 0);
    assert_eq!(accounts(&m["members"]), ["alice", "carol"]);
    // No LEAVE for a vanished member.
    let f = alice.create(None).await;
    fence(&carol, &f, &mut [&mut alice]).await;
    let q = carol
        .ok("queryChannelInfo", json!({"channelId": room}))
        .await;
    assert_eq!(accounts(&q["members"]), ["alice", "carol"]);
    srv.shutdown().await;
}

#[tokio::test]
async fn a_member_who_comes_back_in_time_stays() {
    // Generous grace: bob must be back within it, however slow the machine.
    let srv = start_server(json!({"memberDropGraceMs": 3000})).await;
    let alice = login(srv.url(), "alice", "a1").await;
    let bob = login(srv.url(), "bob", "b1").await;
    let room = alice.create_joined(None).await;
    bob.ok("join", json!({"channelId": room})).await;
    bob.client.logout().await;
    wait_offline(&srv, "bob").await;
    let gone = now_ms();
    let (bob, _, channels) = login_full(srv.url(), "bob", "b1", json!({})).await;
    assert_eq!(channels["channels"].as_array().unwrap().len(), 1);
    // Past the end of the grace period, bob is still in.
    sleep_past(gone + 3500).await;
    let q = bob.ok("queryChannelInfo", json!({"channelId": room})).await;
    assert_eq!(accounts(&q["members"]), ["alice", "bob"]);
    srv.shutdown().await;
}

// ---------------------------------------------------------------------------
// 8. expiry

#[tokio::test]
async fn an_unjoined_room_expires() {
    let srv = start_server(json!({"roomTtlMs": 400})).await;
    let alice = login(srv.url(), "alice", "a1").await;
    let bob = login(srv.url(), "bob", "b1").await;
    let r = alice
        .ok("create", json!({"type": 1, "channelName": "short"}))
        .await;
    let room = cid(&r);
    let info = &r["channelInfo"];
    let ttl = info["expireTimestamp"].as_i64().unwrap() - info["createTimestamp"].as_i64().unwrap();
    assert_eq!(ttl, 400, "{r}");
    // A joined room does not expire.
    let kept = alice.create_joined(None).await;

    wait_until("the room to expire", || {
        let alice = &alice;
        let room = room.clone();
        async move {
            let (code, q) = alice
                .req("queryChannelInfo", json!({"channelId": room}))
                .await;
            code == 10404 || q["channelInfo"]["invalid"] == 1
        }
    })
    .await;
    bob.fails("join", json!({"channelId": room}), 10404).await;
    alice
        .fails("queryChannelInfo", json!({"channelName": "short"}), 10404)
        .await;
    // The name is free again.
    alice
        .ok("create", json!({"type": 1, "channelName": "short"}))
        .await;
    sleep_past(now_ms() + 500).await;
    bob.ok("join", json!({"channelId": kept})).await;
    srv.shutdown().await;
}

#[tokio::test]
async fn an_unanswered_invitation_expires() {
    let srv = start_server(json!({"inviteTtlMs": 300})).await;
    let alice = login(srv.url(), "alice", "a1").await;
    let mut bob = login(srv.url(), "bob", "b1").await;
    let room = alice.create_joined(None).await;
    for rid in ["r1", "r2"] {
        alice.ok("invite", invitation(&room, "bob", rid)).await;
    }
    bob.expect_invite(&room, "alice", "r1").await;
    let last = bob.expect_invite(&room, "alice", "r2").await;
    // Both invitations were made by then; wait until both are past their TTL.
    sleep_past(last["time"].as_i64().unwrap() + 300).await;
    let ans = invitation(&room, "alice", "r1");
    bob.fails("accept", ans.clone(), 10408).await;
    bob.fails("reject", ans, 10408).await;
    alice
        .fails("cancel", invitation(&room, "bob", "r2"), 10408)
        .await;
    // The server told bob both had timed out (see tests/delivery.rs).
    for rid in ["r1", "r2"] {
        let ev = bob.expect_event("INVITE_TIMEOUT").await;
        assert_eq!(ev["requestId"], rid, "{ev}");
    }
    // Inviting again with the same request id starts afresh.
    alice.invite_rings(&mut bob, &room, "r1").await;
    bob.ok("accept", invitation(&room, "alice", "r1")).await;
    srv.shutdown().await;
}

#[tokio::test]
async fn an_emptied_room_expires() {
    let srv = start_server(json!({"roomTtlMs": 400})).await;
    let alice = login(srv.url(), "alice", "a1").await;
    let room = alice.create_joined(None).await;
    // Joined: it outlives its TTL.
    let q = alice
        .ok("queryChannelInfo", json!({"channelId": room}))
        .await;
    sleep_past(q["channelInfo"]["createTimestamp"].as_i64().unwrap() + 600).await;
    let q = alice
        .ok("queryChannelInfo", json!({"channelId": room}))
        .await;
    assert_eq!(q["channelInfo"]["invalid"], 0, "{q}");
    // Emptied: joinable for a while, then gone.
    alice.ok("leave", json!({"channelId": room})).await;
    wait_until("the emptied room to expire", || {
        let alice = &alice;
        let room = room.clone();
        async move {
            let (code, q) = alice
                .req("queryChannelInfo", json!({"channelId": room}))
                .await;
            code == 10404 || q["channelInfo"]["invalid"] == 1
        }
    })
    .await;
    alice.fails("join", json!({"channelId": room}), 10404).await;
    srv.shutdown().await;
}

#[tokio::test]
async fn offline_events_about_forgotten_rooms_show_invalid() {
    let srv = start_server(json!({"roomTtlMs": 400})).await;
    let alice = login(srv.url(), "alice", "a1").await;
    let room = alice.create(None).await;
    alice.invite_offline(&room, "bob", "r1").await;
    // Wait until the server has forgotten the room altogether.
    wait_until("the room to be forgotten", || {
        let alice = &alice;
        let room = room.clone();
        async move {
            let (code, _) = alice
                .req("queryChannelInfo", json!({"channelId": room}))
                .await;
            code == 10404
        }
    })
    .await;
    let (_bob, offline, _) = login_full(srv.url(), "bob", "b1", json!({})).await;
    let offline = offline.expect("an offline list");
    let ev = &offline["eventList"][0];
    assert_eq!(ev["eventType"], "INVITE");
    assert_eq!(ev["channelInfo"]["channelId"], room.as_str());
    assert_eq!(ev["channelInfo"]["invalid"], 1, "{ev}");
    srv.shutdown().await;
}

// ---------------------------------------------------------------------------
// 9. auth and login

#[tokio::test]
async fn static_auth() {
    let srv = start_server(json!({"auth": {"mode": "static", "accounts": {"alice": "ta"}}})).await;
    for (account, token) in [("alice", "wrong"), ("alice", ""), ("bob", "ta")] {
        let mut c = client_for(srv.url(), account, "d1", json!({"token": token}));
        let (code, body) = c.client.login().await;
        assert_eq!(code, 302, "{account}/{token}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["code"], 302);
        assert!(v["message"].is_string());
        assert!(!c.client.is_logged_in());
        assert_eq!(c.expect_state(ConnState::Disconnected).await, 302);
        let (code, _) = c.client.request("sync", json!({})).await;
        assert_eq!(code, 415);
    }
    let alice = login_with(srv.url(), "alice", "a1", json!({"token": "ta"})).await;
    assert!(alice.client.is_logged_in());
    alice.ok("create", json!({"type": 1})).await;
    srv.shutdown().await;
}

#[tokio::test]
async fn requests_before_login_get_415() {
    let srv = start_server(default_server()).await;
    // Through the client: refused locally.
    let c = client_for(srv.url(), "alice", "a1", json!({}));
    let (code, body) = c.client.request("create", json!({"type": 1})).await;
    assert_eq!(code, 415, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["code"], 415);
    // Over a raw socket: refused by the server.
    let mut ws = raw_connect(srv.url()).await;
    let r = raw_request(&mut ws, 7, "create", json!({"type": 1}))
        .await
        .expect("a reply");
    assert_eq!(r["code"], 415, "{r}");
    assert!(r["message"].is_string());
    // And the server did not create anything for anyone.
    let (c, _, _) = login_full(srv.url(), "alice", "a1", json!({})).await;
    c.ok("sync", json!({})).await;
    srv.shutdown().await;
}

#[tokio::test]
async fn login_result_and_logout() {
    let srv = start_server(default_server()).await;
    let mut c = client_for(srv.url(), "alice", "a1", json!({}));
    let (code, body) = c.client.login().await;
    assert_eq!(code, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["code"], 200);
    assert_eq!(v["account"], "alice");
    assert_eq!(v["deviceId"], "a1");
    c.expect_state(ConnState::Connected).await;
    c.expect_channels().await;
    let (code, _) = c.client.logout().await;
    assert_eq!(code, 200);
    c.expect_state(ConnState::Disconnected).await;
    let (code, _) = c.client.request("sync", json!({})).await;
    assert_eq!(code, 415);
    // Login again works.
    let (code, _) = c.client.login().await;
    assert_eq!(code, 200);
    c.expect_channels().await;
    c.ok("sync", json!({})).await;
    srv.shutdown().await;
}

// ---------------------------------------------------------------------------
// 10. query, 11. bad parameters

#[tokio::test]
async fn query_channel_info_by_id_and_name() {
    let srv = start_server(default_server()).await;
    let alice = login(srv.url(), "alice", "a1").await;
    let bob = login(srv.url(), "bob", "b1").await;
    let r = alice
        .ok(
            "create",
            json!({"type": 3, "channelName": "findme", "ext": "x"}),
        )
        .await;
    let room = cid(&r);
    bob.ok("join", json!({"channelId": room, "uid": 42})).await;
    let by_id = bob.ok("queryChannelInfo", json!({"channelId": room})).await;
    let by_name = bob
        .ok("queryChannelInfo", json!({"channelName": "findme"}))
        .await;
    assert_eq!(by_id, by_name);
    assert_eq!(by_id["channelInfo"]["channelName"], "findme");
    assert_eq!(by_id["channelInfo"]["type"], 3);
    assert_eq!(by_id["channelInfo"]["ext"], "x");
    assert_eq!(by_id["channelInfo"]["creatorId"], "alice");
    assert_eq!(by_id["channelInfo"]["invalid"], 0);
    assert_eq!(
        by_id["channelInfo"]["createTimestamp"],
        r["channelInfo"]["createTimestamp"]
    );
    assert_eq!(accounts(&by_id["members"]), ["bob"]);
    assert_eq!(member_of(&by_id["members"], "bob")["uid"], 42);

    bob.fails("queryChannelInfo", json!({"channelId": "nope"}), 10404)
        .await;
    bob.fails("queryChannelInfo", json!({"channelName": "nope"}), 10404)
        .await;
    // A closed room's name points nowhere; its id still shows it, invalid.
    alice.ok("close", json!({"channelId": room})).await;
    bob.fails("queryChannelInfo", json!({"channelName": "findme"}), 10404)
        .await;
    let q = bob.ok("queryChannelInfo", json!({"channelId": room})).await;
    assert_eq!(q["channelInfo"]["invalid"], 1);
    srv.shutdown().await;
}

#[tokio::test]
async fn bad_parameters_are_414() {
    let srv = start_server(default_server()).await;
    let alice = login(srv.url(), "alice", "a1").await;
    // Checked by the client, before anything is sent.
    let (code, body) = alice.client.request("join", json!({})).await;
    assert_eq!(code, 414, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["code"], 414);
    assert!(v["message"].as_str().unwrap().contains("channelId"), "{v}");
    let v = alice.fails("create", json!({"type": 7}), 414).await;
    assert!(v["message"].as_str().unwrap().contains("type"), "{v}");
    alice.fails("create", json!({"type": "1"}), 414).await;
    alice
        .fails("invite", json!({"channelId": "c", "account": "bob"}), 414)
        .await;
    alice
        .fails("join", json!({"channelId": "c", "uid": "abc"}), 414)
        .await;
    alice.fails("queryChannelInfo", json!({}), 414).await;
    alice.fails("nosuchop", json!({}), 414).await;

    // Checked by the server too, for clients that do not check.
    let mut ws = raw_connect(srv.url()).await;
    let r = raw_request(
        &mut ws,
        1,
        "login",
        json!({"account": "carol", "deviceId": "raw"}),
    )
    .await
    .unwrap();
    assert_eq!(r["code"], 200, "{r}");
    let r = raw_request(&mut ws, 2, "join", json!({})).await.unwrap();
    assert_eq!(r["code"], 414, "{r}");
    assert!(r["message"].as_str().unwrap().contains("channelId"), "{r}");
    let r = raw_request(&mut ws, 3, "create", json!({"type": 7}))
        .await
        .unwrap();
    assert_eq!(r["code"], 414, "{r}");
    // The session survives bad requests.
    let r = raw_request(&mut ws, 4, "create", json!({"type": 1}))
        .await
        .unwrap();
    assert_eq!(r["code"], 200, "{r}");
    srv.shutdown().await;
}

// ---------------------------------------------------------------------------
// Notification kinds, all together: the app sees each kind, in order.

#[tokio::test]
async fn every_notification_kind_reaches_the_app() {
    let srv = start_server(json!({"memberDropGraceMs": 300})).await;
    let alice = login(srv.url(), "alice", "a1").await;
    let room = alice.create_joined(None).await;
    alice.invite_offline(&room, "bob", "r1").await;

    // Connection states, then the offline list, then the channels sync.
    let mut b1 = client_for(srv.url(), "bob", "b1", json!({}));
    let (code, _) = b1.client.login().await;
    assert_eq!(code, 200);
    let mut states = Vec::new();
    let offline = loop {
        match tokio::time::timeout(WAIT, b1.rx.recv())
            .await
            .unwrap()
            .unwrap()
        {
            Notification::ConnectionState(c) => states.push((c.state, c.code)),
            Notification::Offline(t) => break serde_json::from_str::<Value>(&t).unwrap(),
            other => panic!("expected the offline list, got {other:?}"),
        }
    };
    assert_eq!(
        states,
        [(ConnState::Connecting, 200), (ConnState::Connected, 200)]
    );
    assert_eq!(offline["eventList"][0]["requestId"], "r1");
    assert_eq!(b1.expect_channels().await["channels"], json!([]));

    // Online notify and multi-client sync.
    let (mut b2, _, _) = login_full(srv.url(), "bob", "b2", json!({})).await;
    b1.ok(
        "accept",
        json!({"channelId": room, "account": "alice", "requestId": "r1", "autoJoin": true}),
    )
    .await;
    assert_eq!(b2.expect_sync("ACCEPT").await["requestId"], "r1");
    let carol = login(srv.url(), "carol", "c1").await;
    carol.ok("join", json!({"channelId": room})).await;
    b1.expect_event_from("ROOM_JOIN", &room, "carol").await;
    b2.expect_event_from("ROOM_JOIN", &room, "carol").await;

    // Members sync, on every device of a member account.
    carol.client.shutdown();
    for b in [&mut b1, &mut b2] {
        let m = b.expect_members_sync().await;
        assert_eq!(m["channelInfo"]["channelId"], room.as_str());
        assert_eq!(accounts(&m["members"]), ["alice", "bob"]);
    }
    srv.shutdown().await;
}
