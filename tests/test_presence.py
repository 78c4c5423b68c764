"""Offline-only sending with presence kept in the database: two app server
processes (gunicorn) share one database, and the test process decides who is
online from what they wrote."""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from conftest import Browser

from flaskpush.models import SocketPresence, User
from flaskpush.push.delivery import send_to_user

ROOT = Path(__file__).resolve().parents[1]
HEARTBEAT = 1

pytestmark = pytest.mark.app_config(ALLOW_INSECURE_ENDPOINTS=True, PRESENCE_HEARTBEAT=HEARTBEAT)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(db_url):
    """``gunicorn -k gthread`` as production runs it, in its own process group."""
    port = free_port()
    env = {**os.environ, "FLASKPUSH_DATABASE": db_url, "FLASKPUSH_ALLOW_INSECURE_ENDPOINTS": "true",
           "FLASKPUSH_PRESENCE_HEARTBEAT": str(HEARTBEAT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-k", "gthread", "--threads", "8",
         "-b", f"127.0.0.1:{port}", "wsgi:app"],
        cwd=ROOT, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            requests.get(url + "/", timeout=5)
            return process, url
        except requests.RequestException:
            time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)
    raise RuntimeError("gunicorn did not start")


@pytest.fixture
def servers(app, db_url):
    """Two app servers; the test's own ``app`` created the instance folder first."""
    started = [start_server(db_url), start_server(db_url)]
    yield started
    for process, _ in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def alice(servers, push_service):
    """Alice signed up on server A, with one push subscription."""
    browser = Browser(servers[0][1])
    assert browser.register("alice").status_code == 200
    sock = browser.socket()
    assert sock.call("push_subscribe", subscription=push_service.new_subscription())["success"]
    sock.close()
    wait_until(lambda: SocketPresence.select().count() == 0)
    yield browser
    browser.close()


def wait_until(condition, timeout=10):
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "condition not reached"
        time.sleep(0.1)


def notify(app, **options):
    with app.app_context():
        user = User.get(User.name == "alice")
        return send_to_user(user, "Ping", "you have mail", **options).result(15)


def test_a_socket_on_any_server_makes_the_user_online(app, servers, alice, push_service):
    on_a, on_b = alice.socket(), Browser(servers[1][1])
    on_b.http.cookies.update(alice.http.cookies)
    on_b = on_b.socket()
    wait_until(lambda: SocketPresence.select().count() == 2)  # each server's first beat
    assert notify(app, only_if_offline=True) == []
    on_a.close()
    assert notify(app, only_if_offline=True) == []
    assert push_service.requests == []
    [result] = notify(app)
    assert result.outcome == "sent"
    on_b.close()
    wait_until(lambda: SocketPresence.select().count() == 0)
    [result] = notify(app, only_if_offline=True)
    assert result.outcome == "sent"
    assert [m.json()["title"] for m in push_service.messages()] == ["Ping", "Ping"]


def test_a_killed_server_s_sockets_go_stale(app, servers, alice, push_service):
    process, url = servers[1]
    sock = Browser(url)
    sock.http.cookies.update(alice.http.cookies)
    sock.socket()
    wait_until(lambda: SocketPresence.select().count() == 1)
    assert notify(app, only_if_offline=True) == []
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    started = time.time()
    wait_until(lambda: notify(app, only_if_offline=True) != [], timeout=5 * HEARTBEAT + 5)
    assert time.time() - started >= 2 * HEARTBEAT
    assert SocketPresence.select().count() == 1  # nobody cleared it: it went stale
    [message] = push_service.messages()
    assert message.json() == {"title": "Ping", "body": "you have mail"}
