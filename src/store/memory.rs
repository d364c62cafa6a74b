//! The default store: everything in this process, in sharded maps, so that
//! operations on different rooms or accounts never wait for each other.
//!
//! Lock order (to rule out deadlock): names -> rooms -> account_rooms, and
//! logs -> presence. No code holds a shard of one map while locking a map
//! earlier in its order.

use async_trait::async_trait;
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use super::model::{LogEntry, NewEntry, Room};
use super::{LogLimits, RoomFn, RoomKey, Store, Tx};
use crate::protocol::Failure;

#[derive(Default)]
struct AccountLog {
    entries: VecDeque<Arc<LogEntry>>,
    /// Last sequence handed out.
    head: u64,
    /// Per device: last sequence given to it.
    cursors: HashMap<String, u64>,
}

pub struct MemoryStore {
    rooms: DashMap<String, Room>,
    /// channelName -> channelId of the room that last took the name. The
    /// name is free when that room is no longer valid.
    names: DashMap<String, String>,
    /// account -> channelIds of rooms it is a member of.
    account_rooms: DashMap<String, HashSet<String>>,
    /// account -> live (device, session id) pairs.
    presence: DashMap<String, Vec<(String, u64)>>,
    logs: DashMap<String, AccountLog>,
    limits: LogLimits,
}

impl MemoryStore {
    pub fn new(limits: LogLimits) -> Self {
        MemoryStore {
            rooms: DashMap::new(),
            names: DashMap::new(),
            account_rooms: DashMap::new(),
            presence: DashMap::new(),
            logs: DashMap::new(),
            limits,
        }
    }

    fn online(&self, account: &str) -> bool {
        self.presence
            .get(account)
            .map(|l| !l.is_empty())
            .unwrap_or(false)
    }

    /// Keeps account -> rooms in step with a room's member list.
    fn reindex(&self, old: Option<&Room>, new: &Room) {
        let before: HashSet<&str> = old.map(|r| r.accounts().collect()).unwrap_or_default();
        let after: HashSet<&str> = if new.closed {
            HashSet::new()
        } else {
            new.accounts().collect()
        };
        for gone in before.difference(&after) {
            if let Some(mut set) = self.account_rooms.get_mut(*gone) {
                set.remove(&new.channel_id);
            }
            self.account_rooms.remove_if(*gone, |_, s| s.is_empty());
        }
        for came in after.difference(&before) {
            self.account_rooms
                .entry(came.to_string())
                .or_default()
                .insert(new.channel_id.clone());
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new(LogLimits::default())
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn update_room(&self, key: RoomKey<'_>, now: i64, f: RoomFn<'_>) -> Result<(), Failure> {
        match key {
            RoomKey::Id(id) => match self.rooms.entry(id.to_string()) {
                Entry::Occupied(mut o) => {
                    if let Tx::Write(room) = f(Some(o.get())) {
                        self.reindex(Some(o.get()), &room);
                        *o.get_mut() = room;
                    }
                }
                Entry::Vacant(v) => {
                    if let Tx::Write(room) = f(None) {
                        self.reindex(None, &room);
                        v.insert(room);
                    }
                }
            },
            RoomKey::Name(name) => {
                let mut slot = self.names.entry(name.to_string()).or_default();
                let holder = self
                    .rooms
                    .get(slot.value().as_str())
                    .filter(|r| r.is_valid(now))
                    .map(|r| r.clone());
                if let Tx::Write(room) = f(holder.as_ref()) {
                    *slot.value_mut() = room.channel_id.clone();
                    self.reindex(None, &room);
                    self.rooms.insert(room.channel_id.clone(), room);
                }
            }
        }
        Ok(())
    }

    async fn get_room(&self, key: RoomKey<'_>, now: i64) -> Result<Option<Room>, Failure> {
        Ok(match key {
            RoomKey::Id(id) => self.rooms.get(id).map(|r| r.clone()),
            RoomKey::Name(name) => {
                let id = self.names.get(name).map(|v| v.clone());
                id.and_then(|id| self.rooms.get(&id).map(|r| r.clone()))
                    .filter(|r| r.is_valid(now))
            }
        })
    }

    async fn rooms_of(&self, account: &str, now: i64) -> Result<Vec<Room>, Failure> {
        let ids: Vec<String> = self
            .account_rooms
            .get(account)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        let mut rooms: Vec<Room> = ids
            .iter()
            .filter_map(|id| self.rooms.get(id).map(|r| r.clone()))
            .filter(|r| r.is_valid(now) && r.member(account).is_some())
            .collect();
        rooms.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then(a.channel_id.cmp(&b.channel_id))
        });
        Ok(rooms)
    }

    async fn sweep(&self, now: i64) -> Result<usize, Failure> {
        let mut gone: Vec<Room> = Vec::new();
        self.rooms.retain(|_, r| {
            if r.is_forgettable(now) {
                gone.push(r.clone());
                false
            } else {
                true
            }
        });
        for r in &gone {
            self.names.remove_if(&r.name, |_, id| *id == r.channel_id);
            for account in r.accounts() {
                if let Some(mut set) = self.account_rooms.get_mut(account) {
                    set.remove(&r.channel_id);
                }
                self.account_rooms.remove_if(account, |_, s| s.is_empty());
            }
        }
        Ok(gone.len())
    }

    async fn session_up(&self, account: &str, device: &str, session: u64) -> Option<u64> {
        let mut list = self.presence.entry(account.to_string()).or_default();
        let replaced = list
            .iter()
            .position(|(d, _)| d == device)
            .map(|i| list.remove(i).1);
        list.push((device.to_string(), session));
        replaced
    }

    async fn session_down(&self, account: &str, device: &str, session: u64) {
        if let Some(mut list) = self.presence.get_mut(account) {
            list.retain(|(d, s)| !(d == device && *s == session));
        }
        self.presence.remove_if(account, |_, l| l.is_empty());
    }

    async fn account_online(&self, account: &str) -> bool {
        self.online(account)
    }

    async fn device_online(&self, account: &str, device: &str) -> bool {
        self.presence
            .get(account)
            .map(|l| l.iter().any(|(d, _)| d == device))
            .unwrap_or(false)
    }

    async fn append(
        &self,
        account: &str,
        entry: NewEntry,
        now: i64,
    ) -> Result<Arc<LogEntry>, Failure> {
        let encoded: Arc<str> = match &entry.body {
            super::LogBody::Event(e) => serde_json::to_string(e),
            super::LogBody::Members(m) => serde_json::to_string(m),
        }
        .map_err(|e| Failure::new(crate::protocol::codes::INTERNAL, e.to_string()))?
        .into();
        let mut log = self.logs.entry(account.to_string()).or_default();
        let offline = entry.offline_enabled && !self.online(account);
        log.head += 1;
        let e = Arc::new(LogEntry {
            seq: log.head,
            kind: entry.kind,
            exclude_device: entry.exclude_device,
            offline,
            time: now,
            body: entry.body,
            encoded,
        });
        log.entries.push_back(e.clone());
        // Trim: the count cap always; old entries that only serve resume
        // once they are past retention (offline ones wait for their login).
        while log.entries.len() > self.limits.max_events {
            log.entries.pop_front();
        }
        while let Some(front) = log.entries.front() {
            if !front.offline && now - front.time > self.limits.retention_ms {
                log.entries.pop_front();
            } else {
                break;
            }
        }
        Ok(e)
    }

    async fn read_after(
        &self,
        account: &str,
        after: u64,
        max: usize,
    ) -> Result<Vec<Arc<LogEntry>>, Failure> {
        let Some(log) = self.logs.get(account) else {
            return Ok(Vec::new());
        };
        let first = log.entries.front().map(|e| e.seq).unwrap_or(log.head + 1);
        let skip = (after + 1).saturating_sub(first) as usize;
        Ok(log.entries.iter().skip(skip).take(max).cloned().collect())
    }

    async fn log_bounds(&self, account: &str) -> (u64, u64) {
        match self.logs.get(account) {
            Some(log) => (
                log.entries.front().map(|e| e.seq).unwrap_or(log.head + 1),
                log.head,
            ),
            None => (1, 0),
        }
    }

    async fn cursor(&self, account: &str, device: &str) -> u64 {
        self.logs
            .get(account)
            .and_then(|l| l.cursors.get(device).copied())
            .unwrap_or(0)
    }

    async fn set_cursor(&self, account: &str, device: &str, seq: u64) {
        let mut log = self.logs.entry(account.to_string()).or_default();
        let c = log.cursors.entry(device.to_string()).or_insert(0);
        *c = (*c).max(seq);
    }
}
