//! The async Rust client the C ABI wraps: one connection task per client,
//! request/reply correlation with deadlines, events delivered in the order
//! they arrived, reconnection with resume.
//!
//! Everything the app sees — request completions and notifications — leaves
//! the connection task through calls made in frame order, so a consumer
//! that queues them (the C ABI's dispatcher) keeps that order.

pub mod config;
mod connection;
pub(crate) mod tls;

use serde_json::Value;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

pub use config::ClientConfig;
use nim_signaling_protocol::codes::{self, INTERNAL};
use nim_signaling_protocol::frames::{self, result_object};
use nim_signaling_protocol::Failure;

/// Requests one client may have outstanding. Beyond it new requests are
/// refused at once with 416, so an app that keeps sending into a dead or
/// slow connection cannot grow the client's memory without bound.
pub const MAX_IN_FLIGHT: usize = 10_000;

/// Notifications the app may leave unconsumed before the client stops
/// reading from the server (see [`Backlog`]).
pub const MAX_BACKLOG: usize = 1024;

/// The server's frame limit assumed until a login reply says otherwise:
/// the documented default of `maxFrameBytes` (docs/PROTOCOL.md).
pub const DEFAULT_MAX_FRAME_BYTES: usize = 64 * 1024;

/// Counts notifications handed to the sink that the app has not consumed
/// yet. A consumer that reports them (`add` when queued, `done` when
/// handled — the C ABI's dispatcher does) bounds the client's memory: at
/// [`MAX_BACKLOG`] the connection stops reading from the socket until half
/// of them are handled. The server then holds the events in its log (or,
/// if the pause outlasts its patience, drops the connection, and the client
/// resumes from its last seq), so a slow app loses nothing and costs a
/// bounded amount of memory.
#[derive(Debug, Default)]
pub struct Backlog {
    waiting: AtomicUsize,
    drained: tokio::sync::Notify,
}

impl Backlog {
    pub fn add(&self) {
        self.waiting.fetch_add(1, Ordering::SeqCst);
    }

    pub fn done(&self) {
        let left = self
            .waiting
            .fetch_sub(1, Ordering::SeqCst)
            .saturating_sub(1);
        if left <= MAX_BACKLOG / 2 {
            self.drained.notify_one();
        }
    }

    /// Notifications queued and not yet handled.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    fn full(&self) -> bool {
        self.waiting() >= MAX_BACKLOG
    }

    /// Waits until the backlog is down to half.
    async fn drained(&self) {
        while self.waiting() > MAX_BACKLOG / 2 {
            self.drained.notified().await;
        }
    }
}

/// Connection states reported to the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnState {
    Connecting,
    Connected,
    Reconnecting,
    Disconnected,
    Kicked,
}

impl ConnState {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnState::Connecting => "connecting",
            ConnState::Connected => "connected",
            ConnState::Reconnecting => "reconnecting",
            ConnState::Disconnected => "disconnected",
            ConnState::Kicked => "kicked",
        }
    }
}

/// Something the server told us, as JSON text ready for the app.
#[derive(Debug, Clone, PartialEq)]
pub enum Notification {
    /// signalingNotify: one event.
    Online(String),
    /// signalingMutilClientSyncNotify: one event.
    MultiClientSync(String),
    /// signalingMembersSyncNotify: `{"channelInfo", "members"}`.
    MembersSync(String),
    /// Offline events at login: `{"eventList":[...]}`.
    Offline(String),
    /// Rooms I am in, after each login: `{"channels":[...]}`.
    Channels(String),
    /// `{"state": "...", "code": N}`, plus `"resync"` (see [`StateChange`]).
    ConnectionState(StateChange),
}

/// One connection state change.
#[derive(Debug, Clone, PartialEq)]
pub struct StateChange {
    pub state: ConnState,
    pub code: i32,
    /// On `connected` after a reconnect: the server could not continue the
    /// event stream where this client left off (`"trimmed"`: the events it
    /// missed were dropped from the log; `"stateLost"`: the server lost its
    /// state, e.g. restarted). On any `connected`, `"trimmed"` also when the
    /// offline list that follows is incomplete (the account's offline list
    /// was full, `maxOfflineEvents`, and dropped its oldest events). Events
    /// may have been missed; the offline list and channels sync that follow
    /// are the state to rebuild from.
    pub resync: Option<String>,
}

impl StateChange {
    pub fn new(state: ConnState, code: i32) -> Self {
        StateChange {
            state,
            code,
            resync: None,
        }
    }

    /// The payload the C callback gets.
    pub fn to_json(&self) -> String {
        let mut v = serde_json::json!({"state": self.state.as_str(), "code": self.code});
        if let Some(r) = &self.resync {
            v["resync"] = r.as_str().into();
        }
        v.to_string()
    }
}

/// Where notifications go. Called on the connection task, in order; must
/// not block.
pub type Sink = Arc<dyn Fn(Notification) + Send + Sync>;

/// Completes one request exactly once: with the reply, or — if it is
/// dropped unfired (timeout bookkeeping, shutdown, a bug) — with an error.
pub struct Completer {
    f: Option<Box<dyn FnOnce(i32, String) + Send>>,
}

impl Completer {
    pub fn new(f: impl FnOnce(i32, String) + Send + 'static) -> Self {
        Completer {
            f: Some(Box::new(f)),
        }
    }

    /// Fires with a result object (JSON text whose `code` equals `code`).
    pub fn complete(mut self, code: i32, result_json: String) {
        if let Some(f) = self.f.take() {
            f(code, result_json);
        }
    }

    /// Drops the completer without firing it: for a request refused up
    /// front, whose caller reports the refusal itself.
    pub fn cancel(mut self) {
        self.f = None;
    }

    /// Fires with a failure object made of `code` and `message`.
    pub fn fail(self, code: i32, message: &str) {
        let json = result_object(code, Some(message), None).to_string();
        self.complete(code, json);
    }
}

impl Drop for Completer {
    fn drop(&mut self) {
        if let Some(f) = self.f.take() {
            // Every path completes explicitly; reaching this is a bug, but
            // the app still gets its one callback.
            tracing::error!("request completer dropped without firing");
            let json = result_object(INTERNAL, Some("request abandoned"), None).to_string();
            f(INTERNAL, json);
        }
    }
}

pub(crate) enum Cmd {
    Login(Completer),
    Logout(Completer),
    Request {
        op: &'static str,
        params: Value,
        done: Completer,
        deadline: tokio::time::Instant,
    },
}

/// A client handle. Cheap to clone; the connection task ends when
/// [`Client::shutdown`] is called or every handle is dropped.
#[derive(Clone)]
pub struct Client {
    cfg: Arc<ClientConfig>,
    cmds: mpsc::UnboundedSender<Cmd>,
    shared: Arc<Shared>,
}

/// State readable from any thread without asking the connection task.
pub(crate) struct Shared {
    /// From a successful login until logout, kick or a final disconnect
    /// (true while reconnecting: requests then wait for the connection).
    pub logged_in: AtomicBool,
    pub shutdown: tokio::sync::Notify,
    pub stopped: AtomicBool,
    /// Requests started and not yet completed (see [`MAX_IN_FLIGHT`]).
    pub in_flight: AtomicUsize,
    /// What the app has not consumed yet (see [`Backlog`]).
    pub backlog: Arc<Backlog>,
    /// The largest frame the server accepts: its login reply's
    /// `maxFrameBytes`, [`DEFAULT_MAX_FRAME_BYTES`] before the first login.
    pub max_frame: AtomicUsize,
    /// Set (and signalled) when the connection task has ended: after that
    /// no completion or notification comes from it.
    pub finished: std::sync::Mutex<bool>,
    pub finished_cv: std::sync::Condvar,
}

/// Marks the task finished when dropped, however the task ends.
struct FinishGuard(Arc<Shared>);

impl Drop for FinishGuard {
    fn drop(&mut self) {
        let mut f = self.0.finished.lock().unwrap_or_else(|e| e.into_inner());
        *f = true;
        self.0.finished_cv.notify_all();
    }
}

impl Client {
    /// Starts the connection task on the current tokio runtime. Nothing is
    /// sent until [`Client::login`].
    pub fn new(cfg: ClientConfig, sink: Sink) -> Client {
        Self::with_backlog(cfg, sink, Arc::default())
    }

    /// Like [`Client::new`], for a sink that reports what the app has
    /// consumed through `backlog`.
    pub fn with_backlog(cfg: ClientConfig, sink: Sink, backlog: Arc<Backlog>) -> Client {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            logged_in: AtomicBool::new(false),
            shutdown: tokio::sync::Notify::new(),
            stopped: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            backlog,
            max_frame: AtomicUsize::new(DEFAULT_MAX_FRAME_BYTES),
            finished: std::sync::Mutex::new(false),
            finished_cv: std::sync::Condvar::new(),
        });
        let cfg = Arc::new(cfg);
        let cfg2 = cfg.clone();
        let guard = FinishGuard(shared.clone());
        let task_shared = shared.clone();
        tokio::spawn(async move {
            let _guard = guard;
            connection::run(cfg2, sink, rx, task_shared).await;
        });
        Client {
            cfg,
            cmds: tx,
            shared,
        }
    }

    pub fn config(&self) -> &ClientConfig {
        &self.cfg
    }

    pub fn is_logged_in(&self) -> bool {
        self.shared.logged_in.load(Ordering::SeqCst)
    }

    fn send(&self, cmd: Cmd) {
        if let Err(mpsc::error::SendError(cmd)) = self.cmds.send(cmd) {
            let done = match cmd {
                Cmd::Login(d) | Cmd::Logout(d) => d,
                Cmd::Request { done, .. } => done,
            };
            done.fail(codes::NOT_CONNECTED, "client is shut down");
        }
    }

    /// Connects and logs in; `done` gets the login result.
    pub fn login_with(&self, done: Completer) {
        self.send(Cmd::Login(done));
    }

    /// Logs out and disconnects (no reconnect).
    pub fn logout_with(&self, done: Completer) {
        self.send(Cmd::Logout(done));
    }

    /// Sends a request; `done` fires exactly once with the result — the
    /// reply, 408 at the request timeout, or 415 when the client is not
    /// logged in or shuts down. `params` must have passed
    /// [`nim_signaling_protocol::Request::parse`] for `op`.
    ///
    /// Refused up front — `done` handed back unfired with the failure —
    /// when its frame would exceed the server's frame limit (414: the
    /// server would close the connection rather than read it) or the
    /// client already has [`MAX_IN_FLIGHT`] requests outstanding (416).
    pub fn request_with(
        &self,
        op: &'static str,
        params: Value,
        done: Completer,
    ) -> Result<(), (Completer, Failure)> {
        if let Err(f) = self.check_frame_size(op, &params) {
            return Err((done, f));
        }
        if self.shared.in_flight.fetch_add(1, Ordering::SeqCst) >= MAX_IN_FLIGHT {
            self.shared.in_flight.fetch_sub(1, Ordering::SeqCst);
            let f = Failure::new(codes::RATE_LIMITED, "too many requests outstanding");
            return Err((done, f));
        }
        let shared = self.shared.clone();
        let done = Completer::new(move |code, json| {
            shared.in_flight.fetch_sub(1, Ordering::SeqCst);
            done.complete(code, json);
        });
        let deadline = tokio::time::Instant::now()
            + std::time::Duration::from_millis(self.cfg.request_timeout_ms);
        self.send(Cmd::Request {
            op,
            params,
            done,
            deadline,
        });
        Ok(())
    }

    /// The server's frame limit as this client knows it (see
    /// [`DEFAULT_MAX_FRAME_BYTES`]).
    pub fn max_frame_bytes(&self) -> usize {
        self.shared.max_frame.load(Ordering::SeqCst)
    }

    /// 414 when the request's frame (with the largest id and ack it could
    /// carry) is over the server's frame limit.
    fn check_frame_size(&self, op: &str, params: &Value) -> Result<(), Failure> {
        let limit = self.max_frame_bytes();
        let size = frames::request_frame(u64::MAX, op, params, Some(u64::MAX)).len();
        if size > limit {
            return Err(Failure::new(
                codes::INVALID_PARAM,
                format!(
                    "request frame of {size} bytes is larger than the server's limit \
                     (maxFrameBytes {limit})"
                ),
            ));
        }
        Ok(())
    }

    async fn wait(f: impl FnOnce(Completer)) -> (i32, String) {
        let (tx, rx) = oneshot::channel();
        f(Completer::new(move |c, j| {
            let _ = tx.send((c, j));
        }));
        rx.await.unwrap_or((
            INTERNAL,
            r#"{"code":500,"message":"request abandoned"}"#.into(),
        ))
    }

    pub async fn login(&self) -> (i32, String) {
        Self::wait(|d| self.login_with(d)).await
    }

    pub async fn logout(&self) -> (i32, String) {
        Self::wait(|d| self.logout_with(d)).await
    }

    /// Sends `op` with `params` (validated first: 414 without sending).
    pub async fn request(&self, op: &str, params: Value) -> (i32, String) {
        match nim_signaling_protocol::Request::parse(op, &params) {
            Ok(req) => {
                Self::wait(|d| {
                    if let Err((refused, f)) = self.request_with(req.op(), params, d) {
                        refused.fail(f.code, &f.message);
                    }
                })
                .await
            }
            Err(f) => (
                f.code,
                result_object(f.code, Some(&f.message), None).to_string(),
            ),
        }
    }

    /// Stops the connection task; pending requests complete with 415.
    /// Returns at once; the task finishes in the background.
    pub fn shutdown(&self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        self.shared.logged_in.store(false, Ordering::SeqCst);
        self.shared.shutdown.notify_one();
    }

    /// Blocks the calling thread (never a runtime thread) until the
    /// connection task has ended, at most `limit`. Returns whether it ended.
    pub fn wait_finished_blocking(&self, limit: std::time::Duration) -> bool {
        let f = self
            .shared
            .finished
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let (f, _) = self
            .shared
            .finished_cv
            .wait_timeout_while(f, limit, |done| !*done)
            .unwrap_or_else(|e| e.into_inner());
        *f
    }
}

/// A sink that forwards notifications into a channel (for Rust users and
/// tests).
pub fn channel_sink() -> (Sink, mpsc::UnboundedReceiver<Notification>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (
        Arc::new(move |n| {
            let _ = tx.send(n);
        }),
        rx,
    )
}
