"""Every row of the contract's protocol table, over a real socket."""
import json
import os

import pytest

from conftest import make_subscription

from flaskpush.models import PushSubscription


def test_get_vapid_needs_no_user(app, browser):
    reply = browser.socket().call("push_get_vapid")
    assert reply["cmd"] == "push_vapid"
    assert reply["key"] == app.test_cli_runner().invoke(args=["push", "keys"]).output.strip()
    assert len(reply["key"]) == 87 and "=" not in reply["key"]


@pytest.mark.app_config(VAPID_PRIVATE_KEY="/nonexistent/vapid_private.pem")
def test_get_vapid_with_configured_missing_key(browser):
    reply = browser.socket().call("push_get_vapid")
    assert reply == {"cmd": "error", "src": "push_get_vapid", "val": "VAPID keys not configured on this server"}
    assert not os.path.exists("/nonexistent/vapid_private.pem")


def test_subscribe_and_unsubscribe(alice):
    sub = make_subscription()
    assert alice.ws.call("push_subscribe", subscription=sub) == {"cmd": "push_subscribed", "success": True}
    row = PushSubscription.get(PushSubscription.endpoint == sub["endpoint"])
    assert (row.user.name, row.p256dh, row.auth) == ("alice", sub["keys"]["p256dh"], sub["keys"]["auth"])
    assert alice.ws.call("push_unsubscribe", endpoint=sub["endpoint"]) == {"cmd": "push_unsubscribed", "success": True}
    assert PushSubscription.select().count() == 0


def test_unauthenticated_socket_is_accepted_but_refused_commands(browser):
    ws = browser.socket()
    for cmd, fields in [("push_subscribe", {"subscription": make_subscription()}),
                        ("push_unsubscribe", {"endpoint": "https://push.example.com/x"})]:
        assert ws.call(cmd, **fields) == {"cmd": "error", "src": cmd, "val": "Not authenticated"}
    assert PushSubscription.select().count() == 0


def err(cmd, val):
    return {"cmd": "error", "src": cmd, "val": val}


MISSING = "subscription must include endpoint, keys.p256dh and keys.auth"


def test_subscribe_error_reasons(alice):
    good = make_subscription()
    cases = [
        ({}, "Missing subscription object"),
        ({"subscription": None}, "Missing subscription object"),
        ({"subscription": "https://x"}, "Missing subscription object"),
        ({"subscription": {}}, MISSING),
        ({"subscription": {**good, "endpoint": ""}}, MISSING),
        ({"subscription": {**good, "endpoint": None}}, MISSING),
        ({"subscription": {"endpoint": good["endpoint"]}}, MISSING),
        ({"subscription": {**good, "keys": {"p256dh": good["keys"]["p256dh"]}}}, MISSING),
        ({"subscription": {**good, "keys": {"p256dh": "", "auth": good["keys"]["auth"]}}}, MISSING),
        ({"subscription": {**good, "endpoint": 42}}, "Invalid endpoint"),
        ({"subscription": {**good, "endpoint": "http://push.example.com/x"}}, "Invalid endpoint"),
        ({"subscription": {**good, "endpoint": "https://127.0.0.1/x"}}, "Invalid endpoint"),
        ({"subscription": {**good, "keys": "abc"}}, "Invalid subscription keys"),
        ({"subscription": {**good, "keys": {**good["keys"], "auth": "AAAA"}}}, "Invalid subscription keys"),
        ({"subscription": {**good, "keys": {**good["keys"], "p256dh": "A" * 87}}}, "Invalid subscription keys"),
    ]
    for fields, reason in cases:
        assert alice.ws.call("push_subscribe", **fields) == err("push_subscribe", reason), fields
    assert PushSubscription.select().count() == 0


def test_unsubscribe_missing_endpoint(alice):
    for fields in ({}, {"endpoint": ""}, {"endpoint": None}):
        assert alice.ws.call("push_unsubscribe", **fields) == err("push_unsubscribe", "Missing endpoint")


def test_unsubscribe_unknown_endpoint_succeeds(alice):
    reply = alice.ws.call("push_unsubscribe", endpoint="https://push.example.com/never")
    assert reply == {"cmd": "push_unsubscribed", "success": True}


def test_resubscribe_updates_keys_without_duplicate(alice):
    sub = make_subscription()
    alice.ws.call("push_subscribe", subscription=sub)
    newer = make_subscription(sub["endpoint"])
    assert alice.ws.call("push_subscribe", subscription=newer)["success"] is True
    rows = list(PushSubscription.select())
    assert len(rows) == 1 and rows[0].p256dh == newer["keys"]["p256dh"]


def test_one_user_many_subscriptions(alice):
    for i in range(3):
        alice.ws.call("push_subscribe", subscription=make_subscription(f"https://push.example.com/{i}"))
    assert PushSubscription.select().count() == 3


def test_endpoint_of_another_user(alice, browser_factory):
    sub = make_subscription()
    alice.ws.call("push_subscribe", subscription=sub)
    bob = browser_factory()
    bob.register("bob")
    bob_ws = bob.socket()
    stolen = make_subscription(sub["endpoint"])
    assert bob_ws.call("push_subscribe", subscription=stolen) == err("push_subscribe", "Endpoint registered to another user")
    row = PushSubscription.get()
    assert (row.user.name, row.p256dh) == ("alice", sub["keys"]["p256dh"])
    # Bob cannot remove it either; the reply is still success.
    assert bob_ws.call("push_unsubscribe", endpoint=sub["endpoint"])["success"] is True
    assert PushSubscription.select().count() == 1
    # The same browser (same keys) signed in as bob takes it over.
    assert bob_ws.call("push_subscribe", subscription=sub) == {"cmd": "push_subscribed", "success": True}
    assert PushSubscription.get().user.name == "bob"


def test_bad_frames_keep_socket_open(alice):
    ws = alice.ws
    for frame in ["not json", "[1, 2]", '"cmd"', "{}", '{"cmd": 5}', "null"]:
        reply = ws.send(frame)
        assert reply["cmd"] == "error" and reply["src"] is None and reply["val"], frame
    assert ws.call("nope") == err("nope", "Unknown command")
    assert ws.call("push_get_vapid")["cmd"] == "push_vapid"


def test_binary_frame_is_parsed_as_text(alice):
    alice.ws.ws.send_binary(json.dumps({"cmd": "push_get_vapid"}).encode())
    assert json.loads(alice.ws.ws.recv())["cmd"] == "push_vapid"
    alice.ws.ws.send_binary(b"\xff\xfe")
    assert json.loads(alice.ws.ws.recv()) == err(None, "Frame is not valid UTF-8")
