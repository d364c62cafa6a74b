//! What only a cluster can get wrong: nodes racing on one room, a node
//! killed mid-call, Redis restarted under running nodes, a lost
//! subscription, a draining node. Needs `redis-server` on the PATH: the
//! tests that restart Redis run their own, the others share this binary's
//! (tests/common/redis.rs; or `NIM_TEST_REDIS_URL`).

mod common;

use common::cluster::{redis_store, redis_url};
use common::*;
use futures_util::future::join_all;
use nim_signaling_client::ConnState;
use nim_signaling_server::{self as server, ServerConfig, ServerHandle};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::process::{Child, Command};
use std::time::Duration;

/// Starts a node on `store` with `extra` settings and /healthz served.
async fn node(store: &Value, extra: Value) -> ServerHandle {
    let mut cfg = unthrottled(extra);
    cfg["store"] = store.clone();
    cfg["metricsListen"] = json!("127.0.0.1:0");
    let cfg = ServerConfig::from_json(&cfg.to_string()).expect("config");
    server::start(cfg).await.unwrap_or_else(|e| {
        panic!(
            "a cluster node needs Redis ({}): {}",
            store["url"], e.message
        )
    })
}

/// A Redis server of the test's own, on a free loopback port, without
/// persistence: killing and restarting it loses its state, as a crashed
/// cache would.
struct OwnRedis {
    port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    fn start() -> OwnRedis {
        let mut r = OwnRedis {
            port: common::redis::free_port(),
            child: None,
        };
        r.restart();
        r
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn restart(&mut self) {
        self.child = Some(common::redis::spawn(self.port));
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The status line of the node's /healthz.
async fn health(n: &ServerHandle) -> String {
    http_get(&n.metrics_url().unwrap(), "/healthz").await.0
}

/// Waits (up to `within`) for /healthz to start with `status`; returns how
/// long it took.
async fn health_becomes(n: &ServerHandle, status: &str, within: Duration) -> Duration {
    let start = tokio::time::Instant::now();
    loop {
        let now = health(n).await;
        if now.contains(status) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "/healthz still {now:?} after {within:?}, want {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------
// Races

/// Twenty accounts join one room at once through two nodes, round after
/// round: never more than maxMembers get in, the rest get 10419, and uids
/// stay unique.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_racing_through_two_nodes_never_overfill_a_room() {
    const MAX: usize = 5;
    let store = redis_store();
    let nodes = [
        node(&store, json!({"maxMembers": MAX})).await,
        node(&store, json!({"maxMembers": MAX})).await,
    ];
    let mut clients = Vec::new();
    for i in 0..20 {
        clients.push(login(nodes[i % 2].url(), &format!("u{i}"), "d").await);
    }
    for round in 0..5 {
        let room = cid(&clients[0]
            .ok(
                "create",
                json!({"type": 1, "channelName": format!("race-{round}")}),
            )
            .await);
        let joins = clients
            .iter()
            .map(|c| c.req("join", json!({"channelId": room})));
        let codes: Vec<i32> = join_all(joins).await.into_iter().map(|(c, _)| c).collect();
        let admitted = codes.iter().filter(|c| **c == 200).count();
        assert_eq!(admitted, MAX, "round {round}: {codes:?}");
        assert!(
            codes.iter().all(|c| *c == 200 || *c == 10419),
            "round {round}: {codes:?}"
        );
        let info = clients[1]
            .ok("queryChannelInfo", json!({"channelId": room}))
            .await;
        let members = info["members"].as_array().unwrap();
        assert_eq!(members.len(), MAX, "{info}");
        let uids: HashSet<u64> = members.iter().map(|m| m["uid"].as_u64().unwrap()).collect();
        assert_eq!(uids.len(), MAX, "uids unique: {info}");
    }
}

/// Ten accounts ask for the same uid at once through two nodes: one gets
/// it, the others 10417.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_uid_asked_for_through_two_nodes_goes_to_one_member() {
    let store = redis_store();
    let nodes = [node(&store, json!({})).await, node(&store, json!({})).await];
    let mut clients = Vec::new();
    for i in 0..10 {
        clients.push(login(nodes[i % 2].url(), &format!("u{i}"), "d").await);
    }
    for round in 0..5 {
        let room = clients[0].create(None).await;
        let joins = clients
            .iter()
            .map(|c| c.req("join", json!({"channelId": room, "uid": 7})));
        let codes: Vec<i32> = join_all(joins).await.into_iter().map(|(c, _)| c).collect();
        assert_eq!(
            codes.iter().filter(|c| **c == 200).count(),
            1,
            "round {round}: {codes:?}"
        );
        assert!(codes.iter().all(|c| *c == 200 || *c == 10417), "{codes:?}");
    }
}

/// Bob's two devices, on two nodes, answer one invitation at the same
/// moment — one accepts, the other rejects: exactly one answer wins, and
/// alice hears exactly that one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invitation_answered_on_two_nodes_at_once_has_one_outcome() {
    let store = redis_store();
    let nodes = [node(&store, json!({})).await, node(&store, json!({})).await];
    let mut alice = login(nodes[0].url(), "alice", "a1").await;
    let mut b1 = login(nodes[0].url(), "bob", "b1").await;
    let mut b2 = login(nodes[1].url(), "bob", "b2").await;
    let room = alice.create_joined(None).await;
    // (round, deliveredCount) of every receipt alice heard: each at most once.
    let mut receipts = std::collections::HashSet::new();
    for round in 0..10 {
        let rid = format!("r{round}");
        alice.invite_rings(&mut b1, &room, &rid).await;
        b2.expect_invite(&room, "alice", &rid).await;
        let ((c1, _), (c2, _)) = tokio::join!(
            b1.req("accept", invitation(&room, "alice", &rid)),
            b2.req("reject", invitation(&room, "alice", &rid)),
        );
        let won = match (c1, c2) {
            (200, 10410) => "ACCEPT",
            (10409, 200) => "REJECT",
            other => panic!("round {round}: one answer must win, got {other:?}"),
        };
        // The winner's receipt comes before its answer (sent first on its
        // connection). The loser's is counted only if it got in before the
        // answer (later it is refused: not ringing), and as it is appended
        // to alice's log by the other node it may land before or after the
        // answer, so a receipt may also belong to the round before.
        let text = loop {
            let text = format!("{:?}", alice.next().await);
            if !text.contains("INVITE_DELIVERED") {
                break text;
            }
            let of = (0..=round)
                .find(|r| text.contains(&format!("\\\"requestId\\\":\\\"r{r}\\\"")))
                .unwrap_or_else(|| panic!("round {round}: a receipt of no round: {text}"));
            let count = (1..=2)
                .find(|n| text.contains(&format!("\\\"deliveredCount\\\":{n}")))
                .unwrap_or_else(|| panic!("round {round}: count not 1 or 2: {text}"));
            assert!(
                receipts.insert((of, count)),
                "round {round}: device counted twice: {text}"
            );
        };
        assert!(
            receipts.iter().any(|(of, _)| *of == round),
            "round {round}: no receipt before the answer"
        );
        assert!(text.contains(won), "round {round}: alice heard {text}");
        // Each device hears the other's winning answer, or nothing.
        let loser = if won == "ACCEPT" { &mut b2 } else { &mut b1 };
        loser.expect_sync(won).await;
    }
}

// ---------------------------------------------------------------------------
// A node dies

/// The command line of a node process on this binary's Redis (its test
/// prefix), listening on a free port, with `extra` flags.
fn node_args(extra: &[&str]) -> Vec<String> {
    let prefix = redis_store()["prefix"].as_str().unwrap().to_string();
    let mut args = vec![
        "--redis".to_string(),
        redis_url(),
        "--redis-prefix".to_string(),
        prefix,
        "--listen".to_string(),
        "127.0.0.1:0".to_string(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

/// Bob's node is killed (SIGKILL: no goodbye) while alice, on another node,
/// keeps sending him controls. Bob's client reconnects to his second server
/// URL and resumes: every control arrives, once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_s_clients_resume_on_another_with_nothing_lost_or_doubled() {
    let args = node_args(&[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut a = spawn_server(&args);
    let b = spawn_server(&args);
    let mut alice = login(&b.1, "alice", "a1").await;
    let mut bob = login_with(&a.1, "bob", "b1", json!({"serverUrls": [b.1]})).await;
    let room = alice.create_joined(None).await;
    bob.ok("join", json!({"channelId": room})).await;
    alice.expect_event("ROOM_JOIN").await;
    alice.control_reaches(&mut bob, &room, "before").await;

    a.0.kill().expect("kill node a");
    let sends = (0..20).map(|i| alice.req("control", control_to(&room, "bob", i.to_string())));
    for (code, v) in join_all(sends).await {
        assert_eq!(code, 200, "{v}");
    }
    let back = bob.expect_change(ConnState::Connected).await;
    assert_eq!(back.resync, None, "resumed from the shared log: {back:?}");
    bob.expect_channels().await;
    let mut got = Vec::new();
    while got.len() < 20 {
        let ev = bob.expect_event("CONTROL").await;
        got.push(ev["attachExt"].as_str().unwrap().to_string());
    }
    let want: Vec<String> = (0..20).map(|i| i.to_string()).collect();
    assert_eq!(got, want, "every control once, in order");
    bob.expect_silence(Duration::from_millis(500)).await;
    // And the system goes on through the surviving node.
    alice.control_reaches(&mut bob, &room, "after").await;
}

/// Alice's node dies right after it wrote her call's room, before it did
/// anything more (the test hook NIM_TEST_CRASH makes it exit there). On a
/// Redis Cluster the write kept the events of accounts in other slots in
/// the room's outbox, and a surviving node forwards them; on a single
/// Redis the write appended them itself and woke bob's node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_between_a_room_write_and_its_events_loses_none_of_them() {
    a_node_killed_at_loses_none_of_alice_s_call("after-room-write").await;
}

/// Alice's node dies after it appended her call's INVITE to bob's log,
/// before it woke bob's node. Its outbox entry is still there (it is
/// dropped after the wake-ups), so a surviving node's sweeper forwards it
/// again: bob's log drops the second copy, and the sweeper wakes his node
/// all the same. On a single Redis the append's own script wakes the
/// nodes, so nothing is left for a node to die before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_between_an_append_and_its_wake_up_loses_none_of_its_events() {
    if !common::cluster::sharded() {
        return;
    }
    a_node_killed_at_loses_none_of_alice_s_call("before-wake").await;
}

/// Alice's node, on a call to bob (on another node), dies at the test
/// hook `point`; bob still gets the INVITE, once, both accounts' room
/// indexes name the room, and the call goes on through the survivor.
async fn a_node_killed_at_loses_none_of_alice_s_call(point: &str) {
    let args = node_args(&[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let crash = [("NIM_TEST_CRASH".to_string(), point.to_string())];
    let mut a = spawn_server_with(&args, &crash, std::process::Stdio::null());
    let b = spawn_server(&args);
    let mut bob = login(&b.1, "bob", "b1").await;
    let alice = login(&a.1, "alice", "a1").await;
    let call = json!({"type": 1, "account": "bob", "requestId": "r1"});
    // No answer comes: the node is gone before it could send one.
    let answer = tokio::time::timeout(Duration::from_secs(3), alice.req("call", call)).await;
    assert!(
        !matches!(answer, Ok((200, _))),
        "the node answered: {answer:?}"
    );
    let status = a.0.wait().expect("node a exits");
    assert_eq!(
        status.code(),
        Some(86),
        "node a died at the hook: {status:?}"
    );
    drop(alice);

    let invite = bob.expect_event("INVITE").await;
    assert_eq!(invite["fromAccountId"], "alice", "{invite}");
    assert_eq!(invite["requestId"], "r1", "{invite}");
    let room = invite["channelInfo"]["channelId"]
        .as_str()
        .unwrap()
        .to_string();
    // Forwarded once, though every node's sweeper looks each second.
    bob.expect_silence(Duration::from_millis(1500)).await;
    let pending = bob.ok("queryInvitations", json!({})).await;
    assert!(
        pending.to_string().contains(&room),
        "bob's index names the room: {pending}"
    );
    let (mut alice, _, channels) = login_full(&b.1, "alice", "a2", json!({})).await;
    assert!(
        channels.to_string().contains(&room),
        "alice's index names the room: {channels}"
    );
    bob.ok(
        "accept",
        json!({"channelId": room, "account": "alice", "requestId": "r1", "autoJoin": true}),
    )
    .await;
    alice.expect_event("ACCEPT").await;
}

/// Bob's device leaves for good and his node dies; a surviving node drops
/// him from his room after the grace. `leaves_first`: his client closes
/// before the node dies (the node scheduled the drop timer itself, and a
/// survivor runs it); otherwise the node dies under his live session (a
/// survivor finds the dead node's sessions and ends them).
async fn a_device_gone_with_its_node_is_dropped(leaves_first: bool) {
    let args = node_args(&["--member-drop-grace-ms", "300"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut a = spawn_server(&args);
    let b = spawn_server(&args);
    let mut alice = login(&b.1, "alice", "a1").await;
    let bob = login(&a.1, "bob", "b1").await;
    let room = alice.create_joined(None).await;
    bob.ok("join", json!({"channelId": room})).await;
    alice.expect_event("ROOM_JOIN").await;
    if leaves_first {
        // Answered once the node has recorded him gone.
        let (code, body) = bob.client.logout().await;
        assert_eq!(code, 200, "{body}");
    }
    a.0.kill().expect("kill node a");
    bob.client.shutdown();
    // Within the node TTL (5 s) plus the grace, a survivor drops him:
    // alice gets the room's members without him.
    let m = alice.expect_members_sync().await;
    assert_eq!(m["channelInfo"]["channelId"], room, "{m}");
    assert_eq!(accounts(&m["members"]), vec!["alice"], "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_left_before_its_node_died_is_dropped_by_a_survivor() {
    a_device_gone_with_its_node_is_dropped(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_whose_node_died_under_it_is_dropped_by_a_survivor() {
    a_device_gone_with_its_node_is_dropped(false).await;
}

// ---------------------------------------------------------------------------
// Redis goes away

/// Redis dies: /healthz turns red within 5 s. It comes back empty: health
/// turns green again, and a logged-in client is told to resync (its state
/// is gone) instead of silently missing what it had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_redis_turns_health_red_then_clients_resync() {
    let mut redis = OwnRedis::start();
    let store = json!({"kind": "redis", "url": redis.url(), "prefix": "nim"});
    let n = node(&store, json!({})).await;
    health_becomes(&n, "200", WAIT).await;
    let mut alice = login(n.url(), "alice", "a1").await;
    alice.create_joined(Some("before")).await;

    redis.kill();
    let took = health_becomes(&n, "503", Duration::from_secs(6)).await;
    assert!(took <= Duration::from_secs(5), "red after {took:?}");
    // Requests fail with a clear error meanwhile, not silently.
    let (code, v) = alice.req("create", json!({})).await;
    assert_ne!(code, 200, "{v}");

    redis.restart();
    health_becomes(&n, "200", WAIT).await;
    let back = alice.expect_change(ConnState::Connected).await;
    assert_eq!(back.resync.as_deref(), Some("stateLost"), "{back:?}");
    // Working again, on the new state.
    alice.create_joined(Some("after")).await;
}

/// The node's subscription is cut (Redis drops it): the node subscribes
/// again and events between nodes flow again, none lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_subscription_is_made_again_and_nothing_is_lost() {
    let redis = OwnRedis::start();
    let store = json!({"kind": "redis", "url": redis.url(), "prefix": "nim"});
    let nodes = [node(&store, json!({})).await, node(&store, json!({})).await];
    let alice = login(nodes[0].url(), "alice", "a1").await;
    let mut bob = login(nodes[1].url(), "bob", "b1").await;
    let room = alice.create_joined(None).await;
    bob.ok("join", json!({"channelId": room})).await;
    alice.control_reaches(&mut bob, &room, "before").await;

    let killed = Command::new("redis-cli")
        .args([
            "-p",
            &redis.port.to_string(),
            "CLIENT",
            "KILL",
            "TYPE",
            "pubsub",
        ])
        .output()
        .expect("redis-cli (comes with redis-server)");
    assert!(killed.status.success(), "{killed:?}");
    // Sent while the subscriptions may be down: still delivered.
    for i in 0..5 {
        alice
            .ok("control", control_to(&room, "bob", i.to_string()))
            .await;
    }
    for i in 0..5 {
        let ev = bob.expect_event("CONTROL").await;
        assert_eq!(ev["attachExt"], i.to_string(), "{ev}");
    }
    alice.control_reaches(&mut bob, &room, "after").await;
}

// ---------------------------------------------------------------------------
// Draining

/// A draining node refuses new connections (its client moves on to the
/// next server URL) and says so on /healthz, while its sessions go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_node_takes_no_new_sessions_and_keeps_its_own() {
    let store = redis_store();
    let nodes = [node(&store, json!({})).await, node(&store, json!({})).await];
    let alice = login(nodes[0].url(), "alice", "a1").await;
    let room = alice.create_joined(None).await;
    nodes[0].set_draining(true);
    health_becomes(&nodes[0], "503", WAIT).await;
    let (_, body) = http_get(&nodes[0].metrics_url().unwrap(), "/healthz").await;
    assert!(body.contains("draining"), "{body}");

    // Straight to the draining node: refused.
    let c = client_for(nodes[0].url(), "carol", "c1", json!({}));
    let (code, body) = c.client.login().await;
    assert_ne!(code, 200, "{body}");
    // With a second URL: lands on the other node.
    let mut bob = login_with(
        nodes[0].url(),
        "bob",
        "b1",
        json!({"serverUrls": [nodes[1].url()]}),
    )
    .await;
    assert_eq!(nodes[0].service().hub.session_count(), 1, "only alice here");
    // Alice's session still works, and reaches bob on the other node.
    bob.ok("join", json!({"channelId": room})).await;
    alice.control_reaches(&mut bob, &room, "still here").await;

    nodes[0].set_draining(false);
    health_becomes(&nodes[0], "200", WAIT).await;
}

// ---------------------------------------------------------------------------
// Housekeeping

/// Outbox entries and due notes of `prefix`'s rooms now: (entries in all
/// outboxes, rooms noted as due). Read with KEYS on every master (KEYS
/// sees the keys of the node it asks only).
async fn outbox_state(prefix: &str) -> (usize, usize) {
    let urls: Vec<String> = match common::cluster::sharded() {
        true => redis::cluster()
            .masters
            .iter()
            .map(|m| format!("redis://127.0.0.1:{}", m.port))
            .collect(),
        false => vec![redis_url()],
    };
    let (mut entries, mut due) = (0, 0);
    for url in urls {
        let client = ::redis::Client::open(url).expect("the Redis URL");
        let con = client
            .get_multiplexed_async_connection()
            .await
            .expect("Redis");
        let count = |pattern: String, cmd: &'static str| {
            let mut con = con.clone();
            async move {
                let keys: Vec<String> = ::redis::cmd("KEYS")
                    .arg(pattern)
                    .query_async(&mut con)
                    .await
                    .expect("KEYS");
                let mut n = 0;
                for k in keys {
                    let len: usize = ::redis::cmd(cmd)
                        .arg(k)
                        .query_async(&mut con)
                        .await
                        .expect(cmd);
                    n += len;
                }
                n
            }
        };
        entries += count(format!("{prefix}:*out:*"), "LLEN").await;
        due += count(format!("{prefix}:*outdue"), "ZCARD").await;
    }
    (entries, due)
}

/// On a Redis Cluster, every room written with events for accounts in
/// other slots is noted as due in its bucket (for the sweeper, should its
/// writer die before forwarding them); the writer drops the entries it
/// forwarded but leaves the note, and the sweeper takes the note away once
/// it finds the outbox empty: nothing piles up. On a single Redis a room's
/// write appends every account's events itself, so neither is ever
/// written.
#[tokio::test]
async fn a_room_s_outbox_note_goes_once_its_events_are_forwarded() {
    let store = redis_store();
    let prefix = store["prefix"].as_str().unwrap().to_string();
    let nodes = [node(&store, json!({})).await, node(&store, json!({})).await];
    let alice = login(nodes[0].url(), "alice", "a1").await;
    let mut bob = login(nodes[1].url(), "bob", "b1").await;
    for i in 0..5 {
        let call = json!({"type": 1, "account": "bob", "requestId": format!("r{i}")});
        let room = cid(&alice.ok("call", call).await);
        bob.expect_event_from("INVITE", &room, "alice").await;
        alice.ok("close", json!({"channelId": room})).await;
        let state = outbox_state(&prefix).await;
        if !common::cluster::sharded() {
            assert_eq!(state, (0, 0), "one Redis needs no outbox");
        } else if i == 0 {
            assert!(state.1 > 0, "the call's room is noted as due: {state:?}");
        }
    }
    wait_until("every note gone and every outbox empty", || async {
        outbox_state(&prefix).await == (0, 0)
    })
    .await;
}

/// A room's write appends the events of the accounts in its own slot
/// itself (on a single Redis, everyone's), unless the room's outbox still
/// holds an earlier update's entries (their writer died before forwarding
/// them, or on a cluster is still at it): appending then would overtake
/// them, so the update's events go behind them instead. Here such an
/// entry is planted in the outbox, as a dead writer would leave it; the
/// next update of the room (carol joining) delivers it to bob first, then
/// its own event, each once, and leaves the outbox empty.
#[tokio::test]
async fn an_update_behind_left_behind_entries_delivers_them_first() {
    if common::cluster::sharded() {
        return; // the outbox is found with KEYS, which sees one master only
    }
    let store = redis_store();
    let prefix = store["prefix"].as_str().unwrap().to_string();
    let n = node(&store, json!({})).await;
    let mut alice = login(n.url(), "alice", "a1").await;
    let mut bob = login(n.url(), "bob", "b1").await;
    let carol = login(n.url(), "carol", "c1").await;
    let room = alice.create_joined(None).await;
    bob.ok("join", json!({"channelId": room})).await;
    alice.expect_event_from("ROOM_JOIN", &room, "bob").await;
    let mut left = alice.control_reaches(&mut bob, &room, "before").await;
    left["attachExt"] = json!("left behind");
    let entry = format!(
        "00000000deadbeef|{}",
        json!([{"a": "bob", "e": [{"k": "notify", "o": false, "b": {"Event": left}}]}])
    );

    let client = ::redis::Client::open(redis_url()).expect("the Redis URL");
    let mut con = client
        .get_multiplexed_async_connection()
        .await
        .expect("Redis");
    let keys: Vec<String> = ::redis::cmd("KEYS")
        .arg(format!("{prefix}:*room:{room}"))
        .query_async(&mut con)
        .await
        .expect("KEYS");
    assert_eq!(keys.len(), 1, "one key holds the room: {keys:?}");
    let outbox = keys[0].replace("room:", "out:");
    let _: i64 = ::redis::cmd("RPUSH")
        .arg(&outbox)
        .arg(&entry)
        .query_async(&mut con)
        .await
        .expect("RPUSH");

    carol.ok("join", json!({"channelId": room})).await;
    let first = bob.expect_event_from("CONTROL", &room, "alice").await;
    assert_eq!(first["attachExt"], "left behind", "{first}");
    bob.expect_event_from("ROOM_JOIN", &room, "carol").await;
    alice.expect_event_from("ROOM_JOIN", &room, "carol").await;
    bob.expect_silence(Duration::from_millis(1500)).await;
    wait_until("the outbox is empty", || async {
        let len: usize = ::redis::cmd("LLEN")
            .arg(&outbox)
            .query_async(&mut con.clone())
            .await
            .expect("LLEN");
        len == 0
    })
    .await;
}
