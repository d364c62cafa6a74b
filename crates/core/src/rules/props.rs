//! Property tests of the pure rules.
//!
//! Random sequences of operations by a few accounts (5 accounts on 2
//! devices each) on one room, with the clock moving forward by random
//! amounts: each rule is applied to the room as the previous steps left it
//! (or to no room at all, now and then) and the returned room is kept on
//! success, as the store would. After every step the invariants below must
//! hold, whatever the sequence:
//!
//! - an account is at most once in the members, uids are unique and
//!   positive, never more than `maxMembers` (3 here, so 10419 happens), a
//!   closed room has no members;
//! - nobody is added to an invalid room: every operation on a missing,
//!   closed or expired room fails with 10404 (create and call make a new
//!   room instead);
//! - members come and go only as the operation says: join, accept with
//!   autoJoin and call add the actor on its device, leave removes the actor,
//!   close removes everyone, a vanished device removes its own membership;
//! - every invitation is in exactly one state, and an answered one
//!   (Accepted, Rejected, Cancelled, Expired) never changes again (a new
//!   invitation may forget it once past its time, closing the room may
//!   forget it at once; a pending one is never forgotten); a pending
//!   one past its expiry can only become Expired; a state changes only by
//!   the operation that may change it (accept, reject, cancel, a vanished
//!   device, the expiry sweep), one invitation per answer;
//! - deliveries go only to the accounts that should hear of the operation
//!   (INVITE to the invitee, ACCEPT to the inviter, ROOM_JOIN to the other
//!   members, ...), each carrying the room it is about;
//! - a success replies 200, or 10201/10202 for an invitation or answer that
//!   could not reach the other side; a failure uses a code the operation
//!   documents.
//!
//! `random_sequences_reach_every_outcome` runs the same generator with a
//! fixed seed and checks it actually reaches every code and every
//! invitation state, so that the invariants are not checked on trivia.

use super::*;
use crate::model::InviteState::{Accepted, Cancelled, Expired, Pending, Rejected};
use nim_signaling_protocol::PushInfo;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use std::collections::HashSet;
use std::sync::Mutex;

// ---------------------------------------------------------------- world

const ACCOUNTS: [&str; 5] = ["a0", "a1", "a2", "a3", "a4"];
const DEVICES: [&str; 2] = ["d0", "d1"];
const REQUEST_IDS: [&str; 3] = ["r0", "r1", "r2"];
const START: i64 = 1_700_000_000_000;
const MAX_MEMBERS: usize = 3;

static LIMITS: Limits = Limits {
    room_ttl_ms: 60_000,
    invite_ttl_ms: 10_000,
    max_members: MAX_MEMBERS,
};

/// Sequences per run and their length: a few seconds in a debug build.
const CASES: u32 = 512;
const MAX_STEPS: usize = 80;

// ---------------------------------------------------------------- operations

/// Which invitation an answer (cancel, accept, reject) is about: one of the
/// room's invitations (index taken modulo their number), answered by the
/// party who may answer it or by the step's random actor; or made-up
/// parameters.
#[derive(Debug, Clone)]
enum Target {
    Existing { index: usize, right_party: bool },
    Made { account: usize, rid: usize },
}

#[derive(Debug, Clone, Copy)]
struct Ring {
    online: bool,
    push_available: bool,
    /// pushInfo.needPush, or no pushInfo.
    need_push: Option<bool>,
}

#[derive(Debug, Clone)]
enum Op {
    Create {
        kind: u8,
    },
    Close {
        offline: Option<bool>,
    },
    Join {
        uid: Option<u64>,
        uid_seed: u64,
        offline: Option<bool>,
    },
    Leave {
        offline: Option<bool>,
    },
    Invite {
        to: usize,
        rid: usize,
        ring: Ring,
        offline: Option<bool>,
    },
    Cancel {
        target: Target,
        offline: Option<bool>,
    },
    Accept {
        target: Target,
        auto_join: Option<bool>,
        uid: Option<u64>,
        uid_seed: u64,
        inviter_online: bool,
    },
    Reject {
        target: Target,
        inviter_online: bool,
    },
    Control {
        to: Option<usize>,
    },
    Call {
        to: usize,
        rid: usize,
        uid: Option<u64>,
        uid_seed: u64,
        ring: Ring,
    },
    DeviceGone,
    ExpireInvites,
}

#[derive(Debug, Clone)]
struct Step {
    /// Milliseconds the clock moves before this step.
    advance: i64,
    account: usize,
    device: usize,
    /// Apply the rule to no room at all instead of the current one.
    on_none: bool,
    op: Op,
}

fn account() -> impl Strategy<Value = usize> {
    0..ACCOUNTS.len()
}

fn rid() -> impl Strategy<Value = usize> {
    0..REQUEST_IDS.len()
}

/// Small uids, so that requested ones collide (10417).
fn uid() -> impl Strategy<Value = Option<u64>> {
    prop_oneof![2 => Just(None), 1 => (1u64..5).prop_map(Some)]
}

fn uid_seed() -> impl Strategy<Value = u64> {
    0u64..5
}

fn ring() -> impl Strategy<Value = Ring> {
    (
        any::<bool>(),
        any::<bool>(),
        proptest::option::of(any::<bool>()),
    )
        .prop_map(|(online, push_available, need_push)| Ring {
            online,
            push_available,
            need_push,
        })
}

fn offline() -> impl Strategy<Value = Option<bool>> {
    proptest::option::of(any::<bool>())
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        4 => (0usize..8, prop::bool::weighted(0.8))
            .prop_map(|(index, right_party)| Target::Existing { index, right_party }),
        1 => (account(), rid()).prop_map(|(account, rid)| Target::Made { account, rid }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (1u8..=3).prop_map(|kind| Op::Create { kind }),
        1 => offline().prop_map(|offline| Op::Close { offline }),
        4 => (uid(), uid_seed(), offline())
            .prop_map(|(uid, uid_seed, offline)| Op::Join { uid, uid_seed, offline }),
        2 => offline().prop_map(|offline| Op::Leave { offline }),
        5 => (account(), rid(), ring(), offline())
            .prop_map(|(to, rid, ring, offline)| Op::Invite { to, rid, ring, offline }),
        2 => (target(), offline()).prop_map(|(target, offline)| Op::Cancel { target, offline }),
        3 => (target(), proptest::option::of(any::<bool>()), uid(), uid_seed(), any::<bool>())
            .prop_map(|(target, auto_join, uid, uid_seed, inviter_online)| Op::Accept {
                target,
                auto_join,
                uid,
                uid_seed,
                inviter_online,
            }),
        2 => (target(), any::<bool>())
            .prop_map(|(target, inviter_online)| Op::Reject { target, inviter_online }),
        1 => proptest::option::of(account()).prop_map(|to| Op::Control { to }),
        1 => (account(), rid(), uid(), uid_seed(), ring())
            .prop_map(|(to, rid, uid, uid_seed, ring)| Op::Call { to, rid, uid, uid_seed, ring }),
        1 => Just(Op::DeviceGone),
        1 => Just(Op::ExpireInvites),
    ]
}

/// Mostly small steps; sometimes past an invitation's expiry (10 s) or an
/// empty room's TTL (60 s).
fn advance() -> impl Strategy<Value = i64> {
    prop_oneof![
        4 => Just(0i64),
        4 => 1i64..1_000,
        2 => 1_000i64..12_000,
        1 => 50_000i64..70_000,
    ]
}

fn step() -> impl Strategy<Value = Step> {
    (
        advance(),
        account(),
        0..DEVICES.len(),
        prop::bool::weighted(0.05),
        op(),
    )
        .prop_map(|(advance, account, device, on_none, op)| Step {
            advance,
            account,
            device,
            on_none,
            op,
        })
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(step(), 1..MAX_STEPS)
}

// ---------------------------------------------------------------- applying

/// The parameters of an answer: (account named in the params, request id,
/// acting account). For cancel the named account is the invitee and the
/// right party the inviter; for accept/reject the other way round.
fn answer_keys(
    room: Option<&Room>,
    target: &Target,
    actor: &'static str,
    cancel: bool,
) -> (String, String, String) {
    match target {
        Target::Existing { index, right_party } => match room.filter(|r| !r.invites.is_empty()) {
            Some(r) => {
                let inv = &r.invites[index % r.invites.len()];
                let (named, party) = if cancel {
                    (&inv.to, &inv.from)
                } else {
                    (&inv.from, &inv.to)
                };
                let acting = if *right_party {
                    party.clone()
                } else {
                    actor.into()
                };
                (named.clone(), inv.request_id.clone(), acting)
            }
            None => (ACCOUNTS[0].into(), REQUEST_IDS[0].into(), actor.into()),
        },
        Target::Made { account, rid } => (
            ACCOUNTS[*account].into(),
            REQUEST_IDS[*rid].into(),
            actor.into(),
        ),
    }
}

fn push_info(need_push: Option<bool>) -> Option<PushInfo> {
    need_push.map(|need_push| PushInfo {
        push_title: Some("t".into()),
        push_content: None,
        push_payload: None,
        need_push,
        need_badge: true,
    })
}

/// What a step did, resolved against the room it acted on: the acting
/// account and the parameters of its rule.
#[derive(Debug, Clone)]
enum Applied {
    Create,
    Close(CloseParams),
    Join(JoinParams),
    Leave(LeaveParams),
    Invite(InviteParams, Reach),
    Cancel(InviteReplyParams),
    Accept(AcceptParams, bool),
    Reject(InviteReplyParams, bool),
    Control(ControlParams),
    Call(CallParams, Reach),
    DeviceGone,
    ExpireInvites,
}

struct Done {
    actor_account: String,
    actor_device: String,
    applied: Applied,
    result: RuleResult,
}

fn reach(r: Ring) -> Reach {
    Reach {
        online: r.online,
        push_available: r.push_available,
        busy: false,
    }
}

fn apply(room: Option<&Room>, s: &Step, now: i64, new_id: &str) -> Done {
    let device = DEVICES[s.device];
    let mut account: String = ACCOUNTS[s.account].into();
    let cid = room
        .map(|r| r.channel_id.clone())
        .unwrap_or_else(|| "none".into());
    let attach = Some("x".to_string());
    // The account acts; `account` may change for answers (the right party).
    let applied = match &s.op {
        Op::Create { .. } => Applied::Create,
        Op::Close { offline } => Applied::Close(CloseParams {
            channel_id: cid,
            offline_enabled: *offline,
            ext: attach,
        }),
        Op::Join {
            uid,
            offline,
            uid_seed: _,
        } => Applied::Join(JoinParams {
            channel_id: cid,
            uid: *uid,
            offline_enabled: *offline,
            attach_ext: attach,
        }),
        Op::Leave { offline } => Applied::Leave(LeaveParams {
            channel_id: cid,
            offline_enabled: *offline,
            attach_ext: attach,
        }),
        Op::Invite {
            to,
            rid,
            ring,
            offline,
        } => Applied::Invite(
            InviteParams {
                channel_id: cid,
                account: ACCOUNTS[*to].into(),
                request_id: REQUEST_IDS[*rid].into(),
                offline_enabled: *offline,
                attach_ext: attach,
                push_info: push_info(ring.need_push),
                busy_check: None,
                timeout_ms: None,
            },
            reach(*ring),
        ),
        Op::Cancel { target, offline } => {
            let (named, rid, acting) = answer_keys(room, target, ACCOUNTS[s.account], true);
            account = acting;
            Applied::Cancel(InviteReplyParams {
                channel_id: cid,
                account: named,
                request_id: rid,
                offline_enabled: *offline,
                attach_ext: attach,
            })
        }
        Op::Accept {
            target,
            auto_join,
            uid,
            inviter_online,
            uid_seed: _,
        } => {
            let (named, rid, acting) = answer_keys(room, target, ACCOUNTS[s.account], false);
            account = acting;
            Applied::Accept(
                AcceptParams {
                    channel_id: cid,
                    account: named,
                    request_id: rid,
                    offline_enabled: Some(true),
                    attach_ext: attach,
                    auto_join: *auto_join,
                    uid: *uid,
                    join_attach_ext: Some("j".into()),
                },
                *inviter_online,
            )
        }
        Op::Reject {
            target,
            inviter_online,
        } => {
            let (named, rid, acting) = answer_keys(room, target, ACCOUNTS[s.account], false);
            account = acting;
            Applied::Reject(
                InviteReplyParams {
                    channel_id: cid,
                    account: named,
                    request_id: rid,
                    offline_enabled: None,
                    attach_ext: attach,
                },
                *inviter_online,
            )
        }
        Op::Control { to } => Applied::Control(ControlParams {
            channel_id: cid,
            account: to.map(|t| ACCOUNTS[t].into()),
            attach_ext: attach,
        }),
        Op::Call {
            to,
            rid,
            uid,
            ring,
            uid_seed: _,
        } => {
            let kind = 1 + (s.account % 3) as u8;
            Applied::Call(
                CallParams {
                    kind,
                    channel_name: None,
                    ext: None,
                    uid: *uid,
                    account: ACCOUNTS[*to].into(),
                    request_id: REQUEST_IDS[*rid].into(),
                    offline_enabled: Some(false),
                    attach_ext: attach,
                    push_info: push_info(ring.need_push),
                    busy_check: None,
                    timeout_ms: None,
                },
                reach(*ring),
            )
        }
        Op::DeviceGone => Applied::DeviceGone,
        Op::ExpireInvites => Applied::ExpireInvites,
    };
    let ctx = Ctx {
        now,
        actor: Actor {
            account: &account,
            device,
        },
        limits: &LIMITS,
    };
    // The store hands create and call the valid room holding the name.
    let holder = room.filter(|r| r.is_valid(now));
    let result = match (&applied, &s.op) {
        (Applied::Create, Op::Create { kind }) => create(
            holder,
            &ctx,
            &CreateParams {
                kind: *kind,
                channel_name: None,
                ext: None,
            },
            new_id,
        ),
        (Applied::Close(p), _) => close(room, &ctx, p),
        (Applied::Join(p), Op::Join { uid_seed, .. }) => join(room, &ctx, p, *uid_seed),
        (Applied::Leave(p), _) => leave(room, &ctx, p),
        (Applied::Invite(p, r), _) => invite(room, &ctx, p, *r),
        (Applied::Cancel(p), _) => cancel(room, &ctx, p),
        (Applied::Accept(p, online), Op::Accept { uid_seed, .. }) => {
            accept(room, &ctx, p, *online, *uid_seed)
        }
        (Applied::Reject(p, online), _) => reject(room, &ctx, p, *online),
        (Applied::Control(p), _) => control(room, &ctx, p),
        (Applied::Call(p, r), Op::Call { uid_seed, .. }) => {
            call(holder, &ctx, p, new_id, *uid_seed, *r)
        }
        (Applied::DeviceGone, _) => device_gone(room, &account, device, now, &LIMITS),
        (Applied::ExpireInvites, _) => expire_invites(room, now),
        _ => unreachable!("applied matches op"),
    };
    Done {
        actor_account: account,
        actor_device: device.into(),
        applied,
        result,
    }
}

// ---------------------------------------------------------------- checks

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

type Key = (String, String, String);

fn key(i: &Invitation) -> Key {
    (i.request_id.clone(), i.from.clone(), i.to.clone())
}

fn find<'a>(r: &'a Room, k: &Key) -> Option<&'a Invitation> {
    r.invites.iter().find(|i| &key(i) == k)
}

/// What must hold of any room the rules return.
fn invariants(r: &Room, now: i64) -> Result<(), String> {
    let mut accounts = HashSet::new();
    let mut uids = HashSet::new();
    for m in &r.members {
        ensure!(
            accounts.insert(&m.account),
            "{} twice in members",
            m.account
        );
        ensure!(m.uid > 0, "uid 0 for {}", m.account);
        ensure!(uids.insert(m.uid), "uid {} twice in members", m.uid);
        ensure!(m.joined_at <= now, "joined in the future");
    }
    ensure!(
        r.members.len() <= MAX_MEMBERS,
        "{} members, more than {MAX_MEMBERS}",
        r.members.len()
    );
    ensure!(
        !r.closed || r.members.is_empty(),
        "closed room with members"
    );
    let mut keys = HashSet::new();
    for i in &r.invites {
        ensure!(keys.insert(key(i)), "invitation {:?} twice", key(i));
        ensure!(
            i.expire_at == i.created_at + LIMITS.invite_ttl_ms,
            "invitation expiry is not its creation + TTL"
        );
        ensure!(
            i.state != Expired || now >= i.expire_at,
            "expired before its time"
        );
    }
    Ok(())
}

/// The codes an operation may fail with.
fn documented(a: &Applied) -> &'static [i32] {
    match a {
        Applied::Create => &[ROOM_EXISTS],
        Applied::Close(_) | Applied::Leave(_) | Applied::Control(_) => {
            &[ROOM_NOT_EXIST, NOT_IN_ROOM]
        }
        Applied::Join(_) => &[
            ROOM_NOT_EXIST,
            ALREADY_IN_ROOM,
            UID_CONFLICT,
            ROOM_FULL,
            IN_ROOM_ON_OTHER_DEVICE,
        ],
        Applied::Invite(..) => &[ROOM_NOT_EXIST, NOT_IN_ROOM, ALREADY_IN_ROOM, ROOM_FULL],
        Applied::Cancel(_) | Applied::Reject(..) => &[
            ROOM_NOT_EXIST,
            INVITE_NOT_EXIST,
            INVITE_REJECTED,
            INVITE_ACCEPTED,
        ],
        Applied::Accept(..) => &[
            ROOM_NOT_EXIST,
            INVITE_NOT_EXIST,
            INVITE_REJECTED,
            INVITE_ACCEPTED,
            ALREADY_IN_ROOM,
            UID_CONFLICT,
            ROOM_FULL,
            IN_ROOM_ON_OTHER_DEVICE,
        ],
        // Calling oneself: already in the room one just entered.
        Applied::Call(..) => &[ROOM_EXISTS, ALREADY_IN_ROOM],
        Applied::DeviceGone => &[ROOM_NOT_EXIST, NOT_IN_ROOM],
        Applied::ExpireInvites => &[ROOM_NOT_EXIST, INVITE_NOT_EXIST],
    }
}

/// The code an answer to `inv` fails with, if it cannot be answered.
fn unanswerable(inv: Option<&Invitation>, now: i64) -> Option<i32> {
    match inv {
        None => Some(INVITE_NOT_EXIST),
        Some(i) if now >= i.expire_at => Some(INVITE_NOT_EXIST),
        Some(i) => match i.state {
            Pending => None,
            Accepted => Some(INVITE_ACCEPTED),
            Rejected => Some(INVITE_REJECTED),
            Cancelled | Expired => Some(INVITE_NOT_EXIST),
        },
    }
}

fn ring_code(r: Reach, p: &Option<PushInfo>) -> i32 {
    let wants_push = p.as_ref().map(|x| x.need_push).unwrap_or(false);
    if r.online {
        OK
    } else if wants_push && !r.push_available {
        PUSH_UNREACHABLE
    } else {
        PEER_OFFLINE
    }
}

fn event_of(d: &Delivery) -> Option<&Event> {
    match &d.entry.body {
        LogBody::Event(e) => Some(e),
        LogBody::Members(_) => None,
    }
}

fn recipients(o: &Outcome) -> Vec<&str> {
    let mut v: Vec<&str> = o.deliveries.iter().map(|d| d.to.as_str()).collect();
    v.sort();
    v
}

fn sorted<'a>(it: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut v: Vec<&str> = it.collect();
    v.sort();
    v
}

/// Every delivery of `o` is a signalingNotify of `kind` from `from`.
fn all_notify(o: &Outcome, kind: EventType, from: &str) -> Result<(), String> {
    for d in &o.deliveries {
        ensure!(
            d.entry.kind == NotifyKind::Notify,
            "{:?} delivery where notify expected",
            d.entry.kind
        );
        let e = event_of(d).ok_or("members body where an event was expected")?;
        ensure!(
            e.event_type == kind,
            "{:?} where {kind:?} expected",
            e.event_type
        );
        ensure!(
            e.from_account_id == from,
            "event from {}",
            e.from_account_id
        );
    }
    Ok(())
}

/// Checks one step: the result against the room it acted on (`before`).
fn check_step(before: Option<&Room>, d: &Done, now: i64, new_id: &str) -> Result<(), String> {
    let me = d.actor_account.as_str();
    let my_device = d.actor_device.as_str();
    let valid_before = before.map(|r| r.is_valid(now)).unwrap_or(false);
    let makes_room = matches!(d.applied, Applied::Create | Applied::Call(..));
    let sweeps = matches!(d.applied, Applied::DeviceGone | Applied::ExpireInvites);

    // Nothing acts on an invalid room (create/call make a new one; the
    // sweepers may still end invitations in it).
    if !valid_before && !makes_room && !sweeps {
        ensure!(
            matches!(&d.result, Err(f) if f.code == ROOM_NOT_EXIST),
            "acting on an invalid room: want 10404"
        );
    }
    if before.is_none() && sweeps {
        ensure!(
            matches!(&d.result, Err(f) if f.code == ROOM_NOT_EXIST),
            "sweeping no room: want 10404"
        );
    }

    let o = match &d.result {
        Err(f) => {
            ensure!(
                documented(&d.applied).contains(&f.code),
                "undocumented failure {}",
                f.code
            );
            return check_failure(before, d, now, f.code);
        }
        Ok(o) => o,
    };

    // Replies.
    let answers = matches!(
        d.applied,
        Applied::Invite(..) | Applied::Call(..) | Applied::Accept(..) | Applied::Reject(..)
    );
    ensure!(
        o.code == OK || (answers && (o.code == PEER_OFFLINE || o.code == PUSH_UNREACHABLE)),
        "success with code {}",
        o.code
    );
    ensure!(o.data.is_object(), "reply data is not an object");

    // Every delivery is about the room written back; only a multi-client
    // sync excludes a device, and it is the actor's.
    for del in &o.deliveries {
        ensure!(
            del.entry.body.channel_id() == o.room.channel_id,
            "delivery about another room"
        );
        if del.entry.kind == NotifyKind::MultiClientSync {
            ensure!(
                del.to == me && del.entry.exclude_device.as_deref() == Some(my_device),
                "multi-client sync to {} excluding {:?}",
                del.to,
                del.entry.exclude_device
            );
        } else {
            ensure!(
                del.entry.exclude_device.is_none(),
                "device excluded from a notify"
            );
        }
    }

    if makes_room {
        return check_new_room(d, o, now, new_id, before);
    }
    let b = before.ok_or("success on no room")?;
    ensure!(
        o.room.channel_id == b.channel_id
            && o.room.name == b.name
            && o.room.kind == b.kind
            && o.room.ext == b.ext
            && o.room.creator == b.creator
            && o.room.created_at == b.created_at,
        "the room's identity changed"
    );
    check_members(b, d, o, now)?;
    check_invitations(b, d, o, now)?;
    check_deliveries(b, d, o, now)
}

/// Failures the state before makes certain.
fn check_failure(before: Option<&Room>, d: &Done, now: i64, code: i32) -> Result<(), String> {
    let Some(b) = before.filter(|r| r.is_valid(now)) else {
        return Ok(());
    };
    let me = d.actor_account.as_str();
    let full = b.members.len() >= MAX_MEMBERS;
    match &d.applied {
        Applied::Join(_) if b.member(me).is_none() && full => {
            ensure!(code == ROOM_FULL, "join of a full room: {code}, want 10419")
        }
        Applied::Join(_) if b.member(me).is_some() => ensure!(
            code == ALREADY_IN_ROOM || code == IN_ROOM_ON_OTHER_DEVICE,
            "join by a member: {code}"
        ),
        Applied::Cancel(p) => {
            let k = (p.request_id.clone(), me.to_string(), p.account.clone());
            let want = unanswerable(find(b, &k), now);
            ensure!(want == Some(code), "cancel failed {code}, want {want:?}");
        }
        Applied::Reject(p, _) => {
            let k = (p.request_id.clone(), p.account.clone(), me.to_string());
            let want = unanswerable(find(b, &k), now);
            ensure!(want == Some(code), "reject failed {code}, want {want:?}");
        }
        Applied::Accept(p, _) => {
            let k = (p.request_id.clone(), p.account.clone(), me.to_string());
            if let Some(want) = unanswerable(find(b, &k), now) {
                ensure!(want == code, "accept failed {code}, want {want}");
            } else {
                // Answerable: only the join of autoJoin can have failed.
                ensure!(
                    p.auto_join == Some(true)
                        && [
                            ALREADY_IN_ROOM,
                            UID_CONFLICT,
                            ROOM_FULL,
                            IN_ROOM_ON_OTHER_DEVICE
                        ]
                        .contains(&code),
                    "answerable accept failed {code}"
                );
            }
        }
        Applied::Invite(p, _) if b.member(&p.account).is_none() && full => {
            ensure!(
                code == ROOM_FULL || code == NOT_IN_ROOM,
                "invite into a full room: {code}"
            )
        }
        _ => {}
    }
    Ok(())
}

/// create / call: a brand-new room, and nothing valid held the name.
fn check_new_room(
    d: &Done,
    o: &Outcome,
    now: i64,
    new_id: &str,
    before: Option<&Room>,
) -> Result<(), String> {
    let me = d.actor_account.as_str();
    ensure!(
        before.map(|r| !r.is_valid(now)).unwrap_or(true),
        "a new room while a valid one held the name"
    );
    let r = &o.room;
    ensure!(
        r.channel_id == new_id && r.creator == me && r.created_at == now && !r.closed,
        "not a new room of the actor: {r:?}"
    );
    ensure!(r.is_valid(now), "a new room that is not valid");
    match &d.applied {
        Applied::Create => {
            ensure!(
                r.members.is_empty() && r.invites.is_empty(),
                "create filled the room"
            );
            ensure!(o.deliveries.is_empty(), "create delivered something");
            ensure!(o.code == OK, "create answered {}", o.code);
        }
        Applied::Call(p, reach) => {
            ensure!(
                r.members.len() == 1
                    && r.members[0].account == me
                    && r.members[0].device_id == d.actor_device,
                "call: the caller alone must be in the room"
            );
            if let Some(u) = p.uid {
                ensure!(r.members[0].uid == u, "call ignored the uid asked for");
            }
            ensure!(
                r.invites.len() == 1
                    && key(&r.invites[0])
                        == (p.request_id.clone(), me.to_string(), p.account.clone())
                    && r.invites[0].state == Pending
                    && r.invites[0].created_at == now,
                "call: one pending invitation expected, got {:?}",
                r.invites
            );
            ensure!(
                recipients(o) == vec![p.account.as_str()],
                "call delivered to {:?}",
                recipients(o)
            );
            all_notify(o, EventType::Invite, me)?;
            ensure!(
                o.code == ring_code(*reach, &p.push_info),
                "call answered {}",
                o.code
            );
        }
        _ => unreachable!(),
    }
    Ok(())
}

/// Members change only as the operation says.
fn check_members(b: &Room, d: &Done, o: &Outcome, now: i64) -> Result<(), String> {
    let me = d.actor_account.as_str();
    let before: Vec<&RoomMember> = b.members.iter().collect();
    let after: Vec<&RoomMember> = o.room.members.iter().collect();
    let added = |uid: Option<u64>| -> Result<(), String> {
        ensure!(b.is_valid(now), "member added to an invalid room");
        ensure!(b.member(me).is_none(), "added while already a member");
        ensure!(
            b.members.len() < MAX_MEMBERS,
            "added to a full room ({} members)",
            b.members.len()
        );
        ensure!(
            after.len() == before.len() + 1 && after[..before.len()] == before[..],
            "the others changed when one joined"
        );
        let m = after[before.len()];
        ensure!(
            m.account == me && m.device_id == d.actor_device && m.joined_at == now,
            "the newcomer is not the actor on its device"
        );
        if let Some(u) = uid {
            ensure!(m.uid == u, "uid {u} asked, {} given", m.uid);
        }
        Ok(())
    };
    match &d.applied {
        Applied::Join(p) => added(p.uid)?,
        Applied::Accept(p, _) if p.auto_join == Some(true) => added(p.uid)?,
        Applied::Leave(_) => {
            let rest: Vec<&RoomMember> =
                before.iter().copied().filter(|m| m.account != me).collect();
            ensure!(b.member(me).is_some(), "left without being a member");
            ensure!(after == rest, "leave changed more than the leaver");
        }
        Applied::Close(_) => {
            ensure!(
                b.creator == me || b.member(me).is_some(),
                "closed by an outsider"
            );
            ensure!(o.room.closed && after.is_empty(), "close left members");
        }
        Applied::DeviceGone => {
            let gone = |m: &&RoomMember| m.account == me && m.device_id == d.actor_device;
            let rest: Vec<&RoomMember> = before.iter().copied().filter(|m| !gone(m)).collect();
            if b.is_valid(now) {
                ensure!(after == rest, "device gone changed other members");
            } else {
                ensure!(
                    after == before,
                    "device gone changed an invalid room's members"
                );
            }
        }
        _ => ensure!(after == before, "members changed"),
    }
    if !matches!(d.applied, Applied::Close(_)) {
        ensure!(o.room.closed == b.closed, "closed flag changed");
    }
    Ok(())
}

/// Invitation states move only forward, only by the operation that may
/// move them, and only while answerable.
fn check_invitations(b: &Room, d: &Done, o: &Outcome, now: i64) -> Result<(), String> {
    let me = d.actor_account.as_str();
    // The invitation the operation names, and the state it may give it.
    let (named, gives): (Option<Key>, Option<InviteState>) = match &d.applied {
        Applied::Invite(p, _) => (
            Some((p.request_id.clone(), me.into(), p.account.clone())),
            Some(Pending),
        ),
        Applied::Cancel(p) => (
            Some((p.request_id.clone(), me.into(), p.account.clone())),
            Some(Cancelled),
        ),
        Applied::Accept(p, _) => (
            Some((p.request_id.clone(), p.account.clone(), me.into())),
            Some(Accepted),
        ),
        Applied::Reject(p, _) => (
            Some((p.request_id.clone(), p.account.clone(), me.into())),
            Some(Rejected),
        ),
        _ => (None, None),
    };
    let mut changed = 0;
    for old in &b.invites {
        let k = key(old);
        let new = find(&o.room, &k);
        let reinvited = matches!(d.applied, Applied::Invite(..)) && named.as_ref() == Some(&k);
        if reinvited {
            let n = new.ok_or("invited, but no invitation")?;
            ensure!(
                n.state == Pending && n.created_at == now && n.device == d.actor_device,
                "invited again: not a fresh pending invitation"
            );
            continue;
        }
        let Some(n) = new else {
            // Only two operations forget invitations, never a pending one:
            // a new invitation forgets those past their time, and closing
            // the room forgets the answered ones.
            let pruned = matches!(d.applied, Applied::Invite(..)) && now >= old.expire_at;
            let closed = matches!(d.applied, Applied::Close(..));
            ensure!(
                (pruned || closed) && old.state != Pending,
                "invitation {k:?} ({:?}) vanished",
                old.state
            );
            continue;
        };
        ensure!(
            n.created_at == old.created_at
                && n.expire_at == old.expire_at
                && n.device == old.device
                && n.offline == old.offline,
            "invitation {k:?} rewritten"
        );
        if n.state == old.state {
            continue;
        }
        changed += 1;
        ensure!(
            old.state == Pending,
            "answered invitation {k:?} changed: {:?} -> {:?}",
            old.state,
            n.state
        );
        if now >= old.expire_at {
            ensure!(
                n.state == Expired,
                "invitation {k:?} past its time became {:?}",
                n.state
            );
        }
        let allowed = match n.state {
            Expired => matches!(d.applied, Applied::ExpireInvites) && now >= old.expire_at,
            Cancelled if matches!(d.applied, Applied::DeviceGone) => {
                old.from == me && old.device == d.actor_device && now < old.expire_at
            }
            s => gives == Some(s) && named.as_ref() == Some(&k) && now < old.expire_at,
        };
        ensure!(
            allowed,
            "invitation {k:?} became {:?} by {:?}",
            n.state,
            d.applied
        );
    }
    for n in &o.room.invites {
        if find(b, &key(n)).is_none() {
            ensure!(
                matches!(d.applied, Applied::Invite(..)) && named == Some(key(n)),
                "invitation {:?} appeared",
                key(n)
            );
            ensure!(
                n.state == Pending && n.created_at == now,
                "new invitation not pending"
            );
        }
    }
    match &d.applied {
        Applied::Cancel(_) | Applied::Accept(..) | Applied::Reject(..) => {
            ensure!(changed == 1, "an answer changed {changed} invitations")
        }
        Applied::Invite(..) => {
            let k = named.clone().unwrap();
            ensure!(
                find(&o.room, &k).map(|i| i.state == Pending && i.created_at == now) == Some(true),
                "invite made no pending invitation"
            );
        }
        Applied::ExpireInvites => ensure!(changed >= 1, "expiry sweep expired nothing"),
        Applied::DeviceGone
        | Applied::Close(_)
        | Applied::Join(_)
        | Applied::Leave(_)
        | Applied::Control(_) => {}
        Applied::Create | Applied::Call(..) => unreachable!(),
    }
    if matches!(
        d.applied,
        Applied::Close(_) | Applied::Join(_) | Applied::Leave(_) | Applied::Control(_)
    ) {
        ensure!(changed == 0, "{:?} changed invitations", d.applied);
    }
    Ok(())
}

/// Who hears of each operation.
fn check_deliveries(b: &Room, d: &Done, o: &Outcome, now: i64) -> Result<(), String> {
    let me = d.actor_account.as_str();
    let a = &o.room;
    match &d.applied {
        Applied::Close(p) => {
            ensure!(
                recipients(o) == sorted(b.accounts().filter(|x| *x != me)),
                "close told {:?}",
                recipients(o)
            );
            all_notify(o, EventType::RoomClose, me)?;
            offline_flags(o, p.offline_enabled)?;
            ensure!(o.code == OK, "close answered {}", o.code);
        }
        Applied::Join(p) => {
            ensure!(
                recipients(o) == sorted(a.accounts().filter(|x| *x != me)),
                "join told {:?}",
                recipients(o)
            );
            all_notify(o, EventType::RoomJoin, me)?;
            offline_flags(o, p.offline_enabled)?;
            ensure!(o.code == OK, "join answered {}", o.code);
        }
        Applied::Leave(p) => {
            ensure!(
                recipients(o) == sorted(a.accounts()),
                "leave told {:?}",
                recipients(o)
            );
            all_notify(o, EventType::Leave, me)?;
            offline_flags(o, p.offline_enabled)?;
            ensure!(o.code == OK, "leave answered {}", o.code);
        }
        Applied::Invite(p, reach) => {
            ensure!(
                b.creator == me || b.member(me).is_some(),
                "invited by an outsider"
            );
            ensure!(b.member(&p.account).is_none(), "invited a member");
            ensure!(b.members.len() < MAX_MEMBERS, "invited into a full room");
            ensure!(
                recipients(o) == vec![p.account.as_str()],
                "invite told {:?}",
                recipients(o)
            );
            all_notify(o, EventType::Invite, me)?;
            let e = event_of(&o.deliveries[0]).unwrap();
            ensure!(
                e.to_account.as_deref() == Some(p.account.as_str())
                    && e.request_id.as_deref() == Some(p.request_id.as_str()),
                "INVITE names the wrong invitation"
            );
            offline_flags(o, p.offline_enabled)?;
            ensure!(
                o.code == ring_code(*reach, &p.push_info),
                "invite answered {}",
                o.code
            );
        }
        Applied::Cancel(p) => {
            ensure!(
                recipients(o) == vec![p.account.as_str()],
                "cancel told {:?}",
                recipients(o)
            );
            all_notify(o, EventType::CancelInvite, me)?;
            offline_flags(o, p.offline_enabled)?;
            ensure!(o.code == OK, "cancel answered {}", o.code);
        }
        Applied::Accept(..) | Applied::Reject(..) => {
            let (inviter, kind, joined, online) = match &d.applied {
                Applied::Accept(p, online) => (
                    p.account.as_str(),
                    EventType::Accept,
                    p.auto_join == Some(true),
                    *online,
                ),
                Applied::Reject(p, online) => {
                    (p.account.as_str(), EventType::Reject, false, *online)
                }
                _ => unreachable!(),
            };
            ensure!(o.deliveries.len() >= 2, "answer told fewer than two");
            let (first, rest) = o.deliveries.split_at(2);
            ensure!(
                first[0].to == inviter && first[0].entry.kind == NotifyKind::Notify,
                "answer not told to the inviter first"
            );
            ensure!(
                first[1].to == me && first[1].entry.kind == NotifyKind::MultiClientSync,
                "answer not synced to my other devices"
            );
            for del in first {
                let e = event_of(del).ok_or("answer without an event")?;
                ensure!(
                    e.event_type == kind && e.from_account_id == me,
                    "wrong answer event"
                );
            }
            if joined {
                ensure!(
                    sorted(rest.iter().map(|d| d.to.as_str()))
                        == sorted(a.accounts().filter(|x| *x != me)),
                    "autoJoin told {:?}",
                    recipients(o)
                );
                for del in rest {
                    let e = event_of(del).ok_or("join without an event")?;
                    ensure!(
                        e.event_type == EventType::RoomJoin,
                        "autoJoin sent {:?}",
                        e.event_type
                    );
                }
            } else {
                ensure!(rest.is_empty(), "answer told more than the two");
            }
            let want = if online { OK } else { PEER_OFFLINE };
            ensure!(o.code == want, "answer replied {}, want {want}", o.code);
        }
        Applied::Control(p) => {
            let want: Vec<&str> = match p.account.as_deref() {
                Some(to) => {
                    ensure!(
                        b.member(to).is_some() || b.creator == to,
                        "control to an outsider"
                    );
                    vec![to]
                }
                None => sorted(b.accounts().filter(|x| *x != me)),
            };
            ensure!(recipients(o) == want, "control told {:?}", recipients(o));
            all_notify(o, EventType::Control, me)?;
            offline_flags(o, Some(false))?;
            ensure!(a == b, "control changed the room");
            ensure!(o.code == OK, "control answered {}", o.code);
        }
        Applied::DeviceGone => {
            let mut want: Vec<&str> = b
                .invites
                .iter()
                .filter(|i| {
                    i.from == me
                        && i.device == d.actor_device
                        && i.state == Pending
                        && now < i.expire_at
                })
                .map(|i| i.to.as_str())
                .collect();
            let dropped = a.members.len() < b.members.len();
            if dropped {
                want.extend(a.accounts());
            }
            want.sort();
            ensure!(
                !want.is_empty() || dropped,
                "device gone with nothing to do succeeded"
            );
            ensure!(
                recipients(o) == want,
                "device gone told {:?}, want {want:?}",
                recipients(o)
            );
            for del in &o.deliveries {
                match &del.entry.body {
                    LogBody::Event(e) => ensure!(
                        e.event_type == EventType::CancelInvite
                            && e.from_account_id == me
                            && del.entry.kind == NotifyKind::Notify,
                        "device gone sent {:?}",
                        e.event_type
                    ),
                    LogBody::Members(m) => ensure!(
                        dropped
                            && del.entry.kind == NotifyKind::MembersSync
                            && m.members.len() == a.members.len(),
                        "members sync without a dropped member"
                    ),
                }
            }
            ensure!(o.code == OK, "device gone answered {}", o.code);
        }
        Applied::ExpireInvites => {
            let mut want = Vec::new();
            for i in b
                .invites
                .iter()
                .filter(|i| i.state == Pending && now >= i.expire_at)
            {
                want.push(i.from.as_str());
                want.push(i.to.as_str());
            }
            want.sort();
            ensure!(
                recipients(o) == want,
                "expiry told {:?}, want {want:?}",
                recipients(o)
            );
            for del in &o.deliveries {
                let e = event_of(del).ok_or("expiry without an event")?;
                ensure!(
                    e.event_type == EventType::InviteTimeout
                        && del.entry.kind == NotifyKind::Notify,
                    "expiry sent {:?}",
                    e.event_type
                );
                let inv = find(
                    b,
                    &(
                        e.request_id.clone().unwrap_or_default(),
                        e.from_account_id.clone(),
                        e.to_account.clone().unwrap_or_default(),
                    ),
                )
                .ok_or("INVITE_TIMEOUT names no invitation")?;
                ensure!(
                    del.to == inv.from || del.to == inv.to,
                    "INVITE_TIMEOUT to a third party"
                );
            }
            ensure!(o.code == OK, "expiry answered {}", o.code);
        }
        Applied::Create | Applied::Call(..) => unreachable!(),
    }
    Ok(())
}

fn offline_flags(o: &Outcome, asked: Option<bool>) -> Result<(), String> {
    for d in &o.deliveries {
        if d.entry.kind == NotifyKind::Notify {
            ensure!(
                d.entry.offline_enabled == asked.unwrap_or(false),
                "offlineEnabled {asked:?} delivered as {}",
                d.entry.offline_enabled
            );
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- runs

/// What a run reached: codes returned, and invitation states reached by a
/// transition (with the operation that made it).
#[derive(Default)]
struct Reached {
    codes: HashSet<i32>,
    transitions: HashSet<(String, String)>,
}

fn op_name(a: &Applied) -> &'static str {
    match a {
        Applied::Create => "create",
        Applied::Close(_) => "close",
        Applied::Join(_) => "join",
        Applied::Leave(_) => "leave",
        Applied::Invite(..) => "invite",
        Applied::Cancel(_) => "cancel",
        Applied::Accept(..) => "accept",
        Applied::Reject(..) => "reject",
        Applied::Control(_) => "control",
        Applied::Call(..) => "call",
        Applied::DeviceGone => "device_gone",
        Applied::ExpireInvites => "expire_invites",
    }
}

/// Runs one sequence, checking every step; records what it reached.
fn run(steps: &[Step], reached: &Mutex<Reached>) -> Result<(), TestCaseError> {
    let mut room: Option<Room> = None;
    let mut now = START;
    for (i, s) in steps.iter().enumerate() {
        now += s.advance;
        let target = if s.on_none { None } else { room.as_ref() };
        let new_id = format!("c{i}");
        let done = apply(target, s, now, &new_id);
        let fail = |why: String| {
            TestCaseError::fail(format!(
                "step {i} at +{} ms: {s:?}\nactor {} on {}\nbefore: {target:#?}\nresult: {:#?}\n=> {why}",
                now - START,
                done.actor_account,
                done.actor_device,
                done.result
            ))
        };
        check_step(target, &done, now, &new_id).map_err(&fail)?;
        {
            let mut r = reached.lock().unwrap();
            r.codes.insert(match &done.result {
                Ok(o) => o.code,
                Err(f) => f.code,
            });
            if let (Ok(o), Some(b)) = (&done.result, target) {
                for n in &o.room.invites {
                    if let Some(old) = find(b, &key(n)) {
                        if old.state != n.state {
                            r.transitions.insert((
                                op_name(&done.applied).to_string(),
                                format!("{:?}", n.state),
                            ));
                        }
                    }
                }
            }
        }
        if let Ok(o) = &done.result {
            invariants(&o.room, now).map_err(&fail)?;
        }
        if let Ok(o) = done.result {
            room = Some(o.room);
        }
    }
    Ok(())
}

/// `PROPTEST_CASES=20000 cargo test --lib props` searches longer.
fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(CASES);
    Config {
        cases,
        // Shrinking a long sequence can take long; the failure message
        // already shows the step, the room before it and the result.
        max_shrink_iters: 2_000,
        ..Config::default()
    }
}

#[test]
fn random_sequences_keep_the_invariants() {
    let reached = Mutex::new(Reached::default());
    let mut runner = TestRunner::new(config());
    if let Err(e) = runner.run(&steps(), |s| run(&s, &reached)) {
        panic!("{e}");
    }
}

/// The generator with a fixed seed: besides the invariants, every code an
/// operation can answer and every invitation transition must show up, or
/// the property above checks less than it seems to.
#[test]
fn random_sequences_reach_every_outcome() {
    let reached = Mutex::new(Reached::default());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]);
    let mut runner = TestRunner::new_with_rng(config(), rng);
    if let Err(e) = runner.run(&steps(), |s| run(&s, &reached)) {
        panic!("{e}");
    }
    let r = reached.into_inner().unwrap();
    let codes = [
        OK,
        PEER_OFFLINE,
        PUSH_UNREACHABLE,
        ROOM_NOT_EXIST,
        ROOM_EXISTS,
        NOT_IN_ROOM,
        ALREADY_IN_ROOM,
        INVITE_NOT_EXIST,
        INVITE_REJECTED,
        INVITE_ACCEPTED,
        UID_CONFLICT,
        ROOM_FULL,
        IN_ROOM_ON_OTHER_DEVICE,
    ];
    let missing: Vec<i32> = codes.into_iter().filter(|c| !r.codes.contains(c)).collect();
    assert!(missing.is_empty(), "never reached codes {missing:?}");
    let transitions = [
        ("accept", Accepted),
        ("reject", Rejected),
        ("cancel", Cancelled),
        ("device_gone", Cancelled),
        ("expire_invites", Expired),
    ];
    for (op, state) in transitions {
        assert!(
            r.transitions
                .contains(&(op.to_string(), format!("{state:?}"))),
            "{op} never made an invitation {state:?}; reached {:?}",
            r.transitions
        );
    }
}
