//! docs/PROTOCOL.md's own examples, played against a server: every block
//! fenced as ```` ```conformance ```` is a script of frames, and the server
//! must answer exactly what the document shows, compared as JSON values
//! (key order is not part of the protocol). The script language is the
//! one the document describes under *Conformance examples*:
//!
//! - `NAME -> FRAME`: connection NAME (opened at first use) sends FRAME,
//!   verbatim (so malformed frames can be shown), after `"$var"` strings
//!   bound earlier are replaced by their values. `-> binary` sends a binary
//!   frame, `-> oversized` a text frame one byte over the default
//!   `maxFrameBytes`.
//! - `NAME <- FRAME`: the next frame NAME receives (pings skipped) equals
//!   FRAME, where `"*"` matches any value and `"$var"` matches any value
//!   and binds it the first time, then must be equal to it.
//! - `NAME <- close CODE "REASON"`: NAME receives a close frame.
//! - `# …` comments and blank lines are skipped.
//!
//! The rest of the info string, when present, is the server config (JSON)
//! the block runs against; every block gets a fresh server.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::HashMap;
use tokio_tungstenite::tungstenite::Message;

const DOC: &str = include_str!("../docs/PROTOCOL.md");

#[derive(Debug)]
enum Step {
    Send(String, String),
    Expect(String, Value),
    Close(String, u16, String),
}

#[derive(Debug)]
struct Block {
    line: usize,
    config: Value,
    steps: Vec<(usize, Step)>,
}

fn blocks() -> Vec<Block> {
    let mut out = Vec::new();
    let mut cur: Option<Block> = None;
    for (n, raw) in DOC.lines().enumerate() {
        let line_no = n + 1;
        let line = raw.trim();
        if let Some(b) = cur.as_mut() {
            if line == "```" {
                out.push(cur.take().unwrap());
                continue;
            }
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (conn, rest) = line
                .split_once(' ')
                .unwrap_or_else(|| panic!("PROTOCOL.md:{line_no}: no connection name"));
            let step = if let Some(frame) = rest.strip_prefix("-> ") {
                Step::Send(conn.into(), frame.trim().into())
            } else if let Some(frame) = rest.strip_prefix("<- close ") {
                let (code, reason) = frame.split_once(' ').unwrap_or((frame, "\"\""));
                let reason: String = serde_json::from_str(reason)
                    .unwrap_or_else(|e| panic!("PROTOCOL.md:{line_no}: close reason: {e}"));
                let code = code
                    .parse()
                    .unwrap_or_else(|e| panic!("PROTOCOL.md:{line_no}: close code: {e}"));
                Step::Close(conn.into(), code, reason)
            } else if let Some(frame) = rest.strip_prefix("<- ") {
                let v = serde_json::from_str(frame)
                    .unwrap_or_else(|e| panic!("PROTOCOL.md:{line_no}: not JSON: {e}"));
                Step::Expect(conn.into(), v)
            } else {
                panic!("PROTOCOL.md:{line_no}: expected `NAME -> …` or `NAME <- …`");
            };
            b.steps.push((line_no, step));
        } else if let Some(info) = line.strip_prefix("```conformance") {
            let info = info.trim();
            let config = if info.is_empty() {
                json!({})
            } else {
                serde_json::from_str(info)
                    .unwrap_or_else(|e| panic!("PROTOCOL.md:{line_no}: block config: {e}"))
            };
            cur = Some(Block {
                line: line_no,
                config,
                steps: Vec::new(),
            });
        }
    }
    assert!(cur.is_none(), "PROTOCOL.md: unterminated conformance block");
    out
}

fn is_var(s: &str) -> bool {
    s.len() > 1
        && s.starts_with('$')
        && s[1..]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether `actual` is what `expected` shows; binds `"$var"`s.
fn matches(
    expected: &Value,
    actual: &Value,
    vars: &mut HashMap<String, Value>,
    path: &str,
) -> Result<(), String> {
    match expected {
        Value::String(s) if s == "*" => Ok(()),
        Value::String(s) if is_var(s) => match vars.get(s) {
            Some(v) if v == actual => Ok(()),
            Some(v) => Err(format!("{path}: {s} is {v}, got {actual}")),
            None => {
                vars.insert(s.clone(), actual.clone());
                Ok(())
            }
        },
        Value::Object(e) => {
            let Some(a) = actual.as_object() else {
                return Err(format!("{path}: expected an object, got {actual}"));
            };
            let mut ek: Vec<_> = e.keys().collect();
            let mut ak: Vec<_> = a.keys().collect();
            ek.sort();
            ak.sort();
            if ek != ak {
                return Err(format!("{path}: keys {ek:?}, got {ak:?}"));
            }
            for (k, v) in e {
                matches(v, &a[k], vars, &format!("{path}.{k}"))?;
            }
            Ok(())
        }
        Value::Array(e) => {
            let Some(a) = actual.as_array() else {
                return Err(format!("{path}: expected an array, got {actual}"));
            };
            if e.len() != a.len() {
                return Err(format!("{path}: {} items, got {}", e.len(), a.len()));
            }
            for (i, (x, y)) in e.iter().zip(a).enumerate() {
                matches(x, y, vars, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        _ if expected == actual => Ok(()),
        _ => Err(format!("{path}: expected {expected}, got {actual}")),
    }
}

/// Replaces every bound `"$var"` in a frame to send by its value.
fn substitute(frame: &str, vars: &HashMap<String, Value>) -> String {
    let mut out = frame.to_string();
    for (k, v) in vars {
        out = out.replace(&format!("\"{k}\""), &v.to_string());
    }
    out
}

async fn next_frame(ws: &mut RawWs) -> Option<Message> {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame in time")?;
        match msg {
            Ok(Message::Ping(_)) | Ok(Message::Pong(_)) => continue,
            Ok(m) => return Some(m),
            Err(_) => return None,
        }
    }
}

/// Plays one block; returns what differed (a step that cannot go on ends
/// the block, a frame that differs does not, so one run shows them all).
async fn play(b: &Block) -> Vec<String> {
    let mut errors = Vec::new();
    let srv = start_server(b.config.clone()).await;
    let mut conns: HashMap<String, RawWs> = HashMap::new();
    let mut vars: HashMap<String, Value> = HashMap::new();
    for (line, step) in &b.steps {
        let at = format!("PROTOCOL.md:{line} (block of line {})", b.line);
        let name = match step {
            Step::Send(n, _) | Step::Expect(n, _) | Step::Close(n, _, _) => n.clone(),
        };
        if !conns.contains_key(&name) {
            conns.insert(name.clone(), raw_connect(srv.url()).await);
        }
        let ws = conns.get_mut(&name).unwrap();
        match step {
            Step::Send(_, frame) => {
                let msg = match frame.as_str() {
                    "binary" => Message::binary(vec![1u8, 2, 3]),
                    "oversized" => Message::text("x".repeat(65_537)),
                    text => Message::text(substitute(text, &vars)),
                };
                if let Err(e) = ws.send(msg).await {
                    errors.push(format!("{at}: send: {e}"));
                    break;
                }
            }
            Step::Expect(_, want) => {
                let got = match next_frame(ws).await {
                    Some(Message::Text(t)) => t.to_string(),
                    other => {
                        errors.push(format!("{at}: expected {want}, got {other:?}"));
                        break;
                    }
                };
                let Ok(v) = serde_json::from_str::<Value>(&got) else {
                    errors.push(format!("{at}: server sent non-JSON {got:?}"));
                    break;
                };
                if let Err(e) = matches(want, &v, &mut vars, "") {
                    errors.push(format!("{at}: {e}\n  expected {want}\n  got      {got}"));
                }
            }
            Step::Close(_, code, reason) => match next_frame(ws).await {
                Some(Message::Close(Some(c)))
                    if (u16::from(c.code), c.reason.as_str()) == (*code, reason.as_str()) => {}
                other => {
                    errors.push(format!(
                        "{at}: expected close {code} {reason:?}, got {other:?}"
                    ));
                    break;
                }
            },
        }
    }
    drop(conns);
    srv.shutdown().await;
    errors
}

#[tokio::test]
async fn the_documents_examples_are_what_the_server_does() {
    let blocks = blocks();
    assert!(
        blocks.len() >= 8,
        "PROTOCOL.md should hold its conformance examples (found {})",
        blocks.len()
    );
    let mut errors = Vec::new();
    for b in &blocks {
        errors.extend(play(b).await);
    }
    assert!(
        errors.is_empty(),
        "the server does not do what PROTOCOL.md shows:\n{}",
        errors.join("\n")
    );
}

/// Every code of crates/protocol/src/codes.rs is in the document's table
/// of codes, and the table holds no other.
#[test]
fn the_code_table_lists_every_code() {
    use nim_signaling_protocol::codes::*;
    let all = [
        OK,
        AUTH_FAILED,
        FORBIDDEN,
        TIMEOUT,
        INVALID_PARAM,
        NOT_CONNECTED,
        RATE_LIMITED,
        INTERNAL,
        UNSUPPORTED,
        PEER_OFFLINE,
        PUSH_UNREACHABLE,
        ROOM_NOT_EXIST,
        ROOM_EXISTS,
        NOT_IN_ROOM,
        ALREADY_IN_ROOM,
        INVITE_NOT_EXIST,
        INVITE_REJECTED,
        INVITE_ACCEPTED,
        UID_CONFLICT,
        ROOM_FULL,
        IN_ROOM_ON_OTHER_DEVICE,
        PEER_BUSY,
    ];
    let table = section(DOC, "## Result codes");
    let mut listed: Vec<i32> = table
        .lines()
        .filter_map(|l| l.strip_prefix("| "))
        .filter_map(|l| l.split(' ').next()?.parse().ok())
        .collect();
    listed.sort_unstable();
    let mut want = all.to_vec();
    want.sort_unstable();
    assert_eq!(listed, want, "the table of codes in PROTOCOL.md");
}

/// Every close the server sends is in the document's table of closes.
#[test]
fn the_close_table_lists_every_close() {
    let table = section(DOC, "## Closes");
    for f in nim_signaling_server::net::session::Farewell::ALL {
        let (code, reason) = f.code_and_reason();
        let row = format!("| {code} | `{reason}` |");
        assert!(
            table.contains(&row),
            "PROTOCOL.md's close table lacks {f:?}: {row}"
        );
    }
}

/// The text from a heading to the next heading of the same level.
fn section<'a>(doc: &'a str, heading: &str) -> &'a str {
    let start = doc
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("PROTOCOL.md has no {heading:?}"));
    let rest = &doc[start + heading.len() + 2..];
    match rest.find("\n## ") {
        Some(end) => &rest[..end],
        None => rest,
    }
}
