//! Which sessions of an account live in this process, and how they are
//! woken. Events are never pushed through here: they are appended to the
//! account's log, and a woken session reads its log from its cursor. So a
//! wake-up lost or doubled costs nothing, and order is the log's order.

use dashmap::DashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::Notify;

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
        }
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

    /// Wakes every local session of `account`.
    pub fn wake(&self, account: &str) {
        if let Some(v) = self.sessions.get(account) {
            for l in v.iter() {
                l.wake.notify_one();
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

    /// Wakes every session in this process.
    pub fn wake_all(&self) {
        for e in self.sessions.iter() {
            for l in e.value() {
                l.wake.notify_one();
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
