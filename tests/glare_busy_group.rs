//! The additions to NIM through real Rust clients over real sockets: glare
//! (a call back while the caller's invitation rings joins its room),
//! `busyCheck` (10430, and no ring) and `inviteMany` (one result per
//! invitee, each invitee seeing a single invitation).

mod common;
use common::receiver::Receiver;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

/// Long enough for an event that is coming to arrive.
const QUIET: Duration = Duration::from_millis(400);

fn call_params(to: &str, request_id: &str) -> Value {
    json!({"type": 1, "account": to, "requestId": request_id})
}

// ---------------------------------------------------------------- glare

/// A call's reply that glared into `room`.
#[track_caller]
fn assert_glared(r: &Value, room: &str) {
    assert_eq!(
        (cid(r), &r["glare"]),
        (room.to_string(), &json!(true)),
        "{r}"
    );
}

#[tokio::test]
async fn calling_back_a_ringing_caller_joins_its_room() {
    let srv = start_server(json!({})).await;
    let mut alice = login(srv.url(), "alice", "a1").await;
    let mut b1 = login(srv.url(), "bob", "b1").await;
    let mut b2 = login(srv.url(), "bob", "b2").await;
    let room = alice.call_rings(&mut b1, "r1").await;
    b2.expect_invite(&room, "alice", "r1").await;
    // Each of bob's devices acknowledged the INVITE (receipts).
    alice.expect_delivered(&room, "bob", "r1", 1).await;
    alice.expect_delivered(&room, "bob", "r1", 2).await;

    // bob calls alice back before answering: type, name, ext and requestId
    // of his call are not used, his uid and attachExt are.
    let back = json!({"type": 2, "channelName": "bobs-own-room", "ext": "x", "uid": 77,
                      "account": "alice", "requestId": "ignored", "attachExt": "back"});
    let r = b1.ok("call", back).await;
    assert_eq!(r["glare"], true, "{r}");
    assert_eq!(cid(&r), room, "no second room: alice's: {r}");
    assert_eq!(r["channelInfo"]["type"], 1, "{r}");
    assert_eq!(accounts(&r["members"]), ["alice", "bob"], "{r}");
    assert_eq!(member_of(&r["members"], "bob")["uid"], 77, "{r}");

    // alice: ACCEPT of her own r1, then bob's ROOM_JOIN; never an INVITE.
    let acc = alice.expect_event_from("ACCEPT", &room, "bob").await;
    assert_eq!(acc["requestId"], "r1", "{acc}");
    assert_eq!(acc["toAccount"], "alice", "{acc}");
    assert_eq!(acc["attachExt"], "back", "{acc}");
    let join = alice.expect_event_from("ROOM_JOIN", &room, "bob").await;
    assert_eq!(join["member"]["uid"], 77, "{join}");
    assert_eq!(join["attachExt"], "back", "{join}");
    alice.expect_silence(QUIET).await;
    // bob's other device: the multi-client sync ACCEPT, as for accept.
    let synced = b2.expect_sync("ACCEPT").await;
    assert_eq!(synced["requestId"], "r1", "{synced}");
    b1.expect_silence(QUIET).await;
    b2.expect_silence(Duration::ZERO).await;

    // The invitation counts as accepted; no room of the ignored name.
    let again = json!({"channelId": room, "account": "alice", "requestId": "r1"});
    b1.fails("accept", again, 10410).await;
    let q = json!({"channelName": "bobs-own-room"});
    b1.fails("queryChannelInfo", q, 10404).await;
    srv.shutdown().await;
}

#[tokio::test]
async fn an_invite_glares_too_and_an_answered_one_does_not() {
    let srv = start_server(json!({})).await;
    let mut alice = login(srv.url(), "alice", "a1").await;
    let mut bob = login(srv.url(), "bob", "b1").await;
    let room = alice.create_joined(None).await;
    alice.invite_rings(&mut bob, &room, "r1").await;
    alice.expect_delivered(&room, "bob", "r1", 1).await;
    let r = bob.ok("call", call_params("alice", "r9")).await;
    assert_glared(&r, &room);
    alice.expect_event_from("ACCEPT", &room, "bob").await;
    alice.expect_event_from("ROOM_JOIN", &room, "bob").await;

    // Rejected, then called back: an ordinary call that rings alice.
    let other = alice.create_joined(None).await;
    alice.invite_rings(&mut bob, &other, "r2").await;
    alice.expect_delivered(&other, "bob", "r2", 1).await;
    let reply = json!({"channelId": other, "account": "alice", "requestId": "r2"});
    bob.ok("reject", reply).await;
    alice.expect_event("REJECT").await;
    let r = bob.ok("call", call_params("alice", "r3")).await;
    assert!(r.get("glare").is_none(), "{r}");
    assert_ne!(cid(&r), other);
    alice.expect_invite(&cid(&r), "bob", "r3").await;
    srv.shutdown().await;
}

#[tokio::test]
async fn a_glare_with_the_caller_offline_answers_10201() {
    let srv = start_server(json!({})).await;
    let alice = login(srv.url(), "alice", "a1").await;
    let mut bob = login(srv.url(), "bob", "b1").await;
    let room = alice.call_rings(&mut bob, "r1").await;
    // alice's device goes; within the member drop grace her call still rings.
    alice.client.shutdown();
    wait_offline(&srv, "alice").await;
    let (code, r) = bob.req("call", call_params("alice", "r2")).await;
    assert_eq!(code, 10201, "{r}");
    assert_glared(&r, &room);
    assert_eq!(accounts(&r["members"]), ["alice", "bob"], "{r}");
    srv.shutdown().await;
}

#[tokio::test]
async fn a_glaring_call_that_cannot_join_fails_with_the_join_code() {
    let srv = start_server(json!({"maxMembers": 2})).await;
    let mut alice = login(srv.url(), "alice", "a1").await;
    let mut bob = login(srv.url(), "bob", "b1").await;
    let carol = login(srv.url(), "carol", "c1").await;
    let room = alice.create_joined(None).await;
    alice.invite_rings(&mut bob, &room, "r1").await;
    alice.expect_delivered(&room, "bob", "r1", 1).await;
    carol.ok("join", json!({"channelId": room})).await;
    alice.expect_event_from("ROOM_JOIN", &room, "carol").await;
    // Full: bob's call fails 10419 and neither accepts nor rings anyone.
    bob.fails("call", call_params("alice", "r2"), 10419).await;
    alice.expect_silence(QUIET).await;
    // The invitation still rings and can be rejected.
    let reply = json!({"channelId": room, "account": "alice", "requestId": "r1"});
    bob.ok("reject", reply).await;
    srv.shutdown().await;
}

// ---------------------------------------------------------------- busy

/// carol and dave in a call of type `kind` (dave called, carol joined).
async fn in_a_call(srv: &TestServer, kind: u8) -> (TestClient, TestClient, String) {
    let mut carol = login(srv.url(), "carol", "c1").await;
    let dave = login(srv.url(), "dave", "d1").await;
    let p = json!({"type": kind, "account": "carol", "requestId": "c"});
    let room = cid(&dave.ok("call", p).await);
    carol.expect_invite(&room, "dave", "c").await;
    let answer = json!({"channelId": room, "account": "dave", "requestId": "c", "autoJoin": true});
    carol.ok("accept", answer).await;
    (carol, dave, room)
}

#[tokio::test]
async fn a_busy_invitee_is_not_rung() {
    let srv = start_server(json!({})).await;
    let alice = login(srv.url(), "alice", "a1").await;
    let (mut carol, _dave, _) = in_a_call(&srv, 2).await;
    let room = alice.create_joined(None).await;
    let mut p = invitation(&room, "carol", "r1");
    p["busyCheck"] = json!(true);
    let f = alice.fails("invite", p, 10430).await;
    assert_eq!(
        f["message"],
        "the invitee is busy (in another call or already ringing)"
    );
    carol.expect_silence(QUIET).await;
    // Nothing was recorded: there is no invitation to accept.
    let answer = json!({"channelId": room, "account": "alice", "requestId": "r1"});
    carol.fails("accept", answer, 10408).await;
    // A call with busyCheck: no room is made, no ring.
    let mut p = call_params("carol", "r2");
    p["busyCheck"] = json!(1);
    p["channelName"] = json!("busy-call");
    alice.fails("call", p, 10430).await;
    carol.expect_silence(QUIET).await;
    alice
        .fails(
            "queryChannelInfo",
            json!({"channelName": "busy-call"}),
            10404,
        )
        .await;
    // Without busyCheck, as in NIM, she is rung.
    alice.invite_rings(&mut carol, &room, "r3").await;
    srv.shutdown().await;
}

#[tokio::test]
async fn a_ringing_invitee_is_busy_a_type_3_member_is_not() {
    let srv = start_server(json!({})).await;
    let alice = login(srv.url(), "alice", "a1").await;
    let mut bob = login(srv.url(), "bob", "b1").await;
    let erin = login(srv.url(), "erin", "e1").await;
    alice.call_rings(&mut bob, "r1").await;
    let mut p = call_params("bob", "e1");
    p["busyCheck"] = json!(true);
    erin.fails("call", p, 10430).await;
    bob.expect_silence(QUIET).await;
    // carol is in a type-3 room (not a call) with dave: not busy. And
    // alice asking again with the same requestId in the same room is not
    // "busy with herself": she may re-invite.
    let (mut carol, _dave, _) = in_a_call(&srv, 3).await;
    let room = alice.create_joined(None).await;
    let mut p = invitation(&room, "carol", "r2");
    p["busyCheck"] = json!(true);
    alice.ok("invite", p.clone()).await;
    carol.expect_invite(&room, "alice", "r2").await;
    alice.ok("invite", p).await;
    carol.expect_invite(&room, "alice", "r2").await;
    srv.shutdown().await;
}

#[tokio::test]
async fn glare_comes_before_busy() {
    let srv = start_server(json!({})).await;
    let mut alice = login(srv.url(), "alice", "a1").await;
    let mut bob = login(srv.url(), "bob", "b1").await;
    // alice sits in her own call room, ringing bob: busy for anyone else…
    let room = alice.call_rings(&mut bob, "r1").await;
    alice.expect_delivered(&room, "bob", "r1", 1).await;
    let mut p = call_params("alice", "r2");
    p["busyCheck"] = json!(true);
    // …but not for bob, whose call back glares.
    let r = bob.ok("call", p).await;
    assert_glared(&r, &room);
    alice.expect_event_from("ACCEPT", &room, "bob").await;
    srv.shutdown().await;
}

// ---------------------------------------------------------------- inviteMany

#[tokio::test]
async fn invite_many_answers_per_invitee_and_rings_each_once() {
    let srv = start_server(json!({})).await;
    let mut alice = login(srv.url(), "alice", "a1").await;
    let mut bob = login(srv.url(), "bob", "b1").await;
    let mut zed = login(srv.url(), "zed", "z1").await;
    let (mut carol, _dave, _) = in_a_call(&srv, 1).await;
    let room = alice.create_joined(None).await;
    zed.ok("join", json!({"channelId": room})).await;
    alice.expect_event_from("ROOM_JOIN", &room, "zed").await;

    let p = json!({"channelId": room, "accounts": ["bob", "erin", "carol", "zed"],
                   "requestId": "g1", "offlineEnabled": true, "attachExt": "all hands",
                   "busyCheck": true});
    let r = alice.ok("inviteMany", p).await;
    assert_eq!(
        r,
        json!({"code": 200, "results": [
            {"account": "bob", "code": 200},
            {"account": "erin", "code": 10201},
            {"account": "carol", "code": 10430},
            {"account": "zed", "code": 10407},
        ]})
    );
    let inv = bob.expect_invite(&room, "alice", "g1").await;
    assert_eq!(inv["toAccount"], "bob");
    assert_eq!(inv["attachExt"], "all hands");
    bob.expect_silence(QUIET).await;
    carol.expect_silence(Duration::ZERO).await;
    zed.expect_silence(Duration::ZERO).await;

    // Each invitation is an ordinary one: accepted, cancelled as usual.
    let answer =
        json!({"channelId": room, "account": "alice", "requestId": "g1", "autoJoin": true});
    bob.ok("accept", answer).await;
    alice.expect_delivered(&room, "bob", "g1", 1).await;
    alice.expect_event_from("ACCEPT", &room, "bob").await;
    let mut cancel = invitation(&room, "erin", "g1");
    cancel["offlineEnabled"] = json!(true);
    alice.ok("cancel", cancel).await;
    // Busy carol was never invited.
    alice
        .fails("cancel", invitation(&room, "carol", "g1"), 10408)
        .await;
    // erin, offline, finds the INVITE and its CANCEL_INVITE at login.
    let (_erin, offline, _) = login_full(srv.url(), "erin", "e1", json!({})).await;
    let offline = offline.expect("an offline list");
    let seen: Vec<(&Value, &Value)> = offline["eventList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (&e["eventType"], &e["requestId"]))
        .collect();
    let (inv, cancelled, g1) = (json!("INVITE"), json!("CANCEL_INVITE"), json!("g1"));
    assert_eq!(seen, [(&inv, &g1), (&cancelled, &g1)], "{offline}");
    srv.shutdown().await;
}

#[tokio::test]
async fn invite_many_fails_as_a_whole_for_the_room_and_the_quota() {
    let srv = start_server(json!({"maxPendingInvitesPerAccount": 2, "maxMembers": 2})).await;
    let alice = login(srv.url(), "alice", "a1").await;
    let mut bob = login(srv.url(), "bob", "b1").await;
    let mut carol = login(srv.url(), "carol", "c1").await;
    let room = alice.create_joined(None).await;
    let many = |accounts: Value| json!({"channelId": room, "accounts": accounts, "requestId": "g"});
    alice
        .fails(
            "inviteMany",
            json!({"channelId": "nope", "accounts": ["bob"], "requestId": "g"}),
            10404,
        )
        .await;
    bob.fails("inviteMany", many(json!(["carol"])), 10406).await;
    // Three new invitations would pass maxPendingInvitesPerAccount = 2.
    alice
        .fails("inviteMany", many(json!(["bob", "carol", "erin"])), 403)
        .await;
    let f = alice
        .fails("inviteMany", many(json!(["bob", "bob"])), 414)
        .await;
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("\"bob\" more than once"),
        "{f}"
    );
    bob.expect_silence(QUIET).await;
    carol.expect_silence(Duration::ZERO).await;
    // A full room: 10419 for each, nobody rung.
    carol.ok("join", json!({"channelId": room})).await;
    let r = alice.ok("inviteMany", many(json!(["bob", "erin"]))).await;
    assert_eq!(
        r["results"],
        json!([{"account": "bob", "code": 10419}, {"account": "erin", "code": 10419}])
    );
    bob.expect_silence(QUIET).await;
    srv.shutdown().await;
}

#[tokio::test]
async fn invite_many_pushes_each_offline_invitee_that_wants_it() {
    let gw = Receiver::start().await;
    let push = json!({"url": format!("{}/push", gw.url), "secret": "s", "timeoutMs": 500});
    let srv = start_server(json!({"push": push})).await;
    let alice = login(srv.url(), "alice", "a1").await;
    let room = alice.create_joined(None).await;
    let p = json!({"channelId": room, "accounts": ["erin", "frank"], "requestId": "g1",
                   "pushInfo": {"needPush": true, "pushTitle": "join"}});
    let r = alice.ok("inviteMany", p).await;
    assert_eq!(
        r["results"],
        json!([{"account": "erin", "code": 10201}, {"account": "frank", "code": 10201}])
    );
    let mut pushed: Vec<String> = gw
        .bodies()
        .iter()
        .map(|b| b["account"].as_str().unwrap_or("").to_string())
        .collect();
    pushed.sort();
    assert_eq!(pushed, ["erin", "frank"]);
    // The gateway refusing: 10202 for the one it refused.
    gw.answer_with(500, Duration::ZERO);
    let p = json!({"channelId": room, "accounts": ["gina"], "requestId": "g2",
                   "pushInfo": {"needPush": true}});
    let r = alice.ok("inviteMany", p).await;
    assert_eq!(r["results"], json!([{"account": "gina", "code": 10202}]));
    srv.shutdown().await;
}
