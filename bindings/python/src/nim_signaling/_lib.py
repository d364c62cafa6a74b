"""Finding, loading and declaring the nim-signaling shared library (ctypes)."""

import ctypes
import ctypes.util
import os
import sys
import threading

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

    def __init__(self, tried):
        self.tried = list(tried)
        lines = "\n".join("  - %s: %s" % (what, why) for what, why in self.tried)
        super().__init__(
            "cannot load the nim-signaling library (%s). Set %s to its full path "
            "(e.g. target/debug/libnim_signaling.so after `cargo build`). Tried:\n%s"
            % (_FILE_NAME, ENV_VAR, lines)
        )


def _candidates():
    """(description, path) pairs, in the order they are tried."""
    env = os.environ.get(ENV_VAR)
    if env:
        # An explicit choice: nothing else is tried when it fails.
        yield ("$%s" % ENV_VAR, env)
        return
    found = ctypes.util.find_library("nim_signaling")
    if found:
        yield ('ctypes.util.find_library("nim_signaling")', found)
    else:
        yield ('ctypes.util.find_library("nim_signaling")', None)
    here = os.path.dirname(os.path.abspath(__file__))
    dirs = [here]  # a library copied next to the package
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
    seen = set()
    for d in dirs:
        p = os.path.join(d, _FILE_NAME)
        if p not in seen:
            seen.add(p)
            yield (p, p)


def _declare(lib):
    c_int32, c_char_p, c_void_p = ctypes.c_int32, ctypes.c_char_p, ctypes.c_void_p
    out_ptr = ctypes.POINTER(c_void_p)

    def fn(name, restype, *argtypes):
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


_lock = threading.Lock()
_lib = None
_path = None


def load():
    """The loaded library (loaded and declared once, on first use)."""
    global _lib, _path
    with _lock:
        if _lib is not None:
            return _lib
        tried = []
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


def library_path():
    """The path the library was loaded from (loading it if needed)."""
    load()
    return _path
