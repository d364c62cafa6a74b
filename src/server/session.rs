//! One session per connection: the WebSocket handshake, login (nothing else
//! is accepted before it), then requests in and events out until the peer
//! leaves, goes silent, is replaced by a newer login, or the server stops.

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::handshake::server::{
    ErrorResponse, Request as HsRequest, Response as HsResponse,
};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::router::SessionLink;
use super::service::{now_ms, Service, SessionInfo, MAX_OFFLINE_EVENTS};
use super::ServerConfig;
use crate::protocol::codes::{AUTH_FAILED, FORBIDDEN, INVALID_PARAM, NOT_CONNECTED, OK};
use crate::protocol::frames::{self, ClientFrame, SUBPROTOCOL};
use crate::protocol::params::LoginParams;
use crate::protocol::{Failure, Request};

type Ws = WebSocketStream<TcpStream>;

static SESSION_IDS: AtomicU64 = AtomicU64::new(1);

/// Events read from the log per batch; one flush per batch.
const DRAIN_BATCH: usize = 256;

/// The tungstenite settings for server sessions: bounded frames, small
/// buffers (idle connections must stay cheap).
pub fn ws_config(max_frame: usize) -> WebSocketConfig {
    let mut c = WebSocketConfig::default();
    c.max_message_size = Some(max_frame);
    c.max_frame_size = Some(max_frame);
    c.write_buffer_size = 0;
    c.max_write_buffer_size = max_frame * 4;
    c
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

async fn send_text(ws: &mut Ws, text: String) -> Result<(), ()> {
    ws.send(Message::Text(text)).await.map_err(|_| ())
}

/// Reads frames until one is text (the caller bounds the wait).
async fn next_text(ws: &mut Ws) -> Option<String> {
    while let Some(msg) = ws.next().await {
        match msg {
            Ok(Message::Text(t)) => return Some(t),
            Ok(Message::Ping(_)) | Ok(Message::Pong(_)) => continue,
            _ => return None,
        }
    }
    None
}

/// Waits for the login request; answers failures and returns None for them.
async fn login(ws: &mut Ws, cfg: &ServerConfig) -> Option<(u64, LoginParams)> {
    let text = next_text(ws).await?;
    let frame: Option<ClientFrame> = serde_json::from_str(&text).ok();
    let Some(frame) = frame.filter(|f| f.t == "req") else {
        let _ = send_text(
            ws,
            frames::failure_frame(0, &Failure::new(INVALID_PARAM, "not a request frame")),
        )
        .await;
        return None;
    };
    let id = frame.id.unwrap_or(0);
    if frame.op.as_deref() != Some("login") {
        let _ = send_text(
            ws,
            frames::failure_frame(id, &Failure::new(NOT_CONNECTED, "log in first")),
        )
        .await;
        return None;
    }
    let params = frame.params.unwrap_or(json!({}));
    let p = match Request::parse("login", &params) {
        Ok(Request::Login(p)) => p,
        Ok(_) => return None,
        Err(f) => {
            let _ = send_text(ws, frames::failure_frame(id, &f)).await;
            return None;
        }
    };
    let now_secs = (now_ms() / 1000) as u64;
    if !cfg.auth.verify(&p.account, &p.token, now_secs) {
        let f = Failure::new(
            AUTH_FAILED,
            "authentication failed: unknown account or bad token",
        );
        let _ = send_text(ws, frames::failure_frame(id, &f)).await;
        return None;
    }
    Some((id, p))
}

/// Serves one TCP connection to its end.
pub async fn serve(
    svc: Arc<Service>,
    cfg: Arc<ServerConfig>,
    stream: TcpStream,
    mut shutdown: broadcast::Receiver<()>,
) {
    let _ = stream.set_nodelay(true);
    let login_timeout = Duration::from_millis(cfg.login_timeout_ms);
    let hs = tokio_tungstenite::accept_hdr_async_with_config(
        stream,
        negotiate,
        Some(ws_config(cfg.max_frame_bytes)),
    );
    let Ok(Ok(mut ws)) = tokio::time::timeout(login_timeout, hs).await else {
        return;
    };
    let Ok(Some((login_id, p))) = tokio::time::timeout(login_timeout, login(&mut ws, &cfg)).await
    else {
        let _ = ws.close(None).await;
        return;
    };
    let account = p.account.clone();
    let device = p.device_id.clone();
    let session_id = SESSION_IDS.fetch_add(1, Ordering::Relaxed);
    let link = Arc::new(SessionLink {
        id: session_id,
        device: device.clone(),
        wake: tokio::sync::Notify::new(),
        kicked: Default::default(),
    });

    // Read the log bounds before going live: anything appended after this
    // point has a larger seq and is sent live; anything before it and kept
    // for offline delivery is in the offline list. Nothing falls between.
    let (first, head) = svc.store.log_bounds(&account).await;
    svc.hub.register(&account, link.clone());
    if let Some(old) = svc.store.session_up(&account, &device, session_id).await {
        svc.hub.kick(&account, old);
    }
    let resumed = p.resume_seq.filter(|r| *r + 1 >= first && *r <= head);
    let offline_from = svc.store.cursor(&account, &device).await;
    let mut cursor = resumed.unwrap_or(head);
    let info = SessionInfo {
        account: account.clone(),
        device: device.clone(),
        offline_from,
        offline_to: head,
    };

    let now = now_ms();
    let reply = json!({
        "code": OK, "account": account, "deviceId": device, "seq": cursor,
        "resumed": resumed.is_some(), "heartbeatIntervalMs": cfg.heartbeat_interval_ms,
    });
    let mut ok = send_text(&mut ws, frames::reply_frame(login_id, &reply))
        .await
        .is_ok();
    if ok && resumed.is_none() {
        let events = svc
            .offline_list(&account, &device, offline_from, head, now)
            .await
            .unwrap_or_default();
        if !events.is_empty() {
            ok = send_text(
                &mut ws,
                frames::offline_frame(&events[..events.len().min(MAX_OFFLINE_EVENTS)]),
            )
            .await
            .is_ok();
        }
    }
    if ok {
        let channels = svc
            .channels_of(&account, now)
            .await
            .unwrap_or_else(|_| json!([]));
        ok = send_text(&mut ws, frames::channels_frame(&channels))
            .await
            .is_ok();
    }
    svc.store.set_cursor(&account, &device, cursor).await;
    tracing::debug!(%account, %device, session_id, resumed = resumed.is_some(), "logged in");

    if ok {
        run(
            &mut ws,
            &svc,
            &cfg,
            &info,
            &link,
            &mut cursor,
            &mut shutdown,
        )
        .await;
    }
    let _ = ws.close(None).await;
    svc.hub.unregister(&account, session_id);
    svc.store.session_down(&account, &device, session_id).await;
    svc.store.set_cursor(&account, &device, cursor).await;
    if !link.kicked.load(Ordering::SeqCst) {
        svc.schedule_member_drop(account, device);
    }
}

/// The logged-in loop.
async fn run(
    ws: &mut Ws,
    svc: &Arc<Service>,
    cfg: &ServerConfig,
    info: &SessionInfo,
    link: &SessionLink,
    cursor: &mut u64,
    shutdown: &mut broadcast::Receiver<()>,
) {
    let silence = Duration::from_millis(cfg.heartbeat_timeout_ms);
    let mut last_heard = Instant::now();
    let mut check = tokio::time::interval((silence / 4).max(Duration::from_millis(250)));
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Events may have arrived between login and now.
    link.wake.notify_one();
    loop {
        tokio::select! {
            msg = ws.next() => {
                last_heard = Instant::now();
                let text = match msg {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Ping(_))) | Some(Ok(Message::Pong(_))) => continue,
                    Some(Ok(Message::Binary(_))) => {
                        let f = Failure::new(INVALID_PARAM, "binary frames are not part of the protocol");
                        if send_text(ws, frames::failure_frame(0, &f)).await.is_err() { return }
                        continue;
                    }
                    _ => return,
                };
                match handle_text(svc, info, &text).await {
                    Handled::Reply(r) => if send_text(ws, r).await.is_err() { return },
                    Handled::Logout(r) => {
                        // Offline before the reply: once the client hears its
                        // logout succeeded, events for the account must count
                        // as offline (10201, kept when offlineEnabled), not as
                        // delivered to this closing session. serve() repeats
                        // both calls; they are no-ops by session id.
                        svc.hub.unregister(&info.account, link.id);
                        svc.store.session_down(&info.account, &info.device, link.id).await;
                        let _ = send_text(ws, r).await;
                        return;
                    }
                    Handled::Nothing => {}
                }
            }
            _ = link.wake.notified() => {
                if link.kicked.load(Ordering::SeqCst) {
                    let _ = send_text(ws, frames::kicked_frame(FORBIDDEN, "replaced by a newer login of this device")).await;
                    return;
                }
                if drain(ws, svc, info, cursor, silence).await.is_err() { return }
            }
            _ = check.tick() => {
                if last_heard.elapsed() > silence {
                    tracing::debug!(account = %info.account, "heartbeat timeout");
                    return;
                }
            }
            _ = shutdown.recv() => return,
        }
    }
}

enum Handled {
    Reply(String),
    Logout(String),
    Nothing,
}

async fn handle_text(svc: &Service, info: &SessionInfo, text: &str) -> Handled {
    let frame: ClientFrame = match serde_json::from_str(text) {
        Ok(f) => f,
        Err(e) => {
            let f = Failure::new(INVALID_PARAM, format!("malformed frame: {e}"));
            return Handled::Reply(frames::failure_frame(0, &f));
        }
    };
    if frame.t != "req" {
        return Handled::Nothing;
    }
    let id = frame.id.unwrap_or(0);
    let op = frame.op.unwrap_or_default();
    let params = frame.params.unwrap_or(json!({}));
    match Request::parse(&op, &params) {
        Ok(Request::Logout) => Handled::Logout(frames::reply_frame(id, &json!({"code": OK}))),
        Ok(Request::Login(_)) => Handled::Reply(frames::failure_frame(
            id,
            &Failure::new(INVALID_PARAM, "already logged in"),
        )),
        Ok(req) => Handled::Reply(frames::reply_frame(id, &svc.handle(info, req).await)),
        Err(f) => Handled::Reply(frames::failure_frame(id, &f)),
    }
}

/// Sends every log entry after `cursor`, feeding frames and flushing once
/// per batch. A peer that cannot take them within `patience` is dropped
/// (it will resume from its log when it reconnects).
async fn drain(
    ws: &mut Ws,
    svc: &Service,
    info: &SessionInfo,
    cursor: &mut u64,
    patience: Duration,
) -> Result<(), ()> {
    loop {
        let batch = svc
            .store
            .read_after(&info.account, *cursor, DRAIN_BATCH)
            .await
            .map_err(|_| ())?;
        let n = batch.len();
        if n == 0 {
            return Ok(());
        }
        let send = async {
            for e in batch {
                *cursor = e.seq;
                if e.exclude_device.as_deref() == Some(info.device.as_str()) {
                    continue;
                }
                ws.feed(Message::Text(frames::event_frame(
                    e.seq, e.kind, &e.encoded,
                )))
                .await?;
            }
            ws.flush().await
        };
        match tokio::time::timeout(patience, send).await {
            Ok(Ok(())) => {}
            _ => return Err(()),
        }
        if n < DRAIN_BATCH {
            return Ok(());
        }
    }
}
