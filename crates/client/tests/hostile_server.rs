//! The client against tiny fake servers that misbehave: one that answers
//! every login and then closes at once (the reconnect backoff must keep
//! growing, not restart at 100 ms after each short-lived connection), and
//! one that advertises a larger frame limit than it enforces (a request it
//! refuses with 1009 completes with 414 and is not sent again).
// The handshake callback's error type is tungstenite's (an HTTP response).
#![allow(clippy::result_large_err)]

use futures_util::{SinkExt, StreamExt};
use nim_signaling_client::{channel_sink, Client, ClientConfig, ConnState, Notification};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// Completes the WebSocket handshake (echoing the subprotocol, which the
/// client insists on) and answers the login frame with a 200 whose extra
/// keys are `extra`.
async fn accept_login(tcp: TcpStream, extra: Value) -> Option<WebSocketStream<TcpStream>> {
    let echo = |_: &Request, mut resp: Response| {
        resp.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static("nim-signaling.v1"),
        );
        Ok(resp)
    };
    let mut ws = tokio_tungstenite::accept_hdr_async(tcp, echo).await.ok()?;
    loop {
        let Message::Text(t) = ws.next().await?.ok()? else {
            continue;
        };
        let f: Value = serde_json::from_str(&t).ok()?;
        if f["op"] == "login" {
            break;
        }
    }
    let mut result = json!({"code": 200, "seq": 0, "epoch": "e1", "resumed": false});
    for (k, v) in extra.as_object().unwrap() {
        result[k] = v.clone();
    }
    let reply = json!({"t": "res", "id": 0, "result": result}).to_string();
    ws.send(Message::text(reply)).await.ok()?;
    Some(ws)
}

fn client(url: &str) -> (Client, tokio::sync::mpsc::UnboundedReceiver<Notification>) {
    let cfg = json!({"serverUrl": url, "account": "a", "token": "", "deviceId": "d"});
    let cfg = ClientConfig::from_json(&cfg.to_string()).unwrap();
    let (sink, rx) = channel_sink();
    (Client::new(cfg, sink), rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_closes_after_every_login_sees_growing_reconnect_delays() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                if let Some(mut ws) = accept_login(tcp, json!({})).await {
                    let _ = ws.close(None).await;
                }
            });
        }
    });
    let (c, mut rx) = client(&url);
    let (code, body) = c.login().await;
    assert_eq!(code, 200, "{body}");
    let window = Duration::from_secs(3);
    tokio::time::sleep(window).await;
    let connections = accepted.load(Ordering::SeqCst);
    c.shutdown();
    // Delays of 100, 200, 400, 800, 1600 ms (each plus up to half again):
    // at most 5 reconnects fit in 3 s, 6 connections with the first. A
    // backoff restarted by each (short-lived) connection reconnects every
    // 100–150 ms: some 20 times.
    assert!(
        (2..=7).contains(&connections),
        "{connections} connections in {window:?}"
    );
    let mut reconnecting = 0;
    while let Ok(n) = rx.try_recv() {
        if let Notification::ConnectionState(s) = n {
            reconnecting += usize::from(s.state == ConnState::Reconnecting);
        }
    }
    assert!(reconnecting <= 7, "{reconnecting} reconnecting states");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_the_server_closes_1009_on_gets_414_and_is_not_sent_again() {
    const REAL_LIMIT: usize = 4096;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let big_frames = Arc::new(AtomicUsize::new(0));
    let seen = big_frames.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                // Advertises a limit it does not keep (as a node whose
                // setting differs from the one the client logged in to).
                let Some(mut ws) = accept_login(tcp, json!({"maxFrameBytes": 1 << 20})).await
                else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    let Message::Text(t) = msg else { continue };
                    if t.len() > REAL_LIMIT {
                        seen.fetch_add(1, Ordering::SeqCst);
                        let cf = CloseFrame {
                            code: CloseCode::Size,
                            reason: "frame larger than maxFrameBytes".into(),
                        };
                        let _ = ws.close(Some(cf)).await;
                        return;
                    }
                    let f: Value = serde_json::from_str(&t).unwrap();
                    let reply = json!({"t": "res", "id": f["id"], "result": {"code": 200}});
                    let _ = ws.send(Message::text(reply.to_string())).await;
                }
            });
        }
    });
    let (c, _rx) = client(&url);
    let (code, body) = c.login().await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(c.max_frame_bytes(), 1 << 20, "the login reply's limit");
    let started = std::time::Instant::now();
    let (code, body) = c
        .request("sync", json!({"junk": "x".repeat(2 * REAL_LIMIT)}))
        .await;
    assert_eq!(code, 414, "{body}");
    assert!(body.contains("larger than its limit"), "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "answered at once"
    );
    // The client reconnects (the connection was lost), but never sends the
    // refused request again; a small one goes through.
    let (code, body) = c.request("sync", json!({})).await;
    assert_eq!(code, 200, "{body}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(big_frames.load(Ordering::SeqCst), 1, "sent once");
    c.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_the_advertised_limit_is_refused_unsent() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let frames = Arc::new(AtomicUsize::new(0));
    let seen = frames.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let Some(mut ws) = accept_login(tcp, json!({"maxFrameBytes": 2048})).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_text() {
                        seen.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
    });
    let (c, _rx) = client(&url);
    // Before any login the documented default applies.
    assert_eq!(c.max_frame_bytes(), 65536);
    let (code, body) = c.login().await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(c.max_frame_bytes(), 2048);
    let (code, body) = c.request("sync", json!({"junk": "x".repeat(3000)})).await;
    assert_eq!(code, 414, "{body}");
    assert!(body.contains("maxFrameBytes 2048"), "{body}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(frames.load(Ordering::SeqCst), 0, "nothing sent after login");
    c.shutdown();
}
