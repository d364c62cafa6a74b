//! Table tests of the pure rules.
//!
//! Every error code the seed lists for an operation is a row in that
//! operation's failure table; the success tests check what a user sees: the
//! code, the reply `data`, the room written back, and every delivery
//! (recipient, notification kind, flags and the event as its wire JSON).
//! Expected JSON is spelled out with the seed's field names instead of being
//! built by the code under test, so a renamed or missing field fails too.
//!
//! The fixture room "c1" was created by alice, who is not in it; bob (uid 11)
//! and carol (uid 12) joined on device "d1". dave, erin, … are outsiders.

use super::*;
use crate::model::InviteState::{Accepted, Cancelled, Expired, Pending, Rejected};
use nim_signaling_protocol::PushInfo;

// ---------------------------------------------------------------- fixtures

const NOW: i64 = 1_700_000_000_000;
const TTL: i64 = 7_200_000;
const INVITE_TTL: i64 = 30_000;
/// When the fixture room was created and its members joined.
const CREATED: i64 = NOW - 60_000;
/// When the fixture invitations were made.
const INVITED: i64 = NOW - 1_000;

static LIMITS: Limits = Limits {
    room_ttl_ms: TTL,
    invite_ttl_ms: INVITE_TTL,
    max_members: 3,
};

static ONE_SEAT: Limits = Limits {
    room_ttl_ms: TTL,
    invite_ttl_ms: INVITE_TTL,
    max_members: 1,
};

/// `account` acting on device "d1" at NOW under [`LIMITS`].
fn ctx(account: &'static str) -> Ctx<'static> {
    Ctx {
        now: NOW,
        actor: Actor {
            account,
            device: "d1",
        },
        limits: &LIMITS,
    }
}

trait CtxExt {
    fn on(self, device: &'static str) -> Self;
    fn at(self, now: i64) -> Self;
    fn limits(self, limits: &'static Limits) -> Self;
}

impl CtxExt for Ctx<'static> {
    fn on(mut self, device: &'static str) -> Self {
        self.actor.device = device;
        self
    }
    fn at(mut self, now: i64) -> Self {
        self.now = now;
        self
    }
    fn limits(mut self, limits: &'static Limits) -> Self {
        self.limits = limits;
        self
    }
}

/// A member who joined on "d1" when the fixture room was created.
fn member(account: &str, uid: u64) -> RoomMember {
    RoomMember {
        account: account.into(),
        device_id: "d1".into(),
        uid,
        joined_at: CREATED,
    }
}

/// Who joined at NOW (the rule under test added them).
fn newcomer(account: &str, device: &str, uid: u64) -> RoomMember {
    RoomMember {
        account: account.into(),
        device_id: device.into(),
        uid,
        joined_at: NOW,
    }
}

fn room() -> Room {
    Room {
        channel_id: "c1".into(),
        name: "standup".into(),
        kind: 2,
        ext: "room-ext".into(),
        creator: "alice".into(),
        created_at: CREATED,
        expire_at: CREATED + TTL,
        closed: false,
        members: vec![member("bob", 11), member("carol", 12)],
        invites: vec![],
        version: 0,
    }
}

fn room_with(f: impl FnOnce(&mut Room)) -> Room {
    let mut r = room();
    f(&mut r);
    r
}

/// The fixture room with its third and last seat taken (by zoe, uid 13).
fn full_room() -> Room {
    room_with(|r| r.members.push(member("zoe", 13)))
}

/// Rooms that no operation may act on: 10404 for all of them.
fn gone_rooms() -> [(&'static str, Option<Room>); 3] {
    let closed = room_with(|r| {
        r.closed = true;
        r.members.clear();
        r.expire_at = NOW + TTL;
    });
    let expired = room_with(|r| {
        r.members.clear();
        r.expire_at = NOW;
    });
    [
        ("no such room", None),
        ("closed room", Some(closed)),
        ("unjoined room past its TTL", Some(expired)),
    ]
}

/// The 10404 rows of a failure table: `row(case, room)` for each gone room.
fn gone<T>(row: impl Fn(&'static str, Option<Room>) -> T) -> impl Iterator<Item = T> {
    gone_rooms().into_iter().map(move |(case, r)| row(case, r))
}

/// An invitation made at INVITED.
fn inv(request_id: &str, from: &str, to: &str, state: InviteState) -> Invitation {
    Invitation {
        request_id: request_id.into(),
        from: from.into(),
        to: to.into(),
        state,
        created_at: INVITED,
        expire_at: INVITED + INVITE_TTL,
        device: "d1".into(),
        offline: false,
        delivered: Vec::new(),
    }
}

/// An invitation made at NOW (the rule under test made it).
fn new_inv(request_id: &str, from: &str, to: &str) -> Invitation {
    Invitation {
        created_at: NOW,
        expire_at: NOW + INVITE_TTL,
        offline: true,
        ..inv(request_id, from, to, Pending)
    }
}

/// The fixture room with bob's invitations in every state, and one of carol's.
fn invited() -> Room {
    room_with(|r| {
        r.invites = vec![
            inv("r1", "bob", "dave", Pending),
            inv("r2", "bob", "erin", Rejected),
            inv("r3", "bob", "frank", Accepted),
            inv("r4", "bob", "gina", Cancelled),
            Invitation {
                expire_at: NOW,
                ..inv("r5", "bob", "hank", Pending)
            },
            inv("r6", "carol", "dave", Pending),
        ]
    })
}

/// `invited()` after `state` was given to r1 (bob → dave).
fn invited_then(state: InviteState) -> Room {
    let mut r = invited();
    r.invites[0].state = state;
    r
}

// ---------------------------------------------------------------- params

fn close_p() -> CloseParams {
    CloseParams {
        channel_id: "c1".into(),
        offline_enabled: Some(true),
        ext: Some("bye".into()),
    }
}

fn join_p() -> JoinParams {
    JoinParams {
        channel_id: "c1".into(),
        uid: None,
        offline_enabled: Some(true),
        attach_ext: Some("hi".into()),
    }
}

fn leave_p() -> LeaveParams {
    LeaveParams {
        channel_id: "c1".into(),
        offline_enabled: Some(true),
        attach_ext: Some("bye".into()),
    }
}

fn invite_p(invitee: &str) -> InviteParams {
    InviteParams {
        channel_id: "c1".into(),
        account: invitee.into(),
        request_id: "r1".into(),
        offline_enabled: Some(true),
        attach_ext: Some("knock".into()),
        push_info: None,
        busy_check: None,
        timeout_ms: None,
    }
}

/// Cancel (account = invitee) or reject (account = inviter).
fn reply_p(account: &str, request_id: &str) -> InviteReplyParams {
    InviteReplyParams {
        channel_id: "c1".into(),
        account: account.into(),
        request_id: request_id.into(),
        offline_enabled: Some(true),
        attach_ext: Some("re".into()),
    }
}

fn accept_p(inviter: &str, request_id: &str) -> AcceptParams {
    AcceptParams {
        channel_id: "c1".into(),
        account: inviter.into(),
        request_id: request_id.into(),
        offline_enabled: Some(true),
        attach_ext: Some("re".into()),
        auto_join: None,
        uid: None,
        join_attach_ext: Some("joining".into()),
    }
}

fn auto_join_p(uid: Option<u64>) -> AcceptParams {
    AcceptParams {
        auto_join: Some(true),
        uid,
        ..accept_p("bob", "r1")
    }
}

fn control_p(to: Option<&str>) -> ControlParams {
    ControlParams {
        channel_id: "c1".into(),
        account: to.map(String::from),
        attach_ext: Some("cmd".into()),
    }
}

fn call_p(invitee: &str) -> CallParams {
    CallParams {
        kind: 2,
        channel_name: None,
        ext: Some("call-ext".into()),
        uid: None,
        account: invitee.into(),
        request_id: "r1".into(),
        offline_enabled: Some(true),
        attach_ext: Some("ring".into()),
        push_info: None,
        busy_check: None,
        timeout_ms: None,
    }
}

/// A pushInfo and its wire JSON.
fn push(need_push: bool) -> (PushInfo, Value) {
    let p = PushInfo {
        push_title: Some("title".into()),
        push_content: Some("you are invited".into()),
        push_payload: Some(json!({"from": 111})),
        need_push,
        need_badge: true,
    };
    let wire = json!({
        "pushTitle": "title",
        "pushContent": "you are invited",
        "pushPayload": {"from": 111},
        "needPush": need_push,
        "needBadge": true,
    });
    (p, wire)
}

const ONLINE: Reach = Reach {
    online: true,
    push_available: false,
    busy: false,
};

/// How an invitation rings, shared by invite and call: (case, reach,
/// pushInfo.needPush if any pushInfo, expected code).
fn reach_rows() -> [(&'static str, Reach, Option<bool>, i32); 6] {
    let offline = |push_available| Reach {
        online: false,
        push_available,
        busy: false,
    };
    #[rustfmt::skip]
    let rows = [
        ("online, no pushInfo",                    ONLINE,         None,        OK),
        ("online, needPush without push provider", ONLINE,         Some(true),  OK),
        ("offline, no pushInfo",                   offline(true),  None,        PEER_OFFLINE),
        ("offline, needPush false",                offline(false), Some(false), PEER_OFFLINE),
        ("offline, needPush, push provider",       offline(true),  Some(true),  PEER_OFFLINE),
        ("offline, needPush, no push provider",    offline(false), Some(true),  PUSH_UNREACHABLE),
    ];
    rows
}

// ---------------------------------------------------------------- oracles

/// channelInfo as the seed spells it.
fn info(r: &Room, invalid: u8) -> Value {
    json!({
        "channelId": r.channel_id,
        "channelName": r.name,
        "type": r.kind,
        "ext": r.ext,
        "createTimestamp": r.created_at,
        "expireTimestamp": r.expire_at,
        "creatorId": r.creator,
        "invalid": invalid,
    })
}

fn member_json(r: &Room, m: &RoomMember) -> Value {
    json!({
        "account": m.account,
        "uid": m.uid,
        "createTimestamp": m.joined_at,
        "expireTimestamp": r.expire_at,
    })
}

/// `{"channelInfo", "members"}` of a valid room: join/accept/call data and
/// the members sync body.
fn with_members(r: &Room) -> Value {
    let members: Vec<Value> = r.members.iter().map(|m| member_json(r, m)).collect();
    json!({"channelInfo": info(r, 0), "members": members})
}

/// An event at NOW in room `r` (shown invalid only if `r` is closed), plus
/// the optional fields in `extra`.
fn event(ty: &str, r: &Room, from: &str, attach: &str, extra: Value) -> Value {
    const TYPES: [&str; 11] = [
        "ROOM_CLOSE",
        "ROOM_JOIN",
        "INVITE",
        "CANCEL_INVITE",
        "REJECT",
        "ACCEPT",
        "LEAVE",
        "CONTROL",
        "INVITE_TIMEOUT",
        "INVITE_DELIVERED",
        "CHANNEL_UPDATE",
    ];
    let code = TYPES.iter().position(|t| *t == ty).expect("event type") + 1;
    let mut ev = json!({
        "eventType": ty,
        "eventTypeCode": code,
        "channelInfo": info(r, r.closed as u8),
        "fromAccountId": from,
        "attachExt": attach,
        "time": NOW,
    });
    let fields = ev.as_object_mut().unwrap();
    fields.extend(extra.as_object().expect("extra is an object").clone());
    ev
}

/// A delivery as the recipient's log would hold it.
#[derive(Debug, PartialEq)]
struct Seen {
    to: String,
    kind: NotifyKind,
    exclude_device: Option<String>,
    offline_enabled: bool,
    body: Value,
}

fn seen(o: &Outcome) -> Vec<Seen> {
    o.deliveries
        .iter()
        .map(|d| Seen {
            to: d.to.clone(),
            kind: d.entry.kind,
            exclude_device: d.entry.exclude_device.clone(),
            offline_enabled: d.entry.offline_enabled,
            body: match &d.entry.body {
                LogBody::Event(e) => serde_json::to_value(e).unwrap(),
                LogBody::Members(m) => serde_json::to_value(m).unwrap(),
            },
        })
        .collect()
}

/// signalingNotify to every device of `to`.
fn notified(to: &str, offline: bool, body: Value) -> Seen {
    Seen {
        to: to.into(),
        kind: NotifyKind::Notify,
        exclude_device: None,
        offline_enabled: offline,
        body,
    }
}

/// signalingMutilClientSyncNotify to `to`'s devices other than `acting`.
fn synced(to: &str, acting: &str, body: Value) -> Seen {
    Seen {
        to: to.into(),
        kind: NotifyKind::MultiClientSync,
        exclude_device: Some(acting.into()),
        offline_enabled: false,
        body,
    }
}

/// signalingMembersSyncNotify.
fn members_synced(to: &str, body: Value) -> Seen {
    Seen {
        to: to.into(),
        kind: NotifyKind::MembersSync,
        exclude_device: None,
        offline_enabled: false,
        body,
    }
}

#[track_caller]
fn succeeded(case: &str, r: RuleResult) -> Outcome {
    match r {
        Ok(o) => o,
        Err(f) => panic!("{case}: expected success, got {f}"),
    }
}

#[track_caller]
fn assert_fails(case: &str, r: RuleResult, code: i32) {
    match r {
        Err(f) => assert_eq!(f, Failure::code(code), "{case}"),
        Ok(o) => panic!("{case}: expected {code}, got {} with {:?}", o.code, o.room),
    }
}

fn code_of(r: &RuleResult) -> i32 {
    match r {
        Ok(o) => o.code,
        Err(f) => f.code,
    }
}

// ---------------------------------------------------------------- model

#[test]
fn room_validity_and_forgetting() {
    let unjoined = room_with(|r| r.members.clear());
    let closed = room_with(|r| {
        r.closed = true;
        r.members.clear();
        r.expire_at = NOW;
    });
    let expiry = CREATED + TTL;
    // (case, room, at, valid, forgettable)
    #[rustfmt::skip]
    let rows = [
        ("unjoined, before its TTL",     &unjoined, expiry - 1,   true,  false),
        ("unjoined, at its TTL",         &unjoined, expiry,       false, true),
        ("members, long past expire_at", &room(),   expiry + TTL, true,  false),
        ("closed, within its grace",     &closed,   NOW - 1,      false, false),
        ("closed, grace over",           &closed,   NOW,          false, true),
    ];
    for (case, r, at, valid, forgettable) in rows {
        assert_eq!(r.is_valid(at), valid, "{case}: valid");
        assert_eq!(r.is_forgettable(at), forgettable, "{case}: forgettable");
        let invalid = u8::from(!valid);
        assert_eq!(r.channel_info(at).invalid, invalid, "{case}: invalid");
    }
}

// ---------------------------------------------------------------- create

#[test]
fn create_table() {
    let named = |name: Option<&str>, ext: Option<&str>| CreateParams {
        kind: 1,
        channel_name: name.map(String::from),
        ext: ext.map(String::from),
    };
    // (case, holder, params, Ok((channelName, ext)) or Err(code))
    #[rustfmt::skip]
    let rows = [
        ("named",                     None,         named(Some("standup"), Some("e")), Ok(("standup", "e"))),
        ("no name: the id",           None,         named(None, None),                 Ok(("c9", ""))),
        ("empty name: the id",        None,         named(Some(""), Some("")),         Ok(("c9", ""))),
        ("name held by a valid room", Some(room()), named(Some("standup"), None),      Err(ROOM_EXISTS)),
    ];
    for (case, holder, p, want) in rows {
        let res = create(holder.as_ref(), &ctx("alice"), &p, "c9");
        let (name, ext) = match want {
            Err(code) => {
                assert_fails(case, res, code);
                continue;
            }
            Ok(w) => w,
        };
        let o = succeeded(case, res);
        assert_eq!(o.code, OK, "{case}");
        assert_eq!(
            o.data,
            json!({"channelInfo": {
                "channelId": "c9",
                "channelName": name,
                "type": 1,
                "ext": ext,
                "createTimestamp": NOW,
                "expireTimestamp": NOW + TTL,
                "creatorId": "alice",
                "invalid": 0,
            }}),
            "{case}"
        );
        // The creator is not a member until it joins.
        assert!(o.room.members.is_empty(), "{case}");
        assert!(o.room.invites.is_empty(), "{case}");
        assert!(!o.room.closed, "{case}");
        assert_eq!(o.room.expire_at, NOW + TTL, "{case}");
        assert!(o.deliveries.is_empty(), "{case}");
    }
}

// ---------------------------------------------------------------- close

#[test]
fn close_failures() {
    // (case, room, closer, code)
    #[rustfmt::skip]
    let rows = [
        ("neither creator nor member", Some(room()),    "dave", NOT_IN_ROOM),
        ("an invitee is not a member", Some(invited()), "dave", NOT_IN_ROOM),
    ];
    for (case, r, who, code) in gone(|c, r| (c, r, "bob", ROOM_NOT_EXIST)).chain(rows) {
        assert_fails(case, close(r.as_ref(), &ctx(who), &close_p()), code);
    }
}

#[test]
fn close_table() {
    let emptied = room_with(|r| r.members.clear());
    // (case, room, closer, offlineEnabled, who is told)
    #[rustfmt::skip]
    let rows = [
        ("creator, not a member",        room(),    "alice", Some(true),  &["bob", "carol"][..]),
        ("member; offline absent",       room(),    "bob",   None,        &["carol"]),
        ("member; offline false",        room(),    "carol", Some(false), &["bob"]),
        ("creator of an emptied room",   emptied,   "alice", Some(true),  &[]),
        ("pending invitations stay",     invited(), "bob",   Some(true),  &["carol"]),
    ];
    for (case, before, who, offline, told) in rows {
        let p = CloseParams {
            offline_enabled: offline,
            ..close_p()
        };
        let o = succeeded(case, close(Some(&before), &ctx(who), &p));
        let want = closed_now(&before);
        assert_eq!(o.code, OK, "{case}");
        assert_eq!(o.data, json!({}), "{case}");
        assert_eq!(o.room, want, "{case}");
        if case == "pending invitations stay" {
            let left: Vec<&str> = o
                .room
                .invites
                .iter()
                .map(|i| i.request_id.as_str())
                .collect();
            assert_eq!(left, ["r1", "r5", "r6"], "{case}");
        }
        let ev = event("ROOM_CLOSE", &want, who, "bye", json!({}));
        assert_eq!(ev["channelInfo"]["invalid"], 1, "{case}");
        assert_eq!(seen(&o), notified_each(told, offline, &ev), "{case}");
    }
}

/// `before` as a close at NOW leaves it.
fn closed_now(before: &Room) -> Room {
    let mut want = before.clone();
    want.closed = true;
    want.members.clear();
    // Answered invitations go (nothing can be asked of a closed room);
    // pending ones stay for their INVITE_TIMEOUT.
    want.invites.retain(|i| i.state == Pending);
    want.expire_at = NOW + TTL;
    want
}

/// `ev` notified to each of `told`, kept offline as `offline` asks.
fn notified_each(told: &[&str], offline: Option<bool>, ev: &Value) -> Vec<Seen> {
    told.iter()
        .map(|a| notified(a, offline.unwrap_or(false), ev.clone()))
        .collect()
}

// ---------------------------------------------------------------- admin close

#[test]
fn admin_close_failures() {
    for (case, r) in gone_rooms() {
        let res = admin_close(r.as_ref(), NOW, &LIMITS, &close_p());
        assert_fails(case, res, ROOM_NOT_EXIST);
    }
}

#[test]
fn admin_close_tells_members_and_creator_from_the_server() {
    let emptied = room_with(|r| r.members.clear());
    let creator_in = room_with(|r| r.members.push(member("alice", 13)));
    // (case, room, offlineEnabled, who is told)
    #[rustfmt::skip]
    let rows = [
        ("creator outside the room",  room(),     Some(true),  &["bob", "carol", "alice"][..]),
        ("creator a member: once",    creator_in, None,        &["bob", "carol", "alice"]),
        ("emptied room: the creator", emptied,    Some(false), &["alice"]),
        ("pending invitations stay",  invited(),  Some(true),  &["bob", "carol", "alice"]),
    ];
    for (case, before, offline, told) in rows {
        let p = CloseParams {
            offline_enabled: offline,
            ..close_p()
        };
        let o = succeeded(case, admin_close(Some(&before), NOW, &LIMITS, &p));
        let want = closed_now(&before);
        assert_eq!((o.code, &o.data), (OK, &json!({})), "{case}");
        assert_eq!(o.room, want, "{case}");
        // From "": the server, not an account.
        let ev = event("ROOM_CLOSE", &want, "", "bye", json!({}));
        assert_eq!(seen(&o), notified_each(told, offline, &ev), "{case}");
    }
}

// ---------------------------------------------------------------- join

#[test]
fn join_failures() {
    // (case, room, joiner, uid asked, code)
    #[rustfmt::skip]
    let rows = [
        ("same account, same device",  Some(room()),      ctx("bob"),           None,     ALREADY_IN_ROOM),
        ("same account, other device", Some(room()),      ctx("bob").on("d2"),  None,     IN_ROOM_ON_OTHER_DEVICE),
        ("uid of another member",      Some(room()),      ctx("dave"),          Some(12), UID_CONFLICT),
        ("room full",                  Some(full_room()), ctx("dave"),          None,     ROOM_FULL),
        ("room full, already in it",   Some(full_room()), ctx("bob"),           None,     ALREADY_IN_ROOM),
    ];
    let gone_rows = gone(|c, r| (c, r, ctx("dave"), None, ROOM_NOT_EXIST));
    for (case, r, c, uid, code) in gone_rows.chain(rows) {
        let p = JoinParams { uid, ..join_p() };
        assert_fails(case, join(r.as_ref(), &c, &p, 1), code);
    }
}

#[test]
fn join_tells_the_others() {
    let p = JoinParams {
        uid: Some(99),
        ..join_p()
    };
    let o = succeeded("join", join(Some(&room()), &ctx("dave").on("d2"), &p, 1));
    let want = room_with(|r| {
        r.members.push(newcomer("dave", "d2", 99));
        r.expire_at = NOW + TTL;
    });
    assert_eq!(o.code, OK);
    assert_eq!(o.room, want);
    assert_eq!(o.data, with_members(&want));
    assert_eq!(o.data["members"].as_array().unwrap().len(), 3);
    let joined = json!({"member": {
        "account": "dave",
        "uid": 99,
        "createTimestamp": NOW,
        "expireTimestamp": NOW + TTL,
    }});
    let ev = event("ROOM_JOIN", &want, "dave", "hi", joined);
    assert_eq!(
        seen(&o),
        vec![
            notified("bob", true, ev.clone()),
            notified("carol", true, ev)
        ]
    );
}

#[test]
fn join_rooms_that_are_still_valid() {
    let creators_own = room_with(|r| r.members.clear());
    let old_but_occupied = room_with(|r| r.expire_at = NOW - TTL);
    // (case, room, joiner, offlineEnabled, who is told)
    #[rustfmt::skip]
    let rows = [
        ("creator joins its unjoined room", creators_own,     "alice", Some(true), &[][..]),
        ("occupied room past expire_at",    old_but_occupied, "dave",  None,       &["bob", "carol"]),
    ];
    for (case, before, who, offline, told) in rows {
        let p = JoinParams {
            offline_enabled: offline,
            ..join_p()
        };
        let o = succeeded(case, join(Some(&before), &ctx(who), &p, 50));
        let mut want = before.clone();
        want.members.push(newcomer(who, "d1", 50));
        want.expire_at = NOW + TTL;
        assert_eq!(o.room, want, "{case}");
        assert_eq!(o.data, with_members(&want), "{case}");
        let recipients: Vec<(String, bool)> = seen(&o)
            .into_iter()
            .map(|s| (s.to, s.offline_enabled))
            .collect();
        let want_recipients: Vec<(String, bool)> = told
            .iter()
            .map(|a| (a.to_string(), offline.unwrap_or(false)))
            .collect();
        assert_eq!(recipients, want_recipients, "{case}");
    }
}

#[test]
fn join_uid_choice() {
    // (case, uids already taken, uid asked, server's seed, uid given)
    #[rustfmt::skip]
    let rows = [
        ("asked uid wins over the seed",      &[11, 12][..], Some(99), 5,        99),
        ("absent: the seed",                  &[11, 12],     None,     40,       40),
        ("seed 0 is not a uid",               &[],           None,     0,        1),
        ("seed taken: the next uid",          &[11, 13],     None,     11,       12),
        ("seed taken: skips every taken uid", &[11, 12],     None,     11,       13),
        ("seed at the top wraps to 1",        &[u64::MAX],   None,     u64::MAX, 1),
    ];
    for (case, uids, uid, seed, want) in rows {
        let before = room_with(|r| {
            r.members = uids
                .iter()
                .enumerate()
                .map(|(i, u)| member(&format!("m{i}"), *u))
                .collect();
        });
        let p = JoinParams { uid, ..join_p() };
        let o = succeeded(case, join(Some(&before), &ctx("dave"), &p, seed));
        assert_eq!(o.room.member("dave").map(|m| m.uid), Some(want), "{case}");
        assert_eq!(o.data["members"][uids.len()]["uid"], want, "{case}");
    }
}

// ---------------------------------------------------------------- leave

#[test]
fn leave_failures() {
    // (case, room, leaver, code)
    #[rustfmt::skip]
    let rows = [
        ("not a member",          Some(room()), "dave",  NOT_IN_ROOM),
        ("creator, not a member", Some(room()), "alice", NOT_IN_ROOM),
    ];
    for (case, r, who, code) in gone(|c, r| (c, r, "bob", ROOM_NOT_EXIST)).chain(rows) {
        assert_fails(case, leave(r.as_ref(), &ctx(who), &leave_p()), code);
    }
}

#[test]
fn leave_tells_the_others() {
    let o = succeeded("leave", leave(Some(&room()), &ctx("bob"), &leave_p()));
    // Someone is still in: expire_at stays as it was.
    let want = room_with(|r| {
        r.members.remove(0);
    });
    assert_eq!(o.code, OK);
    assert_eq!(o.data, json!({}));
    assert_eq!(o.room, want);
    let ev = event("LEAVE", &want, "bob", "bye", json!({}));
    assert_eq!(seen(&o), vec![notified("carol", true, ev)]);
}

#[test]
fn last_member_leaving_keeps_the_room_for_its_ttl() {
    // bob alone, the room's informational expiry long gone.
    let lone = room_with(|r| {
        r.members.truncate(1);
        r.expire_at = NOW - TTL;
    });
    let o = succeeded("leave", leave(Some(&lone), &ctx("bob"), &leave_p()));
    let want = room_with(|r| {
        r.members.clear();
        r.expire_at = NOW + TTL;
    });
    assert_eq!(o.room, want);
    assert!(o.deliveries.is_empty());

    let join_at = |at: i64| join(Some(&o.room), &ctx("dave").at(at), &join_p(), 1);
    assert_eq!(code_of(&join_at(NOW + TTL - 1)), OK);
    assert_fails("join at the TTL", join_at(NOW + TTL), ROOM_NOT_EXIST);
    assert_eq!(o.room.channel_info(NOW + TTL - 1).invalid, 0);
    assert_eq!(o.room.channel_info(NOW + TTL).invalid, 1);
}

#[test]
fn remove_member_failures() {
    // (case, room, removed account, code)
    #[rustfmt::skip]
    let rows = [
        ("not a member",          Some(room()),    "dave",  NOT_IN_ROOM),
        ("creator, not a member", Some(room()),    "alice", NOT_IN_ROOM),
        ("only invited",          Some(invited()), "dave",  NOT_IN_ROOM),
    ];
    for (case, r, who, code) in gone(|c, r| (c, r, "bob", ROOM_NOT_EXIST)).chain(rows) {
        let res = remove_member(r.as_ref(), NOW, &LIMITS, who, &leave_p());
        assert_fails(case, res, code);
    }
}

#[test]
fn remove_member_is_a_leave_its_own_devices_hear_of() {
    let lone = room_with(|r| r.members.truncate(1));
    // (case, room, removed, offlineEnabled, the room after, who is told)
    #[rustfmt::skip]
    let rows = [
        ("others remain", room(), "bob", Some(true), room_with(|r| { r.members.remove(0); }), &["carol", "bob"][..]),
        ("the last one",  lone,   "bob", None,       room_with(|r| { r.members.clear(); r.expire_at = NOW + TTL; }), &["bob"]),
    ];
    for (case, before, who, offline, want, told) in rows {
        let p = LeaveParams {
            offline_enabled: offline,
            ..leave_p()
        };
        let o = succeeded(case, remove_member(Some(&before), NOW, &LIMITS, who, &p));
        assert_eq!((o.code, &o.data), (OK, &json!({})), "{case}");
        assert_eq!(o.room, want, "{case}");
        // From the removed account, as if it had left itself.
        let ev = event("LEAVE", &want, who, "bye", json!({}));
        assert_eq!(seen(&o), notified_each(told, offline, &ev), "{case}");
    }
}

// ---------------------------------------------------------------- invite

#[test]
fn invite_failures() {
    // (case, room, inviter, invitee, code)
    #[rustfmt::skip]
    let rows = [
        ("inviter neither creator nor member", Some(room()),      "dave", "erin",  NOT_IN_ROOM),
        ("inviter only invited",               Some(invited()),   "dave", "erin",  NOT_IN_ROOM),
        ("invitee already a member",           Some(room()),      "bob",  "carol", ALREADY_IN_ROOM),
        ("inviting yourself, a member",        Some(room()),      "bob",  "bob",   ALREADY_IN_ROOM),
        ("room full",                          Some(full_room()), "bob",  "dave",  ROOM_FULL),
    ];
    let gone_rows = gone(|c, r| (c, r, "bob", "dave", ROOM_NOT_EXIST));
    for (case, r, who, invitee, code) in gone_rows.chain(rows) {
        let res = invite(r.as_ref(), &ctx(who), &invite_p(invitee), ONLINE);
        assert_fails(case, res, code);
    }
}

#[test]
fn invite_reach_table() {
    for (case, reach, need_push, code) in reach_rows() {
        let pushed = need_push.map(push);
        let p = InviteParams {
            push_info: pushed.as_ref().map(|(p, _)| p.clone()),
            ..invite_p("dave")
        };
        let o = succeeded(case, invite(Some(&room()), &ctx("bob"), &p, reach));
        // Kept even when it cannot ring: the invitee sees it when it logs in.
        let want = room_with(|r| r.invites.push(new_inv("r1", "bob", "dave")));
        assert_eq!(o.code, code, "{case}");
        assert_eq!(o.room, want, "{case}");
        assert_eq!(o.data, json!({}), "{case}");
        let mut extra = json!({"toAccount": "dave", "requestId": "r1"});
        if let Some((_, wire)) = pushed {
            extra["pushInfo"] = wire;
        }
        let ev = event("INVITE", &want, "bob", "knock", extra);
        assert_eq!(seen(&o), vec![notified("dave", true, ev)], "{case}");
    }
}

#[test]
fn invite_by_the_creator_outside_the_room() {
    let p = InviteParams {
        offline_enabled: None,
        attach_ext: None,
        ..invite_p("dave")
    };
    let o = succeeded("invite", invite(Some(&room()), &ctx("alice"), &p, ONLINE));
    let want = room_with(|r| {
        r.invites.push(Invitation {
            offline: false,
            ..new_inv("r1", "alice", "dave")
        })
    });
    assert_eq!(o.code, OK);
    assert_eq!(o.room, want);
    let extra = json!({"toAccount": "dave", "requestId": "r1"});
    let ev = event("INVITE", &want, "alice", "", extra);
    assert_eq!(seen(&o), vec![notified("dave", false, ev)]);
}

/// An invitation's own timeoutMs sets when it times out (its timer with
/// it), never later than the server's inviteTtlMs.
#[test]
fn invite_with_its_own_timeout() {
    for (asked, rings) in [
        (Some(5_000), 5_000),
        (Some(1), 1),
        (Some(u64::MAX), INVITE_TTL),
        (None, INVITE_TTL),
    ] {
        let p = InviteParams {
            timeout_ms: asked,
            ..invite_p("dave")
        };
        let o = succeeded("invite", invite(Some(&room()), &ctx("bob"), &p, ONLINE));
        let i = o.room.invites.last().unwrap();
        assert_eq!(i.expire_at, NOW + rings, "{asked:?}");
        let timer = (
            NOW + rings,
            Timer::InviteExpiry {
                channel_id: "c1".into(),
            },
        );
        assert_eq!(o.timers, vec![timer], "{asked:?}");
    }
}

#[test]
fn invite_again_replaces_the_same_request() {
    let before = room_with(|r| {
        r.invites = vec![
            inv("r1", "bob", "dave", Rejected),
            inv("r1", "carol", "dave", Pending),
            inv("r2", "bob", "dave", Pending),
            inv("r1", "bob", "erin", Pending),
        ]
    });
    let o = succeeded(
        "invite",
        invite(Some(&before), &ctx("bob"), &invite_p("dave"), ONLINE),
    );
    assert_eq!(
        o.room.invites,
        vec![
            inv("r1", "carol", "dave", Pending),
            inv("r2", "bob", "dave", Pending),
            inv("r1", "bob", "erin", Pending),
            new_inv("r1", "bob", "dave"),
        ]
    );
    // And it can be answered again.
    let again = accept(Some(&o.room), &ctx("dave"), &accept_p("bob", "r1"), true, 1);
    assert_eq!(code_of(&again), OK);
}

#[test]
fn invite_forgets_invitations_past_their_expiry_once_told() {
    let expired = |rid, state| Invitation {
        expire_at: NOW,
        ..inv(rid, "carol", "erin", state)
    };
    let before = room_with(|r| {
        r.invites = vec![
            expired("a", Accepted),
            expired("b", Rejected),
            expired("c", Cancelled),
            expired("d", Pending),
            inv("e", "carol", "erin", Accepted),
        ]
    });
    let o = succeeded(
        "invite",
        invite(Some(&before), &ctx("bob"), &invite_p("dave"), ONLINE),
    );
    // The pending one stays until its timer has sent INVITE_TIMEOUT.
    assert_eq!(
        o.room.invites,
        vec![
            expired("d", Pending),
            inv("e", "carol", "erin", Accepted),
            new_inv("r1", "bob", "dave")
        ]
    );
    assert_eq!(
        o.timers,
        vec![(
            NOW + INVITE_TTL,
            Timer::InviteExpiry {
                channel_id: "c1".into()
            }
        )]
    );
}

// ---------------------------------------------------------------- cancel

#[test]
fn cancel_failures() {
    let r = || Some(invited());
    // (case, room, canceller, invitee named, requestId, code)
    #[rustfmt::skip]
    let rows = [
        ("no such request",           r(), "bob",  "dave",  "r9", INVITE_NOT_EXIST),
        ("someone else's invitation", r(), "bob",  "dave",  "r6", INVITE_NOT_EXIST),
        ("other invitee named",       r(), "bob",  "erin",  "r1", INVITE_NOT_EXIST),
        ("the invitee cannot cancel", r(), "dave", "bob",   "r1", INVITE_NOT_EXIST),
        ("expired",                   r(), "bob",  "hank",  "r5", INVITE_NOT_EXIST),
        ("already cancelled",         r(), "bob",  "gina",  "r4", INVITE_NOT_EXIST),
        ("rejected",                  r(), "bob",  "erin",  "r2", INVITE_REJECTED),
        ("accepted",                  r(), "bob",  "frank", "r3", INVITE_ACCEPTED),
    ];
    let gone_rows = gone(|c, r| (c, r, "bob", "dave", "r1", ROOM_NOT_EXIST));
    for (case, r, who, invitee, rid, code) in gone_rows.chain(rows) {
        let res = cancel(r.as_ref(), &ctx(who), &reply_p(invitee, rid));
        assert_fails(case, res, code);
    }
}

#[test]
fn cancel_tells_the_invitee() {
    let o = succeeded(
        "cancel",
        cancel(Some(&invited()), &ctx("bob"), &reply_p("dave", "r1")),
    );
    let want = invited_then(Cancelled);
    assert_eq!(o.code, OK);
    assert_eq!(o.data, json!({}));
    assert_eq!(o.room, want);
    let extra = json!({"toAccount": "dave", "requestId": "r1"});
    let ev = event("CANCEL_INVITE", &want, "bob", "re", extra);
    assert_eq!(seen(&o), vec![notified("dave", true, ev)]);
}

// ---------------------------------------------------------------- accept / reject

/// An answer that cannot be given: (case, room, who answers, inviter named,
/// requestId, code).
type AnswerRow = (
    &'static str,
    Option<Room>,
    &'static str,
    &'static str,
    &'static str,
    i32,
);

/// The same for accept and reject.
fn answer_failure_rows() -> Vec<AnswerRow> {
    let r = || Some(invited());
    #[rustfmt::skip]
    let rows = [
        ("not the invitee",           r(), "erin",  "bob",   "r1", INVITE_NOT_EXIST),
        ("the inviter cannot answer", r(), "bob",   "dave",  "r1", INVITE_NOT_EXIST),
        ("other inviter named",       r(), "dave",  "alice", "r1", INVITE_NOT_EXIST),
        ("no such request",           r(), "dave",  "bob",   "r9", INVITE_NOT_EXIST),
        ("expired",                   r(), "hank",  "bob",   "r5", INVITE_NOT_EXIST),
        ("cancelled",                 r(), "gina",  "bob",   "r4", INVITE_NOT_EXIST),
        ("rejected",                  r(), "erin",  "bob",   "r2", INVITE_REJECTED),
        ("accepted",                  r(), "frank", "bob",   "r3", INVITE_ACCEPTED),
    ];
    gone(|c, r| (c, r, "dave", "bob", "r1", ROOM_NOT_EXIST))
        .chain(rows)
        .collect()
}

#[test]
fn accept_failures() {
    for (case, r, who, inviter, rid, code) in answer_failure_rows() {
        for auto_join in [None, Some(true)] {
            let p = AcceptParams {
                auto_join,
                ..accept_p(inviter, rid)
            };
            let res = accept(r.as_ref(), &ctx(who), &p, true, 1);
            assert_fails(&format!("{case}, autoJoin {auto_join:?}"), res, code);
        }
    }
}

#[test]
fn reject_failures() {
    for (case, r, who, inviter, rid, code) in answer_failure_rows() {
        let res = reject(r.as_ref(), &ctx(who), &reply_p(inviter, rid), true);
        assert_fails(case, res, code);
    }
}

#[test]
fn answers_tell_the_inviter_and_my_other_devices() {
    // (case, accept or reject, inviter online, code)
    #[rustfmt::skip]
    let rows = [
        ("accept, inviter online",  true,  true,  OK),
        ("accept, inviter offline", true,  false, PEER_OFFLINE),
        ("reject, inviter online",  false, true,  OK),
        ("reject, inviter offline", false, false, PEER_OFFLINE),
    ];
    for (case, is_accept, online, code) in rows {
        let acting = ctx("dave").on("d2");
        let (res, want, ty) = if is_accept {
            let p = accept_p("bob", "r1");
            let res = accept(Some(&invited()), &acting, &p, online, 1);
            (res, invited_then(Accepted), "ACCEPT")
        } else {
            let p = reply_p("bob", "r1");
            let res = reject(Some(&invited()), &acting, &p, online);
            (res, invited_then(Rejected), "REJECT")
        };
        let o = succeeded(case, res);
        // The answer counts even when the inviter is offline.
        assert_eq!(o.code, code, "{case}");
        assert_eq!(o.data, json!({}), "{case}");
        assert_eq!(o.room, want, "{case}");
        let extra = json!({"toAccount": "bob", "requestId": "r1"});
        let ev = event(ty, &want, "dave", "re", extra);
        assert_eq!(
            seen(&o),
            vec![notified("bob", true, ev.clone()), synced("dave", "d2", ev)],
            "{case}"
        );
    }
}

#[test]
fn accept_with_auto_join() {
    let rows = [
        ("inviter online", true, OK),
        ("inviter offline", false, PEER_OFFLINE),
    ];
    for (case, online, code) in rows {
        let acting = ctx("dave").on("d2");
        let res = accept(Some(&invited()), &acting, &auto_join_p(None), online, 40);
        let o = succeeded(case, res);
        let answered = invited_then(Accepted);
        let mut joined = answered.clone();
        joined.members.push(newcomer("dave", "d2", 40));
        joined.expire_at = NOW + TTL;
        assert_eq!(o.code, code, "{case}");
        assert_eq!(o.room, joined, "{case}");
        assert_eq!(o.data, with_members(&joined), "{case}");
        let extra = json!({"toAccount": "bob", "requestId": "r1"});
        let accepted = event("ACCEPT", &answered, "dave", "re", extra);
        let extra = json!({"member": member_json(&joined, &joined.members[2])});
        let entered = event("ROOM_JOIN", &joined, "dave", "joining", extra);
        assert_eq!(
            seen(&o),
            vec![
                notified("bob", true, accepted.clone()),
                synced("dave", "d2", accepted),
                notified("bob", true, entered.clone()),
                notified("carol", true, entered),
            ],
            "{case}"
        );
    }
}

#[test]
fn accept_with_auto_join_is_all_or_nothing() {
    let with_member = |m: RoomMember| {
        let mut r = invited();
        r.members.push(m);
        r
    };
    let dave_on = |device: &str| {
        with_member(RoomMember {
            device_id: device.into(),
            ..member("dave", 20)
        })
    };
    // (case, room, uid asked, code). A failure writes no room, so the
    // invitation stays Pending.
    #[rustfmt::skip]
    let rows = [
        ("room full",                with_member(member("zoe", 13)), None,     ROOM_FULL),
        ("uid conflict",             invited(),                      Some(11), UID_CONFLICT),
        ("already in, same device",  dave_on("d1"),                  None,     ALREADY_IN_ROOM),
        ("already in, other device", dave_on("d2"),                  None,     IN_ROOM_ON_OTHER_DEVICE),
    ];
    for (case, r, uid, code) in rows {
        let res = accept(Some(&r), &ctx("dave"), &auto_join_p(uid), true, 1);
        assert_fails(case, res, code);
        // The accept alone goes through: it was the join that failed.
        let alone = AcceptParams {
            auto_join: Some(false),
            ..auto_join_p(uid)
        };
        let res = accept(Some(&r), &ctx("dave"), &alone, true, 1);
        assert_eq!(code_of(&res), OK, "{case}");
    }
}

#[test]
fn a_rejecter_can_still_join() {
    let o = succeeded(
        "reject",
        reject(Some(&invited()), &ctx("dave"), &reply_p("bob", "r1"), true),
    );
    let joined = succeeded("join", join(Some(&o.room), &ctx("dave"), &join_p(), 30));
    assert_eq!(
        joined.room.member("dave"),
        Some(&newcomer("dave", "d1", 30))
    );
    assert_eq!(joined.room.invites[0].state, Rejected);
}

#[test]
fn invitation_is_answerable_until_it_expires() {
    let expiry = INVITED + INVITE_TTL;
    for (at, code) in [(expiry - 1, OK), (expiry, INVITE_NOT_EXIST)] {
        let r = Some(invited());
        let (inviter, invitee) = (ctx("bob").at(at), ctx("dave").at(at));
        let results = [
            (
                "cancel",
                cancel(r.as_ref(), &inviter, &reply_p("dave", "r1")),
            ),
            (
                "accept",
                accept(r.as_ref(), &invitee, &accept_p("bob", "r1"), true, 1),
            ),
            (
                "reject",
                reject(r.as_ref(), &invitee, &reply_p("bob", "r1"), true),
            ),
        ];
        for (op, res) in results {
            assert_eq!(code_of(&res), code, "{op} at expiry{:+}", at - expiry);
        }
    }
}

// ---------------------------------------------------------------- receipts

fn delivered_p(inviter: &str, request_id: &str) -> DeliveredParams {
    DeliveredParams {
        channel_id: "c1".into(),
        account: inviter.into(),
        request_id: request_id.into(),
    }
}

#[test]
fn invite_delivered_failures() {
    // An acknowledgement of what can no longer be answered fails as the
    // answer would: (case, room, who acknowledges, inviter named, requestId, code).
    let r = || Some(invited());
    #[rustfmt::skip]
    let rows = [
        ("not the invitee",       r(), "erin",  "bob", "r1", INVITE_NOT_EXIST),
        ("the inviter itself",    r(), "bob",   "dave", "r1", INVITE_NOT_EXIST),
        ("other inviter named",   r(), "dave",  "carol", "r1", INVITE_NOT_EXIST),
        ("no such request",       r(), "dave",  "bob", "r9", INVITE_NOT_EXIST),
        ("past its time",         r(), "hank",  "bob", "r5", INVITE_NOT_EXIST),
        ("cancelled",             r(), "gina",  "bob", "r4", INVITE_NOT_EXIST),
        ("rejected",              r(), "erin",  "bob", "r2", INVITE_REJECTED),
        ("accepted",              r(), "frank", "bob", "r3", INVITE_ACCEPTED),
    ];
    let gone_rows = gone(|c, r| (c, r, "dave", "bob", "r1", ROOM_NOT_EXIST));
    for (case, r, who, inviter, rid, code) in gone_rows.chain(rows) {
        let res = invite_delivered(r.as_ref(), &ctx(who), &delivered_p(inviter, rid));
        assert_fails(case, res, code);
    }
}

#[test]
fn invite_delivered_counts_each_device_once() {
    let devices = |n: usize| (0..n).map(|i| format!("p{i}")).collect::<Vec<_>>();
    let with = |list: Vec<String>| {
        let mut r = invited();
        r.invites[0].delivered = list;
        r
    };
    let strings = |l: &[&str]| l.iter().map(|d| d.to_string()).collect::<Vec<_>>();
    // (case, devices recorded before, acknowledging device, recorded after,
    // deliveredCount told to the inviter, if any)
    #[rustfmt::skip]
    let rows = [
        ("first device",            strings(&[]),     "d1",  strings(&["d1"]),       Some(1)),
        ("second device",           strings(&["d1"]), "d2",  strings(&["d1", "d2"]), Some(2)),
        ("the same device again",   strings(&["d1"]), "d1",  strings(&["d1"]),       None),
        ("past the bound",          devices(16),      "d1",  devices(16),            None),
    ];
    for (case, before, device, after, count) in rows {
        let o = succeeded(
            case,
            invite_delivered(
                Some(&with(before)),
                &ctx("dave").on(device),
                &delivered_p("bob", "r1"),
            ),
        );
        let want = with(after);
        assert_eq!(o.code, OK, "{case}");
        assert_eq!(o.data, json!({}), "{case}");
        assert_eq!(o.room, want, "{case}");
        let told: Vec<Seen> = count
            .map(|n| {
                let extra = json!({"toAccount": "bob", "requestId": "r1", "deliveredCount": n});
                // Online only: a receipt is stale by the time anyone logs in.
                notified(
                    "bob",
                    false,
                    event("INVITE_DELIVERED", &want, "dave", "", extra),
                )
            })
            .into_iter()
            .collect();
        assert_eq!(seen(&o), told, "{case}");
    }
}

// ---------------------------------------------------------------- update

fn update_p(ext: &str) -> UpdateChannelParams {
    UpdateChannelParams {
        channel_id: "c1".into(),
        ext: ext.into(),
        offline_enabled: Some(true),
    }
}

#[test]
fn update_channel_failures() {
    // (case, room, who, code)
    #[rustfmt::skip]
    let rows = [
        ("an outsider",            Some(room()),    "dave", NOT_IN_ROOM),
        ("an invitee not yet in",  Some(invited()), "dave", NOT_IN_ROOM),
    ];
    let gone_rows = gone(|c, r| (c, r, "bob", ROOM_NOT_EXIST));
    for (case, r, who, code) in gone_rows.chain(rows) {
        assert_fails(
            case,
            update_channel(r.as_ref(), &ctx(who), &update_p("x")),
            code,
        );
    }
}

#[test]
fn update_channel_tells_the_others_and_my_other_devices() {
    let creator_in = || room_with(|r| r.members.push(member("alice", 10)));
    // (case, room, who, who else is told)
    #[rustfmt::skip]
    let rows = [
        ("a member",                      room(),       "bob",   &["bob", "carol", "alice"][..]),
        ("the creator outside the room",  room(),       "alice", &["bob", "carol"]),
        ("the creator inside the room",   creator_in(), "alice", &["bob", "carol"]),
    ];
    for (case, before, who, members) in rows {
        let o = succeeded(
            case,
            update_channel(
                Some(&before),
                &ctx(who).on("d2"),
                &update_p("{\"topic\":1}"),
            ),
        );
        let want = Room {
            ext: "{\"topic\":1}".into(),
            ..before.clone()
        };
        assert_eq!(o.code, OK, "{case}");
        assert_eq!(o.data, json!({"channelInfo": info(&want, 0)}), "{case}");
        assert_eq!(o.room, want, "{case}");
        let ev = event("CHANNEL_UPDATE", &want, who, "", json!({}));
        let others: Vec<&str> = members.iter().copied().filter(|a| *a != who).collect();
        let mut told = notified_each(&others, Some(true), &ev);
        told.push(synced(who, "d2", ev));
        assert_eq!(seen(&o), told, "{case}");
    }
}

// ---------------------------------------------------------------- query

#[test]
fn invitations_lists_both_sides_in_order() {
    let item = |channel: &str, other: &str, rid: &str, state: &str, created: i64| {
        json!({
            "channelId": channel,
            "account": other,
            "requestId": rid,
            "state": state,
            "createTimestamp": created,
            "expireTimestamp": created + INVITE_TTL,
        })
    };
    // c1: bob's invitations in every state (r5 pending past its time).
    // c0: one of bob's made with c1's (c0 sorts first), one made later, and
    // one to bob made earlier than any in c1.
    let c0 = room_with(|r| {
        r.channel_id = "c0".into();
        r.invites = vec![
            inv("r2", "bob", "yan", Accepted),
            Invitation {
                created_at: INVITED + 5,
                expire_at: INVITED + 5 + INVITE_TTL,
                ..inv("r1", "bob", "zoe", Expired)
            },
            Invitation {
                created_at: INVITED - 5,
                expire_at: INVITED - 5 + INVITE_TTL,
                ..inv("q1", "zoe", "bob", Pending)
            },
        ];
    });
    // A room past its time is left out, swept or not.
    let forgotten = room_with(|r| {
        r.channel_id = "c9".into();
        r.members.clear();
        r.expire_at = NOW;
        r.invites = vec![inv("old", "bob", "zoe", Pending)];
    });
    let rooms = [invited(), c0, forgotten];
    #[rustfmt::skip]
    let rows = [
        ("bob sent and was sent", "bob", json!({
            "sent": [
                item("c0", "yan", "r2", "accepted", INVITED),
                item("c1", "dave", "r1", "pending", INVITED),
                item("c1", "erin", "r2", "rejected", INVITED),
                item("c1", "frank", "r3", "accepted", INVITED),
                item("c1", "gina", "r4", "cancelled", INVITED),
                Value::Null, // r5, below
                item("c0", "zoe", "r1", "expired", INVITED + 5),
            ],
            "received": [item("c0", "zoe", "q1", "pending", INVITED - 5)],
        })),
        ("dave, invited twice in one room", "dave", json!({
            "sent": [],
            "received": [
                item("c1", "bob", "r1", "pending", INVITED),
                item("c1", "carol", "r6", "pending", INVITED),
            ],
        })),
        ("an outsider", "nobody", json!({"sent": [], "received": []})),
    ];
    for (case, account, mut want) in rows {
        if account == "bob" {
            // r5 expires at NOW and its timer has not run: it reads expired.
            want["sent"][5] = json!({
                "channelId": "c1", "account": "hank", "requestId": "r5",
                "state": "expired", "createTimestamp": INVITED, "expireTimestamp": NOW,
            });
        }
        assert_eq!(invitations(&rooms, account, NOW), want, "{case}");
    }
    // A moment earlier r5 is still pending.
    let before = invitations(&rooms, "bob", NOW - 1);
    assert_eq!(before["sent"][5]["state"], "pending");
    assert_eq!(before["sent"][5]["requestId"], "r5");
}

// ---------------------------------------------------------------- control

#[test]
fn control_failures() {
    // (case, room, receiver named, code)
    #[rustfmt::skip]
    let rows = [
        ("receiver neither member nor creator", Some(room()),    Some("dave"), NOT_IN_ROOM),
        ("receiver only invited",               Some(invited()), Some("dave"), NOT_IN_ROOM),
    ];
    let gone_rows = gone(|c, r| (c, r, Some("carol"), ROOM_NOT_EXIST));
    for (case, r, to, code) in gone_rows.chain(rows) {
        assert_fails(case, control(r.as_ref(), &ctx("bob"), &control_p(to)), code);
    }
}

#[test]
fn control_table() {
    // (case, sender, receiver named, who gets it)
    #[rustfmt::skip]
    let rows = [
        ("to a member",                           "bob",   Some("carol"), &["carol"][..]),
        ("to the creator outside the room",       "bob",   Some("alice"), &["alice"]),
        ("no receiver: every member but me",      "bob",   None,          &["carol"]),
        ("empty receiver is no receiver",         "bob",   Some(""),      &["carol"]),
        ("sender outside the room, no receiver",  "dave",  None,          &["bob", "carol"]),
        ("sender outside the room, to a member",  "dave",  Some("bob"),   &["bob"]),
        ("creator outside the room, no receiver", "alice", None,          &["bob", "carol"]),
    ];
    for (case, who, to, told) in rows {
        let o = succeeded(case, control(Some(&room()), &ctx(who), &control_p(to)));
        assert_eq!(o.code, OK, "{case}");
        assert_eq!(o.data, json!({}), "{case}");
        assert_eq!(o.room, room(), "{case}");
        let ev = event("CONTROL", &room(), who, "cmd", json!({}));
        // Control is online only.
        assert_eq!(seen(&o), notified_each(told, Some(false), &ev), "{case}");
    }
}

#[test]
fn admin_control_failures() {
    #[rustfmt::skip]
    let rows = [
        ("receiver neither member nor creator", Some(room()),    Some("dave"), NOT_IN_ROOM),
        ("receiver only invited",               Some(invited()), Some("dave"), NOT_IN_ROOM),
    ];
    let gone_rows = gone(|c, r| (c, r, None, ROOM_NOT_EXIST));
    for (case, r, to, code) in gone_rows.chain(rows) {
        let res = admin_control(r.as_ref(), NOW, &LIMITS, &control_p(to));
        assert_fails(case, res, code);
    }
}

#[test]
fn admin_control_table() {
    // (case, receiver named, who gets it)
    #[rustfmt::skip]
    let rows = [
        ("to a member",                     Some("carol"), &["carol"][..]),
        ("to the creator outside the room", Some("alice"), &["alice"]),
        ("no receiver: every member",       None,          &["bob", "carol"]),
        ("empty receiver is no receiver",   Some(""),      &["bob", "carol"]),
    ];
    for (case, to, told) in rows {
        let o = succeeded(
            case,
            admin_control(Some(&room()), NOW, &LIMITS, &control_p(to)),
        );
        assert_eq!(o.room, room(), "{case}");
        let ev = event("CONTROL", &room(), "", "cmd", json!({}));
        assert_eq!(seen(&o), notified_each(told, Some(false), &ev), "{case}");
    }
}

// ---------------------------------------------------------------- call

#[test]
fn call_failures() {
    // (case, holder, caller, invitee, code)
    #[rustfmt::skip]
    let rows = [
        ("name held by a valid room",    Some(room()), ctx("alice"),                   "dave",  ROOM_EXISTS),
        ("calling yourself",             None,         ctx("alice"),                   "alice", ALREADY_IN_ROOM),
        ("no seat left for the invitee", None,         ctx("alice").limits(&ONE_SEAT), "dave",  ROOM_FULL),
    ];
    for (case, holder, c, invitee, code) in rows {
        let res = call(holder.as_ref(), &c, &call_p(invitee), "c9", 40, ONLINE);
        assert_fails(case, res, code);
    }
}

/// The room a call from alice to dave makes, alice in it with `uid`.
fn called(name: &str, uid: u64) -> Room {
    Room {
        channel_id: "c9".into(),
        name: name.into(),
        kind: 2,
        ext: "call-ext".into(),
        creator: "alice".into(),
        created_at: NOW,
        expire_at: NOW + TTL,
        closed: false,
        members: vec![newcomer("alice", "d1", uid)],
        invites: vec![new_inv("r1", "alice", "dave")],
        version: 0,
    }
}

#[test]
fn call_reach_table() {
    for (case, reach, need_push, code) in reach_rows() {
        let pushed = need_push.map(push);
        let p = CallParams {
            push_info: pushed.as_ref().map(|(p, _)| p.clone()),
            ..call_p("dave")
        };
        let o = succeeded(case, call(None, &ctx("alice"), &p, "c9", 40, reach));
        // 10201/10202 keep the room: the caller is in it, the invitation waits.
        let want = called("c9", 40);
        assert_eq!(o.code, code, "{case}");
        assert_eq!(o.room, want, "{case}");
        assert_eq!(o.data, with_members(&want), "{case}");
        let mut extra = json!({"toAccount": "dave", "requestId": "r1"});
        if let Some((_, wire)) = pushed {
            extra["pushInfo"] = wire;
        }
        let ev = event("INVITE", &want, "alice", "ring", extra);
        assert_eq!(seen(&o), vec![notified("dave", true, ev)], "{case}");
    }
}

#[test]
fn call_with_name_and_uid() {
    let p = CallParams {
        channel_name: Some("standup".into()),
        uid: Some(7),
        ..call_p("dave")
    };
    let o = succeeded("call", call(None, &ctx("alice"), &p, "c9", 40, ONLINE));
    assert_eq!(o.room, called("standup", 7));
    assert_eq!(o.data["channelInfo"]["channelName"], "standup");
    assert_eq!(o.data["members"][0]["uid"], 7);
}

// ---------------------------------------------------------------- device_gone

#[test]
fn device_gone_failures() {
    // (case, room, account, device, code)
    #[rustfmt::skip]
    let rows = [
        ("no such room",                    None,                  "bob",  "d1", ROOM_NOT_EXIST),
        ("member joined on another device", Some(room()),          "bob",  "d2", NOT_IN_ROOM),
        ("not a member",                    Some(room()),          "dave", "d1", NOT_IN_ROOM),
        ("closed room, no invitation",      gone_rooms()[1].1.clone(), "bob", "d1", NOT_IN_ROOM),
        ("invitations from another device", Some(invited()),       "carol", "d2", NOT_IN_ROOM),
    ];
    for (case, r, account, device, code) in rows {
        let res = device_gone(r.as_ref(), account, device, NOW, &LIMITS);
        assert_fails(case, res, code);
    }
}

#[test]
fn device_gone_drops_the_member_and_syncs_the_others() {
    let o = succeeded(
        "drop",
        device_gone(Some(&room()), "bob", "d1", NOW, &LIMITS),
    );
    let want = room_with(|r| {
        r.members.remove(0);
    });
    assert_eq!(o.code, OK);
    assert_eq!(o.data, json!({}));
    assert_eq!(o.room, want);
    assert_eq!(seen(&o), vec![members_synced("carol", with_members(&want))]);
    let carol = json!({
        "account": "carol",
        "uid": 12,
        "createTimestamp": CREATED,
        "expireTimestamp": CREATED + TTL,
    });
    assert_eq!(seen(&o)[0].body["members"], json!([carol]));
}

#[test]
fn dropping_the_last_member_starts_the_ttl() {
    let lone = room_with(|r| {
        r.members.truncate(1);
        r.expire_at = NOW - TTL;
    });
    let o = succeeded("drop", device_gone(Some(&lone), "bob", "d1", NOW, &LIMITS));
    let want = room_with(|r| {
        r.members.clear();
        r.expire_at = NOW + TTL;
    });
    assert_eq!(o.room, want);
    assert!(o.deliveries.is_empty());
    assert!(o.room.is_valid(NOW + TTL - 1));
    assert!(!o.room.is_valid(NOW + TTL));
}

#[test]
fn device_gone_cancels_its_ringing_invitations() {
    // bob (on d1) has r1 pending to dave, r5 pending but past its time, and
    // answered ones; carol's r6 is not his.
    let before = room_with(|r| {
        r.invites = invited().invites;
        r.invites.push(Invitation {
            device: "d2".into(),
            ..inv("r7", "bob", "erin", Pending)
        });
        r.invites[0].offline = true;
    });
    let o = succeeded(
        "gone",
        device_gone(Some(&before), "bob", "d1", NOW, &LIMITS),
    );
    let mut want = before.clone();
    want.invites[0].state = Cancelled;
    want.members.remove(0);
    assert_eq!(o.room, want, "only r1 is cancelled; r7 came from bob's d2");
    let ev = event(
        "CANCEL_INVITE",
        &want,
        "bob",
        "",
        json!({"toAccount": "dave", "requestId": "r1"}),
    );
    assert_eq!(
        seen(&o),
        vec![
            notified("dave", true, ev),
            members_synced("carol", with_members(&want)),
        ]
    );
    // The cancelled invitation answers 10408 like any cancelled one.
    let late = accept(Some(&o.room), &ctx("dave"), &accept_p("bob", "r1"), true, 1);
    assert_fails("accept after the caller vanished", late, INVITE_NOT_EXIST);
}

#[test]
fn device_gone_in_a_room_it_only_invited_into() {
    // alice created c1 without joining and invited dave from d1.
    let before = room_with(|r| r.invites = vec![inv("r1", "alice", "dave", Pending)]);
    let o = succeeded(
        "gone",
        device_gone(Some(&before), "alice", "d1", NOW, &LIMITS),
    );
    let want = room_with(|r| r.invites = vec![inv("r1", "alice", "dave", Cancelled)]);
    assert_eq!(o.room, want);
    let ev = event(
        "CANCEL_INVITE",
        &want,
        "alice",
        "",
        json!({"toAccount": "dave", "requestId": "r1"}),
    );
    assert_eq!(seen(&o), vec![notified("dave", false, ev)]);
}

// ---------------------------------------------------------------- expire_invites

#[test]
fn expire_invites_tells_both_sides() {
    // r5 (bob -> hank) ran out at NOW; the others are answered or still
    // within their time.
    let before = invited();
    let o = succeeded("expire", expire_invites(Some(&before), NOW));
    let mut want = before.clone();
    want.invites[4].state = Expired;
    assert_eq!(o.code, OK);
    assert_eq!(o.room, want);
    let ev = event(
        "INVITE_TIMEOUT",
        &want,
        "bob",
        "",
        json!({"toAccount": "hank", "requestId": "r5"}),
    );
    assert_eq!(ev["eventTypeCode"], 9);
    assert_eq!(
        seen(&o),
        vec![
            notified("bob", false, ev.clone()),
            notified("hank", false, ev)
        ]
    );
    // Told once: a second run finds nothing, and the answer stays 10408.
    assert_fails(
        "again",
        expire_invites(Some(&o.room), NOW + 1),
        INVITE_NOT_EXIST,
    );
    let late = accept(Some(&o.room), &ctx("hank"), &accept_p("bob", "r5"), true, 1);
    assert_fails("accept after timeout", late, INVITE_NOT_EXIST);
}

#[test]
fn expire_invites_failures_and_offline_flag() {
    assert_fails("no room", expire_invites(None, NOW), ROOM_NOT_EXIST);
    assert_fails(
        "nothing due yet",
        expire_invites(Some(&invited()), NOW - 1),
        INVITE_NOT_EXIST,
    );
    // An offline-enabled invitation's timeout is kept for offline devices,
    // also in a room closed since.
    let closed = room_with(|r| {
        r.closed = true;
        r.members.clear();
        r.invites = vec![Invitation {
            offline: true,
            ..inv("r1", "bob", "dave", Pending)
        }];
    });
    let o = succeeded(
        "expire",
        expire_invites(Some(&closed), INVITED + INVITE_TTL),
    );
    assert!(seen(&o).iter().all(|d| d.offline_enabled));
    assert_eq!(seen(&o)[0].body["channelInfo"]["invalid"], 1);
}

// ---------------------------------------------------------------- busy (not in NIM)

const BUSY: Reach = Reach {
    busy: true,
    ..ONLINE
};

/// Another room, "c2" of `kind`, made by erin, shaped by `f`.
fn other_room(kind: u8, f: impl FnOnce(&mut Room)) -> Room {
    let mut r = room_with(|r| {
        r.channel_id = "c2".into();
        r.name = "elsewhere".into();
        r.kind = kind;
        r.creator = "erin".into();
        r.members = vec![member("erin", 21)];
    });
    f(&mut r);
    r
}

#[test]
fn is_busy_table() {
    let ringing_to_dave = |rid: &str, from: &str| inv(rid, from, "dave", Pending);
    let with_dave = |r: &mut Room| r.members.push(member("dave", 20));
    let closed = |r: &mut Room| {
        r.closed = true;
        r.members.clear();
    };
    // (case, dave's rooms, busy for bob's invitation r1 to dave in c1)
    #[rustfmt::skip]
    let rows: Vec<(&str, Vec<Room>, bool)> = vec![
        ("no rooms",                                vec![], false),
        ("ringing in another room",                 vec![other_room(1, |r| r.invites = vec![ringing_to_dave("x", "erin")])], true),
        ("ringing here from another inviter",       vec![room_with(|r| r.invites = vec![ringing_to_dave("r6", "carol")])], true),
        ("ringing here from bob, other requestId",  vec![room_with(|r| r.invites = vec![ringing_to_dave("r2", "bob")])], true),
        ("the invitation this one replaces",        vec![room_with(|r| r.invites = vec![ringing_to_dave("r1", "bob")])], false),
        ("same requestId from bob, other room",     vec![other_room(3, |r| r.invites = vec![ringing_to_dave("r1", "bob")])], true),
        ("in a type-1 call",                        vec![other_room(1, with_dave)], true),
        ("in a type-2 call",                        vec![other_room(2, with_dave)], true),
        ("member of a type-3 room only",            vec![other_room(3, with_dave)], false),
        ("member of a closed call room",            vec![other_room(1, |r| { with_dave(r); closed(r) })], false),
        ("member of an expired call room",          vec![other_room(1, |r| { r.members.clear(); r.expire_at = NOW })], false),
        ("member of this room (10407, not busy)",   vec![room_with(with_dave)], false),
        ("invitation past its time",                vec![other_room(3, |r| r.invites = vec![Invitation { expire_at: NOW, ..ringing_to_dave("x", "erin") }])], false),
        ("invitation accepted",                     vec![other_room(3, |r| r.invites = vec![inv("x", "erin", "dave", Accepted)])], false),
        ("invitation rejected",                     vec![other_room(3, |r| r.invites = vec![inv("x", "erin", "dave", Rejected)])], false),
        ("invitation cancelled",                    vec![other_room(3, |r| r.invites = vec![inv("x", "erin", "dave", Cancelled)])], false),
        ("invitation timed out",                    vec![other_room(3, |r| r.invites = vec![inv("x", "erin", "dave", Expired)])], false),
        ("ringing in a closed room",                vec![other_room(1, |r| { r.invites = vec![ringing_to_dave("x", "erin")]; closed(r) })], false),
        ("dave ringing someone else",               vec![other_room(3, |r| r.invites = vec![inv("x", "dave", "erin", Pending)])], false),
        ("idle room, then a call",                  vec![other_room(3, |_| {}), other_room(2, with_dave)], true),
    ];
    for (case, rooms, want) in rows {
        assert_eq!(
            is_busy(&rooms, "bob", &invite_p("dave"), NOW),
            want,
            "{case}"
        );
    }
}

#[test]
fn busy_check_fails_invite_and_call_with_10430() {
    let checked = |on: Option<bool>| InviteParams {
        busy_check: on,
        ..invite_p("dave")
    };
    // (case, busyCheck, reach, code)
    #[rustfmt::skip]
    let rows = [
        ("busy, busyCheck",          Some(true),  BUSY,   PEER_BUSY),
        ("busy, no busyCheck",       None,        BUSY,   OK),
        ("busy, busyCheck false",    Some(false), BUSY,   OK),
        ("not busy, busyCheck",      Some(true),  ONLINE, OK),
    ];
    for (case, on, reach, code) in rows {
        let res = invite(Some(&room()), &ctx("bob"), &checked(on), reach);
        assert_eq!(code_of(&res), code, "invite: {case}");
        let p = CallParams {
            busy_check: on,
            ..call_p("dave")
        };
        let res = call(None, &ctx("alice"), &p, "c9", 40, reach);
        assert_eq!(code_of(&res), code, "call: {case}");
    }
    // 10430 writes nothing and rings nobody (a failure has no outcome);
    // the room's own checks come first.
    let res = invite(Some(&room()), &ctx("bob"), &checked(Some(true)), BUSY);
    assert_fails("busy", res, PEER_BUSY);
    let p = InviteParams {
        busy_check: Some(true),
        ..invite_p("carol")
    };
    let res = invite(Some(&room()), &ctx("bob"), &p, BUSY);
    assert_fails("already in the room", res, ALREADY_IN_ROOM);
    let res = invite(Some(&room()), &ctx("dave"), &checked(Some(true)), BUSY);
    assert_fails("inviter not in the room", res, NOT_IN_ROOM);
}

// ---------------------------------------------------------------- inviteMany (not in NIM)

fn many_p(accounts: &[&str]) -> InviteManyParams {
    InviteManyParams {
        channel_id: "c1".into(),
        accounts: accounts.iter().map(|a| a.to_string()).collect(),
        request_id: "g1".into(),
        offline_enabled: Some(true),
        attach_ext: Some("join us".into()),
        push_info: None,
        busy_check: Some(true),
        timeout_ms: None,
    }
}

#[test]
fn invite_many_failures() {
    let p = many_p(&["dave"]);
    let gone_rows = gone(|c, r| (c, r, "bob", ROOM_NOT_EXIST));
    let rows = [
        (
            "inviter neither creator nor member",
            Some(room()),
            "dave",
            NOT_IN_ROOM,
        ),
        ("inviter only invited", Some(invited()), "dave", NOT_IN_ROOM),
    ];
    for (case, r, who, code) in gone_rows.chain(rows) {
        let res = invite_many(r.as_ref(), &ctx(who), &p, &[ONLINE]);
        assert_fails(case, res, code);
    }
}

#[test]
fn invite_many_decides_each_invitee() {
    let offline = Reach {
        online: false,
        ..ONLINE
    };
    // (account, reach, result code)
    #[rustfmt::skip]
    let rows = [
        ("dave",  ONLINE,  OK),
        ("erin",  offline, PEER_OFFLINE),
        ("frank", BUSY,    PEER_BUSY),
        ("carol", ONLINE,  ALREADY_IN_ROOM),
        ("gina",  ONLINE,  OK),
    ];
    let accounts: Vec<&str> = rows.iter().map(|r| r.0).collect();
    let reaches: Vec<Reach> = rows.iter().map(|r| r.1).collect();
    let p = many_p(&accounts);
    let o = succeeded("mix", invite_many(Some(&room()), &ctx("bob"), &p, &reaches));
    assert_eq!(o.code, OK);
    assert_eq!(
        o.data,
        json!({"results": [
            {"account": "dave",  "code": 200},
            {"account": "erin",  "code": 10201},
            {"account": "frank", "code": 10430},
            {"account": "carol", "code": 10407},
            {"account": "gina",  "code": 200},
        ]})
    );
    // Kept: the ringing and the offline ones; busy and member: nothing.
    let want = room_with(|r| {
        r.invites = ["dave", "erin", "gina"]
            .iter()
            .map(|a| new_inv("g1", "bob", a))
            .collect()
    });
    assert_eq!(o.room, want);
    // Each invitee gets the INVITE a single invitation would send.
    let invite_to = |a: &str| {
        let extra = json!({"toAccount": a, "requestId": "g1"});
        notified(a, true, event("INVITE", &want, "bob", "join us", extra))
    };
    assert_eq!(
        seen(&o),
        vec![invite_to("dave"), invite_to("erin"), invite_to("gina")]
    );
    let expiry = Timer::InviteExpiry {
        channel_id: "c1".into(),
    };
    assert_eq!(o.timers, vec![(NOW + INVITE_TTL, expiry)]);
    // Answered as usual: an invitee accepts its own invitation.
    let took = accept(
        Some(&o.room),
        &ctx("gina"),
        &AcceptParams {
            request_id: "g1".into(),
            ..accept_p("bob", "g1")
        },
        true,
        1,
    );
    assert_eq!(code_of(&took), OK);
}

#[test]
fn invite_many_into_a_full_room_and_without_busy_check() {
    let o = succeeded(
        "full",
        invite_many(
            Some(&full_room()),
            &ctx("bob"),
            &many_p(&["dave", "erin"]),
            &[ONLINE, BUSY],
        ),
    );
    assert_eq!(
        o.data["results"],
        json!([{"account": "dave", "code": 10419}, {"account": "erin", "code": 10419}])
    );
    assert!(o.deliveries.is_empty() && o.room.invites.is_empty());
    // Without busyCheck a busy invitee rings.
    let p = InviteManyParams {
        busy_check: None,
        ..many_p(&["dave"])
    };
    let o = succeeded(
        "unchecked",
        invite_many(Some(&room()), &ctx("bob"), &p, &[BUSY]),
    );
    assert_eq!(o.data["results"], json!([{"account": "dave", "code": 200}]));
    assert_eq!(o.deliveries.len(), 1);
    // A room with a push wanted and no provider: 10202 for the offline one.
    let (info, _) = push(true);
    let p = InviteManyParams {
        push_info: Some(info),
        ..many_p(&["dave", "erin"])
    };
    let away = Reach {
        online: false,
        ..ONLINE
    };
    let o = succeeded(
        "push",
        invite_many(Some(&room()), &ctx("alice"), &p, &[ONLINE, away]),
    );
    assert_eq!(
        o.data["results"],
        json!([{"account": "dave", "code": 200}, {"account": "erin", "code": 10202}])
    );
}

// ---------------------------------------------------------------- glare (not in NIM)

#[test]
fn glare_room_table() {
    let ringing_call = called("c9", 40); // alice → dave, r1, made at NOW
    let in_state = |state| {
        let mut r = called("c9", 40);
        r.invites[0].state = state;
        r
    };
    let older = |id: &str| {
        let mut r = called(id, 41);
        r.channel_id = id.into();
        r.invites[0].created_at = NOW - 5;
        r
    };
    let closed = {
        let mut r = called("c9", 40);
        r.closed = true;
        r.members.clear();
        r
    };
    // (case, dave's rooms, when, caller, callee, the room glared into)
    #[rustfmt::skip]
    let rows: Vec<(&str, Vec<Room>, i64, &str, &str, Option<&str>)> = vec![
        ("alice's call rings dave",          vec![ringing_call.clone()], NOW, "dave", "alice", Some("c9")),
        ("an invite, not a call",            vec![invited()],            NOW, "dave", "bob",   Some("c1")),
        ("cancelled",                        vec![in_state(Cancelled)],  NOW, "dave", "alice", None),
        ("timed out",                        vec![in_state(Expired)],    NOW, "dave", "alice", None),
        ("accepted",                         vec![in_state(Accepted)],   NOW, "dave", "alice", None),
        ("rejected",                         vec![in_state(Rejected)],   NOW, "dave", "alice", None),
        ("past its time",                    vec![ringing_call.clone()], NOW + INVITE_TTL, "dave", "alice", None),
        ("room closed",                      vec![closed],               NOW, "dave", "alice", None),
        ("the caller's own invitation",      vec![ringing_call.clone()], NOW, "alice", "dave", None),
        ("alice invited someone else",       vec![ringing_call.clone()], NOW, "erin", "alice", None),
        ("someone else invited dave",        vec![ringing_call.clone()], NOW, "dave", "erin",  None),
        ("the newest of two rings",          vec![older("c7"), ringing_call.clone(), older("c8")], NOW, "dave", "alice", Some("c9")),
    ];
    for (case, rooms, at, caller, callee, want) in rows {
        let got = glare_room(&rooms, caller, callee, at).map(|r| r.channel_id.as_str());
        assert_eq!(got, want, "{case}");
    }
}

#[test]
fn the_second_call_glares_in_either_order() {
    for (first, second) in [("alice", "dave"), ("dave", "alice")] {
        for (online, code) in [(true, OK), (false, PEER_OFFLINE)] {
            let case = format!("{first} calls first, {second} online {online}");
            let o = call(None, &ctx(first), &call_p(second), "c9", 40, ONLINE);
            let rung = succeeded(&case, o).room;
            let rooms = vec![rung.clone()];
            // The first call found nothing to glare with; the second does.
            assert!(glare_room(&[], first, second, NOW).is_none());
            let found = glare_room(&rooms, second, first, NOW);
            assert_eq!(found.map(|r| r.channel_id.as_str()), Some("c9"), "{case}");
            let back = CallParams {
                kind: 1,
                channel_name: Some("ignored".into()),
                request_id: "ignored".into(),
                uid: Some(7),
                attach_ext: Some("back".into()),
                ..call_p(first)
            };
            let acting = ctx(second).on("d2");
            let o = succeeded(&case, glare(found, &acting, &back, online, 1));
            let mut answered = rung.clone();
            answered.invites[0].state = Accepted;
            let mut joined = answered.clone();
            joined.members.push(newcomer(second, "d2", 7));
            assert_eq!(o.code, code, "{case}");
            assert_eq!(
                o.room, joined,
                "{case}: no second room, the first one joined"
            );
            let mut data = with_members(&joined);
            data["glare"] = json!(true);
            assert_eq!(o.data, data, "{case}");
            let extra = json!({"toAccount": first, "requestId": "r1"});
            let accepted = event("ACCEPT", &answered, second, "back", extra);
            let extra = json!({"member": member_json(&joined, &joined.members[1])});
            let entered = event("ROOM_JOIN", &joined, second, "back", extra);
            assert_eq!(
                seen(&o),
                vec![
                    notified(first, true, accepted.clone()),
                    synced(second, "d2", accepted),
                    notified(first, true, entered),
                ],
                "{case}"
            );
        }
    }
}

#[test]
fn glare_with_an_invite_and_its_failures() {
    // bob invited dave into c1 (r1); dave calls bob: joins c1.
    let o = succeeded(
        "invite",
        glare(Some(&invited()), &ctx("dave"), &call_p("bob"), true, 30),
    );
    assert_eq!(o.room.invites[0].state, Accepted);
    assert_eq!(o.room.member("dave"), Some(&newcomer("dave", "d1", 30)));
    let told: Vec<(String, Value)> = seen(&o)
        .into_iter()
        .map(|d| (d.to, d.body["eventType"].clone()))
        .collect();
    let want = [
        ("bob", "ACCEPT"),
        ("dave", "ACCEPT"),
        ("bob", "ROOM_JOIN"),
        ("carol", "ROOM_JOIN"),
    ];
    assert_eq!(told, want.map(|(a, e)| (a.to_string(), json!(e))));
    // No longer ringing: 10408, and the service makes an ordinary call.
    for state in [Cancelled, Expired, Accepted, Rejected] {
        let res = glare(
            Some(&invited_then(state)),
            &ctx("dave"),
            &call_p("bob"),
            true,
            30,
        );
        assert_fails(&format!("{state:?}"), res, INVITE_NOT_EXIST);
    }
    let late = ctx("dave").at(INVITED + INVITE_TTL);
    assert_fails(
        "past its time",
        glare(Some(&invited()), &late, &call_p("bob"), true, 30),
        INVITE_NOT_EXIST,
    );
    assert_fails(
        "invited by someone else",
        glare(Some(&invited()), &ctx("dave"), &call_p("alice"), true, 30),
        INVITE_NOT_EXIST,
    );
    for (case, r) in gone_rooms() {
        assert_fails(
            case,
            glare(r.as_ref(), &ctx("dave"), &call_p("bob"), true, 30),
            ROOM_NOT_EXIST,
        );
    }
    // The join fails: the call fails with its code, the invitation still rings.
    let full = room_with(|r| {
        r.members.push(member("zoe", 13));
        r.invites = invited().invites;
    });
    assert_fails(
        "room full",
        glare(Some(&full), &ctx("dave"), &call_p("bob"), true, 30),
        ROOM_FULL,
    );
    let taken = CallParams {
        uid: Some(11),
        ..call_p("bob")
    };
    assert_fails(
        "uid taken",
        glare(Some(&invited()), &ctx("dave"), &taken, true, 30),
        UID_CONFLICT,
    );
}

/// The version counts a room's changes: one more for any change, the same
/// for none and for delivery receipts alone (which no webhook reports).
#[test]
fn the_version_counts_every_change_but_receipts() {
    let ringing = room_with(|r| {
        r.version = 4;
        r.invites.push(inv("r1", "alice", "dave", Pending));
    });
    let rows: [(&str, fn(&mut Room), u64); 6] = [
        ("nothing", |_| {}, 4),
        ("a receipt", |r| r.invites[0].delivered.push("d1".into()), 4),
        ("ext", |r| r.ext = "new".into(), 5),
        ("an answer", |r| r.invites[0].state = Accepted, 5),
        ("a member leaves", |r| drop(r.members.pop()), 5),
        ("closed", |r| r.closed = true, 5),
    ];
    for (what, change, want) in rows {
        let mut after = ringing.clone();
        change(&mut after);
        assert_eq!(Room::version_after(Some(&ringing), &after), want, "{what}");
    }
    assert_eq!(Room::version_after(None, &ringing), 1, "a new room");
}
