//! Writes no request waits for: a request's answer recorded in its retry
//! record, a forwarded outbox entry dropped. Each costs Redis a wake-up of
//! its own when sent alone, and on this project's measurements the
//! wake-ups, not the commands, are what Redis spends its CPU on
//! (docs/PERFORMANCE.md). So they go to one task that sends them in
//! batches, as one pipeline (on a cluster, one command per slot, all at
//! once). A drop is sent at once, with whatever has gathered: the room's
//! next write would otherwise find the entry still there and forward it
//! again. An answer record waits up to [`LINGER`] for one to go with.
//!
//! Both kinds are plain commands of one slot each (HSET and PEXPIRE of a
//! retry record, LREM of an outbox entry), so no batch depends on Redis
//! still having the store's scripts. A write that cannot be sent is
//! logged and given up: a lost answer record makes a resent request wait
//! for its first copy and get a 500; a lost drop leaves the entry to the
//! sweeper, whose forward every account drops as a copy.

use redis::Pipeline;
use std::time::Duration;
use tokio::sync::mpsc::{self, error::TrySendError};

use super::link::Con;

/// How long a write waits for others to go with it. Nothing waits for
/// these writes, so this costs no request any time.
const LINGER: Duration = Duration::from_millis(1);
/// Writes held at most (while Redis is slow or away); more are given up.
const QUEUE: usize = 10_000;
/// Writes sent in one pipeline at most.
const BATCH: usize = 256;

/// The sending side, shared by the store.
pub(super) struct Deferred {
    tx: mpsc::Sender<Queued>,
}

struct Queued {
    /// Plain commands of one slot.
    write: Pipeline,
    /// Sent without waiting for others.
    now: bool,
}

impl Deferred {
    /// Starts the task that sends the writes over the connection `con`
    /// returns (asked for each batch: it is replaced after a failover).
    pub fn start(con: impl Fn() -> Con + Send + 'static) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(send_loop(rx, con));
        (Deferred { tx }, task)
    }

    /// Queues `write`, to be sent at once (`now`) or with the next batch;
    /// `what` names it in the log should it be given up.
    pub fn send(&self, write: Pipeline, now: bool, what: &'static str) {
        match self.tx.try_send(Queued { write, now }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                tracing::warn!(what, "too many writes waiting for Redis; this one given up")
            }
            Err(TrySendError::Closed(_)) => {}
        }
    }
}

async fn send_loop(mut rx: mpsc::Receiver<Queued>, con: impl Fn() -> Con) {
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(first) = rx.recv().await {
        let mut now = first.now;
        batch.push(first.write);
        let until = tokio::time::Instant::now() + LINGER;
        while !now && batch.len() < BATCH {
            match tokio::time::timeout_at(until, rx.recv()).await {
                Ok(Some(w)) => {
                    now = w.now;
                    batch.push(w.write);
                }
                _ => break,
            }
        }
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(w) => batch.push(w.write),
                Err(_) => break,
            }
        }
        let sent = con().run_writes(&batch).await;
        if let Err(e) = sent {
            tracing::warn!(writes = batch.len(), error = %e, "deferred writes not sent");
        }
        batch.clear();
    }
}
