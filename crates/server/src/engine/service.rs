//! The shell around the rules: loads state from the store, runs a rule
//! inside the store's atomic update, appends the resulting events to the
//! recipients' logs and wakes their sessions. Also the read-only operations
//! (sync, channel query) and the timers (sweeping, member drop).

use futures_util::future::{BoxFuture, FutureExt, Shared};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use crate::engine::observe::{Cause, Happening, Observer, Observers, Push, Pusher};
use crate::engine::router::Hub;
use crate::store::{
    Appended, LogBody, LogEntry, NewEntry, PushToken, RequestKey, RequestSlot, Room, RoomKey,
    Store, Timer, Tx,
};
use crate::ServerConfig;
use nim_signaling_core::rules::{self, Actor, Ctx, Delivery, Limits, Reach, RuleResult};
use nim_signaling_protocol::codes::{
    FORBIDDEN, INTERNAL, INVITE_NOT_EXIST, OK, PEER_OFFLINE, PUSH_UNREACHABLE, ROOM_NOT_EXIST,
};
use nim_signaling_protocol::frames::result_object;
use nim_signaling_protocol::params::{CallParams, InviteManyParams, InviteParams, QueryParams};
use nim_signaling_protocol::{Failure, Op, Request};

pub use crate::store::now_ms;

/// A request's claim in its retry record, awaited by every write of the
/// request (see [`Service::handle_once`]).
type Claim = Shared<BoxFuture<'static, RequestSlot>>;

tokio::task_local! {
    /// The claim of the request this task is handling.
    static CLAIM: Claim;
}

/// What the service needs to know about the session a request came from.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub account: String,
    pub device: String,
    /// The device's log cursor before this login: events after it that
    /// were kept for offline delivery form its offline list.
    pub offline_from: u64,
    /// The log head at login: the offline list ends there.
    pub offline_to: u64,
    /// The client instance (login's `instance`): its requests are applied
    /// at most once per id.
    pub instance: Option<String>,
}

/// How long a repeated request waits for the first copy's answer.
const REPEAT_WAIT: Duration = Duration::from_secs(5);

/// Per-account bounds that span rooms. A rule sees one room, so these are
/// checked by the service before the rule runs; two requests racing at the
/// bound may both pass (they are a defence against abuse, not an invariant).
#[derive(Debug, Clone)]
pub struct Quotas {
    pub rooms_per_account: usize,
    pub pending_invites_per_account: usize,
    pub rooms_created_per_account: usize,
    /// Events one account may have had kept for offline delivery lately
    /// (see [`crate::store::LogLimits::sending_window`]).
    pub offline_events_per_sender: usize,
}

pub struct Service {
    pub store: Arc<dyn Store>,
    pub hub: Hub,
    pub limits: Limits,
    pub quotas: Quotas,
    /// Who is told what happens (metrics, webhooks); see [`Observer`].
    pub observer: Arc<dyn Observer>,
    /// Grace before a vanished device's memberships are dropped.
    pub member_drop_grace: Duration,
    /// Where offline invitees' pushes go (absent: 10202 for them).
    pub push: Option<Arc<dyn Pusher>>,
    /// Draining: new connections are refused (HTTP 503) and `/healthz`
    /// says so, while the sessions here go on; see
    /// [`crate::ServerHandle::set_draining`].
    pub draining: std::sync::atomic::AtomicBool,
    /// Makes channelIds unique within this process run.
    id_counter: AtomicU64,
    /// Random per process, so that ids of two runs (or nodes) differ.
    id_salt: u64,
}

/// Whether requests of `op` end an invitation or a membership. These are
/// never refused by maxOfflineEventsPerSender (a sender at the bound can
/// still cancel what it rang, or leave), since each is bounded by what it
/// ends; what they keep for offline accounts is counted all the same.
fn ends_something(op: Op) -> bool {
    matches!(
        op,
        Op::Cancel | Op::Reject | Op::Accept | Op::Leave | Op::Close
    )
}

/// Up to this many offline events are delivered at login.
pub const MAX_OFFLINE_EVENTS: usize = 1000;

impl Service {
    pub fn new(store: Arc<dyn Store>, cfg: &ServerConfig) -> Self {
        Service {
            store,
            hub: Hub::default(),
            limits: cfg.limits(),
            quotas: cfg.quotas(),
            observer: Arc::new(Observers::default()),
            member_drop_grace: Duration::from_millis(cfg.member_drop_grace_ms as u64),
            push: None,
            draining: Default::default(),
            id_counter: AtomicU64::new(1),
            id_salt: rand::random(),
        }
    }

    /// Sends the pushes of offline invitees to `push`.
    pub fn with_push(mut self, push: Option<Arc<dyn Pusher>>) -> Self {
        self.push = push;
        self
    }

    /// Reports to `observer` what happens.
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = observer;
        self
    }

    /// A new room's channelId and its name (`name` when given and not
    /// empty, else the id itself); `near`: the account the room is mostly
    /// about (the callee of a 1:1 call), which the store may place it by.
    fn new_room(&self, name: Option<&str>, near: Option<&str>) -> (String, String) {
        let name = name.filter(|n| !n.is_empty());
        let n = self.id_counter.fetch_add(1, Ordering::Relaxed);
        let unique = format!(
            "{:016x}{:016x}",
            n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ rand::random::<u64>(),
            self.id_salt,
        );
        let id = self.store.room_id(name, near, &unique);
        let name = name.map_or_else(|| id.clone(), str::to_string);
        (id, name)
    }

    fn uid_seed() -> u64 {
        // Server-assigned uids are random (and then made unique by the rule)
        // so that they reveal nothing about other rooms; kept below 2^53 so
        // JavaScript numbers hold them exactly.
        rand::random::<u64>() % (1 << 53)
    }

    /// Runs `rule` atomically on the room at `key`, then delivers its events
    /// and tells the observer of the change, for `cause`.
    pub(crate) async fn apply(
        &self,
        key: RoomKey<'_>,
        now: i64,
        cause: &Cause<'_>,
        mut rule: impl FnMut(Option<&Room>) -> RuleResult + Send,
    ) -> Result<(i32, Value), Failure> {
        Self::claimed().await?;
        let mut result: Option<Result<(i32, Value), Failure>> = None;
        // This run's room before and after, when someone watches: kept from
        // inside the update so that (like the result) only the run that
        // counts is reported.
        let watching = self.observer.watches_rooms();
        let mut change: Option<(Option<Room>, Room)> = None;
        // The events go with the room's write: the store appends them as
        // part of the update (see Tx::Write).
        let appended = self
            .store
            .update_room(key, now, &mut |room| match rule(room) {
                Ok(mut o) => {
                    o.room.version = Room::version_after(room, &o.room);
                    change = watching.then(|| (room.cloned(), o.room.clone()));
                    result = Some(Ok((o.code, o.data)));
                    Tx::Write {
                        room: o.room,
                        timers: o.timers,
                        events: Self::events_of(o.deliveries),
                    }
                }
                Err(f) => {
                    change = None;
                    result = Some(Err(f));
                    Tx::Abort
                }
            })
            .await?;
        if let Cause::Request { account, .. } = cause {
            self.count_offline(account, &appended, now).await;
        }
        let delivered = self.offer(appended);
        let (code, data) =
            result.unwrap_or_else(|| Err(Failure::new(INTERNAL, "store did not run the rule")))?;
        if let Some((before, after)) = &change {
            self.observer
                .room_changed(before.as_ref(), after, cause, now);
        }
        delivered?;
        Ok((code, data))
    }

    /// Runs a rule that changes nothing (control) on the room as it is,
    /// then delivers its events: reading instead of locking the room.
    pub(crate) async fn read_and_tell(
        &self,
        channel_id: &str,
        now: i64,
        rule: impl FnOnce(Option<&Room>) -> RuleResult,
    ) -> Result<(i32, Value), Failure> {
        let room = self.store.get_room(RoomKey::Id(channel_id), now).await?;
        let o = rule(room.as_ref())?;
        Self::claimed().await?;
        self.deliver(o.deliveries, now).await?;
        Ok((o.code, o.data))
    }

    /// Deletes the rooms past their time, and tells the observer which.
    pub async fn sweep(&self, now: i64) -> Result<(), Failure> {
        let forgotten = self.store.sweep(now).await?;
        if !forgotten.is_empty() {
            self.observer.rooms_forgotten(&forgotten, now);
        }
        Ok(())
    }

    /// Counts against `sender`'s maxOfflineEventsPerSender the events of
    /// `appended` that were kept for offline delivery. Only requests are
    /// counted: a timer's events end an invitation that was counted, and
    /// the operator's are the operator's. A count that fails is logged:
    /// the events are kept already, and the quota bounds abuse, not an
    /// exact figure.
    async fn count_offline(&self, sender: &str, appended: &Appended, now: i64) {
        let kept = appended
            .iter()
            .filter_map(|(_, r)| r.as_ref().ok())
            .flatten()
            .filter(|e| e.offline)
            .count() as u64;
        if kept == 0 {
            return;
        }
        if let Err(e) = self.store.count_offline_sent(sender, kept, now).await {
            tracing::warn!(%sender, kept, error = %e, "offline events not counted");
        }
    }

    /// 403 when `account` already had maxOfflineEventsPerSender events
    /// kept for offline delivery lately, for a request that asks for more
    /// (offlineEnabled): whether it would keep any depends on who is
    /// online when its events are appended, so a sender at the bound
    /// reaches offline accounts again only once its older events aged out.
    async fn offline_quota(&self, account: &str, now: i64) -> Result<(), Failure> {
        let sent = self.store.offline_sent(account, now).await?;
        let max = self.quotas.offline_events_per_sender;
        if sent >= max as u64 {
            return Err(Failure::new(
                FORBIDDEN,
                format!(
                    "this account already had {max} events kept for offline accounts \
                     within the offline retention (maxOfflineEventsPerSender); \
                     send without offlineEnabled to reach online ones"
                ),
            ));
        }
        Ok(())
    }

    fn events_of(deliveries: Vec<Delivery>) -> Vec<(String, NewEntry)> {
        deliveries.into_iter().map(|d| (d.to, d.entry)).collect()
    }

    /// Appends each event to its recipient's log (one step per recipient),
    /// then wakes the recipients' sessions here. For events that change no
    /// room (a control); a room's events go with its update (see
    /// `Service::apply`).
    pub async fn deliver(&self, deliveries: Vec<Delivery>, now: i64) -> Result<(), Failure> {
        if deliveries.is_empty() {
            return Ok(());
        }
        let appended = self
            .store
            .append_many(Self::events_of(deliveries), now)
            .await;
        self.offer(appended)
    }

    /// Hands what was appended to the recipients' sessions here. An event
    /// that could not be stored fails the request with its reason: its
    /// room may have changed, but the answer is never a success that told
    /// nobody.
    fn offer(&self, appended: Appended) -> Result<(), Failure> {
        let mut failed = None;
        for (account, r) in appended {
            match r {
                Ok(entries) => self.hub.offer(&account, &entries),
                Err(e) => {
                    tracing::error!(%account, error = %e, "events not stored");
                    // Entries before the failure may have landed.
                    self.hub.wake(&account);
                    failed.get_or_insert(e);
                }
            }
        }
        match failed {
            None => Ok(()),
            Some(e) => Err(Failure::from(e)),
        }
    }

    /// Handles request `id` of a session at most once: a copy sent again
    /// after a reconnect (same instance, same id) gets the first answer.
    /// Returns the code and the result object's JSON text.
    pub async fn handle_once(
        &self,
        s: &SessionInfo,
        id: u64,
        ack: Option<u64>,
        req: Request,
    ) -> (i32, Arc<str>) {
        let fresh = |v: Value| {
            let code = v["code"].as_i64().unwrap_or(INTERNAL as i64) as i32;
            (code, Arc::<str>::from(v.to_string()))
        };
        let Some(instance) = s.instance.as_deref() else {
            return fresh(self.handle(s, req).await);
        };
        let key = RequestKey {
            account: &s.account,
            device: &s.device,
            instance,
            id,
        };
        let give_up = tokio::time::Instant::now() + REPEAT_WAIT;
        loop {
            // The request's reads go out with its claim (one round trip
            // instead of two); its first write waits for the claim, and a
            // copy that is not fresh never gets that far.
            let mut claim = self.claim(&key, ack);
            let first = std::future::poll_fn(|cx| Poll::Ready(claim.as_mut().poll(cx))).await;
            let slot = match first {
                // A store that answers at once (the memory store) has no
                // round trip to save, and sharing the claim would cost a
                // wake-up of the task.
                Poll::Ready(RequestSlot::Fresh) => {
                    let outcome = self.handle(s, req.clone()).await;
                    return self.answered(&key, fresh(outcome)).await;
                }
                Poll::Ready(slot) => slot,
                Poll::Pending => {
                    let claim = claim.shared();
                    let handled = CLAIM.scope(claim.clone(), self.handle(s, req.clone()));
                    let (slot, outcome) = futures_util::future::join(claim, handled.boxed()).await;
                    if slot == RequestSlot::Fresh {
                        return self.answered(&key, fresh(outcome)).await;
                    }
                    slot
                }
            };
            // A fresh claim was answered above: what is left is an earlier
            // copy's record, answered or still running.
            if let RequestSlot::Done(answer) = slot {
                self.observer.happened(Happening::RepeatAnswered);
                let code = serde_json::from_str::<Value>(&answer)
                    .ok()
                    .and_then(|v| v["code"].as_i64())
                    .unwrap_or(INTERNAL as i64) as i32;
                return (code, answer);
            }
            if tokio::time::Instant::now() >= give_up {
                let f = Failure::new(INTERNAL, "an earlier copy of this request is still running");
                return fresh(result_object(f.code, Some(&f.message), None));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Records the answer of a fresh request, and returns it.
    async fn answered(&self, key: &RequestKey<'_>, answer: (i32, Arc<str>)) -> (i32, Arc<str>) {
        self.store.request_end(key, answer.1.clone()).await;
        answer
    }

    /// Claims request `key` in its retry record (see
    /// [`crate::store::Requests::request_begin`]), as a future that can be
    /// shared with the request's writes (see [`Claim`]).
    fn claim(&self, key: &RequestKey<'_>, ack: Option<u64>) -> BoxFuture<'static, RequestSlot> {
        let store = self.store.clone();
        let (account, device, instance, id) = (
            key.account.to_string(),
            key.device.to_string(),
            key.instance.to_string(),
            key.id,
        );
        async move {
            let key = RequestKey {
                account: &account,
                device: &device,
                instance: &instance,
                id,
            };
            store.request_begin(&key, ack, now_ms()).await
        }
        .boxed()
    }

    /// Waits, before a write, for the claim of the request being handled
    /// (none outside [`Service::handle_once`]: timers, the admin API): a
    /// request that is not fresh writes nothing.
    async fn claimed() -> Result<(), Failure> {
        let Ok(claim) = CLAIM.try_with(|c| c.clone()) else {
            return Ok(());
        };
        match claim.await {
            RequestSlot::Fresh => Ok(()),
            _ => Err(Failure::new(
                INTERNAL,
                "not claimed: an earlier copy was handled",
            )),
        }
    }

    /// Handles one request of a logged-in session; returns the result object.
    pub async fn handle(&self, s: &SessionInfo, req: Request) -> Value {
        let outcome = self.dispatch(s, req).await;
        match outcome {
            Ok((code, data)) if code == OK => result_object(code, None, Some(data)),
            Ok((code, data)) => result_object(
                code,
                Some(nim_signaling_protocol::codes::message(code)),
                Some(data),
            ),
            Err(f) => result_object(f.code, Some(&f.message), None),
        }
    }

    async fn reach(&self, account: &str) -> Result<Reach, Failure> {
        Ok(Reach {
            online: self.store.account_online(account).await?,
            push_available: self.push.is_some(),
            busy: false,
        })
    }

    /// How invitation `p` from `inviter` can reach its invitee, with its
    /// busy-ness read from the invitee's rooms when `busyCheck` asks for it
    /// (read before the update, like the quotas: two invitations racing
    /// for one idle invitee may both ring).
    async fn reach_for(&self, inviter: &str, p: &InviteParams, now: i64) -> Result<Reach, Failure> {
        let mut reach = self.reach(&p.account).await?;
        if p.busy_check.unwrap_or(false) {
            let rooms = self.store.rooms_involving(&p.account).await?;
            reach.busy = rules::is_busy(&rooms, inviter, p, now);
        }
        Ok(reach)
    }

    /// A call that glares (see [`rules::glare_room`]): joins the callee's
    /// ringing room instead of making one. None when there is no glare, or
    /// the invitation stopped ringing before the update ran.
    async fn glare(
        &self,
        mine: &[Room],
        ctx: &Ctx<'_>,
        p: &CallParams,
        cause: &Cause<'_>,
        now: i64,
    ) -> Result<Option<(i32, Value)>, Failure> {
        let Some(room) = rules::glare_room(mine, ctx.actor.account, &p.account, now) else {
            return Ok(None);
        };
        let online = self.store.account_online(&p.account).await?;
        let seed = Self::uid_seed();
        let id = &room.channel_id;
        let r = self
            .apply(RoomKey::Id(id), now, cause, |r| {
                rules::glare(r, ctx, p, online, seed)
            })
            .await;
        match r {
            Err(f) if f.code == INVITE_NOT_EXIST || f.code == ROOM_NOT_EXIST => Ok(None),
            r => r.map(Some),
        }
    }

    async fn dispatch(&self, s: &SessionInfo, req: Request) -> Result<(i32, Value), Failure> {
        let now = now_ms();
        let actor = Actor {
            account: &s.account,
            device: &s.device,
        };
        let cause = &Cause::Request {
            op: req.operation(),
            account: &s.account,
            device: &s.device,
        };
        let ctx = Ctx {
            now,
            actor,
            limits: &self.limits,
        };
        if req.offline_enabled() && !ends_something(req.operation()) {
            self.offline_quota(&s.account, now).await?;
        }
        match req {
            Request::Create(p) => {
                let (id, name) = self.new_room(p.channel_name.as_deref(), None);
                let mine = self.store.rooms_involving(&s.account).await?;
                self.creation_quota(&mine, &s.account, now)?;
                self.apply(RoomKey::Name(&name), now, cause, |r| {
                    rules::create(r, &ctx, &p, &id)
                })
                .await
            }
            Request::Close(p) => {
                self.apply(RoomKey::Id(&p.channel_id), now, cause, |r| {
                    rules::close(r, &ctx, &p)
                })
                .await
            }
            Request::Join(p) => {
                let mine = self.store.rooms_involving(&s.account).await?;
                self.room_quota(&mine, &s.account, Some(&p.channel_id), now)?;
                let seed = Self::uid_seed();
                self.apply(RoomKey::Id(&p.channel_id), now, cause, |r| {
                    rules::join(r, &ctx, &p, seed)
                })
                .await
            }
            Request::Leave(p) => {
                self.apply(RoomKey::Id(&p.channel_id), now, cause, |r| {
                    rules::leave(r, &ctx, &p)
                })
                .await
            }
            Request::Invite(p) => {
                let (mine, reach) = tokio::join!(
                    self.store.rooms_involving(&s.account),
                    self.reach_for(&s.account, &p, now)
                );
                self.invite_quota(&mine?, &s.account, now, 1)?;
                let reach = reach?;
                let r = self
                    .apply(RoomKey::Id(&p.channel_id), now, cause, |r| {
                        rules::invite(r, &ctx, &p, reach)
                    })
                    .await;
                self.push_if_offline(r, &s.account, &p.channel_id, &p, now)
                    .await
            }
            Request::InviteMany(p) => self.invite_many(&ctx, &p, cause, now).await,
            Request::Cancel(p) => {
                self.apply(RoomKey::Id(&p.channel_id), now, cause, |r| {
                    rules::cancel(r, &ctx, &p)
                })
                .await
            }
            Request::Accept(p) => {
                let joining = p.auto_join.unwrap_or(false);
                let (mine, online) = tokio::join!(
                    async {
                        match joining {
                            true => Some(self.store.rooms_involving(&s.account).await),
                            false => None,
                        }
                    },
                    self.store.account_online(&p.account)
                );
                if let Some(mine) = mine {
                    self.room_quota(&mine?, &s.account, Some(&p.channel_id), now)?;
                }
                let online = online?;
                let seed = Self::uid_seed();
                self.apply(RoomKey::Id(&p.channel_id), now, cause, |r| {
                    rules::accept(r, &ctx, &p, online, seed)
                })
                .await
            }
            Request::Reject(p) => {
                let online = self.store.account_online(&p.account).await?;
                self.apply(RoomKey::Id(&p.channel_id), now, cause, |r| {
                    rules::reject(r, &ctx, &p, online)
                })
                .await
            }
            Request::Control(p) => {
                self.read_and_tell(&p.channel_id, now, |r| rules::control(r, &ctx, &p))
                    .await
            }
            Request::Call(p) => {
                // One read of the caller's rooms serves the quotas and the
                // glare check; the callee's reach is read at the same time.
                let (id, name) = self.new_room(p.channel_name.as_deref(), Some(&p.account));
                let invitation = p.invitation(&id);
                let (mine, reach) = tokio::join!(
                    self.store.rooms_involving(&s.account),
                    self.reach_for(&s.account, &invitation, now)
                );
                let mine = mine?;
                self.room_quota(&mine, &s.account, None, now)?;
                // Glare before busy: the callee sitting in its own room,
                // ringing us, is not busy for us.
                if let Some(joined) = self.glare(&mine, &ctx, &p, cause, now).await? {
                    return Ok(joined);
                }
                self.invite_quota(&mine, &s.account, now, 1)?;
                self.creation_quota(&mine, &s.account, now)?;
                let reach = reach?;
                let seed = Self::uid_seed();
                let r = self
                    .apply(RoomKey::Name(&name), now, cause, |r| {
                        rules::call(r, &ctx, &p, &id, seed, reach)
                    })
                    .await;
                self.push_if_offline(r, &s.account, &id, &invitation, now)
                    .await
            }
            Request::Sync => {
                let events = self
                    .offline_list(&s.account, &s.device, s.offline_from, s.offline_to, now)
                    .await?;
                let channels = self.channels_of(&s.account, now).await?;
                Ok((OK, json!({"eventList": events, "channels": channels})))
            }
            Request::QueryChannelInfo(p) => self.query(&p, now).await,
            Request::RegisterPushToken(p) => {
                Self::claimed().await?;
                if p.token.is_empty() {
                    self.store.remove_push_token(&s.account, &s.device).await?;
                } else {
                    let token = PushToken {
                        device_id: s.device.clone(),
                        token: p.token,
                        provider: p.provider,
                        updated_at: now,
                    };
                    self.store.set_push_token(&s.account, token).await?;
                }
                Ok((OK, json!({})))
            }
            Request::QueryInvitations => {
                let rooms = self.store.rooms_involving(&s.account).await?;
                Ok((OK, rules::invitations(&rooms, &s.account, now)))
            }
            Request::InviteDelivered(p) => {
                self.apply(RoomKey::Id(&p.channel_id), now, cause, |r| {
                    rules::invite_delivered(r, &ctx, &p)
                })
                .await
            }
            Request::UpdateChannel(p) => {
                self.apply(RoomKey::Id(&p.channel_id), now, cause, |r| {
                    rules::update_channel(r, &ctx, &p)
                })
                .await
            }
            Request::Login(_) | Request::Logout => Err(Failure::new(
                nim_signaling_protocol::codes::INVALID_PARAM,
                "login/logout are session operations",
            )),
        }
    }

    /// An invitation that left its invitee unreachable (10201) and asked for
    /// a push goes to the push gateway; the code turns 10202 when the
    /// gateway refuses it. Any other outcome passes through.
    async fn push_if_offline(
        &self,
        outcome: Result<(i32, Value), Failure>,
        from: &str,
        channel_id: &str,
        p: &InviteParams,
        now: i64,
    ) -> Result<(i32, Value), Failure> {
        let (code, data) = outcome?;
        let wanted = p.push_info.as_ref().filter(|i| i.need_push);
        let (Some(gateway), Some(info), PEER_OFFLINE) = (&self.push, wanted, code) else {
            return Ok((code, data));
        };
        let room = self.store.get_room(RoomKey::Id(channel_id), now).await?;
        let Some(room) = room else {
            return Ok((code, data));
        };
        let tokens = match self.store.push_tokens(&p.account).await {
            Ok(t) => t,
            Err(e) => {
                // The gateway may keep tokens of its own: push without ours.
                tracing::warn!(account = %p.account, error = %e, "push tokens unreadable");
                Vec::new()
            }
        };
        let push = Push {
            account: &p.account,
            info,
            channel: &room.channel_info(now),
            from,
            request_id: &p.request_id,
            attach_ext: p.attach_ext.as_deref().unwrap_or(""),
            tokens: &tokens,
            at: now,
        };
        let taken = gateway.send(&push).await;
        self.observer.happened(Happening::Pushed(taken));
        Ok((
            if taken {
                PEER_OFFLINE
            } else {
                PUSH_UNREACHABLE
            },
            data,
        ))
    }

    /// 403 when joining one more room would put `account` in more than
    /// maxRoomsPerAccount rooms (`joining` is the room it asks for: already
    /// being in it is the rule's 10407, not a quota matter). `mine`: the
    /// rooms involving `account`, as the quota checks share them.
    fn room_quota(
        &self,
        mine: &[Room],
        account: &str,
        joining: Option<&str>,
        now: i64,
    ) -> Result<(), Failure> {
        let member_of = mine
            .iter()
            .filter(|r| r.is_valid(now) && r.member(account).is_some());
        let max = self.quotas.rooms_per_account;
        let already = joining.is_some_and(|id| member_of.clone().any(|r| r.channel_id == id));
        if member_of.count() >= max && !already {
            return Err(Failure::new(
                FORBIDDEN,
                format!("this account is already in {max} rooms (maxRoomsPerAccount)"),
            ));
        }
        Ok(())
    }

    /// 403 when `account` already created maxRoomsCreatedPerAccount rooms
    /// that are still valid (create and call make one; a glaring call,
    /// which joins the callee's room, does not). Rooms are indexed under
    /// their creator until closed (see [`Room::involved`]).
    fn creation_quota(&self, mine: &[Room], account: &str, now: i64) -> Result<(), Failure> {
        let created = mine
            .iter()
            .filter(|r| r.creator == account && r.is_valid(now))
            .count();
        let max = self.quotas.rooms_created_per_account;
        if created >= max {
            return Err(Failure::new(
                FORBIDDEN,
                format!(
                    "this account already created {max} rooms that are still valid \
                     (maxRoomsCreatedPerAccount)"
                ),
            ));
        }
        Ok(())
    }

    /// inviteMany: each invitee's reach, one update of the room for all,
    /// then the push gateway for each offline invitee that wants a push
    /// (its result turns 10202 when the gateway refuses, as for invite).
    async fn invite_many(
        &self,
        ctx: &Ctx<'_>,
        p: &InviteManyParams,
        cause: &Cause<'_>,
        now: i64,
    ) -> Result<(i32, Value), Failure> {
        let me = ctx.actor.account;
        let mine = self.store.rooms_involving(me).await?;
        self.invite_quota(&mine, me, now, p.accounts.len())?;
        let mut reaches = Vec::with_capacity(p.accounts.len());
        for a in &p.accounts {
            reaches.push(self.reach_for(me, &p.invitation(a), now).await?);
        }
        let (code, mut data) = self
            .apply(RoomKey::Id(&p.channel_id), now, cause, |r| {
                rules::invite_many(r, ctx, p, &reaches)
            })
            .await?;
        if let Some(results) = data["results"].as_array_mut() {
            for (a, result) in p.accounts.iter().zip(results) {
                if result["code"] == PEER_OFFLINE {
                    let one = Ok((PEER_OFFLINE, json!({})));
                    let inv = p.invitation(a);
                    let (pushed, _) = self
                        .push_if_offline(one, me, &p.channel_id, &inv, now)
                        .await?;
                    result["code"] = pushed.into();
                }
            }
        }
        Ok((code, data))
    }

    /// 403 when `account` already has maxPendingInvitesPerAccount
    /// invitations ringing, or would have more with `new` more.
    fn invite_quota(
        &self,
        mine: &[Room],
        account: &str,
        now: i64,
        new: usize,
    ) -> Result<(), Failure> {
        let ringing = mine
            .iter()
            .flat_map(|r| &r.invites)
            .filter(|i| i.from == account && i.is_ringing(now))
            .count();
        let max = self.quotas.pending_invites_per_account;
        if ringing + new > max {
            return Err(Failure::new(
                FORBIDDEN,
                format!("this account already has {max} invitations ringing (maxPendingInvitesPerAccount)"),
            ));
        }
        Ok(())
    }

    async fn query(&self, p: &QueryParams, now: i64) -> Result<(i32, Value), Failure> {
        let room = match (
            p.channel_id.as_deref().filter(|s| !s.is_empty()),
            p.channel_name.as_deref(),
        ) {
            (Some(id), _) => self.store.get_room(RoomKey::Id(id), now).await?,
            (None, Some(name)) => self.store.get_room(RoomKey::Name(name), now).await?,
            (None, None) => None,
        };
        let room = room.ok_or_else(|| Failure::code(ROOM_NOT_EXIST))?;
        Ok((
            OK,
            serde_json::to_value(room.with_members(now)).unwrap_or_default(),
        ))
    }

    /// The rooms `account` is in, as the channels sync carries them.
    pub async fn channels_of(&self, account: &str, now: i64) -> Result<Value, Failure> {
        let rooms = self.store.rooms_of(account, now).await?;
        let list: Vec<_> = rooms.iter().map(|r| r.with_members(now)).collect();
        Ok(serde_json::to_value(list).unwrap_or_default())
    }

    /// Events kept for offline delivery in (from, to], for this device, with
    /// each channelInfo showing the room's validity now.
    pub async fn offline_list(
        &self,
        account: &str,
        device: &str,
        from: u64,
        to: u64,
        now: i64,
    ) -> Result<Vec<Value>, Failure> {
        let mut out = Vec::new();
        let mut rooms: HashMap<String, Option<Room>> = HashMap::new();
        for e in self.store.read_offline(account, from, to).await? {
            if out.len() == MAX_OFFLINE_EVENTS {
                break;
            }
            if e.exclude_device.as_deref() == Some(device) {
                continue;
            }
            if let Some(v) = self.render_late(&e, &mut rooms, now).await? {
                out.push(v);
            }
        }
        Ok(out)
    }

    async fn render_late(
        &self,
        e: &LogEntry,
        rooms: &mut HashMap<String, Option<Room>>,
        now: i64,
    ) -> Result<Option<Value>, Failure> {
        let Some(LogBody::Event(ev)) = &e.body else {
            return Ok(None);
        };
        let id = &ev.channel_info.channel_id;
        if !rooms.contains_key(id) {
            let room = self.store.get_room(RoomKey::Id(id), now).await?;
            rooms.insert(id.clone(), room);
        }
        let mut ev = ev.clone();
        // The seed's invitee learns from `invalid` that the room is gone:
        // a room no longer remembered is shown invalid, not left out.
        match rooms.get(id).and_then(|r| r.as_ref()) {
            Some(room) => ev.channel_info = room.channel_info(now),
            None => ev.channel_info.invalid = 1,
        }
        Ok(serde_json::to_value(ev).ok())
    }

    /// A device's session ended at `now`: after the grace period, if it is
    /// still away, its memberships and ringing invitations go.
    pub async fn device_went_away(&self, account: &str, device: &str, now: i64) {
        let at = now + self.member_drop_grace.as_millis() as i64;
        let timer = Timer::DeviceGone {
            account: account.to_string(),
            device: device.to_string(),
        };
        self.store.schedule(at, timer).await;
    }

    /// Runs the timers that are due; returns how many ran.
    pub async fn run_due_timers(&self, now: i64) -> usize {
        let mut ran = 0;
        loop {
            let due = self.store.take_due(now, 256).await;
            if due.is_empty() {
                return ran;
            }
            ran += due.len();
            self.observer
                .happened(Happening::TimersRun(due.len() as u64));
            for (at, t) in due {
                self.run_timer(t.clone(), now).await;
                self.store.timer_done(at, &t).await;
            }
        }
    }

    async fn run_timer(&self, timer: Timer, now: i64) {
        match timer {
            Timer::InviteExpiry { channel_id } => {
                let r = self
                    .apply(RoomKey::Id(&channel_id), now, &Cause::InviteTimeout, |r| {
                        rules::expire_invites(r, now)
                    })
                    .await;
                if let Err(e) = r {
                    tracing::trace!(channel = %channel_id, error = %e, "no invitation expired");
                }
            }
            Timer::DeviceGone { account, device } => {
                let grace = self.member_drop_grace.as_millis() as i64;
                // Came back, or went away again later (a later timer covers
                // that absence): nothing to do now.
                let since = match self.store.device_gone_since(&account, &device).await {
                    Some(since) if now - since >= grace => since,
                    _ => return,
                };
                // Whatever follows, this absence has had its review: its
                // record would otherwise outlive the device by forever.
                self.store.forget_gone(&account, &device, since).await;
                let Ok(rooms) = self.store.rooms_involving(&account).await else {
                    return;
                };
                let limits = &self.limits;
                let cause = &Cause::DeviceGone {
                    account: &account,
                    device: &device,
                };
                for room in rooms {
                    // device_gone decides (a room the account joined from
                    // another device, with no invitation from this one,
                    // answers 10406 and is left alone).
                    let r = self
                        .apply(RoomKey::Id(&room.channel_id), now, cause, |r| {
                            rules::device_gone(r, &account, &device, now, limits)
                        })
                        .await;
                    if let Err(e) = r {
                        tracing::trace!(%account, channel = %room.channel_id, error = %e, "nothing to drop");
                    }
                }
            }
        }
    }
}
