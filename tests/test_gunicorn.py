"""The production shape: gunicorn gthread workers sharing one database."""
from conftest import Browser, make_subscription

from flaskpush.models import PushSubscription


def test_gunicorn_serves_login_and_socket(app, gunicorn):
    url = gunicorn(workers=2, threads=8)
    browser = Browser(url)
    assert browser.register("alice").json() == {"ok": True, "user": "alice"}
    sockets = [browser.socket() for _ in range(4)]  # spread over both workers
    for i, ws in enumerate(sockets):
        assert ws.call("push_subscribe", subscription=make_subscription(f"https://push.example.com/{i}"))["success"]
    assert PushSubscription.select().count() == 4
    browser.logout()
    for ws in sockets:
        assert ws.call("push_unsubscribe", endpoint="https://push.example.com/0")["val"] == "Not authenticated"
    assert PushSubscription.select().count() == 0
    browser.close()
