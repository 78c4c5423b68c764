"""The device list commands over a real socket: ``push_list_devices`` shows a
user their own subscriptions, ``push_remove_device`` removes one by id."""
from datetime import datetime

import pytest

from conftest import make_subscription

from flaskpush.models import PushSubscription

REMOVED = {"cmd": "push_device_removed", "success": True}


def err(cmd, val):
    return {"cmd": "error", "src": cmd, "val": val}


def subscribe(browser, endpoint):
    sub = make_subscription(endpoint)
    assert browser.ws.call("push_subscribe", subscription=sub)["success"] is True
    return PushSubscription.get(PushSubscription.endpoint == endpoint).id


@pytest.fixture
def bob(browser_factory):
    bob = browser_factory()
    assert bob.register("bob").status_code == 200
    bob.ws = bob.socket()
    return bob


def test_no_devices(alice):
    assert alice.ws.call("push_list_devices") == {"cmd": "push_devices", "devices": []}


def test_lists_own_devices_and_marks_this_browser(alice, bob):
    first = subscribe(alice, "https://push.example.com/send/1")
    second = subscribe(alice, "https://updates.push.example.net/wpush/v2/2")
    subscribe(bob, "https://push.example.com/send/bob")

    reply = alice.ws.call("push_list_devices", endpoint="https://updates.push.example.net/wpush/v2/2")
    assert reply["cmd"] == "push_devices"
    devices = reply["devices"]
    assert [(d["id"], d["push_service"], d["current"]) for d in devices] == [
        (first, "push.example.com", False), (second, "updates.push.example.net", True)]
    for d in devices:
        assert datetime.fromisoformat(d["created_at"]).utcoffset().total_seconds() == 0
        assert d["last_success_at"] is None
        assert isinstance(d["user_agent"], str)
    assert not any(d["current"] for d in alice.ws.call("push_list_devices")["devices"])


def test_remove_own_device(alice):
    gone = subscribe(alice, "https://push.example.com/send/1")
    kept = subscribe(alice, "https://push.example.com/send/2")
    assert alice.ws.call("push_remove_device", id=gone) == REMOVED
    assert [d["id"] for d in alice.ws.call("push_list_devices")["devices"]] == [kept]
    assert alice.ws.call("push_remove_device", id=gone) == REMOVED  # already gone: still success


def test_another_users_device_is_left_alone(alice, bob):
    theirs = subscribe(bob, "https://push.example.com/send/bob")
    assert alice.ws.call("push_remove_device", id=theirs) == REMOVED
    assert PushSubscription.get_by_id(theirs).user.name == "bob"
    assert [d["id"] for d in bob.ws.call("push_list_devices")["devices"]] == [theirs]


@pytest.mark.parametrize("fields", [{}, {"id": None}, {"id": "1"}, {"id": 1.5}, {"id": True},
                                    {"id": [1]}, {"id": 0}, {"id": 2**31}])
def test_invalid_device_id(alice, fields):
    mine = subscribe(alice, "https://push.example.com/send/1")
    assert alice.ws.call("push_remove_device", **fields) == err("push_remove_device", "Invalid device id")
    assert PushSubscription.get_by_id(mine)


def test_signed_out_socket_cannot_list_or_remove(browser):
    ws = browser.socket()
    assert ws.call("push_list_devices") == err("push_list_devices", "Not authenticated")
    assert ws.call("push_remove_device", id=1) == err("push_remove_device", "Not authenticated")
