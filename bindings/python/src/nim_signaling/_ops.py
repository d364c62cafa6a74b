"""The request operations, written once for Client and AsyncClient.

Each operation is an `_Op` descriptor naming the C function and the type of
its result. Read from a Client it is a blocking method returning that
result; read from an AsyncClient, a method returning a coroutine of it.
Both forward to the instance's `request(op, params, timeout=..., **kwargs)`.
"""

from typing import TYPE_CHECKING, Any, Coroutine, Generic, Optional, Protocol, TypeVar, overload

from ._types import (
    AcceptResult,
    CallResult,
    ChannelResult,
    InvitationsResult,
    InviteManyResult,
    Params,
    Result,
    RoomResult,
    SyncResult,
)

if TYPE_CHECKING:
    from ._aio import AsyncClient
    from ._client import Client

R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

_PARAMS_DOC = (
    "\n\nParams as a dict and/or keyword arguments with the C ABI's camelCase keys "
    "(a JSON string is sent as it is); `timeout` in seconds bounds the wait. "
    "Returns the result dict; raises SignalingError for any other code than 200."
)


class BlockingOp(Protocol[R_co]):
    """A request operation of Client: blocks until its result."""

    def __call__(self, params: Params = None, /, *, timeout: Optional[float] = None, **kwargs: Any) -> R_co: ...


class AsyncOp(Protocol[R_co]):
    """A request operation of AsyncClient: a coroutine of its result."""

    def __call__(
        self, params: Params = None, /, *, timeout: Optional[float] = None, **kwargs: Any
    ) -> Coroutine[Any, Any, R_co]: ...


class _Op(Generic[R]):
    def __init__(self, op: str, doc: str) -> None:
        self.op = op
        self.name = op
        self.__doc__ = doc + _PARAMS_DOC

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:  # what help() shows before the doc
        return "<request %s(params=None, /, *, timeout=None, **kwargs): nim_signaling_%s>" % (self.name, self.op)

    @overload
    def __get__(self, obj: None, owner: Optional[type] = None) -> "_Op[R]": ...

    @overload
    def __get__(self, obj: "Client", owner: Optional[type] = None) -> BlockingOp[R]: ...

    @overload
    def __get__(self, obj: "AsyncClient", owner: Optional[type] = None) -> AsyncOp[R]: ...

    def __get__(self, obj: Any, owner: Optional[type] = None) -> Any:
        if obj is None:
            return self
        op = self.op
        request = obj.request

        def method(params: Params = None, /, *, timeout: Optional[float] = None, **kwargs: Any) -> Any:
            return request(op, params, timeout=timeout, **kwargs)

        method.__name__ = method.__qualname__ = self.name
        method.__doc__ = self.__doc__
        return method


class Operations:
    """The request methods (signalingCreate ... and the additions to NIM)."""

    create: "_Op[ChannelResult]" = _Op("create", "signalingCreate: type, channelName?, ext? -> {channelInfo}.")
    close_channel: "_Op[Result]" = _Op(
        "close", "signalingClose: channelId, offlineEnabled?, ext?. (`close` frees the client itself.)"
    )
    join: "_Op[RoomResult]" = _Op(
        "join", "signalingJoin: channelId, uid?, offlineEnabled?, attachExt? -> {channelInfo, members}."
    )
    leave: "_Op[Result]" = _Op("leave", "signalingLeave: channelId, offlineEnabled?, attachExt?.")
    invite: "_Op[Result]" = _Op(
        "invite",
        "signalingInvite: channelId, account, requestId, offlineEnabled?, attachExt?, pushInfo?, busyCheck?, "
        "timeoutMs?.",
    )
    invite_many: "_Op[InviteManyResult]" = _Op(
        "invite_many",
        "Not in NIM: channelId, accounts (1-100), requestId, offlineEnabled?, attachExt?, pushInfo?, "
        "busyCheck?, timeoutMs? -> {results: [{account, code}, ...]}, one per account in order.",
    )
    cancel_invite: "_Op[Result]" = _Op(
        "cancel_invite",
        "signalingCancel: channelId, account (invitee), requestId, offlineEnabled?, attachExt?.",
    )
    accept: "_Op[AcceptResult]" = _Op(
        "accept",
        "signalingAccept: channelId, account (inviter), requestId, offlineEnabled?, attachExt?, autoJoin?, "
        "uid?, joinAttachExt? -> {channelInfo, members} with autoJoin.",
    )
    reject: "_Op[Result]" = _Op(
        "reject", "signalingReject: channelId, account (inviter), requestId, offlineEnabled?, attachExt?."
    )
    control: "_Op[Result]" = _Op("control", "signalingControl: channelId, account?, attachExt?.")
    call: "_Op[CallResult]" = _Op(
        "call",
        "signalingCall: type, channelName?, ext?, uid?, account, requestId, offlineEnabled?, attachExt?, "
        "pushInfo?, busyCheck?, timeoutMs? -> {channelInfo, members} (and glare: true when it answered the "
        "peer's ringing invitation instead).",
    )
    sync: "_Op[SyncResult]" = _Op("sync", "signalingSync: {} -> {eventList, channels}.")
    query_channel_info: "_Op[RoomResult]" = _Op(
        "query_channel_info", "Room query: channelId or channelName -> {channelInfo, members}."
    )
    register_push_token: "_Op[Result]" = _Op(
        "register_push_token",
        "This device's push token for the server's push gateway: token (empty removes it), provider?.",
    )
    query_invitations: "_Op[InvitationsResult]" = _Op(
        "query_invitations",
        "This account's invitations (an addition to NIM): {} -> {sent, received}, each item "
        "{channelId, account, requestId, state, createTimestamp, expireTimestamp}.",
    )
    update_channel: "_Op[ChannelResult]" = _Op(
        "update_channel",
        "Changes the room's ext (an addition to NIM): channelId, ext, offlineEnabled? -> {channelInfo}; "
        "the others get CHANNEL_UPDATE.",
    )
