//! NIM result codes. Numbers are stable and never reused: apps switch on them.

/// Success.
pub const OK: i32 = 200;
/// Login refused: unknown account, wrong or expired token.
pub const AUTH_FAILED: i32 = 302;
/// The caller may not do this.
pub const FORBIDDEN: i32 = 403;
/// No reply within the request timeout.
pub const TIMEOUT: i32 = 408;
/// Malformed or missing parameter.
pub const INVALID_PARAM: i32 = 414;
/// Not logged in / connection lost.
pub const NOT_CONNECTED: i32 = 415;
/// Too many requests.
pub const RATE_LIMITED: i32 = 416;
/// A bug or an unavailable dependency on our side.
pub const INTERNAL: i32 = 500;
/// Not in NIM: this build of the library lacks the feature asked for (the
/// embedded server, in a client-only build).
pub const UNSUPPORTED: i32 = 501;
/// The invitee has no online device (the invitation is still kept).
pub const PEER_OFFLINE: i32 = 10201;
/// The invitee is offline and the push asked for could not be sent.
pub const PUSH_UNREACHABLE: i32 = 10202;
pub const ROOM_NOT_EXIST: i32 = 10404;
pub const ROOM_EXISTS: i32 = 10405;
pub const NOT_IN_ROOM: i32 = 10406;
pub const ALREADY_IN_ROOM: i32 = 10407;
pub const INVITE_NOT_EXIST: i32 = 10408;
pub const INVITE_REJECTED: i32 = 10409;
pub const INVITE_ACCEPTED: i32 = 10410;
pub const UID_CONFLICT: i32 = 10417;
pub const ROOM_FULL: i32 = 10419;
pub const IN_ROOM_ON_OTHER_DEVICE: i32 = 10420;
/// Not in NIM: the invitee is in another call or already ringing, and the
/// inviter asked for `busyCheck` (nothing was recorded, nothing rang).
pub const PEER_BUSY: i32 = 10430;

/// The default human-readable message for a code.
pub fn message(code: i32) -> &'static str {
    match code {
        OK => "ok",
        AUTH_FAILED => "authentication failed",
        FORBIDDEN => "forbidden",
        TIMEOUT => "request timed out",
        INVALID_PARAM => "invalid parameter",
        NOT_CONNECTED => "not connected or not logged in",
        RATE_LIMITED => "rate limited",
        INTERNAL => "internal error",
        UNSUPPORTED => "not available in this build",
        PEER_OFFLINE => "the invitee is not online",
        PUSH_UNREACHABLE => "the invitee is offline and push is unreachable",
        ROOM_NOT_EXIST => "room does not exist",
        ROOM_EXISTS => "room already exists",
        NOT_IN_ROOM => "not in the room",
        ALREADY_IN_ROOM => "already in the room",
        INVITE_NOT_EXIST => "invitation does not exist or has expired",
        INVITE_REJECTED => "invitation already rejected",
        INVITE_ACCEPTED => "invitation already accepted",
        UID_CONFLICT => "uid already used in the room",
        ROOM_FULL => "room is full",
        IN_ROOM_ON_OTHER_DEVICE => "account is in the room on another device",
        PEER_BUSY => "the invitee is busy (in another call or already ringing)",
        _ => "error",
    }
}

/// A failed outcome: a code and a message meant for the developer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl Failure {
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
        }
    }
    /// A failure with the code's default message.
    pub fn code(code: i32) -> Self {
        Failure {
            code,
            message: message(code).to_string(),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for Failure {}
