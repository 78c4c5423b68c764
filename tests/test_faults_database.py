"""The database goes away mid-traffic: commands answer the contract's
"Failed to ..." reasons, sockets stay open, and service resumes by itself."""
import sqlite3
from urllib.parse import urlsplit

import pytest
from conftest import make_subscription
from tcpproxy import TcpProxy

from flaskpush.models import PushSubscription

SUBSCRIBED = {"cmd": "push_subscribed", "success": True}
UNSUBSCRIBED = {"cmd": "push_unsubscribed", "success": True}


def failed(cmd, val):
    return {"cmd": "error", "src": cmd, "val": val}


def exercise_outage(ws, break_db, mend_db):
    sub = make_subscription()
    assert ws.call("push_subscribe", subscription=sub) == SUBSCRIBED
    break_db()
    other = make_subscription("https://push.example.com/during-outage")
    assert ws.call("push_subscribe", subscription=other) == failed("push_subscribe", "Failed to save subscription")
    assert ws.call("push_unsubscribe", endpoint=sub["endpoint"]) == failed(
        "push_unsubscribe", "Failed to remove subscription")
    assert ws.call("push_get_vapid")["cmd"] == "push_vapid"  # needs no database
    mend_db()
    assert ws.call("push_subscribe", subscription=other) == SUBSCRIBED
    assert ws.call("push_unsubscribe", endpoint=sub["endpoint"]) == UNSUBSCRIBED
    assert [s.endpoint for s in PushSubscription.select()] == [other["endpoint"]]


@pytest.fixture
def outage(db_url):
    """(break, mend) for the backend under test, and the URL the app must use.

    SQLite: another process holds the write lock longer than the app waits.
    PostgreSQL: the network path to the server is cut, then restored.
    """
    if db_url.startswith("sqlite"):
        path = db_url[len("sqlite:///"):]
        blocker = {}

        def lock():
            blocker["conn"] = sqlite3.connect(path, isolation_level=None)
            blocker["conn"].execute("BEGIN EXCLUSIVE")

        def unlock():
            blocker.pop("conn").close()

        yield lock, unlock, db_url
        return
    parts = urlsplit(db_url)
    proxy = TcpProxy(parts.hostname, parts.port or 5432)
    yield proxy.cut, proxy.restore, db_url.replace(parts.netloc.split("@")[-1], f"127.0.0.1:{proxy.port}")
    proxy.close()


@pytest.fixture
def app_config(app_config, outage):
    return {**app_config, "DATABASE": outage[2], "DATABASE_TIMEOUT": 1}


def test_commands_fail_cleanly_while_the_database_is_away(alice, outage):
    break_db, mend_db, _ = outage
    exercise_outage(alice.ws, break_db, mend_db)
