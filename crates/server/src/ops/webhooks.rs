//! Webhooks: what happened to rooms, members and invitations, POSTed as
//! signed JSON to the operator's receivers (see docs/WEBHOOKS.md).
//!
//! - [`facts`]: the webhooks of one atomic room change, derived by
//!   comparing the room before and after it — in one place, so that no rule
//!   has to remember to report what it did.
//! - [`Webhooks`]: per receiver, a bounded queue feeding a few lanes; a
//!   room always goes to the same lane, and a lane delivers one event at a
//!   time (retries included), so the events of a room reach each receiver
//!   in order while a slow room holds up only its lane.

use bytes::Bytes;
use serde_json::{json, Map, Value};
use std::collections::HashSet;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

use crate::config::WebhooksConfig;
use crate::engine::observe::{Cause, Observer};
use crate::ops::http::{self, Roots};
use crate::ops::metrics::Metrics;
use crate::store::{InviteState, Room};
use nim_signaling_protocol::codes::INVALID_PARAM;
use nim_signaling_protocol::{ChannelInfo, Failure};

/// Every event name a receiver can get (and `webhooks.events` can pick).
pub const EVENTS: &[&str] = &[
    "room.created",
    "room.closed",
    "room.expired",
    "member.joined",
    "member.left",
    "member.dropped",
    "invitation.sent",
    "invitation.accepted",
    "invitation.rejected",
    "invitation.cancelled",
    "invitation.timedOut",
    "room.updated",
];

/// Lanes per receiver: rooms are spread over them by channelId.
const LANES: usize = 4;
/// Shutdown waits at most this long for queued events to go out.
const MAX_FLUSH: Duration = Duration::from_secs(5);
/// At most one "queue full" warning per receiver this often.
const WARN_EVERY_MS: i64 = 10_000;

impl Cause<'_> {
    /// The `cause` object of a webhook body.
    pub fn to_json(&self) -> Value {
        match *self {
            Cause::Request {
                op,
                account,
                device,
            } => {
                json!({"kind": "request", "op": op.as_str(), "account": account, "deviceId": device})
            }
            Cause::Admin { action } => json!({"kind": "admin", "action": action}),
            Cause::InviteTimeout => json!({"kind": "inviteTimeout"}),
            Cause::DeviceGone { account, device } => {
                json!({"kind": "deviceGone", "account": account, "deviceId": device})
            }
            Cause::RoomExpiry => json!({"kind": "roomExpiry"}),
        }
    }
}

/// The member a member event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookMember {
    pub account: String,
    pub device_id: String,
    pub uid: u64,
}

/// The invitation an invitation event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookInvitation {
    pub request_id: String,
    pub from: String,
    pub to: String,
}

/// One webhook, before it is given an id and a body.
#[derive(Debug, Clone, PartialEq)]
pub struct Hook {
    /// One of [`EVENTS`].
    pub event: &'static str,
    pub room_version: u64,
    /// The room as it is after the change.
    pub channel_info: ChannelInfo,
    pub member: Option<HookMember>,
    pub invitation: Option<HookInvitation>,
}

impl Hook {
    fn about(event: &'static str, room: &Room, version: u64, now: i64) -> Hook {
        Hook {
            event,
            room_version: version,
            channel_info: room.channel_info(now),
            member: None,
            invitation: None,
        }
    }

    /// The POST body (documented in docs/WEBHOOKS.md).
    pub fn body(&self, id: &str, at: i64, cause: &Cause) -> Value {
        let mut b = Map::new();
        b.insert("id".into(), id.into());
        b.insert("type".into(), self.event.into());
        b.insert("at".into(), at.into());
        b.insert(
            "channelId".into(),
            self.channel_info.channel_id.clone().into(),
        );
        b.insert("roomVersion".into(), self.room_version.into());
        b.insert(
            "channelInfo".into(),
            serde_json::to_value(&self.channel_info).unwrap_or_default(),
        );
        if let Some(m) = &self.member {
            b.insert("account".into(), m.account.clone().into());
            b.insert("deviceId".into(), m.device_id.clone().into());
            b.insert("uid".into(), m.uid.into());
        }
        if let Some(i) = &self.invitation {
            b.insert(
                "invitation".into(),
                json!({"requestId": i.request_id, "from": i.from, "to": i.to}),
            );
        }
        b.insert("cause".into(), cause.to_json());
        Value::Object(b)
    }
}

/// The webhooks of one atomic change of a room, from the room `before` it
/// (None: the change made the room) and `after` it (its version already
/// set), in this order: room.created; room.updated (its ext changed);
/// invitations answered, cancelled or
/// timed out; members gone; members come; invitations sent; room.closed.
/// Closing a room reports room.closed only, not each member it removes.
pub fn facts(before: Option<&Room>, after: &Room, cause: &Cause, now: i64) -> Vec<Hook> {
    let v = after.version;
    let mut out = Vec::new();
    if before.is_none() {
        out.push(Hook::about("room.created", after, v, now));
    }
    if before.is_some_and(|b| b.ext != after.ext) {
        out.push(Hook::about("room.updated", after, v, now));
    }
    let closing = after.closed && !before.is_some_and(|b| b.closed);
    let old_invites = before.map(|b| b.invites.as_slice()).unwrap_or(&[]);
    // An invitation is the same one when made at the same time by the same
    // inviter to the same invitee with the same requestId: re-inviting with
    // a requestId replaces the old invitation with a new one.
    let same = |a: &crate::store::Invitation, b: &crate::store::Invitation| {
        a.request_id == b.request_id
            && a.from == b.from
            && a.to == b.to
            && a.created_at == b.created_at
    };
    let invitation = |i: &crate::store::Invitation| HookInvitation {
        request_id: i.request_id.clone(),
        from: i.from.clone(),
        to: i.to.clone(),
    };
    let mut sent = Vec::new();
    for inv in &after.invites {
        let event = match old_invites.iter().find(|o| same(o, inv)) {
            None => "invitation.sent",
            Some(old) if old.state != InviteState::Pending || old.state == inv.state => continue,
            Some(_) => match inv.state {
                InviteState::Accepted => "invitation.accepted",
                InviteState::Rejected => "invitation.rejected",
                InviteState::Cancelled => "invitation.cancelled",
                InviteState::Expired => "invitation.timedOut",
                InviteState::Pending => continue,
            },
        };
        let mut h = Hook::about(event, after, v, now);
        h.invitation = Some(invitation(inv));
        if event == "invitation.sent" {
            sent.push(h);
        } else {
            out.push(h);
        }
    }
    let member = |m: &crate::store::RoomMember| HookMember {
        account: m.account.clone(),
        device_id: m.device_id.clone(),
        uid: m.uid,
    };
    if let Some(b) = before.filter(|_| !closing) {
        let gone = match cause {
            // Removed by the operator: it left, as far as the room goes.
            Cause::Request { .. } | Cause::Admin { .. } => "member.left",
            _ => "member.dropped",
        };
        for m in b
            .members
            .iter()
            .filter(|m| after.member(&m.account).is_none())
        {
            let mut h = Hook::about(gone, after, v, now);
            h.member = Some(member(m));
            out.push(h);
        }
    }
    let was_in: HashSet<&str> = before.map(|b| b.accounts().collect()).unwrap_or_default();
    for m in after
        .members
        .iter()
        .filter(|m| !was_in.contains(m.account.as_str()))
    {
        let mut h = Hook::about("member.joined", after, v, now);
        h.member = Some(member(m));
        out.push(h);
    }
    out.extend(sent);
    if closing {
        out.push(Hook::about("room.closed", after, v, now));
    }
    out
}

/// room.expired for each room the sweeper forgot that was not closed (a
/// closed room had its room.closed). Its version is one past the room's
/// last: the forgetting is the room's last change.
pub fn expired(forgotten: &[Room], now: i64) -> Vec<Hook> {
    forgotten
        .iter()
        .filter(|r| !r.closed)
        .map(|r| Hook::about("room.expired", r, r.version + 1, now))
        .collect()
}

/// The webhook counters shown in `/metrics`.
#[derive(Default)]
pub struct Counters {
    pub delivered: AtomicU64,
    /// POSTs not answered 2xx (each retry counts).
    pub attempts_failed: AtomicU64,
    pub dropped_queue_full: AtomicU64,
    pub dropped_gave_up: AtomicU64,
    pub dropped_refused: AtomicU64,
    /// Events queued or being delivered, all receivers together.
    pub queue_depth: AtomicI64,
}

impl Counters {
    /// Appends the webhook series to a Prometheus text exposition.
    pub fn render(&self, out: &mut String) {
        let counter = |out: &mut String, name: &str, help: &str, v: &AtomicU64| {
            let _ = writeln!(out, "# HELP nim_signaling_webhook_{name} {help}");
            let _ = writeln!(out, "# TYPE nim_signaling_webhook_{name} counter");
            let _ = writeln!(out, "nim_signaling_webhook_{name} {}", v.load(Relaxed));
        };
        counter(
            out,
            "delivered_total",
            "Webhooks a receiver answered 2xx.",
            &self.delivered,
        );
        counter(
            out,
            "attempts_failed_total",
            "Webhook POSTs not answered 2xx (network error, timeout, non-2xx).",
            &self.attempts_failed,
        );
        out.push_str("# HELP nim_signaling_webhook_dropped_total Webhooks given up, by reason.\n");
        out.push_str("# TYPE nim_signaling_webhook_dropped_total counter\n");
        for (reason, v) in [
            ("queue_full", &self.dropped_queue_full),
            ("gave_up", &self.dropped_gave_up),
            ("refused", &self.dropped_refused),
        ] {
            let _ = writeln!(
                out,
                "nim_signaling_webhook_dropped_total{{reason=\"{reason}\"}} {}",
                v.load(Relaxed)
            );
        }
        out.push_str(
            "# HELP nim_signaling_webhook_queue_depth Webhooks queued or in flight.\n\
             # TYPE nim_signaling_webhook_queue_depth gauge\n",
        );
        let _ = writeln!(
            out,
            "nim_signaling_webhook_queue_depth {}",
            self.queue_depth.load(Relaxed)
        );
    }
}

/// One event ready to POST, shared by every receiver.
struct Job {
    id: String,
    event: &'static str,
    at: i64,
    body: Bytes,
}

/// What every lane of every receiver needs.
struct Shared {
    secret: String,
    max_attempts: u32,
    retry_base_ms: u64,
    retry_max_ms: u64,
    metrics: Arc<Metrics>,
}

struct Receiver {
    url: Arc<str>,
    lanes: Vec<mpsc::UnboundedSender<Arc<Job>>>,
    /// Events queued or in flight here; bounded by queueSize.
    depth: Arc<AtomicUsize>,
    last_warn: AtomicI64,
}

/// The webhook sender of one node.
pub struct Webhooks {
    receivers: Vec<Receiver>,
    /// None: every event.
    wanted: Option<HashSet<String>>,
    queue_size: usize,
    flush_for: Duration,
    shared: Arc<Shared>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    id_salt: u64,
    id_counter: AtomicU64,
}

impl Webhooks {
    /// Starts the lanes of every receiver (inside a tokio runtime). Fails
    /// when the caFile cannot be read.
    pub fn start(cfg: &WebhooksConfig, metrics: Arc<Metrics>) -> Result<Webhooks, Failure> {
        let roots = Roots::load(cfg.ca_file.as_deref())
            .map_err(|e| Failure::new(INVALID_PARAM, format!("webhooks.caFile: {e}")))?;
        let timeout = Duration::from_millis(cfg.timeout_ms);
        let endpoints = cfg
            .urls
            .iter()
            .map(|url| http::Endpoint::new(url, &roots, timeout))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Failure::new(INVALID_PARAM, format!("webhooks.urls: {e}")))?;
        let shared = Arc::new(Shared {
            secret: cfg.secret.clone(),
            max_attempts: cfg.max_attempts,
            retry_base_ms: cfg.retry_base_ms,
            retry_max_ms: cfg.retry_max_ms,
            metrics,
        });
        let mut tasks = Vec::new();
        let receivers = endpoints
            .into_iter()
            .map(|to| {
                let url: Arc<str> = to.url().into();
                let depth = Arc::new(AtomicUsize::new(0));
                let lanes = (0..LANES)
                    .map(|_| {
                        let (tx, rx) = mpsc::unbounded_channel();
                        tasks.push(tokio::spawn(lane(
                            rx,
                            to.clone(),
                            depth.clone(),
                            shared.clone(),
                        )));
                        tx
                    })
                    .collect();
                Receiver {
                    url,
                    lanes,
                    depth,
                    last_warn: AtomicI64::new(i64::MIN),
                }
            })
            .collect();
        Ok(Webhooks {
            receivers,
            wanted: (!cfg.events.is_empty()).then(|| cfg.events.iter().cloned().collect()),
            queue_size: cfg.queue_size,
            flush_for: Duration::from_millis(cfg.timeout_ms).min(MAX_FLUSH),
            shared,
            tasks: Mutex::new(tasks),
            id_salt: rand::random(),
            id_counter: AtomicU64::new(1),
        })
    }

    /// Unique across nodes and runs (the salt is random per process).
    fn new_id(&self) -> String {
        let n = self.id_counter.fetch_add(1, Relaxed);
        format!("{:016x}{:08x}", self.id_salt, n)
    }

    /// Queues `hooks` (made by one change at `at`, for `cause`) to every
    /// receiver, without waiting.
    pub fn send(&self, hooks: Vec<Hook>, cause: &Cause, at: i64) {
        for h in hooks {
            if self.wanted.as_ref().is_some_and(|w| !w.contains(h.event)) {
                continue;
            }
            let id = self.new_id();
            let job = Arc::new(Job {
                body: Bytes::from(h.body(&id, at, cause).to_string()),
                id,
                event: h.event,
                at,
            });
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            h.channel_info.channel_id.hash(&mut hasher);
            let lane = (hasher.finish() % LANES as u64) as usize;
            for r in &self.receivers {
                self.enqueue(r, lane, job.clone(), at);
            }
        }
    }

    fn enqueue(&self, r: &Receiver, lane: usize, job: Arc<Job>, now: i64) {
        let m = &self.shared.metrics.webhooks;
        if r.depth.fetch_add(1, Relaxed) >= self.queue_size {
            r.depth.fetch_sub(1, Relaxed);
            let n = m.dropped_queue_full.fetch_add(1, Relaxed) + 1;
            let last = r.last_warn.load(Relaxed);
            if now.saturating_sub(last) >= WARN_EVERY_MS
                && r.last_warn
                    .compare_exchange(last, now, Relaxed, Relaxed)
                    .is_ok()
            {
                tracing::warn!(receiver = %r.url, dropped_so_far = n, event = job.event,
                    "webhook queue full (webhooks.queueSize): new events are dropped");
            }
            return;
        }
        m.queue_depth.fetch_add(1, Relaxed);
        if r.lanes[lane].send(job).is_err() {
            // The lanes stopped (shutdown): nothing will take it.
            r.depth.fetch_sub(1, Relaxed);
            m.queue_depth.fetch_sub(1, Relaxed);
        }
    }

    fn queued(&self) -> usize {
        self.receivers.iter().map(|r| r.depth.load(Relaxed)).sum()
    }

    /// Gives queued events up to min(timeoutMs, 5 s) to go out, then stops
    /// every lane and waits until they have stopped. Whatever is still
    /// queued then is lost (as when the node dies).
    pub async fn shutdown(&self) {
        let until = tokio::time::Instant::now() + self.flush_for;
        while self.queued() > 0 && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let left = self.queued();
        if left > 0 {
            tracing::warn!(
                events = left,
                "webhooks not delivered before shutdown are lost"
            );
        }
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            let _ = t.await;
        }
    }
}

/// The engine's room changes become webhooks: facts derived from each
/// change's before and after, queued without waiting.
impl Observer for Webhooks {
    fn watches_rooms(&self) -> bool {
        true
    }
    fn room_changed(&self, before: Option<&Room>, after: &Room, cause: &Cause<'_>, now: i64) {
        self.send(facts(before, after, cause, now), cause, now);
    }
    fn rooms_forgotten(&self, rooms: &[Room], now: i64) {
        self.send(expired(rooms, now), &Cause::RoomExpiry, now);
    }
}

/// Delivers the events of one lane of one receiver, one at a time.
async fn lane(
    mut rx: mpsc::UnboundedReceiver<Arc<Job>>,
    to: http::Endpoint,
    depth: Arc<AtomicUsize>,
    shared: Arc<Shared>,
) {
    while let Some(job) = rx.recv().await {
        deliver(&to, &job, &shared).await;
        depth.fetch_sub(1, Relaxed);
        shared.metrics.webhooks.queue_depth.fetch_sub(1, Relaxed);
    }
}

/// Whether a receiver's answer asks to be tried again later.
fn retryable(status: u16) -> bool {
    status >= 500 || status == 408 || status == 429
}

/// The wait before attempt `attempt + 1`: base × 2^(attempt-1), capped,
/// then drawn from its upper half so that retries of many nodes spread out.
fn backoff(attempt: u32, base_ms: u64, max_ms: u64) -> Duration {
    let full = base_ms
        .saturating_mul(1u64 << (attempt - 1).min(40))
        .min(max_ms);
    let half = full / 2;
    Duration::from_millis(half + rand::random::<u64>() % (full - half + 1))
}

async fn deliver(to: &http::Endpoint, job: &Job, s: &Shared) {
    let url = to.url();
    let m = &s.metrics.webhooks;
    // Signed once: retries carry the event's own time, so `t` is the same
    // in the body and the signature (receivers dedupe by id).
    let signature = http::signature(&s.secret, job.at, &job.body);
    for attempt in 1..=s.max_attempts {
        let headers = [
            (http::SIGNATURE_HEADER, signature.clone()),
            ("x-nim-event", job.event.to_string()),
            ("x-nim-delivery", job.id.clone()),
            ("x-nim-attempt", attempt.to_string()),
        ];
        let why = match to.post_json(&headers, job.body.clone()).await {
            Ok(status) if (200..300).contains(&status) => {
                m.delivered.fetch_add(1, Relaxed);
                return;
            }
            Ok(status) if !retryable(status) => {
                m.attempts_failed.fetch_add(1, Relaxed);
                m.dropped_refused.fetch_add(1, Relaxed);
                tracing::warn!(receiver = %url, status, id = %job.id, event = job.event,
                    "webhook refused by the receiver; dropped");
                return;
            }
            Ok(status) => format!("answered {status}"),
            Err(e) => e,
        };
        m.attempts_failed.fetch_add(1, Relaxed);
        tracing::debug!(receiver = %url, attempt, id = %job.id, error = %why, "webhook attempt failed");
        if attempt < s.max_attempts {
            tokio::time::sleep(backoff(attempt, s.retry_base_ms, s.retry_max_ms)).await;
        }
    }
    m.dropped_gave_up.fetch_add(1, Relaxed);
    tracing::warn!(receiver = %url, id = %job.id, event = job.event, attempts = s.max_attempts,
        "webhook not delivered after every attempt; dropped");
}

#[cfg(test)]
#[path = "webhooks_tests.rs"]
mod tests;
