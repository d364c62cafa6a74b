//! The default store: everything in this process, in sharded maps, so that
//! operations on different rooms or accounts never wait for each other.
//!
//! Lock order (to rule out deadlock): names -> rooms -> account_rooms, and
//! logs -> presence -> gone. `timers` is a leaf (nothing is locked under it). No code holds a shard of one map while locking a map
//! earlier in its order.

use async_trait::async_trait;
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use super::model::{push_token_to_evict, LogEntry, NewEntry, PushToken, Room, Timer};
use super::{
    Appended, LogBounds, LogLimits, Logs, Presence, PushTokens, RequestKey, RequestSlot, Requests,
    RoomFn, RoomKey, Rooms, Signals, Stats, StoreError, StoreStats, Timers, Tx,
};

#[derive(Default)]
struct AccountLog {
    entries: VecDeque<Arc<LogEntry>>,
    /// The entries kept for offline delivery (see [`LogLimits`]); each is
    /// also in `entries` until that trims it.
    offline: VecDeque<Arc<LogEntry>>,
    /// Last sequence handed out.
    head: u64,
    /// See [`LogBounds::offline_trimmed`].
    offline_trimmed: u64,
    /// Per device: last sequence given to it.
    cursors: HashMap<String, u64>,
    /// When a login, an append or a cursor last touched it (see
    /// [`LogLimits::idle_prune_ms`]).
    touched: i64,
}

impl AccountLog {
    /// Drops what the limits no longer keep, as of `now`: from the log, the
    /// entries over its count and those past its retention; from the
    /// offline list, those over its count (remembered in
    /// `offline_trimmed`) and those past the offline retention.
    fn trim(&mut self, limits: &LogLimits, now: i64) {
        while self.entries.len() > limits.max_events {
            self.entries.pop_front();
        }
        while self
            .entries
            .front()
            .is_some_and(|e| now - e.time > limits.retention_ms)
        {
            self.entries.pop_front();
        }
        while self.offline.len() > limits.max_offline {
            if let Some(e) = self.offline.pop_front() {
                self.offline_trimmed = self.offline_trimmed.max(e.seq);
            }
        }
        while self
            .offline
            .front()
            .is_some_and(|e| now - e.time > limits.offline_retention_ms)
        {
            self.offline.pop_front();
        }
        // A cursor only decides where a fresh login's offline list starts;
        // with nothing in that list every cursor reads as 0 just as well.
        // And what the cap dropped was older than what aged out since: a
        // device back now has missed nothing the retention would have
        // kept, so it is not told "trimmed" (its cursor reads 0 now too).
        if self.offline.is_empty() {
            self.cursors = HashMap::new();
            self.offline_trimmed = 0;
        }
    }

    /// Entries held: the log's, and those only the offline list still
    /// keeps.
    fn held(&self) -> usize {
        let first = self.entries.front().map_or(u64::MAX, |e| e.seq);
        self.entries.len() + self.offline.iter().take_while(|e| e.seq < first).count()
    }

    /// Nothing left worth a memory: see [`LogLimits::idle_prune_ms`].
    fn is_forgettable(&self, limits: &LogLimits, now: i64) -> bool {
        self.entries.is_empty()
            && self.offline.is_empty()
            && now - self.touched >= limits.idle_prune_ms()
    }
}

/// The retry record of one device: answers of its current client instance.
struct DeviceRequests {
    instance: String,
    /// id -> (when claimed, answer once there is one).
    answers: BTreeMap<u64, (i64, Option<Arc<str>>)>,
}

/// What one sender had kept for offline delivery, by sending window (see
/// [`LogLimits::sending_window`]): the window last counted in, and the
/// counts of that window and the one before.
#[derive(Debug, Default)]
struct OfflineSent {
    window: i64,
    current: u64,
    previous: u64,
}

impl OfflineSent {
    /// The count of `window` and the one before. A clock stepped back
    /// counts as still in the last window.
    fn total(&self, window: i64) -> u64 {
        match window - self.window {
            d if d <= 0 => self.current + self.previous,
            1 => self.current,
            _ => 0,
        }
    }

    fn add(&mut self, window: i64, n: u64) {
        match window - self.window {
            d if d <= 0 => {}
            1 => {
                self.previous = self.current;
                self.current = 0;
                self.window = window;
            }
            _ => {
                *self = OfflineSent {
                    window,
                    ..Default::default()
                }
            }
        }
        self.current = self.current.saturating_add(n);
    }
}

pub struct MemoryStore {
    rooms: DashMap<String, Room>,
    /// channelName -> channelId of the room that last took the name. The
    /// name is free when that room is no longer valid.
    names: DashMap<String, String>,
    /// account -> channelIds of rooms it is involved in (see `involved`).
    account_rooms: DashMap<String, HashSet<String>>,
    /// account -> live (device, session id) pairs.
    presence: DashMap<String, Vec<(String, u64)>>,
    /// (account, device) -> when its last session ended, while it has none.
    gone: DashMap<(String, String), i64>,
    timers: Mutex<BTreeSet<(i64, Timer)>>,
    logs: DashMap<String, AccountLog>,
    /// (account, device) -> retry record.
    requests: DashMap<(String, String), DeviceRequests>,
    limits: LogLimits,
    /// Every log of this store shares one epoch: they are all lost together
    /// when the process ends.
    epoch: String,
    /// account -> its devices' push tokens.
    push_tokens: DashMap<String, Vec<PushToken>>,
    /// sender -> what it had kept for offline delivery lately.
    offline_sent: DashMap<String, OfflineSent>,
}

impl MemoryStore {
    pub fn new(limits: LogLimits) -> Self {
        MemoryStore {
            rooms: DashMap::new(),
            names: DashMap::new(),
            account_rooms: DashMap::new(),
            presence: DashMap::new(),
            gone: DashMap::new(),
            timers: Mutex::new(BTreeSet::new()),
            logs: DashMap::new(),
            requests: DashMap::new(),
            limits,
            epoch: format!("{:016x}", rand::random::<u64>()),
            push_tokens: DashMap::new(),
            offline_sent: DashMap::new(),
        }
    }

    fn online(&self, account: &str) -> bool {
        self.presence
            .get(account)
            .map(|l| !l.is_empty())
            .unwrap_or(false)
    }

    /// Keeps account -> rooms in step with a room's member list and pending
    /// invitations.
    fn reindex(&self, old: Option<&Room>, new: &Room) {
        let before = old.map(Room::involved).unwrap_or_default();
        let after = new.involved();
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

impl MemoryStore {
    /// Ages every log (an account nobody sends to is trimmed here, not on
    /// its next append) and forgets the logs left with nothing in them.
    /// Offline events outlive their room (an invitee reads `invalid` to
    /// learn it is gone), within the offline retention.
    fn sweep_logs(&self, now: i64) {
        // Lock order: logs, then presence (`online`).
        self.logs.retain(|account, log| {
            log.trim(&self.limits, now);
            !(log.is_forgettable(&self.limits, now) && !self.online(account))
        });
    }
}

impl MemoryStore {
    /// After a flood has gone: the maps' tables back to what they hold.
    fn shrink_when_sparse(&self) {
        use crate::ops::heap::shrink_when_sparse;
        shrink_when_sparse(&self.rooms);
        shrink_when_sparse(&self.names);
        shrink_when_sparse(&self.account_rooms);
        shrink_when_sparse(&self.presence);
        shrink_when_sparse(&self.gone);
        shrink_when_sparse(&self.logs);
        shrink_when_sparse(&self.requests);
        shrink_when_sparse(&self.push_tokens);
        shrink_when_sparse(&self.offline_sent);
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new(LogLimits::default())
    }
}

#[async_trait]
impl Rooms for MemoryStore {
    async fn update_room(
        &self,
        key: RoomKey<'_>,
        now: i64,
        f: RoomFn<'_>,
    ) -> Result<Appended, StoreError> {
        // The events are appended once the room's lock is let go: in one
        // process nothing can come between (a crash loses everything).
        let mut events = Vec::new();
        match key {
            RoomKey::Id(id) => match self.rooms.entry(id.to_string()) {
                Entry::Occupied(mut o) => {
                    if let Tx::Write {
                        room,
                        timers,
                        events: e,
                    } = f(Some(o.get()))
                    {
                        self.reindex(Some(o.get()), &room);
                        *o.get_mut() = room;
                        self.schedule_all(timers);
                        events = e;
                    }
                }
                Entry::Vacant(v) => {
                    if let Tx::Write {
                        room,
                        timers,
                        events: e,
                    } = f(None)
                    {
                        self.reindex(None, &room);
                        v.insert(room);
                        self.schedule_all(timers);
                        events = e;
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
                if let Tx::Write {
                    room,
                    timers,
                    events: e,
                } = f(holder.as_ref())
                {
                    *slot.value_mut() = room.channel_id.clone();
                    self.reindex(None, &room);
                    self.rooms.insert(room.channel_id.clone(), room);
                    self.schedule_all(timers);
                    events = e;
                }
            }
        }
        Ok(self.append_many(events, now).await)
    }

    async fn get_room(&self, key: RoomKey<'_>, now: i64) -> Result<Option<Room>, StoreError> {
        Ok(match key {
            RoomKey::Id(id) => self.rooms.get(id).map(|r| r.clone()),
            RoomKey::Name(name) => {
                let id = self.names.get(name).map(|v| v.clone());
                id.and_then(|id| self.rooms.get(&id).map(|r| r.clone()))
                    .filter(|r| r.is_valid(now))
            }
        })
    }

    async fn rooms_involving(&self, account: &str) -> Result<Vec<Room>, StoreError> {
        let ids: Vec<String> = self
            .account_rooms
            .get(account)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        Ok(ids
            .iter()
            .filter_map(|id| self.rooms.get(id).map(|r| r.clone()))
            .collect())
    }

    async fn list_rooms(
        &self,
        cursor: Option<&str>,
        limit: usize,
        now: i64,
    ) -> Result<(Vec<Room>, Option<String>), StoreError> {
        let ids = self
            .rooms
            .iter()
            .filter(|r| !r.is_forgettable(now))
            .map(|r| r.key().clone())
            .collect();
        let (page, next) = super::page_after(ids, cursor, limit);
        // A room swept since is simply left out.
        let rooms = page
            .iter()
            .filter_map(|id| self.rooms.get(id).map(|r| r.clone()))
            .collect();
        Ok((rooms, next))
    }

    async fn sweep(&self, now: i64) -> Result<Vec<Room>, StoreError> {
        let mut gone: Vec<Room> = Vec::new();
        self.rooms.retain(|_, r| {
            if r.is_forgettable(now) {
                gone.push(r.clone());
                false
            } else {
                true
            }
        });
        // Retry records outlive their use by the log retention at most.
        let horizon = now - self.limits.retention_ms;
        self.requests.retain(|_, rec| {
            rec.answers.retain(|_, (at, _)| *at >= horizon);
            !rec.answers.is_empty()
        });
        for r in &gone {
            self.names.remove_if(&r.name, |_, id| *id == r.channel_id);
            for account in r.involved() {
                if let Some(mut set) = self.account_rooms.get_mut(account) {
                    set.remove(&r.channel_id);
                }
                self.account_rooms.remove_if(account, |_, s| s.is_empty());
            }
        }
        self.sweep_logs(now);
        let window = self.limits.sending_window(now);
        self.offline_sent.retain(|_, sent| sent.total(window) > 0);
        self.shrink_when_sparse();
        Ok(gone)
    }
}

#[async_trait]
impl Presence for MemoryStore {
    async fn session_up(&self, account: &str, device: &str, session: u64) -> Option<u64> {
        let mut list = self.presence.entry(account.to_string()).or_default();
        let replaced = list
            .iter()
            .position(|(d, _)| d == device)
            .map(|i| list.remove(i).1);
        list.push((device.to_string(), session));
        self.gone.remove(&(account.to_string(), device.to_string()));
        replaced
    }

    async fn session_down(&self, account: &str, device: &str, session: u64, now: i64) {
        if let Some(mut list) = self.presence.get_mut(account) {
            let before = list.len();
            list.retain(|(d, s)| !(d == device && *s == session));
            if list.len() < before {
                self.gone
                    .insert((account.to_string(), device.to_string()), now);
            }
        }
        self.presence.remove_if(account, |_, l| l.is_empty());
    }

    async fn device_gone_since(&self, account: &str, device: &str) -> Option<i64> {
        self.gone
            .get(&(account.to_string(), device.to_string()))
            .map(|t| *t)
    }

    async fn forget_gone(&self, account: &str, device: &str, since: i64) {
        self.gone
            .remove_if(&(account.to_string(), device.to_string()), |_, t| {
                *t == since
            });
    }

    async fn live_session(&self, account: &str, device: &str) -> Option<u64> {
        let list = self.presence.get(account)?;
        list.iter().find(|(d, _)| d == device).map(|(_, s)| *s)
    }

    async fn account_online(&self, account: &str) -> Result<bool, StoreError> {
        Ok(self.online(account))
    }

    async fn devices_of(&self, account: &str) -> Result<Vec<String>, StoreError> {
        Ok(self
            .presence
            .get(account)
            .map(|l| l.iter().map(|(d, _)| d.clone()).collect())
            .unwrap_or_default())
    }
}

#[async_trait]
impl Logs for MemoryStore {
    async fn append(
        &self,
        account: &str,
        entry: NewEntry,
        now: i64,
    ) -> Result<Arc<LogEntry>, StoreError> {
        let encoded: Arc<str> = entry.body.encode().map_err(StoreError::encoding)?.into();
        let mut log = self.logs.entry(account.to_string()).or_default();
        let offline = entry.offline_enabled && !self.online(account);
        log.head += 1;
        log.touched = now;
        let e = Arc::new(LogEntry {
            seq: log.head,
            kind: entry.kind,
            exclude_device: entry.exclude_device,
            offline,
            time: now,
            body: offline.then_some(entry.body),
            encoded,
        });
        log.entries.push_back(e.clone());
        if offline {
            log.offline.push_back(e.clone());
        }
        log.trim(&self.limits, now);
        Ok(e)
    }

    async fn read_after(
        &self,
        account: &str,
        after: u64,
        max: usize,
    ) -> Result<Vec<Arc<LogEntry>>, StoreError> {
        let Some(log) = self.logs.get(account) else {
            return Ok(Vec::new());
        };
        let first = log.entries.front().map(|e| e.seq).unwrap_or(log.head + 1);
        let skip = (after + 1).saturating_sub(first) as usize;
        Ok(log.entries.iter().skip(skip).take(max).cloned().collect())
    }

    async fn read_offline(
        &self,
        account: &str,
        after: u64,
        to: u64,
    ) -> Result<Vec<Arc<LogEntry>>, StoreError> {
        let Some(log) = self.logs.get(account) else {
            return Ok(Vec::new());
        };
        Ok(log
            .offline
            .iter()
            .filter(|e| e.seq > after && e.seq <= to)
            .cloned()
            .collect())
    }

    async fn log_bounds(&self, account: &str) -> Result<LogBounds, StoreError> {
        let (first, head, offline_trimmed) = match self.logs.get_mut(account) {
            Some(mut log) => {
                // A login reads this just before it goes live: the log must
                // not be forgotten in between (see `idle_prune_ms`).
                log.touched = super::now_ms();
                (
                    log.entries.front().map(|e| e.seq).unwrap_or(log.head + 1),
                    log.head,
                    log.offline_trimmed,
                )
            }
            None => (1, 0, 0),
        };
        Ok(LogBounds {
            epoch: self.epoch.clone(),
            first,
            head,
            offline_trimmed,
        })
    }

    async fn cursor(&self, account: &str, device: &str) -> u64 {
        self.logs
            .get(account)
            .and_then(|l| l.cursors.get(device).copied())
            .unwrap_or(0)
    }

    async fn set_cursor(&self, account: &str, device: &str, seq: u64) {
        let mut log = self.logs.entry(account.to_string()).or_default();
        log.touched = super::now_ms();
        // Nothing kept for offline delivery: the cursor would be dropped by
        // the next trim anyway (see `AccountLog::trim`).
        if log.offline.is_empty() {
            return;
        }
        let c = log.cursors.entry(device.to_string()).or_insert(0);
        *c = (*c).max(seq);
    }

    async fn offline_sent(&self, account: &str, now: i64) -> Result<u64, StoreError> {
        let window = self.limits.sending_window(now);
        Ok(self
            .offline_sent
            .get(account)
            .map_or(0, |sent| sent.total(window)))
    }

    async fn count_offline_sent(&self, account: &str, n: u64, now: i64) -> Result<(), StoreError> {
        let window = self.limits.sending_window(now);
        self.offline_sent
            .entry(account.to_string())
            .or_default()
            .add(window, n);
        Ok(())
    }
}

#[async_trait]
impl Requests for MemoryStore {
    async fn request_begin(&self, key: &RequestKey<'_>, ack: Option<u64>, now: i64) -> RequestSlot {
        let mut rec = self
            .requests
            .entry((key.account.to_string(), key.device.to_string()))
            .or_insert_with(|| DeviceRequests {
                instance: key.instance.to_string(),
                answers: BTreeMap::new(),
            });
        if rec.instance != key.instance {
            rec.instance = key.instance.to_string();
            rec.answers.clear();
        }
        if let Some(ack) = ack {
            rec.answers = rec.answers.split_off(&(ack.saturating_add(1)));
        }
        let horizon = now - self.limits.retention_ms;
        rec.answers.retain(|_, (at, _)| *at >= horizon);
        while rec.answers.len() >= self.limits.max_events {
            rec.answers.pop_first();
        }
        match rec.answers.get(&key.id) {
            Some((_, Some(answer))) => RequestSlot::Done(answer.clone()),
            Some((_, None)) => RequestSlot::Running,
            None => {
                rec.answers.insert(key.id, (now, None));
                RequestSlot::Fresh
            }
        }
    }

    async fn request_end(&self, key: &RequestKey<'_>, result: Arc<str>) {
        let k = (key.account.to_string(), key.device.to_string());
        if let Some(mut rec) = self.requests.get_mut(&k) {
            if rec.instance == key.instance {
                if let Some(slot) = rec.answers.get_mut(&key.id) {
                    slot.1 = Some(result);
                }
            }
        }
    }
}

impl MemoryStore {
    /// Schedules the timers of a room update, inside the update (the
    /// room's entry lock is held: nobody sees the room without them).
    fn schedule_all(&self, timers: Vec<(i64, Timer)>) {
        let mut all = self.timers.lock().unwrap_or_else(|e| e.into_inner());
        all.extend(timers);
    }
}

#[async_trait]
impl Timers for MemoryStore {
    async fn schedule(&self, at: i64, timer: Timer) {
        self.schedule_all(vec![(at, timer)]);
    }

    async fn take_due(&self, now: i64, max: usize) -> Vec<(i64, Timer)> {
        let mut timers = self.timers.lock().unwrap_or_else(|e| e.into_inner());
        let mut due = Vec::new();
        while due.len() < max && timers.first().is_some_and(|(at, _)| *at <= now) {
            if let Some(t) = timers.pop_first() {
                due.push(t);
            }
        }
        due
    }
}

#[async_trait]
impl PushTokens for MemoryStore {
    async fn set_push_token(&self, account: &str, token: PushToken) -> Result<(), StoreError> {
        let mut list = self.push_tokens.entry(account.to_string()).or_default();
        list.retain(|t| t.device_id != token.device_id);
        list.push(token);
        if let Some(old) = push_token_to_evict(&list).map(str::to_string) {
            list.retain(|t| t.device_id != old);
        }
        Ok(())
    }

    async fn remove_push_token(&self, account: &str, device: &str) -> Result<(), StoreError> {
        if let Some(mut list) = self.push_tokens.get_mut(account) {
            list.retain(|t| t.device_id != device);
        }
        self.push_tokens.remove_if(account, |_, l| l.is_empty());
        Ok(())
    }

    async fn push_tokens(&self, account: &str) -> Result<Vec<PushToken>, StoreError> {
        let mut list = self
            .push_tokens
            .get(account)
            .map(|l| l.clone())
            .unwrap_or_default();
        list.sort_by(|a, b| a.device_id.cmp(&b.device_id));
        Ok(list)
    }
}

#[async_trait]
impl Stats for MemoryStore {
    async fn stats(&self) -> StoreStats {
        StoreStats {
            rooms: self.rooms.len(),
            log_entries: self.logs.iter().map(|l| l.held()).sum(),
            timers: self.timers.lock().unwrap_or_else(|e| e.into_inner()).len(),
        }
    }
}

/// One process, no other nodes: nothing to tell, nothing to hear.
impl Signals for MemoryStore {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{now_ms, LogBody, ResyncReason};
    use nim_signaling_protocol::frames::NotifyKind;
    use nim_signaling_protocol::objects::{ChannelInfo, Event, EventType};

    fn invite(channel: &str, offline_enabled: bool) -> NewEntry {
        let info = ChannelInfo {
            channel_id: channel.into(),
            channel_name: String::new(),
            kind: 1,
            ext: String::new(),
            create_timestamp: 0,
            expire_timestamp: 0,
            creator_id: "alice".into(),
            invalid: 0,
        };
        NewEntry {
            kind: NotifyKind::Notify,
            exclude_device: None,
            offline_enabled,
            body: LogBody::Event(Event::new(EventType::Invite, info, "alice", "", 0)),
        }
    }

    fn store() -> MemoryStore {
        MemoryStore::new(LogLimits {
            max_events: 10,
            retention_ms: 1_000,
            offline_retention_ms: 5_000,
            max_offline: 10,
        })
    }

    /// An account nobody logs in to keeps its offline event for the
    /// offline retention, its device cursor as long as that event, and
    /// nothing at all once it has been idle past the prune horizon; a
    /// device resuming into the forgotten log is told `stateLost`.
    /// A sender's count covers its window and the one before, so that it
    /// never reads less than the events it can still have kept.
    #[tokio::test]
    async fn what_a_sender_kept_offline_counts_for_two_windows() {
        let s = MemoryStore::new(LogLimits {
            offline_retention_ms: 1_000,
            ..LogLimits::default()
        });
        s.count_offline_sent("alice", 2, 10_900).await.unwrap();
        s.count_offline_sent("alice", 1, 11_100).await.unwrap();
        assert_eq!(s.offline_sent("alice", 11_100).await.unwrap(), 3);
        assert_eq!(s.offline_sent("alice", 11_999).await.unwrap(), 3);
        assert_eq!(s.offline_sent("alice", 12_000).await.unwrap(), 1);
        assert_eq!(s.offline_sent("alice", 13_000).await.unwrap(), 0);
        assert_eq!(s.offline_sent("bob", 11_100).await.unwrap(), 0);
        // A clock stepped back still reads what was counted.
        assert_eq!(s.offline_sent("alice", 9_000).await.unwrap(), 3);
        s.sweep(12_500).await.unwrap();
        assert_eq!(s.offline_sent.len(), 1, "still counts in its next window");
        s.sweep(13_000).await.unwrap();
        assert!(
            s.offline_sent.is_empty(),
            "forgotten once it counts nothing"
        );
        // Counting again after a gap starts afresh.
        s.count_offline_sent("alice", 5, 20_000).await.unwrap();
        assert_eq!(s.offline_sent("alice", 20_000).await.unwrap(), 5);
    }

    /// Ten thousand never-seen accounts' logs come and go: once they are
    /// forgotten, the table that held them gives its space back too.
    #[tokio::test]
    async fn the_logs_of_a_flood_leave_no_table_behind() {
        let s = store();
        let t = now_ms();
        for i in 0..10_000 {
            s.append(&format!("ghost{i}"), invite("c1", true), t)
                .await
                .unwrap();
        }
        let flooded = s.logs.capacity();
        s.append("alice", invite("c2", true), t + 600_000)
            .await
            .unwrap();
        s.sweep(t + 600_000).await.unwrap();
        assert_eq!(s.logs.len(), 1, "alice's log alone");
        assert!(
            s.logs.capacity() <= 1024,
            "the table shrank: {} of {flooded}",
            s.logs.capacity()
        );
    }

    #[tokio::test]
    async fn a_log_left_with_nothing_is_forgotten() {
        let s = store();
        let t = now_ms();
        s.append("ghost", invite("c1", true), t).await.unwrap();
        s.set_cursor("ghost", "d1", 1).await;
        let epoch = s.log_bounds("ghost").await.unwrap().epoch;

        s.sweep(t + 2_000).await.unwrap();
        assert!(
            s.read_after("ghost", 0, 10).await.unwrap().is_empty(),
            "past logRetentionMs"
        );
        assert_eq!(s.read_offline("ghost", 0, u64::MAX).await.unwrap().len(), 1);
        assert_eq!(
            s.cursor("ghost", "d1").await,
            1,
            "kept with the offline event"
        );

        s.sweep(t + 6_000).await.unwrap();
        assert!(s
            .read_offline("ghost", 0, u64::MAX)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            s.cursor("ghost", "d1").await,
            0,
            "nothing left for it to mark"
        );
        assert!(
            s.logs.contains_key("ghost"),
            "touched less than a minute ago"
        );

        s.sweep(t + 6_000 + 60_000).await.unwrap();
        assert!(!s.logs.contains_key("ghost"), "forgotten");
        let b = s.log_bounds("ghost").await.unwrap();
        assert_eq!(b.resume_gap(&epoch, 1), Some(ResyncReason::StateLost));
    }

    /// What the offline cap dropped is reported only while the offline list
    /// holds something: once it has aged out too, a device coming back
    /// (its cursor gone with it) has missed nothing the retention kept.
    #[tokio::test]
    async fn the_trimmed_mark_goes_with_the_offline_list() {
        let s = MemoryStore::new(LogLimits {
            max_offline: 1,
            ..LogLimits::default()
        });
        let t = now_ms();
        s.append("bob", invite("c1", true), t).await.unwrap();
        s.append("bob", invite("c2", true), t).await.unwrap();
        assert_eq!(s.log_bounds("bob").await.unwrap().offline_trimmed, 1);
        s.sweep(t + LogLimits::default().offline_retention_ms + 1)
            .await
            .unwrap();
        assert_eq!(s.log_bounds("bob").await.unwrap().offline_trimmed, 0);
    }

    /// A log whose account has a device online is kept however idle, and a
    /// device's absence record goes only for the absence that was reviewed.
    #[tokio::test]
    async fn online_logs_and_later_absences_stay() {
        let s = store();
        let t = now_ms();
        s.session_up("bob", "b1", 7).await;
        s.append("bob", invite("c1", false), t).await.unwrap();
        s.sweep(t + 600_000).await.unwrap();
        assert!(s.logs.contains_key("bob"), "bob is online");
        assert_eq!(s.log_bounds("bob").await.unwrap().head, 1);

        s.session_down("bob", "b1", 7, t).await;
        s.session_up("bob", "b1", 8).await;
        s.session_down("bob", "b1", 8, t + 10).await;
        s.forget_gone("bob", "b1", t).await;
        assert_eq!(
            s.device_gone_since("bob", "b1").await,
            Some(t + 10),
            "a later absence"
        );
        s.forget_gone("bob", "b1", t + 10).await;
        assert_eq!(s.device_gone_since("bob", "b1").await, None);
    }
}
