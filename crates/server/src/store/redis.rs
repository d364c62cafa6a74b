//! The cluster store: rooms, invitations, presence, event logs, retry
//! records and timers in one Redis (or Valkey), shared by every node.
//!
//! - Rooms are JSON values updated optimistically: read, run the rule,
//!   then a script writes only if the room (and, for a new room, its name)
//!   is still what was read; otherwise the rule runs again on the new
//!   state. Rules are pure, so a retry is safe, and two nodes racing on one
//!   room can never both win.
//! - Each account's log is a list whose entries begin with their sequence,
//!   offline flag and time in a fixed layout, so scripts can trim it
//!   without decoding JSON. Appending publishes a wake-up; delivery rests
//!   on the logs (a session reads from its cursor), never on the message.
//! - Presence records which node holds each device's session; a node is
//!   alive while its key, refreshed every second, exists. A dead node's
//!   sessions are ended by the first node that notices (once, by SREM).
//! - Timers are a sorted set; taking one leases it (its score moves ahead)
//!   until it is reported done, so a timer whose node died runs elsewhere.
//! - One epoch for the whole store: a flushed or restarted Redis comes back
//!   without it, a new one is drawn, and every node ends its sessions so
//!   their clients are told to resync.
//!
//! Needs one Redis instance (scripts touch several keys), not a sharded
//! Redis Cluster.

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use super::model::{
    push_token_to_evict, LogBody, LogEntry, NewEntry, PushToken, Room, Timer, MAX_PUSH_TOKENS,
};
use super::{
    LogBounds, LogLimits, Logs, Presence, PushTokens, RequestKey, RequestSlot, Requests, RoomFn,
    RoomKey, Rooms, Signal, Signals, Stats, StoreError, StoreStats, Timers, Tx,
};
use nim_signaling_protocol::frames::NotifyKind;

/// A node whose key has not been refreshed for this long is dead.
const NODE_TTL_MS: u64 = 5_000;
/// How often a node checks Redis, refreshes its key and publishes its
/// keepalive.
const TICK: Duration = Duration::from_secs(1);
/// `/healthz` turns red when the last good round trip, or the last own
/// keepalive heard back, is older than this.
const STALE_MS: i64 = 3_000;
/// A timer taken but not reported done is handed out again after this.
const TIMER_LEASE_MS: i64 = 30_000;
/// Attempts of an optimistic room update before giving up (each conflict
/// means another node changed the room in between).
const MAX_ATTEMPTS: usize = 100;

/// A command that failed: on the way to Redis (unreachable, I/O, a
/// timeout) or refused by it.
fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("store unavailable: {e}"))
}

/// A script call that failed: the script itself failing inside Redis (an
/// error reply, or a reply not of the shape it should return), or else as
/// [`unavailable`].
fn script_failed(name: &'static str) -> impl FnOnce(redis::RedisError) -> StoreError {
    move |e| match e.kind() {
        redis::ErrorKind::ResponseError | redis::ErrorKind::TypeError => {
            StoreError::Script(format!("store script {name} failed: {e}"))
        }
        _ => unavailable(e),
    }
}

/// What serde_json refused to encode for storing.
fn unencodable(e: serde_json::Error) -> StoreError {
    StoreError::Encode(e.to_string())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// What the node's background tasks share with the store.
struct Shared {
    con: ConnectionManager,
    /// Key prefix, ending in ':'.
    p: String,
    node: String,
    signals: UnboundedSender<Signal>,
    /// Last successful round trip / own keepalive heard back (ms).
    last_ok: AtomicI64,
    last_keepalive: AtomicI64,
    /// The epoch this node serves; a different one in Redis means its state
    /// was lost.
    epoch: Mutex<Option<String>>,
}

pub struct RedisStore {
    shared: Arc<Shared>,
    limits: LogLimits,
    receiver: Mutex<Option<UnboundedReceiver<Signal>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// A log entry as stored: `s`, `o` and `t` first and in this order (the
/// scripts read them by pattern).
#[derive(Deserialize)]
struct Stored {
    s: u64,
    o: bool,
    t: i64,
    k: NotifyKind,
    x: Option<String>,
    e: String,
    #[serde(default)]
    b: Option<LogBody>,
}

/// The part of a stored entry the node writes; the script puts the
/// sequence, offline flag and time in front.
#[derive(Serialize)]
struct StoredTail<'a> {
    k: NotifyKind,
    x: &'a Option<String>,
    e: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    b: Option<&'a LogBody>,
}

fn tail_json(t: &StoredTail<'_>) -> Result<String, StoreError> {
    let text = serde_json::to_string(t).map_err(unencodable)?;
    // Without its opening brace: the script writes `{"s":…,"o":…,"t":…,`.
    Ok(text[1..].to_string())
}

fn decode_entry(text: &str) -> Option<Arc<LogEntry>> {
    let s: Stored = serde_json::from_str(text).ok()?;
    Some(Arc::new(LogEntry {
        seq: s.s,
        kind: s.k,
        exclude_device: s.x,
        offline: s.o,
        time: s.t,
        body: s.b,
        encoded: s.e.into(),
    }))
}

fn timer_member(at: i64, t: &Timer) -> String {
    format!("{at}|{}", serde_json::to_string(t).unwrap_or_default())
}

fn parse_timer_member(m: &str) -> Option<(i64, Timer)> {
    let (at, json) = m.split_once('|')?;
    Some((at.parse().ok()?, serde_json::from_str(json).ok()?))
}

/// Lua helpers every script starts with (`P`, the key prefix, is ARGV[1];
/// `live`). The scripts live in `scripts/<name>.lua`, each saying what it
/// does, its KEYS and ARGV; `include_str!` keeps the binary self-contained.
const PRELUDE: &str = include_str!("scripts/prelude.lua");

fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}{body}"))
}

/// The scripts, compiled once (redis-rs sends EVALSHA and falls back to the
/// source when a restarted Redis no longer knows them).
struct Scripts {
    load_by_name: Script,
    write_room: Script,
    delete_room: Script,
    append: Script,
    read_after: Script,
    bounds: Script,
    set_cursor: Script,
    session_up: Script,
    session_down: Script,
    live_devices: Script,
    live_session: Script,
    request_begin: Script,
    request_end: Script,
    take_due: Script,
    reap: Script,
}

static SCRIPTS: once_cell::sync::Lazy<Scripts> = once_cell::sync::Lazy::new(|| Scripts {
    load_by_name: script(include_str!("scripts/load_by_name.lua")),
    write_room: script(include_str!("scripts/write_room.lua")),
    delete_room: script(include_str!("scripts/delete_room.lua")),
    append: script(include_str!("scripts/append.lua")),
    read_after: script(include_str!("scripts/read_after.lua")),
    bounds: script(include_str!("scripts/bounds.lua")),
    set_cursor: script(include_str!("scripts/set_cursor.lua")),
    session_up: script(include_str!("scripts/session_up.lua")),
    session_down: script(include_str!("scripts/session_down.lua")),
    live_devices: script(include_str!("scripts/live_devices.lua")),
    live_session: script(include_str!("scripts/live_session.lua")),
    request_begin: script(include_str!("scripts/request_begin.lua")),
    request_end: script(include_str!("scripts/request_end.lua")),
    take_due: script(include_str!("scripts/take_due.lua")),
    reap: script(include_str!("scripts/reap.lua")),
});

impl RedisStore {
    /// Connects to `url` and starts this node's background work (liveness,
    /// subscription). Keys start with `prefix` and ':'; nodes that share a
    /// prefix form one system.
    pub async fn connect(url: &str, prefix: &str, limits: LogLimits) -> Result<Self, StoreError> {
        let client = redis::Client::open(url)
            .map_err(|e| StoreError::Config(format!("store url {url}: {e}")))?;
        let cfg = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_secs(1))
            .set_response_timeout(Duration::from_secs(2))
            .set_number_of_retries(2)
            .set_max_delay(1000);
        let mut con = ConnectionManager::new_with_config(client.clone(), cfg)
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot reach redis at {url}: {e}")))?;
        let node = format!("{:016x}", rand::random::<u64>());
        let p = format!("{prefix}:");
        let (tx, rx) = unbounded_channel();
        let epoch = fresh_epoch();
        let _: () = redis::pipe()
            .cmd("SET")
            .arg(format!("{p}epoch"))
            .arg(&epoch)
            .arg("NX")
            .ignore()
            .cmd("SET")
            .arg(format!("{p}node:{node}"))
            .arg(1)
            .arg("PX")
            .arg(NODE_TTL_MS)
            .ignore()
            .cmd("SADD")
            .arg(format!("{p}nodes"))
            .arg(&node)
            .ignore()
            .query_async(&mut con)
            .await
            .map_err(unavailable)?;
        let current: Option<String> = con.get(format!("{p}epoch")).await.map_err(unavailable)?;
        let now = now_ms();
        let shared = Arc::new(Shared {
            con,
            p,
            node,
            signals: tx,
            last_ok: AtomicI64::new(now),
            last_keepalive: AtomicI64::new(now),
            epoch: Mutex::new(current),
        });
        let tasks = vec![
            tokio::spawn(subscribe_loop(client, shared.clone())),
            tokio::spawn(liveness_loop(shared.clone())),
        ];
        Ok(RedisStore {
            shared,
            limits,
            receiver: Mutex::new(Some(rx)),
            tasks,
        })
    }

    fn con(&self) -> ConnectionManager {
        self.shared.con.clone()
    }

    fn p(&self) -> &str {
        &self.shared.p
    }

    async fn load(&self, key: RoomKey<'_>) -> Result<(Option<String>, String), StoreError> {
        let mut con = self.con();
        match key {
            RoomKey::Id(id) => {
                let text: Option<String> = con
                    .get(format!("{}room:{id}", self.p()))
                    .await
                    .map_err(unavailable)?;
                Ok((Some(id.to_string()), text.unwrap_or_default()))
            }
            RoomKey::Name(name) => {
                let v: Vec<String> = SCRIPTS
                    .load_by_name
                    .arg(self.p())
                    .arg(name)
                    .invoke_async(&mut con)
                    .await
                    .map_err(script_failed("load_by_name"))?;
                let mut it = v.into_iter();
                Ok((it.next(), it.next().unwrap_or_default()))
            }
        }
    }

    async fn rooms_by_id(&self, ids: &[String]) -> Result<Vec<Room>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids
            .iter()
            .map(|id| format!("{}room:{id}", self.p()))
            .collect();
        let texts: Vec<Option<String>> = self.con().mget(keys).await.map_err(unavailable)?;
        Ok(texts
            .iter()
            .flatten()
            .filter_map(|t| serde_json::from_str(t).ok())
            .collect())
    }
}

fn fresh_epoch() -> String {
    format!("{:016x}", rand::random::<u64>())
}

fn decode_room(text: &str) -> Result<Option<Room>, StoreError> {
    if text.is_empty() {
        return Ok(None);
    }
    serde_json::from_str(text)
        .map(Some)
        .map_err(|e| StoreError::Corrupt(format!("stored room unreadable: {e}")))
}

/// Receives what the other nodes publish, and this node's own keepalives.
/// After every (re)subscription it asks for every local session to read its
/// log: wake-ups published while it was away are lost, events are not.
async fn subscribe_loop(client: redis::Client, shared: Arc<Shared>) {
    use futures_util::StreamExt;
    let channel = format!("{}signals", shared.p);
    loop {
        let sub = async {
            let mut ps = client.get_async_pubsub().await?;
            ps.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(ps)
        };
        let mut ps = match tokio::time::timeout(Duration::from_secs(2), sub).await {
            Ok(Ok(ps)) => ps,
            _ => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let _ = shared.signals.send(Signal::WakeAll);
        let mut stream = ps.on_message();
        while let Some(msg) = stream.next().await {
            let Ok(text) = msg.get_payload::<String>() else {
                continue;
            };
            let signal = match text.split_once('|') {
                Some(("w", account)) => Signal::Wake(account.to_string()),
                Some(("k", rest)) => match session_of(rest) {
                    Some((account, session)) => Signal::Kick { account, session },
                    None => continue,
                },
                Some(("e", rest)) => match session_of(rest) {
                    Some((account, session)) => Signal::Evict { account, session },
                    None => continue,
                },
                Some(("n", node)) => {
                    if node == shared.node {
                        shared.last_keepalive.store(now_ms(), Ordering::Relaxed);
                    }
                    continue;
                }
                _ => continue,
            };
            let _ = shared.signals.send(signal);
        }
        tracing::warn!("redis subscription lost; re-subscribing");
    }
}

/// `<session>|<account>` of a kick or eviction message (the account last:
/// it may contain '|').
fn session_of(rest: &str) -> Option<(String, u64)> {
    let (session, account) = rest.split_once('|')?;
    Some((account.to_string(), session.parse().ok()?))
}

/// Every [`TICK`]: refreshes this node's key, publishes its keepalive,
/// checks the epoch (a changed one means Redis lost its state) and ends the
/// sessions of nodes that died.
async fn liveness_loop(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = liveness_round(&shared).await {
            tracing::warn!(error = %e, "redis check failed");
        }
    }
}

async fn liveness_round(shared: &Shared) -> Result<(), redis::RedisError> {
    let p = &shared.p;
    let mut con = shared.con.clone();
    let epoch = fresh_epoch();
    let (current, nodes): (String, Vec<String>) = redis::pipe()
        .cmd("SET")
        .arg(format!("{p}node:{}", shared.node))
        .arg(1)
        .arg("PX")
        .arg(NODE_TTL_MS)
        .ignore()
        .cmd("SADD")
        .arg(format!("{p}nodes"))
        .arg(&shared.node)
        .ignore()
        .cmd("SET")
        .arg(format!("{p}epoch"))
        .arg(&epoch)
        .arg("NX")
        .ignore()
        .cmd("PUBLISH")
        .arg(format!("{p}signals"))
        .arg(format!("n|{}", shared.node))
        .ignore()
        .cmd("GET")
        .arg(format!("{p}epoch"))
        .cmd("SMEMBERS")
        .arg(format!("{p}nodes"))
        .query_async(&mut con)
        .await?;
    shared.last_ok.store(now_ms(), Ordering::Relaxed);
    let lost = {
        let mut known = shared.epoch.lock().unwrap_or_else(|e| e.into_inner());
        let lost = known.as_deref().is_some_and(|k| k != current);
        *known = Some(current);
        lost
    };
    if lost {
        tracing::warn!("redis lost its state; ending every session so clients resync");
        let _ = shared.signals.send(Signal::StateLost);
    }
    for node in nodes.iter().filter(|n| **n != shared.node) {
        let sessions: Option<Vec<String>> =
            SCRIPTS.reap.arg(p).arg(node).invoke_async(&mut con).await?;
        for s in sessions.unwrap_or_default() {
            let mut parts = s.splitn(3, '\n');
            let (Some(a), Some(d), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            tracing::info!(node = %node, account = %a, device = %d, "session of a dead node ended");
            let now = now_ms();
            let _: i64 = SCRIPTS
                .session_down
                .arg(p)
                .arg(a)
                .arg(d)
                .arg(id)
                .arg(now)
                .invoke_async(&mut con)
                .await?;
            // The device's memberships and invitations are reviewed after
            // the grace, as if its session had ended here.
            let _ = shared.signals.send(Signal::DeviceGone {
                account: a.to_string(),
                device: d.to_string(),
                at: now,
            });
        }
    }
    Ok(())
}

#[async_trait]
impl Rooms for RedisStore {
    async fn update_room(
        &self,
        key: RoomKey<'_>,
        now: i64,
        f: RoomFn<'_>,
    ) -> Result<(), StoreError> {
        for attempt in 0..MAX_ATTEMPTS {
            let (holder_id, text) = self.load(key).await?;
            let mut current = decode_room(&text)?;
            if let RoomKey::Name(_) = key {
                // Only a valid room holds its name.
                current = current.filter(|r| r.is_valid(now));
            }
            let Tx::Write(room) = f(current.as_ref()) else {
                return Ok(());
            };
            let (expected, by_name, name, expected_holder) = match key {
                RoomKey::Id(_) => (text.as_str(), "0", "", ""),
                // A new room: its id is fresh, and the name must still be
                // held by whatever held it when it was read.
                RoomKey::Name(n) => ("", "1", n, holder_id.as_deref().unwrap_or("")),
            };
            let old = match key {
                RoomKey::Id(_) => current.as_ref(),
                RoomKey::Name(_) => None,
            };
            let before = old.map(Room::involved).unwrap_or_default();
            let after = room.involved();
            let leaving: Vec<&str> = before.difference(&after).copied().collect();
            let joining: Vec<&str> = after.difference(&before).copied().collect();
            let new_text = serde_json::to_string(&room).map_err(unencodable)?;
            let mut inv = SCRIPTS.write_room.prepare_invoke();
            inv.arg(self.p())
                .arg(&room.channel_id)
                .arg(expected)
                .arg(&new_text)
                .arg(by_name)
                .arg(name)
                .arg(expected_holder)
                .arg(room.forget_at().map(|t| t.to_string()).unwrap_or_default())
                .arg(leaving.len())
                .arg(&leaving)
                .arg(&joining);
            let written: i64 = inv
                .invoke_async(&mut self.con())
                .await
                .map_err(script_failed("write_room"))?;
            if written == 1 {
                return Ok(());
            }
            if attempt > 2 {
                tokio::time::sleep(Duration::from_millis(rand::random::<u64>() % 5 + 1)).await;
            }
        }
        Err(StoreError::Contended)
    }

    async fn get_room(&self, key: RoomKey<'_>, now: i64) -> Result<Option<Room>, StoreError> {
        let (_, text) = self.load(key).await?;
        let room = decode_room(&text)?;
        Ok(match key {
            RoomKey::Id(_) => room,
            RoomKey::Name(_) => room.filter(|r| r.is_valid(now)),
        })
    }

    async fn rooms_involving(&self, account: &str) -> Result<Vec<Room>, StoreError> {
        let ids: Vec<String> = self
            .con()
            .smembers(format!("{}acct:{account}", self.p()))
            .await
            .map_err(unavailable)?;
        self.rooms_by_id(&ids).await
    }

    /// Pages by the sorted ids of the `rooms` set: every page reads the
    /// whole set (SSCAN could list a room twice), which suits an operator's
    /// listing, not a hot path.
    async fn list_rooms(
        &self,
        cursor: Option<&str>,
        limit: usize,
        now: i64,
    ) -> Result<(Vec<Room>, Option<String>), StoreError> {
        let ids: Vec<String> = self
            .con()
            .smembers(format!("{}rooms", self.p()))
            .await
            .map_err(unavailable)?;
        let (page, next) = super::page_after(ids, cursor, limit);
        let mut rooms = self.rooms_by_id(&page).await?;
        rooms.retain(|r| !r.is_forgettable(now));
        Ok((rooms, next))
    }

    async fn sweep(&self, now: i64) -> Result<Vec<Room>, StoreError> {
        let ids: Vec<String> = self
            .con()
            .zrangebyscore_limit(format!("{}gc", self.p()), "-inf", now, 0, 500)
            .await
            .map_err(unavailable)?;
        let mut removed = Vec::new();
        for id in ids {
            let (_, text) = self.load(RoomKey::Id(&id)).await?;
            let Some(room) = decode_room(&text)? else {
                // Already gone: drop the leftover entry.
                let _: () = self
                    .con()
                    .zrem(format!("{}gc", self.p()), &id)
                    .await
                    .map_err(unavailable)?;
                continue;
            };
            if !room.is_forgettable(now) {
                continue;
            }
            let accounts: Vec<&str> = room.involved().into_iter().collect();
            let done: i64 = SCRIPTS
                .delete_room
                .arg(self.p())
                .arg(&id)
                .arg(&text)
                .arg(&room.name)
                .arg(&accounts)
                .invoke_async(&mut self.con())
                .await
                .map_err(script_failed("delete_room"))?;
            // 0: another node deleted it (or it changed) first.
            if done == 1 {
                removed.push(room);
            }
        }
        Ok(removed)
    }
}

#[async_trait]
impl Presence for RedisStore {
    async fn session_up(&self, account: &str, device: &str, session: u64) -> Option<u64> {
        let r: redis::RedisResult<Option<String>> = SCRIPTS
            .session_up
            .arg(self.p())
            .arg(account)
            .arg(device)
            .arg(session)
            .arg(&self.shared.node)
            .invoke_async(&mut self.con())
            .await;
        match r {
            Ok(old) => old.and_then(|s| s.parse().ok()),
            Err(e) => {
                tracing::warn!(%account, error = %e, "presence not recorded");
                None
            }
        }
    }

    async fn session_down(&self, account: &str, device: &str, session: u64, now: i64) {
        let r: redis::RedisResult<i64> = SCRIPTS
            .session_down
            .arg(self.p())
            .arg(account)
            .arg(device)
            .arg(session)
            .arg(now)
            .invoke_async(&mut self.con())
            .await;
        if let Err(e) = r {
            tracing::warn!(%account, error = %e, "presence not cleared");
        }
    }

    async fn device_gone_since(&self, account: &str, device: &str) -> Option<i64> {
        self.con()
            .hget(format!("{}gone:{account}", self.p()), device)
            .await
            .ok()
            .flatten()
    }

    async fn live_session(&self, account: &str, device: &str) -> Option<u64> {
        let r: redis::RedisResult<Option<String>> = SCRIPTS
            .live_session
            .arg(self.p())
            .arg(account)
            .arg(device)
            .invoke_async(&mut self.con())
            .await;
        r.ok().flatten().and_then(|s| s.parse().ok())
    }

    async fn account_online(&self, account: &str) -> bool {
        !self.devices_of(account).await.is_empty()
    }

    async fn devices_of(&self, account: &str) -> Vec<String> {
        SCRIPTS
            .live_devices
            .arg(self.p())
            .arg(account)
            .invoke_async(&mut self.con())
            .await
            .unwrap_or_default()
    }
}

#[async_trait]
impl Logs for RedisStore {
    async fn append(
        &self,
        account: &str,
        entry: NewEntry,
        now: i64,
    ) -> Result<Arc<LogEntry>, StoreError> {
        let encoded = entry.body.encode().map_err(StoreError::encoding)?;
        let tail = |b| {
            tail_json(&StoredTail {
                k: entry.kind,
                x: &entry.exclude_device,
                e: &encoded,
                b,
            })
        };
        let (with_body, without) = (tail(Some(&entry.body))?, tail(None)?);
        let (seq, offline): (u64, i64) = SCRIPTS
            .append
            .arg(self.p())
            .arg(account)
            .arg(if entry.offline_enabled { "1" } else { "0" })
            .arg(now)
            .arg(self.limits.max_events)
            .arg(self.limits.retention_ms)
            .arg(with_body)
            .arg(without)
            .invoke_async(&mut self.con())
            .await
            .map_err(script_failed("append"))?;
        let offline = offline == 1;
        Ok(Arc::new(LogEntry {
            seq,
            kind: entry.kind,
            exclude_device: entry.exclude_device,
            offline,
            time: now,
            body: offline.then_some(entry.body),
            encoded: encoded.into(),
        }))
    }

    async fn read_after(
        &self,
        account: &str,
        after: u64,
        max: usize,
    ) -> Result<Vec<Arc<LogEntry>>, StoreError> {
        let texts: Vec<String> = SCRIPTS
            .read_after
            .arg(self.p())
            .arg(account)
            .arg(after)
            .arg(max.max(1))
            .invoke_async(&mut self.con())
            .await
            .map_err(script_failed("read_after"))?;
        texts
            .iter()
            .map(|t| {
                decode_entry(t)
                    .ok_or_else(|| StoreError::Corrupt("stored log entry unreadable".into()))
            })
            .collect()
    }

    async fn log_bounds(&self, account: &str) -> Result<LogBounds, StoreError> {
        let (epoch, first, head): (String, u64, u64) = SCRIPTS
            .bounds
            .arg(self.p())
            .arg(account)
            .arg(fresh_epoch())
            .invoke_async(&mut self.con())
            .await
            .map_err(script_failed("bounds"))?;
        Ok(LogBounds { epoch, first, head })
    }

    async fn cursor(&self, account: &str, device: &str) -> u64 {
        self.con()
            .hget::<_, _, Option<u64>>(format!("{}cur:{account}", self.p()), device)
            .await
            .ok()
            .flatten()
            .unwrap_or(0)
    }

    async fn set_cursor(&self, account: &str, device: &str, seq: u64) {
        let r: redis::RedisResult<i64> = SCRIPTS
            .set_cursor
            .arg(self.p())
            .arg(account)
            .arg(device)
            .arg(seq)
            .invoke_async(&mut self.con())
            .await;
        if let Err(e) = r {
            tracing::warn!(%account, error = %e, "cursor not saved");
        }
    }
}

#[async_trait]
impl Requests for RedisStore {
    async fn request_begin(
        &self,
        key: &RequestKey<'_>,
        ack: Option<u64>,
        _now: i64,
    ) -> RequestSlot {
        let r: redis::RedisResult<Option<String>> = SCRIPTS
            .request_begin
            .arg(self.p())
            .arg(key.account)
            .arg(key.device)
            .arg(key.instance)
            .arg(key.id)
            .arg(ack.map(|a| a.to_string()).unwrap_or_default())
            .arg(self.limits.retention_ms)
            .invoke_async(&mut self.con())
            .await;
        match r {
            Ok(None) => RequestSlot::Fresh,
            Ok(Some(a)) if a.is_empty() => RequestSlot::Running,
            Ok(Some(a)) => RequestSlot::Done(a.into()),
            Err(e) => {
                // Without the record the request is applied as new: a
                // repeat may then apply twice, which the rules answer as
                // they would any second copy (e.g. 10407).
                tracing::warn!(error = %e, "retry record unavailable");
                RequestSlot::Fresh
            }
        }
    }

    async fn request_end(&self, key: &RequestKey<'_>, result: Arc<str>) {
        let r: redis::RedisResult<i64> = SCRIPTS
            .request_end
            .arg(self.p())
            .arg(key.account)
            .arg(key.device)
            .arg(key.instance)
            .arg(key.id)
            .arg(&*result)
            .invoke_async(&mut self.con())
            .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, "retry record not saved");
        }
    }
}

#[async_trait]
impl Timers for RedisStore {
    async fn schedule(&self, at: i64, timer: Timer) {
        let r: redis::RedisResult<i64> = self
            .con()
            .zadd(format!("{}timers", self.p()), timer_member(at, &timer), at)
            .await;
        if let Err(e) = r {
            tracing::error!(?timer, error = %e, "timer not scheduled");
        }
    }

    async fn take_due(&self, now: i64, max: usize) -> Vec<(i64, Timer)> {
        let r: redis::RedisResult<Vec<String>> = SCRIPTS
            .take_due
            .arg(self.p())
            .arg(now)
            .arg(max)
            .arg(TIMER_LEASE_MS)
            .invoke_async(&mut self.con())
            .await;
        r.unwrap_or_default()
            .iter()
            .filter_map(|m| parse_timer_member(m))
            .collect()
    }

    async fn timer_done(&self, at: i64, timer: &Timer) {
        let r: redis::RedisResult<i64> = self
            .con()
            .zrem(format!("{}timers", self.p()), timer_member(at, timer))
            .await;
        if let Err(e) = r {
            tracing::warn!(?timer, error = %e, "timer not cleared; it will run again");
        }
    }
}

#[async_trait]
impl PushTokens for RedisStore {
    async fn set_push_token(&self, account: &str, token: PushToken) -> Result<(), StoreError> {
        let key = format!("{}push:{account}", self.p());
        let text = serde_json::to_string(&token).map_err(unencodable)?;
        // One field per device: two devices registering at once both land.
        let count: usize = redis::pipe()
            .hset(&key, &token.device_id, text)
            .ignore()
            .hlen(&key)
            .query_async::<(usize,)>(&mut self.con())
            .await
            .map_err(unavailable)?
            .0;
        if count > MAX_PUSH_TOKENS {
            let tokens = self.push_tokens(account).await?;
            if let Some(old) = push_token_to_evict(&tokens) {
                let _: () = self.con().hdel(&key, old).await.map_err(unavailable)?;
            }
        }
        Ok(())
    }

    async fn remove_push_token(&self, account: &str, device: &str) -> Result<(), StoreError> {
        let key = format!("{}push:{account}", self.p());
        self.con().hdel(key, device).await.map_err(unavailable)
    }

    async fn push_tokens(&self, account: &str) -> Result<Vec<PushToken>, StoreError> {
        let all: std::collections::BTreeMap<String, String> = self
            .con()
            .hgetall(format!("{}push:{account}", self.p()))
            .await
            .map_err(unavailable)?;
        // A field that does not decode (written by another version) is
        // skipped rather than failing every invitation to the account.
        Ok(all
            .values()
            .filter_map(|t| serde_json::from_str(t).ok())
            .collect())
    }
}

#[async_trait]
impl Stats for RedisStore {
    async fn stats(&self) -> StoreStats {
        let p = self.p();
        let r: redis::RedisResult<(usize, Option<i64>, usize)> = redis::pipe()
            .cmd("SCARD")
            .arg(format!("{p}rooms"))
            .cmd("GET")
            .arg(format!("{p}logsize"))
            .cmd("ZCARD")
            .arg(format!("{p}timers"))
            .query_async(&mut self.con())
            .await;
        match r {
            Ok((rooms, logs, timers)) => StoreStats {
                rooms,
                log_entries: logs.unwrap_or(0).max(0) as usize,
                timers,
            },
            Err(_) => StoreStats::default(),
        }
    }

    async fn health(&self) -> Result<(), String> {
        let now = now_ms();
        let ok = self.shared.last_ok.load(Ordering::Relaxed);
        let heard = self.shared.last_keepalive.load(Ordering::Relaxed);
        if now - ok > STALE_MS {
            return Err(format!("redis: no good round trip for {} ms", now - ok));
        }
        if now - heard > STALE_MS {
            return Err(format!(
                "redis: own keepalive not heard back for {} ms (subscription broken)",
                now - heard
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl Signals for RedisStore {
    async fn broadcast(&self, signal: Signal) {
        let text = match &signal {
            Signal::Wake(a) => format!("w|{a}"),
            Signal::Kick { account, session } => format!("k|{session}|{account}"),
            Signal::Evict { account, session } => format!("e|{session}|{account}"),
            _ => return,
        };
        let r: redis::RedisResult<i64> = self
            .con()
            .publish(format!("{}signals", self.p()), text)
            .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, "signal not published");
        }
    }

    fn signals(&self) -> Option<UnboundedReceiver<Signal>> {
        self.receiver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}
