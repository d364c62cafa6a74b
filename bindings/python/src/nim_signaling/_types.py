"""The shapes of what the library hands back, for type checkers.

These are plain dicts at run time (the parsed JSON); the TypedDicts name
their keys and value types as include/nim_signaling.h and docs/PROTOCOL.md
describe them. Keys a newer library adds are still there at run time.
"""

from typing import Any, Dict, List, Literal, Mapping, NamedTuple, TypedDict, Union

#: What a request takes: a dict of camelCase keys (merged with the keyword
#: arguments), a JSON string or bytes sent as they are, or None.
Params = Union[Mapping[str, Any], str, bytes, None]

#: A client's or server's config: a dict, or a JSON string.
Config = Union[Mapping[str, Any], str]

#: `Client.on` / `AsyncClient.events` notification names.
NotificationName = Literal[
    "online", "multi_client_sync", "members_sync", "offline", "channels_sync", "connection_state"
]

#: `eventType` of an event (`eventTypeCode` 1 to 11, see EventType).
EventTypeName = Literal[
    "ROOM_CLOSE",
    "ROOM_JOIN",
    "INVITE",
    "CANCEL_INVITE",
    "REJECT",
    "ACCEPT",
    "LEAVE",
    "CONTROL",
    "INVITE_TIMEOUT",
    "INVITE_DELIVERED",
    "CHANNEL_UPDATE",
]

#: `state` of the connection_state notification.
ConnectionState = Literal["connecting", "connected", "reconnecting", "disconnected", "kicked"]

#: `state` of an invitation in query_invitations.
InvitationState = Literal["pending", "accepted", "rejected", "cancelled", "expired"]


class ChannelInfo(TypedDict):
    """A room. `type` 1 audio, 2 video, 3 other; `invalid` 1 once closed
    or expired (when the object was made)."""

    channelId: str
    channelName: str
    type: int
    ext: str
    createTimestamp: int
    expireTimestamp: int
    creatorId: str
    invalid: int


class Member(TypedDict):
    account: str
    uid: int
    createTimestamp: int
    expireTimestamp: int


class PushInfo(TypedDict, total=False):
    pushTitle: str
    pushContent: str
    pushPayload: Any
    needPush: bool
    needBadge: bool


class _EventKeys(TypedDict):
    eventType: EventTypeName
    eventTypeCode: int
    channelInfo: ChannelInfo
    fromAccountId: str
    attachExt: str
    time: int


class Event(_EventKeys, total=False):
    """One signaling event (the `online` and `multi_client_sync`
    notifications, the items of `eventList`). `requestId` and `toAccount`
    come with the invitation events, `member` with ROOM_JOIN and LEAVE,
    `deliveredCount` with INVITE_DELIVERED."""

    member: Member
    toAccount: str
    requestId: str
    pushInfo: PushInfo
    deliveredCount: int


class ChannelMembers(TypedDict):
    """A room with its members: the `members_sync` notification, one item
    of `channels`."""

    channelInfo: ChannelInfo
    members: List[Member]


class OfflineEvents(TypedDict):
    """The `offline` notification: what was kept while this device was away."""

    eventList: List[Event]


class ChannelsSync(TypedDict):
    """The `channels_sync` notification: the rooms the account is in."""

    channels: List[ChannelMembers]


class _StateKeys(TypedDict):
    state: ConnectionState
    code: int


class ConnectionStateEvent(_StateKeys, total=False):
    """The `connection_state` notification. `resync` ("trimmed" or
    "stateLost") on a `connected` whose events may have a gap."""

    resync: Literal["trimmed", "stateLost"]


class Notification(NamedTuple):
    """One notification as `AsyncClient.events()` yields it: `kind` says
    which (and so the shape of `data`: an Event for "online" and
    "multi_client_sync", OfflineEvents, ChannelsSync, ChannelMembers for
    "members_sync", ConnectionStateEvent)."""

    kind: NotificationName
    data: Dict[str, Any]


# --- results ---------------------------------------------------------------


class Result(TypedDict):
    """Every result has its code (200 for a result; errors raise)."""

    code: int


class LoginResult(Result):
    account: str


class ChannelResult(Result):
    """create, update_channel."""

    channelInfo: ChannelInfo


class RoomResult(ChannelResult):
    """join, query_channel_info, accept with autoJoin."""

    members: List[Member]


class CallResult(RoomResult, total=False):
    """call; `glare` true when it answered the peer's own ringing invitation."""

    glare: bool


class AcceptResult(Result, total=False):
    """accept: the room and its members with autoJoin."""

    channelInfo: ChannelInfo
    members: List[Member]


class AccountCode(TypedDict):
    account: str
    code: int


class InviteManyResult(Result):
    """invite_many: one code per account, in the order given."""

    results: List[AccountCode]


class SyncResult(Result):
    eventList: List[Event]
    channels: List[ChannelMembers]


class Invitation(TypedDict):
    channelId: str
    account: str
    requestId: str
    state: InvitationState
    createTimestamp: int
    expireTimestamp: int


class InvitationsResult(Result):
    """query_invitations; `account` of an item is the other side."""

    sent: List[Invitation]
    received: List[Invitation]
