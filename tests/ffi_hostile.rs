//! The C ABI under hostile input, called as a C program would: random
//! bytes, invalid UTF-8, NULL for every pointer, huge and deeply nested
//! strings, numbers out of range and wrong types for every key — on a
//! client that is not logged in (where valid parameters give 415), on the
//! lifecycle functions, and with hostile values on a logged-in client
//! (refused up front with 414 by the library's own validation, before
//! anything is sent). A refused call never calls back; the process survives.
//!
//! The limits asserted are those of `protocol::params` (`MAX_NAME_LEN`,
//! `MAX_EXT_LEN`) and `ffi::MAX_JSON_BYTES`.
// Test code: the blocks call the C ABI as a C program would, hostile input included.
#![allow(clippy::undocumented_unsafe_blocks)]

mod common;

use common::c_server::Server;
use common::keep::keep;
use nim_signaling::client::*;
use nim_signaling::server::*;
use nim_signaling::types::{nim_signaling_client, nim_signaling_event_cb, nim_signaling_result_cb};
use nim_signaling::MAX_JSON_BYTES;
use nim_signaling_protocol::params::{MAX_EXT_LEN, MAX_NAME_LEN};
use nim_signaling_protocol::Request;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::ffi::{c_char, c_void, CStr, CString};
use std::ptr::{null, null_mut};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Mutex;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

fn cs(s: &str) -> CString {
    CString::new(s).unwrap()
}

/// `bytes` with a NUL appended: a C string of whatever bytes (an embedded
/// NUL ends it early, as in C).
fn c_bytes(bytes: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(bytes.len() + 1);
    v.extend_from_slice(bytes);
    v.push(0);
    v
}

fn ptr(v: &[u8]) -> *const c_char {
    v.as_ptr() as *const c_char
}

// ---------------------------------------------------------------- callbacks

/// Counts the calls of a callback; kept for the whole process (see
/// `common::keep`), so that a late (wrong) call still finds it.
fn counter() -> &'static AtomicU32 {
    keep(AtomicU32::new(0))
}

unsafe extern "C" fn count(_code: i32, _json: *const c_char, ud: *mut c_void) {
    // SAFETY: `ud` is the user data the test registered: a `keep`-ed
    // value of this type, alive for the whole process.
    unsafe { &*(ud as *const AtomicU32) }.fetch_add(1, Ordering::SeqCst);
}

fn ud<T>(b: &T) -> *mut c_void {
    b as *const T as *mut c_void
}

fn counting() -> nim_signaling_result_cb {
    Some(count as unsafe extern "C" fn(i32, *const c_char, *mut c_void))
}

struct Inbox {
    tx: Mutex<Sender<(i32, String)>>,
}

fn inbox() -> (&'static Inbox, Receiver<(i32, String)>) {
    let (tx, rx) = channel();
    (keep(Inbox { tx: Mutex::new(tx) }), rx)
}

unsafe extern "C" fn on_result(code: i32, json: *const c_char, ud: *mut c_void) {
    // SAFETY: `ud` is the user data the test registered: a `keep`-ed
    // value of this type, alive for the whole process.
    let inbox = unsafe { &*(ud as *const Inbox) };
    // SAFETY: the library's string, valid until the callback returns.
    let s = unsafe { CStr::from_ptr(json) }
        .to_string_lossy()
        .into_owned();
    let _ = inbox.tx.lock().unwrap().send((code, s));
}

// ---------------------------------------------------------------- handles

struct Client(*mut nim_signaling_client);

impl Client {
    fn new(cfg: Value) -> Client {
        let mut c = null_mut();
        assert_eq!(
            unsafe { nim_signaling_client_new(cs(&cfg.to_string()).as_ptr(), &mut c) },
            200
        );
        Client(c)
    }

    /// A client never logged in (so it never connects anywhere).
    fn idle() -> Client {
        Client::new(json!({"serverUrl": "ws://127.0.0.1:9", "account": "idle"}))
    }

    fn logged_in(url: &str, account: &str) -> Client {
        let c = Client::new(json!({"serverUrl": url, "account": account, "deviceId": "d1"}));
        let (ib, rx) = inbox();
        assert_eq!(
            unsafe { nim_signaling_login(c.0, Some(on_result), ud(ib)) },
            200
        );
        let (code, body) = rx.recv_timeout(WAIT).expect("login callback");
        assert_eq!(code, 200, "{body}");
        c
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        unsafe { nim_signaling_client_free(self.0) }
    }
}

use nim_signaling::client::{RequestFn as OpFn, REQUEST_FUNCTIONS as OPS};

type RegFn =
    unsafe extern "C" fn(*mut nim_signaling_client, nim_signaling_event_cb, *mut c_void) -> i32;

const REGS: &[(&str, RegFn)] = &[
    ("online", nim_signaling_reg_online_notify_cb),
    (
        "multi-client sync",
        nim_signaling_reg_multi_client_sync_notify_cb,
    ),
    ("members sync", nim_signaling_reg_members_sync_cb),
    ("offline", nim_signaling_reg_offline_notify_cb),
    ("channels", nim_signaling_reg_channels_sync_cb),
    ("connection state", nim_signaling_reg_connection_state_cb),
];

/// What the library sees of a C string: up to its first NUL.
fn visible(bytes: &[u8]) -> &[u8] {
    match bytes.iter().position(|b| *b == 0) {
        Some(i) => &bytes[..i],
        None => bytes,
    }
}

/// The code a request on a client that is not logged in must return for
/// these bytes: 414 when they are over the size limit, not UTF-8, not JSON
/// or not valid parameters of `op`; 415 otherwise.
fn idle_code(op: &str, bytes: &[u8]) -> i32 {
    let seen = visible(bytes);
    if seen.len() > MAX_JSON_BYTES {
        return 414;
    }
    let Ok(s) = std::str::from_utf8(seen) else {
        return 414;
    };
    match serde_json::from_str::<Value>(s) {
        Ok(v) if Request::parse(op, &v).is_ok() => 415,
        _ => 414,
    }
}

/// Calls request `op` with `bytes` (NUL appended) and a counting callback.
fn request(c: &Client, f: OpFn, bytes: &[u8], calls: &AtomicU32) -> i32 {
    let s = c_bytes(bytes);
    unsafe { f(c.0, ptr(&s), counting(), ud(calls)) }
}

/// Valid parameters of every op (on a not-logged-in client: 415).
fn valid_params(op: &str) -> Value {
    match op {
        "create" => json!({"type": 1, "channelName": "n", "ext": "e"}),
        "close" => json!({"channelId": "c1", "offlineEnabled": true, "ext": "e"}),
        "join" => json!({"channelId": "c1", "uid": 7, "offlineEnabled": true, "attachExt": "x"}),
        "leave" => json!({"channelId": "c1", "offlineEnabled": true, "attachExt": "x"}),
        "invite" => json!({"channelId": "c1", "account": "bob", "requestId": "r1",
                           "offlineEnabled": true, "attachExt": "x", "busyCheck": true,
                           "pushInfo": {"pushTitle": "t", "pushContent": "c",
                                        "pushPayload": {"a": 1}, "needPush": true,
                                        "needBadge": false}}),
        "inviteMany" => json!({"channelId": "c1", "accounts": ["bob", "carol"], "requestId": "r1",
                               "offlineEnabled": true, "attachExt": "x", "busyCheck": true,
                               "pushInfo": {"needPush": true}}),
        "cancel" | "reject" => json!({"channelId": "c1", "account": "bob", "requestId": "r1",
                                      "offlineEnabled": true, "attachExt": "x"}),
        "accept" => json!({"channelId": "c1", "account": "bob", "requestId": "r1",
                           "offlineEnabled": true, "attachExt": "x", "autoJoin": true,
                           "uid": 7, "joinAttachExt": "j"}),
        "control" => json!({"channelId": "c1", "account": "bob", "attachExt": "x"}),
        "call" => json!({"type": 2, "channelName": "n", "ext": "e", "uid": 7, "account": "bob",
                         "requestId": "r1", "offlineEnabled": true, "attachExt": "x",
                         "pushInfo": {"needPush": 1}, "busyCheck": 0}),
        "sync" => json!({}),
        "queryChannelInfo" => json!({"channelId": "c1", "channelName": "n"}),
        "registerPushToken" => json!({"token": "t", "provider": "fcm"}),
        "queryInvitations" => json!({}),
        "updateChannel" => json!({"channelId": "c1", "ext": "e", "offlineEnabled": true}),
        other => panic!("no params for {other}"),
    }
}

// ---------------------------------------------------------------- random input

/// Pieces that make random text look like JSON often enough to get past
/// the parser and into the parameter checks.
const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "\"",
    "\\",
    "\\u0000",
    "\\ud800",
    "\\n",
    "null",
    "true",
    "false",
    "0",
    "-1",
    "1",
    "2",
    "3",
    "256",
    "1.5",
    "1e400",
    "-0",
    "18446744073709551616",
    "\"type\"",
    "\"channelId\"",
    "\"channelName\"",
    "\"ext\"",
    "\"uid\"",
    "\"offlineEnabled\"",
    "\"attachExt\"",
    "\"account\"",
    "\"requestId\"",
    "\"pushInfo\"",
    "\"needPush\"",
    "\"autoJoin\"",
    "\"joinAttachExt\"",
    "\"serverUrl\"",
    "\"ws://127.0.0.1:9\"",
    "\"x\"",
    "\"\"",
    " ",
    "\u{0}",
    "\u{7f}",
    "é",
    "\u{202e}",
];

/// One random input: raw bytes, token soup, or valid parameters with some
/// bytes changed.
fn random_input(rng: &mut StdRng, op: &str) -> Vec<u8> {
    match rng.gen_range(0..3) {
        0 => {
            let n = rng.gen_range(0..256);
            (0..n).map(|_| rng.gen()).collect()
        }
        1 => {
            let n = rng.gen_range(0..40);
            let mut s = String::new();
            for _ in 0..n {
                s.push_str(TOKENS[rng.gen_range(0..TOKENS.len())]);
            }
            s.into_bytes()
        }
        _ => {
            let mut v = valid_params(op).to_string().into_bytes();
            for _ in 0..rng.gen_range(1..4) {
                let i = rng.gen_range(0..v.len());
                match rng.gen_range(0..3) {
                    0 => v[i] = rng.gen(),
                    1 => {
                        v.remove(i);
                    }
                    _ => v.insert(i, rng.gen()),
                }
                if v.is_empty() {
                    break;
                }
            }
            v
        }
    }
}

// ---------------------------------------------------------------- tests

/// Random bytes (seeded: 3000 cases across the request functions, client
/// creation and server start): exactly 414 or 415 as the checks order
/// them, never a callback, never another code.
#[test]
fn random_bytes_are_refused_without_callbacks() {
    let mut rng = StdRng::seed_from_u64(0x5eed_0005);
    let idle = Client::idle();
    let calls = counter();
    let mut seen = [0u32; 2];
    for i in 0..2_400 {
        let (op, f) = OPS[i % OPS.len()];
        let input = random_input(&mut rng, op);
        let code = request(&idle, f, &input, calls);
        let want = idle_code(op, &input);
        assert_eq!(
            code,
            want,
            "{op} with {:?}",
            String::from_utf8_lossy(&input)
        );
        seen[(want == 415) as usize] += 1;
    }
    // Both outcomes were exercised, not only the parser's refusals. (Most
    // mutations of a key now make a misspelling of it, refused with 414,
    // so fewer inputs reach the login check than when unknown keys all
    // passed.)
    assert!(seen[0] > 100 && seen[1] > 15, "414/415 counts {seen:?}");

    // Client configs: 200 or 414, nothing else, `*out` untouched on 414.
    for _ in 0..300 {
        let input = random_input(&mut rng, "create");
        let s = c_bytes(&input);
        let mut out = null_mut();
        let code = unsafe { nim_signaling_client_new(ptr(&s), &mut out) };
        match code {
            200 => unsafe { nim_signaling_client_free(out) },
            414 => assert!(out.is_null(), "out_client written on 414"),
            other => panic!("client_new returned {other} for {input:?}"),
        }
    }
    // Server configs: random bytes are never a valid config (and the token
    // soup has no "listen" key, so nothing but 127.0.0.1:0 is ever bound).
    for _ in 0..300 {
        let input = random_input(&mut rng, "create");
        let s = c_bytes(&input);
        let mut out = null_mut();
        let code = unsafe { nim_signaling_server_start(ptr(&s), &mut out) };
        match code {
            200 => unsafe { nim_signaling_server_stop(out) },
            414 => assert!(out.is_null(), "out_server written on 414"),
            other => panic!("server_start returned {other} for {input:?}"),
        }
    }
    settle();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "a refused request called back"
    );
}

/// Gives a wrongly queued callback time to run before counting.
fn settle() {
    std::thread::sleep(Duration::from_millis(200));
}

#[test]
fn invalid_utf8_is_refused() {
    let bad: &[&[u8]] = &[
        b"\xff",
        b"\xc0\xaf",         // overlong '/'
        b"\xed\xa0\x80",     // a UTF-16 surrogate
        b"\xe2\x82",         // truncated
        b"\x80",             // lone continuation byte
        b"\xf4\x90\x80\x80", // beyond U+10FFFF
    ];
    let idle = Client::idle();
    let calls = counter();
    for b in bad {
        for (op, f) in OPS {
            // Inside a string value, and as a key.
            let mut v = br#"{"channelId":"c"#.to_vec();
            v.extend_from_slice(b);
            v.extend_from_slice(br#"","type":1,"account":"a","requestId":"r"}"#);
            assert_eq!(request(&idle, *f, &v, calls), 414, "{op}: {b:?} in a value");
            let mut k = b"{\"".to_vec();
            k.extend_from_slice(b);
            k.extend_from_slice(b"\":1}");
            assert_eq!(request(&idle, *f, &k, calls), 414, "{op}: {b:?} in a key");
        }
        let mut cfg = br#"{"serverUrl":"ws://127.0.0.1:9","account":"a"#.to_vec();
        cfg.extend_from_slice(b);
        cfg.extend_from_slice(b"\"}");
        let s = c_bytes(&cfg);
        let mut out = null_mut();
        assert_eq!(unsafe { nim_signaling_client_new(ptr(&s), &mut out) }, 414);
        assert!(out.is_null());
        let mut scfg = br#"{"auth":{"mode":"hmac","secret":"0123456789abcdef"#.to_vec();
        scfg.extend_from_slice(b);
        scfg.extend_from_slice(b"\"}}");
        let s = c_bytes(&scfg);
        let mut srv = null_mut();
        assert_eq!(
            unsafe { nim_signaling_server_start(ptr(&s), &mut srv) },
            414
        );
        assert!(srv.is_null());
    }
    settle();
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

/// An embedded NUL ends the string: what follows it is never read.
#[test]
fn embedded_nul_ends_the_string() {
    let idle = Client::idle();
    let calls = counter();
    for (op, f) in OPS {
        let valid = valid_params(op).to_string();
        // Valid JSON before the NUL, garbage after: the JSON counts (415).
        let mut v = valid.clone().into_bytes();
        v.extend_from_slice(b"\0{garbage\xff");
        assert_eq!(request(&idle, *f, &v, calls), 415, "{op}: NUL after");
        // A NUL inside: the truncated text is not JSON (414).
        let mut t = valid.into_bytes();
        let mid = t.len() / 2;
        t.insert(mid, 0);
        assert_eq!(request(&idle, *f, &t, calls), 414, "{op}: NUL inside");
        assert_eq!(request(&idle, *f, b"\0{}", calls), 414, "{op}: empty");
    }
    let mut out = null_mut();
    let cfg = b"{\"serverUrl\":\"ws://127.0.0.1:9\",\"account\":\"a\"}\0\xff\xfe";
    assert_eq!(
        unsafe { nim_signaling_client_new(ptr(cfg), &mut out) },
        200,
        "the config before the NUL"
    );
    unsafe { nim_signaling_client_free(out) };
    // An empty server config string means the defaults (127.0.0.1:0).
    let mut srv = null_mut();
    assert_eq!(
        unsafe { nim_signaling_server_start(ptr(b"\0{\"listen\":1}\0"), &mut srv) },
        200
    );
    unsafe { nim_signaling_server_stop(srv) };
    settle();
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

/// NULL for every pointer argument of every function.
#[test]
fn null_pointers_are_refused() {
    let idle = Client::idle();
    let calls = counter();
    let valid = |op: &str| cs(&valid_params(op).to_string());
    unsafe {
        for (op, f) in OPS {
            let p = valid(op);
            assert_eq!(
                f(null_mut(), p.as_ptr(), counting(), ud(calls)),
                414,
                "{op}"
            );
            assert_eq!(f(idle.0, null(), counting(), ud(calls)), 414, "{op}");
            assert_eq!(f(null_mut(), null(), None, null_mut()), 414, "{op}");
            // A NULL callback and NULL user data are allowed: 415 here.
            assert_eq!(f(idle.0, p.as_ptr(), None, null_mut()), 415, "{op}");
            assert_eq!(f(idle.0, p.as_ptr(), counting(), null_mut()), 415, "{op}");
        }
        assert_eq!(nim_signaling_login(null_mut(), counting(), ud(calls)), 414);
        assert_eq!(nim_signaling_login(null_mut(), None, null_mut()), 414);
        assert_eq!(nim_signaling_logout(null_mut(), counting(), ud(calls)), 414);
        assert_eq!(nim_signaling_logout(idle.0, None, null_mut()), 415);
        for (name, reg) in REGS {
            assert_eq!(reg(null_mut(), None, null_mut()), 414, "{name}");
            // NULL callback: unregisters.
            assert_eq!(reg(idle.0, None, null_mut()), 200, "{name}");
        }
        let mut out = null_mut();
        assert_eq!(nim_signaling_client_new(null(), &mut out), 414);
        assert_eq!(nim_signaling_client_new(null(), null_mut()), 414);
        let cfg = cs(r#"{"serverUrl":"ws://127.0.0.1:9","account":"a"}"#);
        assert_eq!(nim_signaling_client_new(cfg.as_ptr(), null_mut()), 414);
        assert!(out.is_null());
        let mut srv = null_mut();
        assert_eq!(nim_signaling_server_start(null(), &mut srv), 414);
        assert_eq!(nim_signaling_server_start(null(), null_mut()), 414);
        assert_eq!(
            nim_signaling_server_start(cs("{}").as_ptr(), null_mut()),
            414
        );
        assert!(srv.is_null());
        assert!(nim_signaling_server_url(null()).is_null());
        nim_signaling_server_stop(null_mut());
        nim_signaling_client_free(null_mut());
    }
    settle();
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

/// Strings far over the 1 MiB limit (8 MiB of nesting, 8 MiB inside a
/// string), right at it, and deep nesting under it.
#[test]
fn huge_and_deeply_nested_input() {
    let idle = Client::idle();
    let calls = counter();
    let eight = 8 << 20;
    let brackets = "[".repeat(eight);
    let long_string = format!(r#"{{"channelId":"{}"}}"#, "a".repeat(eight));
    let long_key = format!(r#"{{"{}":1}}"#, "k".repeat(eight));
    // Under the size limit but far deeper than the parser's recursion
    // limit (128): refused, not a stack overflow.
    let deep_arrays = "[".repeat(MAX_JSON_BYTES / 2);
    let deep_objects = r#"{"a":"#.repeat(100_000);
    let deep_value = format!(
        r#"{{"channelId":"c1","attachExt":{}1{}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    for (op, f) in OPS {
        for (case, s) in [
            ("8 MiB of [", &brackets),
            ("8 MiB string", &long_string),
            ("8 MiB key", &long_key),
            ("deep arrays", &deep_arrays),
            ("deep objects", &deep_objects),
            ("deep value", &deep_value),
        ] {
            assert_eq!(request(&idle, *f, s.as_bytes(), calls), 414, "{op}: {case}");
        }
    }
    // The size limit is exact: valid parameters padded with an unknown key
    // to MAX_JSON_BYTES bytes are taken (415), one byte more is not.
    for (op, f) in OPS {
        let base = valid_params(op).to_string();
        // `{...,"pad":"ppp"}` (no comma after an empty `{`).
        let head = &base[..base.len() - 1];
        let comma = if head == "{" { "" } else { "," };
        let pad = |total: usize| {
            let fill = total - head.len() - comma.len() - r#""pad":""}"#.len();
            format!(r#"{head}{comma}"pad":"{}"}}"#, "p".repeat(fill))
        };
        let at = pad(MAX_JSON_BYTES);
        assert_eq!(at.len(), MAX_JSON_BYTES);
        assert_eq!(
            request(&idle, *f, at.as_bytes(), calls),
            415,
            "{op}: at limit"
        );
        let over = pad(MAX_JSON_BYTES + 1);
        assert_eq!(
            request(&idle, *f, over.as_bytes(), calls),
            414,
            "{op}: over"
        );
    }
    // pushPayload takes any JSON: nesting within the parser's limit is
    // valid, beyond it refused.
    let nested = |depth: usize| {
        format!(
            r#"{{"channelId":"c1","account":"b","requestId":"r","pushInfo":{{"pushPayload":{}1{}}}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        )
    };
    assert_eq!(
        request(&idle, nim_signaling_invite, nested(100).as_bytes(), calls),
        415
    );
    assert_eq!(
        request(&idle, nim_signaling_invite, nested(200).as_bytes(), calls),
        414
    );
    // The lifecycle functions have the same limit.
    for s in [&brackets, &long_string, &deep_arrays, &deep_objects] {
        let c = c_bytes(s.as_bytes());
        let mut out = null_mut();
        assert_eq!(unsafe { nim_signaling_client_new(ptr(&c), &mut out) }, 414);
        assert!(out.is_null());
        let mut srv = null_mut();
        assert_eq!(
            unsafe { nim_signaling_server_start(ptr(&c), &mut srv) },
            414
        );
        assert!(srv.is_null());
    }
    settle();
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

/// How a key's value is read.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// A required, non-empty string.
    Id,
    /// A required string, possibly empty.
    Text,
    /// An optional string (null = absent).
    OptText,
    /// A boolean, or a number (0 is false), or null.
    Flag,
    /// A whole number or a numeric string; empty, null or <= 0: none.
    Uid,
    /// 1, 2 or 3.
    Type,
    /// A pushInfo object, or null.
    Push,
    /// inviteMany's accounts: a non-empty array of distinct non-empty strings.
    Accounts,
}

fn keys(op: &str) -> Vec<(&'static str, Kind)> {
    use Kind::*;
    let invite = [("channelId", Id), ("account", Id), ("requestId", Id)];
    let flags = [("offlineEnabled", Flag), ("attachExt", OptText)];
    match op {
        "create" => vec![("type", Type), ("channelName", OptText), ("ext", OptText)],
        "close" => vec![
            ("channelId", Id),
            ("offlineEnabled", Flag),
            ("ext", OptText),
        ],
        "join" => [("channelId", Id), ("uid", Uid)]
            .into_iter()
            .chain(flags)
            .collect(),
        "leave" => [("channelId", Id)].into_iter().chain(flags).collect(),
        "invite" => invite
            .into_iter()
            .chain(flags)
            .chain([("pushInfo", Push), ("busyCheck", Flag)])
            .collect(),
        "inviteMany" => [("channelId", Id), ("accounts", Accounts), ("requestId", Id)]
            .into_iter()
            .chain(flags)
            .chain([("pushInfo", Push), ("busyCheck", Flag)])
            .collect(),
        "cancel" | "reject" => invite.into_iter().chain(flags).collect(),
        "accept" => invite
            .into_iter()
            .chain(flags)
            .chain([("autoJoin", Flag), ("uid", Uid), ("joinAttachExt", OptText)])
            .collect(),
        "control" => vec![
            ("channelId", Id),
            ("account", OptText),
            ("attachExt", OptText),
        ],
        "call" => [
            ("type", Type),
            ("channelName", OptText),
            ("ext", OptText),
            ("uid", Uid),
        ]
        .into_iter()
        .chain([("account", Id), ("requestId", Id)])
        .chain(flags)
        .chain([("pushInfo", Push), ("busyCheck", Flag)])
        .collect(),
        "sync" => vec![],
        // Either one may be missing while the other is there.
        "queryChannelInfo" => vec![("channelId", OptText), ("channelName", OptText)],
        // An empty token removes the device's token.
        "registerPushToken" => vec![("token", Text), ("provider", OptText)],
        "queryInvitations" => vec![],
        // An empty ext clears the room's.
        "updateChannel" => vec![("channelId", Id), ("ext", Text), ("offlineEnabled", Flag)],
        other => panic!("no keys for {other}"),
    }
}

/// Whether `kind` takes `value` (`None`: the key is absent).
fn takes(kind: Kind, value: Option<&Value>) -> bool {
    use Kind::*;
    let Some(v) = value else {
        return !matches!(kind, Id | Text | Type | Accounts);
    };
    match (kind, v) {
        (Id, Value::String(s)) => !s.is_empty(),
        (Text, Value::String(_)) => true,
        (OptText, Value::String(_) | Value::Null) => true,
        (Flag, Value::Bool(_) | Value::Number(_) | Value::Null) => true,
        (Uid, Value::Null) => true,
        (Uid, Value::String(s)) => {
            s.trim().is_empty() || s.trim().parse::<f64>().is_ok_and(whole_u64)
        }
        (Uid, Value::Number(n)) => n.as_f64().is_some_and(whole_u64),
        (Type, Value::Number(n)) => n.as_u64().is_some_and(|n| (1..=3).contains(&n)),
        (Push, Value::Object(_) | Value::Null) => true,
        (Accounts, Value::Array(a)) => {
            let names: std::collections::HashSet<_> = a
                .iter()
                .filter_map(|v| v.as_str().filter(|s| !s.is_empty()))
                .collect();
            !a.is_empty() && names.len() == a.len()
        }
        _ => false,
    }
}

/// A whole number a uid can hold (<= 0 meaning "assign one").
fn whole_u64(n: f64) -> bool {
    n.fract() == 0.0 && n <= u64::MAX as f64
}

/// Every key of every op with a value of every JSON type (and absent):
/// 415 (valid, not logged in) exactly when the key's kind takes it, 414
/// otherwise — the expectation written from the documented types, not from
/// the parser under test.
#[test]
fn wrong_types_for_each_key() {
    let idle = Client::idle();
    let calls = counter();
    let values = [
        json!("x"),
        json!(""),
        json!("7"),
        json!(" 12 "),
        json!(2),
        json!(0),
        json!(-1),
        json!(2.5),
        json!(256),
        json!(1e300),
        json!(true),
        json!(null),
        json!([]),
        json!(["x"]),
        json!({}),
        json!({"x": 1}),
    ];
    let mut checked = 0;
    for (op, f) in OPS {
        for (key, kind) in keys(op) {
            let mut cases: Vec<(Option<&Value>, Value)> = Vec::new();
            let mut absent = valid_params(op);
            absent.as_object_mut().unwrap().remove(key);
            cases.push((None, absent));
            for v in &values {
                let mut p = valid_params(op);
                p[key] = v.clone();
                cases.push((Some(v), p));
            }
            for (v, p) in cases {
                let want = if takes(kind, v) { 415 } else { 414 };
                let got = request(&idle, *f, p.to_string().as_bytes(), calls);
                assert_eq!(got, want, "{op}.{key} ({kind:?}) = {v:?}");
                checked += 1;
            }
        }
    }
    // Inside pushInfo.
    for (key, v, ok) in [
        ("needPush", json!("yes"), false),
        ("needPush", json!(1), true),
        ("needBadge", json!([]), false),
        ("pushTitle", json!(5), false),
        ("pushContent", json!({}), false),
        ("pushPayload", json!({"any": [1, "json"]}), true),
        ("pushPayload", json!("text"), true),
    ] {
        for op in ["invite", "call", "inviteMany"] {
            let mut p = valid_params(op);
            p["pushInfo"][key] = v.clone();
            let f = OPS.iter().find(|(n, _)| *n == op).unwrap().1;
            let want = if ok { 415 } else { 414 };
            assert_eq!(
                request(&idle, f, p.to_string().as_bytes(), calls),
                want,
                "{op}.pushInfo.{key} = {v}"
            );
        }
    }
    // Not an object at all.
    for (op, f) in OPS {
        for s in ["[]", "1", "\"{}\"", "null", "true", ""] {
            assert_eq!(request(&idle, *f, s.as_bytes(), calls), 414, "{op}: {s}");
        }
    }
    assert!(checked > 500, "only {checked} cases");
    settle();
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

/// Numbers out of range in requests and configs.
#[test]
fn numbers_out_of_range() {
    let idle = Client::idle();
    let calls = counter();
    // (op, params, expected on a client not logged in)
    let rows = [
        ("create", json!({"type": 0}), 414),
        ("create", json!({"type": 4}), 414),
        ("create", json!({"type": 257}), 414),
        ("create", json!({"type": -1}), 414),
        ("create", json!({"type": 1.0}), 414),
        ("join", json!({"channelId": "c", "uid": -5}), 415), // <= 0: assigned
        ("join", json!({"channelId": "c", "uid": 0}), 415),
        ("join", json!({"channelId": "c", "uid": 1.5}), 414),
        ("join", json!({"channelId": "c", "uid": 1e30}), 414),
        ("join", json!({"channelId": "c", "uid": u64::MAX}), 415),
        ("join", json!({"channelId": "c", "uid": "1e3"}), 415),
        ("join", json!({"channelId": "c", "uid": "NaN"}), 414),
        ("join", json!({"channelId": "c", "uid": "inf"}), 414),
        ("join", json!({"channelId": "c", "uid": "-inf"}), 414),
        ("join", json!({"channelId": "c", "uid": "0x10"}), 414),
        (
            "join",
            json!({"channelId": "c", "offlineEnabled": 1e300}),
            415,
        ),
        (
            "join",
            json!({"channelId": "c", "offlineEnabled": -0.0}),
            415,
        ),
    ];
    for (op, p, want) in rows {
        let f = OPS.iter().find(|(n, _)| *n == op).unwrap().1;
        assert_eq!(
            request(&idle, f, p.to_string().as_bytes(), calls),
            want,
            "{op} {p}"
        );
    }
    // Beyond what JSON numbers can hold: the parser refuses the text.
    for raw in [
        r#"{"channelId":"c","uid":1e400}"#,
        r#"{"channelId":"c","offlineEnabled":-1e400}"#,
        r#"{"channelId":"c","uid":184467440737095516160000}"#,
    ] {
        let got = request(&idle, nim_signaling_join, raw.as_bytes(), calls);
        let want = idle_code("join", raw.as_bytes());
        assert_eq!(got, want, "{raw}");
    }
    assert_eq!(
        request(
            &idle,
            nim_signaling_join,
            br#"{"channelId":"c","uid":1e400}"#,
            calls
        ),
        414
    );
    // Client configs.
    let client_rows = [
        (json!({"requestTimeoutMs": 0}), 414),
        (json!({"requestTimeoutMs": -1}), 414),
        (json!({"requestTimeoutMs": 1.5}), 414),
        // Bounded at a day: deadlines computed from them cannot overflow.
        (json!({"requestTimeoutMs": u64::MAX}), 414),
        (json!({"requestTimeoutMs": 86_400_000}), 200),
        (json!({"requestTimeoutMs": 86_400_001}), 414),
        (json!({"heartbeatIntervalMs": 0}), 414),
        (
            json!({"heartbeatIntervalMs": 10, "heartbeatTimeoutMs": 9}),
            414,
        ),
        (
            json!({"heartbeatIntervalMs": u64::MAX, "heartbeatTimeoutMs": u64::MAX}),
            414,
        ),
        (json!({"reconnect": 1}), 414),
        (json!({"account": ""}), 414),
        (json!({"account": "a".repeat(MAX_NAME_LEN)}), 200),
        (json!({"account": "a".repeat(MAX_NAME_LEN + 1)}), 414),
        (json!({"serverUrl": "http://127.0.0.1:9"}), 414),
        (json!({"serverUrls": ["ws://127.0.0.1:9", "ftp://x"]}), 414),
        (json!({"serverUrls": "ws://127.0.0.1:9"}), 414),
    ];
    for (patch, want) in client_rows {
        let mut cfg = json!({"serverUrl": "ws://127.0.0.1:9", "account": "a"});
        for (k, v) in patch.as_object().unwrap() {
            cfg[k] = v.clone();
        }
        let mut out = null_mut();
        let code = unsafe { nim_signaling_client_new(cs(&cfg.to_string()).as_ptr(), &mut out) };
        assert_eq!(code, want, "client config {cfg}");
        if code == 200 {
            unsafe { nim_signaling_client_free(out) };
        } else {
            assert!(out.is_null());
        }
    }
    // Server configs refused before anything is bound.
    for cfg in [
        json!({"roomTtlMs": 0}),
        json!({"roomTtlMs": -1}),
        json!({"inviteTtlMs": 1.5}),
        json!({"maxMembers": 0}),
        json!({"maxMembers": -1}),
        json!({"maxConnections": 0}),
        json!({"heartbeatTimeoutMs": 999}),
        json!({"loginTimeoutMs": 0}),
        json!({"maxFrameBytes": 1023}),
        json!({"logMaxEvents": 0}),
        json!({"logRetentionMs": 0}),
        json!({"roomTtlMs": "soon"}),
        json!({"store": {"kind": "redis"}}),
        json!({"store": {"kind": "redis", "url": "http://127.0.0.1:6379"}}),
        json!({"store": {"kind": "redis", "url": "redis://127.0.0.1", "prefix": ""}}),
        json!({"store": {"kind": "etcd"}}),
        json!({"auth": {"mode": "nope"}}),
        json!({"listen": 7800}),
        json!({"unknownKey": 1}),
        // Accepted once and then fatal (found by fuzzing): now bounded.
        json!({"heartbeatIntervalMs": 0}),
        json!({"maxConnections": 2305843009213693952u64}),
        json!({"maxFrameBytes": 4611686018427387904u64}),
        json!({"roomTtlMs": i64::MAX}),
        json!({"inviteTtlMs": i64::MAX}),
        json!({"memberDropGraceMs": i64::MAX}),
    ] {
        let mut srv = null_mut();
        let code = unsafe { nim_signaling_server_start(cs(&cfg.to_string()).as_ptr(), &mut srv) };
        assert_eq!(code, 414, "server config {cfg}");
        assert!(srv.is_null());
    }
    // A valid cluster config whose Redis does not answer: 500, nothing bound.
    let cfg = json!({"store": {"kind": "redis", "url": "redis://127.0.0.1:1"}});
    let mut srv = null_mut();
    let code = unsafe { nim_signaling_server_start(cs(&cfg.to_string()).as_ptr(), &mut srv) };
    assert_eq!(code, 500, "server config {cfg}");
    assert!(srv.is_null());
    settle();
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

/// A logged-in client: hostile values within valid JSON are refused up
/// front (414, no callback) exactly at the limits of `protocol::params`;
/// values at the limits are sent (200, one callback). Names and ids may not
/// hold control or invisible characters.
#[test]
fn logged_in_client_refuses_hostile_values_up_front() {
    let srv = Server::start("{}");
    let c = Client::logged_in(&srv.url(), "hostile");
    let refused = counter();
    let name = |n: usize| "n".repeat(n);
    let ext = |n: usize| "e".repeat(n);
    // 43 three-byte characters: 129 bytes, 43 chars. Limits are in bytes.
    let euros = "€".repeat(43);
    let push_over = json!({"pushTitle": ext(MAX_EXT_LEN), "needPush": true});
    // Serialized with needPush and needBadge: just under MAX_EXT_LEN.
    let push_at = json!({"pushContent": ext(MAX_EXT_LEN - 100)});
    // (case, op, params, expected return code)
    let rows: Vec<(&str, &str, Value, i32)> = vec![
        (
            "attachExt over",
            "join",
            json!({"channelId": "c", "attachExt": ext(MAX_EXT_LEN + 1)}),
            414,
        ),
        (
            "attachExt 1 MiB",
            "leave",
            json!({"channelId": "c", "attachExt": ext(MAX_JSON_BYTES - 100)}),
            414,
        ),
        (
            "ext over",
            "create",
            json!({"type": 1, "ext": ext(MAX_EXT_LEN + 1)}),
            414,
        ),
        (
            "close ext over",
            "close",
            json!({"channelId": "c", "ext": ext(MAX_EXT_LEN + 1)}),
            414,
        ),
        (
            "joinAttachExt over",
            "accept",
            json!({"channelId": "c", "account": "a", "requestId": "r", "joinAttachExt": ext(MAX_EXT_LEN + 1)}),
            414,
        ),
        (
            "control attachExt over",
            "control",
            json!({"channelId": "c", "attachExt": ext(MAX_EXT_LEN + 1)}),
            414,
        ),
        (
            "call attachExt over",
            "call",
            json!({"type": 1, "account": "b", "requestId": "r", "attachExt": ext(MAX_EXT_LEN + 1)}),
            414,
        ),
        (
            "pushInfo over",
            "invite",
            json!({"channelId": "c", "account": "b", "requestId": "r", "pushInfo": push_over}),
            414,
        ),
        (
            "channelName over",
            "create",
            json!({"type": 1, "channelName": name(MAX_NAME_LEN + 1)}),
            414,
        ),
        (
            "channelName over in bytes",
            "create",
            json!({"type": 1, "channelName": euros}),
            414,
        ),
        (
            "call channelName over",
            "call",
            json!({"type": 1, "account": "b", "requestId": "r", "channelName": name(MAX_NAME_LEN + 1)}),
            414,
        ),
        (
            "query channelName over",
            "queryChannelInfo",
            json!({"channelName": name(MAX_NAME_LEN + 1)}),
            414,
        ),
        (
            "query channelId over",
            "queryChannelInfo",
            json!({"channelId": name(MAX_NAME_LEN + 1)}),
            414,
        ),
        (
            "query neither",
            "queryChannelInfo",
            json!({"channelId": "", "channelName": ""}),
            414,
        ),
        (
            "channelId over",
            "join",
            json!({"channelId": name(MAX_NAME_LEN + 1)}),
            414,
        ),
        ("channelId empty", "leave", json!({"channelId": ""}), 414),
        (
            "account over",
            "invite",
            json!({"channelId": "c", "account": name(MAX_NAME_LEN + 1), "requestId": "r"}),
            414,
        ),
        (
            "account empty",
            "reject",
            json!({"channelId": "c", "account": "", "requestId": "r"}),
            414,
        ),
        (
            "requestId over",
            "cancel",
            json!({"channelId": "c", "account": "b", "requestId": name(MAX_NAME_LEN + 1)}),
            414,
        ),
        (
            "control account over",
            "control",
            json!({"channelId": "c", "account": name(MAX_NAME_LEN + 1)}),
            414,
        ),
        (
            "type out of range",
            "call",
            json!({"type": 9, "account": "b", "requestId": "r"}),
            414,
        ),
        // At the limits: sent.
        (
            "attachExt at",
            "join",
            json!({"channelId": "c", "attachExt": ext(MAX_EXT_LEN)}),
            200,
        ),
        (
            "channelName at",
            "queryChannelInfo",
            json!({"channelName": name(MAX_NAME_LEN)}),
            200,
        ),
        (
            "channelId at",
            "leave",
            json!({"channelId": name(MAX_NAME_LEN)}),
            200,
        ),
        (
            "pushInfo under",
            "invite",
            json!({"channelId": "c", "account": "b", "requestId": "r", "pushInfo": push_at}),
            200,
        ),
        // Names and ids may not hold control characters (Unicode Cc: C0,
        // DEL, C1 — NUL, ESC, CR/LF, NEL included) ...
        (
            "channelName with NUL",
            "create",
            json!({"type": 1, "channelName": "a\u{0}b"}),
            414,
        ),
        (
            "channelName with an escape sequence",
            "create",
            json!({"type": 1, "channelName": "\u{1b}[31mred"}),
            414,
        ),
        (
            "channelName with CR LF",
            "call",
            json!({"type": 1, "account": "b", "requestId": "r", "channelName": "a\r\nb"}),
            414,
        ),
        (
            "account with NUL",
            "invite",
            json!({"channelId": "c", "account": "bob\u{0}evil", "requestId": "r"}),
            414,
        ),
        (
            "requestId with DEL",
            "cancel",
            json!({"channelId": "c", "account": "b", "requestId": "r\u{7f}"}),
            414,
        ),
        (
            "channelId with NEL",
            "close",
            json!({"channelId": "c\u{85}"}),
            414,
        ),
        (
            "control account with a tab",
            "control",
            json!({"channelId": "c", "account": "b\tob"}),
            414,
        ),
        (
            "query channelId with LF",
            "queryChannelInfo",
            json!({"channelId": "c\n"}),
            414,
        ),
        // ... and so are invisible or reordering characters: a bidi
        // override, a zero-width space, and the line and paragraph
        // separators U+2028/U+2029, which some log viewers and JavaScript
        // treat as line breaks.
        (
            "account with a bidi override",
            "control",
            json!({"channelId": "c", "account": "\u{202e}bob"}),
            414,
        ),
        (
            "channelName with a zero-width space",
            "create",
            json!({"type": 1, "channelName": "a\u{200b}b"}),
            414,
        ),
        (
            "channelId with a line separator",
            "leave",
            json!({"channelId": "c\u{2028}forged log line"}),
            414,
        ),
        (
            "requestId with a paragraph separator",
            "cancel",
            json!({"channelId": "c", "account": "b", "requestId": "r\u{2029}"}),
            414,
        ),
        // Exts carry app data: anything goes within the length.
        (
            "attachExt with controls",
            "control",
            json!({"channelId": "c", "attachExt": "\u{0}\u{1b}[2J\r\n"}),
            200,
        ),
    ];
    let sent = counter();
    let mut expect_sent = 0;
    for (case, op, p, want) in rows {
        let f = OPS.iter().find(|(n, _)| *n == op).unwrap().1;
        let counter = if want == 200 { sent } else { refused };
        let got = request(&c, f, p.to_string().as_bytes(), counter);
        assert_eq!(got, want, "{case}");
        if want == 200 {
            expect_sent += 1;
        }
    }
    // Each request that was sent calls back once (whatever the server says).
    let deadline = std::time::Instant::now() + WAIT;
    while sent.load(Ordering::SeqCst) < expect_sent && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    settle();
    assert_eq!(sent.load(Ordering::SeqCst), expect_sent, "sent requests");
    assert_eq!(refused.load(Ordering::SeqCst), 0, "refused requests");
    // And the client still works.
    let (ib, rx) = inbox();
    let p = cs(r#"{"type":1}"#);
    assert_eq!(
        unsafe { nim_signaling_create(c.0, p.as_ptr(), Some(on_result), ud(ib)) },
        200
    );
    let (code, body) = rx.recv_timeout(WAIT).expect("create callback");
    assert_eq!(code, 200, "{body}");
    drop(c);
    drop(srv);
}

/// The same garbage against a logged-in client: refused before sending
/// (414), never a callback, never 200.
#[test]
fn logged_in_client_refuses_random_bytes() {
    let srv = Server::start("{}");
    let c = Client::logged_in(&srv.url(), "fuzzed");
    let calls = counter();
    let mut rng = StdRng::seed_from_u64(0x5eed_0006);
    for i in 0..600 {
        let (op, f) = OPS[i % OPS.len()];
        let input = random_input(&mut rng, op);
        if idle_code(op, &input) == 415 {
            continue; // valid parameters: would be sent
        }
        assert_eq!(request(&c, f, &input, calls), 414, "{op} {input:?}");
    }
    settle();
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    drop(c);
    drop(srv);
}

/// Names in the client config are held to the server's rule when the
/// client is made: 414 from `nim_signaling_client_new`, no client.
#[test]
fn client_config_names_are_checked_up_front() {
    for (case, account, device) in [
        ("account with LF", "a\nb".to_string(), "d1".to_string()),
        ("account with NUL", "a\u{0}b".to_string(), "d1".to_string()),
        (
            "account with RLO",
            "\u{202e}a".to_string(),
            "d1".to_string(),
        ),
        (
            "deviceId with ESC",
            "a".to_string(),
            "d\u{1b}[2J".to_string(),
        ),
        (
            "deviceId too long",
            "a".to_string(),
            "d".repeat(MAX_NAME_LEN + 1),
        ),
    ] {
        let cfg = json!({"serverUrl": "ws://127.0.0.1:9", "account": account, "deviceId": device});
        let mut c = null_mut();
        let code = unsafe { nim_signaling_client_new(cs(&cfg.to_string()).as_ptr(), &mut c) };
        assert_eq!(code, 414, "{case}");
        assert!(c.is_null(), "{case}: no client");
    }
}
