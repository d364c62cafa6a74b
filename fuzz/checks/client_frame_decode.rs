//! Check of the fuzz target `client_frame_decode`.

use nim_signaling_protocol::frames::ServerFrame;
use serde_json::value::RawValue;
use serde_json::Value;

/// The client's parse of a server frame (`ServerFrame`), and what it then
/// reads and hands to the app, as `client::connection` does it. Checks: no
/// panic; every text handed on (a reply's result, an event, the offline and
/// channels notifications) is JSON text without a NUL (the C ABI passes it
/// as a C string).
pub fn client_frame_decode(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(f) = serde_json::from_str::<ServerFrame>(text) else {
        return;
    };
    match f.t {
        "res" => {
            let _ = f.id.unwrap_or(u64::MAX);
            let result = f.result.map(|r| r.get()).unwrap_or(r#"{"code":500}"#);
            handed_on(result);
            // As the client reads the code (500 when it cannot).
            let v: Value = serde_json::from_str(result).unwrap_or_default();
            let _code = v["code"].as_i64().unwrap_or(500) as i32;
            // What the login reply is read for.
            let _ = (
                v["message"].as_str(),
                v["seq"].as_u64(),
                v["epoch"].as_str(),
                v["resumed"] == Value::Bool(true),
                v["resync"].as_str(),
            );
        }
        "evt" => {
            if let (Some(_seq), Some(kind), Some(ev)) = (f.seq, f.kind, f.event) {
                let _ = kind.as_str();
                handed_on(ev.get());
            }
        }
        "offline" => {
            let list = f.event_list.map(|r| r.get()).unwrap_or("[]");
            handed_on(&format!(r#"{{"eventList":{list}}}"#));
        }
        "channels" => {
            let list = f.channels.map(|r| r.get()).unwrap_or("[]");
            handed_on(&format!(r#"{{"channels":{list}}}"#));
        }
        "kicked" => {
            let _ = f.code.unwrap_or(403);
        }
        _ => {}
    }
}

/// Text the client passes to the app: must be JSON text (RFC 8259 syntax)
/// and have no NUL.
///
/// Syntax only: payloads are passed on as the server sent them, checked by
/// the same raw-value parse as here, which does not check what the grammar
/// allows but strict parsers refuse. Known and reported: an unpaired UTF-16
/// surrogate escape (`"\ud800"`) or a number beyond f64
/// (`9991999991232971999991232979e299200`) reaches the app as it came, and
/// serde_json's own `Value` parser refuses both.
fn handed_on(s: &str) {
    assert!(!s.contains('\0'), "NUL in text handed to C");
    serde_json::from_str::<&RawValue>(s).expect("text handed to the app is JSON");
}
