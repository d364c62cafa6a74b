//! The state the server keeps, and how it reads as the seed's objects. The
//! meaning of "valid", "expired" and "forgotten" lives here, once, and both
//! the rules and the store's sweeper ask it.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

use nim_signaling_protocol::{ChannelInfo, ChannelWithMembers, Event, Member, NotifyKind};

/// One room, its members and the invitations made into it. A room is one
/// unit of atomic update: every rule reads and writes exactly one room.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Room {
    pub channel_id: String,
    pub name: String,
    pub kind: u8,
    pub ext: String,
    pub creator: String,
    pub created_at: i64,
    /// Unjoined or emptied room: when it stops being valid. Room with
    /// members: informational (it does not expire while anyone is in it).
    /// Closed room: when the server forgets it.
    pub expire_at: i64,
    pub closed: bool,
    pub members: Vec<RoomMember>,
    pub invites: Vec<Invitation>,
    /// Counts the room's changes (1 when created; delivery receipts alone
    /// keep it: see [`Room::version_after`]). Set by the engine after the
    /// rule, not by the rules, and carried by every webhook, so that a
    /// receiver can order the events of one room even when different nodes
    /// sent them. Rooms stored before it existed read as 0.
    #[serde(default)]
    pub version: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomMember {
    pub account: String,
    /// The device that joined: 10420 for the account's other devices, and the
    /// device whose disconnection drops the member.
    pub device_id: String,
    pub uid: u64,
    pub joined_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum InviteState {
    Pending,
    Accepted,
    Rejected,
    Cancelled,
    /// Unanswered past `expire_at`; both sides were told (INVITE_TIMEOUT).
    Expired,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invitation {
    pub request_id: String,
    pub from: String,
    pub to: String,
    pub state: InviteState,
    pub created_at: i64,
    /// After this the invitation can no longer be answered (10408).
    pub expire_at: i64,
    /// The inviter's device: when it stays away past the member drop grace,
    /// its pending invitations are cancelled.
    #[serde(default)]
    pub device: String,
    /// The invitation was sent with `offlineEnabled`: the events that end it
    /// (timeout, cancel) are kept for an offline invitee too.
    #[serde(default)]
    pub offline: bool,
    /// The invitee's devices that acknowledged the INVITE (inviteDelivered),
    /// at most [`MAX_DELIVERED`]: what the inviter's receipts count.
    #[serde(default)]
    pub delivered: Vec<String>,
}

/// Devices an invitation records as reached. Bounded because every login
/// may be a new deviceId; past it the inviter already knows it rings.
pub const MAX_DELIVERED: usize = 16;

impl Invitation {
    /// Still ringing: unanswered and within its time. What the invitee may
    /// still answer, what a vanished caller's device cancels, and what the
    /// per-account quota counts.
    pub fn is_ringing(&self, now: i64) -> bool {
        self.state == InviteState::Pending && now < self.expire_at
    }

    /// Unanswered and out of time: its INVITE_TIMEOUT is due.
    pub fn is_overdue(&self, now: i64) -> bool {
        self.state == InviteState::Pending && now >= self.expire_at
    }
}

/// A device's push token (registerPushToken), kept until the device
/// replaces or removes it, or its account registers more than
/// [`MAX_PUSH_TOKENS`] (the least recently updated goes then).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PushToken {
    pub device_id: String,
    pub token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    pub updated_at: i64,
}

/// Push tokens one account keeps at most. Bounded because every login
/// may be a new deviceId (apps that make one up per install), and tokens
/// of reinstalled apps are never removed by their old installs.
pub const MAX_PUSH_TOKENS: usize = 32;

/// The device whose token goes when an account holds more than
/// [`MAX_PUSH_TOKENS`]: the least recently updated.
pub fn push_token_to_evict(tokens: &[PushToken]) -> Option<&str> {
    if tokens.len() <= MAX_PUSH_TOKENS {
        return None;
    }
    tokens
        .iter()
        .min_by_key(|t| (t.updated_at, &t.device_id))
        .map(|t| t.device_id.as_str())
}

/// Work the server must do at a later time. Timers are kept by the store
/// (so that in a cluster whichever node is alive runs them, once) and are
/// only hints: each handler re-checks the state it acts on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Timer {
    /// Pending invitations of this room may have run out: expire them and
    /// tell both sides.
    InviteExpiry { channel_id: String },
    /// This device went away: if it is still away after the grace, drop its
    /// memberships and cancel its pending invitations.
    DeviceGone { account: String, device: String },
}

impl Room {
    /// The version of `after`, the room that replaces `before`: one more for
    /// a change, the same for no change or one of delivery receipts alone
    /// (devices reached, which no webhook reports, so that receivers ordering
    /// by version see no gaps). One rule, whoever watches the room.
    pub fn version_after(before: Option<&Room>, after: &Room) -> u64 {
        match before {
            None => 1,
            Some(b) if b.same_but_receipts(after) => b.version,
            Some(b) => b.version + 1,
        }
    }

    /// Equal in everything but the version and the invitations' receipts.
    fn same_but_receipts(&self, other: &Room) -> bool {
        let Room {
            channel_id,
            name,
            kind,
            ext,
            creator,
            created_at,
            expire_at,
            closed,
            members,
            invites,
            version: _,
        } = self;
        let same_invite = |a: &Invitation, b: &Invitation| {
            let Invitation {
                request_id,
                from,
                to,
                state,
                created_at,
                expire_at,
                device,
                offline,
                delivered: _,
            } = a;
            (
                request_id, from, to, state, created_at, expire_at, device, offline,
            ) == (
                &b.request_id,
                &b.from,
                &b.to,
                &b.state,
                &b.created_at,
                &b.expire_at,
                &b.device,
                &b.offline,
            )
        };
        (
            channel_id, name, kind, ext, creator, created_at, expire_at, closed, members,
        ) == (
            &other.channel_id,
            &other.name,
            &other.kind,
            &other.ext,
            &other.creator,
            &other.created_at,
            &other.expire_at,
            &other.closed,
            &other.members,
        ) && invites.len() == other.invites.len()
            && invites
                .iter()
                .zip(&other.invites)
                .all(|(a, b)| same_invite(a, b))
    }

    /// Valid: not closed, and either someone is in it or its TTL has not run out.
    pub fn is_valid(&self, now: i64) -> bool {
        !self.closed && (!self.members.is_empty() || now < self.expire_at)
    }

    /// Whether the sweeper may delete it: invalid, and a closed room only
    /// once its grace period (kept in `expire_at`) has passed.
    pub fn is_forgettable(&self, now: i64) -> bool {
        self.forget_at().is_some_and(|at| now >= at)
    }

    /// From when the room may be deleted, as things stand: a closed room
    /// after its grace, an empty one once its TTL runs out; a room with
    /// members is kept whatever the time (None).
    pub fn forget_at(&self) -> Option<i64> {
        (self.closed || self.members.is_empty()).then_some(self.expire_at)
    }

    /// The accounts a store indexes this room under (to find the rooms an
    /// account is in, the invitations it sent and those it was sent): its
    /// members while it is open, and both sides of every invitation it
    /// keeps (answered ones stay until their expiry, so an account's
    /// invitation history can be listed), and its creator while it is open
    /// (so that the rooms an account created can be counted).
    pub fn involved(&self) -> std::collections::HashSet<&str> {
        let creator = std::iter::once(self.creator.as_str()).filter(|c| !c.is_empty());
        let members = self.accounts().chain(creator).filter(|_| !self.closed);
        let sides = self
            .invites
            .iter()
            .flat_map(|i| [i.from.as_str(), i.to.as_str()]);
        members.chain(sides).collect()
    }

    pub fn channel_info(&self, now: i64) -> ChannelInfo {
        ChannelInfo {
            channel_id: self.channel_id.clone(),
            channel_name: self.name.clone(),
            kind: self.kind,
            ext: self.ext.clone(),
            create_timestamp: self.created_at,
            expire_timestamp: self.expire_at,
            creator_id: self.creator.clone(),
            invalid: if self.is_valid(now) { 0 } else { 1 },
        }
    }

    pub fn member_view(&self, m: &RoomMember) -> Member {
        Member {
            account: m.account.clone(),
            uid: m.uid,
            create_timestamp: m.joined_at,
            expire_timestamp: self.expire_at,
        }
    }

    pub fn members_view(&self) -> Vec<Member> {
        self.members.iter().map(|m| self.member_view(m)).collect()
    }

    pub fn with_members(&self, now: i64) -> ChannelWithMembers {
        ChannelWithMembers {
            channel_info: self.channel_info(now),
            members: self.members_view(),
        }
    }

    pub fn member(&self, account: &str) -> Option<&RoomMember> {
        self.members.iter().find(|m| m.account == account)
    }

    pub fn accounts(&self) -> impl Iterator<Item = &str> {
        self.members.iter().map(|m| m.account.as_str())
    }
}

/// What one log entry carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum LogBody {
    Event(Event),
    Members(ChannelWithMembers),
}

impl LogBody {
    /// The JSON a session sends for this entry (the stores keep it encoded
    /// from the append on).
    pub fn encode(&self) -> Result<String, nim_signaling_protocol::Failure> {
        match self {
            LogBody::Event(e) => serde_json::to_string(e),
            LogBody::Members(m) => serde_json::to_string(m),
        }
        .map_err(|e| {
            nim_signaling_protocol::Failure::new(
                nim_signaling_protocol::codes::INTERNAL,
                e.to_string(),
            )
        })
    }

    pub fn channel_id(&self) -> &str {
        match self {
            LogBody::Event(e) => &e.channel_info.channel_id,
            LogBody::Members(m) => &m.channel_info.channel_id,
        }
    }
}

/// An event to append to an account's log.
#[derive(Debug, Clone)]
pub struct NewEntry {
    pub kind: NotifyKind,
    /// The device that acted; it does not get its own multi-client sync.
    pub exclude_device: Option<String>,
    /// The sender asked for offline storage (`offlineEnabled`).
    pub offline_enabled: bool,
    pub body: LogBody,
}

/// One entry of an account's event log.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub seq: u64,
    pub kind: NotifyKind,
    pub exclude_device: Option<String>,
    /// Kept for offline delivery: offlineEnabled and no device of the
    /// account was online when it was appended.
    pub offline: bool,
    pub time: i64,
    /// The body, kept only for an entry kept for offline delivery (whose
    /// channelInfo is re-rendered at delivery time); every other entry is
    /// only ever sent as `encoded`, and memory per event counts at
    /// thousands of calls a second.
    pub body: Option<LogBody>,
    /// The body encoded once, shared by every session that sends it.
    pub encoded: Arc<str>,
}
