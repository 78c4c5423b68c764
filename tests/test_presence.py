"""Offline-only sending with presence kept in the database: two app server
processes (gunicorn) share one database, and the test process decides who is
online from what they wrote."""
import signal
import time

import pytest
from conftest import Browser, wait_until

from flaskpush.models import SocketPresence, User
from flaskpush.push.delivery import send_to_user

HEARTBEAT = 1

pytestmark = pytest.mark.app_config(ALLOW_INSECURE_ENDPOINTS=True, PRESENCE_HEARTBEAT=HEARTBEAT)


@pytest.fixture
def servers(app, gunicorn):
    """Two app servers; the test's own ``app`` created the instance folder first."""
    settings = {"ALLOW_INSECURE_ENDPOINTS": True, "PRESENCE_HEARTBEAT": HEARTBEAT}
    return [gunicorn(threads=8, **settings), gunicorn(threads=8, **settings)]


@pytest.fixture
def alice(servers, push_service):
    """Alice signed up on server A, with one push subscription."""
    browser = Browser(servers[0].url)
    assert browser.register("alice").status_code == 200
    sock = browser.socket()
    assert sock.call("push_subscribe", subscription=push_service.new_subscription())["success"]
    sock.close()
    wait_until(lambda: SocketPresence.select().count() == 0, timeout=10)
    yield browser
    browser.close()


def notify(app, **options):
    with app.app_context():
        user = User.get(User.name == "alice")
        return send_to_user(user, "Ping", "you have mail", **options).result(15)


def test_a_socket_on_any_server_makes_the_user_online(app, servers, alice, push_service):
    on_a, on_b = alice.socket(), Browser(servers[1].url)
    on_b.http.cookies.update(alice.http.cookies)
    on_b = on_b.socket()
    wait_until(lambda: SocketPresence.select().count() == 2, timeout=10)  # each server's first beat
    assert notify(app, only_if_offline=True) == []
    on_a.close()
    assert notify(app, only_if_offline=True) == []
    assert push_service.requests == []
    [result] = notify(app)
    assert result.outcome == "sent"
    on_b.close()
    wait_until(lambda: SocketPresence.select().count() == 0, timeout=10)
    [result] = notify(app, only_if_offline=True)
    assert result.outcome == "sent"
    assert [m.json()["title"] for m in push_service.messages()] == ["Ping", "Ping"]


def test_a_killed_server_s_sockets_go_stale(app, servers, alice, push_service):
    sock = Browser(servers[1].url)
    sock.http.cookies.update(alice.http.cookies)
    sock.socket()
    wait_until(lambda: SocketPresence.select().count() == 1, timeout=10)
    assert notify(app, only_if_offline=True) == []
    servers[1].signal(signal.SIGKILL)
    servers[1].process.wait()
    started = time.time()
    wait_until(lambda: notify(app, only_if_offline=True) != [], timeout=5 * HEARTBEAT + 5)
    assert time.time() - started >= 2 * HEARTBEAT
    assert SocketPresence.select().count() == 1  # nobody cleared it: it went stale
    [message] = push_service.messages()
    assert message.json() == {"title": "Ping", "body": "you have mail"}
