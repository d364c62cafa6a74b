//! Webhooks as a receiver sees them: a local HTTP receiver checks every
//! signature itself (hmac + sha2, not the server's signer), records what
//! arrives, and can be told to fail, refuse or hang. Events are caused by
//! real clients over real sockets. The last test runs two nodes on one
//! Redis (its own, or NIM_TEST_REDIS_URL; see tests/common/redis.rs; it fails,
//! saying so, without one, like the other cluster tests).

mod common;

use common::receiver::signed_by;
use common::*;
use nim_signaling_server::ops::http::{self, HttpRequest, HttpResponse};
use nim_signaling_server::{self as srvmod, ServerConfig, ServerHandle};
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SECRET: &str = "webhook-test-secret";

/// What the receiver does with the next POSTs.
#[derive(Default)]
struct Behaviour {
    /// Answer this many POSTs 503 first.
    fail_next: usize,
    /// Answer every POST with this status (and record nothing).
    always: Option<u16>,
    /// Never answer.
    hang: bool,
}

/// One POST that arrived with a good signature.
#[derive(Debug, Clone)]
struct Post {
    body: Value,
    event: String,
    delivery: String,
    attempt: u32,
    /// What the receiver answered.
    status: u16,
}

#[derive(Default)]
struct Seen {
    posts: Vec<Post>,
    /// POSTs whose signature did not check out.
    forged: usize,
    behaviour: Behaviour,
}

struct Receiver {
    url: String,
    seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

/// Checks `t=<ms>,v1=<hex>` the way docs/WEBHOOKS.md tells receivers to:
/// HMAC-SHA256(secret, "<ms>." + body), and the same ms as the body's `at`.
fn signed_ok(req: &HttpRequest) -> bool {
    if !signed_by(SECRET, req) {
        return false;
    }
    let sig = header(req, "x-nim-signature");
    let t = sig.split(',').find_map(|p| p.strip_prefix("t="));
    let body: Value = serde_json::from_slice(&req.body).unwrap_or_default();
    body["at"].as_i64().map(|a| a.to_string()).as_deref() == t
}

fn header(req: &HttpRequest, name: &str) -> String {
    req.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Seen::default()));
        let s = seen.clone();
        let task = tokio::spawn(http::serve(listener, move |req| {
            let seen = s.clone();
            async move { Receiver::answer(&seen, req).await }
        }));
        Receiver { url, seen, task }
    }

    async fn answer(seen: &Mutex<Seen>, req: HttpRequest) -> HttpResponse {
        if !signed_ok(&req) {
            seen.lock().unwrap().forged += 1;
            return HttpResponse::text(401, "bad signature\n");
        }
        let hang = seen.lock().unwrap().behaviour.hang;
        if hang {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        let mut s = seen.lock().unwrap();
        let status = if s.behaviour.fail_next > 0 {
            s.behaviour.fail_next -= 1;
            503
        } else {
            s.behaviour.always.unwrap_or(200)
        };
        s.posts.push(Post {
            body: serde_json::from_slice(&req.body).expect("JSON body"),
            event: header(&req, "x-nim-event"),
            delivery: header(&req, "x-nim-delivery"),
            attempt: header(&req, "x-nim-attempt").parse().unwrap_or(0),
            status,
        });
        HttpResponse::text(status, "")
    }

    fn behave(&self, b: Behaviour) {
        self.seen.lock().unwrap().behaviour = b;
    }

    /// The events accepted (answered 200), in arrival order.
    fn delivered(&self) -> Vec<Post> {
        let s = self.seen.lock().unwrap();
        s.posts
            .iter()
            .filter(|p| p.status == 200)
            .cloned()
            .collect()
    }

    fn all_posts(&self) -> Vec<Post> {
        self.seen.lock().unwrap().posts.clone()
    }

    /// The accepted events of one room.
    fn of_room(&self, room: &str) -> Vec<Post> {
        let mut v = self.delivered();
        v.retain(|p| p.body["channelId"] == room);
        v
    }

    /// Waits until `n` events of `room` were accepted; returns them.
    async fn wait_room(&self, room: &str, n: usize) -> Vec<Post> {
        wait_until(&format!("{n} webhooks of room {room}"), || {
            let got = self.of_room(room).len();
            async move { got >= n }
        })
        .await;
        self.of_room(room)
    }

    /// Waits for the first accepted event of `kind` about `room`.
    async fn wait_event(&self, room: &str, kind: &str) -> Post {
        wait_until(&format!("{kind} of room {room}"), || {
            let found = self.of_room(room).iter().any(|p| p.event == kind);
            async move { found }
        })
        .await;
        self.of_room(room)
            .into_iter()
            .find(|p| p.event == kind)
            .unwrap()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn hook_cfg(urls: &[&Receiver], webhooks: Value) -> Value {
    let mut w = json!({
        "urls": urls.iter().map(|r| r.url.clone()).collect::<Vec<_>>(),
        "secret": SECRET,
        "retryBaseMs": 20,
        "retryMaxMs": 100,
        "timeoutMs": 2000,
    });
    for (k, v) in webhooks.as_object().unwrap() {
        w[k] = v.clone();
    }
    w
}

/// A server (with /metrics) sending to `urls`; `extra` are top-level keys,
/// `webhooks` overrides of the webhooks section.
async fn server(urls: &[&Receiver], webhooks: Value, extra: Value) -> TestServer {
    let mut cfg = json!({"metricsListen": "127.0.0.1:0", "webhooks": hook_cfg(urls, webhooks)});
    for (k, v) in extra.as_object().unwrap() {
        cfg[k] = v.clone();
    }
    start_server(cfg).await
}

/// (type, roomVersion) of each post.
fn kinds(posts: &[Post]) -> Vec<(String, u64)> {
    posts
        .iter()
        .map(|p| (p.event.clone(), p.body["roomVersion"].as_u64().unwrap()))
        .collect()
}

fn metric(scrape: &str, series: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Scrapes `/metrics` and checks each (series, value).
async fn metrics_are(srv: &TestServer, want: &[(&str, f64)]) {
    let m = http_get(&srv.metrics_url().unwrap(), "/metrics").await.1;
    for (series, value) in want {
        assert_eq!(metric(&m, series), Some(*value), "{series} in\n{m}");
    }
}

/// Waits until every queued webhook of the node has been dealt with.
async fn settled(node: &ServerHandle) {
    let m = node.metrics().clone();
    wait_until("the webhook queues to empty", || {
        let d = m.webhooks.queue_depth.load(Ordering::SeqCst);
        async move { d == 0 }
    })
    .await;
}

#[tokio::test]
async fn a_full_call_reports_every_event_in_order() {
    let rx = Receiver::start().await;
    let srv = server(&[&rx], json!({}), json!({})).await;
    let alice = login(srv.url(), "alice", "a1").await;
    let mut bob = login(srv.url(), "bob", "b1").await;
    let carol = login(srv.url(), "carol", "c1").await;
    let _dave = login(srv.url(), "dave", "d1").await;

    let room = alice.call_rings(&mut bob, "r1").await;
    alice.ok("invite", invitation(&room, "carol", "r2")).await;
    carol
        .ok(
            "reject",
            json!({"channelId": room, "account": "alice", "requestId": "r2"}),
        )
        .await;
    alice.ok("invite", invitation(&room, "dave", "r3")).await;
    alice
        .ok(
            "cancel",
            json!({"channelId": room, "account": "dave", "requestId": "r3"}),
        )
        .await;
    bob.ok(
        "accept",
        json!({"channelId": room, "account": "alice", "requestId": "r1"}),
    )
    .await;
    bob.ok("join", json!({"channelId": room})).await;
    bob.ok("leave", json!({"channelId": room})).await;
    alice.ok("close", json!({"channelId": room})).await;

    let got = rx.wait_room(&room, 11).await;
    let want = [
        ("room.created", 1),
        ("member.joined", 1),
        ("invitation.sent", 1),
        ("invitation.sent", 2),
        ("invitation.rejected", 3),
        ("invitation.sent", 4),
        ("invitation.cancelled", 5),
        ("invitation.accepted", 6),
        ("member.joined", 7),
        ("member.left", 8),
        ("room.closed", 9),
    ];
    let want: Vec<(String, u64)> = want.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    assert_eq!(kinds(&got), want);

    // The bodies: who, which invitation, why, and the headers agreeing.
    let joined: Vec<_> = got.iter().filter(|p| p.event == "member.joined").collect();
    assert_eq!(joined[0].body["account"], "alice");
    assert_eq!(joined[0].body["deviceId"], "a1");
    assert!(joined[0].body["uid"].as_u64().unwrap() > 0);
    assert_eq!(joined[1].body["account"], "bob");
    assert_eq!(
        joined[1].body["cause"],
        json!({"kind": "request", "op": "join", "account": "bob", "deviceId": "b1"})
    );
    assert_eq!(got[0].body["cause"]["op"], "call");
    assert_eq!(
        got[4].body["invitation"],
        json!({"requestId": "r2", "from": "alice", "to": "carol"})
    );
    assert_eq!(got[4].body["cause"]["account"], "carol");
    assert_eq!(got[9].body["account"], "bob");
    let closed = &got[10].body;
    assert_eq!(closed["channelInfo"]["channelId"], room.as_str());
    assert_eq!(closed["channelInfo"]["invalid"], 1);
    assert_eq!(got[0].body["channelInfo"]["creatorId"], "alice");
    let mut ids: Vec<&str> = got.iter().map(|p| p.delivery.as_str()).collect();
    for p in &got {
        assert_eq!(p.body["type"], p.event.as_str());
        assert_eq!(p.body["id"], p.delivery.as_str());
        assert_eq!(p.attempt, 1);
        assert!(p.body["at"].as_i64().unwrap() > 0);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), got.len(), "every event has its own id");
    settled(&srv.nodes()[0]).await;
    metrics_are(
        &srv,
        &[
            ("nim_signaling_webhook_delivered_total", 11.0),
            ("nim_signaling_webhook_queue_depth", 0.0),
        ],
    )
    .await;
    srv.shutdown().await;
}

#[tokio::test]
async fn an_unanswered_invitation_times_out() {
    let rx = Receiver::start().await;
    let srv = server(&[&rx], json!({}), json!({"inviteTtlMs": 300})).await;
    let alice = login(srv.url(), "alice", "a1").await;
    let mut bob = login(srv.url(), "bob", "b1").await;
    let room = alice.call_rings(&mut bob, "r1").await;
    let p = rx.wait_event(&room, "invitation.timedOut").await;
    assert_eq!(p.body["cause"], json!({"kind": "inviteTimeout"}));
    assert_eq!(
        p.body["invitation"],
        json!({"requestId": "r1", "from": "alice", "to": "bob"})
    );
    assert_eq!(p.body["roomVersion"], 2);
    srv.shutdown().await;
}

#[tokio::test]
async fn a_vanished_member_is_dropped() {
    let rx = Receiver::start().await;
    let srv = server(&[&rx], json!({}), json!({"memberDropGraceMs": 300})).await;
    let mut alice = login(srv.url(), "alice", "a1").await;
    let bob = login(srv.url(), "bob", "b1").await;
    let room = alice.create_joined(None).await;
    bob.ok("join", json!({"channelId": room})).await;
    alice.expect_event("ROOM_JOIN").await;
    // Gone without a logout.
    bob.client.shutdown();
    let p = rx.wait_event(&room, "member.dropped").await;
    assert_eq!(p.body["account"], "bob");
    assert_eq!(p.body["deviceId"], "b1");
    assert_eq!(
        p.body["cause"],
        json!({"kind": "deviceGone", "account": "bob", "deviceId": "b1"})
    );
    let events: Vec<String> = rx.of_room(&room).into_iter().map(|p| p.event).collect();
    assert!(!events.contains(&"member.left".to_string()), "{events:?}");
    srv.shutdown().await;
}

#[tokio::test]
async fn an_unjoined_room_expires_once_and_a_closed_one_does_not() {
    let rx = Receiver::start().await;
    let srv = server(&[&rx], json!({}), json!({"roomTtlMs": 300})).await;
    let alice = login(srv.url(), "alice", "a1").await;
    // Closed first, so it is forgotten no later than the other.
    let closed = alice.create(None).await;
    alice.ok("close", json!({"channelId": closed})).await;
    let room = alice.create(None).await;
    let p = rx.wait_event(&room, "room.expired").await;
    assert_eq!(p.body["cause"], json!({"kind": "roomExpiry"}));
    assert_eq!(p.body["roomVersion"], 2);
    assert_eq!(p.body["channelInfo"]["invalid"], 1);
    settled(&srv.nodes()[0]).await;
    assert_eq!(
        kinds(&rx.of_room(&room)).len(),
        2,
        "room.created, room.expired"
    );
    let c: Vec<String> = rx.of_room(&closed).into_iter().map(|p| p.event).collect();
    assert_eq!(c, ["room.created", "room.closed"]);
    srv.shutdown().await;
}

#[tokio::test]
async fn only_the_chosen_events_are_sent() {
    let rx = Receiver::start().await;
    let srv = server(
        &[&rx],
        json!({"events": ["member.joined", "room.closed"]}),
        json!({}),
    )
    .await;
    let alice = login(srv.url(), "alice", "a1").await;
    let room = alice.create_joined(None).await;
    alice.ok("close", json!({"channelId": room})).await;
    rx.wait_event(&room, "room.closed").await;
    settled(&srv.nodes()[0]).await;
    let got: Vec<String> = rx.delivered().into_iter().map(|p| p.event).collect();
    assert_eq!(got, ["member.joined", "room.closed"]);
    srv.shutdown().await;
}

#[tokio::test]
async fn a_5xx_is_retried_until_delivered() {
    let rx = Receiver::start().await;
    rx.behave(Behaviour {
        fail_next: 2,
        ..Default::default()
    });
    let srv = server(&[&rx], json!({"events": ["room.created"]}), json!({})).await;
    let alice = login(srv.url(), "alice", "a1").await;
    let room = alice.create(None).await;
    let p = rx.wait_event(&room, "room.created").await;
    assert_eq!(p.attempt, 3);
    settled(&srv.nodes()[0]).await;
    let posts = rx.all_posts();
    let tries: Vec<(u32, u16)> = posts.iter().map(|p| (p.attempt, p.status)).collect();
    assert_eq!(tries, [(1, 503), (2, 503), (3, 200)]);
    assert!(posts.iter().all(|x| x.delivery == p.delivery), "one event");
    metrics_are(
        &srv,
        &[
            ("nim_signaling_webhook_delivered_total", 1.0),
            ("nim_signaling_webhook_attempts_failed_total", 2.0),
        ],
    )
    .await;
    srv.shutdown().await;
}

#[tokio::test]
async fn retries_end_at_max_attempts() {
    let rx = Receiver::start().await;
    rx.behave(Behaviour {
        always: Some(500),
        ..Default::default()
    });
    let srv = server(
        &[&rx],
        json!({"events": ["room.created"], "maxAttempts": 3}),
        json!({}),
    )
    .await;
    let alice = login(srv.url(), "alice", "a1").await;
    alice.create(None).await;
    settled(&srv.nodes()[0]).await;
    let tries: Vec<u32> = rx.all_posts().iter().map(|p| p.attempt).collect();
    assert_eq!(tries, [1, 2, 3]);
    metrics_are(
        &srv,
        &[(
            "nim_signaling_webhook_dropped_total{reason=\"gave_up\"}",
            1.0,
        )],
    )
    .await;
    srv.shutdown().await;
}

#[tokio::test]
async fn a_4xx_is_refused_and_not_retried() {
    let rx = Receiver::start().await;
    rx.behave(Behaviour {
        always: Some(400),
        ..Default::default()
    });
    let srv = server(&[&rx], json!({"events": ["room.created"]}), json!({})).await;
    let alice = login(srv.url(), "alice", "a1").await;
    alice.create(None).await;
    settled(&srv.nodes()[0]).await;
    let tries: Vec<(u32, u16)> = rx
        .all_posts()
        .iter()
        .map(|p| (p.attempt, p.status))
        .collect();
    assert_eq!(tries, [(1, 400)]);
    metrics_are(
        &srv,
        &[
            (
                "nim_signaling_webhook_dropped_total{reason=\"refused\"}",
                1.0,
            ),
            ("nim_signaling_webhook_delivered_total", 0.0),
        ],
    )
    .await;
    srv.shutdown().await;
}

#[tokio::test]
async fn a_full_queue_drops_new_events() {
    let rx = Receiver::start().await;
    rx.behave(Behaviour {
        hang: true,
        ..Default::default()
    });
    let srv = server(
        &[&rx],
        json!({"events": ["room.created"], "queueSize": 2, "timeoutMs": 3000}),
        json!({}),
    )
    .await;
    let alice = login(srv.url(), "alice", "a1").await;
    for _ in 0..5 {
        alice.create(None).await;
    }
    metrics_are(
        &srv,
        &[
            (
                "nim_signaling_webhook_dropped_total{reason=\"queue_full\"}",
                3.0,
            ),
            ("nim_signaling_webhook_queue_depth", 2.0),
        ],
    )
    .await;
    // Shutdown gives up on the hanging receiver within its bounded wait.
    srv.shutdown().await;
}

#[tokio::test]
async fn two_receivers_both_get_everything() {
    let one = Receiver::start().await;
    let two = Receiver::start().await;
    let srv = server(&[&one, &two], json!({}), json!({})).await;
    let alice = login(srv.url(), "alice", "a1").await;
    let mut bob = login(srv.url(), "bob", "b1").await;
    let room = alice.call_rings(&mut bob, "r1").await;
    alice.ok("close", json!({"channelId": room})).await;
    let a = one.wait_room(&room, 4).await;
    let b = two.wait_room(&room, 4).await;
    assert_eq!(kinds(&a), kinds(&b));
    let ids = |p: &[Post]| p.iter().map(|p| p.delivery.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&a), ids(&b), "the same events, by id");
    assert_eq!(a.last().unwrap().event, "room.closed");
    srv.shutdown().await;
}

/// The receiver's check is real: unsigned, forged and re-timed POSTs fail
/// it, a correctly signed one passes.
#[tokio::test]
async fn forged_posts_fail_the_signature_check() {
    let rx = Receiver::start().await;
    let to = http::Endpoint::new(&rx.url, &http::Roots::default(), Duration::from_secs(5)).unwrap();
    let body =
        json!({"id": "x", "type": "room.created", "at": 1_700_000_000_000i64, "channelId": "c"});
    let bytes = bytes::Bytes::from(body.to_string());
    let post = |headers: Vec<(&'static str, String)>| {
        let to = to.clone();
        let bytes = bytes.clone();
        async move { to.post_json(&headers, bytes).await.unwrap() }
    };
    let good = http::signature(SECRET, 1_700_000_000_000, &bytes);
    let wrong_key = http::signature("not-the-secret", 1_700_000_000_000, &bytes);
    let wrong_time = http::signature(SECRET, 1_700_000_000_001, &bytes);
    assert_eq!(post(vec![]).await, 401);
    assert_eq!(post(vec![("x-nim-signature", wrong_key)]).await, 401);
    assert_eq!(post(vec![("x-nim-signature", wrong_time)]).await, 401);
    assert_eq!(post(vec![("x-nim-signature", good)]).await, 200);
    assert_eq!(rx.seen.lock().unwrap().forged, 3);
    assert_eq!(rx.delivered().len(), 1);
}

/// `--print-config` shows the receivers but not the secret signing them.
#[test]
fn print_config_masks_the_webhook_secret() {
    let dir = std::env::temp_dir().join(format!("nim-hooks-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("server.json");
    let cfg = json!({"webhooks": {"urls": ["http://127.0.0.1:9/h"], "secret": "hush-hook"}});
    std::fs::write(&file, cfg.to_string()).unwrap();
    let out = std::process::Command::new(common::server_bin())
        .args(["--print-config", "--config", file.to_str().unwrap()])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("http://127.0.0.1:9/h"), "{shown}");
    assert!(
        !shown.contains("hush-hook"),
        "the secret is masked: {shown}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------
// Two nodes on one Redis.

async fn redis_node(cfg: &Value) -> ServerHandle {
    let cfg = ServerConfig::from_json(&cfg.to_string()).expect("server config");
    srvmod::start(cfg).await.unwrap_or_else(|e| {
        panic!(
            "this test could not use Redis at {}: {}",
            common::cluster::redis_url(),
            e.message
        )
    })
}

#[tokio::test]
async fn two_nodes_order_a_room_by_version_and_expire_it_once() {
    let rx = Receiver::start().await;
    let store = common::cluster::redis_store();
    let prefix = store["prefix"].as_str().unwrap().to_string();
    let cfg = unthrottled(json!({
        "store": store,
        "roomTtlMs": 1500,
        "webhooks": hook_cfg(&[&rx], json!({})),
    }));
    let n1 = redis_node(&cfg).await;
    let n2 = redis_node(&cfg).await;
    let mut alice = login(n1.url(), "alice", "a1").await;
    let bob = login(n2.url(), "bob", "b1").await;
    let _carol = login(n2.url(), "carol", "c1").await;

    let room = alice.create_joined(None).await;
    bob.ok("join", json!({"channelId": room})).await;
    alice.expect_event("ROOM_JOIN").await;
    alice.ok("invite", invitation(&room, "carol", "r1")).await;
    bob.ok("leave", json!({"channelId": room})).await;
    alice.ok("leave", json!({"channelId": room})).await;
    // Empty now: it expires after roomTtlMs, and both nodes sweep.
    let expired = rx.wait_event(&room, "room.expired").await;

    // Both nodes' queues empty: anything else either would send is in.
    for n in [&n1, &n2] {
        settled(n).await;
    }
    let mut got = rx.of_room(&room);
    // Arrival order across nodes is not promised; roomVersion orders them.
    got.sort_by_key(|p| p.body["roomVersion"].as_u64().unwrap());
    let want: Vec<(String, u64)> = [
        ("room.created", 1),
        ("member.joined", 2),
        ("member.joined", 3),
        ("invitation.sent", 4),
        ("member.left", 5),
        ("member.left", 6),
        ("room.expired", 7),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), *v))
    .collect();
    assert_eq!(kinds(&got), want, "one event per change, versions 1..=7");
    assert_eq!(got[2].body["account"], "bob");
    assert_eq!(got[4].body["account"], "bob");
    assert_eq!(expired.body["roomVersion"], 7);

    futures_util::future::join_all([n1.quiesce(), n2.quiesce()]).await;
    n1.shutdown().await;
    n2.shutdown().await;
    common::cluster::forget(&prefix).await;
}

/// The additions to NIM, as the room diffs report them: a glaring call is
/// the accept of the ringing invitation plus a join (one version), and an
/// inviteMany one invitation.sent per invitation it made (one version).
#[tokio::test]
async fn glare_and_invite_many_as_webhooks() {
    let rx = Receiver::start().await;
    let srv = server(&[&rx], json!({}), json!({})).await;
    let alice = login(srv.url(), "alice", "a1").await;
    let mut bob = login(srv.url(), "bob", "b1").await;
    let _carol = login(srv.url(), "carol", "c1").await;
    let room = alice.call_rings(&mut bob, "r1").await;
    let p = json!({"type": 1, "account": "alice", "requestId": "b9"});
    assert_eq!(bob.ok("call", p).await["glare"], true);
    let p = json!({"channelId": room, "accounts": ["carol", "dave", "bob"], "requestId": "g1"});
    alice.ok("inviteMany", p).await;

    let got = rx.wait_room(&room, 7).await;
    let want = [
        ("room.created", 1),
        ("member.joined", 1),
        ("invitation.sent", 1),
        ("invitation.accepted", 2),
        ("member.joined", 2),
        ("invitation.sent", 3),
        ("invitation.sent", 3),
    ];
    let want: Vec<(String, u64)> = want.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    assert_eq!(kinds(&got), want);
    assert_eq!(
        got[3].body["invitation"],
        json!({"requestId": "r1", "from": "alice", "to": "bob"})
    );
    assert_eq!(
        got[3].body["cause"],
        json!({"kind": "request", "op": "call", "account": "bob", "deviceId": "b1"})
    );
    assert_eq!(got[4].body["account"], "bob");
    // bob is already in the room (10407): no invitation for him.
    let mut invited: Vec<&Value> = got[5..].iter().map(|p| &p.body["invitation"]).collect();
    invited.sort_by_key(|i| i["to"].as_str().unwrap_or("").to_string());
    assert_eq!(
        invited,
        [
            &json!({"requestId": "g1", "from": "alice", "to": "carol"}),
            &json!({"requestId": "g1", "from": "alice", "to": "dave"}),
        ]
    );
    assert_eq!(got[5].body["cause"]["op"], "inviteMany");
    settled(&srv.nodes()[0]).await;
    assert_eq!(rx.of_room(&room).len(), 7, "nothing more");
    srv.shutdown().await;
}
