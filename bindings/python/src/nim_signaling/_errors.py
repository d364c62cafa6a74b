"""Codes and the exceptions of the binding."""

import enum
from typing import Any, Dict, Optional


class Code(enum.IntEnum):
    """Result codes (NIM's numbering), as in include/nim_signaling.h."""

    OK = 200
    AUTH_FAILED = 302
    FORBIDDEN = 403
    TIMEOUT = 408
    INVALID_PARAM = 414
    NOT_CONNECTED = 415
    RATE_LIMITED = 416
    INTERNAL = 500
    UNSUPPORTED = 501  # not in NIM: this build lacks the feature (client-only library)
    PEER_OFFLINE = 10201
    PUSH_UNREACHABLE = 10202
    ROOM_NOT_EXIST = 10404
    ROOM_EXISTS = 10405
    NOT_IN_ROOM = 10406
    ALREADY_IN_ROOM = 10407
    INVITE_NOT_EXIST = 10408
    INVITE_REJECTED = 10409
    INVITE_ACCEPTED = 10410
    UID_CONFLICT = 10417
    ROOM_FULL = 10419
    IN_ROOM_ON_OTHER_DEVICE = 10420
    PEER_BUSY = 10430  # not in NIM: busyCheck found the invitee in a call or ringing


class EventType(enum.IntEnum):
    """`eventTypeCode` of events (1-8 as NIM numbers them, 9 and up additions)."""

    ROOM_CLOSE = 1
    ROOM_JOIN = 2
    INVITE = 3
    CANCEL_INVITE = 4
    REJECT = 5
    ACCEPT = 6
    LEAVE = 7
    CONTROL = 8
    INVITE_TIMEOUT = 9
    INVITE_DELIVERED = 10
    CHANNEL_UPDATE = 11


# What an immediate (non-200) return of a request function means: nothing
# was sent and no callback will come.
IMMEDIATE_MESSAGES: Dict[int, str] = {
    414: "invalid parameter (NULL, malformed JSON, a wrong type or a missing field); nothing was sent",
    415: "not logged in; nothing was sent",
    416: "too many requests outstanding; nothing was sent",
}


class SignalingError(Exception):
    """A request ended with a code other than 200.

    `code` is the NIM code (an int; `Code(code)` names the known ones),
    `message` the library's message, `data` the parsed JSON object the
    library handed to the callback (the seed's `error` object, which for
    e.g. a call answered 10201 also keeps `channelInfo` and `members`), or
    None when the request was refused before anything was sent (414, 415,
    416 returned by the C function itself; `message` then says why, e.g.
    "params_json: missing field `requestId`", when the library tells).
    `op` names the operation.
    """

    code: int
    message: str
    data: Optional[Dict[str, Any]]
    op: Optional[str]

    def __init__(
        self, code: int, message: Optional[str] = None, data: Optional[Dict[str, Any]] = None, op: Optional[str] = None
    ) -> None:
        self.code = int(code)
        self.message = message or ""
        self.data = data
        self.op = op
        super().__init__(self.code, self.message, data)

    def __str__(self) -> str:
        try:
            name = Code(self.code).name
        except ValueError:
            name = "code"
        where = " (%s)" % self.op if self.op else ""
        return "%s %d%s: %s" % (name, self.code, where, self.message)


class SignalingTimeout(SignalingError, TimeoutError):
    """No result arrived within the binding's wait (code 408). The library
    still calls back later; that late result is dropped."""
