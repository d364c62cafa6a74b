//! Micro-benchmarks of the hot paths (issue 6): frame encode/decode on both
//! sides, one rule application, and the C ABI's JSON-in → request-frame-out
//! path.
//!
//! Run with `cargo bench --bench hot_paths` (add `-- NAME` to filter). The
//! measurement times are short on purpose: the whole run takes about a
//! minute and a half. The fixtures are built here from the public types (the
//! same shapes as `src/server/rules_tests.rs`), so nothing in `src/` exists
//! only for the benchmarks.

use std::ffi::CString;
use std::hint::black_box;
use std::ptr::null_mut;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::{json, Value};

use nim_signaling::client::{
    nim_signaling_client_free, nim_signaling_client_new, nim_signaling_control,
};
use nim_signaling_core::rules::{self, Actor, Ctx, Limits, Reach};
use nim_signaling_protocol::codes::{NOT_CONNECTED, OK};
use nim_signaling_protocol::frames::{self, ClientFrame, NotifyKind, ServerFrame};
use nim_signaling_protocol::params::{AcceptParams, CallParams, ControlParams, JoinParams};
use nim_signaling_protocol::{Event, EventType, Request};
use nim_signaling_server::store::{Invitation, InviteState, Room, RoomMember};

// ---------------------------------------------------------------- fixtures

const NOW: i64 = 1_700_000_000_000;
const CREATED: i64 = NOW - 60_000;

static LIMITS: Limits = Limits {
    room_ttl_ms: 7_200_000,
    invite_ttl_ms: 30_000,
    max_members: 100,
};

/// A hint of the size apps put in attachExt (signaling carries hints).
const ATTACH: &str = r#"{"action":"mute","target":"video","reason":"user"}"#;

fn ctx(account: &'static str) -> Ctx<'static> {
    Ctx {
        now: NOW,
        actor: Actor {
            account,
            device: "d1",
        },
        limits: &LIMITS,
    }
}

fn member(account: String, uid: u64) -> RoomMember {
    RoomMember {
        account,
        device_id: "d1".into(),
        uid,
        joined_at: CREATED,
    }
}

/// A valid room "c1" created by "m0", with members "m0", "m1", … (uids 11…).
fn room(members: usize) -> Room {
    Room {
        channel_id: "c1".into(),
        name: "standup".into(),
        kind: 2,
        ext: "room-ext".into(),
        creator: "m0".into(),
        created_at: CREATED,
        expire_at: CREATED + LIMITS.room_ttl_ms,
        closed: false,
        members: (0..members)
            .map(|i| member(format!("m{i}"), 11 + i as u64))
            .collect(),
        invites: vec![],
        version: 0,
    }
}

/// A 1:1 call as `call` leaves it: "m0" in the room, its invitation to
/// "dave" ringing.
fn ringing_room() -> Room {
    let mut r = room(1);
    r.invites.push(Invitation {
        request_id: "r1".into(),
        from: "m0".into(),
        to: "dave".into(),
        state: InviteState::Pending,
        created_at: NOW - 1_000,
        expire_at: NOW - 1_000 + LIMITS.invite_ttl_ms,
        device: "d1".into(),
        offline: true,
        delivered: Vec::new(),
    });
    r
}

fn call_params_json() -> Value {
    json!({
        "type": 2,
        "channelName": "call-alice-bob",
        "account": "bob",
        "requestId": "req-0001",
        "offlineEnabled": true,
        "attachExt": ATTACH,
        "pushInfo": {"needPush": true, "pushTitle": "Call", "pushContent": "alice is calling"}
    })
}

fn accept_params_json() -> Value {
    json!({
        "channelId": "c1",
        "account": "m0",
        "requestId": "r1",
        "offlineEnabled": true,
        "autoJoin": true,
        "attachExt": ATTACH
    })
}

fn control_params_json() -> Value {
    json!({"channelId": "c1", "attachExt": ATTACH})
}

/// A CONTROL event in a 10-member room, encoded once as the store does.
fn control_event_payload() -> String {
    let r = room(10);
    let ev = Event::new(EventType::Control, r.channel_info(NOW), "m0", ATTACH, NOW);
    serde_json::to_string(&ev).unwrap()
}

/// Short runs: the machine is shared, and a median is what we read.
fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

// ---------------------------------------------------------------- frames

fn bench_frames(c: &mut Criterion) {
    let mut g = c.benchmark_group("frames");
    let call = call_params_json();
    g.bench_function("request_frame/call", |b| {
        b.iter(|| frames::request_frame(black_box(42), "call", black_box(&call), Some(41)))
    });

    // The server side: text → ClientFrame → validated Request, as
    // session::handle_text does.
    for (op, params) in [
        ("call", call_params_json()),
        ("accept", accept_params_json()),
        ("control", control_params_json()),
    ] {
        let text = frames::request_frame(42, op, &params, Some(41));
        g.bench_function(format!("decode_client_frame/{op}"), |b| {
            b.iter(|| {
                let f: ClientFrame = serde_json::from_str(black_box(&text)).unwrap();
                let params = f.params.unwrap_or(json!({}));
                Request::parse(f.op.as_deref().unwrap_or(""), &params).unwrap()
            })
        });
    }

    let payload = control_event_payload();
    g.bench_function("event_frame/control", |b| {
        b.iter(|| frames::event_frame(black_box(1234), NotifyKind::Notify, black_box(&payload)))
    });

    // The client side: text → ServerFrame borrowing its payload, as
    // connection::on_frame does.
    let evt = frames::event_frame(1234, NotifyKind::Notify, &payload);
    let res = frames::reply_frame(
        42,
        &frames::result_object(
            OK,
            None,
            Some(
                json!({"channelInfo": room(2).channel_info(NOW), "members": room(2).members_view()}),
            ),
        ),
    );
    for (name, text) in [("evt", evt), ("res", res)] {
        g.bench_function(format!("decode_server_frame/{name}"), |b| {
            b.iter(|| {
                let f: ServerFrame = serde_json::from_str(black_box(&text)).unwrap();
                black_box((f.t, f.seq, f.event, f.result));
            })
        });
    }
    g.finish();
}

// ---------------------------------------------------------------- rules

fn bench_rules(c: &mut Criterion) {
    let mut g = c.benchmark_group("rules");
    let online = Reach {
        online: true,
        push_available: false,
        busy: false,
    };

    let call: CallParams = serde_json::from_value(call_params_json()).unwrap();
    let alice = ctx("alice");
    g.bench_function("call/new_room", |b| {
        b.iter(|| rules::call(None, &alice, black_box(&call), "c-new", 7, online).unwrap())
    });

    let ringing = ringing_room();
    let accept: AcceptParams = serde_json::from_value(accept_params_json()).unwrap();
    let dave = ctx("dave");
    g.bench_function("accept/auto_join", |b| {
        b.iter(|| rules::accept(Some(black_box(&ringing)), &dave, &accept, true, 7).unwrap())
    });

    let ten = room(10);
    let join = JoinParams {
        channel_id: "c1".into(),
        uid: None,
        offline_enabled: Some(false),
        attach_ext: Some(ATTACH.into()),
    };
    let newbie = ctx("newbie");
    g.bench_function("join/10_members", |b| {
        b.iter(|| rules::join(Some(black_box(&ten)), &newbie, &join, 7).unwrap())
    });

    let control: ControlParams = serde_json::from_value(control_params_json()).unwrap();
    let m0 = ctx("m0");
    g.bench_function("control/all_of_10", |b| {
        b.iter(|| rules::control(Some(black_box(&ten)), &m0, &control).unwrap())
    });
    g.finish();
}

// ---------------------------------------------------------------- ffi

fn bench_ffi(c: &mut Criterion) {
    let mut g = c.benchmark_group("ffi");
    let json = control_params_json().to_string();

    // What nim_signaling_control does for a logged-in client before the
    // connection task takes over: JSON text → Value → validation, then the
    // request frame the connection sends.
    g.bench_function("json_to_request_frame/control", |b| {
        b.iter(|| {
            let params: Value = serde_json::from_str(black_box(&json)).unwrap();
            let req = Request::parse("control", &params).unwrap();
            frames::request_frame(42, req.op(), &params, Some(41))
        })
    });

    // The real C entry point on a client that is not logged in: C string →
    // UTF-8 → JSON → validation → 415, nothing sent.
    let cfg = CString::new(r#"{"serverUrl":"ws://127.0.0.1:9","account":"bench"}"#).unwrap();
    let params = CString::new(json).unwrap();
    let mut client = null_mut();
    // SAFETY: valid NUL-terminated strings and an out pointer.
    let code = unsafe { nim_signaling_client_new(cfg.as_ptr(), &mut client) };
    assert_eq!(code, OK);
    // SAFETY: a live client, a valid string, no callback.
    let call = || unsafe { nim_signaling_control(client, params.as_ptr(), None, null_mut()) };
    assert_eq!(call(), NOT_CONNECTED);
    g.bench_function("nim_signaling_control/not_logged_in", |b| {
        b.iter(|| black_box(call()))
    });
    // SAFETY: the handle from nim_signaling_client_new, freed once.
    unsafe { nim_signaling_client_free(client) };
    g.finish();
}

criterion_group! {
    name = hot_paths;
    config = config();
    targets = bench_frames, bench_rules, bench_ffi
}
criterion_main!(hot_paths);
