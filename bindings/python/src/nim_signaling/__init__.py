"""nim_signaling: Python binding (ctypes) for the nim-signaling library.

    import nim_signaling as ns
    with ns.Server() as srv, ns.Client({"serverUrl": srv.url, "account": "alice"}) as alice:
        alice.login()
        room = alice.call(type=1, account="bob", requestId="r1")

The shared library is found through $NIM_SIGNALING_LIB (a full path), then
ctypes.util.find_library("nim_signaling"), then common places (next to
this package, target/debug and target/release of the current directory
or its parents, /usr/local/lib, /usr/lib). It is loaded on first use.

Callbacks run on library threads; see the `Client.on` documentation.
"""

from ._errors import Code, EventType, SignalingError, SignalingTimeout
from ._lib import ENV_VAR, LibraryNotFoundError, library_path
from ._client import EVENTS, Client, Server

__version__ = "0.1.0"

__all__ = [
    "Client",
    "Server",
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
]


def version():
    """The version of the loaded C library (nim_signaling_version())."""
    from . import _lib

    return _lib.load().nim_signaling_version().decode("utf-8")
