//! One session per connection: the WebSocket handshake, login (nothing else
//! is accepted before it), then requests in and events out until the peer
//! leaves, goes silent, is replaced by a newer login, or the server stops.

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::handshake::server::{
    ErrorResponse, Request as HsRequest, Response as HsResponse,
};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;
use tracing::Instrument;

use crate::engine::observe::{Happening, Observer};
use crate::engine::router::SessionLink;
use crate::engine::service::{now_ms, Service, SessionInfo, MAX_OFFLINE_EVENTS};
use crate::net::limits::{Admission, ConnectionLimits, DeviceRate};
use crate::net::tls::{ServerStream, TlsAcceptor};
use crate::store::{LogEntry, ResyncReason};
use crate::ServerConfig;
use crate::{Phase, Stopping};
use nim_signaling_protocol::codes::{
    AUTH_FAILED, FORBIDDEN, INVALID_PARAM, NOT_CONNECTED, OK, RATE_LIMITED,
};
use nim_signaling_protocol::frames::{self, ClientFrame, Rid, SUBPROTOCOL};
use nim_signaling_protocol::params::LoginParams;
use nim_signaling_protocol::{Failure, Request};

type Ws = WebSocketStream<ServerStream>;

/// Why the server closes a connection, and the close code and reason it
/// sends for it: the table *Closes* in docs/PROTOCOL.md. Codes 4000–4099
/// are ours; 4000 + a NIM code follows a failure reply with that code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Farewell {
    /// After the reply to `logout`.
    LoggedOut,
    /// The peer broke the WebSocket protocol (e.g. an unmasked frame).
    ProtocolError,
    /// A text frame that is not UTF-8.
    NotUtf8,
    /// A frame larger than maxFrameBytes.
    TooBig,
    /// The store failed while events were being sent.
    StoreFailed,
    /// The server shuts down (after sending the session its events).
    ShuttingDown,
    /// The store lost its state; the resume is answered with a resync.
    StateLost,
    /// Nothing heard for heartbeatTimeoutMs.
    HeartbeatTimeout,
    /// No login within loginTimeoutMs.
    LoginTimeout,
    /// The peer did not take a reply or an event batch in time.
    SlowReader,
    /// Events not sent yet were trimmed from the log; resume to learn it.
    Trimmed,
    /// No login yet when every place among the pending logins
    /// (maxPendingLogins) was taken and a new connection came: the oldest
    /// pending one gives its place up.
    Crowded,
    /// The login was refused (302).
    AuthFailed,
    /// Replaced by a newer login of the same device (after `kicked`).
    Replaced,
    /// Ended by the administrator (after `kicked`).
    Evicted,
    /// The first frame was not a request, or its login params were invalid (414).
    BadLogin,
    /// The first request was not a login (415).
    NotLoggedIn,
    /// A connection or device limit (416).
    OverLimit,
    /// The login failed on our side (500).
    LoginFailed,
}

impl Farewell {
    /// Every farewell, for the table test.
    pub const ALL: &'static [Farewell] = &[
        Farewell::LoggedOut,
        Farewell::ProtocolError,
        Farewell::NotUtf8,
        Farewell::TooBig,
        Farewell::StoreFailed,
        Farewell::ShuttingDown,
        Farewell::StateLost,
        Farewell::HeartbeatTimeout,
        Farewell::LoginTimeout,
        Farewell::SlowReader,
        Farewell::Trimmed,
        Farewell::Crowded,
        Farewell::AuthFailed,
        Farewell::Replaced,
        Farewell::Evicted,
        Farewell::BadLogin,
        Farewell::NotLoggedIn,
        Farewell::OverLimit,
        Farewell::LoginFailed,
    ];

    /// The close code and reason sent.
    pub fn code_and_reason(self) -> (u16, &'static str) {
        match self {
            Farewell::LoggedOut => (1000, "logged out"),
            Farewell::ProtocolError => (1002, "WebSocket protocol error"),
            Farewell::NotUtf8 => (1007, "text frame is not UTF-8"),
            Farewell::TooBig => (1009, "frame larger than maxFrameBytes"),
            Farewell::StoreFailed => (1011, "store unavailable; reconnect"),
            Farewell::ShuttingDown => (1012, "server shutting down; reconnect"),
            Farewell::StateLost => (1012, "server lost its state; reconnect"),
            Farewell::HeartbeatTimeout => (4000, "heartbeat timeout"),
            Farewell::LoginTimeout => (4001, "login timeout"),
            Farewell::SlowReader => (4002, "not reading fast enough; reconnect"),
            Farewell::Trimmed => (4003, "events trimmed before they were sent; reconnect"),
            Farewell::Crowded => (
                4004,
                "no login yet while the server was full of pending logins; reconnect",
            ),
            Farewell::AuthFailed => (4302, "authentication failed"),
            Farewell::Replaced => (4403, "replaced by a newer login of this device"),
            Farewell::Evicted => (4403, "ended by the server's administrator"),
            Farewell::BadLogin => (4414, "invalid login frame"),
            Farewell::NotLoggedIn => (4415, "log in first"),
            Farewell::OverLimit => (4416, "connection limit"),
            Farewell::LoginFailed => (4500, "login failed on the server; reconnect"),
        }
    }

    fn frame(self) -> CloseFrame {
        let (code, reason) = self.code_and_reason();
        CloseFrame {
            code: CloseCode::from(code),
            reason: reason.into(),
        }
    }

    /// Whether this farewell follows a frame tungstenite refused, whose
    /// rest may still be on its way (see [`close_politely`]).
    fn after_read_error(self) -> bool {
        matches!(
            self,
            Farewell::TooBig | Farewell::NotUtf8 | Farewell::ProtocolError
        )
    }

    /// The farewell for a read error, if the connection can still take one.
    fn for_read_error(e: &WsError) -> Option<Farewell> {
        match e {
            WsError::Capacity(_) => Some(Farewell::TooBig),
            WsError::Utf8(_) => Some(Farewell::NotUtf8),
            WsError::Protocol(_) => Some(Farewell::ProtocolError),
            _ => None,
        }
    }
}

/// Session ids must differ across the nodes sharing a store (a login on one
/// node replaces a session on another by id): each process counts from a
/// random start, far from every other's.
static SESSION_IDS: once_cell::sync::Lazy<AtomicU64> =
    once_cell::sync::Lazy::new(|| AtomicU64::new(rand::random::<u64>() >> 12));

/// Events read from the log per batch; one flush per batch.
const DRAIN_BATCH: usize = 256;

/// What an idle connection keeps for reading. Our frames are small; a
/// larger one grows the buffer while it is read (up to maxFrameBytes).
const READ_BUFFER: usize = 512;

/// The tungstenite settings for server sessions: bounded frames, small
/// buffers (idle connections must stay cheap).
pub fn ws_config(max_frame: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(max_frame))
        .max_frame_size(Some(max_frame))
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(max_frame * 4)
}

/// Echoes our subprotocol when the client offers it. Clients that offer
/// none are served too (the protocol version is then implied).
fn negotiate(req: &HsRequest, mut resp: HsResponse) -> Result<HsResponse, ErrorResponse> {
    let offered = req
        .headers()
        .get_all("Sec-WebSocket-Protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == SUBPROTOCOL);
    if offered {
        resp.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static(SUBPROTOCOL),
        );
    }
    Ok(resp)
}

/// Longest a single reply may wait for a peer that does not read; then the
/// session ends (event batches have their own bound, see `drain`).
const WRITE_PATIENCE: Duration = Duration::from_secs(20);

/// Err(None): the connection broke; Err(Some): the peer does not read.
async fn send_text(ws: &mut Ws, text: String) -> Result<(), Option<Farewell>> {
    match tokio::time::timeout(WRITE_PATIENCE, ws.send(Message::text(text))).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(None),
        Err(_) => Err(Some(Farewell::SlowReader)),
    }
}

/// The first data frame of a connection: its text, or why there is none.
enum First {
    Text(String),
    Binary,
    /// The peer left (or broke the connection) before sending one; the
    /// farewell is the close to send, when one can still be sent.
    Gone(Option<Farewell>),
}

/// Reads frames until one carries data (the caller bounds the wait).
async fn first_frame(ws: &mut Ws) -> First {
    while let Some(msg) = ws.next().await {
        match msg {
            Ok(Message::Text(t)) => return First::Text(t.to_string()),
            Ok(Message::Binary(_)) => return First::Binary,
            Ok(Message::Ping(_)) | Ok(Message::Pong(_)) | Ok(Message::Frame(_)) => continue,
            Ok(Message::Close(_)) => return First::Gone(None),
            Err(e) => return First::Gone(Farewell::for_read_error(&e)),
        }
    }
    First::Gone(None)
}

/// Waits for the login request; answers failures and returns for them the
/// farewell to close with (None: the peer is gone, nothing to send).
async fn login(
    ws: &mut Ws,
    cfg: &ServerConfig,
    observer: &dyn Observer,
) -> Result<(u64, LoginParams), Option<Farewell>> {
    let frame: Option<ClientFrame> = match first_frame(ws).await {
        First::Text(text) => serde_json::from_str(&text).ok(),
        First::Binary => None,
        First::Gone(farewell) => return Err(farewell),
    };
    let Some(frame) = frame.filter(|f| f.t == "req") else {
        let _ = send_text(
            ws,
            frames::failure_frame(0, &Failure::new(INVALID_PARAM, "not a request frame")),
        )
        .await;
        return Err(Some(Farewell::BadLogin));
    };
    let id = frame.id.unwrap_or(0);
    if frame.op.as_deref() != Some("login") {
        let _ = send_text(
            ws,
            frames::failure_frame(id, &Failure::new(NOT_CONNECTED, "log in first")),
        )
        .await;
        return Err(Some(Farewell::NotLoggedIn));
    }
    let params = frame.params.unwrap_or(json!({}));
    let p = match Request::parse("login", &params) {
        Ok(Request::Login(p)) => p,
        Ok(_) => return Err(Some(Farewell::BadLogin)),
        Err(f) => {
            let _ = send_text(ws, frames::failure_frame(id, &f)).await;
            return Err(Some(Farewell::BadLogin));
        }
    };
    let now_secs = (now_ms() / 1000) as u64;
    if !cfg.auth.verify(&p.account, &p.token, now_secs) {
        tracing::info!(account = %p.account, device = %p.device_id, "login refused: bad token");
        observer.happened(Happening::LoginRefused);
        let f = Failure::new(
            AUTH_FAILED,
            "authentication failed: unknown account or bad token",
        );
        let _ = send_text(ws, frames::failure_frame(id, &f)).await;
        return Err(Some(Farewell::AuthFailed));
    }
    Ok((id, p))
}

/// Runs `step`, one of the steps before the login (the handshakes, the
/// wait for the login frame), unless the login deadline passes, a new
/// connection takes this one's pending place first, or the server starts
/// shutting down (a connection that never logs in would otherwise hold
/// the shutdown up until its login timeout): then the farewell.
async fn before_login<T>(
    deadline: tokio::time::Instant,
    admission: &mut Admission,
    server: &mut watch::Receiver<Phase>,
    step: impl Future<Output = T>,
) -> Result<T, Farewell> {
    tokio::select! {
        done = tokio::time::timeout_at(deadline, step) => done.map_err(|_| Farewell::LoginTimeout),
        () = admission.evicted() => {
            tracing::debug!("pending logins full: closed for a newer connection");
            Err(Farewell::Crowded)
        }
        _ = server.wait_for(|p| *p != Phase::Serving) => Err(Farewell::ShuttingDown),
    }
}

/// Serves one TCP connection to its end (over TLS when `tls` is set),
/// holding `admission`'s places in `limits` until then.
pub(crate) async fn serve(
    svc: Arc<Service>,
    cfg: Arc<ServerConfig>,
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    stopping: Arc<Stopping>,
    limits: Arc<ConnectionLimits>,
    mut admission: Admission,
) {
    // Subscribed before anything else: a shutdown that starts while this
    // connection is still logging in is seen by the loop at once.
    let mut phase = stopping.phase.subscribe();
    let _ = stream.set_nodelay(true);
    // The TLS and WebSocket handshakes and the login share one deadline,
    // counted from accept: a peer that connects and never finishes them is
    // closed loginTimeoutMs after it connected, however late in that span it
    // finishes the handshakes.
    let login_deadline = tokio::time::Instant::now() + Duration::from_millis(cfg.login_timeout_ms);
    //
    // This and the other one-off phases below are boxed: a future is as
    // large as its largest await point, and every idle connection would
    // otherwise carry the handshake's and the login's space for its life.
    let hs = Box::pin(async {
        let stream = ServerStream::accept(stream, tls.as_ref())
            .await
            .map_err(|e| tracing::debug!(error = %e, "TLS handshake failed"))?;
        let draining = svc.draining.load(Ordering::Relaxed);
        let ws = tokio_tungstenite::accept_hdr_async_with_config(
            stream,
            |req: &HsRequest, resp: HsResponse| {
                if draining {
                    // Refused before the WebSocket exists: the client counts
                    // it as a failed connection and tries its next server.
                    let mut refusal = ErrorResponse::new(Some("node draining\n".into()));
                    *refusal.status_mut() =
                        tokio_tungstenite::tungstenite::http::StatusCode::SERVICE_UNAVAILABLE;
                    return Err(refusal);
                }
                negotiate(req, resp)
            },
            Some(ws_config(cfg.max_frame_bytes)),
        );
        ws.await.map_err(|_| ())
    });
    // Cut short by the deadline or an eviction: there is no WebSocket
    // to close yet, the TCP connection is dropped.
    let Ok(Ok(mut ws)) = before_login(login_deadline, &mut admission, &mut phase, hs).await else {
        return;
    };
    let login = before_login(
        login_deadline,
        &mut admission,
        &mut phase,
        Box::pin(login(&mut ws, &cfg, &*svc.observer)),
    )
    .await;
    let (login_id, p) = match login {
        Ok(Ok(l)) => l,
        Ok(Err(farewell)) => {
            Box::pin(close_politely(&mut ws, farewell)).await;
            return;
        }
        Err(farewell) => {
            Box::pin(close_politely(&mut ws, Some(farewell))).await;
            return;
        }
    };
    // The login is in and its token checks out: from here no new
    // connection can take this one's pending place, however long the
    // store takes to answer. One that took it first wins; then the login
    // goes unanswered (a failed login reply would make the client give
    // up; the close makes it reconnect).
    if !admission.claim_place() {
        Box::pin(close_politely(&mut ws, Some(Farewell::Crowded))).await;
        return;
    }
    let devices = match svc.store.devices_of(&p.account).await {
        Ok(d) => d,
        Err(e) => {
            let f = Failure::from(e);
            tracing::warn!(account = %p.account, error = %f, "login failed: store unavailable");
            let _ = send_text(&mut ws, frames::failure_frame(login_id, &f)).await;
            Box::pin(close_politely(&mut ws, Some(Farewell::LoginFailed))).await;
            return;
        }
    };
    let max = cfg.max_devices_per_account;
    // A login costs a request: logins under ever new deviceIds are held to
    // the account's rate like everything else it sends.
    let rate = limits.rates.of(&p.account, &p.device_id, Instant::now());
    let admitted = if devices.len() >= max && !devices.contains(&p.device_id) {
        Err(Failure::new(
            RATE_LIMITED,
            format!("this account already has {max} devices online (maxDevicesPerAccount)"),
        ))
    } else if let Err(f) = rate.take_login(Instant::now()) {
        Err(f)
    } else {
        // The login succeeds: from here the connection is a session,
        // counted against maxConnections, no longer against
        // maxPendingLogins.
        admission.log_in(&limits)
    };
    if let Err(f) = admitted {
        // The message names the limit.
        tracing::info!(account = %p.account, reason = %f.message, "login refused");
        svc.observer.happened(Happening::LoginRefused);
        let _ = send_text(&mut ws, frames::failure_frame(login_id, &f)).await;
        Box::pin(close_politely(&mut ws, Some(Farewell::OverLimit))).await;
        return;
    }
    let account = p.account.clone();
    let device = p.device_id.clone();
    let session_id = SESSION_IDS.fetch_add(1, Ordering::Relaxed);
    let link = Arc::new(SessionLink::new(session_id, device.clone()));

    // Read the log bounds before going live: anything appended after this
    // point has a larger seq and is sent live; anything before it and kept
    // for offline delivery is in the offline list. Nothing falls between.
    let bounds = match svc.store.log_bounds(&account).await.map_err(Failure::from) {
        Ok(b) => b,
        Err(f) => {
            tracing::warn!(%account, error = %f, "login failed: store unavailable");
            let _ = send_text(&mut ws, frames::failure_frame(login_id, &f)).await;
            Box::pin(close_politely(&mut ws, Some(Farewell::LoginFailed))).await;
            return;
        }
    };
    svc.hub.register(&account, link.clone());
    if let Some(old) = svc.store.session_up(&account, &device, session_id).await {
        // The replaced session may live on another node.
        svc.hub.kick(&account, old);
        svc.store
            .broadcast(crate::store::Signal::Kick {
                account: account.clone(),
                session: old,
            })
            .await;
    }
    // Resume continues the device's stream after its last seq; when that is
    // impossible the reply says why and the device starts afresh (offline
    // list + channels), so a gap is never silent.
    let resync = p
        .resume_seq
        .and_then(|seq| bounds.resume_gap(p.resume_epoch.as_deref().unwrap_or_default(), seq));
    let resumed = p.resume_seq.filter(|_| resync.is_none());
    let offline_from = svc.store.cursor(&account, &device).await;
    // A fresh start whose offline list lost an event to its cap says so
    // too: the app must not take the list for everything it missed.
    let resync = resync.or_else(|| {
        (resumed.is_none() && bounds.offline_trimmed > offline_from)
            .then_some(ResyncReason::Trimmed)
    });
    let mut cursor = resumed.unwrap_or(bounds.head);
    let info = SessionInfo {
        account: account.clone(),
        device: device.clone(),
        offline_from,
        offline_to: bounds.head,
        instance: p.instance.clone(),
    };

    let now = now_ms();
    let mut reply = json!({
        "code": OK, "account": account, "deviceId": device, "seq": cursor,
        "epoch": bounds.epoch, "resumed": resumed.is_some(),
        "heartbeatIntervalMs": cfg.heartbeat_interval_ms,
        "maxFrameBytes": cfg.max_frame_bytes,
    });
    if let Some(r) = resync {
        reply["resync"] = r.as_str().into();
    }
    // The order is part of the protocol: the reply, the offline list (fresh
    // start only), the channels, then the events after the reply's seq.
    let mut sent = send_text(&mut ws, frames::reply_frame(login_id, &reply)).await;
    drop(reply);
    if sent.is_ok() && resumed.is_none() {
        let events = Box::pin(svc.offline_list(&account, &device, offline_from, bounds.head, now))
            .await
            .unwrap_or_default();
        if !events.is_empty() {
            sent = send_text(
                &mut ws,
                frames::offline_frame(&events[..events.len().min(MAX_OFFLINE_EVENTS)]),
            )
            .await;
        }
    }
    if sent.is_ok() {
        let channels = Box::pin(svc.channels_of(&account, now))
            .await
            .unwrap_or_else(|_| json!([]));
        sent = send_text(&mut ws, frames::channels_frame(&channels)).await;
    }
    svc.store.set_cursor(&account, &device, cursor).await;
    tracing::debug!(%account, %device, session_id, resumed = resumed.is_some(), "logged in");
    svc.observer.happened(Happening::SessionOpened);

    // What the login needed is let go of before the session settles in:
    // an idle session holds its future for hours, and every local still
    // in scope is part of it (measured: the login reply alone was ~630
    // bytes of heap per connection).
    drop((p, devices, bounds, account, device));
    let sent_ok = sent.is_ok();
    let mut farewell = sent.err().flatten();
    let mut left = false;
    if sent_ok {
        let mut s = Live {
            ws: &mut ws,
            svc: &svc,
            cfg: &cfg,
            info: &info,
            link: &link,
            cursor: &mut cursor,
            rate,
        };
        farewell = match s.run(&stopping, &mut phase).await {
            Ended::ServerStopping => Box::pin(s.hand_over(&mut phase)).await,
            Ended::LoggedOut => {
                left = true;
                Some(Farewell::LoggedOut)
            }
            Ended::Close(farewell) => farewell,
        };
    }
    svc.observer.happened(Happening::SessionClosed);
    if !left {
        leave(&svc, &info, &link, cursor).await;
    }
    Box::pin(close_politely(&mut ws, farewell)).await;
}

/// The session's device is gone from here: no longer live, its cursor
/// saved, and (unless a newer login replaced it) the review of its
/// memberships scheduled for after the grace.
async fn leave(svc: &Service, info: &SessionInfo, link: &SessionLink, cursor: u64) {
    let (account, device) = (&info.account, &info.device);
    svc.hub.unregister(account, link.id);
    let now = now_ms();
    svc.store.session_down(account, device, link.id, now).await;
    svc.store.set_cursor(account, device, cursor).await;
    if !link.kicked.load(Ordering::SeqCst) {
        svc.device_went_away(account, device, now).await;
    }
}

/// How long a closing session keeps reading for the peer's close.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// Sends a close frame, then reads (and drops) what the peer still sends
/// until its close or EOF, for at most [`CLOSE_LINGER`]. Dropping a socket
/// with unread input makes the kernel send a reset, and a reset destroys
/// what the peer has not read yet — the last events, the close frame.
async fn close_politely(ws: &mut Ws, farewell: Option<Farewell>) {
    if let Some(f) = farewell {
        let (code, reason) = f.code_and_reason();
        tracing::debug!(code, reason, "closing the connection");
    }
    let _ = tokio::time::timeout(WRITE_PATIENCE, ws.close(farewell.map(Farewell::frame))).await;
    // After a read error (an oversized or malformed frame) tungstenite
    // reads no further, and the rest of that frame may still be arriving:
    // then raw bytes are read and dropped, up to a bound, until EOF.
    let unread_input = farewell.is_some_and(|f| f.after_read_error());
    let _ = tokio::time::timeout(CLOSE_LINGER, async {
        while let Some(Ok(_)) = ws.next().await {}
        if !unread_input {
            return;
        }
        let mut left = CLOSE_DRAIN_BYTES;
        let mut buf = [0u8; 4096];
        while left > 0 {
            match ws.get_mut().read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}

/// What a closing session reads and drops at most after a read error:
/// enough for the rest of the largest frame any server may accept, not a
/// way to hold the connection open (CLOSE_LINGER bounds the time).
const CLOSE_DRAIN_BYTES: usize = crate::config::MAX_FRAME_BYTES_BOUND;

/// Why the logged-in loop ended.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    /// The session ends with this close (None: the peer left or the
    /// connection broke, nothing to send).
    Close(Option<Farewell>),
    /// The peer logged out (and the session has left, see [`leave`]).
    LoggedOut,
    /// The server is shutting down: hand over, then ask it to reconnect.
    ServerStopping,
}

/// A logged-in session.
struct Live<'a> {
    ws: &'a mut Ws,
    svc: &'a Arc<Service>,
    cfg: &'a ServerConfig,
    info: &'a SessionInfo,
    link: &'a SessionLink,
    cursor: &'a mut u64,
    /// The device's request rate, shared with its other connections here.
    rate: Arc<DeviceRate>,
}

impl Live<'_> {
    /// The logged-in loop: requests in, events out, heartbeats.
    async fn run(&mut self, stopping: &Stopping, phase: &mut watch::Receiver<Phase>) -> Ended {
        let silence = Duration::from_millis(self.cfg.heartbeat_timeout_ms);
        let mut last_heard = Instant::now();
        // The server pings too: a client that cannot send pings itself (a
        // browser's WebSocket answers pings but never sends one) stays alive
        // by its pongs, and the client hears the server even when idle.
        let mut ping = tokio::time::interval(Duration::from_millis(self.cfg.heartbeat_interval_ms));
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut check = tokio::time::interval((silence / 4).max(Duration::from_millis(250)));
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Events may have arrived between login and now.
        self.link.wake.notify_one();
        let rate = &*self.rate;
        loop {
            if *phase.borrow_and_update() != Phase::Serving {
                return Ended::ServerStopping;
            }
            let (svc, info) = (self.svc, self.info);
            tokio::select! {
                msg = self.ws.next() => {
                    last_heard = Instant::now();
                    let text = match msg {
                        Some(Ok(Message::Text(t))) => t,
                        Some(Ok(Message::Ping(_))) | Some(Ok(Message::Pong(_))) => continue,
                        Some(Ok(Message::Binary(_))) => {
                            let f = match rate.take(Instant::now()) {
                                Ok(()) => Failure::new(INVALID_PARAM, "binary frames are not part of the protocol"),
                                Err(refused) => refused,
                            };
                            if let Err(e) = send_text(self.ws, frames::failure_frame(0, &f)).await { return Ended::Close(e) }
                            continue;
                        }
                        Some(Ok(_)) | None => return Ended::Close(None),
                        Some(Err(e)) => return Ended::Close(Farewell::for_read_error(&e)),
                    };
                    // Requests run under the gate's read side, so a shutdown
                    // can wait for those in progress; one that arrives after
                    // the shutdown began is not applied (the client sends it
                    // again to the server it reconnects to).
                    let gate = stopping.gate.read().await;
                    if *phase.borrow() != Phase::Serving {
                        return Ended::ServerStopping;
                    }
                    // Boxed: the request path is deep and runs briefly;
                    // the idle loop should not carry its space.
                    let handled = Box::pin(handle_text(svc, info, rate, &text)).await;
                    drop(gate);
                    match handled {
                        Handled::Reply(r) => if let Err(e) = send_text(self.ws, r).await { return Ended::Close(e) },
                        Handled::Logout(r) => {
                            // Gone before the reply: once the client hears its
                            // logout succeeded, events for the account must count
                            // as offline (10201, kept when offlineEnabled), not as
                            // delivered to this closing session; and the drop of
                            // its memberships is scheduled, even if this node
                            // dies the next moment.
                            leave(svc, info, self.link, *self.cursor).await;
                            let _ = send_text(self.ws, r).await;
                            return Ended::LoggedOut;
                        }
                        Handled::Nothing => {}
                    }
                }
                _ = self.link.wake.notified() => {
                    if self.link.lost.load(Ordering::SeqCst) {
                        return Ended::Close(Some(Farewell::StateLost));
                    }
                    let kicked = if self.link.kicked.load(Ordering::SeqCst) {
                        Some(Farewell::Replaced)
                    } else if self.link.evicted.load(Ordering::SeqCst) {
                        // Not replaced: `leave` then schedules the drop of
                        // the device's memberships, as for any device gone.
                        Some(Farewell::Evicted)
                    } else {
                        None
                    };
                    if let Some(farewell) = kicked {
                        // The kicked frame's message is the close reason.
                        let why = farewell.code_and_reason().1;
                        let _ = send_text(self.ws, frames::kicked_frame(FORBIDDEN, why)).await;
                        return Ended::Close(Some(farewell));
                    }
                    if let Err(e) = Box::pin(drain(self.ws, svc, info, self.link, self.cursor, silence)).await { return Ended::Close(e) }
                }
                _ = check.tick() => {
                    if last_heard.elapsed() > silence {
                        tracing::debug!(account = %info.account, "heartbeat timeout");
                        return Ended::Close(Some(Farewell::HeartbeatTimeout));
                    }
                }
                _ = ping.tick() => {
                    let sent = tokio::time::timeout(silence, self.ws.send(Message::Ping(Default::default()))).await;
                    match sent {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => return Ended::Close(None),
                        Err(_) => return Ended::Close(Some(Farewell::SlowReader)),
                    }
                }
                _ = phase.changed() => {}
            }
        }
    }

    /// Shutdown: once every request in progress anywhere has been applied
    /// (the server moves to [`Phase::Drain`] then), sends this device what
    /// its log holds and returns the close asking it to reconnect.
    /// Nothing acknowledged is lost: every event of an answered request is
    /// in the log before the drain starts.
    async fn hand_over(&mut self, phase: &mut watch::Receiver<Phase>) -> Option<Farewell> {
        let _ = phase.wait_for(|p| *p == Phase::Drain).await;
        let silence = Duration::from_millis(self.cfg.heartbeat_timeout_ms);
        // Everything the log holds, not only what was offered.
        self.link.wake_to_read();
        match drain(
            self.ws,
            self.svc,
            self.info,
            self.link,
            self.cursor,
            silence,
        )
        .await
        {
            Ok(()) => Some(Farewell::ShuttingDown),
            Err(farewell) => farewell,
        }
    }
}

enum Handled {
    Reply(String),
    Logout(String),
    Nothing,
}

async fn handle_text(svc: &Service, info: &SessionInfo, rate: &DeviceRate, text: &str) -> Handled {
    let mut frame: ClientFrame = match serde_json::from_str(text) {
        Ok(f) => f,
        Err(e) => {
            // A malformed frame costs a token like a request, so that a
            // flood of them is held to the rate too.
            let f = match rate.take(Instant::now()) {
                Ok(()) => Failure::new(INVALID_PARAM, format!("malformed frame: {e}")),
                Err(refused) => refused,
            };
            return Handled::Reply(frames::failure_frame(0, &f));
        }
    };
    if frame.t != "req" {
        return Handled::Nothing;
    }
    let id = frame.id.unwrap_or(0);
    let op = frame.op.take().unwrap_or_default();
    // The request id of the log lines, as the client library logs it too.
    let span = tracing::debug_span!(
        "request",
        rid = %Rid(info.instance.as_deref().unwrap_or(&info.device), id),
        op = %op,
        account = %info.account,
    );
    handle_request(svc, info, rate, frame, id, op)
        .instrument(span)
        .await
}

async fn handle_request(
    svc: &Service,
    info: &SessionInfo,
    rate: &DeviceRate,
    frame: ClientFrame,
    id: u64,
    op: String,
) -> Handled {
    let started = Instant::now();
    let (code, reply) = if let Err(f) = rate.take(started) {
        (f.code, frames::failure_frame(id, &f))
    } else {
        let params = frame.params.unwrap_or(json!({}));
        match Request::parse(&op, &params) {
            Ok(Request::Logout) => {
                svc.observer.request_answered(&op, OK, started.elapsed());
                return Handled::Logout(frames::reply_frame(id, &json!({"code": OK})));
            }
            Ok(Request::Login(_)) => {
                let f = Failure::new(INVALID_PARAM, "already logged in");
                (f.code, frames::failure_frame(id, &f))
            }
            Ok(req) => {
                let (code, answer) = svc.handle_once(info, id, frame.ack, req).await;
                (code, frames::reply_frame(id, &*answer))
            }
            Err(f) => (f.code, frames::failure_frame(id, &f)),
        }
    };
    let took = started.elapsed();
    svc.observer.request_answered(&op, code, took);
    if code == nim_signaling_protocol::codes::INTERNAL {
        tracing::warn!(code, took_us = took.as_micros() as u64, "request failed");
    } else {
        tracing::debug!(code, took_us = took.as_micros() as u64, "request done");
    }
    Handled::Reply(reply)
}

/// Sends every log entry after `cursor`: the entries offered to the
/// session when they follow the cursor without a gap, else (and when woken
/// to read) what its log holds. Feeds frames and flushes once per batch. A
/// peer that cannot take them within `patience` is dropped (it will resume
/// from its log when it reconnects); so is one whose unsent events were
/// trimmed from the log.
async fn drain(
    ws: &mut Ws,
    svc: &Service,
    info: &SessionInfo,
    link: &SessionLink,
    cursor: &mut u64,
    patience: Duration,
) -> Result<(), Option<Farewell>> {
    let (offered, mut read) = link.take();
    let fresh: Vec<_> = offered.into_iter().filter(|e| e.seq > *cursor).collect();
    if let Some(first) = fresh.first() {
        let follows =
            first.seq == *cursor + 1 && fresh.windows(2).all(|w| w[1].seq == w[0].seq + 1);
        if follows {
            send_batch(ws, svc, info, cursor, fresh, patience).await?;
        } else {
            // Something between the cursor and these was appended
            // elsewhere (or is still being appended): the log has it.
            read = true;
        }
    }
    if !read {
        return Ok(());
    }
    loop {
        let batch = svc
            .store
            .read_after(&info.account, *cursor, DRAIN_BATCH)
            .await
            .map_err(|_| Some(Farewell::StoreFailed))?;
        let n = batch.len();
        if n == 0 {
            return Ok(());
        }
        if batch[0].seq > *cursor + 1 {
            // The log dropped events this session has not sent yet (it fell
            // more than the log's length behind). Sending on would hide the
            // gap; closing makes the client reconnect, and its resume is
            // answered with an explicit resync.
            tracing::debug!(account = %info.account, "log trimmed past a live session");
            return Err(Some(Farewell::Trimmed));
        }
        send_batch(ws, svc, info, cursor, batch, patience).await?;
        if n < DRAIN_BATCH {
            return Ok(());
        }
    }
}

/// Sends `batch` (entries following `cursor`, in order) and moves the
/// cursor past it.
async fn send_batch(
    ws: &mut Ws,
    svc: &Service,
    info: &SessionInfo,
    cursor: &mut u64,
    batch: Vec<Arc<LogEntry>>,
    patience: Duration,
) -> Result<(), Option<Farewell>> {
    let send = async {
        let mut sent = 0;
        for e in batch {
            *cursor = e.seq;
            if e.exclude_device.as_deref() == Some(info.device.as_str()) {
                continue;
            }
            ws.feed(Message::text(frames::event_frame(
                e.seq, e.kind, &e.encoded,
            )))
            .await?;
            sent += 1;
        }
        ws.flush().await?;
        svc.observer.happened(Happening::EventsSent(sent));
        Ok::<(), tokio_tungstenite::tungstenite::Error>(())
    };
    match tokio::time::timeout(patience, send).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(None),
        Err(_) => {
            svc.observer.happened(Happening::SlowReaderDropped);
            Err(Some(Farewell::SlowReader))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Farewell;

    #[test]
    fn every_farewell_has_a_sendable_code_and_reason() {
        let mut seen = std::collections::HashSet::new();
        for f in Farewell::ALL {
            let (code, reason) = f.code_and_reason();
            // 1000–2999 the standard's, 4000–4999 applications'; never
            // the codes that must not be sent (1005, 1006, 1015).
            assert!(
                matches!(code, 1000..=1003 | 1007..=1014 | 4000..=4999),
                "{f:?}: {code}"
            );
            // A close frame's payload is at most 125 bytes, 2 of them the code.
            assert!(!reason.is_empty() && reason.len() <= 123, "{f:?}");
            assert!(seen.insert((code, reason)), "{f:?} repeats another close");
        }
    }
}
