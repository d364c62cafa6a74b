//! Where state lives. The service talks to the [`Store`] trait only, so the
//! memory store (default) and a Redis store (cluster mode) are
//! interchangeable without touching the rules or the service.

pub mod memory;
pub mod model;

use async_trait::async_trait;
use std::sync::Arc;

use crate::protocol::Failure;
pub use model::{Invitation, InviteState, LogBody, LogEntry, NewEntry, Room, RoomMember};

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
    /// Store this room (under its channelId; a new room also takes its name).
    Write(Room),
}

/// The callback run inside an atomic update. It may run more than once
/// (a Redis store retries on conflict), so it must be pure.
pub type RoomFn<'a> = &'a mut (dyn FnMut(Option<&Room>) -> Tx + Send);

/// Retention of the per-account event logs.
#[derive(Debug, Clone, Copy)]
pub struct LogLimits {
    /// Entries kept per account at most.
    pub max_events: usize,
    /// How long entries not kept for offline delivery stay (for resume).
    pub retention_ms: i64,
}

impl Default for LogLimits {
    fn default() -> Self {
        LogLimits {
            max_events: 1000,
            retention_ms: 120_000,
        }
    }
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Runs `f` atomically on one room: nobody else changes that room (or,
    /// for [`RoomKey::Name`], claims that name) between its read and write.
    async fn update_room(&self, key: RoomKey<'_>, now: i64, f: RoomFn<'_>) -> Result<(), Failure>;
    /// One room by id (any state until forgotten) or by name (valid only).
    async fn get_room(&self, key: RoomKey<'_>, now: i64) -> Result<Option<Room>, Failure>;
    /// The valid rooms `account` is a member of.
    async fn rooms_of(&self, account: &str, now: i64) -> Result<Vec<Room>, Failure>;
    /// Deletes forgettable rooms; returns how many.
    async fn sweep(&self, now: i64) -> Result<usize, Failure>;

    /// Marks a session of a device live. Returns the id of a session of the
    /// same device it replaced, if any.
    async fn session_up(&self, account: &str, device: &str, session: u64) -> Option<u64>;
    /// Marks a session gone (no-op when a newer session replaced it).
    async fn session_down(&self, account: &str, device: &str, session: u64);
    /// Whether any device of the account is live.
    async fn account_online(&self, account: &str) -> bool;
    /// Whether this device of the account is live.
    async fn device_online(&self, account: &str, device: &str) -> bool;

    /// Appends to the account's log; returns the entry with its sequence.
    async fn append(
        &self,
        account: &str,
        entry: NewEntry,
        now: i64,
    ) -> Result<Arc<LogEntry>, Failure>;
    /// Entries with seq > `after`, oldest first, at most `max`.
    async fn read_after(
        &self,
        account: &str,
        after: u64,
        max: usize,
    ) -> Result<Vec<Arc<LogEntry>>, Failure>;
    /// (first retained seq, last seq); (head+1, head) when the log is empty.
    async fn log_bounds(&self, account: &str) -> (u64, u64);
    /// The last seq this device was given (0 when never seen).
    async fn cursor(&self, account: &str, device: &str) -> u64;
    async fn set_cursor(&self, account: &str, device: &str, seq: u64);
}
