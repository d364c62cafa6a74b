//! Types that appear in the C header.

use std::ffi::{c_char, c_void};

/// A signaling client: one account on one device. Made by
/// `nim_signaling_client_new`, freed by `nim_signaling_client_free`.
pub struct nim_signaling_client {
    _private: [u8; 0],
}

/// An embedded signaling server. Made by `nim_signaling_server_start`,
/// stopped and freed by `nim_signaling_server_stop`.
pub struct nim_signaling_server {
    _private: [u8; 0],
}

/// Completion of a request. `code` is 200 on success or a NIM error code;
/// `result_json` is the seed's `data` object (success) or `error` object
/// (failure), always with `"code"`, failures with `"message"`. The string is
/// owned by the library and valid only until the callback returns.
pub type nim_signaling_result_cb =
    Option<unsafe extern "C" fn(code: i32, result_json: *const c_char, user_data: *mut c_void)>;

/// A notification. `event_json` is owned by the library and valid only
/// until the callback returns.
pub type nim_signaling_event_cb =
    Option<unsafe extern "C" fn(event_json: *const c_char, user_data: *mut c_void)>;

/// Result codes (NIM's numbering). 200 is success everywhere.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum nim_signaling_code {
    NIM_SIGNALING_OK = 200,
    /// Login refused: unknown account, wrong or expired token.
    NIM_SIGNALING_AUTH_FAILED = 302,
    /// Not allowed; also the code of the `kicked` connection state.
    NIM_SIGNALING_FORBIDDEN = 403,
    /// No reply within `requestTimeoutMs`.
    NIM_SIGNALING_TIMEOUT = 408,
    /// NULL, malformed or missing parameter.
    NIM_SIGNALING_INVALID_PARAM = 414,
    /// Not logged in, or the connection was lost before the reply.
    NIM_SIGNALING_NOT_CONNECTED = 415,
    NIM_SIGNALING_RATE_LIMITED = 416,
    /// A bug or unavailable dependency inside the library or server.
    NIM_SIGNALING_INTERNAL = 500,
    /// Not in NIM: this build lacks the feature, e.g.
    /// `nim_signaling_server_start` in the client-only library.
    NIM_SIGNALING_UNSUPPORTED = 501,
    /// The invitee has no online device (the invitation is still kept).
    NIM_SIGNALING_PEER_OFFLINE = 10201,
    /// The invitee is offline and the requested push could not be sent.
    NIM_SIGNALING_PUSH_UNREACHABLE = 10202,
    NIM_SIGNALING_ROOM_NOT_EXIST = 10404,
    NIM_SIGNALING_ROOM_EXISTS = 10405,
    NIM_SIGNALING_NOT_IN_ROOM = 10406,
    NIM_SIGNALING_ALREADY_IN_ROOM = 10407,
    /// The invitation does not exist, was cancelled, or has expired.
    NIM_SIGNALING_INVITE_NOT_EXIST = 10408,
    NIM_SIGNALING_INVITE_REJECTED = 10409,
    NIM_SIGNALING_INVITE_ACCEPTED = 10410,
    NIM_SIGNALING_UID_CONFLICT = 10417,
    NIM_SIGNALING_ROOM_FULL = 10419,
    /// The account is already in the room from another device.
    NIM_SIGNALING_IN_ROOM_ON_OTHER_DEVICE = 10420,
    /// Not in NIM: with `busyCheck`, the invitee is in another audio/video
    /// call or already ringing; nothing was recorded and nothing rang.
    NIM_SIGNALING_PEER_BUSY = 10430,
}

/// `eventTypeCode` of events: 1-8 as NIM numbers them; 9 and up are
/// additions of nim-signaling.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum nim_signaling_event_type {
    NIM_SIGNALING_EVENT_ROOM_CLOSE = 1,
    NIM_SIGNALING_EVENT_ROOM_JOIN = 2,
    NIM_SIGNALING_EVENT_INVITE = 3,
    NIM_SIGNALING_EVENT_CANCEL_INVITE = 4,
    NIM_SIGNALING_EVENT_REJECT = 5,
    NIM_SIGNALING_EVENT_ACCEPT = 6,
    NIM_SIGNALING_EVENT_LEAVE = 7,
    NIM_SIGNALING_EVENT_CONTROL = 8,
    /// Not in NIM: an invitation ran out (`inviteTtlMs`) unanswered. Sent by
    /// the server to every device of the inviter and of the invitee, with
    /// `fromAccountId` the inviter, `toAccount` the invitee, `requestId`.
    NIM_SIGNALING_EVENT_INVITE_TIMEOUT = 9,
    /// Not in NIM: the INVITE reached one more device of the invitee (its
    /// client library acknowledged it). Sent to the inviter's online
    /// devices, with `fromAccountId` the invitee, `toAccount` the inviter,
    /// `requestId` and `deliveredCount`, the devices reached so far.
    NIM_SIGNALING_EVENT_INVITE_DELIVERED = 10,
    /// Not in NIM: a member or the creator changed the room's ext
    /// (`nim_signaling_update_channel`); `channelInfo` carries the new one.
    NIM_SIGNALING_EVENT_CHANNEL_UPDATE = 11,
}

/// The opaque `void *user_data` handed back to callbacks. The library never
/// dereferences it; the app vouches that it may be used from the callback
/// thread.
#[derive(Clone, Copy)]
pub(crate) struct UserData(pub *mut c_void);

// SAFETY: only passed back to the app's callbacks, as C-API.md documents.
unsafe impl Send for UserData {}
// SAFETY: as for Send: the library never dereferences it; a shared
// UserData is only copied and handed back.
unsafe impl Sync for UserData {}

#[cfg(test)]
mod tests {
    use super::nim_signaling_code::*;
    use nim_signaling_protocol::codes;
    use nim_signaling_protocol::EventType;

    /// The header's enums are a second spelling of protocol::codes and
    /// EventType::code; this keeps the two from drifting apart.
    #[test]
    fn header_enums_match_the_protocol() {
        let pairs = [
            (NIM_SIGNALING_OK, codes::OK),
            (NIM_SIGNALING_AUTH_FAILED, codes::AUTH_FAILED),
            (NIM_SIGNALING_FORBIDDEN, codes::FORBIDDEN),
            (NIM_SIGNALING_TIMEOUT, codes::TIMEOUT),
            (NIM_SIGNALING_INVALID_PARAM, codes::INVALID_PARAM),
            (NIM_SIGNALING_NOT_CONNECTED, codes::NOT_CONNECTED),
            (NIM_SIGNALING_RATE_LIMITED, codes::RATE_LIMITED),
            (NIM_SIGNALING_INTERNAL, codes::INTERNAL),
            (NIM_SIGNALING_UNSUPPORTED, codes::UNSUPPORTED),
            (NIM_SIGNALING_PEER_OFFLINE, codes::PEER_OFFLINE),
            (NIM_SIGNALING_PUSH_UNREACHABLE, codes::PUSH_UNREACHABLE),
            (NIM_SIGNALING_ROOM_NOT_EXIST, codes::ROOM_NOT_EXIST),
            (NIM_SIGNALING_ROOM_EXISTS, codes::ROOM_EXISTS),
            (NIM_SIGNALING_NOT_IN_ROOM, codes::NOT_IN_ROOM),
            (NIM_SIGNALING_ALREADY_IN_ROOM, codes::ALREADY_IN_ROOM),
            (NIM_SIGNALING_INVITE_NOT_EXIST, codes::INVITE_NOT_EXIST),
            (NIM_SIGNALING_INVITE_REJECTED, codes::INVITE_REJECTED),
            (NIM_SIGNALING_INVITE_ACCEPTED, codes::INVITE_ACCEPTED),
            (NIM_SIGNALING_UID_CONFLICT, codes::UID_CONFLICT),
            (NIM_SIGNALING_ROOM_FULL, codes::ROOM_FULL),
            (
                NIM_SIGNALING_IN_ROOM_ON_OTHER_DEVICE,
                codes::IN_ROOM_ON_OTHER_DEVICE,
            ),
            (NIM_SIGNALING_PEER_BUSY, codes::PEER_BUSY),
        ];
        for (c, n) in pairs {
            assert_eq!(c as i32, n, "{c:?}");
        }
        use super::nim_signaling_event_type::*;
        let events = [
            (NIM_SIGNALING_EVENT_ROOM_CLOSE, EventType::RoomClose),
            (NIM_SIGNALING_EVENT_ROOM_JOIN, EventType::RoomJoin),
            (NIM_SIGNALING_EVENT_INVITE, EventType::Invite),
            (NIM_SIGNALING_EVENT_CANCEL_INVITE, EventType::CancelInvite),
            (NIM_SIGNALING_EVENT_REJECT, EventType::Reject),
            (NIM_SIGNALING_EVENT_ACCEPT, EventType::Accept),
            (NIM_SIGNALING_EVENT_LEAVE, EventType::Leave),
            (NIM_SIGNALING_EVENT_CONTROL, EventType::Control),
            (NIM_SIGNALING_EVENT_INVITE_TIMEOUT, EventType::InviteTimeout),
            (
                NIM_SIGNALING_EVENT_INVITE_DELIVERED,
                EventType::InviteDelivered,
            ),
            (NIM_SIGNALING_EVENT_CHANNEL_UPDATE, EventType::ChannelUpdate),
        ];
        for (c, e) in events {
            assert_eq!(c as i32, e.code() as i32, "{c:?}");
        }
    }
}
