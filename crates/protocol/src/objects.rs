//! The JSON objects of the seed (channelInfo, member, event, pushInfo) as
//! they appear on the wire and in the C callbacks.

use serde::{Deserialize, Serialize};

/// A room as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelInfo {
    pub channel_id: String,
    pub channel_name: String,
    /// 1 audio, 2 video, 3 other.
    #[serde(rename = "type")]
    pub kind: u8,
    pub ext: String,
    pub create_timestamp: i64,
    pub expire_timestamp: i64,
    pub creator_id: String,
    /// 0 valid, 1 closed or expired (at the time the object was made).
    pub invalid: u8,
}

/// One member of a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub account: String,
    pub uid: u64,
    pub create_timestamp: i64,
    pub expire_timestamp: i64,
}

/// Push parameters of an invitation. `needPush`/`needBadge` also accept 0/1
/// because the seed's own examples send numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct PushInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_content: Option<String>,
    /// JSON text or an object (the Web SDK allows both); passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_payload: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "crate::flex::bool_or_num")]
    pub need_push: bool,
    #[serde(
        default = "default_true",
        deserialize_with = "crate::flex::bool_or_num"
    )]
    pub need_badge: bool,
}

fn default_true() -> bool {
    true
}

/// The seed's event types, numbered as NIM numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventType {
    RoomClose,
    RoomJoin,
    Invite,
    CancelInvite,
    Reject,
    Accept,
    Leave,
    Control,
    /// Ours, beyond NIM's 1-8: an invitation ran out unanswered (sent to
    /// the inviter's and the invitee's devices).
    InviteTimeout,
    /// Ours: an INVITE reached one more device of the invitee (sent to the
    /// inviter's devices, with `deliveredCount`).
    InviteDelivered,
    /// Ours: a member or the creator changed the room's ext (updateChannel).
    ChannelUpdate,
}

impl EventType {
    /// NIM's numeric code (`eventTypeCode`), 1 to 8; 9 and up are our
    /// additions (never a number NIM uses).
    pub fn code(self) -> u8 {
        match self {
            EventType::RoomClose => 1,
            EventType::RoomJoin => 2,
            EventType::Invite => 3,
            EventType::CancelInvite => 4,
            EventType::Reject => 5,
            EventType::Accept => 6,
            EventType::Leave => 7,
            EventType::Control => 8,
            EventType::InviteTimeout => 9,
            EventType::InviteDelivered => 10,
            EventType::ChannelUpdate => 11,
        }
    }
}

/// One signaling event, as `signalingNotify` and friends deliver it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub event_type: EventType,
    pub event_type_code: u8,
    pub channel_info: ChannelInfo,
    pub from_account_id: String,
    pub attach_ext: String,
    pub time: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<Member>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_info: Option<PushInfo>,
    /// INVITE_DELIVERED only: how many devices of the invitee the INVITE
    /// has reached so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_count: Option<u32>,
}

impl Event {
    /// An event with the fields every event has; the optional ones are None.
    pub fn new(
        event_type: EventType,
        channel_info: ChannelInfo,
        from: &str,
        attach_ext: &str,
        time: i64,
    ) -> Event {
        Event {
            event_type,
            event_type_code: event_type.code(),
            channel_info,
            from_account_id: from.to_string(),
            attach_ext: attach_ext.to_string(),
            time,
            member: None,
            to_account: None,
            request_id: None,
            push_info: None,
            delivered_count: None,
        }
    }
}

/// A room with its members: the members sync payload and one entry of the
/// channels sync / signalingSync lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelWithMembers {
    pub channel_info: ChannelInfo,
    pub members: Vec<Member>,
}
