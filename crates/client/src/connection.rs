//! The connection task: owns the WebSocket, the pending requests and their
//! deadlines, the last event sequence seen, and the reconnect loop.

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{
    tls, ClientConfig, Cmd, Completer, ConnState, Notification, Shared, Sink, StateChange,
};
use nim_signaling_protocol::codes::{self, NOT_CONNECTED, OK, TIMEOUT};
use nim_signaling_protocol::frames::{self, NotifyKind, Rid, ServerFrame, SUBPROTOCOL};
use nim_signaling_protocol::{Failure, Op};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Request id of the login frame on each connection.
const LOGIN_ID: u64 = 0;

/// What a connection keeps for reading from the socket. tungstenite zeroes
/// the free part of its read buffer before every read, so its default of
/// 128 KiB cost a memset of up to 128 KiB per read (a fifth of a C app's
/// CPU under load, docs/PERFORMANCE.md) and 128 KiB of memory per client.
/// Our frames are small; a larger one grows the buffer while it is read.
const READ_BUFFER: usize = 4096;

/// The tungstenite settings of every connection.
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(READ_BUFFER)
}

/// How long a connection must stay up (logged in and serving) before the
/// reconnect backoff starts again from its shortest delay, unless it
/// answered a request first. A connection that dies sooner without doing
/// either — a server that accepts and closes at once, or refuses what the
/// client sends — keeps the delays growing, so whatever the cause the
/// client cannot reconnect in a tight loop; one on a flaky network that
/// still gets requests through starts again from the shortest delay.
const STABLE_AFTER: Duration = Duration::from_secs(3);

/// The reconnect delay before attempt `attempt` (0-based), before jitter:
/// 100 ms doubling up to 5 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((100u64 << attempt.min(6)).min(5_000))
}

struct Pending {
    done: Completer,
    deadline: Instant,
    op: &'static str,
    params: Value,
    /// The size of its frame when sent on the current connection (None
    /// while waiting to be sent).
    sent_len: Option<usize>,
}

struct Conn {
    cfg: Arc<ClientConfig>,
    sink: Sink,
    shared: Arc<Shared>,
    /// Requests sent or waiting, by id (ids grow in submission order).
    pending: BTreeMap<u64, Pending>,
    /// (deadline, id) of every pending request, soonest first.
    deadlines: BTreeSet<(Instant, u64)>,
    /// Requests not yet sent on the current connection, in id order. After
    /// a reconnect every pending request is sent again with its id: the
    /// server answers a repeat from its record instead of applying it twice.
    unsent: VecDeque<u64>,
    next_id: u64,
    /// Names this client instance to the server, which keeps the answers to
    /// its request ids (for retries) apart from those of other instances.
    instance: String,
    /// Highest event sequence delivered; older or repeated ones are dropped.
    last_seq: Option<u64>,
    /// The server log epoch `last_seq` belongs to.
    epoch: Option<String>,
    url_index: usize,
    logout: Option<(u64, Completer)>,
    /// Requests the server has answered, on any connection: a connection
    /// that answered one did useful work, whatever its length.
    answered: u64,
}

enum End {
    /// Connection lost; reconnect if we are still logged in.
    Lost(i32),
    /// Logged out, kicked, or shut down: do not reconnect.
    Stop,
}

pub(super) async fn run(
    cfg: Arc<ClientConfig>,
    sink: Sink,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
    shared: Arc<Shared>,
) {
    let mut c = Conn {
        cfg,
        sink,
        shared,
        pending: BTreeMap::new(),
        deadlines: BTreeSet::new(),
        unsent: VecDeque::new(),
        next_id: LOGIN_ID + 1,
        instance: format!("{:016x}", rand::random::<u64>()),
        last_seq: None,
        epoch: None,
        url_index: 0,
        logout: None,
        answered: 0,
    };
    // Idle: not logged in. Wait for a login; refuse everything else.
    loop {
        let cmd = tokio::select! {
            cmd = cmds.recv() => cmd,
            _ = c.shared.shutdown.notified() => None,
        };
        let Some(cmd) = cmd else { break };
        match cmd {
            Cmd::Login(done) => {
                c.emit_state(ConnState::Connecting, OK);
                match c.first_login().await {
                    Ok((ws, reply, resync)) => {
                        c.shared.logged_in.store(true, Ordering::SeqCst);
                        done.complete(OK, reply);
                        (c.sink)(Notification::ConnectionState(StateChange {
                            state: ConnState::Connected,
                            code: OK,
                            resync,
                        }));
                        if c.online(ws, &mut cmds).await {
                            break;
                        }
                    }
                    Err(f) => {
                        done.fail(f.code, &f.message);
                        c.emit_state(ConnState::Disconnected, f.code);
                    }
                }
            }
            Cmd::Logout(done) => done.fail(NOT_CONNECTED, "not logged in"),
            Cmd::Request { done, .. } => done.fail(NOT_CONNECTED, "not logged in"),
        }
        if c.shared.stopped.load(Ordering::SeqCst) {
            break;
        }
    }
    c.fail_all(NOT_CONNECTED, "client shut down");
    while let Ok(cmd) = cmds.try_recv() {
        match cmd {
            Cmd::Login(d) | Cmd::Logout(d) => d.fail(NOT_CONNECTED, "client shut down"),
            Cmd::Request { done, .. } => done.fail(NOT_CONNECTED, "client shut down"),
        }
    }
}

impl Conn {
    fn emit_state(&self, s: ConnState, code: i32) {
        (self.sink)(Notification::ConnectionState(StateChange::new(s, code)));
    }

    fn fail_all(&mut self, code: i32, msg: &str) {
        self.deadlines.clear();
        self.unsent.clear();
        for (_, p) in std::mem::take(&mut self.pending) {
            p.done.fail(code, msg);
        }
        if let Some((_, d)) = self.logout.take() {
            d.fail(code, msg);
        }
    }

    /// The connection died: whatever was sent on it may or may not have
    /// been applied, so every pending request goes out again, with the same
    /// id, on the next connection (the server answers a repeat from its
    /// record). A logout in flight is done: the connection is gone.
    fn requeue_all(&mut self) {
        for p in self.pending.values_mut() {
            p.sent_len = None;
        }
        self.unsent = self.pending.keys().copied().collect();
        if let Some((_, d)) = self.logout.take() {
            d.complete(OK, json!({"code": OK}).to_string());
        }
    }

    /// Every request with an id up to this one has been answered.
    fn acked(&self) -> u64 {
        match self.pending.keys().next() {
            Some(first) => first - 1,
            None => self.next_id - 1,
        }
    }

    fn expire(&mut self, now: Instant) {
        while let Some(&(at, id)) = self.deadlines.iter().next() {
            if at > now {
                break;
            }
            self.deadlines.remove(&(at, id));
            if let Some(p) = self.pending.remove(&id) {
                self.unsent.retain(|u| *u != id);
                p.done.fail(TIMEOUT, "no reply within requestTimeoutMs");
            }
        }
    }

    fn add_request(
        &mut self,
        op: &'static str,
        params: Value,
        done: Completer,
        deadline: Instant,
    ) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        // The same request id the server's log lines carry (`rid`).
        tracing::debug!(rid = %Rid(&self.instance, id), op, "request queued");
        self.pending.insert(
            id,
            Pending {
                done,
                deadline,
                op,
                params,
                sent_len: None,
            },
        );
        self.deadlines.insert((deadline, id));
        self.unsent.push_back(id);
        id
    }

    /// Connects to the current URL and logs in, asking to resume after the
    /// last event seen when `resume`. Returns the socket, the login result
    /// object, and the server's resync reason: it could not resume, or a
    /// fresh start's offline list is incomplete.
    /// The first login: each server URL in turn while they cannot be
    /// reached (a node down or draining), stopping at the first that
    /// answers — a refusal by the server (bad token, limits) is final.
    async fn first_login(&mut self) -> Result<(Ws, String, Option<String>), Failure> {
        let mut tries = self.cfg.urls().len();
        loop {
            match self.establish(false).await {
                Err(f) if f.code == NOT_CONNECTED && tries > 1 => {
                    tries -= 1;
                    self.url_index += 1;
                }
                other => return other,
            }
        }
    }

    async fn establish(&mut self, resume: bool) -> Result<(Ws, String, Option<String>), Failure> {
        let urls = self.cfg.urls();
        let url = urls[self.url_index % urls.len()].clone();
        let limit = Duration::from_millis(self.cfg.request_timeout_ms);
        let attempt = async {
            let mut req = url.as_str().into_client_request().map_err(|e| {
                Failure::new(codes::INVALID_PARAM, format!("bad server URL {url}: {e}"))
            })?;
            req.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                HeaderValue::from_static(SUBPROTOCOL),
            );
            let connector = tls::connector(&url, self.cfg.ca_roots.as_ref())?;
            let (mut ws, _) = tokio_tungstenite::connect_async_tls_with_config(
                req,
                Some(ws_config()),
                true,
                Some(connector),
            )
            .await
            .map_err(|e| tls::connect_failure(&url, e))?;
            let mut params = json!({
                "account": self.cfg.account, "token": self.cfg.token,
                "deviceId": self.cfg.device_id(), "instance": self.instance,
            });
            let resume_from = self.last_seq.zip(self.epoch.clone()).filter(|_| resume);
            if let Some((seq, epoch)) = &resume_from {
                params["resumeSeq"] = (*seq).into();
                params["resumeEpoch"] = epoch.as_str().into();
            }
            ws.send(Message::text(frames::request_frame(
                LOGIN_ID,
                Op::Login.as_str(),
                &params,
                None,
            )))
            .await
            .map_err(|e| Failure::new(NOT_CONNECTED, format!("connection lost: {e}")))?;
            loop {
                let msg = ws.next().await;
                let text = match msg {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    _ => {
                        return Err(Failure::new(
                            NOT_CONNECTED,
                            "connection closed during login",
                        ))
                    }
                };
                let frame: ServerFrame = serde_json::from_str(&text).map_err(|e| {
                    Failure::new(codes::INTERNAL, format!("bad frame from server: {e}"))
                })?;
                if frame.t != "res" || frame.id != Some(LOGIN_ID) {
                    continue;
                }
                let result = frame.result.map(|r| r.get()).unwrap_or("{}");
                let v: Value = serde_json::from_str(result).unwrap_or_default();
                let code = v["code"].as_i64().unwrap_or(codes::INTERNAL as i64) as i32;
                if code != OK {
                    let msg = v["message"].as_str().unwrap_or("login failed").to_string();
                    return Err(Failure::new(code, msg));
                }
                if let Some(m) = v["maxFrameBytes"].as_u64() {
                    let m = usize::try_from(m).unwrap_or(usize::MAX);
                    self.shared.max_frame.store(m, Ordering::SeqCst);
                }
                let mut resync = None;
                if resume_from.is_none() || v["resumed"] != Value::Bool(true) {
                    // A fresh start: the server sends the offline list and
                    // continues after its current head.
                    self.last_seq = v["seq"].as_u64();
                    self.epoch = v["epoch"].as_str().map(str::to_string);
                    // A resume refused, or a fresh start whose offline
                    // list is incomplete (the server says "trimmed").
                    if resume {
                        resync = Some(v["resync"].as_str().unwrap_or("stateLost").to_string());
                    } else {
                        resync = v["resync"].as_str().map(str::to_string);
                    }
                }
                return Ok((ws, result.to_string(), resync));
            }
        };
        match tokio::time::timeout(limit, attempt).await {
            Ok(r) => r,
            Err(_) => Err(Failure::new(
                TIMEOUT,
                format!("no login reply from {url} within requestTimeoutMs"),
            )),
        }
    }

    /// Serves a logged-in connection, reconnecting as needed. Returns true
    /// when the task should end (shutdown or command channel closed).
    async fn online(&mut self, ws: Ws, cmds: &mut mpsc::UnboundedReceiver<Cmd>) -> bool {
        let mut attempt: u32 = 0;
        let mut next = Some(ws);
        loop {
            // Every path below either returns or sets `next`.
            let Some(mut ws) = next.take() else {
                return true;
            };
            let up_since = Instant::now();
            let answered = self.answered;
            let end = self.serve(&mut ws, cmds).await;
            if up_since.elapsed() >= STABLE_AFTER || self.answered > answered {
                attempt = 0;
            }
            // Answer the server's close (or send ours), then let the socket
            // go now rather than holding it through the backoff: the server
            // waits for this before it lets go of its side.
            let limit = Duration::from_millis(self.cfg.heartbeat_timeout_ms);
            let _ = tokio::time::timeout(limit, ws.close(None)).await;
            drop(ws);
            match end {
                End::Stop => {
                    self.shared.logged_in.store(false, Ordering::SeqCst);
                    return self.shared.stopped.load(Ordering::SeqCst);
                }
                End::Lost(code) => {
                    let give_up = !self.cfg.reconnect || self.shared.stopped.load(Ordering::SeqCst);
                    if give_up {
                        // Before any callback fires: an app that reacts to
                        // the 415 by sending again gets 415 up front.
                        self.shared.logged_in.store(false, Ordering::SeqCst);
                    }
                    self.requeue_all();
                    if give_up {
                        self.fail_all(NOT_CONNECTED, "connection lost");
                        self.emit_state(ConnState::Disconnected, code);
                        return self.shared.stopped.load(Ordering::SeqCst);
                    }
                    self.emit_state(ConnState::Reconnecting, code);
                }
            }
            // Reconnect: back off, move to the next URL, resume from last_seq.
            loop {
                let backoff = backoff(attempt);
                let jitter = Duration::from_millis(
                    rand::random::<u64>() % (backoff.as_millis() as u64 / 2 + 1),
                );
                attempt += 1;
                if !self.wait_serving_cmds(backoff + jitter, cmds).await {
                    return true;
                }
                if self.logout.is_some() || !self.shared.logged_in.load(Ordering::SeqCst) {
                    self.shared.logged_in.store(false, Ordering::SeqCst);
                    self.fail_all(NOT_CONNECTED, "logged out");
                    self.emit_state(ConnState::Disconnected, OK);
                    return false;
                }
                self.url_index += 1;
                let shared = self.shared.clone();
                let r = tokio::select! {
                    r = self.establish(true) => Some(r),
                    _ = shared.shutdown.notified() => None,
                };
                match r {
                    None => return true,
                    Some(Ok((new_ws, _, resync))) => {
                        // The backoff is not reset here: only once this
                        // connection has answered a request or stayed up
                        // for STABLE_AFTER.
                        next = Some(new_ws);
                        (self.sink)(Notification::ConnectionState(StateChange {
                            state: ConnState::Connected,
                            code: OK,
                            resync,
                        }));
                        break;
                    }
                    Some(Err(f)) if f.code == codes::AUTH_FAILED => {
                        self.shared.logged_in.store(false, Ordering::SeqCst);
                        self.fail_all(f.code, &f.message);
                        self.emit_state(ConnState::Disconnected, f.code);
                        return false;
                    }
                    Some(Err(_)) => continue,
                }
            }
        }
    }

    /// Sleeps `d` while still taking commands (requests queue; a logout
    /// ends the wait). Returns false on shutdown.
    async fn wait_serving_cmds(
        &mut self,
        d: Duration,
        cmds: &mut mpsc::UnboundedReceiver<Cmd>,
    ) -> bool {
        let until = Instant::now() + d;
        let shared = self.shared.clone();
        loop {
            let next_deadline = self
                .deadlines
                .iter()
                .next()
                .map(|(t, _)| *t)
                .unwrap_or(until)
                .min(until);
            tokio::select! {
                _ = tokio::time::sleep_until(next_deadline) => {
                    self.expire(Instant::now());
                    if Instant::now() >= until { return true }
                }
                cmd = cmds.recv() => match cmd {
                    None => return false,
                    Some(Cmd::Request { op, params, done, deadline }) => { self.add_request(op, params, done, deadline); }
                    Some(Cmd::Login(d)) => d.complete(OK, json!({"code": OK, "message": "already logged in"}).to_string()),
                    Some(Cmd::Logout(d)) => {
                        self.shared.logged_in.store(false, Ordering::SeqCst);
                        d.complete(OK, json!({"code": OK}).to_string());
                        return true;
                    }
                },
                _ = shared.shutdown.notified() => return false,
            }
        }
    }

    /// Sends the requests that are waiting, flushing once.
    async fn send_unsent(&mut self, ws: &mut Ws) -> Result<(), ()> {
        if self.unsent.is_empty() {
            return Ok(());
        }
        let ack = Some(self.acked());
        while let Some(id) = self.unsent.pop_front() {
            if let Some(p) = self.pending.get_mut(&id) {
                let frame = frames::request_frame(id, p.op, &p.params, ack);
                p.sent_len = Some(frame.len());
                ws.feed(Message::text(frame)).await.map_err(|_| ())?;
            }
        }
        ws.flush().await.map_err(|_| ())
    }

    async fn serve(&mut self, ws: &mut Ws, cmds: &mut mpsc::UnboundedReceiver<Cmd>) -> End {
        let silence = Duration::from_millis(self.cfg.heartbeat_timeout_ms);
        let mut ping = tokio::time::interval(Duration::from_millis(self.cfg.heartbeat_interval_ms));
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_heard = Instant::now();
        let shared = self.shared.clone();
        loop {
            // Bounded: a peer that stopped reading must not hold the task
            // (and with it the heartbeat check) forever.
            let sent = tokio::time::timeout(silence, self.send_unsent(ws)).await;
            if !matches!(sent, Ok(Ok(()))) {
                return End::Lost(NOT_CONNECTED);
            }
            let next_deadline = self.deadlines.iter().next().map(|(t, _)| *t);
            // The app is behind: stop reading (see Backlog). The silence
            // that follows is ours, not the server's.
            let paused = self.shared.backlog.full();
            tokio::select! {
                _ = shared.backlog.drained(), if paused => {
                    last_heard = Instant::now();
                }
                msg = ws.next(), if !paused => {
                    last_heard = Instant::now();
                    match msg {
                        Some(Ok(Message::Text(t))) => if let Some(end) = self.on_frame(&t) { return end },
                        Some(Ok(Message::Close(Some(cf)))) if cf.code == CloseCode::Size => {
                            self.refuse_oversized();
                            return End::Lost(NOT_CONNECTED);
                        }
                        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return End::Lost(NOT_CONNECTED),
                        Some(Ok(_)) => {}
                    }
                }
                cmd = cmds.recv() => match cmd {
                    None => return End::Stop,
                    Some(Cmd::Request { op, params, done, deadline }) => { self.add_request(op, params, done, deadline); }
                    Some(Cmd::Login(d)) => d.complete(OK, json!({"code": OK, "message": "already logged in"}).to_string()),
                    Some(Cmd::Logout(d)) => {
                        let id = self.next_id;
                        self.next_id += 1;
                        self.logout = Some((id, d));
                        if ws.send(Message::text(frames::request_frame(id, Op::Logout.as_str(), &json!({}), None))).await.is_err() {
                            self.logout_done();
                            return End::Stop;
                        }
                    }
                },
                _ = async { match next_deadline { Some(t) => tokio::time::sleep_until(t).await, None => std::future::pending().await } } => {
                    self.expire(Instant::now());
                }
                _ = ping.tick() => {
                    if !paused && last_heard.elapsed() > silence {
                        return End::Lost(TIMEOUT);
                    }
                    let sent = tokio::time::timeout(silence, ws.send(Message::Ping(Default::default()))).await;
                    if !matches!(sent, Ok(Ok(()))) {
                        return End::Lost(NOT_CONNECTED);
                    }
                }
                _ = shared.shutdown.notified() => return End::Stop,
            }
        }
    }

    /// The server closed with 1009: a frame we sent on this connection was
    /// over its limit (ours is checked against the limit it advertised, so
    /// this means the limit changed, e.g. another node). The server read
    /// the frames before it and none after, and the culprit is the largest
    /// frame still unanswered: it completes with 414 rather than going out
    /// again on the next connection (where it would be refused again,
    /// forever). The others are sent again as after any lost connection.
    fn refuse_oversized(&mut self) {
        let culprit = self
            .pending
            .iter()
            .filter_map(|(id, p)| p.sent_len.map(|len| (len, std::cmp::Reverse(*id))))
            .max()
            .map(|(len, id)| (len, id.0));
        let Some((len, id)) = culprit else { return };
        if let Some(p) = self.pending.remove(&id) {
            self.deadlines.remove(&(p.deadline, id));
            self.unsent.retain(|u| *u != id);
            tracing::warn!(rid = %Rid(&self.instance, id), op = p.op, len, "server refused an oversized frame (1009)");
            p.done.fail(
                codes::INVALID_PARAM,
                &format!(
                    "the server refused a frame larger than its limit \
                     (request frame of {len} bytes; connection closed with 1009)"
                ),
            );
        }
    }

    fn logout_done(&mut self) {
        self.shared.logged_in.store(false, Ordering::SeqCst);
        // Take the logout first: fail_all would otherwise fail it with 415.
        let logout = self.logout.take();
        self.fail_all(NOT_CONNECTED, "logged out");
        if let Some((_, d)) = logout {
            d.complete(OK, json!({"code": OK}).to_string());
        }
        self.emit_state(ConnState::Disconnected, OK);
    }

    /// An INVITE for this account reached this device: tells the server by
    /// itself (inviteDelivered), so that the inviter learns it rings here.
    /// Fire and forget: the reply is dropped, and the receipt counts
    /// neither against the app's MAX_IN_FLIGHT nor as the app's request.
    fn acknowledge(&mut self, event: &str) {
        if !self.cfg.invite_receipts {
            return;
        }
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Invite {
            event_type: String,
            channel_info: Channel,
            from_account_id: String,
            to_account: Option<String>,
            request_id: Option<String>,
        }
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Channel {
            channel_id: String,
        }
        let Ok(ev) = serde_json::from_str::<Invite>(event) else {
            return;
        };
        let (Some(to), Some(request_id)) = (ev.to_account, ev.request_id) else {
            return;
        };
        if ev.event_type != "INVITE" || to != self.cfg.account {
            return;
        }
        let params = json!({
            "channelId": ev.channel_info.channel_id,
            "account": ev.from_account_id,
            "requestId": request_id,
        });
        let deadline = Instant::now() + Duration::from_millis(self.cfg.request_timeout_ms);
        self.add_request(
            Op::InviteDelivered.as_str(),
            params,
            Completer::new(|_, _| {}),
            deadline,
        );
    }

    /// Handles one frame from the server; Some(end) when the connection ends.
    fn on_frame(&mut self, text: &str) -> Option<End> {
        let Ok(f) = serde_json::from_str::<ServerFrame>(text) else {
            tracing::warn!("unparsable frame from server ignored");
            return None;
        };
        match f.t {
            "res" => {
                let id = f.id.unwrap_or(u64::MAX);
                let result = f.result.map(|r| r.get()).unwrap_or(r#"{"code":500}"#);
                if self
                    .logout
                    .as_ref()
                    .map(|(lid, _)| *lid == id)
                    .unwrap_or(false)
                {
                    self.logout_done();
                    return Some(End::Stop);
                }
                if let Some(p) = self.pending.remove(&id) {
                    self.deadlines.remove(&(p.deadline, id));
                    self.answered += 1;
                    let code = serde_json::from_str::<Value>(result)
                        .ok()
                        .and_then(|v| v["code"].as_i64())
                        .unwrap_or(codes::INTERNAL as i64) as i32;
                    tracing::debug!(rid = %Rid(&self.instance, id), op = p.op, code, "reply");
                    p.done.complete(code, result.to_string());
                }
            }
            "evt" => {
                let (Some(seq), Some(kind), Some(ev)) = (f.seq, f.kind, f.event) else {
                    return None;
                };
                if self.last_seq.map(|l| seq <= l).unwrap_or(false) {
                    return None; // already delivered
                }
                self.last_seq = Some(seq);
                let payload = ev.get().to_string();
                if kind == NotifyKind::Notify {
                    self.acknowledge(ev.get());
                }
                (self.sink)(match kind {
                    NotifyKind::Notify => Notification::Online(payload),
                    NotifyKind::MultiClientSync => Notification::MultiClientSync(payload),
                    NotifyKind::MembersSync => Notification::MembersSync(payload),
                });
            }
            "offline" => {
                let list = f.event_list.map(|r| r.get()).unwrap_or("[]");
                let events: Vec<&serde_json::value::RawValue> =
                    serde_json::from_str(list).unwrap_or_default();
                for ev in events {
                    self.acknowledge(ev.get());
                }
                (self.sink)(Notification::Offline(format!(r#"{{"eventList":{list}}}"#)));
            }
            "channels" => {
                let list = f.channels.map(|r| r.get()).unwrap_or("[]");
                (self.sink)(Notification::Channels(format!(r#"{{"channels":{list}}}"#)));
            }
            "kicked" => {
                self.shared.logged_in.store(false, Ordering::SeqCst);
                let code = f.code.unwrap_or(codes::FORBIDDEN);
                self.fail_all(NOT_CONNECTED, "kicked by a newer login of this device");
                self.emit_state(ConnState::Kicked, code);
                return Some(End::Stop);
            }
            _ => {}
        }
        None
    }
}
