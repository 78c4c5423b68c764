"""The production shape: four gunicorn gthread workers sharing one database."""
from conftest import Browser, make_subscription

from flaskpush.models import PushSubscription, SocketPresence


def test_four_workers_share_sessions_subscriptions_and_presence(app, gunicorn):
    # A socket holds a thread for life, and nothing stops one worker from
    # accepting all eight of alice's: each worker has room for them all.
    url = gunicorn(workers=4, threads=16).url
    alice, bob = Browser(url), Browser(url)
    assert alice.register("alice").json() == {"ok": True, "user": "alice"}
    assert bob.register("bob").json() == {"ok": True, "user": "bob"}
    sockets = [alice.socket() for _ in range(8)]  # spread over the workers
    for i, ws in enumerate(sockets):
        assert ws.call("push_subscribe", subscription=make_subscription(f"https://push.example.com/{i}"))["success"]
    # A subscription made through one worker is refused to bob on any other.
    bob_ws = bob.socket()
    stolen = make_subscription("https://push.example.com/0")
    assert bob_ws.call("push_subscribe", subscription=stolen)["val"] == "Endpoint registered to another user"
    assert PushSubscription.select().count() == 8
    assert {p.user.name for p in SocketPresence.select()} == {"alice", "bob"}
    assert SocketPresence.select().count() == 9

    alice.logout()  # through whichever worker takes it: every socket sees it
    for ws in sockets:
        assert ws.call("push_unsubscribe", endpoint="https://push.example.com/0")["val"] == "Not authenticated"
    assert PushSubscription.select().count() == 0
    assert [p.user.name for p in SocketPresence.select()] == ["bob"]
    alice.close()
    bob.close()
