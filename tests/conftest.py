"""Fixtures: a fresh app and database per test, a real threaded server, and
helpers that use the site the way a browser does (HTTP login, then a
WebSocket carrying the session cookie).

The database is SQLite in the test's temporary folder, or the PostgreSQL
server named by ``FLASKPUSH_TEST_DATABASE`` (emptied before each test).
"""
import base64
import json
import os
import secrets
import threading

import pytest
import requests
import websocket
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from werkzeug.serving import make_server

from flaskpush import create_app
from flaskpush.db import database, open_database
from flaskpush.models import MODELS

TEST_DATABASE = os.environ.get("FLASKPUSH_TEST_DATABASE", "")


def empty_database(url):
    """Drop every flaskpush table so the app recreates them empty."""
    db = open_database(url)
    with db.connection_context():
        for model in MODELS:
            db.execute_sql(f'DROP TABLE IF EXISTS "{model._meta.table_name}" CASCADE')
    db.close_all()


@pytest.fixture
def instance_path(tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.startswith("FLASKPUSH_") and name != "FLASKPUSH_TEST_DATABASE":
            monkeypatch.delenv(name)
    path = tmp_path / "instance"
    monkeypatch.setenv("FLASKPUSH_INSTANCE_PATH", str(path))
    return path


@pytest.fixture
def db_url(instance_path):
    if TEST_DATABASE:
        empty_database(TEST_DATABASE)
        return TEST_DATABASE
    return f"sqlite:///{instance_path}/flaskpush.sqlite3"


@pytest.fixture
def app_config(request, db_url):
    """The test config; ``@pytest.mark.app_config(NAME=value)`` adds to it."""
    config = {"TESTING": True, "DATABASE": db_url, "ALLOW_INSECURE_ENDPOINTS": False}
    for marker in request.node.iter_markers("app_config"):
        config.update(marker.kwargs)
    return config


@pytest.fixture
def app(app_config):
    app = create_app(app_config)
    yield app
    pooled = getattr(database.obj, "close_all", None)
    if pooled:
        pooled()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def server(app):
    """The app under werkzeug's threaded server on a loopback port."""
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    thread.join(5)


class Socket:
    """A real WebSocket client speaking the flaskpush protocol."""

    def __init__(self, base_url, cookies=None, origin=None, timeout=10):
        headers = {}
        if cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        self.ws = websocket.create_connection(
            base_url.replace("http", "ws", 1) + "/ws",
            header=[f"{k}: {v}" for k, v in headers.items()],
            origin=origin or base_url,
            timeout=timeout,
        )

    def send(self, frame):
        self.ws.send(frame if isinstance(frame, str) else json.dumps(frame))
        return json.loads(self.ws.recv())

    def call(self, cmd, **fields):
        return self.send({"cmd": cmd, **fields})

    def close(self):
        self.ws.close()


class Browser:
    """One browser: an HTTP session with its cookie jar, and its sockets."""

    def __init__(self, base_url):
        self.base_url = base_url
        self.http = requests.Session()
        self.sockets = []

    def register(self, username="alice", password="correct horse"):
        return self.http.post(f"{self.base_url}/register", json={"username": username, "password": password})

    def login(self, username="alice", password="correct horse"):
        return self.http.post(f"{self.base_url}/login", json={"username": username, "password": password})

    def logout(self):
        return self.http.post(f"{self.base_url}/logout", json={})

    def socket(self, **kwargs):
        sock = Socket(self.base_url, self.http.cookies.get_dict(), **kwargs)
        self.sockets.append(sock)
        return sock

    def close(self):
        for sock in self.sockets:
            sock.close()


@pytest.fixture
def browser_factory(server):
    browsers = []

    def make():
        browsers.append(Browser(server))
        return browsers[-1]

    yield make
    for b in browsers:
        b.close()


@pytest.fixture
def browser(browser_factory):
    return browser_factory()


def make_subscription(endpoint="https://push.example.com/send/abc"):
    """A browser-shaped subscription with a real P-256 key and auth secret."""
    point = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )

    def b64(raw):
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return {"endpoint": endpoint, "expirationTime": None,
            "keys": {"p256dh": b64(point), "auth": b64(secrets.token_bytes(16))}}


@pytest.fixture
def alice(browser):
    """A signed-up, signed-in browser with an open socket."""
    assert browser.register("alice").status_code == 200
    browser.ws = browser.socket()
    return browser
