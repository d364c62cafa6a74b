//! The seed's rules, one pure function per operation.
//!
//! Each takes the room as the store holds it (or None), who acts, the
//! parameters, `now` and any other input it needs (fresh ids, a uid seed,
//! whether an account is online) and returns either a failure code or an
//! [`Outcome`]: the room to write, the reply and the events to deliver.
//! Nothing here does I/O, reads a clock or draws random numbers, so every
//! rule runs unchanged inside any store's atomic update and is tested by
//! tables (see the tests at the bottom).

use serde_json::{json, Value};

use crate::model::{
    Invitation, InviteState, LogBody, NewEntry, Room, RoomMember, Timer, MAX_DELIVERED,
};
use nim_signaling_protocol::codes::*;
use nim_signaling_protocol::params::*;
use nim_signaling_protocol::{ChannelInfo, Event, EventType, Failure, NotifyKind};

/// The server settings the rules depend on.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Lifetime of an unjoined or emptied room, and how long a closed room
    /// is remembered (as invalid) before it is forgotten.
    pub room_ttl_ms: i64,
    /// How long an invitation can be answered.
    pub invite_ttl_ms: i64,
    /// Members per room (10419 beyond).
    pub max_members: usize,
}

/// Who acts: an account on one of its devices.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    pub account: &'a str,
    pub device: &'a str,
}

#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    pub now: i64,
    pub actor: Actor<'a>,
    pub limits: &'a Limits,
}

/// Who acts for the administrator (docs/ADMIN.md): no account, so the
/// events it causes carry `fromAccountId` "" — "the server" — and no
/// account of a room is ever left out as the actor.
pub const SERVER: Actor<'static> = Actor {
    account: "",
    device: "",
};

/// The context of an administrator's action at `now`.
pub fn server(now: i64, limits: &Limits) -> Ctx<'_> {
    Ctx {
        now,
        actor: SERVER,
        limits,
    }
}

/// An event for one account.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub to: String,
    pub entry: NewEntry,
}

/// What a successful rule decided.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The room to write back.
    pub room: Room,
    /// 200, or 10201/10202 for an invitation that could not ring (the
    /// change is still applied).
    pub code: i32,
    /// The reply's data (an object; `{}` when there is none).
    pub data: Value,
    pub deliveries: Vec<Delivery>,
    /// Work for later, at the given times (see [`Timer`]).
    pub timers: Vec<(i64, Timer)>,
}

impl Outcome {
    /// The common case: the room changed (or not), 200 with no data, no
    /// timers.
    fn plain(room: Room, deliveries: Vec<Delivery>) -> Outcome {
        Outcome {
            room,
            code: OK,
            data: json!({}),
            deliveries,
            timers: Vec::new(),
        }
    }
}

pub type RuleResult = Result<Outcome, Failure>;

fn fail(code: i32) -> Failure {
    Failure::code(code)
}

fn valid(room: Option<&Room>, now: i64) -> Result<&Room, Failure> {
    match room {
        Some(r) if r.is_valid(now) => Ok(r),
        _ => Err(fail(ROOM_NOT_EXIST)),
    }
}

fn notify(to: &str, offline: Option<bool>, event: Event) -> Delivery {
    Delivery {
        to: to.to_string(),
        entry: NewEntry {
            kind: NotifyKind::Notify,
            exclude_device: None,
            offline_enabled: offline.unwrap_or(false),
            body: LogBody::Event(event),
        },
    }
}

/// The same event for the actor's other devices (multi-client sync).
fn to_my_other_devices(actor: Actor, event: Event) -> Delivery {
    Delivery {
        to: actor.account.to_string(),
        entry: NewEntry {
            kind: NotifyKind::MultiClientSync,
            exclude_device: Some(actor.device.to_string()),
            offline_enabled: false,
            body: LogBody::Event(event),
        },
    }
}

fn members_sync(room: &Room, now: i64) -> Vec<Delivery> {
    let body = room.with_members(now);
    room.accounts()
        .map(|a| Delivery {
            to: a.to_string(),
            entry: NewEntry {
                kind: NotifyKind::MembersSync,
                exclude_device: None,
                offline_enabled: false,
                body: LogBody::Members(body.clone()),
            },
        })
        .collect()
}

fn text(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("")
}

/// The same event from the actor to each of `accounts`.
fn to_each<'a>(
    accounts: impl Iterator<Item = &'a str>,
    kind: EventType,
    room: &Room,
    ctx: &Ctx,
    attach: &Option<String>,
    offline: Option<bool>,
) -> Vec<Delivery> {
    let info = room.channel_info(ctx.now);
    accounts
        .map(|a| {
            let ev = Event::new(kind, info.clone(), ctx.actor.account, text(attach), ctx.now);
            notify(a, offline, ev)
        })
        .collect()
}

fn room_and_members(room: &Room, now: i64) -> Value {
    json!({"channelInfo": room.channel_info(now), "members": room.members_view()})
}

fn new_room(ctx: &Ctx, id: &str, kind: u8, name: &Option<String>, ext: &Option<String>) -> Room {
    Room {
        channel_id: id.to_string(),
        name: name
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| id.to_string()),
        kind,
        ext: text(ext).to_string(),
        creator: ctx.actor.account.to_string(),
        created_at: ctx.now,
        expire_at: ctx.now + ctx.limits.room_ttl_ms,
        closed: false,
        members: Vec::new(),
        invites: Vec::new(),
        version: 0,
    }
}

/// signalingCreate. `holder` is the valid room that has the requested name.
pub fn create(holder: Option<&Room>, ctx: &Ctx, p: &CreateParams, new_id: &str) -> RuleResult {
    if holder.is_some() {
        return Err(fail(ROOM_EXISTS));
    }
    let room = new_room(ctx, new_id, p.kind, &p.channel_name, &p.ext);
    Ok(Outcome {
        data: json!({"channelInfo": room.channel_info(ctx.now)}),
        room,
        code: OK,
        deliveries: Vec::new(),
        timers: Vec::new(),
    })
}

/// signalingClose: the creator or a member ends the room for everyone.
pub fn close(room: Option<&Room>, ctx: &Ctx, p: &CloseParams) -> RuleResult {
    let old = valid(room, ctx.now)?;
    let me = ctx.actor.account;
    if old.creator != me && old.member(me).is_none() {
        return Err(fail(NOT_IN_ROOM));
    }
    shut(old, ctx, old.accounts().filter(|a| *a != me), p)
}

/// The administrator closes the room: no membership check, and every
/// member and the creator (member or not, so that the app that made the
/// room learns it is gone) get ROOM_CLOSE from "" — the server.
pub fn admin_close(room: Option<&Room>, now: i64, limits: &Limits, p: &CloseParams) -> RuleResult {
    let old = valid(room, now)?;
    let creator = std::iter::once(old.creator.as_str()).filter(|c| old.member(c).is_none());
    shut(old, &server(now, limits), old.accounts().chain(creator), p)
}

/// Closes `old` and tells `told` with ROOM_CLOSE from the actor: what
/// close and admin_close share.
fn shut<'a>(
    old: &'a Room,
    ctx: &Ctx,
    told: impl Iterator<Item = &'a str>,
    p: &CloseParams,
) -> RuleResult {
    let mut room = old.clone();
    room.closed = true;
    room.members.clear();
    // Answered invitations of a closed room serve nobody (anything asked of
    // the room is 10404 now); pending ones stay for their timeout events.
    room.invites.retain(|i| i.state == InviteState::Pending);
    room.expire_at = ctx.now + ctx.limits.room_ttl_ms;
    let deliveries = to_each(
        told,
        EventType::RoomClose,
        &room,
        ctx,
        &p.ext,
        p.offline_enabled,
    );
    Ok(Outcome::plain(room, deliveries))
}

/// Adds the actor to `room`: the checks and uid choice shared by join,
/// accept with autoJoin, and call.
fn enter(
    room: &mut Room,
    ctx: &Ctx,
    uid: Option<u64>,
    uid_seed: u64,
) -> Result<RoomMember, Failure> {
    if let Some(m) = room.member(ctx.actor.account) {
        return Err(fail(if m.device_id == ctx.actor.device {
            ALREADY_IN_ROOM
        } else {
            IN_ROOM_ON_OTHER_DEVICE
        }));
    }
    if room.members.len() >= ctx.limits.max_members {
        return Err(fail(ROOM_FULL));
    }
    let taken = |u: u64| room.members.iter().any(|m| m.uid == u);
    let uid = match uid {
        Some(u) if taken(u) => return Err(fail(UID_CONFLICT)),
        Some(u) => u,
        None => {
            let mut u = uid_seed.max(1);
            while taken(u) {
                u = u.checked_add(1).unwrap_or(1);
            }
            u
        }
    };
    let member = RoomMember {
        account: ctx.actor.account.to_string(),
        device_id: ctx.actor.device.to_string(),
        uid,
        joined_at: ctx.now,
    };
    room.members.push(member.clone());
    room.expire_at = ctx.now + ctx.limits.room_ttl_ms;
    Ok(member)
}

/// ROOM_JOIN for everyone in the room but the newcomer.
fn join_events(
    room: &Room,
    ctx: &Ctx,
    m: &RoomMember,
    attach: &str,
    offline: Option<bool>,
) -> Vec<Delivery> {
    let info = room.channel_info(ctx.now);
    room.accounts()
        .filter(|a| *a != m.account)
        .map(|a| {
            let mut ev = Event::new(
                EventType::RoomJoin,
                info.clone(),
                &m.account,
                attach,
                ctx.now,
            );
            ev.member = Some(room.member_view(m));
            notify(a, offline, ev)
        })
        .collect()
}

/// signalingJoin.
pub fn join(room: Option<&Room>, ctx: &Ctx, p: &JoinParams, uid_seed: u64) -> RuleResult {
    let mut room = valid(room, ctx.now)?.clone();
    let m = enter(&mut room, ctx, p.uid, uid_seed)?;
    let deliveries = join_events(&room, ctx, &m, text(&p.attach_ext), p.offline_enabled);
    Ok(Outcome {
        data: room_and_members(&room, ctx.now),
        room,
        code: OK,
        deliveries,
        timers: Vec::new(),
    })
}

/// signalingLeave.
pub fn leave(room: Option<&Room>, ctx: &Ctx, p: &LeaveParams) -> RuleResult {
    let mut room = valid(room, ctx.now)?.clone();
    let me = ctx.actor.account;
    let Some(i) = room.members.iter().position(|m| m.account == me) else {
        return Err(fail(NOT_IN_ROOM));
    };
    room.members.remove(i);
    if room.members.is_empty() {
        room.expire_at = ctx.now + ctx.limits.room_ttl_ms;
    }
    let deliveries = to_each(
        room.accounts(),
        EventType::Leave,
        &room,
        ctx,
        &p.attach_ext,
        p.offline_enabled,
    );
    Ok(Outcome::plain(room, deliveries))
}

/// The administrator removes `account` from the room: exactly as if it had
/// left (the remaining members get LEAVE from it), and its own devices get
/// that LEAVE too, since it did not ask and its app must learn it is out.
/// 10406 when it is not a member.
pub fn remove_member(
    room: Option<&Room>,
    now: i64,
    limits: &Limits,
    account: &str,
    p: &LeaveParams,
) -> RuleResult {
    let ctx = Ctx {
        now,
        actor: Actor {
            account,
            device: "",
        },
        limits,
    };
    let mut o = leave(room, &ctx, p)?;
    let me = std::iter::once(account);
    let told = to_each(
        me,
        EventType::Leave,
        &o.room,
        &ctx,
        &p.attach_ext,
        p.offline_enabled,
    );
    o.deliveries.extend(told);
    Ok(o)
}

/// Whether invitations can ring somewhere: the invitee's presence and
/// whether a push provider is configured. Inputs, so the rules stay pure.
#[derive(Debug, Clone, Copy)]
pub struct Reach {
    pub online: bool,
    pub push_available: bool,
    /// The invitee is busy (see [`is_busy`]); only counts when the inviter
    /// asked for `busyCheck`.
    pub busy: bool,
}

/// Whether `p.account` is busy for an invitation `p` from `inviter`, judged
/// from the rooms that involve it: it is a member of another valid room of
/// type 1 or 2 (audio or video: in a call; type 3 rooms are not calls), or
/// an invitation to it rings in a valid room — other than the one `p`
/// itself replaces (same inviter, room and requestId: asking again is not
/// being busy with oneself). Invitations of closed or expired rooms cannot
/// be answered any more, so they do not make anyone busy.
pub fn is_busy(rooms: &[Room], inviter: &str, p: &InviteParams, now: i64) -> bool {
    rooms.iter().filter(|r| r.is_valid(now)).any(|r| {
        let here = r.channel_id == p.channel_id;
        let in_call = !here && matches!(r.kind, 1 | 2) && r.member(&p.account).is_some();
        let replaced = |i: &Invitation| here && i.from == inviter && i.request_id == p.request_id;
        let ringing = r
            .invites
            .iter()
            .any(|i| i.to == p.account && i.is_ringing(now) && !replaced(i));
        in_call || ringing
    })
}

/// Records an invitation in `room` and makes the INVITE; returns the code
/// (200 rings now, 10201/10202 it cannot) and the timer that expires it.
fn ask(
    room: &mut Room,
    ctx: &Ctx,
    p: &InviteParams,
    reach: Reach,
) -> Result<(i32, Delivery, (i64, Timer)), Failure> {
    let me = ctx.actor.account;
    if room.creator != me && room.member(me).is_none() {
        return Err(fail(NOT_IN_ROOM));
    }
    if room.member(&p.account).is_some() {
        return Err(fail(ALREADY_IN_ROOM));
    }
    if room.members.len() >= ctx.limits.max_members {
        return Err(fail(ROOM_FULL));
    }
    if reach.busy && p.busy_check.unwrap_or(false) {
        return Err(fail(PEER_BUSY));
    }
    room.invites
        .retain(|i| !(i.request_id == p.request_id && i.from == me && i.to == p.account));
    // Invitations past their time answer 10408 whatever their state, so
    // keeping them serves nobody; dropping them bounds the room's size. A
    // pending one stays until its timer has told both sides it timed out.
    room.invites
        .retain(|i| i.expire_at > ctx.now || i.state == InviteState::Pending);
    // An invitation's own timeout, within the server's.
    let ttl = p.timeout_ms.map_or(ctx.limits.invite_ttl_ms, |t| {
        i64::try_from(t)
            .unwrap_or(i64::MAX)
            .min(ctx.limits.invite_ttl_ms)
    });
    let expire_at = ctx.now + ttl;
    room.invites.push(Invitation {
        request_id: p.request_id.clone(),
        from: me.to_string(),
        to: p.account.clone(),
        state: InviteState::Pending,
        created_at: ctx.now,
        expire_at,
        device: ctx.actor.device.to_string(),
        offline: p.offline_enabled.unwrap_or(false),
        delivered: Vec::new(),
    });
    let timer = (
        expire_at,
        Timer::InviteExpiry {
            channel_id: room.channel_id.clone(),
        },
    );
    let mut ev = Event::new(
        EventType::Invite,
        room.channel_info(ctx.now),
        me,
        text(&p.attach_ext),
        ctx.now,
    );
    ev.to_account = Some(p.account.clone());
    ev.request_id = Some(p.request_id.clone());
    ev.push_info = p.push_info.clone();
    let wants_push = p.push_info.as_ref().map(|x| x.need_push).unwrap_or(false);
    let code = if reach.online {
        OK
    } else if wants_push && !reach.push_available {
        PUSH_UNREACHABLE
    } else {
        PEER_OFFLINE
    };
    Ok((code, notify(&p.account, p.offline_enabled, ev), timer))
}

/// signalingInvite.
pub fn invite(room: Option<&Room>, ctx: &Ctx, p: &InviteParams, reach: Reach) -> RuleResult {
    let mut room = valid(room, ctx.now)?.clone();
    let (code, d, timer) = ask(&mut room, ctx, p, reach)?;
    Ok(Outcome {
        room,
        code,
        data: json!({}),
        deliveries: vec![d],
        timers: vec![timer],
    })
}

/// inviteMany (not in NIM): an invitation with `p.request_id` to each of
/// `p.accounts`, all decided in this one update of the room; `reaches[i]`
/// is how `p.accounts[i]` can be reached. The room's own failures (10404,
/// 10406) fail the whole request; the rest is per invitee, in the order
/// given, under `results`: 200 rings, 10201/10202 cannot ring now (kept,
/// as for invite), 10430 busy, 10407 already in the room, 10419 room full
/// (the last three record nothing for that invitee).
pub fn invite_many(
    room: Option<&Room>,
    ctx: &Ctx,
    p: &InviteManyParams,
    reaches: &[Reach],
) -> RuleResult {
    let mut room = valid(room, ctx.now)?.clone();
    let me = ctx.actor.account;
    if room.creator != me && room.member(me).is_none() {
        return Err(fail(NOT_IN_ROOM));
    }
    if reaches.len() != p.accounts.len() {
        return Err(Failure::new(INTERNAL, "one reach per invitee expected"));
    }
    let mut results = Vec::with_capacity(p.accounts.len());
    let mut deliveries = Vec::new();
    let mut timers = Vec::new();
    for (account, reach) in p.accounts.iter().zip(reaches) {
        let code = match ask(&mut room, ctx, &p.invitation(account), *reach) {
            Ok((code, d, timer)) => {
                deliveries.push(d);
                // Every invitation made here expires at the same time: one
                // timer expires them all.
                timers = vec![timer];
                code
            }
            Err(f) => f.code,
        };
        results.push(json!({"account": account, "code": code}));
    }
    Ok(Outcome {
        room,
        code: OK,
        data: json!({ "results": results }),
        deliveries,
        timers,
    })
}

/// Finds the invitation (request id, inviter, invitee) and checks it can
/// still be answered.
fn answerable(
    room: &Room,
    request_id: &str,
    from: &str,
    to: &str,
    now: i64,
) -> Result<usize, Failure> {
    let i = room
        .invites
        .iter()
        .position(|i| i.request_id == request_id && i.from == from && i.to == to)
        .ok_or_else(|| fail(INVITE_NOT_EXIST))?;
    let inv = &room.invites[i];
    if now >= inv.expire_at {
        return Err(fail(INVITE_NOT_EXIST));
    }
    match inv.state {
        InviteState::Accepted => Err(fail(INVITE_ACCEPTED)),
        InviteState::Rejected => Err(fail(INVITE_REJECTED)),
        InviteState::Cancelled | InviteState::Expired => Err(fail(INVITE_NOT_EXIST)),
        InviteState::Pending => Ok(i),
    }
}

/// An event about invitation `request_id`, addressed to `to_account`.
fn invite_event(
    kind: EventType,
    room: &Room,
    ctx: &Ctx,
    to_account: &str,
    request_id: &str,
    attach: &Option<String>,
) -> Event {
    let mut ev = Event::new(
        kind,
        room.channel_info(ctx.now),
        ctx.actor.account,
        text(attach),
        ctx.now,
    );
    ev.to_account = Some(to_account.to_string());
    ev.request_id = Some(request_id.to_string());
    ev
}

/// signalingCancel: the inviter withdraws its own invitation.
pub fn cancel(room: Option<&Room>, ctx: &Ctx, p: &InviteReplyParams) -> RuleResult {
    let mut room = valid(room, ctx.now)?.clone();
    let i = answerable(&room, &p.request_id, ctx.actor.account, &p.account, ctx.now)?;
    room.invites[i].state = InviteState::Cancelled;
    let ev = invite_event(
        EventType::CancelInvite,
        &room,
        ctx,
        &p.account,
        &p.request_id,
        &p.attach_ext,
    );
    let deliveries = vec![notify(&p.account, p.offline_enabled, ev)];
    Ok(Outcome::plain(room, deliveries))
}

/// The answer of the invitee: ACCEPT or REJECT to the inviter, the same to
/// the invitee's other devices. 10201 when the inviter has no live device
/// (the answer still counts and waits in its log).
fn answer(
    room: &mut Room,
    ctx: &Ctx,
    p: &InviteReplyParams,
    accept: bool,
    inviter_online: bool,
) -> Result<(i32, Vec<Delivery>), Failure> {
    let i = answerable(room, &p.request_id, &p.account, ctx.actor.account, ctx.now)?;
    room.invites[i].state = if accept {
        InviteState::Accepted
    } else {
        InviteState::Rejected
    };
    let kind = if accept {
        EventType::Accept
    } else {
        EventType::Reject
    };
    let ev = invite_event(kind, room, ctx, &p.account, &p.request_id, &p.attach_ext);
    let deliveries = vec![
        notify(&p.account, p.offline_enabled, ev.clone()),
        to_my_other_devices(ctx.actor, ev),
    ];
    Ok((if inviter_online { OK } else { PEER_OFFLINE }, deliveries))
}

fn reply_params(p: &AcceptParams) -> InviteReplyParams {
    InviteReplyParams {
        channel_id: p.channel_id.clone(),
        account: p.account.clone(),
        request_id: p.request_id.clone(),
        offline_enabled: p.offline_enabled,
        attach_ext: p.attach_ext.clone(),
    }
}

/// signalingAccept; with autoJoin also joins (both or neither happen).
pub fn accept(
    room: Option<&Room>,
    ctx: &Ctx,
    p: &AcceptParams,
    inviter_online: bool,
    uid_seed: u64,
) -> RuleResult {
    let mut room = valid(room, ctx.now)?.clone();
    let (code, mut deliveries) = answer(&mut room, ctx, &reply_params(p), true, inviter_online)?;
    let mut data = json!({});
    if p.auto_join.unwrap_or(false) {
        let m = enter(&mut room, ctx, p.uid, uid_seed)?;
        deliveries.extend(join_events(
            &room,
            ctx,
            &m,
            text(&p.join_attach_ext),
            p.offline_enabled,
        ));
        data = room_and_members(&room, ctx.now);
    }
    Ok(Outcome {
        room,
        code,
        data,
        deliveries,
        timers: Vec::new(),
    })
}

/// signalingReject.
pub fn reject(
    room: Option<&Room>,
    ctx: &Ctx,
    p: &InviteReplyParams,
    inviter_online: bool,
) -> RuleResult {
    let mut room = valid(room, ctx.now)?.clone();
    let (code, deliveries) = answer(&mut room, ctx, p, false, inviter_online)?;
    Ok(Outcome {
        room,
        code,
        data: json!({}),
        deliveries,
        timers: Vec::new(),
    })
}

/// inviteDelivered (ours): the INVITE reached one more device of the
/// invitee (the actor), which its client library acknowledged. The
/// invitation records the device, and the inviter's devices get
/// INVITE_DELIVERED with how many devices it has reached (online only: a
/// receipt is worth nothing later). A device already recorded, or past
/// [`MAX_DELIVERED`], changes nothing: 200 and no event. An invitation that
/// can no longer be answered fails as an answer would (10408/10409/10410).
pub fn invite_delivered(room: Option<&Room>, ctx: &Ctx, p: &DeliveredParams) -> RuleResult {
    let mut room = valid(room, ctx.now)?.clone();
    let i = answerable(&room, &p.request_id, &p.account, ctx.actor.account, ctx.now)?;
    let seen = &mut room.invites[i].delivered;
    if seen.iter().any(|d| d == ctx.actor.device) || seen.len() >= MAX_DELIVERED {
        return Ok(Outcome::plain(room, Vec::new()));
    }
    seen.push(ctx.actor.device.to_string());
    let count = seen.len() as u32;
    let mut ev = invite_event(
        EventType::InviteDelivered,
        &room,
        ctx,
        &p.account,
        &p.request_id,
        &None,
    );
    ev.delivered_count = Some(count);
    Ok(Outcome::plain(
        room,
        vec![notify(&p.account, Some(false), ev)],
    ))
}

/// updateChannel (ours): the creator or a member replaces the room's ext.
/// The others (members and the creator) get CHANNEL_UPDATE, the actor's
/// other devices the same as a multi-client sync. 10404, 10406.
pub fn update_channel(room: Option<&Room>, ctx: &Ctx, p: &UpdateChannelParams) -> RuleResult {
    let mut room = valid(room, ctx.now)?.clone();
    let me = ctx.actor.account;
    if room.creator != me && room.member(me).is_none() {
        return Err(fail(NOT_IN_ROOM));
    }
    room.ext = p.ext.clone();
    let creator = std::iter::once(room.creator.as_str()).filter(|c| room.member(c).is_none());
    let others = room.accounts().chain(creator).filter(|a| *a != me);
    let mut deliveries = to_each(
        others,
        EventType::ChannelUpdate,
        &room,
        ctx,
        &None,
        p.offline_enabled,
    );
    let info = room.channel_info(ctx.now);
    let ev = Event::new(EventType::ChannelUpdate, info.clone(), me, "", ctx.now);
    deliveries.push(to_my_other_devices(ctx.actor, ev));
    Ok(Outcome {
        data: json!({"channelInfo": info}),
        room,
        code: OK,
        deliveries,
        timers: Vec::new(),
    })
}

/// queryInvitations (ours): the invitations `account` sent and was sent
/// that `rooms` still keep, each with the other side, oldest first (then
/// by channelId). A pending one past its time reads "expired" before its
/// timer has run, since it can no longer be answered. Rooms past their
/// time are left out whether or not the sweeper has deleted them yet.
pub fn invitations(rooms: &[Room], account: &str, now: i64) -> Value {
    let mut sent = Vec::new();
    let mut received = Vec::new();
    for room in rooms.iter().filter(|r| !r.is_forgettable(now)) {
        for inv in &room.invites {
            let state = match inv.state {
                InviteState::Pending if inv.is_overdue(now) => "expired",
                InviteState::Pending => "pending",
                InviteState::Accepted => "accepted",
                InviteState::Rejected => "rejected",
                InviteState::Cancelled => "cancelled",
                InviteState::Expired => "expired",
            };
            let item = |other: &str| {
                let key = (
                    inv.created_at,
                    room.channel_id.clone(),
                    inv.request_id.clone(),
                );
                let v = json!({
                    "channelId": room.channel_id,
                    "account": other,
                    "requestId": inv.request_id,
                    "state": state,
                    "createTimestamp": inv.created_at,
                    "expireTimestamp": inv.expire_at,
                });
                (key, v)
            };
            if inv.from == account {
                sent.push(item(&inv.to));
            }
            if inv.to == account {
                received.push(item(&inv.from));
            }
        }
    }
    let sorted = |mut list: Vec<((i64, String, String), Value)>| {
        list.sort_by(|a, b| a.0.cmp(&b.0));
        list.into_iter().map(|(_, v)| v).collect::<Vec<_>>()
    };
    json!({"sent": sorted(sent), "received": sorted(received)})
}

/// signalingControl: anyone may send; the receiver must be a member or the
/// creator; no receiver means every member but the sender. Online only.
pub fn control(room: Option<&Room>, ctx: &Ctx, p: &ControlParams) -> RuleResult {
    let room = valid(room, ctx.now)?;
    let me = ctx.actor.account;
    let to: Vec<&str> = match p.account.as_deref().filter(|a| !a.is_empty()) {
        Some(a) if room.member(a).is_some() || room.creator == a => vec![a],
        Some(_) => return Err(fail(NOT_IN_ROOM)),
        None => room.accounts().filter(|a| *a != me).collect(),
    };
    let deliveries = to_each(
        to.into_iter(),
        EventType::Control,
        room,
        ctx,
        &p.attach_ext,
        Some(false),
    );
    Ok(Outcome::plain(room.clone(), deliveries))
}

/// A CONTROL from the administrator: as signalingControl from "" (the
/// server), so with no receiver every member gets it.
pub fn admin_control(
    room: Option<&Room>,
    now: i64,
    limits: &Limits,
    p: &ControlParams,
) -> RuleResult {
    control(room, &server(now, limits), p)
}

/// signalingCall: create + join + invite as one step. Any failure (other
/// than the invitee being unreachable) leaves no room behind.
pub fn call(
    holder: Option<&Room>,
    ctx: &Ctx,
    p: &CallParams,
    new_id: &str,
    uid_seed: u64,
    reach: Reach,
) -> RuleResult {
    if holder.is_some() {
        return Err(fail(ROOM_EXISTS));
    }
    let mut room = new_room(ctx, new_id, p.kind, &p.channel_name, &p.ext);
    enter(&mut room, ctx, p.uid, uid_seed)?;
    let (code, d, timer) = ask(&mut room, ctx, &p.invitation(new_id), reach)?;
    Ok(Outcome {
        data: room_and_members(&room, ctx.now),
        room,
        code,
        deliveries: vec![d],
        timers: vec![timer],
    })
}

/// The newest invitation from `from` to `to` still ringing in `room`.
fn newest_ringing<'a>(room: &'a Room, from: &str, to: &str, now: i64) -> Option<&'a Invitation> {
    room.invites
        .iter()
        .filter(|i| i.from == from && i.to == to && i.is_ringing(now))
        .max_by_key(|i| i.created_at)
}

/// Glare (not in NIM): `caller` calls `callee` while an invitation from
/// `callee` to `caller` still rings. Of `rooms` (those involving the
/// caller), the valid one holding the newest such invitation: the room the
/// caller then joins instead of making a second one.
pub fn glare_room<'a>(rooms: &'a [Room], caller: &str, callee: &str, now: i64) -> Option<&'a Room> {
    rooms
        .iter()
        .filter(|r| r.is_valid(now))
        .filter_map(|r| newest_ringing(r, callee, caller, now).map(|i| (i.created_at, r)))
        .max_by_key(|(at, _)| *at)
        .map(|(_, r)| r)
}

/// A call of the actor to `p.account` that glares with `p.account`'s
/// invitation ringing in `room` (see [`glare_room`]): exactly an accept
/// with autoJoin of the newest such invitation, with the call's uid and
/// attachExt (for the ACCEPT and the ROOM_JOIN); the call's own type,
/// name, ext and requestId are not used. The data carries `"glare": true`.
/// 10408 when the invitation stopped ringing since the room was chosen (the
/// caller then makes an ordinary call); a failed join fails the call.
pub fn glare(
    room: Option<&Room>,
    ctx: &Ctx,
    p: &CallParams,
    callee_online: bool,
    uid_seed: u64,
) -> RuleResult {
    let r = valid(room, ctx.now)?;
    let inv = newest_ringing(r, &p.account, ctx.actor.account, ctx.now)
        .ok_or_else(|| fail(INVITE_NOT_EXIST))?;
    let answer = AcceptParams {
        channel_id: r.channel_id.clone(),
        account: p.account.clone(),
        request_id: inv.request_id.clone(),
        offline_enabled: p.offline_enabled,
        attach_ext: p.attach_ext.clone(),
        auto_join: Some(true),
        uid: p.uid,
        join_attach_ext: p.attach_ext.clone(),
    };
    let mut o = accept(room, ctx, &answer, callee_online, uid_seed)?;
    o.data["glare"] = json!(true);
    Ok(o)
}

/// An event the server makes about invitation `inv` by itself (no request
/// behind it): from the inviter, to the invitee, no attachExt.
fn server_made(kind: EventType, info: &ChannelInfo, inv: &Invitation, now: i64) -> Event {
    let mut ev = Event::new(kind, info.clone(), &inv.from, "", now);
    ev.to_account = Some(inv.to.clone());
    ev.request_id = Some(inv.request_id.clone());
    ev
}

/// A device stayed away past the grace period: if it had joined the room
/// its account leaves without a LEAVE event (the others get the members
/// sync), and the invitations it sent that are still ringing are cancelled
/// (each invitee gets CANCEL_INVITE), so nobody rings for a caller who is
/// gone. 10406 when the device has neither in this room.
pub fn device_gone(
    room: Option<&Room>,
    account: &str,
    device: &str,
    now: i64,
    limits: &Limits,
) -> RuleResult {
    let mut room = room.ok_or_else(|| fail(ROOM_NOT_EXIST))?.clone();
    let mut deliveries = Vec::new();
    let info = room.channel_info(now);
    for inv in room
        .invites
        .iter_mut()
        .filter(|i| i.from == account && i.device == device && i.is_ringing(now))
    {
        inv.state = InviteState::Cancelled;
        let ev = server_made(EventType::CancelInvite, &info, inv, now);
        deliveries.push(notify(&inv.to, Some(inv.offline), ev));
    }
    let member = room
        .members
        .iter()
        .position(|m| m.account == account && m.device_id == device)
        .filter(|_| room.is_valid(now));
    let cancelled = !deliveries.is_empty();
    if let Some(i) = member {
        room.members.remove(i);
        if room.members.is_empty() {
            room.expire_at = now + limits.room_ttl_ms;
        }
        deliveries.extend(members_sync(&room, now));
    } else if !cancelled {
        return Err(fail(NOT_IN_ROOM));
    }
    Ok(Outcome::plain(room, deliveries))
}

/// Invitations of the room still pending past their expiry become expired,
/// and both sides are told with INVITE_TIMEOUT: every device of the inviter
/// and of the invitee (kept offline when the invitation was). 10408 when
/// none has run out.
pub fn expire_invites(room: Option<&Room>, now: i64) -> RuleResult {
    let mut room = room.ok_or_else(|| fail(ROOM_NOT_EXIST))?.clone();
    let info = room.channel_info(now);
    let mut deliveries = Vec::new();
    for inv in room.invites.iter_mut().filter(|i| i.is_overdue(now)) {
        inv.state = InviteState::Expired;
        let ev = server_made(EventType::InviteTimeout, &info, inv, now);
        deliveries.push(notify(&inv.from, Some(inv.offline), ev.clone()));
        deliveries.push(notify(&inv.to, Some(inv.offline), ev));
    }
    if deliveries.is_empty() {
        return Err(fail(INVITE_NOT_EXIST));
    }
    Ok(Outcome::plain(room, deliveries))
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod props;
