//! Shared test helpers: an embedded server on 127.0.0.1:0 and logged-in
//! clients whose notifications arrive on a channel.
#![allow(dead_code)]
#[path = "built.rs"]
pub mod built;
pub mod c_server;
pub mod cluster;
pub mod keep;
pub mod proxy;
pub mod receiver;
pub mod redis;
pub use cluster::TestServer;

use nim_signaling_client::{
    channel_sink, Client, ClientConfig, ConnState, Notification, StateChange,
};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;

/// How long a test waits for something that should happen.
pub const WAIT: Duration = Duration::from_secs(10);

/// The server a test talks to: one node, or three on Redis in the cluster
/// suites (see [`cluster`]).
pub async fn start_server(cfg: Value) -> TestServer {
    TestServer::start(unthrottled(cfg)).await
}

/// Test servers take requests as fast as tests pipeline them, unless the
/// test is about the rate limit and sets `maxRequestsPerSecond` itself.
pub fn unthrottled(mut cfg: Value) -> Value {
    if let Some(c) = cfg.as_object_mut() {
        c.entry("maxRequestsPerSecond").or_insert(json!(1_000_000));
    }
    cfg
}

pub struct TestClient {
    pub client: Client,
    pub rx: UnboundedReceiver<Notification>,
    pub account: String,
}

pub fn client_for(url: &str, account: &str, device: &str, extra: Value) -> TestClient {
    let mut cfg = json!({"serverUrl": url, "account": account, "token": "", "deviceId": device});
    if let (Some(c), Some(e)) = (cfg.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            c.insert(k.clone(), v.clone());
        }
    }
    let cfg = ClientConfig::from_json(&cfg.to_string()).expect("client config");
    let (sink, rx) = channel_sink();
    TestClient {
        client: Client::new(cfg, sink),
        rx,
        account: account.to_string(),
    }
}

/// A client that has logged in (and whose login notifications were read).
pub async fn login(url: &str, account: &str, device: &str) -> TestClient {
    let mut c = client_for(url, account, device, json!({}));
    let (code, body) = c.client.login().await;
    assert_eq!(code, 200, "login of {account}/{device}: {body}");
    c.expect_channels().await;
    c
}

impl TestClient {
    /// Sends a request and returns (code, result object).
    pub async fn req(&self, op: &str, params: Value) -> (i32, Value) {
        let (code, text) = self.client.request(op, params).await;
        let v: Value = serde_json::from_str(&text).expect("result is JSON");
        assert_eq!(v["code"], code, "result code matches callback code: {text}");
        (code, v)
    }

    /// Like `req` but the code must be 200.
    pub async fn ok(&self, op: &str, params: Value) -> Value {
        let (code, v) = self.req(op, params.clone()).await;
        assert_eq!(code, 200, "{} {op} {params}: {v}", self.account);
        v
    }

    /// The next notification that is not a connection state change.
    pub async fn next(&mut self) -> Notification {
        loop {
            let n = tokio::time::timeout(WAIT, self.rx.recv())
                .await
                .unwrap_or_else(|_| panic!("{}: no notification within {WAIT:?}", self.account))
                .expect("notification channel open");
            if !matches!(n, Notification::ConnectionState(..)) {
                return n;
            }
        }
    }

    /// The next online event (signalingNotify), as JSON.
    pub async fn expect_event(&mut self, event_type: &str) -> Value {
        match self.next().await {
            Notification::Online(t) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                assert_eq!(v["eventType"], event_type, "{}: {v}", self.account);
                v
            }
            other => panic!("{}: expected {event_type}, got {other:?}", self.account),
        }
    }

    pub async fn expect_sync(&mut self, event_type: &str) -> Value {
        match self.next().await {
            Notification::MultiClientSync(t) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                assert_eq!(v["eventType"], event_type, "{}: {v}", self.account);
                v
            }
            other => panic!(
                "{}: expected multi-client {event_type}, got {other:?}",
                self.account
            ),
        }
    }

    pub async fn expect_members_sync(&mut self) -> Value {
        match self.next().await {
            Notification::MembersSync(t) => serde_json::from_str(&t).unwrap(),
            other => panic!("{}: expected members sync, got {other:?}", self.account),
        }
    }

    pub async fn expect_offline(&mut self) -> Value {
        match self.next().await {
            Notification::Offline(t) => serde_json::from_str(&t).unwrap(),
            other => panic!("{}: expected offline list, got {other:?}", self.account),
        }
    }

    pub async fn expect_channels(&mut self) -> Value {
        match self.next().await {
            Notification::Channels(t) => serde_json::from_str(&t).unwrap(),
            other => panic!("{}: expected channels sync, got {other:?}", self.account),
        }
    }

    /// Skips notifications up to the next change to state `want`; its code.
    pub async fn expect_state(&mut self, want: ConnState) -> i32 {
        self.expect_change(want).await.code
    }

    /// Skips notifications up to the next change to state `want`.
    pub async fn expect_change(&mut self, want: ConnState) -> StateChange {
        loop {
            let n = tokio::time::timeout(WAIT, self.rx.recv())
                .await
                .unwrap_or_else(|_| panic!("{}: no {want:?} within {WAIT:?}", self.account))
                .expect("open");
            if let Notification::ConnectionState(change) = n {
                if change.state == want {
                    return change;
                }
            }
        }
    }

    /// Proves nothing but connection states arrives for `d`.
    pub async fn expect_silence(&mut self, d: Duration) {
        let end = tokio::time::Instant::now() + d;
        loop {
            match tokio::time::timeout_at(end, self.rx.recv()).await {
                Err(_) => return,
                Ok(Some(Notification::ConnectionState(..))) => continue,
                Ok(other) => panic!("{}: expected nothing, got {other:?}", self.account),
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Helpers for the scenario tests.

use futures_util::{SinkExt, StreamExt};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio_tungstenite::tungstenite::Message;

/// The channelId of a result that carries a channelInfo.
pub fn cid(v: &Value) -> String {
    v["channelInfo"]["channelId"]
        .as_str()
        .unwrap_or_else(|| panic!("no channelInfo.channelId in {v}"))
        .to_string()
}

/// The accounts of a `members` array, sorted.
pub fn accounts(members: &Value) -> Vec<String> {
    let mut v: Vec<String> = members
        .as_array()
        .unwrap_or_else(|| panic!("members is not an array: {members}"))
        .iter()
        .map(|m| m["account"].as_str().expect("member.account").to_string())
        .collect();
    v.sort();
    v
}

/// The member of `account` in a `members` array.
pub fn member_of<'a>(members: &'a Value, account: &str) -> &'a Value {
    members
        .as_array()
        .and_then(|a| a.iter().find(|m| m["account"] == account))
        .unwrap_or_else(|| panic!("{account} not in {members}"))
}

/// Milliseconds since the Unix epoch (the server's clock: same process).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Sleeps until the wall clock has passed `t` (ms since the epoch).
pub async fn sleep_past(t: i64) {
    while now_ms() <= t {
        tokio::time::sleep(Duration::from_millis((t - now_ms()).clamp(1, 50) as u64)).await;
    }
}

/// Calls `check` every 50 ms until it returns true; fails after 10 s.
pub async fn wait_until<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_until_within(what, WAIT, check).await
}

/// [`wait_until`] with a bound of its own, for what takes longer than
/// [`WAIT`] by nature (a Redis Cluster electing a new master).
pub async fn wait_until_within<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "gave up waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the server no longer has a live session of `account`.
pub async fn wait_offline(srv: &TestServer, account: &str) {
    let store = srv.service().store.clone();
    wait_until(&format!("{account} to be offline"), || {
        let store = store.clone();
        async move { !store.account_online(account).await.unwrap_or(true) }
    })
    .await;
}

/// A logged-in client built with extra config keys (e.g. a token).
pub async fn login_with(url: &str, account: &str, device: &str, extra: Value) -> TestClient {
    let (c, offline, _) = login_full(url, account, device, extra).await;
    assert!(
        offline.is_none(),
        "{account}/{device}: unexpected offline list {offline:?}"
    );
    c
}

/// Logs in and returns the client, the offline list if one came (it comes
/// only when there are offline events) and the channels sync.
pub async fn login_full(
    url: &str,
    account: &str,
    device: &str,
    extra: Value,
) -> (TestClient, Option<Value>, Value) {
    let mut c = client_for(url, account, device, extra);
    let (code, body) = c.client.login().await;
    assert_eq!(code, 200, "login of {account}/{device}: {body}");
    let (offline, channels) = match c.next().await {
        Notification::Offline(t) => {
            let offline: Value = serde_json::from_str(&t).unwrap();
            (Some(offline), c.expect_channels().await)
        }
        Notification::Channels(t) => (None, serde_json::from_str(&t).unwrap()),
        other => panic!("{account}/{device}: expected offline list or channels, got {other:?}"),
    };
    (c, offline, channels)
}

/// `control` params: a CONTROL to `to`'s account in `room`, carrying `attach`.
pub fn control_to(room: &str, to: &str, attach: impl Into<Value>) -> Value {
    json!({"channelId": room, "account": to, "attachExt": attach.into()})
}

/// Params naming an invitation: its `room`, the other side's `account` (the
/// invitee to invite or cancel, the inviter to accept or reject) and its
/// `request_id`.
pub fn invitation(room: &str, account: &str, request_id: &str) -> Value {
    json!({"channelId": room, "account": account, "requestId": request_id})
}

static FENCE: AtomicU64 = AtomicU64::new(1);

/// Proves that nothing is queued for `to` before this point: `from` sends a
/// CONTROL to `to`'s account in room `cid` (where that account is a member or
/// the creator), and the next notification of every client in `to` must be
/// exactly that CONTROL. Events of one account arrive in log order, so
/// anything sent to it earlier would show up first.
pub async fn fence(from: &TestClient, cid: &str, to: &mut [&mut TestClient]) {
    let tag = format!("fence-{}", FENCE.fetch_add(1, Ordering::Relaxed));
    from.ok("control", control_to(cid, &to[0].account, tag.as_str()))
        .await;
    for c in to.iter_mut() {
        let ev = c.expect_event("CONTROL").await;
        assert_eq!(ev["attachExt"], tag.as_str(), "{}: {ev}", c.account);
    }
}

impl TestClient {
    /// Sends a request that must fail with `code`; returns the result.
    pub async fn fails(&self, op: &str, params: Value, code: i32) -> Value {
        let (got, v) = self.req(op, params.clone()).await;
        assert_eq!(got, code, "{} {op} {params}: {v}", self.account);
        assert!(v["message"].is_string(), "a failure carries a message: {v}");
        v
    }

    /// Invites an account that has no online device, with offlineEnabled:
    /// answered 10201 and kept for its next login.
    pub async fn invite_offline(&self, room: &str, account: &str, request_id: &str) {
        let p = json!({"channelId": room, "account": account, "requestId": request_id, "offlineEnabled": true});
        self.fails("invite", p, 10201).await;
    }

    /// Creates a room (named or not) and returns its channelId.
    pub async fn create(&self, name: Option<&str>) -> String {
        let mut p = json!({"type": 1});
        if let Some(n) = name {
            p["channelName"] = n.into();
        }
        cid(&self.ok("create", p).await)
    }

    /// Creates a room and joins it; returns its channelId.
    pub async fn create_joined(&self, name: Option<&str>) -> String {
        let id = self.create(name).await;
        self.ok("join", json!({"channelId": id})).await;
        id
    }

    /// The next event, which must be `event_type` about room `cid`, sent by
    /// `from`.
    pub async fn expect_event_from(&mut self, event_type: &str, cid: &str, from: &str) -> Value {
        let ev = self.expect_event(event_type).await;
        assert_eq!(
            ev["channelInfo"]["channelId"], cid,
            "{}: {ev}",
            self.account
        );
        assert_eq!(ev["fromAccountId"], from, "{}: {ev}", self.account);
        ev
    }

    /// The next event, which must be an INVITE into `room` from `from` with
    /// requestId `request_id`.
    pub async fn expect_invite(&mut self, room: &str, from: &str, request_id: &str) -> Value {
        let ev = self.expect_event_from("INVITE", room, from).await;
        assert_eq!(ev["requestId"], request_id, "{}: {ev}", self.account);
        ev
    }

    /// The next event, which must be the receipt (INVITE_DELIVERED) of this
    /// account's invitation `request_id` into `room`: the invitee's library
    /// acknowledged it on one more device, `count` so far. Returns it.
    pub async fn expect_delivered(
        &mut self,
        room: &str,
        invitee: &str,
        request_id: &str,
        count: u64,
    ) -> Value {
        let ev = self
            .expect_event_from("INVITE_DELIVERED", room, invitee)
            .await;
        assert_eq!(ev["eventTypeCode"], 10, "{}: {ev}", self.account);
        assert_eq!(ev["toAccount"], self.account.as_str(), "{ev}");
        assert_eq!(ev["requestId"], request_id, "{}: {ev}", self.account);
        assert_eq!(ev["deliveredCount"], count, "{}: {ev}", self.account);
        ev
    }

    /// Invites `to`'s account into `room` as `request_id` (answered 200); the
    /// next event of `to` must be that INVITE, from this account. Returns it.
    pub async fn invite_rings(&self, to: &mut TestClient, room: &str, request_id: &str) -> Value {
        self.ok("invite", invitation(room, &to.account, request_id))
            .await;
        to.expect_invite(room, &self.account, request_id).await
    }

    /// Calls `to`'s account (a new room of type 1, requestId `request_id`,
    /// answered 200); the next event of `to` must be that INVITE, from this
    /// account. Returns the new room's channelId.
    pub async fn call_rings(&self, to: &mut TestClient, request_id: &str) -> String {
        let p = json!({"type": 1, "account": to.account, "requestId": request_id});
        let room = cid(&self.ok("call", p).await);
        to.expect_invite(&room, &self.account, request_id).await;
        room
    }

    /// Sends `to`'s account a CONTROL in `room` carrying `attach` (answered
    /// 200); the next event of `to` must be that CONTROL, from this account,
    /// with that attachExt. Returns it.
    pub async fn control_reaches(&self, to: &mut TestClient, room: &str, attach: &str) -> Value {
        self.ok("control", control_to(room, &to.account, attach))
            .await;
        let ev = to.expect_event_from("CONTROL", room, &self.account).await;
        assert_eq!(ev["attachExt"], attach, "{}: {ev}", to.account);
        ev
    }
}

// Raw WebSocket access, for what the client library does not let one send.

pub type RawWs =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub async fn raw_connect(url: &str) -> RawWs {
    tokio_tungstenite::connect_async(url)
        .await
        .expect("raw connect")
        .0
}

/// Sends a request frame and returns the `result` of its reply (None if the
/// connection closed first). Event frames in between are skipped.
pub async fn raw_request(ws: &mut RawWs, id: u64, op: &str, params: Value) -> Option<Value> {
    raw_request_frame(
        ws,
        json!({"t": "req", "id": id, "op": op, "params": params}),
    )
    .await
}

/// Like `raw_request`, for a whole request frame (whose `id` the reply
/// names), e.g. one with extra keys.
pub async fn raw_request_frame(ws: &mut RawWs, frame: Value) -> Option<Value> {
    let id = frame["id"].clone();
    ws.send(Message::text(frame.to_string())).await.ok()?;
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("raw reply in time")?;
        match msg {
            Ok(Message::Text(t)) => {
                let v: Value = serde_json::from_str(&t).expect("frame is JSON");
                if v["t"] == "res" && v["id"] == id {
                    return Some(v["result"].clone());
                }
            }
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

// ---------------------------------------------------------------------------
// The standalone server binary.

pub use built::server_bin;

/// A running `nim-signaling-server` and the URL it printed; killed on drop.
pub struct ServerProcess(pub std::process::Child, pub String);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary with `args` and waits for its "listening on URL" line.
pub fn spawn_server(args: &[&str]) -> ServerProcess {
    spawn_server_with(args, &[], std::process::Stdio::null())
}

/// Like [`spawn_server`], with extra environment variables and its stderr
/// (the logs) sent to `stderr`.
pub fn spawn_server_with(
    args: &[&str],
    env: &[(String, String)],
    stderr: std::process::Stdio,
) -> ServerProcess {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut child = Command::new(server_bin())
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("start nim-signaling-server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("nim-signaling-server listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_string();
    ServerProcess(child, url)
}

/// GETs `path` from `base` (`http://IP:PORT`); returns (status line, body).
pub async fn http_get(base: &str, path: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.strip_prefix("http://").unwrap();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).await.unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a response");
    (head.lines().next().unwrap().to_string(), body.to_string())
}
