//! The cluster store: rooms, invitations, presence, event logs, retry
//! records and timers in Redis (or Valkey), shared by every node: a single
//! Redis, or a Redis Cluster whose masters each hold a share of the state
//! (see `keys.rs` for which state sits together, and docs/CLUSTER.md).
//!
//! - Rooms are JSON values updated optimistically: read, run the rule,
//!   then one script writes the room, its name, its forget time, the
//!   timers the rule asked for and the update's events, only if the room
//!   (and, for a new room, its name) is still what was read; otherwise the
//!   rule runs again on the new state. Rules are pure, so a retry is safe,
//!   and two nodes racing on one room can never both win. The script
//!   appends the events of the accounts whose logs share the room's slot
//!   (on a single Redis, every account) itself; the others' go into the
//!   room's outbox and are forwarded from there (see `outbox.rs`).
//! - Each account indexes the rooms it is involved in. The index changes
//!   travel with the account's events out of the room's outbox, so an
//!   index names a room from the account's first event about it; it may
//!   name more rooms than the account is in (readers check the room).
//! - Each account's log is a list whose entries begin with their sequence,
//!   offline flag and time in a fixed layout, so scripts can trim it
//!   without decoding JSON. One script appends all of a request's entries
//!   for an account (`append_lib.lua`) and wakes the other nodes holding
//!   a session of it, each on its own channel (on a cluster it names
//!   them, and the node wakes them). Delivery rests on the logs (a session
//!   reads from its cursor), never on the message.
//! - Presence records which node holds each device's session. A node is
//!   alive while its key, refreshed every second, exists; each node keeps
//!   the list of live nodes (read every second) and counts a session on a
//!   dead node as gone. A dead node's sessions are ended by the first node
//!   that notices (once: the reaped mark).
//! - Timers are sorted sets, one per room bucket; taking one leases it
//!   (its score moves ahead) until it is reported done, so a timer whose
//!   node died runs elsewhere.
//! - Each account's log has an epoch, and each bucket an epoch key: a Redis
//!   (or a cluster master) that lost its data comes back without them, so
//!   every node ends its sessions and their clients are told to resync.

mod deferred;
mod keys;
mod link;
mod outbox;

use async_trait::async_trait;
use redis::{AsyncCommands, Script, ScriptInvocation};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use self::keys::{Keys, BUCKETS};
use self::link::{Con, Link};
use super::model::{
    push_token_to_evict, LogBody, LogEntry, NewEntry, PushToken, Room, Timer, MAX_PUSH_TOKENS,
};
use super::{
    now_ms, Appended, LogBounds, LogLimits, Logs, Presence, PushTokens, RequestKey, RequestSlot,
    Requests, RoomFn, RoomKey, Rooms, Signal, Signals, Stats, StoreError, StoreStats, Timers, Tx,
};
use nim_signaling_protocol::frames::NotifyKind;

/// Entries of an account's log a woken session reads at first (see
/// [`RedisStore::read_after`]): more than a wake-up mostly brings.
const READ_TAIL: isize = 4;

/// A node whose key has not been refreshed for this long is dead.
const NODE_TTL_MS: u64 = 5_000;
/// How long a dead node's reaped mark is kept (long after any node could
/// still try to reap it).
const REAPED_MARK_MS: u64 = 600_000;
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
/// Rooms the sweeper looks at per bucket and round.
const SWEEP_BATCH: isize = 100;
/// How often a node asks every bucket for due timers. Between, it asks only
/// the buckets of timers it scheduled itself, when they fall due: the full
/// round is for timers of other nodes (one that died, or left).
const FULL_TIMER_POLL_MS: i64 = 1_000;

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

/// A hook for the fault tests: with `NIM_TEST_CRASH` set to
/// `point`, the process dies there at once, as a node killed at that point
/// would (tests/cluster_faults.rs; docs/CLUSTER.md). Unset, it does nothing.
fn crash_point(point: &str) {
    static AT: once_cell::sync::Lazy<Option<String>> =
        once_cell::sync::Lazy::new(|| std::env::var("NIM_TEST_CRASH").ok());
    if AT.as_deref() == Some(point) {
        tracing::error!(point, "NIM_TEST_CRASH: exiting here");
        std::process::exit(86);
    }
}

fn fresh_epoch() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// What the node's background tasks share with the store.
struct Shared {
    /// Replaced when a cluster's masters change (see [`check_topology`]).
    con: RwLock<Con>,
    link: Link,
    /// Counts those replacements; the subscription is made again on each.
    moved: tokio::sync::watch::Sender<u64>,
    keys: Keys,
    node: String,
    signals: UnboundedSender<Signal>,
    /// The nodes found dead at the last check (listed, their keys
    /// expired). Any other node counts as alive: one that started since
    /// announced itself before serving anyone.
    dead: RwLock<Vec<String>>,
    /// Log entries appended less those trimmed since the last check: added
    /// to the system-wide gauge once a second, not per append.
    log_delta: AtomicI64,
    /// Last successful round trip / own keepalive heard back (ms).
    last_ok: AtomicI64,
    last_keepalive: AtomicI64,
    /// Each bucket's epoch as last seen; a different one in Redis means the
    /// master holding the bucket lost its data.
    epochs: Mutex<Vec<Option<String>>>,
    /// On a cluster: the configuration epoch of the master serving each
    /// slot, as last seen (empty on a single Redis). A replica promoted in
    /// a failover serves its slots under a new one; it may lack the last
    /// writes its master acknowledged, so the logs of those slots count as
    /// a new incarnation (see [`Shared::log_epoch`]).
    slot_epochs: RwLock<Vec<u64>>,
}

impl Shared {
    fn con(&self) -> Con {
        self.con.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn is_live(&self, node: &str) -> bool {
        !self
            .dead
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|n| n == node)
    }

    /// The session and node of a presence value `<session>|<node>` when
    /// its node is alive.
    fn live_presence<'v>(&self, v: &'v str) -> Option<(&'v str, &'v str)> {
        let (session, node) = v.split_once('|')?;
        self.is_live(node).then_some((session, node))
    }

    /// The device of a presence value when its node is alive: its session
    /// id.
    fn live_session_of(&self, v: &str) -> Option<u64> {
        self.live_presence(v)?.0.parse().ok()
    }

    /// The epoch of an account's log as clients see it: the one stored with
    /// it, and on a cluster the configuration epoch of the master serving
    /// it, so that after a failover (which may have dropped the last writes)
    /// a device resuming from before it is told to resync.
    fn log_epoch(&self, stored: String, account: &str) -> String {
        let slots = self.slot_epochs.read().unwrap_or_else(|e| e.into_inner());
        match slots.get(keys::slot(&self.keys.acct(account, "log")) as usize) {
            Some(config) => format!("{stored}.{config}"),
            None => stored,
        }
    }

    /// The member of a node's session set.
    fn session_member(account: &str, device: &str, session: &str) -> String {
        format!("{account}\n{device}\n{session}")
    }
}

pub struct RedisStore {
    shared: Arc<Shared>,
    limits: LogLimits,
    /// The timers this node scheduled, as (due time, bucket), and when it
    /// next asks every bucket (see [`FULL_TIMER_POLL_MS`]).
    due: Mutex<(std::collections::BTreeSet<(i64, usize)>, i64)>,
    receiver: Mutex<Option<UnboundedReceiver<Signal>>>,
    /// Writes no request waits for (see [`deferred`]).
    deferred: deferred::Deferred,
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

/// A forward's room, id and room index change (see [`outbox`]); None for
/// an append that is not a forward.
type Forward<'a> = Option<(&'a str, &'a str, Option<bool>)>;

/// One account's part of an append: the account, its entries in order,
/// and the forward it belongs to (see [`RedisStore::append_accounts`]).
type AppendPart<'a> = (String, Vec<NewEntry>, Forward<'a>);

/// A room index change as the scripts take it.
fn index_change(index: Option<bool>) -> &'static str {
    match index {
        Some(true) => "+",
        Some(false) => "-",
        None => "",
    }
}

/// Adds one triple per entry to `inv` (see `append_entries` in
/// append_lib.lua) and returns the entries' encoded bodies.
fn entry_args(
    inv: &mut ScriptInvocation<'_>,
    entries: &[NewEntry],
) -> Result<Vec<String>, StoreError> {
    let mut encoded = Vec::with_capacity(entries.len());
    for entry in entries {
        let e = entry.body.encode().map_err(StoreError::encoding)?;
        let tail = |b| {
            tail_json(&StoredTail {
                k: entry.kind,
                x: &entry.exclude_device,
                e: &e,
                b,
            })
        };
        // The body is kept only in the offline list, for an entry held
        // for offline delivery; the script knows whether it is one.
        if entry.offline_enabled {
            inv.arg("1").arg(tail(None)?).arg(tail(Some(&entry.body))?);
        } else {
            inv.arg("0").arg(tail(None)?).arg("");
        }
        encoded.push(e);
    }
    Ok(encoded)
}

fn tail_json(t: &StoredTail<'_>) -> Result<String, StoreError> {
    let text = serde_json::to_string(t).map_err(unencodable)?;
    // Without its opening brace: the script writes `{"s":…,"o":…,"t":…,`.
    Ok(text[1..].to_string())
}

/// The sequence of a stored entry, read from its fixed start
/// (`{"s":<seq>,`) without decoding the rest.
fn stored_seq(text: &str) -> Option<u64> {
    let rest = text.strip_prefix("{\"s\":")?;
    let end = rest.find(',')?;
    rest[..end].parse().ok()
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

fn decode_room(text: &str) -> Result<Option<Room>, StoreError> {
    if text.is_empty() {
        return Ok(None);
    }
    serde_json::from_str(text)
        .map(Some)
        .map_err(|e| StoreError::Corrupt(format!("stored room unreadable: {e}")))
}

fn timer_member(at: i64, t: &Timer) -> String {
    format!("{at}|{}", serde_json::to_string(t).unwrap_or_default())
}

fn parse_timer_member(m: &str) -> Option<(i64, Timer)> {
    let (at, json) = m.split_once('|')?;
    Some((at.parse().ok()?, serde_json::from_str(json).ok()?))
}

/// The bucket a timer lives in: its room's, so that scheduling it is part
/// of the room's write; an account's timer by the account.
fn timer_bucket(t: &Timer) -> usize {
    match t {
        Timer::InviteExpiry { channel_id } => keys::bucket_of_id(channel_id),
        Timer::DeviceGone { account, .. } => keys::bucket_of_account(account),
    }
}

/// The scripts live in `scripts/<name>.lua`, each saying what it does, its
/// KEYS and ARGV; `include_str!` keeps the binary self-contained. Every
/// script's keys share one slot of a cluster (mostly one hash tag).
/// `append_lib.lua` holds how an account's log is appended to; it goes in
/// front of both scripts that append.
struct Scripts {
    load_by_name: Script,
    write_room: Script,
    delete_room: Script,
    append: Script,
    read_after: Script,
    bounds: Script,
    set_cursor: Script,
    forget_gone: Script,
    session_up: Script,
    session_down: Script,
    request_begin: Script,
    take_due: Script,
    reap: Script,
    outbox_sweep: Script,
}

static SCRIPTS: once_cell::sync::Lazy<Scripts> = once_cell::sync::Lazy::new(|| Scripts {
    load_by_name: Script::new(include_str!("scripts/load_by_name.lua")),
    write_room: with_append_lib(include_str!("scripts/write_room.lua")),
    delete_room: Script::new(include_str!("scripts/delete_room.lua")),
    append: with_append_lib(include_str!("scripts/append.lua")),
    read_after: Script::new(include_str!("scripts/read_after.lua")),
    bounds: Script::new(include_str!("scripts/bounds.lua")),
    set_cursor: Script::new(include_str!("scripts/set_cursor.lua")),
    forget_gone: Script::new(include_str!("scripts/forget_gone.lua")),
    session_up: Script::new(include_str!("scripts/session_up.lua")),
    session_down: Script::new(include_str!("scripts/session_down.lua")),
    request_begin: Script::new(include_str!("scripts/request_begin.lua")),
    take_due: Script::new(include_str!("scripts/take_due.lua")),
    reap: Script::new(include_str!("scripts/reap.lua")),
    outbox_sweep: Script::new(include_str!("scripts/outbox_sweep.lua")),
});

fn with_append_lib(script: &str) -> Script {
    Script::new(&format!(
        "{}\n{script}",
        include_str!("scripts/append_lib.lua")
    ))
}

impl RedisStore {
    /// Connects to `url` (a single Redis, or any master of a Redis
    /// Cluster: which one is asked of the server) and starts this node's
    /// background work (liveness, subscription). Keys start with `prefix`
    /// and ':'; nodes that share a prefix form one system.
    pub async fn connect(url: &str, prefix: &str, limits: LogLimits) -> Result<Self, StoreError> {
        redis::Client::open(url)
            .map_err(|e| StoreError::Config(format!("store url {url}: {e}")))?;
        let link = Link::probe(url).await.map_err(StoreError::Unavailable)?;
        let con = link
            .connect()
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot reach redis at {url}: {e}")))?;
        let node = format!("{:016x}", rand::random::<u64>());
        let (tx, rx) = unbounded_channel();
        let now = now_ms();
        let shared = Arc::new(Shared {
            con: RwLock::new(con),
            link,
            moved: tokio::sync::watch::channel(0).0,
            keys: Keys::new(prefix),
            dead: RwLock::new(Vec::new()),
            node,
            signals: tx,
            log_delta: AtomicI64::new(0),
            last_ok: AtomicI64::new(now),
            last_keepalive: AtomicI64::new(now),
            epochs: Mutex::new(vec![None; BUCKETS]),
            slot_epochs: RwLock::new(Vec::new()),
        });
        // The first round draws the epochs, reads the cluster's masters and
        // announces this node before any session can start.
        if shared.link.cluster {
            check_topology(&shared).await;
        }
        liveness_round(&shared).await.map_err(unavailable)?;
        let for_deferred = shared.clone();
        let (deferred, sender) = deferred::Deferred::start(move || for_deferred.con());
        let tasks = vec![
            tokio::spawn(subscribe_loop(shared.clone())),
            tokio::spawn(liveness_loop(shared.clone())),
            sender,
        ];
        tracing::info!(cluster = shared.link.cluster, "redis store connected");
        Ok(RedisStore {
            shared,
            limits,
            due: Mutex::new((Default::default(), 0)),
            receiver: Mutex::new(Some(rx)),
            deferred,
            tasks,
        })
    }

    fn con(&self) -> Con {
        self.shared.con()
    }

    fn keys(&self) -> &Keys {
        &self.shared.keys
    }

    /// The count of what `account` sent that was kept for offline
    /// delivery in sending window `window` (see
    /// [`LogLimits::sending_window`]); in the account's slot.
    fn offline_sent_key(&self, account: &str, window: i64) -> String {
        self.keys().acct(account, &format!("offsent:{window}"))
    }

    /// The room at `key` as stored: its channelId (for a name, the holder's,
    /// if any) and its JSON ('' when none).
    async fn load(&self, key: RoomKey<'_>) -> Result<(Option<String>, String), StoreError> {
        let mut con = self.con();
        match key {
            RoomKey::Id(id) => {
                let text: Option<String> =
                    con.get(self.keys().room(id)).await.map_err(unavailable)?;
                Ok((Some(id.to_string()), text.unwrap_or_default()))
            }
            RoomKey::Name(name) => {
                let bucket = keys::bucket_of_name(name);
                let v: Vec<String> = SCRIPTS
                    .load_by_name
                    .key(self.keys().name(name))
                    .arg(self.keys().room_prefix(bucket))
                    .invoke_async(&mut con)
                    .await
                    .map_err(script_failed("load_by_name"))?;
                let mut it = v.into_iter();
                Ok((it.next(), it.next().unwrap_or_default()))
            }
        }
    }

    /// The rooms with these ids that exist (one pipelined read: on a
    /// cluster, one round trip to each master involved).
    async fn rooms_by_id(&self, ids: &[String]) -> Result<Vec<Room>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.get(self.keys().room(id));
        }
        let texts: Vec<Option<String>> = self.con().run(&pipe).await.map_err(unavailable)?;
        Ok(texts
            .iter()
            .flatten()
            .filter_map(|t| serde_json::from_str(t).ok())
            .collect())
    }

    /// Adds `id` to (`add`) or removes it from the room indexes of
    /// `accounts`.
    async fn index(&self, id: &str, accounts: &[&str], add: bool) -> Result<(), StoreError> {
        if accounts.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for a in accounts {
            let k = self.keys().acct(a, "rooms");
            if add {
                pipe.sadd(k, id);
            } else {
                pipe.srem(k, id);
            }
        }
        self.con()
            .run::<redis::Value>(&pipe)
            .await
            .map(drop)
            .map_err(unavailable)
    }

    /// Appends each account's entries (one script per account) and returns
    /// them with their sequences, per account in the order given; wakes the
    /// other nodes holding the accounts' sessions. The scripts go out as
    /// one pipeline on a single Redis (one wake-up of Redis for all of
    /// them), at once on a cluster. A part's `Forward` names the room,
    /// forward id and room index change of a forward out of a room's outbox
    /// (see [`outbox`]): one the account got before returns no entries and
    /// changes nothing.
    async fn append_accounts(&self, parts: Vec<AppendPart<'_>>, now: i64) -> Appended {
        let mut prepared = Vec::with_capacity(parts.len());
        for (account, entries, forward) in parts {
            let p = self.append_invocation(&account, &entries, now, forward);
            prepared.push((account, entries, p));
        }
        let invocations: Vec<&ScriptInvocation<'static>> = prepared
            .iter()
            .filter_map(|(_, _, p)| p.as_ref().ok().map(|(inv, _)| inv))
            .collect();
        let mut replies = self.invoke_appends(&invocations).await.into_iter();
        let mut out = Vec::with_capacity(prepared.len());
        for (account, entries, p) in prepared {
            let r = match p {
                Ok((_, encoded)) => match replies.next() {
                    Some(Ok(reply)) => self.appended(&account, entries, encoded, reply, now).await,
                    Some(Err(e)) => Err(e),
                    None => Err(StoreError::Script("store script append: no reply".into())),
                },
                Err(e) => Err(e),
            };
            out.push((account, r));
        }
        out
    }

    /// The append script's invocation for one account, and its entries'
    /// encoded bodies.
    fn append_invocation(
        &self,
        account: &str,
        entries: &[NewEntry],
        now: i64,
        forward: Forward<'_>,
    ) -> Result<(ScriptInvocation<'static>, Vec<String>), StoreError> {
        let k = self.keys();
        let (channel, id, index) = forward.unwrap_or(("", "", None));
        let mut inv = SCRIPTS.append.prepare_invoke();
        self.account_keys(&mut inv, account);
        inv.key(k.acct(account, &format!("fwd:{channel}")))
            .key(k.acct(account, "rooms"))
            .arg(account)
            .arg(channel)
            .arg(id)
            .arg(index_change(index))
            .arg(outbox::FORWARD_MARK_MS);
        self.append_context(&mut inv, now);
        let encoded = entry_args(&mut inv, entries)?;
        Ok((inv, encoded))
    }

    /// An account's keys in the order of `account_keys` (append_lib.lua).
    fn account_keys(&self, inv: &mut ScriptInvocation<'_>, account: &str) {
        let k = self.keys();
        for what in ["pres", "head", "log", "off", "cur", "otrim"] {
            inv.key(k.acct(account, what));
        }
    }

    /// The common arguments of the scripts that append (`append_context`
    /// in append_lib.lua). On a single Redis a script may publish on any
    /// channel, so there they wake the other nodes themselves: the
    /// wake-up then happens with the append, even should this node die
    /// right after it. A cluster's script may not (a node's channel is in
    /// the node's slot): there they name the nodes, and this node wakes
    /// them.
    fn append_context(&self, inv: &mut ScriptInvocation<'_>, now: i64) {
        let wake = match self.shared.link.cluster {
            true => "",
            false => self.shared.link.publish_cmd(),
        };
        let (before, after) = self.keys().node_around("signals");
        inv.arg(now)
            .arg(self.limits.max_events)
            .arg(self.limits.retention_ms)
            .arg(&self.shared.node)
            .arg(self.limits.max_offline)
            .arg(self.limits.offline_retention_ms)
            .arg(wake)
            .arg(before)
            .arg(after);
        let dead = self.shared.dead.read().unwrap_or_else(|e| e.into_inner());
        inv.arg(dead.len());
        for n in dead.iter() {
            inv.arg(n);
        }
    }

    /// Whether the room stored at `room_key` and `account`'s log share a
    /// slot, so that the room's write may append to the log: always on a
    /// single Redis.
    fn appends_with_room(&self, room_key: &str, account: &str) -> bool {
        !self.shared.link.cluster
            || keys::slot(room_key) == keys::slot(&self.keys().acct(account, "log"))
    }

    /// Runs append invocations: one pipeline on a single Redis, all at once
    /// on a cluster. A pipeline refused for a script Redis lost ran none of
    /// them (they are all the append script), so it may be sent again.
    async fn invoke_appends(
        &self,
        invocations: &[&ScriptInvocation<'static>],
    ) -> Vec<Result<Vec<redis::Value>, StoreError>> {
        let con = self.con();
        let Con::Single(c) = &con else {
            let runs = invocations.iter().map(|inv| {
                let mut con = con.clone();
                async move {
                    inv.invoke_async::<Vec<redis::Value>>(&mut con)
                        .await
                        .map_err(script_failed("append"))
                }
            });
            return futures_util::future::join_all(runs).await;
        };
        let mut pipe = redis::pipe();
        for inv in invocations {
            pipe.invoke_script(inv);
        }
        let sent =
            link::query_loading::<Vec<Vec<redis::Value>>>(c, &pipe, &[&SCRIPTS.append]).await;
        match sent {
            Ok(replies) => replies.into_iter().map(Ok).collect(),
            Err(e) => {
                let e = script_failed("append")(e);
                invocations.iter().map(|_| Err(e.clone())).collect()
            }
        }
    }

    /// One account's entries from the append script's `reply`; wakes the
    /// other nodes that hold its sessions.
    async fn appended(
        &self,
        account: &str,
        entries: Vec<NewEntry>,
        encoded: Vec<String>,
        reply: Vec<redis::Value>,
        now: i64,
    ) -> Result<Vec<Arc<LogEntry>>, StoreError> {
        let ints = |v: &redis::Value| redis::from_redis_value::<i64>(v).ok();
        let bad = || StoreError::Script("store script append answered out of shape".into());
        let dropped = reply.first().and_then(ints).ok_or_else(bad)?;
        let wake = reply.get(1).and_then(ints).ok_or_else(bad)? as usize;
        let nodes: Vec<String> = reply
            .get(2..2 + wake)
            .ok_or_else(bad)?
            .iter()
            .filter_map(|v| redis::from_redis_value(v).ok())
            .collect();
        if !nodes.is_empty() {
            crash_point("before-wake");
        }
        if dropped == -1 {
            // This forward reached the account before (another node's, or
            // this one's that the sweeper found unfinished): its first
            // forwarder may have died before waking the account's nodes.
            self.wake_nodes(account, &nodes).await;
            return Ok(Vec::new());
        }
        let pairs = &reply[2 + wake..];
        if pairs.len() != 2 * entries.len() {
            return Err(bad());
        }
        self.shared
            .log_delta
            .fetch_add(entries.len() as i64 - dropped, Ordering::Relaxed);
        let mut out = Vec::with_capacity(entries.len());
        for ((entry, e), pair) in entries.into_iter().zip(encoded).zip(pairs.chunks(2)) {
            let seq = ints(&pair[0]).ok_or_else(bad)? as u64;
            let offline = ints(&pair[1]) == Some(1);
            out.push(Arc::new(LogEntry {
                seq,
                kind: entry.kind,
                exclude_device: entry.exclude_device,
                offline,
                time: now,
                body: offline.then_some(entry.body),
                encoded: e.into(),
            }));
        }
        self.wake_nodes(account, &nodes).await;
        Ok(out)
    }

    /// Notes timers this node scheduled, so that it asks their buckets when
    /// they fall due.
    fn expect_due(&self, timers: impl Iterator<Item = (i64, usize)>) {
        let mut due = self.due.lock().unwrap_or_else(|e| e.into_inner());
        due.0.extend(timers);
    }

    /// The buckets to ask for due timers at `now`.
    fn buckets_due(&self, now: i64) -> Vec<usize> {
        let mut due = self.due.lock().unwrap_or_else(|e| e.into_inner());
        if now >= due.1 {
            due.1 = now + FULL_TIMER_POLL_MS;
            due.0.retain(|(at, _)| *at > now);
            return (0..BUCKETS).collect();
        }
        let mut buckets = Vec::new();
        while let Some(&(at, b)) = due.0.first() {
            if at > now {
                break;
            }
            due.0.pop_first();
            if !buckets.contains(&b) {
                buckets.push(b);
            }
        }
        buckets
    }

    /// Tells `nodes` that `account`'s log grew, each on its own channel.
    async fn wake_nodes(&self, account: &str, nodes: &[String]) {
        if nodes.is_empty() {
            return;
        }
        let mut pipe = redis::pipe();
        for n in nodes {
            pipe.cmd(self.shared.link.publish_cmd())
                .arg(self.keys().node(n, "signals"))
                .arg(format!("w|{account}"));
        }
        if let Err(e) = self.con().run::<redis::Value>(&pipe).await {
            // The woken node reads its logs when its subscription comes
            // back; until then the event waits in the log.
            tracing::warn!(%account, error = %e, "wake-up not published");
        }
    }
}

/// Receives what the other nodes publish, and this node's own keepalives.
/// After every (re)subscription it asks for every local session to read its
/// log: wake-ups published while it was away are lost, events are not.
async fn subscribe_loop(shared: Arc<Shared>) {
    let global = shared.keys.global("signals");
    let own = shared.keys.node(&shared.node, "signals");
    let (tx, mut rx) = unbounded_channel::<(String, String)>();
    let reader = {
        let shared = shared.clone();
        tokio::spawn(async move {
            while let Some((_, text)) = rx.recv().await {
                handle_message(&shared, &text);
            }
        })
    };
    loop {
        let signals = shared.signals.clone();
        let woken = move || {
            let _ = signals.send(Signal::WakeAll);
        };
        let mut moved = shared.moved.subscribe();
        if let Err(e) = shared
            .link
            .subscribe(&global, &own, &tx, &woken, &mut moved)
            .await
        {
            tracing::warn!(error = %e, "redis subscription failed");
        } else {
            tracing::warn!("redis subscription lost; re-subscribing");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        if reader.is_finished() {
            return;
        }
    }
}

fn handle_message(shared: &Shared, text: &str) {
    let signal = match text.split_once('|') {
        Some(("w", account)) => Signal::Wake(account.to_string()),
        Some(("k", rest)) => match session_of(rest) {
            Some((account, session)) => Signal::Kick { account, session },
            None => return,
        },
        Some(("e", rest)) => match session_of(rest) {
            Some((account, session)) => Signal::Evict { account, session },
            None => return,
        },
        Some(("n", node)) => {
            if node == shared.node {
                shared.last_keepalive.store(now_ms(), Ordering::Relaxed);
            }
            return;
        }
        _ => return,
    };
    let _ = shared.signals.send(signal);
}

/// `<session>|<account>` of a kick or eviction message (the account last:
/// it may contain '|').
fn session_of(rest: &str) -> Option<(String, u64)> {
    let (session, account) = rest.split_once('|')?;
    Some((account.to_string(), session.parse().ok()?))
}

/// Every [`TICK`]: on a cluster [`check_topology`], then
/// [`liveness_round`].
async fn liveness_loop(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if shared.link.cluster {
            check_topology(&shared).await;
        }
        if let Err(e) = liveness_round(&shared).await {
            tracing::warn!(error = %e, "redis check failed");
        }
    }
}

/// On a cluster: reads which master serves each slot; when one changed
/// (a replica took over from a failed master, or slots moved), replaces
/// the routed connection (the old one may stay stuck on the dead master)
/// and ends every session, so that clients of the moved slots come back
/// and are told to resync (see [`Shared::log_epoch`]).
async fn check_topology(shared: &Shared) {
    let Some(text) = shared.link.topology().await else {
        tracing::warn!("no Redis Cluster node answered CLUSTER NODES");
        return;
    };
    if !read_slot_epochs(shared, &text) {
        return;
    }
    tracing::warn!(
        "a Redis Cluster master changed (failover or resharding); reconnecting and ending \
         every session so clients of the moved slots resync"
    );
    match shared.link.connect().await {
        Ok(con) => {
            *shared.con.write().unwrap_or_else(|e| e.into_inner()) = con;
            shared.moved.send_modify(|n| *n += 1);
        }
        Err(e) => tracing::warn!(error = %e, "cannot reconnect to the Redis Cluster"),
    }
    let _ = shared.signals.send(Signal::StateLost);
}

/// Refreshes this node's key, publishes its keepalive on its own channel,
/// adds its log-size change to the gauge, checks every bucket's epoch (a
/// changed one means a Redis lost its state), learns which nodes died
/// and ends their sessions.
async fn liveness_round(shared: &Shared) -> Result<(), redis::RedisError> {
    let k = &shared.keys;
    let con = shared.con();
    let delta = shared.log_delta.swap(0, Ordering::Relaxed);
    let mut pipe = redis::pipe();
    pipe.cmd("SET")
        .arg(k.node(&shared.node, "alive"))
        .arg(1)
        .arg("PX")
        .arg(NODE_TTL_MS)
        .sadd(k.global("nodes"), &shared.node)
        .cmd(shared.link.publish_cmd())
        .arg(k.node(&shared.node, "signals"))
        .arg(format!("n|{}", shared.node))
        .incr(k.global("logsize"), delta);
    // The replies above come first; then each bucket's SET NX and GET.
    const FIRST_EPOCH: usize = 4;
    for b in 0..BUCKETS {
        pipe.cmd("SET")
            .arg(k.bucket(b, "epoch"))
            .arg(fresh_epoch())
            .arg("NX")
            .get(k.bucket(b, "epoch"));
    }
    pipe.smembers(k.global("nodes"));
    let mut reply: Vec<redis::Value> = match con.run(&pipe).await {
        Ok(r) => r,
        Err(e) => {
            // Counted again next round.
            shared.log_delta.fetch_add(delta, Ordering::Relaxed);
            return Err(e);
        }
    };
    shared.last_ok.store(now_ms(), Ordering::Relaxed);
    let nodes: Vec<String> = reply
        .pop()
        .map(|v| redis::from_redis_value(&v))
        .transpose()?
        .unwrap_or_default();
    let epochs: Vec<Option<String>> = reply
        .get(FIRST_EPOCH..)
        .unwrap_or_default()
        .iter()
        .skip(1)
        .step_by(2)
        .map(|v| redis::from_redis_value(v).ok())
        .collect();
    let lost = {
        let mut known = shared.epochs.lock().unwrap_or_else(|e| e.into_inner());
        let lost = known
            .iter()
            .zip(&epochs)
            .any(|(was, is)| was.is_some() && was != is);
        *known = epochs;
        lost
    };
    if lost {
        tracing::warn!("redis lost its state; ending every session so clients resync");
        let _ = shared.signals.send(Signal::StateLost);
    }
    let others: Vec<&String> = nodes.iter().filter(|n| **n != shared.node).collect();
    let mut pipe = redis::pipe();
    for n in &others {
        pipe.exists(k.node(n, "alive"));
    }
    let alive: Vec<bool> = con.run(&pipe).await?;
    let dead: Vec<String> = others
        .into_iter()
        .zip(alive)
        .filter(|(_, a)| !a)
        .map(|(n, _)| n.clone())
        .collect();
    *shared.dead.write().unwrap_or_else(|e| e.into_inner()) = dead.clone();
    for node in dead {
        reap(shared, &node).await?;
    }
    Ok(())
}

/// Records which master serves each slot under which configuration epoch,
/// from a `CLUSTER NODES` reply; true when one changed since the last
/// reading (not at the first).
fn read_slot_epochs(shared: &Shared, text: &str) -> bool {
    let mut slots = shared
        .slot_epochs
        .write()
        .unwrap_or_else(|e| e.into_inner());
    link::read_slot_epochs(text, &mut slots)
}

/// Ends the sessions of a dead node, if this node is the one to reap it.
async fn reap(shared: &Shared, node: &str) -> Result<(), redis::RedisError> {
    let k = &shared.keys;
    let mut con = shared.con();
    let sessions: Option<Vec<String>> = SCRIPTS
        .reap
        .key(k.node(node, "alive"))
        .key(k.node(node, "reaped"))
        .key(k.node(node, "sessions"))
        .arg(REAPED_MARK_MS)
        .invoke_async(&mut con)
        .await?;
    let Some(sessions) = sessions else {
        return Ok(());
    };
    for s in sessions {
        let mut parts = s.splitn(3, '\n');
        let (Some(a), Some(d), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        tracing::info!(node = %node, account = %a, device = %d, "session of a dead node ended");
        let now = now_ms();
        let _: Option<String> = SCRIPTS
            .session_down
            .key(k.acct(a, "pres"))
            .key(k.acct(a, "gone"))
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
    // Last: while it is listed, a node that finds it dead tries to reap it
    // (and the mark makes that a no-op).
    let _: () = con.srem(k.global("nodes"), node).await?;
    Ok(())
}

/// One account's part of a room update appended by the room's write: the
/// account, its room index change and its entries.
type Part = (String, Option<bool>, Vec<NewEntry>);

/// A room update as write_room.lua takes it.
struct RoomWrite<'a> {
    room: &'a Room,
    text: &'a str,
    /// The room JSON as read ('' for a new room).
    expected: &'a str,
    /// '1' when the room is written under its name (a new room).
    by_name: &'a str,
    /// The room holding the name when it was read ('' for none).
    expected_holder: &'a str,
    forget_changed: bool,
    /// Timers of the room's bucket.
    timers: &'a [(i64, Timer)],
}

/// What became of a room write.
enum Written {
    /// The room (or its name) changed since it was read.
    Conflict,
    /// Nothing written: the outbox holds an earlier update's entry with a
    /// part for an account that was to be appended here, which would have
    /// overtaken it.
    OutboxBusy,
    Done {
        /// The outbox entries before this one (other writers'), oldest
        /// first: forwarded before this update's.
        earlier: Vec<String>,
        /// For each account appended here, the append's reply and its
        /// entries' encoded bodies.
        appended: Vec<(Vec<redis::Value>, Vec<String>)>,
    },
}

impl RedisStore {
    /// Runs write_room.lua for `w`, with `outbox` the entry for the
    /// accounts elsewhere and `here` the parts it appends itself.
    async fn write_room(
        &self,
        w: &RoomWrite<'_>,
        outbox: Option<&str>,
        here: &[Part],
        now: i64,
    ) -> Result<Written, StoreError> {
        let k = self.keys();
        let id = &w.room.channel_id;
        let bucket = keys::bucket_of_id(id);
        let mut inv = SCRIPTS.write_room.prepare_invoke();
        inv.key(k.room(id))
            .key(k.name(&w.room.name))
            .key(k.bucket(bucket, "rooms"))
            .key(k.bucket(bucket, "gc"))
            .key(k.bucket(bucket, "timers"))
            .key(k.outbox(id))
            .key(k.bucket(bucket, "outdue"))
            .arg(id)
            .arg(w.expected)
            .arg(w.text)
            .arg(w.by_name)
            .arg(w.expected_holder)
            .arg(
                w.room
                    .forget_at()
                    .map(|t| t.to_string())
                    .unwrap_or_default(),
            )
            .arg(if w.forget_changed { "1" } else { "0" })
            .arg(outbox.unwrap_or(""))
            .arg(now + outbox::OUTBOX_GRACE_MS)
            .arg(w.timers.len());
        for (at, t) in w.timers {
            inv.arg(*at).arg(timer_member(*at, t));
        }
        let mut encoded = Vec::with_capacity(here.len());
        if !here.is_empty() {
            self.append_context(&mut inv, now);
            for (account, index, entries) in here {
                self.account_keys(&mut inv, account);
                let part_begins = format!(
                    "{{\"a\":{}",
                    serde_json::to_string(account).map_err(unencodable)?
                );
                inv.key(k.acct(account, "rooms"))
                    .arg(account)
                    .arg(part_begins)
                    .arg(index_change(*index))
                    .arg(entries.len());
                encoded.push(entry_args(&mut inv, entries)?);
            }
        }
        let reply: Vec<redis::Value> = inv
            .invoke_async(&mut self.con())
            .await
            .map_err(script_failed("write_room"))?;
        let mut reply = reply.into_iter();
        let status = reply
            .next()
            .and_then(|v| redis::from_redis_value::<i64>(&v).ok());
        Ok(match status {
            Some(1) => {
                let bad =
                    || StoreError::Script("store script write_room answered out of shape".into());
                let earlier: Vec<String> = reply
                    .next()
                    .and_then(|v| redis::from_redis_value(&v).ok())
                    .ok_or_else(bad)?;
                let appended: Vec<Vec<redis::Value>> = reply
                    .map(|v| redis::from_redis_value(&v))
                    .collect::<Result<_, _>>()
                    .ok()
                    .filter(|a: &Vec<_>| a.len() == here.len())
                    .ok_or_else(bad)?;
                Written::Done {
                    earlier,
                    appended: appended.into_iter().zip(encoded).collect(),
                }
            }
            Some(2) => Written::OutboxBusy,
            _ => Written::Conflict,
        })
    }
}

#[async_trait]
impl Rooms for RedisStore {
    fn room_id(&self, name: Option<&str>, near: Option<&str>, unique: &str) -> String {
        keys::room_id(name, near, unique)
    }

    async fn update_room(
        &self,
        key: RoomKey<'_>,
        now: i64,
        f: RoomFn<'_>,
    ) -> Result<Appended, StoreError> {
        for attempt in 0..MAX_ATTEMPTS {
            // A room created without a name is named by its fresh id, which
            // nothing holds: its first attempt writes without reading (the
            // write's compare-and-set still checks that the name and the
            // room are free, and a conflict reads them as any other does).
            // Saves a script and a round trip of every such create and call.
            let unread = matches!(key, RoomKey::Name(n) if attempt == 0 && keys::is_room_id(n));
            let (holder_id, text) = match unread {
                true => (None, String::new()),
                false => self.load(key).await?,
            };
            let mut current = decode_room(&text)?;
            if let RoomKey::Name(_) = key {
                // Only a valid room holds its name.
                current = current.filter(|r| r.is_valid(now));
            }
            let Tx::Write {
                room,
                timers,
                events,
            } = f(current.as_ref())
            else {
                return Ok(Vec::new());
            };
            let (expected, by_name, expected_holder) = match key {
                RoomKey::Id(_) => (text.as_str(), "0", ""),
                // A new room: its id is fresh, and the name must still be
                // held by whatever held it when it was read.
                RoomKey::Name(_) => ("", "1", holder_id.as_deref().unwrap_or("")),
            };
            let old = match key {
                RoomKey::Id(_) => current.as_ref(),
                RoomKey::Name(_) => None,
            };
            let before = old.map(Room::involved).unwrap_or_default();
            let after = room.involved();
            let leaving: Vec<&str> = before.difference(&after).copied().collect();
            let joining: Vec<&str> = after.difference(&before).copied().collect();
            // The events and index changes of the accounts whose logs share
            // the room's slot (on a single Redis, all of them) are appended
            // by the write itself; the others' go into the room's outbox
            // with the write, and are forwarded from there (see [`outbox`]).
            let room_key = self.keys().room(&room.channel_id);
            let mut forward = outbox::Forward::new(events, &joining, &leaving);
            let mut here: Vec<Part> = forward.as_mut().map_or_else(Vec::new, |f| {
                let parts = f.take_accounts(|a| self.appends_with_room(&room_key, a));
                parts.into_iter().map(outbox::OutAccount::entries).collect()
            });
            if self.shared.link.cluster {
                // This node wakes their other nodes after the write; the
                // outbox entry names them for the sweeper, should it die
                // first.
                if let Some(f) = forward.as_mut() {
                    f.wake = here.iter().map(|(a, _, _)| a.clone()).collect();
                }
            }
            // A timer of another bucket (none of today's rules asks for one)
            // is scheduled after the write.
            let bucket = keys::bucket_of_id(&room.channel_id);
            let (timers, elsewhere): (Vec<_>, Vec<_>) = timers
                .into_iter()
                .partition(|(_, t)| timer_bucket(t) == bucket);
            self.expect_due(timers.iter().map(|(at, _)| (*at, bucket)));
            let text = serde_json::to_string(&room).map_err(unencodable)?;
            let write = RoomWrite {
                room: &room,
                text: &text,
                expected,
                by_name,
                expected_holder,
                forget_changed: old.and_then(|r| r.forget_at()) != room.forget_at(),
                timers: &timers,
            };
            let done = loop {
                let away = forward.take().filter(|f| !f.is_empty());
                let away = away.map(|f| f.encode().map(|t| (f, t))).transpose()?;
                let outbox = away.as_ref().map(|(_, t)| t.as_str());
                break match self.write_room(&write, outbox, &here, now).await? {
                    Written::Conflict => None,
                    Written::Done { earlier, appended } => Some((earlier, appended, away)),
                    Written::OutboxBusy => {
                        // An earlier update's entries wait in the outbox:
                        // this one's go behind them, every account's.
                        let mut f = away.map_or_else(outbox::Forward::empty, |(f, _)| f);
                        f.wake.clear();
                        let parts = here
                            .drain(..)
                            .map(|(a, i, e)| outbox::OutAccount::new(a, i, e));
                        f.accounts.extend(parts);
                        forward = Some(f);
                        continue;
                    }
                };
            };
            if let Some((earlier, appended, mut away)) = done {
                crash_point("after-room-write");
                for (at, t) in elsewhere {
                    self.schedule(at, t).await;
                }
                let mut out = Vec::with_capacity(here.len() + 2);
                for ((account, _, entries), (reply, encoded)) in here.into_iter().zip(appended) {
                    let r = self.appended(&account, entries, encoded, reply, now).await;
                    out.push((account, r));
                }
                // This node has just woken them.
                if let Some((f, _)) = away.as_mut() {
                    f.wake.clear();
                }
                let forwarded = self.forward_all(&room.channel_id, earlier, away, now);
                out.extend(forwarded.await);
                return Ok(out);
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
            .smembers(self.keys().acct(account, "rooms"))
            .await
            .map_err(unavailable)?;
        let mut rooms = self.rooms_by_id(&ids).await?;
        // The index may name more rooms than the account is in.
        rooms.retain(|r| r.involved().contains(account));
        Ok(rooms)
    }

    /// Pages by the sorted ids of every bucket's room set: every page reads
    /// all of them (SSCAN could list a room twice), which suits an
    /// operator's listing, not a hot path.
    async fn list_rooms(
        &self,
        cursor: Option<&str>,
        limit: usize,
        now: i64,
    ) -> Result<(Vec<Room>, Option<String>), StoreError> {
        let mut pipe = redis::pipe();
        for b in 0..BUCKETS {
            pipe.smembers(self.keys().bucket(b, "rooms"));
        }
        let sets: Vec<Vec<String>> = self.con().run(&pipe).await.map_err(unavailable)?;
        let (page, next) = super::page_after(sets.concat(), cursor, limit);
        let mut rooms = self.rooms_by_id(&page).await?;
        rooms.retain(|r| !r.is_forgettable(now));
        Ok((rooms, next))
    }

    /// Also forwards the outbox entries writers left behind (see
    /// `outbox.rs`).
    async fn sweep(&self, now: i64) -> Result<Vec<Room>, StoreError> {
        if let Err(e) = self.forward_left_behind(now).await {
            tracing::warn!(error = %e, "left-behind events not forwarded this round");
        }
        let k = self.keys();
        let mut pipe = redis::pipe();
        for b in 0..BUCKETS {
            pipe.zrangebyscore_limit(k.bucket(b, "gc"), "-inf", now, 0, SWEEP_BATCH);
        }
        let due: Vec<Vec<String>> = self.con().run(&pipe).await.map_err(unavailable)?;
        let mut removed = Vec::new();
        for (b, ids) in due.into_iter().enumerate() {
            for id in ids {
                let (_, text) = self.load(RoomKey::Id(&id)).await?;
                let Some(room) = decode_room(&text)? else {
                    // Already gone: drop the leftover entry.
                    let _: () = self
                        .con()
                        .zrem(k.bucket(b, "gc"), &id)
                        .await
                        .map_err(unavailable)?;
                    continue;
                };
                if !room.is_forgettable(now) {
                    continue;
                }
                let done: i64 = SCRIPTS
                    .delete_room
                    .key(k.room(&id))
                    .key(k.name(&room.name))
                    .key(k.bucket(b, "rooms"))
                    .key(k.bucket(b, "gc"))
                    .arg(&id)
                    .arg(&text)
                    .invoke_async(&mut self.con())
                    .await
                    .map_err(script_failed("delete_room"))?;
                // 0: another node deleted it (or it changed) first.
                if done == 1 {
                    let accounts: Vec<&str> = room.involved().into_iter().collect();
                    if let Err(e) = self.index(&id, &accounts, false).await {
                        tracing::warn!(channel = %id, error = %e, "room index not trimmed");
                    }
                    removed.push(room);
                }
            }
        }
        Ok(removed)
    }
}

#[async_trait]
impl Presence for RedisStore {
    async fn session_up(&self, account: &str, device: &str, session: u64) -> Option<u64> {
        let k = self.keys();
        let member = Shared::session_member(account, device, &session.to_string());
        // Listed under this node first: should the node die right after,
        // its reaper finds the session (ending one that never went live is
        // a no-op).
        let listed: redis::RedisResult<()> = self
            .con()
            .sadd(k.node(&self.shared.node, "sessions"), &member)
            .await;
        let r: redis::RedisResult<Option<String>> = match listed {
            Ok(()) => {
                SCRIPTS
                    .session_up
                    .key(k.acct(account, "pres"))
                    .key(k.acct(account, "gone"))
                    .arg(device)
                    .arg(session)
                    .arg(&self.shared.node)
                    .invoke_async(&mut self.con())
                    .await
            }
            Err(e) => Err(e),
        };
        let old = match r {
            Ok(old) => old?,
            Err(e) => {
                tracing::warn!(%account, error = %e, "presence not recorded");
                return None;
            }
        };
        let (old_session, old_node) = old.split_once('|')?;
        let gone = Shared::session_member(account, device, old_session);
        let r: redis::RedisResult<()> = self.con().srem(k.node(old_node, "sessions"), gone).await;
        if let Err(e) = r {
            tracing::warn!(%account, error = %e, "replaced session not unlisted");
        }
        old_session.parse().ok()
    }

    async fn session_down(&self, account: &str, device: &str, session: u64, now: i64) {
        let k = self.keys();
        let r: redis::RedisResult<Option<String>> = SCRIPTS
            .session_down
            .key(k.acct(account, "pres"))
            .key(k.acct(account, "gone"))
            .arg(device)
            .arg(session)
            .arg(now)
            .invoke_async(&mut self.con())
            .await;
        let node = match r {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(%account, error = %e, "presence not cleared");
                return;
            }
        };
        if let Some(node) = node {
            let member = Shared::session_member(account, device, &session.to_string());
            let r: redis::RedisResult<()> =
                self.con().srem(k.node(&node, "sessions"), member).await;
            if let Err(e) = r {
                tracing::warn!(%account, error = %e, "ended session not unlisted");
            }
        }
    }

    async fn device_gone_since(&self, account: &str, device: &str) -> Option<i64> {
        self.con()
            .hget(self.keys().acct(account, "gone"), device)
            .await
            .ok()
            .flatten()
    }

    async fn forget_gone(&self, account: &str, device: &str, since: i64) {
        let r: redis::RedisResult<i64> = SCRIPTS
            .forget_gone
            .key(self.keys().acct(account, "gone"))
            .arg(device)
            .arg(since)
            .invoke_async(&mut self.con())
            .await;
        if let Err(e) = r {
            // Only memory is at stake: the record says the device is away,
            // which it still is.
            tracing::warn!(%account, error = %e, "gone-since record not dropped");
        }
    }

    async fn live_session(&self, account: &str, device: &str) -> Option<u64> {
        let v: Option<String> = self
            .con()
            .hget(self.keys().acct(account, "pres"), device)
            .await
            .ok()
            .flatten();
        self.shared.live_session_of(&v?)
    }

    async fn devices_of(&self, account: &str) -> Result<Vec<String>, StoreError> {
        let all: HashMap<String, String> = self
            .con()
            .hgetall(self.keys().acct(account, "pres"))
            .await
            .map_err(unavailable)?;
        let mut live: Vec<String> = all
            .into_iter()
            .filter(|(_, v)| self.shared.live_session_of(v).is_some())
            .map(|(d, _)| d)
            .collect();
        live.sort();
        Ok(live)
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
        let (_, r) = self
            .append_accounts(vec![(account.to_string(), vec![entry], None)], now)
            .await
            .pop()
            .ok_or_else(|| StoreError::Script("store script append returned nothing".into()))?;
        r?.pop()
            .ok_or_else(|| StoreError::Script("store script append returned nothing".into()))
    }

    /// One script per account, all sent at once (pipelined on the
    /// connection; on a cluster, each to its master).
    async fn append_many(
        &self,
        entries: Vec<(String, NewEntry)>,
        now: i64,
    ) -> Vec<(String, Result<Vec<Arc<LogEntry>>, StoreError>)> {
        let mut per: Vec<(String, Vec<NewEntry>)> = Vec::new();
        for (account, entry) in entries {
            match per.iter_mut().find(|(a, _)| *a == account) {
                Some((_, list)) => list.push(entry),
                None => per.push((account, vec![entry])),
            }
        }
        let parts = per.into_iter().map(|(a, list)| (a, list, None)).collect();
        self.append_accounts(parts, now).await
    }

    async fn read_offline(
        &self,
        account: &str,
        after: u64,
        to: u64,
    ) -> Result<Vec<Arc<LogEntry>>, StoreError> {
        // Bounded by maxOfflineEvents: read whole.
        let texts: Vec<String> = self
            .con()
            .lrange(self.keys().acct(account, "off"), 0, -1)
            .await
            .map_err(unavailable)?;
        let mut out = Vec::with_capacity(texts.len());
        for t in &texts {
            let e = decode_entry(t)
                .ok_or_else(|| StoreError::Corrupt("stored offline entry unreadable".into()))?;
            if e.seq > after && e.seq <= to {
                out.push(e);
            }
        }
        Ok(out)
    }

    async fn read_after(
        &self,
        account: &str,
        after: u64,
        max: usize,
    ) -> Result<Vec<Arc<LogEntry>>, StoreError> {
        let key = self.keys().acct(account, "log");
        // A woken session mostly lacks the last entry or two: the log's
        // tail, read with a plain LRANGE, has them whenever it reaches back
        // to the first one wanted (or is the whole log). Only a session
        // further behind needs the script, which finds where to start.
        let tail: Vec<String> = self
            .con()
            .lrange(&key, -READ_TAIL, -1)
            .await
            .map_err(unavailable)?;
        let seqs: Option<Vec<u64>> = tail.iter().map(|t| stored_seq(t)).collect();
        let seqs = seqs.ok_or_else(|| StoreError::Corrupt("stored log entry unreadable".into()))?;
        let whole = tail.len() < READ_TAIL as usize;
        let texts: Vec<String> = if whole || seqs.first().is_some_and(|s| *s <= after + 1) {
            tail.into_iter()
                .zip(seqs)
                .filter(|(_, s)| *s > after)
                .map(|(t, _)| t)
                .take(max.max(1))
                .collect()
        } else {
            SCRIPTS
                .read_after
                .key(key)
                .arg(after)
                .arg(max.max(1))
                .invoke_async(&mut self.con())
                .await
                .map_err(script_failed("read_after"))?
        };
        texts
            .iter()
            .map(|t| {
                decode_entry(t)
                    .ok_or_else(|| StoreError::Corrupt("stored log entry unreadable".into()))
            })
            .collect()
    }

    async fn log_bounds(&self, account: &str) -> Result<LogBounds, StoreError> {
        let k = self.keys();
        let (epoch, first, head, offline_trimmed): (String, u64, u64, u64) = SCRIPTS
            .bounds
            .key(k.acct(account, "epoch"))
            .key(k.acct(account, "head"))
            .key(k.acct(account, "log"))
            .key(k.acct(account, "otrim"))
            .arg(fresh_epoch())
            .invoke_async(&mut self.con())
            .await
            .map_err(script_failed("bounds"))?;
        let epoch = self.shared.log_epoch(epoch, account);
        Ok(LogBounds {
            epoch,
            first,
            head,
            offline_trimmed,
        })
    }

    async fn cursor(&self, account: &str, device: &str) -> u64 {
        self.con()
            .hget::<_, _, Option<u64>>(self.keys().acct(account, "cur"), device)
            .await
            .ok()
            .flatten()
            .unwrap_or(0)
    }

    async fn set_cursor(&self, account: &str, device: &str, seq: u64) {
        let r: redis::RedisResult<i64> = SCRIPTS
            .set_cursor
            .key(self.keys().acct(account, "cur"))
            .key(self.keys().acct(account, "off"))
            .arg(device)
            .arg(seq)
            .invoke_async(&mut self.con())
            .await;
        if let Err(e) = r {
            tracing::warn!(%account, error = %e, "cursor not saved");
        }
    }

    async fn offline_sent(&self, account: &str, now: i64) -> Result<u64, StoreError> {
        let window = self.limits.sending_window(now);
        let keys = [
            self.offline_sent_key(account, window),
            self.offline_sent_key(account, window - 1),
        ];
        let counts: Vec<Option<u64>> = self.con().mget(&keys).await.map_err(unavailable)?;
        Ok(counts.into_iter().flatten().sum())
    }

    async fn count_offline_sent(&self, account: &str, n: u64, now: i64) -> Result<(), StoreError> {
        let key = self.offline_sent_key(account, self.limits.sending_window(now));
        let mut pipe = redis::pipe();
        // Read until the end of the next window (see `offline_sent`).
        pipe.incr(&key, n)
            .ignore()
            .pexpire(&key, 2 * self.limits.offline_retention_ms)
            .ignore();
        self.con().run_in_slot(&pipe).await.map_err(unavailable)?;
        Ok(())
    }
}

/// The invocation of a retry-record script for `key`.
fn on_record<'a>(script: &'a Script, keys: &Keys, key: &RequestKey<'_>) -> ScriptInvocation<'a> {
    let mut inv = script.key(keys.requests(key.account, key.device, key.instance));
    inv.arg(key.id);
    inv
}

impl RedisStore {
    /// What request_begin.lua does but its full pass, as plain commands of
    /// one slot in one round trip: drops the answers just below the ack,
    /// claims the id if nobody did, and reads what is there otherwise.
    async fn claim_plainly(
        &self,
        key: &RequestKey<'_>,
        ack: Option<u64>,
    ) -> Result<Option<String>, redis::RedisError> {
        let k = self.keys().requests(key.account, key.device, key.instance);
        let mut pipe = redis::pipe();
        if let Some(a) = ack {
            let ids: Vec<u64> = (a.saturating_sub(7)..=a).collect();
            pipe.hdel(&k, ids);
        }
        pipe.hset_nx(&k, key.id, "")
            .pexpire(&k, self.limits.retention_ms)
            .hget(&k, key.id);
        let replies = self.con().run_in_slot(&pipe).await?;
        let mut it = replies.into_iter().skip(usize::from(ack.is_some()));
        let claimed: i64 = redis::from_redis_value(&it.next().unwrap_or(redis::Value::Nil))?;
        if claimed == 1 {
            return Ok(None);
        }
        let _expiry = it.next();
        // Nil only if the record vanished in between: treat it as fresh.
        Ok(redis::from_redis_value(
            &it.next().unwrap_or(redis::Value::Nil),
        )?)
    }
}

#[async_trait]
impl Requests for RedisStore {
    /// Plain commands in one round trip, but for every 64th request with
    /// an ack: that one runs the script, whose full pass drops any answer
    /// an ack jumped over (scripts cost Redis far more than commands).
    async fn request_begin(
        &self,
        key: &RequestKey<'_>,
        ack: Option<u64>,
        _now: i64,
    ) -> RequestSlot {
        let r = match ack {
            Some(a) if key.id % 64 == 0 => {
                on_record(&SCRIPTS.request_begin, self.keys(), key)
                    .arg(a)
                    .arg(self.limits.retention_ms)
                    .invoke_async::<Option<String>>(&mut self.con())
                    .await
            }
            _ => self.claim_plainly(key, ack).await,
        };
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

    /// Not waited for: sent with other such writes (see `deferred.rs`). The
    /// expiry is set again: should the record have expired meanwhile, the
    /// answer alone comes back, and goes with it.
    async fn request_end(&self, key: &RequestKey<'_>, result: Arc<str>) {
        let k = self.keys().requests(key.account, key.device, key.instance);
        let mut pipe = redis::pipe();
        pipe.hset(&k, key.id, &*result)
            .pexpire(&k, self.limits.retention_ms);
        self.deferred.send(pipe, false, "retry record");
    }
}

#[async_trait]
impl Timers for RedisStore {
    async fn schedule(&self, at: i64, timer: Timer) {
        let bucket = timer_bucket(&timer);
        self.expect_due(std::iter::once((at, bucket)));
        let key = self.keys().bucket(bucket, "timers");
        let r: redis::RedisResult<i64> = self.con().zadd(key, timer_member(at, &timer), at).await;
        if let Err(e) = r {
            tracing::error!(?timer, error = %e, "timer not scheduled");
        }
    }

    /// Asks the buckets that may hold due timers (see
    /// [`FULL_TIMER_POLL_MS`]) whether one is (one pipelined read), then
    /// leases the due ones of the buckets that have some.
    async fn take_due(&self, now: i64, max: usize) -> Vec<(i64, Timer)> {
        let k = self.keys();
        let buckets = self.buckets_due(now);
        let mut pipe = redis::pipe();
        for b in &buckets {
            pipe.zrangebyscore_limit(k.bucket(*b, "timers"), "-inf", now, 0, 1);
        }
        let heads: Vec<Vec<String>> = match self.con().run(&pipe).await {
            Ok(h) => h,
            Err(_) => return Vec::new(),
        };
        let mut out = Vec::new();
        for (&b, head) in buckets.iter().zip(&heads) {
            if head.is_empty() || out.len() >= max {
                continue;
            }
            let r: redis::RedisResult<Vec<String>> = SCRIPTS
                .take_due
                .key(k.bucket(b, "timers"))
                .arg(now)
                .arg(max - out.len())
                .arg(TIMER_LEASE_MS)
                .invoke_async(&mut self.con())
                .await;
            out.extend(
                r.unwrap_or_default()
                    .iter()
                    .filter_map(|m| parse_timer_member(m)),
            );
        }
        out.sort_by_key(|(at, _)| *at);
        out
    }

    async fn timer_done(&self, at: i64, timer: &Timer) {
        let key = self.keys().bucket(timer_bucket(timer), "timers");
        let r: redis::RedisResult<i64> = self.con().zrem(key, timer_member(at, timer)).await;
        if let Err(e) = r {
            tracing::warn!(?timer, error = %e, "timer not cleared; it will run again");
        }
    }
}

#[async_trait]
impl PushTokens for RedisStore {
    async fn set_push_token(&self, account: &str, token: PushToken) -> Result<(), StoreError> {
        let key = self.keys().acct(account, "push");
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
        let key = self.keys().acct(account, "push");
        self.con().hdel(key, device).await.map_err(unavailable)
    }

    async fn push_tokens(&self, account: &str) -> Result<Vec<PushToken>, StoreError> {
        let all: std::collections::BTreeMap<String, String> = self
            .con()
            .hgetall(self.keys().acct(account, "push"))
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
        let k = self.keys();
        let mut pipe = redis::pipe();
        pipe.get(k.global("logsize"));
        for b in 0..BUCKETS {
            pipe.scard(k.bucket(b, "rooms"))
                .zcard(k.bucket(b, "timers"));
        }
        let r: redis::RedisResult<Vec<Option<i64>>> = self.con().run(&pipe).await;
        let Ok(v) = r else {
            return StoreStats::default();
        };
        let logs = v.first().copied().flatten().unwrap_or(0)
            + self.shared.log_delta.load(Ordering::Relaxed);
        let counts: Vec<usize> = v[1..]
            .iter()
            .map(|c| c.unwrap_or(0).max(0) as usize)
            .collect();
        StoreStats {
            rooms: counts.iter().step_by(2).sum(),
            log_entries: logs.max(0) as usize,
            timers: counts.iter().skip(1).step_by(2).sum(),
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
            .publish(self.keys().global("signals"), text)
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
