//! Where state lives. The service talks to the [`Store`] trait only, so the
//! memory store (default) and a Redis store (cluster mode) are
//! interchangeable without touching the rules or the service. `Store` is
//! the sum of one trait per concern ([`Rooms`], [`Presence`], [`Logs`],
//! [`Requests`], [`Timers`], [`PushTokens`], [`Stats`], [`Signals`]); a
//! store fails with a [`StoreError`], which the engine turns into a NIM code
//! (`engine::store_failure`).

pub mod memory;
pub use nim_signaling_core::model;
pub mod redis;

use async_trait::async_trait;
use std::sync::Arc;

pub use model::{
    Invitation, InviteState, LogBody, LogEntry, NewEntry, PushToken, Room, RoomMember, Timer,
    MAX_DELIVERED,
};
use nim_signaling_protocol::Failure;

/// Milliseconds since the Unix epoch: the clock every store and the
/// engine share.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// How a room is addressed in an update.
#[derive(Debug, Clone, Copy)]
pub enum RoomKey<'a> {
    /// By channelId: the room whatever its state, until it is forgotten.
    Id(&'a str),
    /// By channelName: the valid room holding that name, if any. Used to
    /// create rooms, so that two creators of one name cannot both succeed.
    Name(&'a str),
}

/// The decision of an atomic room update.
pub enum Tx {
    /// Change nothing.
    Abort,
    /// Store this room (under its channelId; a new room also takes its
    /// name), schedule these timers and append these events (recipient,
    /// entry, in order), as one step: an update that is stored has its
    /// timers (see [`Timers::schedule`]) and its events reach their logs,
    /// even if the node dies right after the write (the Redis store keeps
    /// them in the room's outbox until they are forwarded; docs/CLUSTER.md).
    Write {
        room: Room,
        timers: Vec<(i64, Timer)>,
        events: Vec<(String, NewEntry)>,
    },
}

/// What became of each account's events, per account in the order of its
/// first event: its entries with their sequences, or why none were
/// appended (see [`Logs::append_many`]).
pub type Appended = Vec<(String, Result<Vec<Arc<LogEntry>>, StoreError>)>;

/// The callback run inside an atomic update. It may run more than once
/// (a Redis store retries on conflict), so it must be pure.
pub type RoomFn<'a> = &'a mut (dyn FnMut(Option<&Room>) -> Tx + Send);

/// Retention of the per-account event logs.
///
/// An account has two lists. Its log holds every event, for devices that
/// resume a stream (bounded by `max_events` and `retention_ms`, whatever
/// the event). Its offline list holds the events kept for offline delivery
/// (offlineEnabled, appended while no device was online), for devices that
/// log in afresh; it has bounds of its own (`max_offline`,
/// `offline_retention_ms`), so that no amount of other traffic to the
/// account (CONTROLs from anyone in one of its rooms) pushes a kept
/// invitation out. Dropping one because the offline list is full is
/// reported to the next fresh login (`LogBounds::offline_trimmed`).
#[derive(Debug, Clone, Copy)]
pub struct LogLimits {
    /// Entries kept per account's log at most.
    pub max_events: usize,
    /// How long an entry stays in the log (for resume).
    pub retention_ms: i64,
    /// How long an entry kept for offline delivery waits for a login.
    pub offline_retention_ms: i64,
    /// Entries kept per account's offline list at most.
    pub max_offline: usize,
}

impl Default for LogLimits {
    fn default() -> Self {
        LogLimits {
            max_events: 1000,
            retention_ms: 120_000,
            offline_retention_ms: 7_200_000,
            max_offline: 100,
        }
    }
}

impl LogLimits {
    /// How long an account's log state (its sequence head and its devices'
    /// cursors) is kept once nothing is left in it, no device is online and
    /// nobody has looked at it. After that it is forgotten, and a device
    /// resuming into it is told `stateLost` (its sequence numbers name a
    /// log that is no longer there).
    pub fn idle_prune_ms(&self) -> i64 {
        self.retention_ms.max(IDLE_PRUNE_FLOOR_MS)
    }

    /// The sending window `now` falls in. Windows are as long as the
    /// offline retention, and no entry is kept for offline delivery longer
    /// than that, so every entry a sender has in offline lists now was
    /// counted in this window or the one before: their sum bounds what
    /// the sender holds (`maxOfflineEventsPerSender`) without the stores
    /// following each entry out of every list.
    pub fn sending_window(&self, now: i64) -> i64 {
        now.div_euclid(self.offline_retention_ms.max(1))
    }
}

/// The least time an emptied, unwatched log is kept: a login reads a log's
/// bounds a moment before it marks its device live, and that moment must
/// never see the log forgotten under it.
const IDLE_PRUNE_FLOOR_MS: i64 = 60_000;

/// Where an account's log stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogBounds {
    /// Names this incarnation of the log. Sequence numbers only compare
    /// within one epoch: a store that lost its state (a restarted memory
    /// store, a flushed Redis) starts a new epoch, so a device asking to
    /// resume from an old one is told to resync instead of being handed
    /// unrelated events that happen to have larger numbers.
    pub epoch: String,
    /// The oldest seq still kept; `head + 1` when nothing is kept.
    pub first: u64,
    /// The last seq handed out.
    pub head: u64,
    /// The largest seq of an entry dropped from the offline list because
    /// it was full (0: none): a device whose cursor is below it missed an
    /// offline event, and its fresh login says so (`resync: trimmed`).
    pub offline_trimmed: u64,
}

impl LogBounds {
    /// Why a device that last saw `seq` of `epoch` cannot resume from it,
    /// or None when every event after it is still here.
    pub fn resume_gap(&self, epoch: &str, seq: u64) -> Option<ResyncReason> {
        if epoch != self.epoch || seq > self.head {
            Some(ResyncReason::StateLost)
        } else if seq + 1 < self.first {
            Some(ResyncReason::Trimmed)
        } else {
            None
        }
    }
}

/// One request of one client instance, as the retry record knows it.
#[derive(Debug, Clone, Copy)]
pub struct RequestKey<'a> {
    pub account: &'a str,
    pub device: &'a str,
    /// The client instance (login's `instance`); a new instance of the same
    /// device starts a fresh record.
    pub instance: &'a str,
    pub id: u64,
}

/// What the retry record says about a request.
#[derive(Debug, Clone, PartialEq)]
pub enum RequestSlot {
    /// First time seen: now claimed; apply it, then [`Requests::request_end`].
    Fresh,
    /// An earlier copy is being applied right now (its connection died
    /// while it ran); its answer will be recorded.
    Running,
    /// Already applied; this was its answer.
    Done(Arc<str>),
}

/// Sizes of what a store holds (gauges for `/metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Rooms remembered, valid or not.
    pub rooms: usize,
    /// Events held in all accounts' logs: queued for devices that have not
    /// taken them yet, kept for offline delivery or for resume.
    pub log_entries: usize,
    /// Timers waiting to run.
    pub timers: usize,
}

/// Why a session could not continue its event stream where it left off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResyncReason {
    /// Events after the device's last seq were dropped from the log
    /// (retention or the count cap) before it came back for them.
    Trimmed,
    /// The server no longer has the log the device's seq belongs to.
    StateLost,
}

impl ResyncReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ResyncReason::Trimmed => "trimmed",
            ResyncReason::StateLost => "stateLost",
        }
    }
}

/// Why a store could not do what it was asked. Not a NIM code: which code
/// a client is answered with is the engine's decision, made in one place
/// (`engine::store_failure`). Each variant holds the whole message, so the
/// text a client or an operator reads does not depend on that mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The store could not be reached or did not answer: Redis down, an
    /// I/O error or a timeout on the way, a command it refused.
    Unavailable(String),
    /// What the store holds does not decode (a stored room or log entry
    /// written by another version, or damaged).
    Corrupt(String),
    /// What was to be stored does not encode (a room, log entry or push
    /// token serde_json refuses). Either store can return this.
    Encode(String),
    /// A store script ran and failed inside Redis (not the way to it).
    Script(String),
    /// An atomic room update kept losing to other writers of the room
    /// (every attempt conflicted); the caller may try again.
    Contended,
    /// The store's configuration is unusable (a Redis URL that does not
    /// parse). Only from connecting, never from a running store.
    Config(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Unavailable(m)
            | StoreError::Corrupt(m)
            | StoreError::Encode(m)
            | StoreError::Script(m)
            | StoreError::Config(m) => f.write_str(m),
            StoreError::Contended => {
                f.write_str("the room changed too often to be updated; try again")
            }
        }
    }
}

impl std::error::Error for StoreError {}

impl StoreError {
    /// A log body that does not encode (`LogBody::encode` answers with a
    /// NIM failure of its own; only its message is kept).
    pub(crate) fn encoding(f: Failure) -> Self {
        StoreError::Encode(f.message)
    }
}

/// Rooms and the indexes kept with them (by name, by account, for the
/// sweeper): the state the rules run on. Kept apart because it is the one
/// part updated atomically (see [`Rooms::update_room`]).
#[async_trait]
pub trait Rooms: Send + Sync {
    /// The channelId for a new room named `name` (None: named by its id),
    /// made from `unique` (32 hex digits, unique to this request), for a
    /// room mostly about account `near` (the callee of a 1:1 call), if
    /// any. A store may place information in it (the Redis store puts the
    /// room in the slot of its name, or of `near`'s keys); by default it
    /// is `unique`.
    fn room_id(&self, _name: Option<&str>, _near: Option<&str>, unique: &str) -> String {
        unique.to_string()
    }
    /// Runs `f` atomically on one room: nobody else changes that room (or,
    /// for [`RoomKey::Name`], claims that name) between its read and write.
    /// Returns what became of the written update's events (empty when `f`
    /// aborted); an error means nothing was written. An account's events
    /// that could not be appended after the write (or all of them, when the
    /// node dies there) are appended later by a store shared by nodes: its
    /// `Err` in [`Appended`] says only that they are not in the log yet.
    async fn update_room(
        &self,
        key: RoomKey<'_>,
        now: i64,
        f: RoomFn<'_>,
    ) -> Result<Appended, StoreError>;
    /// One room by id (any state until forgotten) or by name (valid only).
    async fn get_room(&self, key: RoomKey<'_>, now: i64) -> Result<Option<Room>, StoreError>;
    /// The valid rooms `account` is a member of, oldest first (ties by id,
    /// so every store and every node lists them in one order).
    async fn rooms_of(&self, account: &str, now: i64) -> Result<Vec<Room>, StoreError> {
        let mut rooms = self.rooms_involving(account).await?;
        rooms.retain(|r| r.is_valid(now) && r.member(account).is_some());
        rooms.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then(a.channel_id.cmp(&b.channel_id))
        });
        Ok(rooms)
    }
    /// The rooms (any state, until forgotten) `account` is a member of, or
    /// that keep an invitation from or to it (see [`Room::involved`]).
    async fn rooms_involving(&self, account: &str) -> Result<Vec<Room>, StoreError>;
    /// One page of the rooms still remembered (valid or not; those the
    /// sweeper may already delete are left out), in channelId order, after
    /// `cursor` (the `next` of the page before; None: from the start).
    /// Returns the page and the cursor of the next one (None: this was the
    /// last). Every room that exists from the first page to the last is
    /// listed exactly once; a page may hold fewer than `limit` rooms before
    /// the end. For operators (the admin API): it may read every room id.
    async fn list_rooms(
        &self,
        cursor: Option<&str>,
        limit: usize,
        now: i64,
    ) -> Result<(Vec<Room>, Option<String>), StoreError>;
    /// Deletes forgettable rooms; returns them as they were when deleted.
    /// Stores shared by nodes return each room to the one node that deleted
    /// it, so that its `room.expired` webhook goes out once. (The memory
    /// store also drops retry records past the log retention here.)
    async fn sweep(&self, now: i64) -> Result<Vec<Room>, StoreError>;
}

/// Which devices have a live session, and on which session: what logins,
/// kicks, reachability (online/offline) and the grace after a disconnect
/// rest on. Kept apart from the logs because it changes with connections,
/// not with events. Recording it is best effort (a store that cannot
/// record presence logs it); reading it is not: a read that fails says so,
/// so that nobody is answered "offline, kept for later" (10201) because a
/// store could not tell.
#[async_trait]
pub trait Presence: Send + Sync {
    /// Marks a session of a device live. Returns the id of a session of the
    /// same device it replaced, if any.
    async fn session_up(&self, account: &str, device: &str, session: u64) -> Option<u64>;
    /// Marks a session gone at `now` (no-op when a newer session replaced it).
    async fn session_down(&self, account: &str, device: &str, session: u64, now: i64);
    /// Since when the device has had no live session; None while it has one
    /// (or when it was never seen).
    async fn device_gone_since(&self, account: &str, device: &str) -> Option<i64>;
    /// The device's absence that began at `since` has been dealt with (its
    /// memberships reviewed): its record goes, unless a later absence
    /// replaced it.
    async fn forget_gone(&self, account: &str, device: &str, since: i64);
    /// The id of the device's live session, on whichever node it is.
    async fn live_session(&self, account: &str, device: &str) -> Option<u64>;
    /// Whether any device of the account is live.
    async fn account_online(&self, account: &str) -> Result<bool, StoreError> {
        Ok(!self.devices_of(account).await?.is_empty())
    }
    /// The account's live devices.
    async fn devices_of(&self, account: &str) -> Result<Vec<String>, StoreError>;
}

/// The per-account event logs and each device's cursor in them: delivery
/// rests on these (a session reads its log from its cursor), never on a
/// wake-up arriving. Kept apart because retention, epochs and resume are
/// their own concern (see [`LogLimits`], [`LogBounds`]).
#[async_trait]
pub trait Logs: Send + Sync {
    /// Appends to the account's log; returns the entry with its sequence.
    async fn append(
        &self,
        account: &str,
        entry: NewEntry,
        now: i64,
    ) -> Result<Arc<LogEntry>, StoreError>;
    /// Appends each entry to its account's log, in the order given (the
    /// entries of one account keep their order). Returns, per account in
    /// the order of its first entry, what its log became: its entries with
    /// their sequences, or why none were appended. A store shared by nodes
    /// also wakes the other nodes that hold a session of each account.
    async fn append_many(&self, entries: Vec<(String, NewEntry)>, now: i64) -> Appended {
        let mut out: Appended = Vec::new();
        for (account, entry) in entries {
            let i = match out.iter().position(|(a, _)| *a == account) {
                Some(i) => i,
                None => {
                    out.push((account.clone(), Ok(Vec::new())));
                    out.len() - 1
                }
            };
            // An account whose append failed gets no later ones: they
            // would land after a gap.
            if let Ok(list) = &mut out[i].1 {
                match self.append(&account, entry, now).await {
                    Ok(e) => list.push(e),
                    Err(e) => out[i].1 = Err(e),
                }
            }
        }
        out
    }
    /// The entries of the account's offline list (see [`LogLimits`]) with
    /// seq in (`after`, `to`], oldest first.
    async fn read_offline(
        &self,
        account: &str,
        after: u64,
        to: u64,
    ) -> Result<Vec<Arc<LogEntry>>, StoreError>;
    /// Entries with seq > `after`, oldest first, at most `max`.
    async fn read_after(
        &self,
        account: &str,
        after: u64,
        max: usize,
    ) -> Result<Vec<Arc<LogEntry>>, StoreError>;
    /// Where the account's log stands; see [`LogBounds`].
    async fn log_bounds(&self, account: &str) -> Result<LogBounds, StoreError>;
    /// The last seq this device was given (0 when never seen).
    async fn cursor(&self, account: &str, device: &str) -> u64;
    /// Records the last seq this device was given; a cursor only moves
    /// forward.
    async fn set_cursor(&self, account: &str, device: &str, seq: u64);
    /// How many events `account` sent that were kept for offline delivery
    /// (in other accounts' offline lists) in the sending window of `now`
    /// and the one before (see [`LogLimits::sending_window`]).
    async fn offline_sent(&self, account: &str, now: i64) -> Result<u64, StoreError>;
    /// Counts `n` more events `account` sent that were kept for offline
    /// delivery, in the sending window of `now`.
    async fn count_offline_sent(&self, account: &str, n: u64, now: i64) -> Result<(), StoreError>;
}

/// The retry records: a request sent again after a reconnect (same client
/// instance, same id) gets the first copy's answer instead of being applied
/// twice. Kept apart because it is about requests, not about any room.
#[async_trait]
pub trait Requests: Send + Sync {
    /// Claims a request for applying, or returns the record of an earlier
    /// copy of it. `ack`: the client has every answer up to this id, so
    /// their records may go. Records also go after the log retention.
    async fn request_begin(&self, key: &RequestKey<'_>, ack: Option<u64>, now: i64) -> RequestSlot;
    /// Records the answer of a request claimed by `request_begin`.
    async fn request_end(&self, key: &RequestKey<'_>, result: Arc<str>);
}

/// The timers the rules ask for (invitation timeouts, the grace after a
/// disconnect, ...). Kept apart because a store shared by nodes must make
/// sure each timer runs, and runs even when its node dies.
#[async_trait]
pub trait Timers: Send + Sync {
    /// Asks for `timer` to run at `at` (ms). Scheduling one that is already
    /// waiting for the same time is a no-op.
    async fn schedule(&self, at: i64, timer: Timer);
    /// Hands out up to `max` timers due at `now`, soonest first, with the
    /// time each was scheduled for. A timer is handed out once, unless its
    /// taker fails to report it done ([`Timers::timer_done`]) within a lease
    /// (a store shared by nodes hands it to another node then: a timer
    /// whose node died still runs; handlers re-check state, so a second run
    /// changes nothing).
    async fn take_due(&self, now: i64, max: usize) -> Vec<(i64, Timer)>;
    /// The timer handed out by `take_due` has run.
    async fn timer_done(&self, _at: i64, _timer: &Timer) {}
}

/// The devices' push tokens, for waking an offline callee through a push
/// gateway. Kept apart: only invitations read them, and a failure here
/// never fails the call itself.
#[async_trait]
pub trait PushTokens: Send + Sync {
    /// Records the push token of `token.device_id` (replacing that
    /// device's earlier one), evicting per [`model::push_token_to_evict`].
    async fn set_push_token(&self, account: &str, token: PushToken) -> Result<(), StoreError>;
    /// Removes the push token of a device (no-op when it has none).
    async fn remove_push_token(&self, account: &str, device: &str) -> Result<(), StoreError>;
    /// The account's push tokens, ordered by deviceId.
    async fn push_tokens(&self, account: &str) -> Result<Vec<PushToken>, StoreError>;
}

/// What operators read about the store itself: its sizes (`/metrics`) and
/// whether it can serve (`/healthz`). Kept apart from the state the rules
/// use.
#[async_trait]
pub trait Stats: Send + Sync {
    /// What the store holds now, for the metrics.
    async fn stats(&self) -> StoreStats;
    /// Whether this node can serve: Err says what is broken (for
    /// `/healthz`).
    async fn health(&self) -> Result<(), String> {
        Ok(())
    }
}

/// The nodes sharing a store talking to each other (and a store telling
/// its own node what happened to it); see [`Signal`]. The memory store has
/// no other nodes: it keeps the defaults.
#[async_trait]
pub trait Signals: Send + Sync {
    /// Tells the other nodes sharing this store (none for the memory store).
    async fn broadcast(&self, _signal: Signal) {}
    /// What other nodes tell this one, and what this node must do about the
    /// store itself; handed out once, to the server (None: nothing ever
    /// comes).
    fn signals(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<Signal>> {
        None
    }
}

/// Everything the service needs of a store; what `Arc<dyn Store>` holds.
/// Implemented for every type that implements the parts, so a store
/// implements [`Rooms`], [`Presence`], [`Logs`], [`Requests`], [`Timers`],
/// [`PushTokens`], [`Stats`] and [`Signals`], never this. The parts'
/// methods are callable on a `dyn Store` (and on any `T: Store`) without
/// importing the parts; only a concrete store (`MemoryStore`) needs them in
/// scope.
pub trait Store:
    Rooms + Presence + Logs + Requests + Timers + PushTokens + Stats + Signals + 'static
{
}

impl<T> Store for T where
    T: Rooms + Presence + Logs + Requests + Timers + PushTokens + Stats + Signals + 'static
{
}

/// What nodes sharing a store tell each other, and what a store tells its
/// own node. Delivery never rests on these: a lost wake-up delays an event
/// until the next one, it never loses it (sessions read their logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// The account's log grew: its sessions here should read it.
    Wake(String),
    /// Signals may have been missed (the subscription was re-made): every
    /// session here should read its log.
    WakeAll,
    /// A newer login of the device replaced this session.
    Kick { account: String, session: u64 },
    /// The administrator ended this session (docs/ADMIN.md): unlike
    /// [`Signal::Kick`] no newer login took over, so the device counts as
    /// gone.
    Evict { account: String, session: u64 },
    /// The store lost its state (a flushed or restarted Redis): every
    /// session here must end so that its client resyncs.
    StateLost,
    /// The session of this device ended at `at` on a node that died: its
    /// memberships and invitations are reviewed after the grace, as for a
    /// session that ended here.
    DeviceGone {
        account: String,
        device: String,
        at: i64,
    },
}

/// The ids of one page of [`Rooms::list_rooms`]: the first `limit` of
/// `ids` (any order) after `cursor`, sorted, and the next cursor (the
/// page's last id) when more follow. The cursor is opaque to callers.
pub fn page_after(
    mut ids: Vec<String>,
    cursor: Option<&str>,
    limit: usize,
) -> (Vec<String>, Option<String>) {
    if let Some(c) = cursor {
        ids.retain(|id| id.as_str() > c);
    }
    ids.sort_unstable();
    let more = ids.len() > limit;
    ids.truncate(limit);
    let next = if more { ids.last().cloned() } else { None };
    (ids, next)
}
