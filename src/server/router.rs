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
        if let Some(v) = self.sessions.get(account) {
            for l in v.iter().filter(|l| l.id == id) {
                l.kicked.store(true, Ordering::SeqCst);
                l.wake.notify_one();
            }
        }
    }

    /// Number of live sessions in this process.
    pub fn session_count(&self) -> usize {
        self.sessions.iter().map(|e| e.value().len()).sum()
    }
}
