"""Proves tests/firefox.py: its push service behaves like a real one, and a real
headless Firefox subscribes through it, receives an encrypted push in its
service worker, shows the notification and acknowledges the push.

The browser test uses a tiny static page of its own, not the flaskpush app, so
a failure here points at the harness (or Firefox), never at the app.
"""

import http.server
import json
import threading
import time

import pytest
import requests
import websocket
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from py_vapid import Vapid
from pywebpush import WebPushException, webpush

from firefox import Firefox, FirefoxPushServer, b64url, from_remote_value

SUBJECT = "mailto:ops@example.com"


PAGE = """<!doctype html>
<meta charset="utf-8">
<title>firefox harness</title>
<script>
  // What the service worker posts back about each push it handled.
  window.reports = [];
  navigator.serviceWorker.onmessage = event => window.reports.push(event.data);

  async function subscribe(applicationServerKey) {
    const registration = await navigator.serviceWorker.register("/sw.js");
    await navigator.serviceWorker.ready;
    const subscription = await registration.pushManager.subscribe(
      {userVisibleOnly: true, applicationServerKey});
    return subscription.toJSON();
  }

  async function unsubscribe() {
    const registration = await navigator.serviceWorker.ready;
    return (await registration.pushManager.getSubscription()).unsubscribe();
  }
</script>
"""

SERVICE_WORKER = """
self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("push", event => event.waitUntil(report(event.data.text())));

// Headless Firefox shows nothing visible, so ask the registration what it shows.
async function report(text) {
  const {title, body} = JSON.parse(text);
  await self.registration.showNotification(title, {body, tag: "harness"});
  const shown = (await self.registration.getNotifications())
    .map(n => ({title: n.title, body: n.body, tag: n.tag}));
  const pages = await self.clients.matchAll({type: "window", includeUncontrolled: true});
  pages.forEach(page => page.postMessage({text, shown}));
}
"""


class _PageHandler(http.server.BaseHTTPRequestHandler):
    """Serves the page and its service worker (a SW needs a JS MIME type)."""

    files = {"/": ("text/html", PAGE), "/sw.js": ("text/javascript", SERVICE_WORKER)}

    def do_GET(self):
        if self.path not in self.files:
            self.send_error(404)
            return
        content_type, text = self.files[self.path]
        body = text.encode()
        self.send_response(200)
        self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        """Keep test output quiet."""


@pytest.fixture
def page_url():
    """The test page over http://127.0.0.1, where service workers are allowed."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _PageHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def push_server():
    with FirefoxPushServer() as server:
        yield server


@pytest.fixture
def firefox(push_server, tmp_path):
    """A running Firefox; its log and the push transcript print on failure."""
    instance = Firefox(push_server.ws_url, tmp_path)
    try:
        instance.start()
        yield instance
    finally:
        try:
            instance.stop()
        finally:
            print(instance.log_tail())
            print("push transcript:", *push_server.transcript, sep="\n")


@pytest.fixture
def vapid():
    key = Vapid()
    key.generate_keys()
    return key


def public_key(vapid_key):
    """The uncompressed P-256 point a page passes as applicationServerKey."""
    return vapid_key.public_key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


def send(subscription, payload, vapid_key):
    """Send a real encrypted push the way an application server does."""
    return webpush(subscription, json.dumps(payload), vapid_private_key=vapid_key,
                   vapid_claims={"sub": SUBJECT}, ttl=60)


@pytest.mark.browser
def test_push_reaches_the_service_worker_and_shows_a_notification(
        firefox, push_server, page_url, vapid, tmp_path):
    firefox.navigate(page_url)
    push_server.wait_for_hello()
    subscription = firefox.evaluate(f"subscribe({json.dumps(b64url(public_key(vapid)))})")

    [registration] = push_server.registrations()
    assert subscription["endpoint"] == registration.endpoint
    assert registration.endpoint.startswith(f"{push_server.origin}/push/")
    assert registration.key == public_key(vapid)

    second_tab = firefox.new_tab()
    firefox.navigate(page_url, second_tab)

    payload = {"title": "Build finished", "body": "flaskpush main is green"}
    assert send(subscription, payload, vapid).status_code == 201

    report = firefox.wait_for("window.reports[0]")
    assert json.loads(report["text"]) == payload
    assert report["shown"] == [{**payload, "tag": "harness"}]
    assert firefox.wait_for("window.reports", context=second_tab) == [report]
    acks = push_server.wait_for_acks(1)
    assert [(ack["channelID"], ack["code"]) for ack in acks] == [(registration.channel_id, 100)]
    assert firefox.screenshot(tmp_path / "page.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert firefox.evaluate("unsubscribe()") is True
    with pytest.raises(WebPushException) as gone:
        send(subscription, payload, vapid)
    assert gone.value.response.status_code == 410


def test_bidi_remote_values_become_python():
    remote = {"type": "object", "value": [
        ["list", {"type": "array", "value": [
            {"type": "number", "value": 1}, {"type": "number", "value": "-Infinity"},
            {"type": "bigint", "value": "12345678901234567890"},
            {"type": "undefined"}, {"type": "null"}]}],
        ["nested", {"type": "object", "value": [["ok", {"type": "boolean", "value": True}]]}],
        ["map", {"type": "map", "value": [
            [{"type": "number", "value": 2}, {"type": "string", "value": "two"}]]}],
    ]}
    assert from_remote_value(remote) == {
        "list": [1, float("-inf"), 12345678901234567890, None, None],
        "nested": {"ok": True},
        "map": {2: "two"},
    }
    with pytest.raises(TypeError):
        from_remote_value({"type": "function", "handle": "x"})


# -- the push service alone, with a scripted client in Firefox's place -------


class FakeFirefox:
    """Speaks Firefox's side of the push protocol, to test the server quickly."""

    def __init__(self, server, uaid=None):
        self.ws = websocket.create_connection(
            server.ws_url, subprotocols=["push-notification"], timeout=5)
        self.ws.send(json.dumps({"messageType": "hello", "use_webpush": True, "uaid": uaid}))
        reply = self.receive()
        assert reply["status"] == 200 and reply["use_webpush"] is True
        self.uaid = reply["uaid"]

    def receive(self):
        return json.loads(self.ws.recv())

    def register(self, key):
        """Subscribe with an applicationServerKey; return the push endpoint."""
        self.ws.send(json.dumps({"messageType": "register", "channelID": "c0ffee",
                                 "key": b64url(key) + "="}))
        return self.receive()["pushEndpoint"]


@pytest.fixture
def fake_endpoint(push_server, vapid):
    fake = FakeFirefox(push_server)
    yield fake.register(public_key(vapid))
    fake.ws.close()


def push_headers(server, key, **spoil):
    """Headers of a valid push signed by key, with `spoil` replacing some
    (None drops a header) and claims spoilt through `claims`."""
    claims = {"aud": server.origin, "sub": SUBJECT, "exp": int(time.time()) + 3600,
              **spoil.pop("claims", {})}
    headers = {"TTL": "60", "Content-Encoding": "aes128gcm", **key.sign(claims)}
    return {**headers, **spoil}


def tampered(server, key):
    """A VAPID header whose JWT signature does not match its content."""
    authorization = push_headers(server, key)["Authorization"]
    token, _, rest = authorization.partition(",")
    return f"{token[:-4]}{'AAAA' if token[-4:] != 'AAAA' else 'BBBB'},{rest}"


SPOILT = {
    "ok": (lambda server, key: {}, 201),
    "no-ttl": (lambda server, key: {"TTL": None}, 400),
    "unknown-encoding": (lambda server, key: {"Content-Encoding": "aesgcm"}, 400),
    "no-vapid": (lambda server, key: {"Authorization": None}, 401),
    "bad-signature": (lambda server, key: {"Authorization": tampered(server, key)}, 401),
    "wrong-aud": (lambda server, key: {"claims": {"aud": "http://127.0.0.1:1"}}, 401),
    "expired": (lambda server, key: {"claims": {"exp": int(time.time()) - 5}}, 401),
    "exp-over-24h": (lambda server, key: {"claims": {"exp": int(time.time()) + 90000}}, 401),
    "bad-sub": (lambda server, key: {"claims": {"sub": "ops"}}, 401),
}


@pytest.mark.parametrize("case", SPOILT)
def test_push_service_answers_like_a_real_one(push_server, fake_endpoint, vapid, case):
    spoil, status = SPOILT[case]
    vapid.conf["no-strict"] = True  # let py_vapid sign a bad sub for the server to refuse
    headers = push_headers(push_server, vapid, **spoil(push_server, vapid))
    response = requests.post(fake_endpoint, data=b"x" * 100, headers=headers, timeout=5)
    assert response.status_code == status, response.text
    assert ("Location" in response.headers) == (status == 201)


def test_push_service_refuses_other_keys_big_payloads_and_unknown_endpoints(
        push_server, fake_endpoint, vapid):
    other = Vapid()
    other.generate_keys()

    def post(url, key, size):
        headers = push_headers(push_server, key)
        return requests.post(url, data=b"x" * size, headers=headers, timeout=5).status_code

    assert post(fake_endpoint, other, 100) == 401
    assert post(fake_endpoint, vapid, 4096) == 201
    assert post(fake_endpoint, vapid, 4097) == 413
    assert post(f"{push_server.origin}/push/unknown", vapid, 100) == 404


def test_push_waits_for_the_browser_within_its_ttl(push_server, vapid):
    fake = FakeFirefox(push_server)
    endpoint = fake.register(public_key(vapid))
    fake.ws.close()
    for ttl, body in (("0", b"dropped"), ("60", b"kept")):
        headers = push_headers(push_server, vapid, TTL=ttl)
        assert requests.post(endpoint, data=body, headers=headers, timeout=5).status_code == 201

    again = FakeFirefox(push_server, uaid=fake.uaid)
    notification = again.receive()
    assert notification["data"] == b64url(b"kept")
    assert notification["headers"] == {"encoding": "aes128gcm"}
    again.ws.send("{}")
    assert again.receive() == {}
    update = {"channelID": notification["channelID"], "version": notification["version"],
              "code": 100}
    again.ws.send(json.dumps({"messageType": "ack", "updates": [update]}))
    assert push_server.wait_for_acks(1) == [update]
    again.ws.close()
