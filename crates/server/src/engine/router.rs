//! Which sessions of an account live in this process, and how they are
//! woken. Events are appended to the account's log first, and a woken
//! session sends from its cursor: so a wake-up lost or doubled costs
//! nothing, and order is the log's order. As a shortcut, the entries this
//! process has just appended are offered to its own sessions with the
//! wake-up; a session sends them without reading the log when they follow
//! its cursor without a gap, and reads the log otherwise.

use dashmap::DashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

use crate::store::LogEntry;

/// Entries offered to one session at most; past this it reads its log
/// instead (a session that does not keep up holds no more than this).
const MAX_OFFERED: usize = 256;

/// What the router keeps of one live session.
pub struct SessionLink {
    pub id: u64,
    pub device: String,
    /// Wakes the session to read its log (a stored permit is kept, so a
    /// wake-up that comes while the session is busy is not lost).
    pub wake: Notify,
    /// Set when a newer login of the same device replaced this session.
    pub kicked: AtomicBool,
    /// Set when the administrator ended the session (docs/ADMIN.md).
    pub evicted: AtomicBool,
    /// Set when the store lost its state: the session ends so that its
    /// client logs in again and is told to resync.
    pub lost: AtomicBool,
    /// Entries appended here since the session last looked (see the
    /// module's note), and whether it must read its log anyway (woken
    /// without entries: by another node, or for a reason of its own).
    offered: Mutex<Vec<Arc<LogEntry>>>,
    read_log: AtomicBool,
}

impl SessionLink {
    pub fn new(id: u64, device: String) -> Self {
        SessionLink {
            id,
            device,
            wake: Notify::new(),
            kicked: AtomicBool::new(false),
            evicted: AtomicBool::new(false),
            lost: AtomicBool::new(false),
            offered: Mutex::new(Vec::new()),
            read_log: AtomicBool::new(true),
        }
    }

    /// What the session has to send since it last looked: the entries
    /// offered to it, by seq, and whether it must read its log too.
    pub fn take(&self) -> (Vec<Arc<LogEntry>>, bool) {
        let mut offered =
            std::mem::take(&mut *self.offered.lock().unwrap_or_else(|e| e.into_inner()));
        let read = self.read_log.swap(false, Ordering::SeqCst);
        offered.sort_by_key(|e| e.seq);
        offered.dedup_by_key(|e| e.seq);
        (offered, read)
    }

    fn offer(&self, entries: &[Arc<LogEntry>]) {
        let mut offered = self.offered.lock().unwrap_or_else(|e| e.into_inner());
        if offered.len() + entries.len() > MAX_OFFERED {
            offered.clear();
            self.read_log.store(true, Ordering::SeqCst);
        } else {
            offered.extend(entries.iter().cloned());
        }
        drop(offered);
        self.wake.notify_one();
    }

    /// Wakes the session to read its log.
    pub fn wake_to_read(&self) {
        self.read_log.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }
}

#[derive(Default)]
pub struct Hub {
    sessions: DashMap<String, Vec<Arc<SessionLink>>>,
}

impl Hub {
    pub fn register(&self, account: &str, link: Arc<SessionLink>) {
        self.sessions
            .entry(account.to_string())
            .or_default()
            .push(link);
    }

    pub fn unregister(&self, account: &str, id: u64) {
        if let Some(mut v) = self.sessions.get_mut(account) {
            v.retain(|l| l.id != id);
        }
        self.sessions.remove_if(account, |_, v| v.is_empty());
    }

    /// Wakes every local session of `account` to read its log.
    pub fn wake(&self, account: &str) {
        if let Some(v) = self.sessions.get(account) {
            for l in v.iter() {
                l.wake_to_read();
            }
        }
    }

    /// Wakes every local session of `account` with the entries just
    /// appended to its log (in seq order).
    pub fn offer(&self, account: &str, entries: &[Arc<LogEntry>]) {
        if let Some(v) = self.sessions.get(account) {
            for l in v.iter() {
                l.offer(entries);
            }
        }
    }

    /// Tells session `id` of `account` that it has been replaced.
    pub fn kick(&self, account: &str, id: u64) {
        self.mark(account, id, |l| &l.kicked);
    }

    /// Tells session `id` of `account` that the administrator ended it.
    pub fn evict(&self, account: &str, id: u64) {
        self.mark(account, id, |l| &l.evicted);
    }

    /// Sets `flag` of session `id` and wakes it to act on it.
    fn mark(&self, account: &str, id: u64, flag: impl Fn(&SessionLink) -> &AtomicBool) {
        if let Some(v) = self.sessions.get(account) {
            for l in v.iter().filter(|l| l.id == id) {
                flag(l).store(true, Ordering::SeqCst);
                l.wake.notify_one();
            }
        }
    }

    /// Wakes every session in this process to read its log.
    pub fn wake_all(&self) {
        for e in self.sessions.iter() {
            for l in e.value() {
                l.wake_to_read();
            }
        }
    }

    /// Ends every session in this process, for a resync (see
    /// [`SessionLink::lost`]).
    pub fn lose_all(&self) {
        for e in self.sessions.iter() {
            for l in e.value() {
                l.lost.store(true, Ordering::SeqCst);
                l.wake.notify_one();
            }
        }
    }

    /// Acts on what the store says (other nodes, or the store itself).
    pub fn on_signal(&self, signal: crate::store::Signal) {
        use crate::store::Signal;
        match signal {
            Signal::Wake(account) => self.wake(&account),
            Signal::WakeAll => self.wake_all(),
            Signal::Kick { account, session } => self.kick(&account, session),
            Signal::Evict { account, session } => self.evict(&account, session),
            Signal::StateLost => self.lose_all(),
            // The service's business (see `server::run`).
            Signal::DeviceGone { .. } => {}
        }
    }

    /// Number of live sessions in this process.
    pub fn session_count(&self) -> usize {
        self.sessions.iter().map(|e| e.value().len()).sum()
    }
}
