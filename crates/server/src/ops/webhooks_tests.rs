//! facts() by table: each row is a real rule's change of a room (so the
//! table follows what the rules do), and the webhooks it must yield.

use super::*;
use crate::store::Invitation;
use nim_signaling_core::rules::{self, Actor, Ctx, Limits, Reach};
use nim_signaling_protocol::params::*;
use nim_signaling_protocol::Op;

const NOW: i64 = 1_700_000_000_000;
static LIMITS: Limits = Limits {
    room_ttl_ms: 60_000,
    invite_ttl_ms: 30_000,
    max_members: 10,
};
const ONLINE: Reach = Reach {
    online: true,
    push_available: false,
    busy: false,
};

fn ctx(account: &'static str, now: i64) -> Ctx<'static> {
    Ctx {
        now,
        actor: Actor {
            account,
            device: "dev-1",
        },
        limits: &LIMITS,
    }
}

fn by(op: &str, account: &'static str) -> Cause<'static> {
    let op = Op::from_name(op).expect("an operation");
    Cause::Request {
        op,
        account,
        device: "dev-1",
    }
}

fn params<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("params")
}

/// alice called bob ("r1"): alice is in room "c1", bob's phone rings.
fn called() -> Room {
    let p: CallParams = params(json!({"type": 1, "account": "bob", "requestId": "r1"}));
    let mut r = rules::call(None, &ctx("alice", NOW), &p, "c1", 7, ONLINE)
        .unwrap()
        .room;
    r.version = 1;
    r
}

/// The call's room after carol joined it too.
fn called_with_carol_in() -> Room {
    let mut room = called();
    room.members.push(crate::store::RoomMember {
        account: "carol".into(),
        device_id: "dev-1".into(),
        uid: 8,
        joined_at: NOW,
    });
    room
}

/// `change` applied to `before` as the engine does it: the version moves
/// on (Room::version_after), then facts() compares.
fn hooks(
    before: Option<&Room>,
    cause: Cause,
    now: i64,
    change: impl FnOnce(Option<&Room>) -> rules::RuleResult,
) -> (Room, Vec<Hook>) {
    let mut after = change(before).expect("the rule applies").room;
    after.version = Room::version_after(before, &after);
    let h = facts(before, &after, &cause, now);
    (after, h)
}

fn names(h: &[Hook]) -> Vec<&'static str> {
    h.iter().map(|h| h.event).collect()
}

fn inv(request_id: &str, from: &str, to: &str) -> Option<HookInvitation> {
    Some(HookInvitation {
        request_id: request_id.into(),
        from: from.into(),
        to: to.into(),
    })
}

#[test]
fn a_call_creates_joins_and_invites_in_that_order() {
    let p: CallParams = params(json!({"type": 1, "account": "bob", "requestId": "r1"}));
    let (after, h) = hooks(None, by("call", "alice"), NOW, |r| {
        rules::call(r, &ctx("alice", NOW), &p, "c1", 7, ONLINE)
    });
    assert_eq!(
        names(&h),
        ["room.created", "member.joined", "invitation.sent"]
    );
    assert!(h
        .iter()
        .all(|h| h.room_version == 1 && h.channel_info.channel_id == "c1"));
    let m = h[1].member.as_ref().unwrap();
    assert_eq!(
        (m.account.as_str(), m.device_id.as_str(), m.uid),
        ("alice", "dev-1", 7)
    );
    assert_eq!(h[2].invitation, inv("r1", "alice", "bob"));
    assert_eq!(after.version, 1);
}

#[test]
fn create_alone_is_room_created() {
    let p: CreateParams = params(json!({"type": 2, "channelName": "standup"}));
    let (_, h) = hooks(None, by("create", "alice"), NOW, |r| {
        rules::create(r, &ctx("alice", NOW), &p, "c2")
    });
    assert_eq!(names(&h), ["room.created"]);
    assert_eq!(h[0].channel_info.channel_name, "standup");
    assert!(h[0].member.is_none() && h[0].invitation.is_none());
}

#[test]
fn answers_and_cancel_end_the_invitation_by_name() {
    let room = called();
    let reply: InviteReplyParams =
        params(json!({"channelId": "c1", "account": "alice", "requestId": "r1"}));
    let (_, h) = hooks(Some(&room), by("reject", "bob"), NOW + 1, |r| {
        rules::reject(r, &ctx("bob", NOW + 1), &reply, true)
    });
    assert_eq!(names(&h), ["invitation.rejected"]);
    assert_eq!(h[0].invitation, inv("r1", "alice", "bob"));
    assert_eq!(h[0].room_version, 2);

    let cancel: InviteReplyParams =
        params(json!({"channelId": "c1", "account": "bob", "requestId": "r1"}));
    let (_, h) = hooks(Some(&room), by("cancel", "alice"), NOW + 1, |r| {
        rules::cancel(r, &ctx("alice", NOW + 1), &cancel)
    });
    assert_eq!(names(&h), ["invitation.cancelled"]);

    // Accept with autoJoin: the answer, then bob coming in.
    let accept: AcceptParams =
        params(json!({"channelId": "c1", "account": "alice", "requestId": "r1", "autoJoin": true}));
    let (_, h) = hooks(Some(&room), by("accept", "bob"), NOW + 1, |r| {
        rules::accept(r, &ctx("bob", NOW + 1), &accept, true, 9)
    });
    assert_eq!(names(&h), ["invitation.accepted", "member.joined"]);
    assert_eq!(h[1].member.as_ref().unwrap().account, "bob");
}

#[test]
fn an_invitation_running_out_is_timed_out() {
    let room = called();
    let late = NOW + LIMITS.invite_ttl_ms;
    let (_, h) = hooks(Some(&room), Cause::InviteTimeout, late, |r| {
        rules::expire_invites(r, late)
    });
    assert_eq!(names(&h), ["invitation.timedOut"]);
    assert_eq!(h[0].invitation, inv("r1", "alice", "bob"));
}

#[test]
fn leaving_by_request_is_left_and_by_device_gone_is_dropped() {
    let room = called_with_carol_in();
    let leave: LeaveParams = params(json!({"channelId": "c1"}));
    let (_, h) = hooks(Some(&room), by("leave", "carol"), NOW + 1, |r| {
        rules::leave(r, &ctx("carol", NOW + 1), &leave)
    });
    assert_eq!(names(&h), ["member.left"]);
    assert_eq!(h[0].member.as_ref().unwrap().account, "carol");

    // alice's device vanished: her ringing invitation is cancelled, then
    // she is dropped.
    let gone = Cause::DeviceGone {
        account: "alice",
        device: "dev-1",
    };
    let (_, h) = hooks(Some(&room), gone, NOW + 1, |r| {
        rules::device_gone(r, "alice", "dev-1", NOW + 1, &LIMITS)
    });
    assert_eq!(names(&h), ["invitation.cancelled", "member.dropped"]);
    assert_eq!(h[1].member.as_ref().unwrap().account, "alice");
}

#[test]
fn closing_is_room_closed_only() {
    let room = called_with_carol_in();
    let close: CloseParams = params(json!({"channelId": "c1"}));
    let (_, h) = hooks(Some(&room), by("close", "alice"), NOW + 1, |r| {
        rules::close(r, &ctx("alice", NOW + 1), &close)
    });
    assert_eq!(names(&h), ["room.closed"]);
    assert_eq!(h[0].channel_info.invalid, 1);
}

#[test]
fn join_and_invite_of_an_existing_room() {
    let room = called();
    let join: JoinParams = params(json!({"channelId": "c1"}));
    let (after, h) = hooks(Some(&room), by("join", "carol"), NOW + 1, |r| {
        rules::join(r, &ctx("carol", NOW + 1), &join, 3)
    });
    assert_eq!(names(&h), ["member.joined"]);
    let invite: InviteParams =
        params(json!({"channelId": "c1", "account": "dave", "requestId": "r2"}));
    let (_, h) = hooks(Some(&after), by("invite", "carol"), NOW + 2, |r| {
        rules::invite(r, &ctx("carol", NOW + 2), &invite, ONLINE)
    });
    assert_eq!(names(&h), ["invitation.sent"]);
    assert_eq!(h[0].invitation, inv("r2", "carol", "dave"));
    assert_eq!(h[0].room_version, 3);
}

#[test]
fn re_inviting_with_the_same_request_id_is_a_new_invitation() {
    let room = called();
    let invite: InviteParams =
        params(json!({"channelId": "c1", "account": "bob", "requestId": "r1"}));
    let (_, h) = hooks(Some(&room), by("invite", "alice"), NOW + 5, |r| {
        rules::invite(r, &ctx("alice", NOW + 5), &invite, ONLINE)
    });
    assert_eq!(names(&h), ["invitation.sent"]);
}

#[test]
fn an_ext_change_is_room_updated_and_a_receipt_is_nothing() {
    let room = called();
    // (case, new ext, hooks)
    let rows: [(&str, &str, &[&str]); 2] = [
        ("a new ext", "{\"topic\":\"q3\"}", &["room.updated"]),
        ("the same ext again", "", &[]),
    ];
    for (case, ext, want) in rows {
        let update: UpdateChannelParams = params(json!({"channelId": "c1", "ext": ext}));
        let (_, h) = hooks(Some(&room), by("updateChannel", "alice"), NOW + 1, |r| {
            rules::update_channel(r, &ctx("alice", NOW + 1), &update)
        });
        assert_eq!(names(&h), want, "{case}");
        if let Some(h) = h.first() {
            assert_eq!(h.channel_info.ext, ext, "{case}");
            assert_eq!(h.room_version, 2, "{case}");
        }
    }
    // A delivery receipt changes the invitation's devices only.
    let ack: DeliveredParams =
        params(json!({"channelId": "c1", "account": "alice", "requestId": "r1"}));
    let (_, h) = hooks(Some(&room), by("inviteDelivered", "bob"), NOW + 1, |r| {
        rules::invite_delivered(r, &ctx("bob", NOW + 1), &ack)
    });
    assert_eq!(names(&h), Vec::<&str>::new());
}

#[test]
fn an_unchanged_room_yields_nothing() {
    let room = called();
    let mut same = room.clone();
    same.version += 1;
    assert!(facts(Some(&room), &same, &by("control", "alice"), NOW).is_empty());
    // An invitation that was already answered stays answered: no event.
    let mut answered = room.clone();
    answered.invites[0].state = InviteState::Rejected;
    let mut later = answered.clone();
    later.invites.push(Invitation {
        request_id: "r9".into(),
        ..answered.invites[0].clone()
    });
    later.invites[1].state = InviteState::Pending;
    let h = facts(Some(&answered), &later, &by("invite", "alice"), NOW);
    assert_eq!(names(&h), ["invitation.sent"]);
    assert_eq!(h[0].invitation, inv("r9", "alice", "bob"));
}

#[test]
fn forgotten_rooms_expire_unless_closed() {
    // As the sweeper finds them: nobody in them any more.
    let mut open = called();
    open.members.clear();
    let mut closed = called();
    closed.channel_id = "c-closed".into();
    closed.closed = true;
    let h = expired(&[open, closed], NOW + 999_999);
    assert_eq!(names(&h), ["room.expired"]);
    assert_eq!(h[0].channel_info.channel_id, "c1");
    assert_eq!(h[0].room_version, 2, "one past the room's last write");
    assert_eq!(h[0].channel_info.invalid, 1);
}

#[test]
fn the_body_carries_what_the_docs_say() {
    let p: CallParams = params(json!({"type": 1, "account": "bob", "requestId": "r1"}));
    let (_, h) = hooks(None, by("call", "alice"), NOW, |r| {
        rules::call(r, &ctx("alice", NOW), &p, "c1", 7, ONLINE)
    });
    let cause = by("call", "alice");
    let joined = h[1].body("id-1", NOW, &cause);
    assert_eq!(
        joined,
        json!({
            "id": "id-1", "type": "member.joined", "at": NOW, "channelId": "c1",
            "roomVersion": 1, "channelInfo": h[1].channel_info,
            "account": "alice", "deviceId": "dev-1", "uid": 7,
            "cause": {"kind": "request", "op": "call", "account": "alice", "deviceId": "dev-1"},
        })
    );
    let sent = h[2].body("id-2", NOW, &cause);
    assert_eq!(
        sent["invitation"],
        json!({"requestId": "r1", "from": "alice", "to": "bob"})
    );
    assert!(sent.get("account").is_none(), "{sent}");
    assert_eq!(
        Cause::InviteTimeout.to_json(),
        json!({"kind": "inviteTimeout"})
    );
    assert_eq!(Cause::RoomExpiry.to_json(), json!({"kind": "roomExpiry"}));
}

#[test]
fn backoff_doubles_within_the_cap() {
    for attempt in 1..=6 {
        let full = (100u64 << (attempt - 1)).min(1_000);
        let d = backoff(attempt, 100, 1_000).as_millis() as u64;
        assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d} ms");
    }
    // Huge attempt counts neither overflow nor exceed the cap.
    assert!(backoff(1_000, 500, 60_000) <= Duration::from_millis(60_000));
    assert!(retryable(500) && retryable(503) && retryable(408) && retryable(429));
    assert!(!retryable(400) && !retryable(404) && !retryable(410));
}
