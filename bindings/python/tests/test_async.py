"""AsyncClient: typed coroutines, notifications on the loop, in order, none
lost, nothing scheduled on a closed loop."""

import asyncio
import logging
import threading

import pytest

import nim_signaling as ns
from nim_signaling import Code, SignalingError, SignalingTimeout

WAIT_S = 10.0


def config(server, account, **more):
    cfg = {"serverUrl": server.url, "account": account, "token": "", "requestTimeoutMs": 5000}
    cfg.update(more)
    return cfg


async def next_of(events, kind, event_type=None):
    """The next notification of `kind` (and eventType), skipping others."""

    async def find():
        async for n in events:
            if n.kind == kind and (event_type is None or n.data.get("eventType") == event_type):
                return n.data
        raise AssertionError("the events ended before a %s %s" % (kind, event_type))

    return await asyncio.wait_for(find(), WAIT_S)


def test_async_call_accept(server):
    async def main():
        async with ns.AsyncClient(config(server, "alice")) as alice, ns.AsyncClient(config(server, "bob")) as bob:
            login = await alice.login()
            assert login["code"] == 200 and login["account"] == "alice"
            await bob.login()
            room = await alice.call(type=1, account="bob", requestId="a-1")
            cid = room["channelInfo"]["channelId"]
            inv = await next_of(bob.events(), "online", "INVITE")
            assert inv["requestId"] == "a-1" and inv["channelInfo"]["channelId"] == cid
            acc = await bob.accept(channelId=cid, account="alice", requestId="a-1", autoJoin=True)
            assert sorted(m["account"] for m in acc["members"]) == ["alice", "bob"]
            ev = await next_of(alice.events(), "online", "ACCEPT")
            assert ev["fromAccountId"] == "bob"
            with pytest.raises(SignalingError) as e:
                await bob.join(channelId=cid)
            assert e.value.code == Code.ALREADY_IN_ROOM
            assert (await alice.close_channel(channelId=cid))["code"] == 200
            assert (await next_of(bob.events(), "online", "ROOM_CLOSE"))["fromAccountId"] == "alice"

    asyncio.run(main())


def test_async_notifications_in_order_none_lost():
    """Everything since the client was made waits for its reader: the login's
    connection state and channels sync, then 300 controls sent before bob
    reads anything, in the order they were sent, all on the loop's thread."""
    count = 300

    async def main(server):
        loop_thread = threading.get_ident()
        alice = ns.Client(config(server, "alice"))
        try:
            alice.login()
            async with ns.AsyncClient(config(server, "bob")) as bob:
                await bob.login()
                cid = alice.create(type=3)["channelInfo"]["channelId"]
                alice.join(channelId=cid)
                await bob.join(channelId=cid)
                futs = [alice.submit("control", channelId=cid, account="bob", attachExt=str(i)) for i in range(count)]
                for f in futs:
                    assert f.result(WAIT_S)["code"] == 200
                kinds, controls = [], []
                events = bob.events()
                while len(controls) < count:
                    n = await asyncio.wait_for(events.__anext__(), WAIT_S)
                    assert threading.get_ident() == loop_thread
                    kinds.append(n.kind)
                    if n.kind == "online" and n.data["eventType"] == "CONTROL":
                        controls.append(n.data["attachExt"])
                assert controls == [str(i) for i in range(count)]
                # The login came first: connection state, then the rooms.
                assert kinds.index("connection_state") < kinds.index("channels_sync") < kinds.index("online")
            # Closed: the stream ends once read.
            rest = [n async for n in bob.events()]
            assert all(n.kind != "online" or n.data["eventType"] != "CONTROL" for n in rest)
        finally:
            alice.close()

    with ns.Server({"maxRequestsPerSecond": 1000}) as server:  # 300 at once from alice
        asyncio.run(main(server))


def test_async_refused_at_once_and_timeout(server):
    async def main():
        srv = ns.Server()
        bob = ns.AsyncClient(config(srv, "bob", requestTimeoutMs=60000))
        try:
            with pytest.raises(SignalingError) as e:
                await bob.sync()  # not logged in: 415 at once
            assert e.value.code == Code.NOT_CONNECTED and e.value.data is None
            await bob.login()
            with pytest.raises(SignalingError) as e:
                await bob.join({})
            assert e.value.code == Code.INVALID_PARAM and e.value.data is None
            assert "channelId" in e.value.message, e.value.message
            # The server gone, requests wait for the reconnect: the
            # binding's own limit ends the wait.
            srv.stop()
            await next_of(bob.events(), "connection_state")
            with pytest.raises(SignalingTimeout) as e:
                await bob.sync(timeout=0.3)
            assert e.value.code == Code.TIMEOUT
        finally:
            await bob.aclose()
            srv.stop()
        assert bob.closed
        with pytest.raises(SignalingError) as e:
            await bob.sync()
        assert e.value.code == 415

    asyncio.run(main())


def test_async_client_needs_a_running_loop(server):
    with pytest.raises(RuntimeError):
        ns.AsyncClient(config(server, "nobody"))


def test_nothing_scheduled_on_a_closed_loop(server, caplog):
    """A loop that ended with the client still open: its results and
    events are dropped, not scheduled (no 'Event loop is closed' from a
    library thread, nothing logged as an error)."""
    alice = ns.Client(config(server, "alice"))
    alice.login()

    async def leave_open():
        bob = ns.AsyncClient(config(server, "bob"))
        await bob.login()
        # A request still pending when the loop ends (its task cancelled).
        asyncio.ensure_future(bob.query_invitations())
        return bob

    with caplog.at_level(logging.DEBUG, logger="nim_signaling"):
        bob = asyncio.run(leave_open())  # cancels the request's task, closes the loop
        # An INVITE for bob now reaches a closed loop.
        alice.call(type=1, account="bob", requestId="late")
        rec = None
        for _ in range(100):
            rec = [r for r in caplog.records if "event loop is closed" in r.getMessage()]
            if rec:
                break
            threading.Event().wait(0.05)
        assert rec, caplog.records
        bob.client.close()
        alice.close()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, errors


def test_arequest_on_client(make_client):
    alice = make_client("alice")

    async def main():
        room = await alice.arequest("create", type=3, ext="x")
        cid = room["channelInfo"]["channelId"]
        joined = await alice.arequest("join", {"channelId": cid}, uid="42")
        with pytest.raises(SignalingError) as e:
            await alice.arequest("join", channelId=cid)
        return joined, e.value.code

    joined, code = asyncio.run(main())
    assert [m["uid"] for m in joined["members"]] == [42]
    assert code == Code.ALREADY_IN_ROOM == 10407
