"""A call from alice to bob, written as a user would with type checking on:
`mypy --strict typed_call.py` passes (the test suite checks it), and
`python typed_call.py` runs it against an embedded server, first with the
blocking Client, then with AsyncClient on an asyncio loop.
"""

import asyncio
import queue
from typing import List, Optional

import nim_signaling as ns


def blocking_call(url: str) -> List[str]:
    """alice calls bob, bob accepts; what alice saw, in order."""
    cfg = {"serverUrl": url}
    seen: List[str] = []
    with ns.Client({**cfg, "account": "alice"}) as alice, ns.Client({**cfg, "account": "bob"}) as bob:
        alice_events: "queue.Queue[ns.Event]" = queue.Queue()
        bob_events: "queue.Queue[ns.Event]" = queue.Queue()
        alice.on("online", alice_events.put)
        bob.on("online", bob_events.put)
        states: "queue.Queue[ns.ConnectionState]" = queue.Queue()

        def on_state(ev: ns.ConnectionStateEvent) -> None:
            states.put(ev["state"])

        bob.on("connection_state", on_state)

        login: ns.LoginResult = alice.login()
        assert login["account"] == "alice"
        bob.login()
        assert states.get(timeout=10) in ("connecting", "connected")

        room: ns.CallResult = alice.call(type=1, account="bob", requestId="typed-1")
        info: ns.ChannelInfo = room["channelInfo"]
        members: List[ns.Member] = room["members"]
        assert [m["account"] for m in members] == ["alice"]

        invite = bob_events.get(timeout=10)
        assert invite["eventType"] == "INVITE"
        request_id: Optional[str] = invite.get("requestId")
        assert request_id == "typed-1"
        accepted: ns.AcceptResult = bob.accept(
            channelId=info["channelId"], account=invite["fromAccountId"], requestId=request_id, autoJoin=True
        )
        assert len(accepted.get("members", [])) == 2
        while len(seen) < 3:  # INVITE_DELIVERED, ACCEPT, ROOM_JOIN
            seen.append(alice_events.get(timeout=10)["eventType"])

        try:
            bob.join(channelId="no-such-room")
        except ns.SignalingError as e:
            assert e.code == ns.Code.ROOM_NOT_EXIST and e.data is not None
        closed: ns.Result = alice.close_channel(channelId=info["channelId"])
        assert closed["code"] == 200
    return seen


async def async_call(url: str) -> List[str]:
    """The same call with AsyncClient: results and events on this loop."""
    cfg = {"serverUrl": url}
    async with ns.AsyncClient({**cfg, "account": "alice"}) as alice, ns.AsyncClient(
        {**cfg, "account": "bob"}
    ) as bob:
        await alice.login()
        await bob.login()
        room = await alice.call(type=2, account="bob", requestId="typed-2")
        cid: str = room["channelInfo"]["channelId"]

        async def answer() -> ns.AcceptResult:
            async for n in bob.events():
                if n.kind == "online" and n.data["eventType"] == "INVITE":
                    return await bob.accept(
                        channelId=cid, account=n.data["fromAccountId"], requestId=n.data["requestId"]
                    )
            raise AssertionError("bob's events ended")

        accepted = await asyncio.wait_for(answer(), 10)
        assert accepted["code"] == 200
        kinds: List[str] = []
        events = alice.events()
        while "ACCEPT" not in kinds:
            n: ns.Notification = await asyncio.wait_for(events.__anext__(), 10)
            if n.kind == "online":
                kinds.append(n.data["eventType"])
        try:
            await bob.join({"channelId": cid, "uid": "x"})
        except ns.SignalingError as e:
            assert e.code == ns.Code.INVALID_PARAM and e.data is None
            print("refused at once:", e.message)
        invitations: ns.InvitationsResult = await alice.query_invitations()
        assert invitations["sent"][0]["state"] == "accepted"
        return kinds


def main() -> None:
    with ns.Server() as srv:
        print("blocking:", " ".join(blocking_call(srv.url)))
        print("asyncio:", " ".join(asyncio.run(async_call(srv.url))))


if __name__ == "__main__":
    main()
