import logging
import os
import re
import subprocess
import sys
import threading

import pytest

import nim_signaling as ns
from nim_signaling import Code, SignalingError


def test_versions():
    v = ns.version()
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", v), v
    assert ns.__version__ == v  # the binding is released with the library
    assert os.path.samefile(ns.library_path(), os.environ["NIM_SIGNALING_LIB"])


def test_full_call(make_client):
    alice = make_client("alice", deviceId="alice-phone")
    bob = make_client("bob", deviceId="bob-phone")

    # alice calls bob: create + join + invite.
    res = alice.call({"type": 1, "account": "bob"}, requestId="req-1", attachExt="hello")
    assert res["code"] == 200
    info = res["channelInfo"]
    cid = info["channelId"]
    assert info["type"] == 1 and info["creatorId"] == "alice" and info["invalid"] == 0
    assert [m["account"] for m in res["members"]] == ["alice"]

    # bob is rung.
    inv = bob.events.expect_event("INVITE")
    assert inv["eventTypeCode"] == ns.EventType.INVITE == 3
    assert inv["fromAccountId"] == "alice"
    assert inv["toAccount"] == "bob"
    assert inv["requestId"] == "req-1"
    assert inv["attachExt"] == "hello"
    assert inv["channelInfo"]["channelId"] == cid

    # bob accepts and joins at once.
    acc = bob.accept(channelId=cid, account="alice", requestId="req-1", autoJoin=True)
    assert acc["code"] == 200
    assert acc["channelInfo"]["channelId"] == cid
    assert sorted(m["account"] for m in acc["members"]) == ["alice", "bob"]
    assert all(isinstance(m["uid"], int) for m in acc["members"])

    ev = alice.events.expect_event("ACCEPT")
    assert ev["fromAccountId"] == "bob" and ev["requestId"] == "req-1"
    assert ev["channelInfo"]["channelId"] == cid
    join = alice.events.expect_event("ROOM_JOIN")
    assert join["member"]["account"] == "bob"

    q = alice.query_channel_info(channelId=cid)
    assert sorted(m["account"] for m in q["members"]) == ["alice", "bob"]

    # A control command to the room.
    alice.control(channelId=cid, attachExt='{"cmd":"mute"}')
    ctl = bob.events.expect_event("CONTROL")
    assert ctl["fromAccountId"] == "alice"
    assert ctl["attachExt"] == '{"cmd":"mute"}'
    assert ctl["eventTypeCode"] == 8

    # alice hangs up: bob gets ROOM_CLOSE.
    closed = alice.close_channel(channelId=cid)
    assert closed["code"] == 200
    rc = bob.events.expect_event("ROOM_CLOSE")
    assert rc["fromAccountId"] == "alice"
    assert rc["channelInfo"]["channelId"] == cid
    assert rc["eventTypeCode"] == 1

    # The room is gone for joining.
    with pytest.raises(SignalingError) as e:
        bob.join(channelId=cid)
    assert e.value.code in (Code.ROOM_NOT_EXIST,), e.value


def test_reject_and_cancel(make_client):
    alice = make_client("alice")
    bob = make_client("bob")
    room = alice.create(type=2)
    cid = room["channelInfo"]["channelId"]
    alice.join(channelId=cid)
    alice.invite(channelId=cid, account="bob", requestId="r-a")
    bob.events.expect_event("INVITE")
    bob.reject(channelId=cid, account="alice", requestId="r-a", attachExt="busy")
    rej = alice.events.expect_event("REJECT")
    assert rej["fromAccountId"] == "bob" and rej["attachExt"] == "busy"
    # Answering the rejected invitation again: 10409.
    with pytest.raises(SignalingError) as e:
        bob.accept(channelId=cid, account="alice", requestId="r-a")
    assert e.value.code == Code.INVITE_REJECTED == 10409
    assert e.value.data["code"] == 10409 and e.value.data["message"]

    alice.invite(channelId=cid, account="bob", requestId="r-b")
    bob.events.expect_event("INVITE")
    alice.cancel_invite(channelId=cid, account="bob", requestId="r-b")
    can = bob.events.expect_event("CANCEL_INVITE")
    assert can["requestId"] == "r-b"
    with pytest.raises(SignalingError) as e:
        bob.accept(channelId=cid, account="alice", requestId="r-b")
    assert e.value.code == Code.INVITE_NOT_EXIST == 10408

    bob.join(channelId=cid)
    left = bob.leave(channelId=cid)
    assert left["code"] == 200
    lv = alice.events.expect_event("LEAVE")
    assert lv["fromAccountId"] == "bob"


def test_error_codes(make_client):
    alice = make_client("alice")

    # The seed's codes, from the server.
    with pytest.raises(SignalingError) as e:
        alice.join(channelId="no-such-room")
    err = e.value
    assert err.code == Code.ROOM_NOT_EXIST == 10404
    assert err.op == "join"
    assert err.data["code"] == 10404 and isinstance(err.data["message"], str) and err.message
    assert "10404" in str(err)

    alice.create(type=1, channelName="dup")
    with pytest.raises(SignalingError) as e:
        alice.create({"type": 1, "channelName": "dup"})
    assert e.value.code == Code.ROOM_EXISTS == 10405

    # Bad params: refused by the C function at once (414), nothing sent.
    for bad in ({"channelId": 5}, {}, "{not json", "[1,2]"):
        with pytest.raises(SignalingError) as e:
            alice.join(bad)
        assert e.value.code == Code.INVALID_PARAM == 414, bad
        assert e.value.data is None
    with pytest.raises(SignalingError) as e:
        alice.call(type="audio", account="bob", requestId="x")
    assert e.value.code == 414

    # Not logged in: 415 at once.
    carol = make_client("carol", login=False)
    with pytest.raises(SignalingError) as e:
        carol.create(type=1)
    assert e.value.code == Code.NOT_CONNECTED == 415 and e.value.data is None
    with pytest.raises(SignalingError) as e:
        carol.logout()
    assert e.value.code == 415

    # After logout too.
    alice.logout()
    with pytest.raises(SignalingError) as e:
        alice.sync()
    assert e.value.code == 415


def test_refusals_say_why(make_client):
    """A request refused at once carries the library's reason
    (nim_signaling_last_error), not a generic text for its code."""
    alice = make_client("alice")
    cid = alice.create(type=1)["channelInfo"]["channelId"]
    cases = [
        # misspelt key: named, with the one meant
        (
            alice.invite,
            dict(channelId=cid, acount="bob", requestId="r"),
            "unknown key `acount`: did you mean `account`?",
        ),
        (alice.join, dict(channelID=cid), "unknown key `channelID`: did you mean `channelId`?"),
        # missing field
        (alice.invite, dict(channelId=cid, account="bob"), "missing field `requestId`"),
        # wrong type, with the key's path
        (
            alice.call,
            dict(type="audio", account="bob", requestId="x"),
            '`type`: invalid type: string "audio", expected u8',
        ),
        (alice.join, dict(channelId=5), "`channelId`: invalid type: integer `5`, expected a string"),
    ]
    for method, params, message in cases:
        with pytest.raises(SignalingError) as e:
            method(**params)
        err = e.value
        assert (err.code, err.data) == (Code.INVALID_PARAM, None), err
        assert message in err.message, (params, err.message)
        assert message in str(err) and "414" in str(err)
    with pytest.raises(SignalingError) as e:
        alice.join("{not json")
    assert "not valid JSON" in e.value.message, e.value.message
    carol = make_client("carol", login=False)
    with pytest.raises(SignalingError) as e:
        carol.create(type=1)
    assert e.value.code == Code.NOT_CONNECTED and "not logged in" in e.value.message, e.value.message
    # A server config with a typo says which key.
    with pytest.raises(SignalingError) as e:
        ns.Server({"lisen": "127.0.0.1:0"})
    assert e.value.code == 414 and "lisen" in e.value.message, e.value.message


def test_generic_messages_without_last_error(make_client, monkeypatch):
    """With a library older than nim_signaling_last_error, the code's
    general meaning stands in."""
    from nim_signaling import _lib

    alice = make_client("alice")
    monkeypatch.setattr(_lib, "_has_last_error", False)
    with pytest.raises(SignalingError) as e:
        alice.join({})
    assert e.value.code == 414 and e.value.message.startswith("invalid parameter"), e.value.message


def test_register_push_token(make_client):
    bob = make_client("bob-push")
    assert bob.register_push_token(token="tok-1", provider="fcm")["code"] == 200
    assert bob.register_push_token(token="")["code"] == 200  # removes it
    with pytest.raises(SignalingError) as e:
        bob.register_push_token(token=5)
    assert e.value.code == Code.INVALID_PARAM == 414


def test_invite_many(make_client):
    alice = make_client("many-alice")
    bob = make_client("many-bob")
    carol = make_client("many-carol")
    cid = alice.create(type=2)["channelInfo"]["channelId"]
    alice.join(channelId=cid)
    # carol is already ringing: with busyCheck she is busy and not rung again.
    assert alice.invite(channelId=cid, account="many-carol", requestId="r0")["code"] == 200
    carol.events.expect_event("INVITE")
    res = alice.invite_many(
        channelId=cid, accounts=["many-bob", "many-carol", "many-nobody"], requestId="g1", busyCheck=True
    )
    assert res == {
        "code": 200,
        "results": [
            {"account": "many-bob", "code": 200},
            {"account": "many-carol", "code": ns.Code.PEER_BUSY},
            {"account": "many-nobody", "code": ns.Code.PEER_OFFLINE},
        ],
    }
    inv = bob.events.expect_event("INVITE")
    assert inv["requestId"] == "g1" and inv["fromAccountId"] == "many-alice"
    assert bob.accept(channelId=cid, account="many-alice", requestId="g1")["code"] == 200
    with pytest.raises(SignalingError) as e:
        alice.invite_many(channelId=cid, accounts=["many-bob", "many-bob"], requestId="g2")
    assert e.value.code == 414


def test_query_invitations_receipts_and_update_channel(make_client):
    alice, bob = make_client("alice-q"), make_client("bob-q")
    res = alice.call(type=1, account="bob-q", requestId="q-1")
    cid = res["channelInfo"]["channelId"]
    bob.events.expect_event("INVITE")
    # bob's library acknowledged the INVITE by itself.
    rec = alice.events.expect_event("INVITE_DELIVERED")
    assert rec["eventTypeCode"] == ns.EventType.INVITE_DELIVERED == 10
    assert rec["fromAccountId"] == "bob-q" and rec["deliveredCount"] == 1

    got = bob.query_invitations()
    assert got["sent"] == []
    [item] = got["received"]
    assert (item["channelId"], item["account"], item["requestId"], item["state"]) == (cid, "alice-q", "q-1", "pending")

    bob.accept(channelId=cid, account="alice-q", requestId="q-1", autoJoin=True)
    upd = alice.update_channel(channelId=cid, ext="topic")
    assert upd["channelInfo"]["ext"] == "topic"
    ev = bob.events.expect_event("CHANNEL_UPDATE")
    assert ev["eventTypeCode"] == ns.EventType.CHANNEL_UPDATE == 11
    assert ev["channelInfo"]["ext"] == "topic" and ev["fromAccountId"] == "alice-q"
    assert alice.query_invitations()["sent"][0]["state"] == "accepted"
    with pytest.raises(SignalingError) as e:
        make_client("carol-q").update_channel(channelId=cid, ext="x")
    assert e.value.code == Code.NOT_IN_ROOM == 10406


def test_login_refused():
    auth = {"auth": {"mode": "static", "accounts": {"alice": "secret-a"}}}
    with ns.Server(auth) as srv:
        with ns.Client({"serverUrl": srv.url, "account": "alice", "token": "wrong", "reconnect": False}) as c:
            with pytest.raises(SignalingError) as e:
                c.login()
            assert e.value.code == Code.AUTH_FAILED == 302
        with ns.Client({"serverUrl": srv.url, "account": "alice", "token": "secret-a"}) as c:
            assert c.login()["account"] == "alice"


def test_bad_configs():
    with pytest.raises(SignalingError) as e:
        ns.Server({"lisen": "127.0.0.1:0"})  # unknown keys are refused
    assert e.value.code == 414
    with pytest.raises(SignalingError) as e:
        ns.Client({"account": "x"})  # no serverUrl
    assert e.value.code == 414


def test_notifications_after_login(make_client, server):
    bob = make_client("bob", login=False)
    bob.login()
    st = bob.logs["connection_state"].expect(lambda s: s.get("state") == "connected", what="connected")
    assert st["code"] == 200
    chans = bob.logs["channels_sync"].expect(what="channels sync")
    assert chans == {"channels": []}

    # An invitation kept while bob-laptop is offline comes as the offline list.
    alice = make_client("alice")
    with pytest.raises(SignalingError) as e:
        alice.call(type=1, account="dave", requestId="r-off", offlineEnabled=True)
    # 10201: dave is offline, the invitation is kept; the room state is in .data.
    assert e.value.code == Code.PEER_OFFLINE == 10201
    cid = e.value.data["channelInfo"]["channelId"]
    assert [m["account"] for m in e.value.data["members"]] == ["alice"]
    dave = make_client("dave")
    off = dave.logs["offline"].expect(what="offline events")
    assert [(e["eventType"], e["requestId"]) for e in off["eventList"]] == [("INVITE", "r-off")]
    assert off["eventList"][0]["channelInfo"]["channelId"] == cid


def test_multi_client_sync(make_client):
    alice = make_client("alice")
    phone = make_client("bob", deviceId="bob-phone")
    laptop = make_client("bob", deviceId="bob-laptop")
    res = alice.call(type=1, account="bob", requestId="r-m")
    cid = res["channelInfo"]["channelId"]
    phone.events.expect_event("INVITE")
    laptop.events.expect_event("INVITE")
    phone.accept(channelId=cid, account="alice", requestId="r-m")
    sync = laptop.logs["multi_client_sync"].expect_event("ACCEPT")
    assert sync["requestId"] == "r-m" and sync["channelInfo"]["channelId"] == cid


def test_handler_exception_is_logged_not_raised(make_client, caplog):
    alice = make_client("alice")
    bob = make_client("bob")

    def boom(event):
        raise ValueError("handler bug")

    bob.on("online", boom)  # runs after the EventLog registered first
    later = bob.logs["online"]
    with caplog.at_level(logging.ERROR, logger="nim_signaling"):
        alice.call(type=1, account="bob", requestId="r-1")
        later.expect_event("INVITE")
        res = alice.call(type=1, account="bob", requestId="r-2")
        ev = later.expect_event("INVITE")
        assert ev["requestId"] == "r-2"  # the library goes on after the exception
        bob.off("online", boom)
        cid = res["channelInfo"]["channelId"]
        bob.join(channelId=cid)
        alice.control(channelId=cid, account="bob")
        later.expect_event("CONTROL")
    bugs = [r for r in caplog.records if r.exc_info and "handler bug" in str(r.exc_info[1])]
    assert len(bugs) == 2, caplog.records


def test_blocking_in_handler_refused_submit_works(make_client):
    alice = make_client("alice")
    bob = make_client("bob")
    out = {}
    done = threading.Event()

    def on_invite(ev):
        if ev.get("eventType") != "INVITE":
            return
        try:
            bob.join(channelId=ev["channelInfo"]["channelId"])
        except RuntimeError as e:
            out["blocking"] = str(e)
        fut = bob.submit(
            "accept",
            channelId=ev["channelInfo"]["channelId"],
            account=ev["fromAccountId"],
            requestId=ev["requestId"],
            autoJoin=True,
        )
        fut.add_done_callback(lambda f: (out.__setitem__("accept", f.result()), done.set()))

    bob.on("online", on_invite)
    alice.call(type=1, account="bob", requestId="r-h")
    assert done.wait(10), out
    assert "deadlock" in out["blocking"]
    assert sorted(m["account"] for m in out["accept"]["members"]) == ["alice", "bob"]
    alice.events.expect_event("ACCEPT")


def test_sync_lists_rooms(make_client):
    alice = make_client("alice")
    cid = alice.create(type=1)["channelInfo"]["channelId"]
    alice.join(channelId=cid)
    s = alice.sync()
    assert s["code"] == 200 and isinstance(s["eventList"], list)
    assert [c["channelInfo"]["channelId"] for c in s["channels"]] == [cid]


def test_close_frees_and_is_idempotent(server):
    c = ns.Client({"serverUrl": server.url, "account": "erin"})
    c.login()
    with pytest.raises(TypeError, match="close_channel"):
        c.close(channelId="x")
    assert not c.closed
    c.close()
    c.close()
    assert c.closed
    with pytest.raises(SignalingError) as e:
        c.create(type=1)
    assert e.value.code == 415
    with pytest.raises(ValueError):
        c.on("nope", print)


def test_pending_requests_end_at_close(server):
    # Requests still pending when the client is freed complete with 415.
    c = ns.Client({"serverUrl": server.url, "account": "frank"})
    c.login()
    futs = [c.submit("create", type=1) for _ in range(20)]
    c.close()
    for f in futs:
        assert f.done()
        exc = f.exception()
        assert exc is None or exc.code == 415


def test_library_not_found_names_what_was_tried(tmp_path):
    missing = str(tmp_path / "libnope.so")
    env = dict(os.environ, NIM_SIGNALING_LIB=missing)
    code = "import nim_signaling as ns\ntry:\n    ns.version()\nexcept ns.LibraryNotFoundError as e:\n    print(e)\n"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert missing in out.stdout and "NIM_SIGNALING_LIB" in out.stdout, out.stdout
