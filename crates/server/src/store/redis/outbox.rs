//! The room outbox (docs/CLUSTER.md, "How a request crosses slots"). On a
//! Redis Cluster a room and its recipients' logs usually sit in different
//! slots, so no one script can write both. The room's write
//! (write_room.lua) appends to the logs in its own slot (on a single
//! Redis, all of them) and keeps the other accounts' events in the room's
//! own slot, in its outbox, as part of the same step; the writer then
//! forwards them to each account's log and drops them from the outbox.
//! Should the writer die in between, the sweeper of some node finds them
//! past their due time and forwards them instead. Each account applies a forward once (append.lua remembers the
//! room's last forward ids), and a writer forwards whatever an earlier
//! writer of the room left before its own: so nothing is lost, nothing is
//! doubled, and an account gets a room's events in the room's order.
//!
//! The same forward carries the account's room index change (joining or
//! leaving the set of accounts the room involves), so the index follows
//! the room exactly as the account's events do.

use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

use super::keys::BUCKETS;
use super::{RedisStore, SCRIPTS};
use crate::store::model::{LogBody, NewEntry};
use crate::store::{Appended, Signal, StoreError};
use nim_signaling_protocol::frames::NotifyKind;

/// How long an outbox entry waits for its writer to forward it before a
/// sweeper forwards it (the writer normally needs one round trip; one
/// that takes longer only costs a second forward, which the accounts
/// drop).
pub(super) const OUTBOX_GRACE_MS: i64 = 3_000;
/// How long an account remembers a room's forward ids: far longer than a
/// forward can be late.
pub(super) const FORWARD_MARK_MS: i64 = 120_000;
/// Due rooms the sweeper looks at per bucket in one script.
const TAKE_BATCH: isize = 200;
/// Scripts per bucket and sweep at most: with [`TAKE_BATCH`], the sweep of
/// one node clears up to 64 × 200 × 10 = 128,000 due rooms a second, far
/// more than the whole cluster writes.
const TAKE_ROUNDS: usize = 10;

/// One account's part of a room update, as kept in the outbox.
#[derive(Serialize, Deserialize)]
pub(super) struct OutAccount {
    pub a: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    e: Vec<OutEntry>,
    /// The room index change: true adds the room to the account's index,
    /// false removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub i: Option<bool>,
}

#[derive(Serialize, Deserialize)]
struct OutEntry {
    k: NotifyKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    x: Option<String>,
    #[serde(default)]
    o: bool,
    b: LogBody,
}

impl OutAccount {
    /// The part of `account`: its `entries` in order and its room index
    /// change.
    pub fn new(account: String, index: Option<bool>, entries: Vec<NewEntry>) -> Self {
        let e = entries
            .into_iter()
            .map(|e| OutEntry {
                k: e.kind,
                x: e.exclude_device,
                o: e.offline_enabled,
                b: e.body,
            })
            .collect();
        OutAccount {
            a: account,
            e,
            i: index,
        }
    }

    pub fn entries(self) -> (String, Option<bool>, Vec<NewEntry>) {
        let entries = self
            .e
            .into_iter()
            .map(|e| NewEntry {
                kind: e.k,
                exclude_device: e.x,
                offline_enabled: e.o,
                body: e.b,
            })
            .collect();
        (self.a, self.i, entries)
    }
}

/// One room update's events and index changes, under a fresh id.
pub(super) struct Forward {
    pub id: String,
    pub accounts: Vec<OutAccount>,
    /// Accounts the room's write appended to itself, whose other nodes the
    /// writer wakes after the write (a cluster's script cannot): kept with
    /// the entry so that, should the writer die first, the sweeper wakes
    /// them.
    pub wake: Vec<String>,
}

/// What an outbox entry's JSON array holds. A wake is named by another
/// field than a part's `a`, so that write_room.lua, looking for an
/// account's part by how it begins, never takes one for the other.
#[derive(Deserialize)]
#[serde(untagged)]
enum Kept {
    Part(OutAccount),
    Wake { w: String },
}

#[derive(Serialize)]
#[serde(untagged)]
enum KeptRef<'a> {
    Part(&'a OutAccount),
    Wake { w: &'a str },
}

impl Forward {
    /// The forward of an update's `events` (in order) and of the accounts
    /// it starts (`joining`) and stops (`leaving`) involving; None when
    /// there is nothing to forward.
    pub fn new(
        events: Vec<(String, NewEntry)>,
        joining: &[&str],
        leaving: &[&str],
    ) -> Option<Self> {
        let mut parts: Vec<(String, Option<bool>, Vec<NewEntry>)> = Vec::new();
        let part = |parts: &mut Vec<(String, Option<bool>, Vec<NewEntry>)>, a: &str| -> usize {
            match parts.iter().position(|p| p.0 == a) {
                Some(i) => i,
                None => {
                    parts.push((a.to_string(), None, Vec::new()));
                    parts.len() - 1
                }
            }
        };
        for (account, entry) in events {
            let i = part(&mut parts, &account);
            parts[i].2.push(entry);
        }
        for (list, add) in [(joining, true), (leaving, false)] {
            for a in list {
                let i = part(&mut parts, a);
                parts[i].1 = Some(add);
            }
        }
        (!parts.is_empty()).then(|| Forward {
            accounts: parts
                .into_iter()
                .map(|(a, i, e)| OutAccount::new(a, i, e))
                .collect(),
            ..Forward::empty()
        })
    }

    /// A forward of no accounts yet, under a fresh id.
    pub fn empty() -> Self {
        Forward {
            id: format!("{:016x}", rand::random::<u64>()),
            accounts: Vec::new(),
            wake: Vec::new(),
        }
    }

    /// Whether it holds nothing to keep in the outbox.
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty() && self.wake.is_empty()
    }

    /// Takes the parts of the accounts `which` picks out of the forward.
    pub fn take_accounts(&mut self, which: impl Fn(&str) -> bool) -> Vec<OutAccount> {
        let (taken, kept) = std::mem::take(&mut self.accounts)
            .into_iter()
            .partition(|p| which(&p.a));
        self.accounts = kept;
        taken
    }

    /// As kept in the outbox: `<id>|<JSON array of the parts, then the
    /// wakes>`.
    pub fn encode(&self) -> Result<String, StoreError> {
        let parts = self.accounts.iter().map(KeptRef::Part);
        let wakes = self.wake.iter().map(|w| KeptRef::Wake { w });
        let kept: Vec<KeptRef> = parts.chain(wakes).collect();
        let json = serde_json::to_string(&kept).map_err(super::unencodable)?;
        Ok(format!("{}|{json}", self.id))
    }

    pub fn decode(text: &str) -> Option<Self> {
        let (id, json) = text.split_once('|')?;
        let mut f = Forward {
            id: id.to_string(),
            accounts: Vec::new(),
            wake: Vec::new(),
        };
        for kept in serde_json::from_str::<Vec<Kept>>(json).ok()? {
            match kept {
                Kept::Part(p) => f.accounts.push(p),
                Kept::Wake { w } => f.wake.push(w),
            }
        }
        Some(f)
    }
}

impl RedisStore {
    /// Forwards the outbox entries `earlier` (other writers', oldest first;
    /// undecodable ones are skipped with a warning) and then `own` (with
    /// its text as written) to their accounts' logs, and drops them from
    /// the room's outbox once every account has them. Returns what became
    /// of `own`'s accounts' events and, for the earlier ones, of those
    /// that were appended here.
    pub(super) async fn forward_all(
        &self,
        channel: &str,
        earlier: Vec<String>,
        own: Option<(Forward, String)>,
        now: i64,
    ) -> Appended {
        let mut out: Appended = Vec::new();
        let mut done = Vec::new();
        let mut complete = true;
        for text in earlier {
            let Some(f) = Forward::decode(&text) else {
                tracing::warn!(channel, "outbox entry unreadable; dropped");
                done.push(text);
                continue;
            };
            done.push(text);
            for (account, r) in self.forward(channel, f, now).await {
                match r {
                    // Offered here like any other append.
                    Ok(list) if !list.is_empty() => out.push((account, Ok(list))),
                    // A forward the account had (the append woke the other
                    // nodes again): its first forwarder may have died
                    // before waking this one's sessions too.
                    Ok(_) => {
                        let _ = self.shared.signals.send(Signal::Wake(account));
                    }
                    Err(e) => {
                        complete = false;
                        tracing::warn!(channel, %account, error = %e, "left-behind events not forwarded yet");
                    }
                }
            }
        }
        if let Some((f, text)) = own {
            done.push(text);
            for (account, r) in self.forward(channel, f, now).await {
                complete &= r.is_ok();
                out.push((account, r));
            }
        }
        // An entry some account lacks stays for the sweeper.
        if complete && !done.is_empty() {
            self.outbox_done(channel, done);
        }
        out
    }

    /// One forward: each account's part in one script, all at once; and
    /// the wakes of the accounts its writer appended to in the room's
    /// write (it may have died before sending them; a session woken for
    /// nothing new reads nothing).
    async fn forward(&self, channel: &str, f: Forward, now: i64) -> Appended {
        let id = f.id;
        let parts = f
            .accounts
            .into_iter()
            .map(|part| {
                let (account, index, entries) = part.entries();
                (account, entries, Some((channel, id.as_str(), index)))
            })
            .collect();
        let wakes = f.wake.iter().map(|a| self.wake_everywhere(a));
        let (appended, _) = futures_util::future::join(
            self.append_accounts(parts, now),
            futures_util::future::join_all(wakes),
        )
        .await;
        appended
    }

    /// Wakes `account`'s sessions on every live node, this one too.
    async fn wake_everywhere(&self, account: &str) {
        let _ = self.shared.signals.send(Signal::Wake(account.to_string()));
        let pres = self.keys().acct(account, "pres");
        let values: Vec<String> = match self.con().hvals(pres).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(%account, error = %e, "wake-up not sent: presence unreadable");
                return;
            }
        };
        let mut nodes: Vec<String> = values
            .iter()
            .filter_map(|v| self.shared.live_presence(v))
            .filter(|(_, node)| *node != self.shared.node)
            .map(|(_, node)| node.to_string())
            .collect();
        nodes.sort();
        nodes.dedup();
        self.wake_nodes(account, &nodes).await;
    }

    /// Drops forwarded entries (`texts`, as kept) from a room's outbox:
    /// plain LREMs, so that dropping costs Redis no script. The room stays
    /// in the bucket's due set until the sweeper finds its outbox empty
    /// (see [`RedisStore::forward_left_behind`]). Not waited for (see
    /// [`super::deferred`]): should it be lost, the sweeper forwards the
    /// entries again and every account drops the second copy.
    fn outbox_done(&self, channel: &str, texts: Vec<String>) {
        let key = self.keys().outbox(channel);
        let mut pipe = redis::pipe();
        for text in &texts {
            pipe.lrem(&key, 1, text).ignore();
        }
        self.deferred.send(pipe, true, "outbox entry drop");
    }

    /// The sweeper's part: forwards the outbox entries whose writers did not
    /// (died, or lost Redis) within [`OUTBOX_GRACE_MS`], and wakes the
    /// sessions here of the accounts that got them (the append wakes the
    /// other nodes). Every room written with events is due once (its
    /// writers drop their entries but leave it in the due set): the look
    /// at a bucket's due rooms is one script for up to [`TAKE_BATCH`] of
    /// them, repeated while full batches come back, up to
    /// [`TAKE_ROUNDS`] times a sweep.
    pub(super) async fn forward_left_behind(&self, now: i64) -> Result<(), StoreError> {
        let k = self.keys();
        let mut buckets: Vec<usize> = (0..BUCKETS).collect();
        for _ in 0..TAKE_ROUNDS {
            let mut pipe = redis::pipe();
            for b in &buckets {
                pipe.zrangebyscore_limit(k.bucket(*b, "outdue"), "-inf", now, 0, TAKE_BATCH);
            }
            let due: Vec<Vec<String>> = self.con().run(&pipe).await.map_err(super::unavailable)?;
            let mut full = Vec::new();
            for (b, channels) in buckets.iter().zip(due) {
                if channels.is_empty() {
                    continue;
                }
                if channels.len() == TAKE_BATCH as usize {
                    full.push(*b);
                }
                self.take_left_behind(*b, &channels, now).await?;
            }
            if full.is_empty() {
                break;
            }
            buckets = full;
        }
        Ok(())
    }

    /// Leases and forwards the entries left in the outboxes of `channels`
    /// (due rooms of bucket `bucket`); the rooms found empty leave the due
    /// set.
    async fn take_left_behind(
        &self,
        bucket: usize,
        channels: &[String],
        now: i64,
    ) -> Result<(), StoreError> {
        let k = self.keys();
        let mut inv = SCRIPTS.outbox_sweep.prepare_invoke();
        inv.key(k.bucket(bucket, "outdue"))
            .arg(now)
            .arg(now + OUTBOX_GRACE_MS);
        for channel in channels {
            inv.key(k.outbox(channel)).arg(channel);
        }
        let taken: Vec<redis::Value> = inv
            .invoke_async(&mut self.con())
            .await
            .map_err(super::script_failed("outbox_sweep"))?;
        let mut taken = taken.into_iter();
        while let (Some(channel), Some(entries)) = (taken.next(), taken.next()) {
            let (Ok(channel), Ok(entries)) = (
                redis::from_redis_value::<String>(&channel),
                redis::from_redis_value::<Vec<String>>(&entries),
            ) else {
                return Err(StoreError::Script(
                    "outbox_sweep: a reply not of its shape".into(),
                ));
            };
            tracing::info!(%channel, entries = entries.len(), "forwarding events a writer left behind");
            for (account, r) in self.forward_all(&channel, entries, None, now).await {
                if r.is_ok() {
                    let _ = self.shared.signals.send(Signal::Wake(account));
                }
            }
        }
        Ok(())
    }
}
