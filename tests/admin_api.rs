//! The admin HTTP API over real HTTP: status codes and JSON bodies an
//! operator sees, and the events (or the `kicked` state) the Rust clients
//! of the affected accounts actually receive. The last test runs two nodes
//! on a Redis it starts itself (tests/common/redis.rs), as the other cluster
//! tests do.

mod common;

use common::cluster::{forget, redis_store};
use common::*;
use nim_signaling_client::ConnState;
use nim_signaling_server::ops::admin;
use nim_signaling_server::{self as server, ServerConfig, ServerHandle};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashSet};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "test-admin-token-0123456789";
/// Long enough to show that an event that would come has not.
const QUIET: Duration = Duration::from_millis(300);

fn admin_cfg(extra: Value) -> Value {
    let mut cfg = json!({"adminListen": "127.0.0.1:0", "adminToken": TOKEN});
    if let (Some(c), Some(e)) = (cfg.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    cfg
}

async fn admin_server(extra: Value) -> (TestServer, Admin) {
    let srv = start_server(admin_cfg(extra)).await;
    let base = srv.nodes()[0].admin_url().expect("admin address");
    (srv, Admin(base))
}

/// One HTTP answer.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body must be the error shape with this status and code; returns
    /// its message.
    #[track_caller]
    fn error(&self, status: u16, code: i64) -> String {
        assert_eq!(self.status, status, "{}", self.body);
        let v = self.json();
        assert_eq!(v["error"]["status"], status, "{v}");
        assert_eq!(v["error"]["code"], code, "{v}");
        assert_eq!(self.header("content-type"), Some("application/json"), "{v}");
        v["error"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no message in {v}"))
            .to_string()
    }
}

/// An HTTP/1.1 exchange on a fresh connection, with `auth` as the whole
/// Authorization header (None: no header).
async fn exchange(
    base: &str,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: Option<&str>,
) -> Reply {
    let addr = base.strip_prefix("http://").expect("http base");
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(a) = auth {
        req.push_str(&format!("Authorization: {a}\r\n"));
    }
    let body = body.unwrap_or("");
    req.push_str(&format!(
        "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    s.write_all(req.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut raw))
        .await
        .expect("answer in time")
        .expect("read");
    let text = String::from_utf8(raw).expect("UTF-8 answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("a response");
    let mut lines = head.lines();
    let status = lines.next().unwrap().split(' ').nth(1).unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Reply {
        status: status.parse().unwrap(),
        headers,
        body: body.to_string(),
    }
}

/// The admin API at a base URL, called with the right token.
struct Admin(String);

impl Admin {
    async fn call(&self, method: &str, path: &str, body: Option<&str>) -> Reply {
        let auth = format!("Bearer {TOKEN}");
        exchange(&self.0, method, path, Some(&auth), body).await
    }

    /// A call that must answer 200; its JSON.
    async fn ok(&self, method: &str, path: &str, body: Option<&str>) -> Value {
        let r = self.call(method, path, body).await;
        assert_eq!(r.status, 200, "{method} {path}: {}", r.body);
        r.json()
    }

    async fn devices(&self, account: &str) -> Vec<String> {
        let v = self
            .ok("GET", &format!("/v1/accounts/{account}/devices"), None)
            .await;
        v["devices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["deviceId"].as_str().unwrap().to_string())
            .collect()
    }
}

/// alice (a1) and bob (b1) logged in at `url`, both in a room alice made;
/// every event so far read.
async fn two_in_a_room(url: &str) -> (TestClient, TestClient, String) {
    let mut alice = login(url, "alice", "a1").await;
    let bob = login(url, "bob", "b1").await;
    let room = alice.create_joined(None).await;
    bob.ok("join", json!({"channelId": room})).await;
    alice.expect_event("ROOM_JOIN").await;
    (alice, bob, room)
}

/// alice (a1) calls bob (b1) at `url` as request "r1"; bob has heard it
/// ring. Returns both and the call's room.
async fn alice_calls_bob(url: &str) -> (TestClient, TestClient, String) {
    let alice = login(url, "alice", "a1").await;
    let mut bob = login(url, "bob", "b1").await;
    let room = alice.call_rings(&mut bob, "r1").await;
    (alice, bob, room)
}

/// A route's path with every `{param}` filled with "x".
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|s| if s.starts_with('{') { "x" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn every_route_needs_the_token() {
    let (srv, api) = admin_server(json!({})).await;
    let wrong = format!("Bearer {TOKEN}x");
    let basic = format!("Basic {TOKEN}");
    let prefix = format!("Bearer {}", &TOKEN[..TOKEN.len() - 1]);
    for r in admin::ROUTES {
        let path = concrete(r.path);
        for auth in [None, Some(wrong.as_str()), Some(&basic), Some(&prefix)] {
            let reply = exchange(&api.0, r.method, &path, auth, None).await;
            reply.error(401, 401);
            let challenge = reply.header("www-authenticate").unwrap_or_default();
            assert!(challenge.starts_with("Bearer"), "{auth:?}: {challenge:?}");
        }
    }
    // Without the token not even a missing route shows.
    exchange(&api.0, "GET", "/v1/nothing", None, None)
        .await
        .error(401, 401);
    // The scheme is case-insensitive.
    let lower = format!("bearer {TOKEN}");
    let r = exchange(&api.0, "GET", "/v1/stats", Some(&lower), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    srv.shutdown().await;
}

#[tokio::test]
async fn paging_lists_each_room_exactly_once() {
    let (srv, api) = admin_server(json!({})).await;
    let alice = login(srv.url(), "alice", "a1").await;
    let bob = login(srv.url(), "bob", "b1").await;
    let mut made = BTreeSet::new();
    for _ in 0..7 {
        made.insert(alice.create(None).await);
    }
    let joined = made.iter().next().unwrap().clone();
    bob.ok("join", json!({"channelId": joined})).await;

    let mut seen = Vec::new();
    let mut pages = 0;
    let mut path = "/v1/rooms?limit=3".to_string();
    loop {
        let v = api.ok("GET", &path, None).await;
        pages += 1;
        let rooms = v["rooms"].as_array().unwrap();
        assert!(rooms.len() <= 3, "{v}");
        for r in rooms {
            let id = r["channelId"].as_str().unwrap().to_string();
            let want_members = if id == joined { 1 } else { 0 };
            assert_eq!(r["memberCount"], want_members, "{r}");
            assert_eq!(r["creatorId"], "alice", "{r}");
            assert_eq!(r["invalid"], 0, "{r}");
            seen.push(id);
        }
        match v["nextCursor"].as_str() {
            Some(c) => path = format!("/v1/rooms?limit=3&cursor={c}"),
            None => {
                assert!(v["nextCursor"].is_null(), "{v}");
                break;
            }
        }
    }
    assert_eq!(pages, 3, "7 rooms, 3 a page");
    let unique: BTreeSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "a room listed twice: {seen:?}");
    assert_eq!(unique, made);
    // The default page holds them all.
    let all = api.ok("GET", "/v1/rooms", None).await;
    assert_eq!(all["rooms"].as_array().unwrap().len(), 7, "{all}");
    assert!(all["nextCursor"].is_null(), "{all}");
    srv.shutdown().await;
}

#[tokio::test]
async fn bad_parameters_and_bodies_are_400_naming_the_problem() {
    let (srv, api) = admin_server(json!({})).await;
    let alice = login(srv.url(), "alice", "a1").await;
    let room = alice.create_joined(None).await;
    for limit in ["0", "1001", "abc", "-1", ""] {
        let r = api
            .call("GET", &format!("/v1/rooms?limit={limit}"), None)
            .await;
        let m = r.error(400, 414);
        assert!(m.contains("limit"), "{limit:?}: {m}");
    }
    let control = format!("/v1/rooms/{room}/control");
    #[rustfmt::skip]
    let bodies = [
        ("not JSON",          "{attachExt: 1",                "not JSON"),
        ("not an object",     "[1]",                          "object"),
        ("wrong type",        r#"{"attachExt": 5}"#,          "attachExt"),
        ("missing field",     r#"{"toAccount": "alice"}"#,    "attachExt"),
        ("misspelt field",    r#"{"attachExt":"x","toAcount":"alice"}"#, "toAcount"),
        ("no body at all",    "",                             "body"),
    ];
    for (case, body, named) in bodies {
        let m = api.call("POST", &control, Some(body)).await.error(400, 414);
        assert!(m.contains(named), "{case}: {m}");
    }
    let close = format!("/v1/rooms/{room}");
    let m = api
        .call("DELETE", &close, Some(r#"{"offlineEnabled": "yes"}"#))
        .await
        .error(400, 414);
    assert!(m.contains("offlineEnabled"), "{m}");
    let m = api
        .call(
            "DELETE",
            &format!("{close}/members/alice"),
            Some(r#"{"attachExt": []}"#),
        )
        .await
        .error(400, 414);
    assert!(m.contains("attachExt"), "{m}");
    // Nothing of that reached the room.
    let v = api.ok("GET", &close, None).await;
    assert_eq!(v["channelInfo"]["invalid"], 0, "{v}");
    assert_eq!(accounts(&v["members"]), ["alice"]);
    srv.shutdown().await;
}

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_405() {
    let (srv, api) = admin_server(json!({})).await;
    for path in [
        "/v1/nothing",
        "/v2/stats",
        "/v1/rooms/",
        "/",
        "/v1/rooms/x/y",
    ] {
        let m = api.call("GET", path, None).await.error(404, 404);
        assert!(m.contains(path), "{m}");
    }
    #[rustfmt::skip]
    let wrong = [
        ("PUT",    "/v1/rooms",                        "GET"),
        ("POST",   "/v1/rooms/x",                      "GET, DELETE"),
        ("GET",    "/v1/rooms/x/control",              "POST"),
        ("GET",    "/v1/rooms/x/members/y",            "DELETE"),
        ("DELETE", "/v1/stats",                        "GET"),
        ("GET",    "/v1/accounts/a/devices/d/kick",    "POST"),
    ];
    for (method, path, allow) in wrong {
        let r = api.call(method, path, None).await;
        r.error(405, 405);
        assert_eq!(r.header("allow"), Some(allow), "{method} {path}");
    }
    // Known routes, unknown things.
    for (method, path, body) in [
        ("GET", "/v1/rooms/nope", None),
        ("DELETE", "/v1/rooms/nope", None),
        ("DELETE", "/v1/rooms/nope/members/bob", None),
        (
            "POST",
            "/v1/rooms/nope/control",
            Some(r#"{"attachExt":"x"}"#),
        ),
    ] {
        api.call(method, path, body).await.error(404, 10404);
    }
    let m = api
        .call("POST", "/v1/accounts/nobody/devices/d1/kick", None)
        .await
        .error(404, 404);
    assert!(m.contains("d1"), "{m}");
    srv.shutdown().await;
}

#[tokio::test]
async fn a_room_shows_its_members_and_ringing_invitations() {
    let (srv, api) = admin_server(json!({})).await;
    let (_alice, bob, room) = alice_calls_bob(srv.url()).await;
    let v = api.ok("GET", &format!("/v1/rooms/{room}"), None).await;
    assert_eq!(v["channelInfo"]["channelId"], room.as_str(), "{v}");
    assert_eq!(v["channelInfo"]["creatorId"], "alice", "{v}");
    assert_eq!(v["channelInfo"]["invalid"], 0, "{v}");
    let members = v["members"].as_array().unwrap();
    assert_eq!(members.len(), 1, "{v}");
    assert_eq!(members[0]["account"], "alice", "{v}");
    assert_eq!(members[0]["deviceId"], "a1", "{v}");
    assert!(members[0]["uid"].as_u64().unwrap() > 0, "{v}");
    let inv = v["invitations"].as_array().unwrap();
    assert_eq!(inv.len(), 1, "{v}");
    assert_eq!(
        (&inv[0]["requestId"], &inv[0]["from"], &inv[0]["to"]),
        (&json!("r1"), &json!("alice"), &json!("bob")),
        "{v}"
    );
    let (created, expires) = (&inv[0]["createTimestamp"], &inv[0]["expireTimestamp"]);
    assert!(created.as_i64().unwrap() < expires.as_i64().unwrap(), "{v}");
    // Answered: no longer ringing, so no longer shown.
    bob.ok("reject", invitation(&room, "alice", "r1")).await;
    let v = api.ok("GET", &format!("/v1/rooms/{room}"), None).await;
    assert_eq!(v["invitations"], json!([]), "{v}");
    srv.shutdown().await;
}

#[tokio::test]
async fn closing_a_room_tells_every_member_and_the_creator() {
    let (srv, api) = admin_server(json!({})).await;
    let mut carol = login(srv.url(), "carol", "c1").await;
    let mut alice = login(srv.url(), "alice", "a1").await;
    let mut bob = login(srv.url(), "bob", "b1").await;
    let room = carol.create(None).await;
    alice.ok("join", json!({"channelId": room})).await;
    bob.ok("join", json!({"channelId": room})).await;
    alice.expect_event("ROOM_JOIN").await;

    let path = format!("/v1/rooms/{room}");
    let v = api
        .ok("DELETE", &path, Some(r#"{"ext": "maintenance"}"#))
        .await;
    assert_eq!(v, json!({"channelId": room, "closed": true}));
    // The creator is told too, though not a member; from "" (the server).
    for c in [&mut alice, &mut bob, &mut carol] {
        let ev = c.expect_event_from("ROOM_CLOSE", &room, "").await;
        assert_eq!(ev["attachExt"], "maintenance", "{ev}");
        assert_eq!(ev["channelInfo"]["invalid"], 1, "{ev}");
    }
    bob.fails("join", json!({"channelId": room}), 10404).await;
    // Remembered as invalid, and closing again finds no valid room.
    let v = api.ok("GET", &path, None).await;
    assert_eq!(v["channelInfo"]["invalid"], 1, "{v}");
    assert_eq!(v["members"], json!([]), "{v}");
    api.call("DELETE", &path, None).await.error(404, 10404);
    alice.expect_silence(QUIET).await;
    srv.shutdown().await;
}

#[tokio::test]
async fn removing_a_member_is_a_leave_its_own_devices_hear_of() {
    let (srv, api) = admin_server(json!({})).await;
    let (mut alice, mut bob, room) = two_in_a_room(srv.url()).await;
    let mut bob2 = login(srv.url(), "bob", "b2").await;

    let path = format!("/v1/rooms/{room}/members/bob");
    let v = api
        .ok(
            "DELETE",
            &path,
            Some(r#"{"attachExt": "removed by support"}"#),
        )
        .await;
    assert_eq!(
        v,
        json!({"channelId": room, "account": "bob", "removed": true})
    );
    for c in [&mut alice, &mut bob, &mut bob2] {
        let ev = c.expect_event_from("LEAVE", &room, "bob").await;
        assert_eq!(ev["attachExt"], "removed by support", "{ev}");
        assert_eq!(ev["channelInfo"]["invalid"], 0, "{ev}");
    }
    let v = api.ok("GET", &format!("/v1/rooms/{room}"), None).await;
    assert_eq!(accounts(&v["members"]), ["alice"]);
    // bob may join again: he is really out.
    bob.ok("join", json!({"channelId": room})).await;
    alice.expect_event("ROOM_JOIN").await;
    bob.ok("leave", json!({"channelId": room})).await;
    alice.expect_event("LEAVE").await;
    api.call("DELETE", &path, None).await.error(404, 10406);
    api.call("DELETE", &format!("/v1/rooms/{room}/members/dave"), None)
        .await
        .error(404, 10406);
    alice.expect_silence(QUIET).await;
    srv.shutdown().await;
}

#[tokio::test]
async fn control_from_the_server_reaches_whom_it_names() {
    let (srv, api) = admin_server(json!({})).await;
    let (mut alice, mut bob, room) = two_in_a_room(srv.url()).await;
    let path = format!("/v1/rooms/{room}/control");

    let v = api
        .ok(
            "POST",
            &path,
            Some(r#"{"toAccount":"bob","attachExt":"mute"}"#),
        )
        .await;
    assert_eq!(v, json!({"channelId": room, "toAccount": "bob"}));
    let ev = bob.expect_event_from("CONTROL", &room, "").await;
    assert_eq!(ev["attachExt"], "mute", "{ev}");
    alice.expect_silence(QUIET).await;

    let v = api.ok("POST", &path, Some(r#"{"attachExt":"all"}"#)).await;
    assert!(v["toAccount"].is_null(), "{v}");
    for c in [&mut alice, &mut bob] {
        let ev = c.expect_event_from("CONTROL", &room, "").await;
        assert_eq!(ev["attachExt"], "all", "{ev}");
    }
    let outsider = r#"{"toAccount":"dave","attachExt":"x"}"#;
    api.call("POST", &path, Some(outsider))
        .await
        .error(404, 10406);
    bob.expect_silence(QUIET).await;
    srv.shutdown().await;
}

#[tokio::test]
async fn kicking_a_device_ends_its_session_and_later_its_memberships() {
    let (srv, api) = admin_server(json!({"memberDropGraceMs": 300})).await;
    let mut a1 = login(srv.url(), "alice", "a1").await;
    let a2 = login(srv.url(), "alice", "a2").await;
    let mut bob = login(srv.url(), "bob", "b1").await;
    let room = bob.create_joined(None).await;
    a1.ok("join", json!({"channelId": room})).await;
    bob.expect_event("ROOM_JOIN").await;
    assert_eq!(api.devices("alice").await, ["a1", "a2"]);

    let v = api
        .ok("POST", "/v1/accounts/alice/devices/a1/kick", None)
        .await;
    assert_eq!(
        v,
        json!({"account": "alice", "deviceId": "a1", "kicked": true})
    );
    assert_eq!(a1.expect_state(ConnState::Kicked).await, 403);
    let (code, _) = a1.req("control", control_to(&room, "bob", "x")).await;
    assert_ne!(code, 200, "a kicked client sends nothing");
    wait_until("a1 to be gone", || async {
        api.devices("alice").await == ["a2"]
    })
    .await;
    api.call("POST", "/v1/accounts/alice/devices/a1/kick", None)
        .await
        .error(404, 404);
    // Not replaced by a newer login: after the grace the device's
    // membership goes, as for any device gone.
    let sync = bob.expect_members_sync().await;
    assert_eq!(accounts(&sync["members"]), ["bob"], "{sync}");
    // The other device goes on.
    a2.ok("join", json!({"channelId": room})).await;
    bob.expect_event_from("ROOM_JOIN", &room, "alice").await;
    srv.shutdown().await;
}

#[tokio::test]
async fn path_segments_are_percent_decoded_and_plus_is_a_plus() {
    let (srv, api) = admin_server(json!({})).await;
    let _c = login(srv.url(), "+86 138/0000", "dev 1").await;
    for spelled in ["%2B86%20138%2F0000", "+86%20138%2F0000"] {
        assert_eq!(api.devices(spelled).await, ["dev 1"], "{spelled}");
    }
    assert_eq!(api.devices("+86+138%2F0000").await, Vec::<String>::new());
    srv.shutdown().await;
}

#[tokio::test]
async fn stats_count_what_is_there() {
    let (srv, api) = admin_server(json!({})).await;
    let _call = alice_calls_bob(srv.url()).await;
    let v = api.ok("GET", "/v1/stats", None).await;
    for (k, want) in [
        ("connections", 2),
        ("sessions", 2),
        ("rooms", 1),
        ("logins", 2),
        ("loginsRefused", 0),
    ] {
        assert_eq!(v[k], want, "{k}: {v}");
    }
    assert!(v["timersPending"].as_u64().unwrap() >= 1, "{v}");
    assert!(v["logEntries"].as_u64().unwrap() >= 1, "{v}");
    assert!(v["eventsSent"].as_u64().unwrap() >= 1, "{v}");
    assert_eq!(v["draining"], false, "{v}");
    srv.nodes()[0].set_draining(true);
    let v = api.ok("GET", "/v1/stats", None).await;
    assert_eq!(v["draining"], true, "{v}");
    srv.shutdown().await;
}

/// docs/admin-openapi.json, parsed.
fn openapi_doc() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/admin-openapi.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test]
async fn the_openapi_document_is_served() {
    let (srv, api) = admin_server(json!({})).await;
    let r = api.call("GET", "/v1/openapi.json", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json(), openapi_doc());
    srv.shutdown().await;
}

#[test]
fn the_openapi_document_describes_exactly_the_routes() {
    let doc = openapi_doc();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.0."),
        "{doc}"
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(doc["security"], json!([{"bearer": []}]));
    let mut documented = HashSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            documented.insert((method.to_uppercase(), path.clone()));
            let responses = op["responses"].as_object().unwrap();
            for status in ["200", "401", "405"] {
                assert!(responses.contains_key(status), "{method} {path}: {status}");
            }
            // Every {param} of the path is declared as a path parameter.
            let declared: HashSet<&str> = op["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .filter(|p| p["in"] == "path")
                        .map(|p| p["name"].as_str().unwrap())
                        .collect()
                })
                .unwrap_or_default();
            let in_path: HashSet<&str> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                .collect();
            assert_eq!(declared, in_path, "{method} {path}");
        }
    }
    let served: HashSet<(String, String)> = admin::ROUTES
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    assert_eq!(documented, served);
    // Every schema referenced is defined.
    let text = doc.to_string();
    for part in text.split("\"$ref\":\"#/components/").skip(1) {
        let target = &part[..part.find('"').unwrap()];
        let (kind, name) = target.split_once('/').unwrap();
        assert!(
            doc["components"][kind][name].is_object(),
            "undefined {target}"
        );
    }
}

// ---------------------------------------------------------------- binary

/// The standalone server: `--admin-listen` with the token from the config
/// file serves the API and logs where; `--print-config` hides the token.
#[tokio::test]
async fn the_binary_serves_the_admin_api_it_logs() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = std::env::temp_dir().join(format!("nim-sig-admin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("server.json");
    let text = json!({"listen": "127.0.0.1:0", "adminToken": TOKEN}).to_string();
    std::fs::write(&cfg, text).unwrap();
    let args = [
        "--config",
        cfg.to_str().unwrap(),
        "--admin-listen",
        "127.0.0.1:0",
    ];

    let out = Command::new(server_bin())
        .args(args)
        .arg("--print-config")
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("\"adminListen\": \"127.0.0.1:0\""),
        "{shown}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!shown.contains(TOKEN), "the token is masked: {shown}");

    let mut child = Command::new(server_bin())
        .args(args)
        .env("NIM_SIGNALING_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let base = tokio::task::spawn_blocking(move || {
        stderr.lines().map_while(Result::ok).find_map(|l| {
            let at = l.split("admin API on ").nth(1)?;
            Some(
                at.split_whitespace()
                    .next()?
                    .trim_end_matches("/v1")
                    .to_string(),
            )
        })
    })
    .await
    .unwrap();
    let api = Admin(base.expect("the admin address is logged"));
    let v = api.ok("GET", "/v1/stats", None).await;
    assert_eq!(v["sessions"], 0, "{v}");
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------- cluster

/// A node on `store`; with `admin` it serves the admin API.
async fn node(store: &Value, admin: bool) -> ServerHandle {
    let mut cfg = unthrottled(if admin {
        admin_cfg(json!({}))
    } else {
        json!({})
    });
    cfg["store"] = store.clone();
    let cfg = ServerConfig::from_json(&cfg.to_string()).expect("config");
    server::start(cfg).await.unwrap_or_else(|e| {
        panic!(
            "a cluster node needs Redis ({}): {}",
            store["url"], e.message
        )
    })
}

#[tokio::test]
async fn the_admin_of_one_node_acts_on_sessions_of_another() {
    let store = redis_store();
    let a = node(&store, true).await;
    let b = node(&store, false).await;
    let api = Admin(a.admin_url().expect("admin address"));
    // Everyone is on node B; the operator talks to node A.
    let (mut alice, mut bob, room) = two_in_a_room(b.url()).await;

    assert_eq!(api.devices("bob").await, ["b1"]);
    let v = api.ok("GET", "/v1/rooms", None).await;
    assert_eq!(v["rooms"][0]["channelId"], room.as_str(), "{v}");
    assert_eq!(v["rooms"][0]["memberCount"], 2, "{v}");

    api.ok("DELETE", &format!("/v1/rooms/{room}"), None).await;
    for c in [&mut alice, &mut bob] {
        c.expect_event_from("ROOM_CLOSE", &room, "").await;
    }

    api.ok("POST", "/v1/accounts/bob/devices/b1/kick", None)
        .await;
    assert_eq!(bob.expect_state(ConnState::Kicked).await, 403);
    wait_until("bob to be gone", || async {
        api.devices("bob").await.is_empty()
    })
    .await;
    // alice, on the same node, goes on.
    alice.expect_silence(QUIET).await;
    assert_eq!(api.devices("alice").await, ["a1"]);
    drop((alice, bob));
    a.shutdown().await;
    b.shutdown().await;
    forget(store["prefix"].as_str().unwrap()).await;
}

/// The operator ports bound what an outsider can hold: connections past
/// `MAX_CONNECTIONS` are closed as soon as they are accepted (and the port
/// serves again once some go), and a request whose body does not arrive is
/// answered 408 after `REQUEST_TIMEOUT`, not held open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_port_caps_connections_and_times_out_slow_bodies() {
    use nim_signaling_server::ops::http::{MAX_CONNECTIONS, REQUEST_TIMEOUT};
    let (_srv, api) = admin_server(json!({})).await;
    let addr = api.0.strip_prefix("http://").unwrap().to_string();
    let mut held = Vec::new();
    for _ in 0..MAX_CONNECTIONS {
        held.push(
            tokio::net::TcpStream::connect(&addr)
                .await
                .expect("connect"),
        );
    }
    // The listener accepts one at a time: let it take all of them.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut extra = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(WAIT, extra.read(&mut buf))
        .await
        .expect("the connection over the cap is closed at once")
        .unwrap_or(0);
    assert_eq!(n, 0, "closed without an answer");
    drop(held);
    wait_until("the port serves again", || async {
        // Raw: until the server has seen the held ones go, a new
        // connection is still closed without an answer.
        let Ok(mut s) = tokio::net::TcpStream::connect(&addr).await else {
            return false;
        };
        let req = format!(
            "GET /v1/rooms HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\n\
             Connection: close\r\n\r\n"
        );
        let mut raw = Vec::new();
        s.write_all(req.as_bytes()).await.is_ok()
            && s.read_to_end(&mut raw).await.is_ok()
            && raw.starts_with(b"HTTP/1.1 200")
    })
    .await;

    // Half a body, then silence.
    let mut slow = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let head = format!(
        "POST /v1/rooms/r1/control HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"account\""
    );
    slow.write_all(head.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    tokio::time::timeout(REQUEST_TIMEOUT + WAIT, slow.read_to_end(&mut raw))
        .await
        .expect("answered, not held")
        .expect("read");
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
}
