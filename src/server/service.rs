//! The shell around the rules: loads state from the store, runs a rule
//! inside the store's atomic update, appends the resulting events to the
//! recipients' logs and wakes their sessions. Also the read-only operations
//! (sync, channel query) and the timers (sweeping, member drop).

use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::router::Hub;
use super::rules::{self, Actor, Ctx, Delivery, Limits, Reach, RuleResult};
use crate::protocol::codes::{INTERNAL, OK, ROOM_NOT_EXIST};
use crate::protocol::frames::result_object;
use crate::protocol::params::QueryParams;
use crate::protocol::{Failure, Request};
use crate::store::{LogBody, LogEntry, Room, RoomKey, Store, Tx};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
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
}

pub struct Service {
    pub store: Arc<dyn Store>,
    pub hub: Hub,
    pub limits: Limits,
    /// Grace before a vanished device's memberships are dropped.
    pub member_drop_grace: Duration,
    /// Whether a push provider is configured (decides 10201 vs 10202).
    pub push_available: bool,
    /// Makes channelIds unique within this process run.
    id_counter: AtomicU64,
    /// Random per process, so that ids of two runs (or nodes) differ.
    id_salt: u64,
}

/// Up to this many offline events are delivered at login.
pub const MAX_OFFLINE_EVENTS: usize = 1000;

impl Service {
    pub fn new(store: Arc<dyn Store>, limits: Limits, member_drop_grace: Duration) -> Self {
        Service {
            store,
            hub: Hub::default(),
            limits,
            member_drop_grace,
            push_available: false,
            id_counter: AtomicU64::new(1),
            id_salt: rand::random(),
        }
    }

    fn new_channel_id(&self) -> String {
        let n = self.id_counter.fetch_add(1, Ordering::Relaxed);
        format!(
            "{:016x}{:016x}",
            self.id_salt,
            n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ rand::random::<u64>()
        )
    }

    fn uid_seed() -> u64 {
        // Server-assigned uids are random (and then made unique by the rule)
        // so that they reveal nothing about other rooms; kept below 2^53 so
        // JavaScript numbers hold them exactly.
        rand::random::<u64>() % (1 << 53)
    }

    /// Runs `rule` atomically on the room at `key`, then delivers its events.
    async fn apply(
        &self,
        key: RoomKey<'_>,
        now: i64,
        mut rule: impl FnMut(Option<&Room>) -> RuleResult + Send,
    ) -> Result<(i32, Value), Failure> {
        let mut result: Option<Result<(i32, Value, Vec<Delivery>), Failure>> = None;
        self.store
            .update_room(key, now, &mut |room| match rule(room) {
                Ok(o) => {
                    result = Some(Ok((o.code, o.data, o.deliveries)));
                    Tx::Write(o.room)
                }
                Err(f) => {
                    result = Some(Err(f));
                    Tx::Abort
                }
            })
            .await?;
        let (code, data, deliveries) =
            result.unwrap_or_else(|| Err(Failure::new(INTERNAL, "store did not run the rule")))?;
        self.deliver(deliveries, now).await;
        Ok((code, data))
    }

    /// Appends each event to its recipient's log, then wakes the recipient.
    pub async fn deliver(&self, deliveries: Vec<Delivery>, now: i64) {
        for d in deliveries {
            match self.store.append(&d.to, d.entry, now).await {
                Ok(_) => self.hub.wake(&d.to),
                Err(e) => tracing::error!(account = %d.to, error = %e, "event not stored"),
            }
        }
    }

    /// Handles one request of a logged-in session; returns the result object.
    pub async fn handle(&self, s: &SessionInfo, req: Request) -> Value {
        let outcome = self.dispatch(s, req).await;
        match outcome {
            Ok((code, data)) if code == OK => result_object(code, None, Some(data)),
            Ok((code, data)) => result_object(
                code,
                Some(crate::protocol::codes::message(code)),
                Some(data),
            ),
            Err(f) => result_object(f.code, Some(&f.message), None),
        }
    }

    async fn reach(&self, account: &str) -> Reach {
        Reach {
            online: self.store.account_online(account).await,
            push_available: self.push_available,
        }
    }

    async fn dispatch(&self, s: &SessionInfo, req: Request) -> Result<(i32, Value), Failure> {
        let now = now_ms();
        let actor = Actor {
            account: &s.account,
            device: &s.device,
        };
        let ctx = Ctx {
            now,
            actor,
            limits: &self.limits,
        };
        match req {
            Request::Create(p) => {
                let id = self.new_channel_id();
                let name = p
                    .channel_name
                    .clone()
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| id.clone());
                self.apply(RoomKey::Name(&name), now, |r| {
                    rules::create(r, &ctx, &p, &id)
                })
                .await
            }
            Request::Close(p) => {
                self.apply(RoomKey::Id(&p.channel_id), now, |r| {
                    rules::close(r, &ctx, &p)
                })
                .await
            }
            Request::Join(p) => {
                let seed = Self::uid_seed();
                self.apply(RoomKey::Id(&p.channel_id), now, |r| {
                    rules::join(r, &ctx, &p, seed)
                })
                .await
            }
            Request::Leave(p) => {
                self.apply(RoomKey::Id(&p.channel_id), now, |r| {
                    rules::leave(r, &ctx, &p)
                })
                .await
            }
            Request::Invite(p) => {
                let reach = self.reach(&p.account).await;
                self.apply(RoomKey::Id(&p.channel_id), now, |r| {
                    rules::invite(r, &ctx, &p, reach)
                })
                .await
            }
            Request::Cancel(p) => {
                self.apply(RoomKey::Id(&p.channel_id), now, |r| {
                    rules::cancel(r, &ctx, &p)
                })
                .await
            }
            Request::Accept(p) => {
                let online = self.store.account_online(&p.account).await;
                let seed = Self::uid_seed();
                self.apply(RoomKey::Id(&p.channel_id), now, |r| {
                    rules::accept(r, &ctx, &p, online, seed)
                })
                .await
            }
            Request::Reject(p) => {
                let online = self.store.account_online(&p.account).await;
                self.apply(RoomKey::Id(&p.channel_id), now, |r| {
                    rules::reject(r, &ctx, &p, online)
                })
                .await
            }
            Request::Control(p) => {
                // Control changes nothing, so it reads the room instead of
                // locking it.
                let room = self.store.get_room(RoomKey::Id(&p.channel_id), now).await?;
                let o = rules::control(room.as_ref(), &ctx, &p)?;
                self.deliver(o.deliveries, now).await;
                Ok((o.code, o.data))
            }
            Request::Call(p) => {
                let id = self.new_channel_id();
                let name = p
                    .channel_name
                    .clone()
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| id.clone());
                let reach = self.reach(&p.account).await;
                let seed = Self::uid_seed();
                self.apply(RoomKey::Name(&name), now, |r| {
                    rules::call(r, &ctx, &p, &id, seed, reach)
                })
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
            Request::Login(_) | Request::Logout => Err(Failure::new(
                crate::protocol::codes::INVALID_PARAM,
                "login/logout are session operations",
            )),
        }
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
        let mut after = from;
        while after < to && out.len() < MAX_OFFLINE_EVENTS {
            let batch = self.store.read_after(account, after, 256).await?;
            if batch.is_empty() {
                break;
            }
            for e in batch {
                after = e.seq;
                if e.seq > to {
                    break;
                }
                if !e.offline || e.exclude_device.as_deref() == Some(device) {
                    continue;
                }
                if let Some(v) = self.render_late(&e, &mut rooms, now).await? {
                    out.push(v);
                }
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
        let LogBody::Event(ev) = &e.body else {
            return Ok(None);
        };
        let id = &ev.channel_info.channel_id;
        if !rooms.contains_key(id) {
            let room = self.store.get_room(RoomKey::Id(id), now).await?;
            rooms.insert(id.clone(), room);
        }
        let mut ev = ev.clone();
        match rooms.get(id).and_then(|r| r.as_ref()) {
            Some(room) => ev.channel_info = room.channel_info(now),
            None => ev.channel_info.invalid = 1,
        }
        Ok(serde_json::to_value(ev).ok())
    }

    /// After a device has been gone for the grace period, removes it from
    /// the rooms it joined (unless it came back).
    pub fn schedule_member_drop(self: &Arc<Self>, account: String, device: String) {
        let svc = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(svc.member_drop_grace).await;
            if svc.store.device_online(&account, &device).await {
                return;
            }
            let now = now_ms();
            let Ok(rooms) = svc.store.rooms_of(&account, now).await else {
                return;
            };
            // drop_member decides (rooms the account joined from another
            // device answer 10406 and are left alone).
            let limits = &svc.limits;
            for room in rooms {
                let r = svc
                    .apply(RoomKey::Id(&room.channel_id), now, |r| {
                        rules::drop_member(r, &account, &device, now, limits)
                    })
                    .await;
                if let Err(e) = r {
                    tracing::debug!(%account, channel = %room.channel_id, error = %e, "member drop skipped");
                }
            }
        });
    }
}
