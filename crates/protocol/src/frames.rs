//! Frames: one JSON object per WebSocket text message. See docs/PROTOCOL.md.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use super::codes::Failure;

/// The WebSocket subprotocol both sides speak; bumped on incompatible change.
pub const SUBPROTOCOL: &str = "nim-signaling.v1";

/// Which notification a pushed event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "camelCase")]
pub enum NotifyKind {
    /// signalingNotify: something another account did.
    Notify,
    /// signalingMutilClientSyncNotify: ACCEPT/REJECT done on another device.
    MultiClientSync,
    /// signalingMembersSyncNotify: the member list changed without an event.
    MembersSync,
}

impl NotifyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyKind::Notify => "notify",
            NotifyKind::MultiClientSync => "multiClientSync",
            NotifyKind::MembersSync => "membersSync",
        }
    }
}

/// A frame from client to server. Only requests exist today; heartbeats use
/// WebSocket ping/pong.
#[derive(Debug, Deserialize)]
pub struct ClientFrame {
    pub t: String,
    #[serde(default)]
    pub id: Option<u64>,
    #[serde(default)]
    pub op: Option<String>,
    #[serde(default)]
    pub params: Option<Value>,
    /// Every request of this client instance with an id up to `ack` has
    /// been answered: the server may forget those answers (see retries in
    /// docs/PROTOCOL.md).
    #[serde(default)]
    pub ack: Option<u64>,
}

/// Encodes a request frame.
/// The request id both sides log (`rid`): the client instance (or, for a
/// client that names none, its device) and the frame id, so one request can
/// be followed from the app's log to the server's. Formatted only when a
/// log line is actually written.
pub struct Rid<'a>(pub &'a str, pub u64);

impl std::fmt::Display for Rid<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

pub fn request_frame(id: u64, op: &str, params: &Value, ack: Option<u64>) -> String {
    let mut f = serde_json::json!({"t": "req", "id": id, "op": op, "params": params});
    if let Some(a) = ack {
        f["ack"] = a.into();
    }
    f.to_string()
}

/// The result object of a reply: the seed's `data` on success, its `error`
/// on failure; `code` is always present, `message` on failure, and extra
/// data (e.g. a call answered 10201 still carries channelInfo) beside it.
pub fn result_object(code: i32, message: Option<&str>, data: Option<Value>) -> Value {
    let mut obj = match data {
        Some(Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    obj.insert("code".into(), code.into());
    if let Some(m) = message {
        obj.insert("message".into(), m.into());
    }
    Value::Object(obj)
}

/// Encodes a reply frame carrying a result object (a `Value`, or its text).
pub fn reply_frame(id: u64, result: &(impl std::fmt::Display + ?Sized)) -> String {
    format!(r#"{{"t":"res","id":{id},"result":{result}}}"#)
}

/// Encodes a failure reply.
pub fn failure_frame(id: u64, f: &Failure) -> String {
    reply_frame(id, &result_object(f.code, Some(&f.message), None))
}

/// Encodes a pushed event; `payload` is the already-encoded event JSON, so
/// one event is encoded once whatever the number of recipients.
pub fn event_frame(seq: u64, kind: NotifyKind, payload: &str) -> String {
    format!(
        r#"{{"t":"evt","seq":{seq},"kind":"{}","event":{payload}}}"#,
        kind.as_str()
    )
}

/// Encodes the offline list sent after login.
pub fn offline_frame(event_list: &[Value]) -> String {
    serde_json::json!({"t": "offline", "eventList": event_list}).to_string()
}

/// Encodes the rooms-I-am-in list sent after each login.
pub fn channels_frame(channels: &Value) -> String {
    format!(r#"{{"t":"channels","channels":{channels}}}"#)
}

/// Encodes the frame telling a session it was replaced by a newer login.
pub fn kicked_frame(code: i32, message: &str) -> String {
    serde_json::json!({"t": "kicked", "code": code, "message": message}).to_string()
}

/// A frame from server to client, borrowed from the text it was read from so
/// that payloads reach the app without being re-encoded.
#[derive(Debug, Deserialize)]
pub struct ServerFrame<'a> {
    #[serde(borrow)]
    pub t: &'a str,
    #[serde(default)]
    pub id: Option<u64>,
    #[serde(default)]
    pub seq: Option<u64>,
    #[serde(default)]
    pub kind: Option<NotifyKind>,
    #[serde(default, borrow)]
    pub result: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pub event: Option<&'a RawValue>,
    #[serde(default, rename = "eventList", borrow)]
    pub event_list: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pub channels: Option<&'a RawValue>,
    #[serde(default)]
    pub code: Option<i32>,
}
