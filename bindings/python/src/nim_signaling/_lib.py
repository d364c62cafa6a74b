"""Finding, loading and declaring the nim-signaling shared library (ctypes)."""

import ctypes
import ctypes.util
import os
import sys
import threading
from typing import Iterator, List, Optional, Tuple

ENV_VAR = "NIM_SIGNALING_LIB"

if sys.platform == "darwin":
    _FILE_NAME = "libnim_signaling.dylib"
elif sys.platform == "win32":
    _FILE_NAME = "nim_signaling.dll"
else:
    _FILE_NAME = "libnim_signaling.so"

# void (*)(int32_t code, const char *result_json, void *user_data)
RESULT_CB = ctypes.CFUNCTYPE(None, ctypes.c_int32, ctypes.c_char_p, ctypes.c_void_p)
# void (*)(const char *event_json, void *user_data)
EVENT_CB = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_void_p)

# Request functions: (client, params_json, cb, user_data) -> int32_t.
REQUEST_FUNCTIONS = (
    "create",
    "close",
    "join",
    "leave",
    "invite",
    "invite_many",
    "cancel_invite",
    "accept",
    "reject",
    "control",
    "call",
    "sync",
    "query_channel_info",
    "register_push_token",
    "query_invitations",
    "update_channel",
)

# Notification name (Client.on) -> registration function.
REGISTRATIONS = {
    "online": "nim_signaling_reg_online_notify_cb",
    "multi_client_sync": "nim_signaling_reg_multi_client_sync_notify_cb",
    "members_sync": "nim_signaling_reg_members_sync_cb",
    "offline": "nim_signaling_reg_offline_notify_cb",
    "channels_sync": "nim_signaling_reg_channels_sync_cb",
    "connection_state": "nim_signaling_reg_connection_state_cb",
}


class LibraryNotFoundError(OSError):
    """The shared library could not be found or loaded; `tried` lists what
    was attempted, each with the reason it failed."""

    def __init__(self, tried: List[Tuple[str, str]]) -> None:
        self.tried = list(tried)
        lines = "\n".join("  - %s: %s" % (what, why) for what, why in self.tried)
        super().__init__(
            "cannot load the nim-signaling library (%s). Set %s to its full path "
            "(e.g. target/debug/libnim_signaling.so after `cargo build`). Tried:\n%s"
            % (_FILE_NAME, ENV_VAR, lines)
        )


def bundled_path() -> str:
    """Where a wheel puts the library: inside the package, next to this file."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), _FILE_NAME)


def _candidates() -> Iterator[Tuple[str, Optional[str]]]:
    """(description, path) pairs, in the order they are tried."""
    env = os.environ.get(ENV_VAR)
    if env:
        # An explicit choice: nothing else is tried when it fails.
        yield ("$%s" % ENV_VAR, env)
        return
    bundled = bundled_path()
    yield ("bundled with the package", bundled)
    found = ctypes.util.find_library("nim_signaling")
    yield ('ctypes.util.find_library("nim_signaling")', found)
    dirs: List[str] = []
    # A checkout: the current directory or any parent holding target/.
    cwd = os.getcwd()
    d = cwd
    while True:
        for profile in ("debug", "release"):
            dirs.append(os.path.join(d, "target", profile))
        parent = os.path.dirname(d)
        if parent == d:
            break
        d = parent
    dirs += ["/usr/local/lib", "/usr/lib", "/usr/lib64"]
    seen = {bundled}
    for d in dirs:
        p = os.path.join(d, _FILE_NAME)
        if p not in seen:
            seen.add(p)
            yield (p, p)


def _declare(lib: ctypes.CDLL) -> None:
    c_int32, c_char_p, c_void_p = ctypes.c_int32, ctypes.c_char_p, ctypes.c_void_p
    out_ptr = ctypes.POINTER(c_void_p)

    def fn(name: str, restype: object, *argtypes: object) -> None:
        f = getattr(lib, name)
        f.restype = restype
        f.argtypes = list(argtypes)

    fn("nim_signaling_version", c_char_p)
    fn("nim_signaling_server_start", c_int32, c_char_p, out_ptr)
    fn("nim_signaling_server_url", c_char_p, c_void_p)
    fn("nim_signaling_server_stop", None, c_void_p)
    fn("nim_signaling_client_new", c_int32, c_char_p, out_ptr)
    fn("nim_signaling_client_free", None, c_void_p)
    fn("nim_signaling_login", c_int32, c_void_p, RESULT_CB, c_void_p)
    fn("nim_signaling_logout", c_int32, c_void_p, RESULT_CB, c_void_p)
    for op in REQUEST_FUNCTIONS:
        fn("nim_signaling_" + op, c_int32, c_void_p, c_char_p, RESULT_CB, c_void_p)
    for reg in REGISTRATIONS.values():
        fn(reg, c_int32, c_void_p, EVENT_CB, c_void_p)
    global _has_last_error
    # Newer libraries tell why a call was refused at once; older ones have
    # only the code (the binding then says what the code generally means).
    try:
        fn("nim_signaling_last_error", c_char_p)
        _has_last_error = True
    except AttributeError:
        _has_last_error = False


_lock = threading.Lock()
_lib: Optional[ctypes.CDLL] = None
_path: Optional[str] = None
_has_last_error = False


def last_error(lib: ctypes.CDLL) -> Optional[str]:
    """Why the last call on this thread was refused at once
    (`nim_signaling_last_error`), or None when the library does not say.
    Call it right after the refused call, before any other call into it."""
    if not _has_last_error:
        return None
    raw = lib.nim_signaling_last_error()
    return raw.decode("utf-8", "replace") if raw else None


def load() -> ctypes.CDLL:
    """The loaded library (loaded and declared once, on first use)."""
    global _lib, _path
    with _lock:
        if _lib is not None:
            return _lib
        tried: List[Tuple[str, str]] = []
        for what, path in _candidates():
            if path is None:
                tried.append((what, "not found"))
                continue
            if os.path.isabs(path) and not os.path.exists(path):
                tried.append((what if what == path else "%s = %s" % (what, path), "no such file"))
                continue
            try:
                lib = ctypes.CDLL(path)
                _declare(lib)
            except (OSError, AttributeError) as e:
                tried.append((what if what == path else "%s = %s" % (what, path), str(e)))
                continue
            _lib, _path = lib, path
            return lib
        raise LibraryNotFoundError(tried)


def library_path() -> str:
    """The path the library was loaded from (loading it if needed)."""
    load()
    assert _path is not None
    return _path
