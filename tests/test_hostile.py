"""Hostile input: arbitrary frames at a live socket, floods, guessing, caps."""
import json

import pytest
from conftest import make_subscription
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flaskpush.commands import CommandError
from flaskpush.models import PushSubscription
from flaskpush.push.validation import validate_subscription

REPLIES = {"error", "push_vapid", "push_subscribed", "push_unsubscribed"}
COMMANDS = ["push_get_vapid", "push_subscribe", "push_unsubscribe", "nope", ""]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20,
)
subscription_like = st.fixed_dictionaries(
    {},
    optional={
        "endpoint": st.one_of(json_values, st.sampled_from([
            "https://push.example.com/x", "http://127.0.0.1/x", "https://[::1]/", "https://a@b/", "https://" + "x" * 3000,
        ])),
        "keys": st.one_of(json_values, st.fixed_dictionaries({}, optional={"p256dh": json_values, "auth": json_values})),
        "expirationTime": json_values,
    },
)
commands = st.builds(
    lambda cmd, extra: json.dumps({"cmd": cmd, **extra}),
    st.one_of(st.sampled_from(COMMANDS), json_values),
    st.dictionaries(st.sampled_from(["subscription", "endpoint", "x"]), st.one_of(json_values, subscription_like)),
)
frames = st.one_of(
    commands,
    st.text(max_size=200),
    st.binary(max_size=200),
    st.builds(json.dumps, json_values),
    st.integers(1, 20000).map(lambda n: "[" * n + "]" * n),
    st.integers(1, 20000).map(lambda n: '{"a":' * n + "1" + "}" * n),
    st.integers(1, 60000).map(lambda n: json.dumps({"cmd": "push_subscribe", "subscription": {"endpoint": "x" * n}})),
).filter(lambda frame: len(frame if isinstance(frame, bytes) else frame.encode()) < 64 * 1024)
# Larger frames close the socket with 1009: see test_socket.py.


def send_raw(ws, frame):
    (ws.ws.send_binary if isinstance(frame, bytes) else ws.ws.send)(frame)
    return json.loads(ws.ws.recv())


@pytest.mark.app_config(WS_COMMAND_RATE=10_000, WS_COMMAND_BURST=10_000)
def test_arbitrary_frames_get_well_formed_replies(alice):
    ws = alice.ws

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(frames)
    def check(frame):
        reply = send_raw(ws, frame)
        assert isinstance(reply, dict) and reply["cmd"] in REPLIES
        if reply["cmd"] == "error":
            assert reply["src"] is None or isinstance(reply["src"], str)
            assert isinstance(reply["val"], str) and reply["val"]

    check()
    assert ws.call("push_get_vapid")["cmd"] == "push_vapid"  # still alive
    for row in PushSubscription.select():
        validate_subscription(row.info())  # nothing stored that breaks validation


def test_valid_subscriptions_survive_random_noise(alice):
    sub = make_subscription()
    assert alice.ws.call("push_subscribe", subscription=sub)["success"]
    stored = validate_subscription(sub)
    assert validate_subscription(PushSubscription.get().info()).p256dh == stored.p256dh
    with pytest.raises(CommandError):
        validate_subscription({**sub, "endpoint": "https://[::1]/"})


@pytest.mark.app_config(WS_COMMAND_RATE=1, WS_COMMAND_BURST=5)
def test_command_flood_is_rate_limited(alice):
    replies = [alice.ws.call("push_get_vapid") for _ in range(8)]
    assert [r["cmd"] for r in replies[:5]] == ["push_vapid"] * 5
    assert replies[5] == {"cmd": "error", "src": "push_get_vapid", "val": "Too many commands; slow down"}
    assert alice.ws.send("junk")["val"] == "Too many commands; slow down"


@pytest.mark.app_config(MAX_SUBSCRIPTIONS_PER_USER=3)
def test_per_user_subscription_cap(alice):
    subs = [make_subscription(f"https://push.example.com/{i}") for i in range(4)]
    for sub in subs[:3]:
        assert alice.ws.call("push_subscribe", subscription=sub)["success"]
    assert alice.ws.call("push_subscribe", subscription=subs[3]) == {
        "cmd": "error", "src": "push_subscribe", "val": "Too many subscriptions for this user (at most 3)"}
    # Re-subscribing an endpoint already held is an update, not a new one.
    assert alice.ws.call("push_subscribe", subscription=make_subscription(subs[0]["endpoint"]))["success"]
    assert PushSubscription.select().count() == 3


@pytest.mark.app_config(LOGIN_MAX_FAILURES=3, LOGIN_LOCKOUT=60)
def test_password_guessing_is_throttled(client):
    client.post("/register", json={"username": "alice", "password": "correct horse"})
    client.post("/logout", json={})
    for guess in ("guess one", "guess two", "guess three"):
        assert client.post("/login", json={"username": "alice", "password": guess}).status_code == 401
    locked = client.post("/login", json={"username": "alice", "password": "correct horse"})
    assert locked.status_code == 429 and 0 < int(locked.headers["Retry-After"]) <= 60
    assert "Too many failed sign-ins" in locked.json["error"]


@pytest.mark.app_config(LOGIN_MAX_FAILURES=3)
def test_success_resets_the_failure_count(client):
    """Two failures, a success, two more: four in all, but never three in a
    row, so no lockout (without the reset the fourth would lock the name)."""
    client.post("/register", json={"username": "alice", "password": "correct horse"})
    for _ in range(2):
        assert client.post("/login", json={"username": "alice", "password": "wrong guess"}).status_code == 401
    assert client.post("/login", json={"username": "alice", "password": "correct horse"}).status_code == 200
    for _ in range(2):
        assert client.post("/login", json={"username": "alice", "password": "wrong guess"}).status_code == 401
    assert client.post("/login", json={"username": "alice", "password": "correct horse"}).status_code == 200
