//! `/metrics` (Prometheus text) and `/healthz` on their own address: what
//! a scrape shows after a call.

mod common;

use common::*;
use serde_json::json;

fn value(scrape: &str, series: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn a_scrape_after_a_call() {
    let srv = start_server(json!({"metricsListen": "127.0.0.1:0"})).await;
    let base = srv.metrics_url().expect("metrics address");
    let alice = login(srv.url(), "alice", "a1").await;
    let mut bob = login(srv.url(), "bob", "b1").await;
    let room = alice.call_rings(&mut bob, "r1").await;
    bob.ok(
        "accept",
        json!({"channelId": room, "account": "alice", "requestId": "r1"}),
    )
    .await;
    bob.fails("join", json!({"channelId": "nope"}), 10404).await;

    let (status, m) = http_get(&base, "/metrics").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(value(&m, "nim_signaling_connections"), Some(2.0), "{m}");
    assert_eq!(value(&m, "nim_signaling_sessions"), Some(2.0), "{m}");
    assert_eq!(value(&m, "nim_signaling_logins_total"), Some(2.0), "{m}");
    let calls = "nim_signaling_requests_total{op=\"call\",code=\"200\"}";
    assert_eq!(value(&m, calls), Some(1.0), "{m}");
    let missing = "nim_signaling_requests_total{op=\"join\",code=\"10404\"}";
    assert_eq!(value(&m, missing), Some(1.0), "{m}");
    let timed = "nim_signaling_request_seconds_count{op=\"accept\"}";
    assert_eq!(value(&m, timed), Some(1.0), "{m}");
    // The store's sizes: the call's room, events in the logs, and the
    // invitation's expiry timer.
    assert_eq!(value(&m, "nim_signaling_rooms"), Some(1.0), "{m}");
    assert!(
        value(&m, "nim_signaling_log_entries").unwrap() >= 2.0,
        "{m}"
    );
    assert!(
        value(&m, "nim_signaling_timers_pending").unwrap() >= 1.0,
        "{m}"
    );
    // INVITE to bob, ACCEPT to alice.
    let sent = value(&m, "nim_signaling_events_sent_total").unwrap();
    assert!(sent >= 2.0, "{m}");

    let (status, body) = http_get(&base, "/healthz").await;
    assert_eq!(
        (status.as_str(), body.as_str()),
        ("HTTP/1.1 200 OK", "ok\n")
    );
    let (status, _) = http_get(&base, "/nothing").await;
    assert_eq!(status, "HTTP/1.1 404 Not Found");

    // Gauges go down as sessions end.
    bob.client.shutdown();
    wait_offline(&srv, "bob").await;
    let (_, m) = http_get(&base, "/metrics").await;
    assert_eq!(value(&m, "nim_signaling_sessions"), Some(1.0), "{m}");
    srv.shutdown().await;
}
