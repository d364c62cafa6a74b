"""Handing what library threads produce to an asyncio loop, safely.

Library threads never touch asyncio objects: they schedule a function on
the loop with `call_soon_threadsafe`, which runs scheduled functions in the
order they were scheduled. A loop that is closed, or closes meanwhile, gets
nothing: what would have run on it is dropped (and logged at debug level).
"""

import asyncio
import logging
from concurrent.futures import Future
from typing import Any, Callable, Dict, Optional, TypeVar

from ._errors import SignalingTimeout

log = logging.getLogger("nim_signaling")

T = TypeVar("T")


def post(loop: asyncio.AbstractEventLoop, fn: Callable[..., object], *args: Any) -> None:
    """Runs `fn(*args)` on `loop` soon, unless the loop is closed. Safe from
    any thread."""
    if loop.is_closed():
        log.debug("nim_signaling: the event loop is closed; dropped %r", fn)
        return
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:  # closed since the check
        log.debug("nim_signaling: the event loop is closed; dropped %r", fn)


def _settle(dst: "asyncio.Future[T]", src: "Future[T]") -> None:
    if dst.done():  # cancelled, or timed out, by the awaiting side
        return
    exc = src.exception()
    if exc is not None:
        dst.set_exception(exc)
    else:
        dst.set_result(src.result())


async def wait(
    loop: asyncio.AbstractEventLoop, fut: "Future[Dict[str, Any]]", timeout: Optional[float], op: str
) -> Dict[str, Any]:
    """Awaits a request's concurrent Future on `loop` (the running one):
    its result, its SignalingError, or SignalingTimeout after `timeout` s
    (None: no limit of the binding's own; the library answers 408 itself
    at requestTimeoutMs). A result arriving after the loop closed is
    dropped, never scheduled on it."""
    here: "asyncio.Future[Dict[str, Any]]" = loop.create_future()
    fut.add_done_callback(lambda f: post(loop, _settle, here, f))
    try:
        return await asyncio.wait_for(here, timeout)
    except asyncio.TimeoutError:
        if fut.done():  # it came after all: wait_for cancelled it in passing
            return fut.result()
        raise SignalingTimeout(408, "no result within %.1f s" % (timeout or 0.0), None, op=op) from None
