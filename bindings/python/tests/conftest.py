"""Fixtures: an embedded server per test and clients closed at teardown.

Events arrive on library threads; tests wait for them through queues with
timeouts (EventLog.expect), never by sleeping.
"""

import queue
import time

import pytest

import nim_signaling as ns

WAIT_S = 10.0


class EventLog:
    """Collects what one notification handler receives."""

    def __init__(self, name):
        self.name = name
        self.q = queue.Queue()
        self.seen = []

    def __call__(self, payload):
        self.q.put(payload)

    def expect(self, pred=None, timeout=WAIT_S, what="a payload"):
        """The next payload matching pred (others are kept in .seen);
        fails naming everything received when none comes in time."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail("%s: no %s within %.0f s; received %r" % (self.name, what, timeout, self.seen))
            try:
                p = self.q.get(timeout=left)
            except queue.Empty:
                continue
            self.seen.append(p)
            if pred is None or pred(p):
                return p

    def expect_event(self, event_type, timeout=WAIT_S):
        return self.expect(lambda e: e.get("eventType") == event_type, timeout, what=event_type)


class Party:
    """A client plus an EventLog per notification."""

    def __init__(self, client):
        self.client = client
        self.logs = {name: EventLog("%s/%s" % (client.account, name)) for name in ns.EVENTS}
        for name, log in self.logs.items():
            client.on(name, log)

    def __getattr__(self, item):
        return getattr(self.client, item)

    @property
    def events(self):
        return self.logs["online"]


@pytest.fixture
def server():
    with ns.Server() as srv:
        yield srv


@pytest.fixture
def make_client(server):
    made = []

    def make(account, login=True, **config):
        cfg = {"serverUrl": server.url, "account": account, "token": "", "requestTimeoutMs": 5000}
        cfg.update(config)
        p = Party(ns.Client(cfg))
        made.append(p)
        if login:
            res = p.login()
            assert res["code"] == 200 and res["account"] == account
        return p

    yield make
    for p in made:
        p.client.close()
