//! Check of the fuzz target `frame_decode`.

use nim_signaling_protocol::codes::INVALID_PARAM;
use nim_signaling_protocol::frames::{self, ClientFrame};
use nim_signaling_protocol::{Failure, Op, Request};
use serde_json::{json, Value};

/// The server's parse of a client frame, as `server::session` does it:
/// the frame (`ClientFrame`), then `Request::parse` of its op and params
/// (and of the same params for every other op, to reach every parser).
/// Checks: no panic; a refusal is 414 and its reply frame is valid JSON; an
/// accepted request names the op it was parsed for.
pub fn frame_decode(data: &[u8]) {
    // WebSocket text messages reach the server as UTF-8 (tungstenite
    // checks), so only UTF-8 is a client frame.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let frame: ClientFrame = match serde_json::from_str(text) {
        Ok(f) => f,
        Err(e) => {
            let f = Failure::new(INVALID_PARAM, format!("malformed frame: {e}"));
            reply_is_json(0, &f);
            return;
        }
    };
    let _ = frame.t == "req";
    let _ = frame.ack;
    let id = frame.id.unwrap_or(0);
    let op = frame.op.unwrap_or_default();
    let params = frame.params.unwrap_or(json!({}));
    parse(id, &op, &params);
    for op in Op::ALL {
        parse(id, op.as_str(), &params);
    }
}

fn parse(id: u64, op: &str, params: &Value) {
    match Request::parse(op, params) {
        Ok(req) => assert_eq!(req.op(), op, "parsed as another op"),
        Err(f) => {
            assert_eq!(f.code, INVALID_PARAM, "a refused request is 414: {f}");
            reply_is_json(id, &f);
        }
    }
}

fn reply_is_json(id: u64, f: &Failure) {
    let reply = frames::failure_frame(id, f);
    let v: Value = serde_json::from_str(&reply).expect("the failure frame is JSON");
    assert_eq!(v["result"]["code"], f.code);
    assert_eq!(v["id"], id);
}
