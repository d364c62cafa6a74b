"""nim_signaling: Python binding (ctypes) for the nim-signaling library.

    import nim_signaling as ns
    with ns.Server() as srv:
        cfg = {"serverUrl": srv.url}
        with ns.Client({**cfg, "account": "alice"}) as alice, \\
             ns.Client({**cfg, "account": "bob"}) as bob:
            alice.login()
            bob.login()                  # bob online: the call rings him
            room = alice.call(type=1, account="bob", requestId="r1")
            print(room["channelInfo"]["channelId"])

The shared library is found through $NIM_SIGNALING_LIB (a full path), then
the copy a wheel bundles inside this package, then
ctypes.util.find_library("nim_signaling"), then common places
(target/debug and target/release of the current directory or its parents,
/usr/local/lib, /usr/lib). It is loaded on first use.

Callbacks of Client run on library threads; see the `Client.on`
documentation. AsyncClient delivers everything on the asyncio loop.
"""

from ._aio import AsyncClient
from ._client import EVENTS, Client, Server
from ._errors import Code, EventType, SignalingError, SignalingTimeout
from ._lib import ENV_VAR, LibraryNotFoundError, library_path
from ._ops import AsyncOp, BlockingOp, Operations
from ._types import (
    AcceptResult,
    AccountCode,
    CallResult,
    ChannelInfo,
    ChannelMembers,
    ChannelResult,
    ChannelsSync,
    Config,
    ConnectionState,
    ConnectionStateEvent,
    Event,
    EventTypeName,
    Invitation,
    InvitationsResult,
    InvitationState,
    InviteManyResult,
    LoginResult,
    Member,
    Notification,
    NotificationName,
    OfflineEvents,
    Params,
    PushInfo,
    Result,
    RoomResult,
    SyncResult,
)

__version__ = "0.1.0"

__all__ = [
    "Client",
    "AsyncClient",
    "Server",
    "Operations",
    "BlockingOp",
    "AsyncOp",
    "SignalingError",
    "SignalingTimeout",
    "LibraryNotFoundError",
    "Code",
    "EventType",
    "EVENTS",
    "ENV_VAR",
    "library_path",
    "version",
    "__version__",
    # types of results, events and parameters
    "AcceptResult",
    "AccountCode",
    "CallResult",
    "ChannelInfo",
    "ChannelMembers",
    "ChannelResult",
    "ChannelsSync",
    "Config",
    "ConnectionState",
    "ConnectionStateEvent",
    "Event",
    "EventTypeName",
    "Invitation",
    "InvitationsResult",
    "InvitationState",
    "InviteManyResult",
    "LoginResult",
    "Member",
    "Notification",
    "NotificationName",
    "OfflineEvents",
    "Params",
    "PushInfo",
    "Result",
    "RoomResult",
    "SyncResult",
]


def version() -> str:
    """The version of the loaded C library (nim_signaling_version())."""
    from . import _lib

    raw: bytes = _lib.load().nim_signaling_version()
    return raw.decode("utf-8")
