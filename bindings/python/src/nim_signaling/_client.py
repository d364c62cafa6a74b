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

For asyncio, AsyncClient (in _aio) delivers results and notifications on
the running loop instead.
"""

from __future__ import annotations

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
from typing import Any, Callable, Dict, List, Literal, Optional, Set, Tuple, cast, overload

from . import _lib, _loop
from ._errors import IMMEDIATE_MESSAGES, SignalingError, SignalingTimeout
from ._ops import Operations
from ._types import (
    ChannelMembers,
    ChannelsSync,
    Config,
    ConnectionStateEvent,
    Event,
    LoginResult,
    NotificationName,
    OfflineEvents,
    Params,
    Result,
)

log = logging.getLogger("nim_signaling")

#: The notification names, in the order the registrations are made.
EVENTS: Tuple[NotificationName, ...] = cast(Tuple[NotificationName, ...], tuple(_lib.REGISTRATIONS))

#: What a request resolves to before it is typed: the parsed result object.
Raw = Dict[str, Any]

# Margin on top of the client's requestTimeoutMs: the library answers 408
# itself at requestTimeoutMs, so the binding's own wait only ends a wait
# for a callback that never comes.
_WAIT_MARGIN_S = 5.0

_tls = threading.local()


def _in_callback() -> bool:
    return bool(getattr(_tls, "depth", 0) > 0)


class _CallbackScope:
    def __enter__(self) -> None:
        _tls.depth = getattr(_tls, "depth", 0) + 1

    def __exit__(self, *exc: object) -> Literal[False]:
        _tls.depth -= 1
        return False


def _parse(raw: Optional[bytes]) -> Any:
    if raw is None:
        return None
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return {"raw": text}


def _config_json(config: Optional[Config], what: str) -> str:
    if config is None:
        return "{}"
    if isinstance(config, Mapping):
        return json.dumps(dict(config), ensure_ascii=False)
    if isinstance(config, str):
        return config
    raise TypeError("%s config must be a dict or a JSON string, not %s" % (what, type(config).__name__))


def _refused(rc: int, lib: ctypes.CDLL, fallback: str, op: str) -> SignalingError:
    """The error of a call the library refused at once, with the reason it
    gave (nim_signaling_last_error) when it gives one. Call it on the thread
    of the refused call, before any other call into the library."""
    why = _lib.last_error(lib)
    return SignalingError(rc, why or fallback, None, op=op)


def _encode(params: Params, kwargs: Dict[str, Any]) -> bytes:
    """The JSON bytes for a request: a dict (merged with kwargs), or a str /
    bytes sent as they are (to test the library's own validation)."""
    if isinstance(params, (str, bytes)):
        if kwargs:
            raise TypeError("raw JSON params cannot be combined with keyword arguments")
        return params.encode("utf-8") if isinstance(params, str) else params
    if params is None:
        merged: Dict[str, Any] = {}
    elif isinstance(params, Mapping):
        merged = dict(params)
    else:
        raise TypeError("params must be a dict, a JSON string or None, not %s" % type(params).__name__)
    merged.update(kwargs)
    return json.dumps(merged, ensure_ascii=False).encode("utf-8")


# Cores whose C handle is live: they (and their ctypes callbacks) stay
# referenced until client_free has returned, whatever happens to the
# Client object. Closed at interpreter exit if still open.
_live_cores: Set[_Core] = set()
_live_servers: Set[Server] = set()
_live_lock = threading.Lock()


@atexit.register
def _close_everything() -> None:
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

    def __init__(self, lib: ctypes.CDLL, handle: int, account: Optional[str]) -> None:
        self.lib = lib
        self.handle: Optional[int] = handle
        self.account = account
        self.cond = threading.Condition()
        self.calls = 0  # C calls using the handle right now
        self.closing = False
        self.closed = False
        self.pending: Dict[int, Tuple[str, Future[Raw]]] = {}  # request id -> (op, Future)
        self.ids = itertools.count(1)
        self.handlers: Dict[str, List[Callable[[Any], object]]] = {name: [] for name in EVENTS}
        # ctypes callback objects: must outlive client_free.
        self.result_cb = _lib.RESULT_CB(self._on_result)
        self.event_cbs: Dict[str, Any] = {name: _lib.EVENT_CB(self._event_trampoline(name)) for name in EVENTS}

    # --- callbacks (library threads) -------------------------------------

    def _on_result(self, code: int, raw: Optional[bytes], user_data: Optional[int]) -> None:
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

    def _event_trampoline(self, name: str) -> Callable[[Optional[bytes], Optional[int]], None]:
        def trampoline(raw: Optional[bytes], user_data: Optional[int]) -> None:
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

    def start(self, op: str, call: Callable[[Optional[int], Any, ctypes.c_void_p], int]) -> Future[Raw]:
        """Starts a request: `call(handle, cb, user_data)` -> code. Returns a
        Future completed on a library thread (result dict, or SignalingError)."""
        fut: Future[Raw] = Future()
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
            # First, before any other call into the library on this thread.
            err = _refused(rc, self.lib, IMMEDIATE_MESSAGES.get(rc, "refused; nothing was sent"), op)
            with self.cond:
                self.pending.pop(rid, None)
            fut.set_exception(err)
        return fut

    def close(self) -> None:
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


class Client(Operations):
    """One account on one device (`nim_signaling_client_new`).

    `config`: `serverUrl` (required), `account` (required), `token`,
    `deviceId`, `serverUrls`, `requestTimeoutMs`, `reconnect`, ... as in
    the C header. `timeout` (seconds) bounds every blocking wait; by
    default requestTimeoutMs + 5 s.

    Use as a context manager, or call `close()` (which frees the C client;
    the room operation signalingClose is `close_channel`). The request
    methods (create, join, call, accept, ...) are listed in Operations.
    """

    timeout: float

    def __init__(self, config: Config, *, timeout: Optional[float] = None) -> None:
        cfg_json = _config_json(config, "Client")
        req_ms: Any = 10000
        account: Optional[str] = None
        if isinstance(config, Mapping):
            req_ms = config.get("requestTimeoutMs", 10000)
            account = config.get("account")
        lib = _lib.load()
        out = ctypes.c_void_p()
        rc = lib.nim_signaling_client_new(cfg_json.encode("utf-8"), ctypes.byref(out))
        if rc != 200 or not out.value:
            raise _refused(rc, lib, "nim_signaling_client_new refused the config", "client_new")
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
    def account(self) -> Optional[str]:
        """The config's account (None for a config given as a JSON string)."""
        return self._core.account

    @property
    def closed(self) -> bool:
        return self._core.closing

    def close(self, *args: Any, **kwargs: Any) -> None:
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

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> Literal[False]:
        self.close()
        return False

    def __del__(self) -> None:
        core = getattr(self, "_core", None)
        if core is not None and not core.closing:
            try:
                core.close()
            except Exception:  # pragma: no cover
                pass

    # --- notifications ----------------------------------------------------

    @overload
    def on(
        self, event: Literal["online", "multi_client_sync"], handler: Callable[[Event], object]
    ) -> Callable[[Event], object]: ...

    @overload
    def on(
        self, event: Literal["offline"], handler: Callable[[OfflineEvents], object]
    ) -> Callable[[OfflineEvents], object]: ...

    @overload
    def on(
        self, event: Literal["members_sync"], handler: Callable[[ChannelMembers], object]
    ) -> Callable[[ChannelMembers], object]: ...

    @overload
    def on(
        self, event: Literal["channels_sync"], handler: Callable[[ChannelsSync], object]
    ) -> Callable[[ChannelsSync], object]: ...

    @overload
    def on(
        self, event: Literal["connection_state"], handler: Callable[[ConnectionStateEvent], object]
    ) -> Callable[[ConnectionStateEvent], object]: ...

    def on(self, event: str, handler: Callable[[Any], object]) -> Callable[[Any], object]:
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

    def off(self, event: str, handler: Optional[Callable[[Any], object]] = None) -> None:
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

    def submit(self, op: str, params: Params = None, /, **kwargs: Any) -> Future[Raw]:
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

    def request(self, op: str, params: Params = None, /, *, timeout: Optional[float] = None, **kwargs: Any) -> Raw:
        """Runs `op` and waits for its result (see submit); the typed
        methods (join, call, ...) come down to this."""
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

    async def arequest(self, op: str, params: Params = None, /, **kwargs: Any) -> Raw:
        """asyncio variant of request: `await client.arequest("join", channelId=...)`;
        the result is set on the running loop. Notifications still come on
        library threads: AsyncClient brings them to the loop as well."""
        return await _loop.wait(asyncio.get_running_loop(), self.submit(op, params, **kwargs), None, op)

    def login(self, *, timeout: Optional[float] = None) -> LoginResult:
        """Connects and logs in; returns {"code":200,"account",...}. 302 for a refused token."""
        return cast(LoginResult, self.request("login", timeout=timeout))

    def logout(self, *, timeout: Optional[float] = None) -> Result:
        """Logs out and disconnects (no reconnect)."""
        return cast(Result, self.request("logout", timeout=timeout))


class Server:
    """A signaling server embedded in this process
    (`nim_signaling_server_start`). `config` as in docs/CONFIG.md, e.g.
    {"auth": {"mode": "static", "accounts": {"alice": "t"}}}; None or {}
    for defaults (127.0.0.1, a free port, no authentication)."""

    def __init__(self, config: Optional[Config] = None) -> None:
        cfg_json = _config_json(config, "Server")
        self._lib = _lib.load()
        self._lock = threading.Lock()
        out = ctypes.c_void_p()
        rc = self._lib.nim_signaling_server_start(cfg_json.encode("utf-8"), ctypes.byref(out))
        if rc != 200 or not out.value:
            raise _refused(rc, self._lib, "nim_signaling_server_start failed", "server_start")
        self._handle: Optional[int] = out.value
        self._url: str = self._lib.nim_signaling_server_url(self._handle).decode("utf-8")
        with _live_lock:
            _live_servers.add(self)

    @property
    def url(self) -> str:
        """"ws://127.0.0.1:PORT" (or wss://)."""
        return self._url

    def stop(self) -> None:
        """Stops the server, closing every connection; idempotent."""
        with self._lock:
            handle, self._handle = self._handle, None
        if handle:
            self._lib.nim_signaling_server_stop(handle)
        with _live_lock:
            _live_servers.discard(self)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> Literal[False]:
        self.stop()
        return False

    def __repr__(self) -> str:
        return "<nim_signaling.Server %s%s>" % (self._url, "" if self._handle else " (stopped)")
