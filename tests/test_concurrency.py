"""Many sockets writing at once: no lock errors, no duplicates, no lost rows."""
import random
import threading

from conftest import make_subscription

from flaskpush.models import PushSubscription

THREADS = 32
ROUNDS = 15


def test_32_sockets_subscribe_and_unsubscribe_at_once(browser_factory):
    users = []
    for i in range(4):
        b = browser_factory()
        assert b.register(f"user{i}").status_code == 200
        users.append(b)
    # Four shared endpoints, each re-subscribed with its owner's keys from
    # many sockets, plus one private endpoint per thread.
    shared = [make_subscription(f"https://push.example.com/shared/{i}") for i in range(4)]
    failures = []
    final_private = {}

    def worker(n):
        owner = n % 4
        ws = users[owner].socket(timeout=30)
        rng = random.Random(n)
        mine = make_subscription(f"https://push.example.com/own/{n}")
        subscribed = False
        for _ in range(ROUNDS):
            action = rng.choice(["shared", "mine", "drop"])
            if action == "shared":
                reply = ws.call("push_subscribe", subscription=shared[owner])
                expected = {"cmd": "push_subscribed", "success": True}
            elif action == "mine":
                reply, subscribed = ws.call("push_subscribe", subscription=mine), True
                expected = {"cmd": "push_subscribed", "success": True}
            else:
                reply, subscribed = ws.call("push_unsubscribe", endpoint=mine["endpoint"]), False
                expected = {"cmd": "push_unsubscribed", "success": True}
            if reply != expected:
                failures.append((n, action, reply))
        # Someone else's shared endpoint is refused every time.
        other = shared[(owner + 1) % 4]
        reply = ws.call("push_subscribe", subscription={**other, "keys": mine["keys"]})
        if reply.get("val") != "Endpoint registered to another user":
            failures.append((n, "steal", reply))
        final_private[mine["endpoint"]] = subscribed

    # Every shared endpoint exists before the race, so the steal check is deterministic.
    for owner, sub in enumerate(shared):
        assert users[owner].socket().call("push_subscribe", subscription=sub)["success"]
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not failures, failures[:5]
    rows = {row.endpoint: row for row in PushSubscription.select()}
    expected = {s["endpoint"] for s in shared} | {e for e, on in final_private.items() if on}
    assert set(rows) == expected
    assert PushSubscription.select().count() == len(expected)  # no duplicates
    for owner, sub in enumerate(shared):
        assert rows[sub["endpoint"]].user.name == f"user{owner}"
