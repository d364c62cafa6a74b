//! Request parameters of every operation, in the seed's camelCase, and the
//! single validation step shared by the client library (to fail fast with
//! 414 before anything is sent) and the server (which trusts no client).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::codes::{Failure, INVALID_PARAM};
use super::flex;
use super::objects::PushInfo;
use super::op::Op;
use super::param_errors::{self, fields_of};

/// Longest channelName, requestId, account and deviceId we accept.
pub const MAX_NAME_LEN: usize = 128;
/// Longest ext / attachExt (bytes). Signaling carries hints, not payloads.
pub const MAX_EXT_LEN: usize = 4096;
/// Most invitees of one inviteMany (a group call, not a broadcast).
pub const MAX_INVITEES: usize = 100;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CreateParams {
    #[serde(rename = "type")]
    pub kind: u8,
    #[serde(default)]
    pub channel_name: Option<String>,
    #[serde(default)]
    pub ext: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CloseParams {
    pub channel_id: String,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    pub offline_enabled: Option<bool>,
    #[serde(default)]
    pub ext: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JoinParams {
    pub channel_id: String,
    #[serde(default, deserialize_with = "flex::opt_uid")]
    pub uid: Option<u64>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    pub offline_enabled: Option<bool>,
    #[serde(default)]
    pub attach_ext: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LeaveParams {
    pub channel_id: String,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    pub offline_enabled: Option<bool>,
    #[serde(default)]
    pub attach_ext: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InviteParams {
    pub channel_id: String,
    /// The invitee.
    pub account: String,
    pub request_id: String,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    pub offline_enabled: Option<bool>,
    #[serde(default)]
    pub attach_ext: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_object")]
    pub push_info: Option<PushInfo>,
    /// Not in NIM: fail with 10430 instead of ringing an invitee who is busy.
    #[serde(default, deserialize_with = "flex::opt_bool")]
    pub busy_check: Option<bool>,
    /// Not in NIM: how long this invitation rings (ms) before it times out
    /// with INVITE_TIMEOUT, at most the server's `inviteTtlMs` (longer asks
    /// get that); absent: `inviteTtlMs`.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// inviteMany (not in NIM): one invitation with one requestId to each of
/// `accounts`, decided together in one update of the room.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InviteManyParams {
    pub channel_id: String,
    pub accounts: Vec<String>,
    pub request_id: String,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    pub offline_enabled: Option<bool>,
    #[serde(default)]
    pub attach_ext: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_object")]
    pub push_info: Option<PushInfo>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    pub busy_check: Option<bool>,
    /// As invite's.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

impl InviteManyParams {
    /// The single invitation of `account` this request stands for.
    pub fn invitation(&self, account: &str) -> InviteParams {
        InviteParams {
            channel_id: self.channel_id.clone(),
            account: account.to_string(),
            request_id: self.request_id.clone(),
            offline_enabled: self.offline_enabled,
            attach_ext: self.attach_ext.clone(),
            push_info: self.push_info.clone(),
            busy_check: self.busy_check,
            timeout_ms: self.timeout_ms,
        }
    }
}

/// Parameters of cancel (account = invitee) and reject (account = inviter).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InviteReplyParams {
    pub channel_id: String,
    pub account: String,
    pub request_id: String,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    pub offline_enabled: Option<bool>,
    #[serde(default)]
    pub attach_ext: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AcceptParams {
    pub channel_id: String,
    /// The inviter.
    pub account: String,
    pub request_id: String,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    pub offline_enabled: Option<bool>,
    #[serde(default)]
    pub attach_ext: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    pub auto_join: Option<bool>,
    #[serde(default, deserialize_with = "flex::opt_uid")]
    pub uid: Option<u64>,
    #[serde(default)]
    pub join_attach_ext: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ControlParams {
    pub channel_id: String,
    /// Receiver; absent or empty means every member.
    #[serde(default)]
    pub account: Option<String>,
    #[serde(default)]
    pub attach_ext: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CallParams {
    #[serde(rename = "type")]
    pub kind: u8,
    #[serde(default)]
    pub channel_name: Option<String>,
    #[serde(default)]
    pub ext: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_uid")]
    pub uid: Option<u64>,
    pub account: String,
    pub request_id: String,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    pub offline_enabled: Option<bool>,
    #[serde(default)]
    pub attach_ext: Option<String>,
    #[serde(default, deserialize_with = "flex::opt_object")]
    pub push_info: Option<PushInfo>,
    /// As invite's; checked after glare (a callee ringing us back is not busy).
    #[serde(default, deserialize_with = "flex::opt_bool")]
    pub busy_check: Option<bool>,
    /// As invite's.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

impl CallParams {
    /// The invitation part of a call into room `channel_id`.
    pub fn invitation(&self, channel_id: &str) -> InviteParams {
        InviteParams {
            channel_id: channel_id.to_string(),
            account: self.account.clone(),
            request_id: self.request_id.clone(),
            offline_enabled: self.offline_enabled,
            attach_ext: self.attach_ext.clone(),
            push_info: self.push_info.clone(),
            busy_check: self.busy_check,
            timeout_ms: self.timeout_ms,
        }
    }
}

/// registerPushToken (an addition to NIM's operations): the push token of
/// the calling device, carried to the push gateway when an invitation
/// reaches its account while it is offline. An empty token removes it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PushTokenParams {
    pub token: String,
    /// Which push service the token belongs to ("apns", "fcm", …; free
    /// text, for the gateway).
    #[serde(default)]
    pub provider: Option<String>,
}

/// inviteDelivered (an addition to NIM, sent by the client library itself,
/// not by apps): this device of the invitee got the INVITE.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DeliveredParams {
    pub channel_id: String,
    /// The inviter.
    pub account: String,
    pub request_id: String,
}

/// updateChannel (an addition to NIM): the room's new ext.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UpdateChannelParams {
    pub channel_id: String,
    pub ext: String,
    #[serde(default, deserialize_with = "flex::opt_bool")]
    pub offline_enabled: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct QueryParams {
    #[serde(default)]
    pub channel_id: Option<String>,
    #[serde(default)]
    pub channel_name: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LoginParams {
    pub account: String,
    #[serde(default)]
    pub token: String,
    pub device_id: String,
    /// Last event sequence this device saw; asks the server to resume.
    #[serde(default)]
    pub resume_seq: Option<u64>,
    /// The log epoch `resumeSeq` belongs to (from the last login reply);
    /// without it the server cannot resume.
    #[serde(default)]
    pub resume_epoch: Option<String>,
    /// Names the client instance (one per process run of a client). The
    /// server keeps the answers to its request ids so that a request sent
    /// again after a reconnect is answered, not applied twice. Without it
    /// requests are not deduplicated.
    #[serde(default)]
    pub instance: Option<String>,
}

/// One operation with its parsed parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Login(LoginParams),
    Logout,
    Create(CreateParams),
    Close(CloseParams),
    Join(JoinParams),
    Leave(LeaveParams),
    Invite(InviteParams),
    InviteMany(InviteManyParams),
    Cancel(InviteReplyParams),
    Accept(AcceptParams),
    Reject(InviteReplyParams),
    Control(ControlParams),
    Call(CallParams),
    Sync,
    QueryChannelInfo(QueryParams),
    RegisterPushToken(PushTokenParams),
    QueryInvitations,
    InviteDelivered(DeliveredParams),
    UpdateChannel(UpdateChannelParams),
}

/// `params` as a `T` (see [`param_errors::parse`]), knowing every
/// operation's keys.
fn parse<T: serde::de::DeserializeOwned>(params: &Value) -> Result<T, Failure> {
    param_errors::parse(params, every_key())
}

/// The keys of every operation's parameters and of every object the
/// protocol hands out: none of them is taken for a misspelling of another
/// (an app may pass one object to several operations, or spread an event's
/// fields, `toAccount` and all, into its answer).
fn every_key() -> &'static [&'static str] {
    static KEYS: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        let mut keys: Vec<&'static str> = [
            fields_of::<LoginParams>(),
            fields_of::<CreateParams>(),
            fields_of::<CloseParams>(),
            fields_of::<JoinParams>(),
            fields_of::<LeaveParams>(),
            fields_of::<InviteParams>(),
            fields_of::<InviteManyParams>(),
            fields_of::<InviteReplyParams>(),
            fields_of::<AcceptParams>(),
            fields_of::<ControlParams>(),
            fields_of::<CallParams>(),
            fields_of::<QueryParams>(),
            fields_of::<PushTokenParams>(),
            fields_of::<DeliveredParams>(),
            fields_of::<UpdateChannelParams>(),
            fields_of::<crate::objects::Event>(),
            fields_of::<crate::objects::ChannelInfo>(),
            fields_of::<crate::objects::Member>(),
            fields_of::<crate::objects::ChannelWithMembers>(),
            fields_of::<PushInfo>(),
        ]
        .concat();
        keys.sort_unstable();
        keys.dedup();
        keys
    })
}

fn bad(msg: impl Into<String>) -> Failure {
    Failure::new(INVALID_PARAM, msg)
}

fn need_id(field: &str, v: &str) -> Result<(), Failure> {
    if v.is_empty() {
        return Err(bad(format!("{field} must not be empty")));
    }
    name(field, v)
}

/// A duration asked for in ms: at least 1 (an invitation that times out
/// at once would never ring).
fn timeout(field: &str, v: Option<u64>) -> Result<(), Failure> {
    match v {
        Some(0) => Err(bad(format!("{field} must be at least 1"))),
        _ => Ok(()),
    }
}

fn opt_name(field: &str, v: &Option<String>) -> Result<(), Failure> {
    match v {
        Some(s) => name(field, s),
        None => Ok(()),
    }
}

/// Names and ids (accounts, devices, rooms, requests) end up in logs, in
/// other users' events and on their screens: bounded, and no control or
/// invisible characters (no forged log lines, no names that look like
/// another's). Public so that client configs are held to the same rule.
pub fn name(field: &str, v: &str) -> Result<(), Failure> {
    if v.len() > MAX_NAME_LEN {
        return Err(bad(format!("{field} is longer than {MAX_NAME_LEN} bytes")));
    }
    if v.chars().any(|c| c.is_control() || is_invisible(c)) {
        return Err(bad(format!(
            "{field} must not contain control or invisible characters"
        )));
    }
    Ok(())
}

/// Characters that change how text around them reads without showing
/// themselves: line and paragraph separators (line breaks to JavaScript
/// and many log viewers), zero-width spaces and marks, bidirectional overrides
/// and isolates, and the byte order mark.
fn is_invisible(c: char) -> bool {
    matches!(c,
        // U+200D (zero-width joiner) is left out: emoji sequences need it.
        '\u{200B}' | '\u{200C}' | '\u{200E}' | '\u{200F}' // ZWSP, ZWNJ, LRM, RLM
        | '\u{2028}' | '\u{2029}' // line, paragraph separator
        | '\u{202A}'..='\u{202E}' // bidi embeddings and overrides
        | '\u{2060}'..='\u{2064}' // word joiner, invisible operators
        | '\u{2066}'..='\u{2069}' // bidi isolates
        | '\u{FEFF}') // byte order mark / zero-width no-break space
}

/// inviteMany's accounts: 1..=MAX_INVITEES valid names, each once (a
/// repeat would ring one person twice under one requestId).
fn invitees(accounts: &[String]) -> Result<(), Failure> {
    if accounts.is_empty() || accounts.len() > MAX_INVITEES {
        return Err(bad(format!(
            "accounts must hold 1 to {MAX_INVITEES} accounts, not {}",
            accounts.len()
        )));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, a) in accounts.iter().enumerate() {
        need_id(&format!("accounts[{i}]"), a)?;
        if !seen.insert(a.as_str()) {
            return Err(bad(format!("accounts holds \"{a}\" more than once")));
        }
    }
    Ok(())
}

fn opt_ext(field: &str, v: &Option<String>) -> Result<(), Failure> {
    v.as_deref().map_or(Ok(()), |s| ext(field, s))
}

fn ext(field: &str, v: &str) -> Result<(), Failure> {
    if v.len() > MAX_EXT_LEN {
        return Err(bad(format!("{field} is longer than {MAX_EXT_LEN} bytes")));
    }
    Ok(())
}

fn channel_type(kind: u8) -> Result<(), Failure> {
    if (1..=3).contains(&kind) {
        Ok(())
    } else {
        Err(bad("type must be 1 (audio), 2 (video) or 3 (other)"))
    }
}

fn push_info(p: &Option<PushInfo>) -> Result<(), Failure> {
    if let Some(p) = p {
        let size = serde_json::to_string(p).map(|s| s.len()).unwrap_or(0);
        if size > MAX_EXT_LEN {
            return Err(bad(format!("pushInfo is larger than {MAX_EXT_LEN} bytes")));
        }
    }
    Ok(())
}

impl Request {
    /// Parses and validates `params` for operation `op`. Unknown keys are
    /// ignored unless they look like a misspelt known one; a wrong type, a
    /// missing required key, a misspelt key or a value out of range is 414
    /// with a message naming the field (see `param_errors`).
    pub fn parse(op: &str, params: &Value) -> Result<Request, Failure> {
        if !params.is_object() {
            return Err(bad("params must be a JSON object"));
        }
        Request::parse_op(op.parse::<Op>()?, params)
    }

    /// [`Request::parse`] for an operation already known.
    pub fn parse_op(op: Op, params: &Value) -> Result<Request, Failure> {
        if !params.is_object() {
            return Err(bad("params must be a JSON object"));
        }
        let req = match op {
            Op::Login => {
                let p: LoginParams = parse(params)?;
                need_id("account", &p.account)?;
                need_id("deviceId", &p.device_id)?;
                if let Some(i) = &p.instance {
                    need_id("instance", i)?;
                }
                if p.token.len() > MAX_EXT_LEN {
                    return Err(bad("token is too long"));
                }
                Request::Login(p)
            }
            Op::Logout => Request::Logout,
            Op::Create => {
                let p: CreateParams = parse(params)?;
                channel_type(p.kind)?;
                opt_name("channelName", &p.channel_name)?;
                opt_ext("ext", &p.ext)?;
                Request::Create(p)
            }
            Op::Close => {
                let p: CloseParams = parse(params)?;
                need_id("channelId", &p.channel_id)?;
                opt_ext("ext", &p.ext)?;
                Request::Close(p)
            }
            Op::Join => {
                let p: JoinParams = parse(params)?;
                need_id("channelId", &p.channel_id)?;
                opt_ext("attachExt", &p.attach_ext)?;
                Request::Join(p)
            }
            Op::Leave => {
                let p: LeaveParams = parse(params)?;
                need_id("channelId", &p.channel_id)?;
                opt_ext("attachExt", &p.attach_ext)?;
                Request::Leave(p)
            }
            Op::Invite => {
                let p: InviteParams = parse(params)?;
                need_id("channelId", &p.channel_id)?;
                need_id("account", &p.account)?;
                need_id("requestId", &p.request_id)?;
                opt_ext("attachExt", &p.attach_ext)?;
                push_info(&p.push_info)?;
                timeout("timeoutMs", p.timeout_ms)?;
                Request::Invite(p)
            }
            Op::InviteMany => {
                let p: InviteManyParams = parse(params)?;
                need_id("channelId", &p.channel_id)?;
                invitees(&p.accounts)?;
                need_id("requestId", &p.request_id)?;
                opt_ext("attachExt", &p.attach_ext)?;
                push_info(&p.push_info)?;
                timeout("timeoutMs", p.timeout_ms)?;
                Request::InviteMany(p)
            }
            Op::Cancel | Op::Reject => {
                let p: InviteReplyParams = parse(params)?;
                need_id("channelId", &p.channel_id)?;
                need_id("account", &p.account)?;
                need_id("requestId", &p.request_id)?;
                opt_ext("attachExt", &p.attach_ext)?;
                if op == Op::Cancel {
                    Request::Cancel(p)
                } else {
                    Request::Reject(p)
                }
            }
            Op::Accept => {
                let p: AcceptParams = parse(params)?;
                need_id("channelId", &p.channel_id)?;
                need_id("account", &p.account)?;
                need_id("requestId", &p.request_id)?;
                opt_ext("attachExt", &p.attach_ext)?;
                opt_ext("joinAttachExt", &p.join_attach_ext)?;
                Request::Accept(p)
            }
            Op::Control => {
                let p: ControlParams = parse(params)?;
                need_id("channelId", &p.channel_id)?;
                opt_name("account", &p.account)?;
                opt_ext("attachExt", &p.attach_ext)?;
                Request::Control(p)
            }
            Op::Call => {
                let p: CallParams = parse(params)?;
                channel_type(p.kind)?;
                opt_name("channelName", &p.channel_name)?;
                opt_ext("ext", &p.ext)?;
                need_id("account", &p.account)?;
                need_id("requestId", &p.request_id)?;
                opt_ext("attachExt", &p.attach_ext)?;
                push_info(&p.push_info)?;
                timeout("timeoutMs", p.timeout_ms)?;
                Request::Call(p)
            }
            Op::Sync => Request::Sync,
            Op::QueryChannelInfo => {
                let p: QueryParams = parse(params)?;
                let id = p.channel_id.as_deref().unwrap_or("");
                let name = p.channel_name.as_deref().unwrap_or("");
                if id.is_empty() && name.is_empty() {
                    return Err(bad("channelId or channelName is required"));
                }
                opt_name("channelId", &p.channel_id)?;
                opt_name("channelName", &p.channel_name)?;
                Request::QueryChannelInfo(p)
            }
            Op::RegisterPushToken => {
                let p: PushTokenParams = parse(params)?;
                if p.token.len() > MAX_EXT_LEN {
                    return Err(bad(format!("token is longer than {MAX_EXT_LEN} bytes")));
                }
                if p.token.chars().any(char::is_control) {
                    return Err(bad("token must not contain control characters"));
                }
                opt_name("provider", &p.provider)?;
                Request::RegisterPushToken(p)
            }
            Op::QueryInvitations => Request::QueryInvitations,
            Op::InviteDelivered => {
                let p: DeliveredParams = parse(params)?;
                need_id("channelId", &p.channel_id)?;
                need_id("account", &p.account)?;
                need_id("requestId", &p.request_id)?;
                Request::InviteDelivered(p)
            }
            Op::UpdateChannel => {
                let p: UpdateChannelParams = parse(params)?;
                need_id("channelId", &p.channel_id)?;
                ext("ext", &p.ext)?;
                Request::UpdateChannel(p)
            }
        };
        Ok(req)
    }

    /// This request's operation.
    pub fn operation(&self) -> Op {
        match self {
            Request::Login(_) => Op::Login,
            Request::Logout => Op::Logout,
            Request::Create(_) => Op::Create,
            Request::Close(_) => Op::Close,
            Request::Join(_) => Op::Join,
            Request::Leave(_) => Op::Leave,
            Request::Invite(_) => Op::Invite,
            Request::Cancel(_) => Op::Cancel,
            Request::Accept(_) => Op::Accept,
            Request::Reject(_) => Op::Reject,
            Request::Control(_) => Op::Control,
            Request::Call(_) => Op::Call,
            Request::Sync => Op::Sync,
            Request::QueryChannelInfo(_) => Op::QueryChannelInfo,
            Request::RegisterPushToken(_) => Op::RegisterPushToken,
            Request::InviteMany(_) => Op::InviteMany,
            Request::QueryInvitations => Op::QueryInvitations,
            Request::InviteDelivered(_) => Op::InviteDelivered,
            Request::UpdateChannel(_) => Op::UpdateChannel,
        }
    }

    /// Whether the request asks for its events to be kept for recipients
    /// that are offline (`offlineEnabled`).
    pub fn offline_enabled(&self) -> bool {
        let asked = match self {
            Request::Close(p) => p.offline_enabled,
            Request::Join(p) => p.offline_enabled,
            Request::Leave(p) => p.offline_enabled,
            Request::Invite(p) => p.offline_enabled,
            Request::InviteMany(p) => p.offline_enabled,
            Request::Cancel(p) | Request::Reject(p) => p.offline_enabled,
            Request::Accept(p) => p.offline_enabled,
            Request::Call(p) => p.offline_enabled,
            Request::UpdateChannel(p) => p.offline_enabled,
            Request::Login(_)
            | Request::Logout
            | Request::Create(_)
            | Request::Control(_)
            | Request::Sync
            | Request::QueryChannelInfo(_)
            | Request::RegisterPushToken(_)
            | Request::QueryInvitations
            | Request::InviteDelivered(_) => None,
        };
        asked.unwrap_or(false)
    }

    /// The wire name of this request's operation.
    pub fn op(&self) -> &'static str {
        self.operation().as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Every limit, at and just past its edge: (case, op, params, None for
    /// accepted or the message fragment of the 414).
    #[test]
    fn limits_at_their_edges() {
        let name = |n: usize| "n".repeat(n);
        let ext = |n: usize| "e".repeat(n);
        let invite = |k: &str, v: Value| {
            let mut p = json!({"channelId": "c", "account": "bob", "requestId": "r"});
            p[k] = v;
            p
        };
        #[rustfmt::skip]
        let rows: Vec<(&str, &str, Value, Option<&str>)> = vec![
            ("name at the limit",     "create", json!({"type": 1, "channelName": name(128)}), None),
            ("name past the limit",   "create", json!({"type": 1, "channelName": name(129)}), Some("channelName is longer than 128 bytes")),
            ("name with a newline",   "create", json!({"type": 1, "channelName": "a\nb"}), Some("channelName must not contain control or invisible characters")),
            ("name with U+0085",      "create", json!({"type": 1, "channelName": "a\u{85}b"}), Some("channelName must not contain control or invisible characters")),
            ("name in Chinese",       "create", json!({"type": 1, "channelName": "会议室"}), None),
            ("name with emoji + ZWJ", "create", json!({"type": 1, "channelName": "👩\u{200d}💻"}), None),
            ("name with a ZWSP",      "create", json!({"type": 1, "channelName": "a\u{200b}b"}), Some("channelName must not contain control or invisible")),
            ("name with RLO",         "create", json!({"type": 1, "channelName": "\u{202e}gpj.exe"}), Some("channelName must not contain control or invisible")),
            ("name with U+2028",      "create", json!({"type": 1, "channelName": "a\u{2028}b"}), Some("channelName must not contain control or invisible")),
            ("pushInfo as an array",  "invite", invite("pushInfo", json!(["title"])), Some("pushInfo must be a JSON object")),
            ("ext at the limit",      "create", json!({"type": 1, "ext": ext(4096)}), None),
            ("ext past the limit",    "create", json!({"type": 1, "ext": ext(4097)}), Some("ext is longer than 4096 bytes")),
            ("ext may hold newlines", "create", json!({"type": 1, "ext": "{\n}"}), None),
            ("type 0",                "create", json!({"type": 0}), Some("type must be 1")),
            ("requestId past",        "invite", invite("requestId", json!(name(129))), Some("requestId is longer than 128 bytes")),
            ("requestId with a tab",  "invite", invite("requestId", json!("r\t1")), Some("requestId must not contain control or invisible characters")),
            ("empty requestId",       "invite", invite("requestId", json!("")), Some("requestId must not be empty")),
            ("account with NUL",      "invite", invite("account", json!("b\u{0}ob")), Some("account must not contain control or invisible characters")),
            ("attachExt past",        "invite", invite("attachExt", json!(ext(4097))), Some("attachExt is longer than 4096 bytes")),
            ("pushInfo past",         "invite", invite("pushInfo", json!({"pushContent": ext(4096)})), Some("pushInfo is larger than 4096 bytes")),
            ("deviceId with ESC",     "login",  json!({"account": "a", "deviceId": "d\u{1b}[2J"}), Some("deviceId must not contain control or invisible characters")),
            ("push token at the limit", "registerPushToken", json!({"token": ext(4096)}), None),
            ("push token past",     "registerPushToken", json!({"token": ext(4097)}), Some("token is longer than 4096 bytes")),
            ("push token with a newline", "registerPushToken", json!({"token": "a\nb"}), Some("token must not contain control characters")),
            ("push token missing",  "registerPushToken", json!({"provider": "fcm"}), Some("missing field `token`")),
            ("provider with a tab", "registerPushToken", json!({"token": "t", "provider": "f\tcm"}), Some("provider must not contain control")),
            ("inviteMany, no accounts",    "inviteMany", json!({"channelId": "c", "accounts": [], "requestId": "r"}), Some("accounts must hold 1 to 100 accounts, not 0")),
            ("inviteMany, 100 accounts",   "inviteMany", json!({"channelId": "c", "accounts": (0..100).map(|i| format!("a{i}")).collect::<Vec<_>>(), "requestId": "r"}), None),
            ("inviteMany, 101 accounts",   "inviteMany", json!({"channelId": "c", "accounts": (0..101).map(|i| format!("a{i}")).collect::<Vec<_>>(), "requestId": "r"}), Some("not 101")),
            ("inviteMany, a repeat",       "inviteMany", json!({"channelId": "c", "accounts": ["bob", "carol", "bob"], "requestId": "r"}), Some("accounts holds \"bob\" more than once")),
            ("inviteMany, empty account",  "inviteMany", json!({"channelId": "c", "accounts": ["bob", ""], "requestId": "r"}), Some("accounts[1] must not be empty")),
            ("inviteMany, account with LF", "inviteMany", json!({"channelId": "c", "accounts": ["b\nob"], "requestId": "r"}), Some("accounts[0] must not contain control")),
            ("inviteMany, accounts a string", "inviteMany", json!({"channelId": "c", "accounts": "bob", "requestId": "r"}), Some("invalid type")),
            ("busyCheck as a number",      "invite", invite("busyCheck", json!(1)), None),
            ("busyCheck as text",          "invite", invite("busyCheck", json!("yes")), Some("expected a boolean")),
            ("update ext at the limit", "updateChannel", json!({"channelId": "c", "ext": ext(4096)}), None),
            ("update ext past",     "updateChannel", json!({"channelId": "c", "ext": ext(4097)}), Some("ext is longer than 4096 bytes")),
            ("update without ext",  "updateChannel", json!({"channelId": "c"}), Some("missing field `ext`")),
            ("update, empty id",    "updateChannel", json!({"channelId": "", "ext": ""}), Some("channelId must not be empty")),
            ("receipt, no requestId", "inviteDelivered", json!({"channelId": "c", "account": "a"}), Some("missing field `requestId`")),
            ("receipt, empty inviter", "inviteDelivered", json!({"channelId": "c", "account": "", "requestId": "r"}), Some("account must not be empty")),
            ("instance too long",     "login",  json!({"account": "a", "deviceId": "d", "instance": name(129)}), Some("instance is longer than 128 bytes")),
        ];
        for (case, op, params, want) in rows {
            let got = Request::parse(op, &params);
            match (want, got) {
                (None, Ok(_)) => {}
                (Some(msg), Err(f)) => {
                    assert_eq!(f.code, INVALID_PARAM, "{case}");
                    assert!(f.message.contains(msg), "{case}: {}", f.message);
                }
                (want, got) => panic!("{case}: wanted {want:?}, got {got:?}"),
            }
        }
    }

    /// Each operation's name parses as that operation (params valid for
    /// every operation at once: unknown keys are ignored), and a name that
    /// is no operation is 414.
    /// Keys of other operations and of the protocol's objects are never
    /// taken for misspellings: an app may answer with an INVITE event's
    /// fields spread in.
    #[test]
    fn an_event_spread_into_an_answer_is_not_a_misspelling() {
        let params = json!({
            "channelId": "c", "account": "alice", "requestId": "r",
            "toAccount": "bob", "fromAccountId": "alice", "eventType": "INVITE",
            "channelInfo": {}, "accounts": [], "members": [],
        });
        assert!(Request::parse("accept", &params).is_ok());
        let f = Request::parse(
            "accept",
            &json!({"channelId": "c", "acount": "a", "requestId": "r"}),
        );
        assert_eq!(
            f.unwrap_err().message,
            "unknown key `acount`: did you mean `account`?"
        );
    }

    #[test]
    fn every_op_parses_as_itself() {
        let params = json!({
            "type": 1, "channelId": "c", "account": "bob", "accounts": ["bob"],
            "requestId": "r", "deviceId": "d", "token": "t", "ext": "",
        });
        for op in Op::ALL.iter().copied() {
            let req = Request::parse(op.as_str(), &params).unwrap_or_else(|f| panic!("{op}: {f}"));
            assert_eq!(req.operation(), op);
            assert_eq!(req.op(), op.as_str());
            assert_eq!(Request::parse_op(op, &params).as_ref(), Ok(&req));
        }
        let f = Request::parse("bogus", &params).unwrap_err();
        assert_eq!(f.code, INVALID_PARAM);
        assert_eq!(f.message, "unknown operation \"bogus\"");
        let f = Request::parse("bogus", &json!([])).unwrap_err();
        assert_eq!(f.message, "params must be a JSON object");
    }
}
