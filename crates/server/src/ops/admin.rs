//! The admin HTTP API (docs/ADMIN.md; the contract is
//! docs/admin-openapi.json): rooms, members, devices and counts for an
//! operator, on its own address (`adminListen`) away from the signaling
//! port. Every request carries `Authorization: Bearer <adminToken>`.
//!
//! What it changes goes through the same pure rules as the signaling
//! requests (`rules::admin_close`, `remove_member`, `admin_control`), run
//! by the service, so clients see exactly the events the protocol defines.

use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, Method, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter};
use axum::Router;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use serde_json::{json, Map, Value};
use sha2::Sha256;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use tokio::net::TcpListener;

use crate::engine::observe::Cause;
use crate::engine::service::{now_ms, Service};
use crate::ops::http::{self, HttpResponse, MAX_BODY_BYTES};
use crate::ops::metrics::Metrics;
use crate::store::{RoomKey, Signal};
use nim_signaling_core::rules;
use nim_signaling_protocol::codes::{
    FORBIDDEN, INTERNAL, INVALID_PARAM, NOT_IN_ROOM, ROOM_NOT_EXIST,
};
use nim_signaling_protocol::params::{CloseParams, ControlParams, LeaveParams};
use nim_signaling_protocol::Failure;

/// What a route does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    ListRooms,
    GetRoom,
    CloseRoom,
    RemoveMember,
    Control,
    Devices,
    Kick,
    Stats,
    OpenApi,
}

/// One route: its method, its path template (axum's: `{name}` matches one
/// non-empty segment, percent-decoded) and what it does.
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    op: Op,
}

const fn route(method: &'static str, path: &'static str, op: Op) -> Route {
    Route { method, path, op }
}

/// Every route the API serves. Data, so that a test can hold the OpenAPI
/// document to exactly this set.
#[rustfmt::skip]
pub static ROUTES: &[Route] = &[
    route("GET",    "/v1/rooms",                                      Op::ListRooms),
    route("GET",    "/v1/rooms/{channelId}",                          Op::GetRoom),
    route("DELETE", "/v1/rooms/{channelId}",                          Op::CloseRoom),
    route("DELETE", "/v1/rooms/{channelId}/members/{account}",        Op::RemoveMember),
    route("POST",   "/v1/rooms/{channelId}/control",                  Op::Control),
    route("GET",    "/v1/accounts/{account}/devices",                 Op::Devices),
    route("POST",   "/v1/accounts/{account}/devices/{deviceId}/kick", Op::Kick),
    route("GET",    "/v1/stats",                                      Op::Stats),
    route("GET",    "/v1/openapi.json",                               Op::OpenApi),
];

/// The OpenAPI 3.0 document of this API, served at `/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("../../../../docs/admin-openapi.json");

/// Rooms per page of `GET /v1/rooms` unless `limit` says otherwise.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

/// Serves the admin API on `listener` until the task is dropped.
pub async fn serve_http(
    listener: TcpListener,
    service: Arc<Service>,
    metrics: Arc<Metrics>,
    token: String,
) {
    http::serve_router(listener, router((service, metrics), &token)).await
}

/// What every handler reaches: the engine, and the counters `stats` shows.
type Shared = (Arc<Service>, Arc<Metrics>);

/// [`ROUTES`] as an axum router, behind the token check.
fn router(shared: Shared, token: &str) -> Router {
    let mut router = Router::new();
    let mut paths: Vec<&'static str> = Vec::new();
    for r in ROUTES {
        if !paths.contains(&r.path) {
            paths.push(r.path);
        }
    }
    for path in paths {
        let here: Vec<&Route> = ROUTES.iter().filter(|r| r.path == path).collect();
        let allow = here.iter().map(|r| r.method).collect::<Vec<_>>().join(", ");
        // Our 405 rather than axum's: the error shape, and an `Allow` that
        // lists the routes ("GET, DELETE"), not axum's "GET,HEAD,DELETE".
        let not_allowed = move |method: Method, uri: Uri| async move {
            error(
                405,
                405,
                format!(
                    "{method} is not allowed on {} (allowed: {allow})",
                    uri.path()
                ),
            )
            .with_header("allow", allow)
        };
        let mut methods = MethodRouter::new().fallback(not_allowed.clone());
        for r in &here {
            let op = r.op;
            let method = Method::from_bytes(r.method.as_bytes()).expect("a route's method");
            let filter = MethodFilter::try_from(method).expect("a route's method");
            methods = methods.on(
                filter,
                move |svc: State<Shared>, p: Params, q: QueryPairs, b: BodyBytes| {
                    handle(op, svc, p, q, b)
                },
            );
        }
        if here.iter().any(|r| r.method == "GET") {
            // axum would answer HEAD with the GET handler; the API (its
            // OpenAPI document, the Allow header) has no HEAD.
            methods = methods.on(MethodFilter::HEAD, not_allowed);
        }
        router = router.route(path, methods);
    }
    let check = Arc::new(TokenCheck::new(token));
    router
        .fallback(
            |uri: Uri| async move { error(404, 404, format!("no such route: {}", uri.path())) },
        )
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        // Around the routes and the fallback, so that without the token not
        // even the routes show.
        .layer(middleware::from_fn_with_state(check, authorize))
        .with_state(shared)
}

/// What a route's handler is given: the `{…}` segments, the query
/// pairs, the body. Their rejections reach [`handle`], so that they too
/// come in the one error shape.
type Params = Result<Path<Vec<String>>, PathRejection>;
type QueryPairs = Result<Query<Vec<(String, String)>>, QueryRejection>;
type BodyBytes = Result<Bytes, BytesRejection>;

async fn handle(
    op: Op,
    State((svc, metrics)): State<Shared>,
    params: Params,
    query: QueryPairs,
    body: BodyBytes,
) -> HttpResponse {
    let params = match params {
        Ok(Path(p)) => p,
        Err(e) => return bad(e.body_text()),
    };
    let query = match query {
        Ok(Query(q)) => q,
        Err(e) => return bad(e.body_text()),
    };
    // Over the limit, or cut off.
    let Ok(body) = body else {
        return error(413, 413, http::too_large());
    };
    run(op, &params, &query, &body, &svc, &metrics)
        .await
        .unwrap_or_else(|e| e)
}

async fn authorize(State(check): State<Arc<TokenCheck>>, req: Request, next: Next) -> Response {
    if !check.accepts(req.headers()) {
        return error(401, 401, "missing or wrong bearer token (adminToken)")
            .with_header("www-authenticate", "Bearer realm=\"nim-signaling admin\"")
            .into_response();
    }
    next.run(req).await
}

/// Compares bearer tokens in constant time: both sides are MACed with a key
/// drawn at start and the MACs compared by `verify_slice`, so neither the
/// bytes nor the length of the token leak through timing.
struct TokenCheck {
    key: [u8; 32],
    want: Vec<u8>,
}

impl TokenCheck {
    fn new(token: &str) -> Self {
        let key: [u8; 32] = rand::random();
        let want = Self::mac(&key, token).finalize().into_bytes().to_vec();
        TokenCheck { key, want }
    }

    fn mac(key: &[u8], token: &str) -> Hmac<Sha256> {
        let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
        m.update(token.as_bytes());
        m
    }

    fn accepts(&self, headers: &HeaderMap) -> bool {
        let given = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
        let Some((scheme, token)) = given.and_then(|g| g.trim().split_once(' ')) else {
            return false;
        };
        scheme.eq_ignore_ascii_case("bearer")
            && Self::mac(&self.key, token.trim())
                .verify_slice(&self.want)
                .is_ok()
    }
}

/// The one error shape: `{"error":{"status","code","message"}}`, `code`
/// being the NIM code where one applies and the HTTP status otherwise.
fn error(status: u16, code: i32, message: impl Into<String>) -> HttpResponse {
    let message: String = message.into();
    HttpResponse::json(
        status,
        &json!({"error": {"status": status, "code": code, "message": message}}),
    )
}

/// 400 for a bad parameter or body; the message names it.
fn bad(message: impl Into<String>) -> HttpResponse {
    error(400, INVALID_PARAM, message)
}

/// A rule's or the store's failure, with the HTTP status that fits it.
fn failed(f: Failure) -> HttpResponse {
    let status = match f.code {
        ROOM_NOT_EXIST | NOT_IN_ROOM => 404,
        INVALID_PARAM => 400,
        FORBIDDEN => 403,
        INTERNAL => 500,
        _ => 409,
    };
    error(status, f.code, f.message)
}

fn ok(body: Value) -> Result<HttpResponse, HttpResponse> {
    Ok(HttpResponse::json(200, &body))
}

async fn run(
    op: Op,
    p: &[String],
    query: &[(String, String)],
    body: &[u8],
    svc: &Service,
    m: &Metrics,
) -> Result<HttpResponse, HttpResponse> {
    let now = now_ms();
    let limits = &svc.limits;
    match op {
        Op::ListRooms => list_rooms(query, svc, now).await,
        Op::GetRoom => {
            let room = svc
                .store
                .get_room(RoomKey::Id(&p[0]), now)
                .await
                .map_err(|e| failed(e.into()))?
                .ok_or_else(|| failed(Failure::code(ROOM_NOT_EXIST)))?;
            let members: Vec<Value> = room
                .members
                .iter()
                .map(|m| {
                    let mut v = json!(room.member_view(m));
                    // Which device joined: what a kick would name.
                    v["deviceId"] = json!(m.device_id);
                    v
                })
                .collect();
            let invitations: Vec<Value> = room
                .invites
                .iter()
                .filter(|i| i.is_ringing(now))
                .map(|i| {
                    json!({"requestId": i.request_id, "from": i.from, "to": i.to,
                           "createTimestamp": i.created_at, "expireTimestamp": i.expire_at})
                })
                .collect();
            ok(
                json!({"channelInfo": room.channel_info(now), "members": members,
                      "invitations": invitations}),
            )
        }
        Op::CloseRoom => {
            let b = Body::parse(body, &["ext", "offlineEnabled"], false)?;
            let cp = CloseParams {
                channel_id: p[0].clone(),
                offline_enabled: b.bool("offlineEnabled")?,
                ext: b.string("ext")?,
            };
            let cause = Cause::Admin {
                action: "closeRoom",
            };
            svc.apply(RoomKey::Id(&p[0]), now, &cause, |r| {
                rules::admin_close(r, now, limits, &cp)
            })
            .await
            .map_err(failed)?;
            ok(json!({"channelId": p[0], "closed": true}))
        }
        Op::RemoveMember => {
            let b = Body::parse(body, &["attachExt", "offlineEnabled"], false)?;
            let lp = LeaveParams {
                channel_id: p[0].clone(),
                offline_enabled: b.bool("offlineEnabled")?,
                attach_ext: b.string("attachExt")?,
            };
            let cause = Cause::Admin {
                action: "removeMember",
            };
            svc.apply(RoomKey::Id(&p[0]), now, &cause, |r| {
                rules::remove_member(r, now, limits, &p[1], &lp)
            })
            .await
            .map_err(failed)?;
            ok(json!({"channelId": p[0], "account": p[1], "removed": true}))
        }
        Op::Control => {
            let b = Body::parse(body, &["toAccount", "attachExt"], true)?;
            let attach = b
                .string("attachExt")?
                .ok_or_else(|| bad("attachExt is required (a string)"))?;
            let cp = ControlParams {
                channel_id: p[0].clone(),
                account: b.string("toAccount")?.filter(|a| !a.is_empty()),
                attach_ext: Some(attach),
            };
            svc.read_and_tell(&p[0], now, |r| rules::admin_control(r, now, limits, &cp))
                .await
                .map_err(failed)?;
            ok(json!({"channelId": p[0], "toAccount": cp.account}))
        }
        Op::Devices => {
            let mut devices = svc
                .store
                .devices_of(&p[0])
                .await
                .map_err(|e| failed(e.into()))?;
            devices.sort();
            let devices: Vec<Value> = devices.iter().map(|d| json!({"deviceId": d})).collect();
            ok(json!({"devices": devices}))
        }
        Op::Kick => {
            let (account, device) = (&p[0], &p[1]);
            let Some(session) = svc.store.live_session(account, device).await else {
                return Err(error(
                    404,
                    404,
                    format!("device {device:?} of account {account:?} has no live session"),
                ));
            };
            // Here if the session is here; the other nodes are told, and the
            // one holding it ends it.
            svc.hub.evict(account, session);
            svc.store
                .broadcast(Signal::Evict {
                    account: account.clone(),
                    session,
                })
                .await;
            ok(json!({"account": account, "deviceId": device, "kicked": true}))
        }
        Op::Stats => {
            let st = svc.store.stats().await;
            ok(json!({
                "connections": m.connections.load(Relaxed),
                "sessions": m.sessions.load(Relaxed),
                "rooms": st.rooms,
                "logEntries": st.log_entries,
                "timersPending": st.timers,
                "draining": svc.draining.load(Relaxed),
                "logins": m.logins.load(Relaxed),
                "loginsRefused": m.logins_refused.load(Relaxed),
                "eventsSent": m.events_sent.load(Relaxed),
                "slowReadersDropped": m.slow_readers_dropped.load(Relaxed),
                "repeatsAnswered": m.repeats_answered.load(Relaxed),
                "timersRun": m.timers_run.load(Relaxed),
            }))
        }
        Op::OpenApi => Ok(HttpResponse {
            status: 200,
            content_type: "application/json",
            body: OPENAPI.to_string(),
            headers: Vec::new(),
        }),
    }
}

/// The first value of query parameter `name`.
fn param<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

async fn list_rooms(
    query: &[(String, String)],
    svc: &Service,
    now: i64,
) -> Result<HttpResponse, HttpResponse> {
    let limit = match param(query, "limit") {
        None => DEFAULT_LIMIT,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                bad(format!(
                    "limit must be an integer from 1 to {MAX_LIMIT}, got {v:?}"
                ))
            })?,
    };
    let cursor = param(query, "cursor").filter(|c| !c.is_empty());
    let (rooms, next) = svc
        .store
        .list_rooms(cursor, limit, now)
        .await
        .map_err(|e| failed(e.into()))?;
    let rooms: Vec<Value> = rooms
        .iter()
        .map(|r| {
            let mut v = json!(r.channel_info(now));
            v["memberCount"] = json!(r.members.len());
            v
        })
        .collect();
    ok(json!({"rooms": rooms, "nextCursor": next}))
}

/// A request body: a JSON object with only known fields, or nothing.
struct Body(Map<String, Value>);

impl Body {
    fn parse(body: &[u8], known: &[&str], required: bool) -> Result<Body, HttpResponse> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return match required {
                true => Err(bad("a JSON object body is required")),
                false => Ok(Body(Map::new())),
            };
        }
        let v: Value =
            serde_json::from_slice(body).map_err(|e| bad(format!("the body is not JSON: {e}")))?;
        let Value::Object(m) = v else {
            return Err(bad("the body must be a JSON object"));
        };
        // A misspelt field would otherwise be ignored without a word.
        if let Some(k) = m.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(bad(format!(
                "unknown field {k:?} (known: {})",
                known.join(", ")
            )));
        }
        Ok(Body(m))
    }

    /// Field `key` (absent or null: None), `kind` naming the type wanted.
    fn field<T>(
        &self,
        key: &str,
        kind: &str,
        pick: impl Fn(&Value) -> Option<T>,
    ) -> Result<Option<T>, HttpResponse> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => pick(v)
                .map(Some)
                .ok_or_else(|| bad(format!("{key} must be {kind}, got {v}"))),
        }
    }

    fn string(&self, key: &str) -> Result<Option<String>, HttpResponse> {
        self.field(key, "a string", |v| v.as_str().map(String::from))
    }

    fn bool(&self, key: &str) -> Result<Option<bool>, HttpResponse> {
        self.field(key, "a boolean", Value::as_bool)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_pairs_are_decoded_and_the_first_counts() {
        let uri: Uri = "/v1/rooms?limit=5&cursor=a%2Fb+c&x&limit=7"
            .parse()
            .unwrap();
        let Query(q) = Query::<Vec<(String, String)>>::try_from_uri(&uri).unwrap();
        assert_eq!(param(&q, "limit"), Some("5"));
        assert_eq!(param(&q, "cursor"), Some("a/b c"));
        assert_eq!(param(&q, "x"), Some(""));
        assert_eq!(param(&q, "y"), None);
    }
}
