"""AsyncClient: the client for asyncio, everything delivered on the loop.

    async with ns.AsyncClient({"serverUrl": url, "account": "bob"}) as bob:
        await bob.login()
        async for n in bob.events():
            if n.kind == "online" and n.data["eventType"] == "INVITE":
                await bob.accept(channelId=n.data["channelInfo"]["channelId"],
                                 account=n.data["fromAccountId"],
                                 requestId=n.data["requestId"])

Every notification of the client, from the moment it is made, is queued
on the loop in the order the library delivered it (one client's callbacks
run one at a time, in order, and each is handed to the loop with
call_soon_threadsafe, which keeps that order) and waits there until it is
read: none is dropped for want of a reader. Results of requests are set
on the loop too. Once the loop is closed nothing is scheduled on it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, AsyncIterator, Callable, Optional, cast

from . import _loop
from ._client import EVENTS, Client, Raw
from ._ops import Operations
from ._types import Config, LoginResult, Notification, NotificationName, Params, Result

log = logging.getLogger("nim_signaling")


class _Inbox:
    """The queue the library threads feed through the loop. Holds no
    reference to the AsyncClient, so that an AsyncClient dropped without
    aclose() is collected (and its client freed) like a Client."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        # None, last: the client is closed and nothing more will come.
        self.queue: asyncio.Queue[Optional[Notification]] = asyncio.Queue()
        self.reading = False

    def handler(self, kind: NotificationName) -> Callable[[Any], None]:
        def forward(payload: Any) -> None:  # on a library thread
            _loop.post(self.loop, self.queue.put_nowait, Notification(kind, payload))

        return forward

    def end(self) -> None:
        """Queues the end after whatever the library threads posted before
        (call_soon runs after the callbacks already scheduled)."""
        self.loop.call_soon(self.queue.put_nowait, None)


class _Events:
    """`AsyncClient.events()`: an async iterator over the notifications."""

    def __init__(self, inbox: _Inbox) -> None:
        self._inbox = inbox

    def __aiter__(self) -> _Events:
        return self

    async def __anext__(self) -> Notification:
        item = await self._inbox.queue.get()
        if item is None:
            self._inbox.queue.put_nowait(None)  # the end stays, for later reads
            raise StopAsyncIteration
        return item


class AsyncClient(Operations):
    """One account on one device, for asyncio: each request method is a
    coroutine (`await c.call(...)`, `await c.accept(...)`, ...) whose
    result is set on the loop, and `events()` yields the notifications on
    the loop, in order.

    Make it inside a running loop (it belongs to that loop); `config` and
    `timeout` as for Client (the timeout bounds each await). Use
    `async with`, or `await aclose()`. The request methods are listed in
    Operations; `client` is the underlying blocking Client.
    """

    def __init__(self, config: Config, *, timeout: Optional[float] = None) -> None:
        loop = asyncio.get_running_loop()  # RuntimeError outside a loop
        self._inbox = _Inbox(loop)
        self._closing: Optional[asyncio.Future[None]] = None
        self.client = Client(config, timeout=timeout)
        for kind in EVENTS:
            self.client.on(kind, self._inbox.handler(kind))

    @property
    def account(self) -> Optional[str]:
        return self.client.account

    @property
    def closed(self) -> bool:
        return self.client.closed

    @property
    def timeout(self) -> float:
        return self.client.timeout

    async def request(
        self, op: str, params: Params = None, /, *, timeout: Optional[float] = None, **kwargs: Any
    ) -> Raw:
        """Runs `op` ("join", "call", ...; see Client.submit) and awaits its
        result; the typed methods come down to this."""
        fut = self.client.submit(op, params, **kwargs)
        wait = self.timeout if timeout is None else timeout
        return await _loop.wait(self._inbox.loop, fut, wait, op)

    async def login(self, *, timeout: Optional[float] = None) -> LoginResult:
        """Connects and logs in; the offline and channels notifications follow."""
        return cast(LoginResult, await self.request("login", timeout=timeout))

    async def logout(self, *, timeout: Optional[float] = None) -> Result:
        return cast(Result, await self.request("logout", timeout=timeout))

    def events(self) -> AsyncIterator[Notification]:
        """The notifications, in order, from the client's creation on:
        `Notification(kind, data)` with `kind` one of ns.EVENTS ("online"
        for signaling events, "connection_state", "offline", ...). It ends
        after aclose() once everything before was read. Meant for one
        reader: two iterators would share the items between them."""
        return _Events(self._inbox)

    def pending_events(self) -> int:
        """How many notifications wait to be read."""
        return self._inbox.queue.qsize()

    async def aclose(self) -> None:
        """Frees the client (as Client.close, in a worker thread so the
        loop keeps running); pending requests end with 415 and events()
        ends once the notifications delivered before were read."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close())
        await asyncio.shield(self._closing)

    async def _close(self) -> None:
        try:
            await self._inbox.loop.run_in_executor(None, self.client.close)
        finally:
            self._inbox.end()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return "<nim_signaling.AsyncClient %s%s>" % (self.account, " (closed)" if self.closed else "")

