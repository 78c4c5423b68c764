"""Fixtures: a fresh app and database per test, a real threaded server, and
helpers that use the site the way a browser does (HTTP login, then a
WebSocket carrying the session cookie).

Every test that uses the database runs on SQLite in its temporary folder,
and again on PostgreSQL: the server ``FLASKPUSH_TEST_DATABASE`` names
(default: the local one at 127.0.0.1:5432, database ``test``), where a private
database is created for the run and emptied before each test. Set it to
``off`` to run on SQLite alone.
"""
import base64
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

import pytest
import requests
import websocket
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from werkzeug.serving import make_server

from flaskpush import create_app
from flaskpush.db import database, open_database
from flaskpush.models import MODELS

ROOT = Path(__file__).resolve().parents[1]
TEST_DATABASE = os.environ.get("FLASKPUSH_TEST_DATABASE", "postgresql://postgres@127.0.0.1:5432/test")
POSTGRES = TEST_DATABASE.lower() != "off"


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


@pytest.fixture(scope="session")
def postgres_url():
    """A private PostgreSQL database for this test run, dropped at the end,
    so concurrent runs against one server never see each other's tables."""
    import psycopg2

    name = f"flaskpush_test_{os.getpid()}_{secrets.token_hex(3)}"
    admin = psycopg2.connect(TEST_DATABASE)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    yield TEST_DATABASE.rsplit("/", 1)[0] + "/" + name
    admin.cursor().execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture(params=["sqlite", "postgresql"] if POSTGRES else ["sqlite"])
def db_url(request, instance_path):
    """Each test runs on SQLite, and again on PostgreSQL."""
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
        empty_database(url)
        return url
    return f"sqlite:///{instance_path}/flaskpush.sqlite3"


@pytest.fixture
def app_config(request, db_url):
    """The test config; ``@pytest.mark.app_config(NAME=value)`` adds to it."""
    config = {"TESTING": True, "DATABASE": db_url, "ALLOW_INSECURE_ENDPOINTS": False}
    for marker in reversed(list(request.node.iter_markers("app_config"))):  # closest wins
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
    """The app under werkzeug's threaded server on a loopback port.

    At the end every connection still open is cut and every request thread
    joined, so no WebSocket handler of this test is still using the database
    when the ``app`` fixture closes its pool (closing a SQLite connection
    under a running thread crashes the interpreter).
    """
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    requests_seen = []
    serve_one = httpd.process_request_thread

    def tracked(request, client_address):
        requests_seen.append((threading.current_thread(), request))
        serve_one(request, client_address)

    httpd.process_request_thread = tracked
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    thread.join(5)
    for _, connection in requests_seen:
        try:
            connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed
    for handler, _ in requests_seen:
        handler.join(10)
    stuck = [h for h, _ in requests_seen if h.is_alive()]
    frames = sys._current_frames()
    assert not stuck, "request threads outlived the test:\n" + "\n".join(
        "".join(traceback.format_stack(frames[h.ident])) for h in stuck if h.ident in frames)


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


def store_subscription(user, info=None):
    """Save ``info`` (default: a fresh ``make_subscription()``) for ``user`` the
    way ``push_subscribe`` does, in an app context; returns the row."""
    from flaskpush.models import PushSubscription
    from flaskpush.push import store
    from flaskpush.push.validation import validate_subscription

    info = info or make_subscription(f"https://push.example.com/send/{secrets.token_urlsafe(8)}")
    session_id = user.login_session.id if user.login_session else None
    assert store.save(validate_subscription(info, allow_insecure=True), user.id, session_id)
    return PushSubscription.get(PushSubscription.endpoint == info["endpoint"])


@pytest.fixture
def alice(browser):
    """A signed-up, signed-in browser with an open socket."""
    assert browser.register("alice").status_code == 200
    browser.ws = browser.socket()
    return browser


@pytest.fixture
def push_service():
    """A real local push service that verifies VAPID and decrypts (pushservice.py)."""
    from pushservice import PushService

    with PushService() as service:
        yield service


def wait_until(condition, timeout=5.0):
    """Poll ``condition`` until it holds; fail the test if it never does."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gunicorn:
    """``gunicorn -k gthread`` serving the app as production runs it, in a
    process group of its own, so the test can signal it and the fixture can
    reap every worker even after the master was killed."""

    def __init__(self, env, app="wsgi:app", workers=1, threads=16, graceful_timeout=5, pythonpath=None):
        self.url = f"http://127.0.0.1:{free_port()}"
        argv = [sys.executable, "-m", "gunicorn", "-k", "gthread", "--threads", str(threads),
                "-w", str(workers), "-b", self.url[len("http://"):],
                "--graceful-timeout", str(graceful_timeout), "--no-control-socket"]
        if pythonpath:
            argv += ["--pythonpath", str(pythonpath)]
        self.process = subprocess.Popen(argv + [app], cwd=ROOT, env=env, start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(self.url + "/", timeout=1)
                return
            except (requests.ConnectionError, requests.Timeout):
                assert self.process.poll() is None, "gunicorn exited"
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.1)

    def signal(self, signum):
        """Signal the whole group: the master and every worker."""
        try:
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:
            pass  # nothing left

    def stop(self):
        self.signal(signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            pass
        self.signal(signal.SIGKILL)  # workers orphaned by a killed master too
        self.process.wait()


@pytest.fixture
def gunicorn(instance_path, db_url):
    """Start app servers as real processes: ``start(**options, **settings)``
    returns a ``Gunicorn``; settings become ``FLASKPUSH_*`` (JSON) variables
    and the servers share the test's instance folder and database."""
    servers = []

    def start(app="wsgi:app", workers=1, threads=16, graceful_timeout=5, pythonpath=None, **settings):
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLASKPUSH_")}
        env["FLASKPUSH_INSTANCE_PATH"] = str(instance_path)
        env.update({f"FLASKPUSH_{k}": json.dumps(v) for k, v in {"DATABASE": db_url, **settings}.items()})
        servers.append(Gunicorn(env, app, workers, threads, graceful_timeout, pythonpath))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()
