"""Client and Server over the C ABI.

Threading: every callback of the library (request results and
notifications) runs on a library thread, never on the thread that made the
call. The library has a small pool of such threads shared by all clients;
the callbacks of one client run one at a time, in order. Therefore:

- handlers registered with `Client.on` run on a library thread; they
  should return quickly and must not block on another result. The blocking
  request methods raise RuntimeError when called from inside a handler
  (that would deadlock the pool); use `Client.submit` (a Future) there.
- an exception raised by a handler is logged (logger "nim_signaling") and
  swallowed: it never reaches C.
- every ctypes callback object is owned by the client's internal state,
  which stays referenced until `nim_signaling_client_free` has returned.
"""

import asyncio
import atexit
import ctypes
import itertools
import json
import logging
import threading
from collections.abc import Mapping
from concurrent.futures import Future, InvalidStateError
from concurrent.futures import TimeoutError as _FutureTimeout

from . import _lib
from ._errors import IMMEDIATE_MESSAGES, SignalingError, SignalingTimeout

log = logging.getLogger("nim_signaling")

EVENTS = tuple(_lib.REGISTRATIONS)

# Margin on top of the client's requestTimeoutMs: the library answers 408
# itself at requestTimeoutMs, so the binding's own wait only ends a wait
# for a callback that never comes.
_WAIT_MARGIN_S = 5.0

_tls = threading.local()


def _in_callback():
    return getattr(_tls, "depth", 0) > 0


class _CallbackScope:
    def __enter__(self):
        _tls.depth = getattr(_tls, "depth", 0) + 1

    def __exit__(self, *exc):
        _tls.depth -= 1
        return False


def _parse(raw):
    if raw is None:
        return None
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return {"raw": text}


def _encode(params, kwargs):
    """The JSON bytes for a request: a dict (merged with kwargs), or a str /
    bytes sent as they are (to test the library's own validation)."""
    if isinstance(params, (str, bytes)):
        if kwargs:
            raise TypeError("raw JSON params cannot be combined with keyword arguments")
        return params.encode("utf-8") if isinstance(params, str) else params
    if params is None:
        merged = {}
    elif isinstance(params, Mapping):
        merged = dict(params)
    else:
        raise TypeError("params must be a dict, a JSON string or None, not %s" % type(params).__name__)
    merged.update(kwargs)
    return json.dumps(merged, ensure_ascii=False).encode("utf-8")


# Cores whose C handle is live: they (and their ctypes callbacks) stay
# referenced until client_free has returned, whatever happens to the
# Client object. Closed at interpreter exit if still open.
_live_cores = set()
_live_servers = set()
_live_lock = threading.Lock()


@atexit.register
def _close_everything():
    with _live_lock:
        cores, servers = list(_live_cores), list(_live_servers)
    for c in cores:
        try:
            c.close()
        except Exception:  # pragma: no cover - best effort at exit
            log.exception("closing a client at exit")
    for s in servers:
        try:
            s.stop()
        except Exception:  # pragma: no cover
            log.exception("stopping a server at exit")


class _Core:
    """Everything the C callbacks touch. Holds no reference to the Client,
    so that dropping a Client runs its __del__ (which frees the handle)."""

    def __init__(self, lib, handle, account):
        self.lib = lib
        self.handle = handle
        self.account = account
        self.cond = threading.Condition()
        self.calls = 0  # C calls using the handle right now
        self.closing = False
        self.closed = False
        self.pending = {}  # request id -> (op, Future)
        self.ids = itertools.count(1)
        self.handlers = {name: [] for name in EVENTS}
        # ctypes callback objects: must outlive client_free.
        self.result_cb = _lib.RESULT_CB(self._on_result)
        self.event_cbs = {name: _lib.EVENT_CB(self._event_trampoline(name)) for name in EVENTS}

    # --- callbacks (library threads) -------------------------------------

    def _on_result(self, code, raw, user_data):
        try:
            with _CallbackScope():
                with self.cond:
                    entry = self.pending.pop(user_data or 0, None)
                if entry is None:
                    log.debug("late or unknown result %s for request %s", code, user_data)
                    return
                op, fut = entry
                data = _parse(raw)
                try:
                    if code == 200:
                        fut.set_result(data)
                    else:
                        msg = data.get("message") if isinstance(data, dict) else None
                        fut.set_exception(SignalingError(code, msg, data, op=op))
                except InvalidStateError:
                    pass  # cancelled by the caller
        except BaseException:  # never let anything reach C
            log.exception("nim_signaling: error in the result callback")

    def _event_trampoline(self, name):
        def trampoline(raw, user_data):
            try:
                with _CallbackScope():
                    with self.cond:
                        handlers = list(self.handlers[name])
                    if not handlers:
                        return
                    event = _parse(raw)
                    for h in handlers:
                        try:
                            h(event)
                        except Exception:
                            log.exception("nim_signaling: %s handler %r raised", name, h)
            except BaseException:
                log.exception("nim_signaling: error in the %s callback", name)

        return trampoline

    # --- calls ------------------------------------------------------------

    def start(self, op, call):
        """Starts a request: `call(handle, cb, user_data)` -> code. Returns a
        Future completed on a library thread (result dict, or SignalingError)."""
        fut = Future()
        fut.set_running_or_notify_cancel()
        with self.cond:
            if self.closing:
                fut.set_exception(SignalingError(415, "the client is closed; nothing was sent", None, op=op))
                return fut
            rid = next(self.ids)
            self.pending[rid] = (op, fut)
            self.calls += 1
        try:
            rc = call(self.handle, self.result_cb, ctypes.c_void_p(rid))
        finally:
            with self.cond:
                self.calls -= 1
                if self.calls == 0:
                    self.cond.notify_all()
        if rc != 200:
            with self.cond:
                self.pending.pop(rid, None)
            msg = IMMEDIATE_MESSAGES.get(rc, "refused; nothing was sent")
            fut.set_exception(SignalingError(rc, msg, None, op=op))
        return fut

    def close(self):
        with self.cond:
            if self.closing:
                if not _in_callback():
                    while not self.closed:
                        self.cond.wait()
                return
            self.closing = True
            while self.calls:
                self.cond.wait()
            handle = self.handle
        try:
            # Pending requests complete (415) and queued callbacks run
            # before this returns; afterwards no callback of it runs.
            self.lib.nim_signaling_client_free(handle)
        finally:
            with self.cond:
                self.handle = None
                self.closed = True
                leftovers = list(self.pending.values())
                self.pending.clear()
                self.cond.notify_all()
            for op, fut in leftovers:
                try:
                    fut.set_exception(SignalingError(415, "the client was closed", None, op=op))
                except InvalidStateError:
                    pass
            with _live_lock:
                _live_cores.discard(self)


def _request_method(op, doc):
    def method(self, params=None, /, *, timeout=None, **kwargs):
        return self.request(op, params, timeout=timeout, **kwargs)

    method.__name__ = op if op != "close" else "close_channel"
    method.__doc__ = doc + "\n\nParams as a dict and/or keyword arguments (camelCase keys); returns the result dict, raises SignalingError."
    return method


class Client:
    """One account on one device (`nim_signaling_client_new`).

    `config`: `serverUrl` (required), `account` (required), `token`,
    `deviceId`, `serverUrls`, `requestTimeoutMs`, `reconnect`, ... as in
    the C header. `timeout` (seconds) bounds every blocking wait; by
    default requestTimeoutMs + 5 s.

    Use as a context manager, or call `close()` (which frees the C client;
    the room operation signalingClose is `close_channel`).
    """

    def __init__(self, config, *, timeout=None):
        if isinstance(config, Mapping):
            cfg_json = json.dumps(dict(config), ensure_ascii=False)
            req_ms = config.get("requestTimeoutMs", 10000)
            account = config.get("account")
        elif isinstance(config, str):
            cfg_json, req_ms, account = config, 10000, None
        else:
            raise TypeError("config must be a dict or a JSON string")
        lib = _lib.load()
        out = ctypes.c_void_p()
        rc = lib.nim_signaling_client_new(cfg_json.encode("utf-8"), ctypes.byref(out))
        if rc != 200 or not out.value:
            raise SignalingError(rc, "nim_signaling_client_new refused the config", None, op="client_new")
        core = _Core(lib, out.value, account)
        with _live_lock:
            _live_cores.add(core)
        self._core = core
        try:
            req_s = float(req_ms) / 1000.0
        except (TypeError, ValueError):
            req_s = 10.0
        self.timeout = timeout if timeout is not None else req_s + _WAIT_MARGIN_S
        for name, reg in _lib.REGISTRATIONS.items():
            rc = getattr(lib, reg)(core.handle, core.event_cbs[name], None)
            if rc != 200:  # pragma: no cover - only for a NULL client
                self.close()
                raise SignalingError(rc, "registering the %s callback failed" % name, None)

    # --- lifecycle --------------------------------------------------------

    @property
    def account(self):
        return self._core.account

    @property
    def closed(self):
        return self._core.closing

    def close(self, *args, **kwargs):
        """Logs out if needed, disconnects and frees the client
        (`nim_signaling_client_free`). Idempotent. Pending requests end with
        415. To close a *room* use `close_channel(channelId=...)`."""
        if args or kwargs:
            raise TypeError(
                "Client.close() frees the client and takes no arguments; "
                "to close a room (signalingClose) use close_channel(channelId=...)"
            )
        self._core.close()

    free = close

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        core = getattr(self, "_core", None)
        if core is not None and not core.closing:
            try:
                core.close()
            except Exception:  # pragma: no cover
                pass

    # --- notifications ----------------------------------------------------

    def on(self, event, handler):
        """Adds `handler(dict)` for one notification: "online" (one event),
        "multi_client_sync", "members_sync", "offline" ({"eventList"}),
        "channels_sync" ({"channels"}), "connection_state" ({"state","code"}).
        It runs on a library thread (see the module doc). Returns handler,
        so this works as a decorator factory's target."""
        if event not in self._core.handlers:
            raise ValueError("unknown notification %r; one of %s" % (event, ", ".join(EVENTS)))
        if not callable(handler):
            raise TypeError("handler must be callable")
        with self._core.cond:
            self._core.handlers[event].append(handler)
        return handler

    def off(self, event, handler=None):
        """Removes one handler, or every handler of `event` when None."""
        if event not in self._core.handlers:
            raise ValueError("unknown notification %r" % (event,))
        with self._core.cond:
            hs = self._core.handlers[event]
            if handler is None:
                hs.clear()
            elif handler in hs:
                hs.remove(handler)

    # --- requests ---------------------------------------------------------

    def submit(self, op, params=None, /, **kwargs):
        """Starts `op` ("login", "logout", or a request name such as "join",
        "close", "call") without waiting: returns a
        concurrent.futures.Future whose result is the result dict or whose
        exception is a SignalingError. Safe inside handlers."""
        lib = self._core.lib
        if op in ("login", "logout"):
            if params is not None or kwargs:
                raise TypeError("%s takes no parameters" % op)
            fn = getattr(lib, "nim_signaling_" + op)
            return self._core.start(op, lambda h, cb, ud: fn(h, cb, ud))
        if op == "close_channel":
            op = "close"
        if op not in _lib.REQUEST_FUNCTIONS:
            raise ValueError("unknown operation %r" % (op,))
        payload = _encode(params, kwargs)
        fn = getattr(lib, "nim_signaling_" + op)
        return self._core.start(op, lambda h, cb, ud: fn(h, payload, cb, ud))

    def request(self, op, params=None, /, *, timeout=None, **kwargs):
        """Runs `op` and waits for its result (see submit)."""
        if _in_callback():
            raise RuntimeError(
                "blocking nim_signaling call from inside a library callback would deadlock "
                "the callback threads; use client.submit(...) there"
            )
        fut = self.submit(op, params, **kwargs)
        wait = self.timeout if timeout is None else timeout
        try:
            return fut.result(wait)
        except _FutureTimeout:
            raise SignalingTimeout(408, "no result within %.1f s" % wait, None, op=op) from None

    async def arequest(self, op, params=None, /, **kwargs):
        """asyncio variant of request: `await client.arequest("join", channelId=...)`."""
        return await asyncio.wrap_future(self.submit(op, params, **kwargs))

    def login(self, *, timeout=None):
        """Connects and logs in; returns {"code":200,"account",...}. 302 for a refused token."""
        return self.request("login", timeout=timeout)

    def logout(self, *, timeout=None):
        """Logs out and disconnects (no reconnect)."""
        return self.request("logout", timeout=timeout)

    create = _request_method("create", "signalingCreate: type, channelName?, ext? -> {channelInfo}.")
    close_channel = _request_method("close", "signalingClose: channelId, offlineEnabled?, ext?.")
    join = _request_method("join", "signalingJoin: channelId, uid?, offlineEnabled?, attachExt? -> {channelInfo, members}.")
    leave = _request_method("leave", "signalingLeave: channelId, offlineEnabled?, attachExt?.")
    invite = _request_method(
        "invite", "signalingInvite: channelId, account, requestId, offlineEnabled?, attachExt?, pushInfo?."
    )
    invite_many = _request_method(
        "invite_many",
        "Not in NIM: channelId, accounts (1-100), requestId, offlineEnabled?, attachExt?, pushInfo?, busyCheck? "
        "-> {results: [{account, code}, ...]}, one per account in order.",
    )
    cancel_invite = _request_method(
        "cancel_invite", "signalingCancel: channelId, account (invitee), requestId, offlineEnabled?, attachExt?."
    )
    accept = _request_method(
        "accept",
        "signalingAccept: channelId, account (inviter), requestId, offlineEnabled?, attachExt?, autoJoin?, uid?, "
        "joinAttachExt? -> {channelInfo, members} with autoJoin.",
    )
    reject = _request_method(
        "reject", "signalingReject: channelId, account (inviter), requestId, offlineEnabled?, attachExt?."
    )
    control = _request_method("control", "signalingControl: channelId, account?, attachExt?.")
    call = _request_method(
        "call",
        "signalingCall: type, channelName?, ext?, uid?, account, requestId, offlineEnabled?, attachExt?, "
        "pushInfo? -> {channelInfo, members}.",
    )
    sync = _request_method("sync", "signalingSync: {} -> {eventList, channels}.")
    query_channel_info = _request_method(
        "query_channel_info", "Room query: channelId or channelName -> {channelInfo, members}."
    )
    register_push_token = _request_method(
        "register_push_token",
        "This device's push token for the server's push gateway: token (empty removes it), provider?.",
    )
    query_invitations = _request_method(
        "query_invitations",
        "This account's invitations (an addition to NIM): {} -> {sent, received}, each item "
        "{channelId, account, requestId, state, createTimestamp, expireTimestamp}.",
    )
    update_channel = _request_method(
        "update_channel",
        "Changes the room's ext (an addition to NIM): channelId, ext, offlineEnabled? -> {channelInfo}; "
        "the others get CHANNEL_UPDATE.",
    )


class Server:
    """A signaling server embedded in this process
    (`nim_signaling_server_start`). `config` as in docs/CONFIG.md, e.g.
    {"auth": {"mode": "static", "accounts": {"alice": "t"}}}; None or {}
    for defaults (127.0.0.1, a free port, no authentication)."""

    def __init__(self, config=None):
        if config is None:
            cfg_json = "{}"
        elif isinstance(config, Mapping):
            cfg_json = json.dumps(dict(config), ensure_ascii=False)
        elif isinstance(config, str):
            cfg_json = config
        else:
            raise TypeError("config must be a dict, a JSON string or None")
        self._lib = _lib.load()
        self._lock = threading.Lock()
        out = ctypes.c_void_p()
        rc = self._lib.nim_signaling_server_start(cfg_json.encode("utf-8"), ctypes.byref(out))
        if rc != 200 or not out.value:
            raise SignalingError(rc, "nim_signaling_server_start failed", None, op="server_start")
        self._handle = out.value
        self._url = self._lib.nim_signaling_server_url(self._handle).decode("utf-8")
        with _live_lock:
            _live_servers.add(self)

    @property
    def url(self):
        """"ws://127.0.0.1:PORT" (or wss://)."""
        return self._url

    def stop(self):
        """Stops the server, closing every connection; idempotent."""
        with self._lock:
            handle, self._handle = self._handle, None
        if handle:
            self._lib.nim_signaling_server_stop(handle)
        with _live_lock:
            _live_servers.discard(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def __repr__(self):
        return "<nim_signaling.Server %s%s>" % (self._url, "" if self._handle else " (stopped)")
