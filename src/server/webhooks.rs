//! Webhooks: what happened to rooms, members and invitations, POSTed as
//! signed JSON to the operator's receivers (see docs/WEBHOOKS.md).

/// Every event name a receiver can get (and `webhooks.events` can pick).
pub const EVENTS: &[&str] = &[
    "room.created",
    "room.closed",
    "room.expired",
    "member.joined",
    "member.left",
    "member.dropped",
    "invitation.sent",
    "invitation.accepted",
    "invitation.rejected",
    "invitation.cancelled",
    "invitation.timedOut",
];
