"""Drive a real headless Firefox ESR that receives Web Push offline, from pytest.

Why Firefox: Chromium's push goes through Google's service, so it cannot work
offline. Firefox talks to its push service over a plain JSON WebSocket whose URL
is a pref, so a test can run that service itself on loopback and watch a push go
from the application server, through the push service, into the page's service
worker - with real encryption, a real VAPID check and real acks.

- `FirefoxPushServer` is that push service: Firefox's WebSocket protocol
  (dom/push/PushServiceWebSocket.sys.mjs) and the HTTP side a sender sees
  (201 / 400 / 401 / 404 / 410 / 413 like a real push service), on one
  127.0.0.1 port, in a daemon thread.
- `Firefox` starts a headless Firefox with a throwaway profile whose prefs point
  push at that service and keep every other connection on loopback, drives it
  with WebDriver BiDi (`--remote-debugging-port`, no geckodriver needed) and on
  stop kills every process it started, crash helper included.
- `BiDi` is the small synchronous WebDriver BiDi client `Firefox` uses.

Typical use (see tests/test_firefox_harness.py)::

    with FirefoxPushServer() as push, Firefox(push.ws_url, tmp_path) as firefox:
        firefox.navigate(page_url)
        push.wait_for_hello()          # Firefox drops subscribe() calls before it
        subscription = firefox.evaluate("subscribe()")
        pywebpush.webpush(subscription, data, ..., ttl=60)
        push.wait_for_acks(1)

Headless Firefox shows no notification anyone could see; a page verifies it
through its service worker (`registration.getNotifications()`).

For belt and braces, CI can run the whole test session in a private network
namespace (as root: `unshare -n sh -c 'ip link set lo up && python -m pytest'`);
the prefs alone already keep Firefox on loopback.
"""

import asyncio
import base64
import dataclasses
import itertools
import json
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import websocket
from aiohttp import WSMsgType, web

from pushservice import Rejected, b64url, unb64url, verify_vapid

LOOPBACK = "127.0.0.1"


@dataclasses.dataclass
class Registration:
    """One push subscription as the push service knows it."""

    channel_id: str
    uaid: str
    endpoint: str
    key: bytes | None  # the subscription's applicationServerKey (VAPID public key)
    active: bool = True


@dataclasses.dataclass
class _Message:
    """A push accepted over HTTP and not yet acknowledged by the browser."""

    channel_id: str
    version: str
    data: bytes
    expires: float  # time.monotonic() deadline from the TTL header


class FirefoxPushServer:
    """A loopback push service that Firefox connects to via `dom.push.serverURL`.

    Messages are kept until Firefox acknowledges them or their TTL runs out, and
    are (re)sent whenever Firefox connects, as a real push service does; so a
    push with TTL 0 only reaches a browser that is connected right now.
    All state is guarded by one condition variable, because the aiohttp loop
    thread writes it while the test thread waits on it.
    """

    MAX_PAYLOAD = 4096

    def __init__(self):
        self._sock = socket.create_server((LOOPBACK, 0))
        self.port = self._sock.getsockname()[1]
        self.origin = f"http://{LOOPBACK}:{self.port}"
        self.ws_url = f"ws://{LOOPBACK}:{self.port}/"
        self._cond = threading.Condition()
        self._sockets = {}  # uaid -> open WebSocketResponse
        self._registrations = {}  # channelID -> Registration
        self._pending = {}  # version -> _Message
        self._hellos = []  # uaid answered to each hello
        self.acks = []  # {"channelID", "version", "code"} as Firefox sent them
        self.nacks = []  # {"version", "code"}: the service worker failed (301-303)
        self.transcript = []  # one line per protocol message or HTTP push
        self._loop = None
        self._thread = None
        self._runner = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def start(self):
        """Serve HTTP and the WebSocket on self.port from a daemon thread."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="firefox-push-server", daemon=True
        )
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(10)

    def stop(self):
        """Close Firefox's sockets and the server, then end the loop thread."""
        if self._loop is not None:
            try:
                asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(10)
                self._loop.close()
                self._loop = None
        self._sock.close()

    async def _serve(self):
        """Mount the WebSocket on / (Firefox's serverURL) and pushes on /push/."""
        app = web.Application()
        app.router.add_get("/", self._on_websocket)
        app.router.add_post("/push/{channel_id}", self._on_push)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
        await self._runner.setup()
        await web.SockSite(self._runner, self._sock).start()

    async def _shutdown(self):
        """Close open sockets first; aiohttp would otherwise wait for them."""
        await self._close_sockets()
        await self._runner.cleanup()

    async def _close_sockets(self):
        with self._cond:
            sockets = list(self._sockets.values())
        for ws in sockets:
            await ws.close()

    # -- what a test asks -------------------------------------------------

    def wait_for_hello(self, timeout=30, after=0):
        """Return the UAID once Firefox's push service has said hello (a hello
        beyond the first `after` ones).

        Firefox starts its push service in an idle task after startup and drops
        subscribe()/getSubscription() calls made before that; they hang forever.
        """
        self._wait(lambda: len(self._hellos) > after, timeout, "Firefox's push hello")
        with self._cond:
            return self._hellos[-1]

    def wait_for_acks(self, count=1, timeout=10):
        """Return all acks once at least `count` arrived (code 100 = delivered)."""
        self._wait(lambda: len(self.acks) >= count, timeout, f"{count} ack(s)")
        with self._cond:
            return [dict(ack) for ack in self.acks]

    def registrations(self):
        """Copies of every subscription seen, unsubscribed ones with active False."""
        with self._cond:
            return [dataclasses.replace(r) for r in self._registrations.values()]

    def reset_uaid(self):
        """Forget every browser, as a push service that lost its state does.

        Every subscription's endpoint answers 410 from now on, and Firefox's
        connections are closed. Firefox reconnects after its backoff
        (dom.push.retryBaseInterval), says hello with its old UAID, gets a
        new one, drops all its subscriptions and fires pushsubscriptionchange
        in each service worker (PushServiceWebSocket._handleHelloReply).
        Returns how many hellos came before, for wait_for_hello(after=...).
        """
        with self._cond:
            for registration in self._registrations.values():
                registration.active = False
            self._pending.clear()
            hellos = len(self._hellos)
        asyncio.run_coroutine_threadsafe(self._close_sockets(), self._loop).result(10)
        return hellos

    def _wait(self, predicate, timeout, what):
        """Block until predicate() holds; time out with the transcript to debug."""
        with self._cond:
            if not self._cond.wait_for(predicate, timeout):
                log = "\n".join(self.transcript[-40:])
                raise TimeoutError(f"no {what} within {timeout}s; transcript:\n{log}")

    def _note(self, line):
        """Append to the transcript that failure messages show."""
        with self._cond:
            self.transcript.append(line)

    # -- WebSocket side (Firefox) -----------------------------------------

    async def _on_websocket(self, request):
        """Speak Firefox's push protocol on one connection until it closes."""
        ws = web.WebSocketResponse(protocols=("push-notification",))
        await ws.prepare(request)
        uaid = None
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                self._note(f"firefox -> {msg.data}")
                uaid = await self._on_message(ws, json.loads(msg.data), uaid)
        finally:
            with self._cond:
                if self._sockets.get(uaid) is ws:
                    del self._sockets[uaid]
        return ws

    async def _on_message(self, ws, message, uaid):
        """Answer one client message; return the connection's UAID."""
        kind = message.get("messageType")
        if kind == "hello":
            return await self._on_hello(ws, message)
        if kind == "register":
            await self._send(ws, self._register(message, uaid))
        elif kind == "unregister":
            await self._send(ws, self._unregister(message))
        elif kind == "ack":
            self._ack(message.get("updates", []))
        elif kind == "nack":
            self._nack(message)
        elif kind in (None, "ping"):
            await self._send(ws, {})
        return uaid

    async def _on_hello(self, ws, message):
        """Keep a known UAID (its subscriptions stay valid), then flush its queue.

        use_webpush must be echoed: without it Firefox makes keyless
        subscriptions and never decrypts payloads.
        """
        with self._cond:
            known = {r.uaid for r in self._registrations.values() if r.active}
            uaid = message.get("uaid") if message.get("uaid") in known else uuid.uuid4().hex
            self._sockets[uaid] = ws
        await self._send(ws, {"messageType": "hello", "status": 200, "uaid": uaid,
                              "use_webpush": True})
        with self._cond:
            self._hellos.append(uaid)
            self._cond.notify_all()
        for message in self._deliverable(uaid):
            await self._send(ws, self._notification(message))
        return uaid

    def _register(self, message, uaid):
        """Create a subscription whose endpoint is this server's /push/<channelID>."""
        channel_id = message["channelID"]
        key = message.get("key")
        registration = Registration(
            channel_id=channel_id,
            uaid=uaid,
            endpoint=f"{self.origin}/push/{channel_id}",
            key=unb64url(key) if key else None,
        )
        with self._cond:
            self._registrations[channel_id] = registration
            self._cond.notify_all()
        return {"messageType": "register", "channelID": channel_id, "status": 200,
                "pushEndpoint": registration.endpoint}

    def _unregister(self, message):
        """Retire a subscription: its endpoint answers 410 from now on."""
        channel_id = message.get("channelID")
        with self._cond:
            if channel_id in self._registrations:
                self._registrations[channel_id].active = False
            for version in [v for v, m in self._pending.items() if m.channel_id == channel_id]:
                del self._pending[version]
            self._cond.notify_all()
        return {"messageType": "unregister", "channelID": channel_id, "status": 200}

    def _ack(self, updates):
        """Record acks and forget the acknowledged messages."""
        with self._cond:
            for update in updates:
                self.acks.append(update)
                self._pending.pop(update.get("version"), None)
            self._cond.notify_all()

    def _nack(self, message):
        """Record that the service worker failed on a push (codes 301-303)."""
        with self._cond:
            self.nacks.append({"version": message.get("version"), "code": message.get("code")})
            self._cond.notify_all()

    def _deliverable(self, uaid):
        """Unexpired, unacknowledged messages for the UAID's subscriptions."""
        now = time.monotonic()
        with self._cond:
            return [m for m in self._pending.values()
                    if m.expires > now and self._registrations[m.channel_id].uaid == uaid]

    def _notification(self, message):
        """The frame that hands one push to Firefox (payload left encrypted)."""
        frame = {"messageType": "notification", "channelID": message.channel_id,
                 "version": message.version}
        if message.data:
            frame["data"] = b64url(message.data)
            frame["headers"] = {"encoding": "aes128gcm"}
        return frame

    async def _send(self, ws, message):
        """Send one JSON frame and log it."""
        text = json.dumps(message)
        self._note(f"firefox <- {text}")
        await ws.send_str(text)

    # -- HTTP side (application server) -----------------------------------

    async def _on_push(self, request):
        """Accept or refuse one push like a real push service (RFC 8030)."""
        channel_id = request.match_info["channel_id"]
        body = await request.read()
        status, reason = self._check_push(request, self._registrations.get(channel_id), body)
        self._note(f"POST /push/{channel_id} ({len(body)} bytes) -> {status} {reason}")
        if status != 201:
            return web.json_response({"code": status, "error": reason}, status=status)
        ttl = int(request.headers["TTL"])
        message = _Message(channel_id, uuid.uuid4().hex, body, time.monotonic() + ttl)
        with self._cond:
            if ttl > 0:
                self._pending[message.version] = message
            ws = self._sockets.get(self._registrations[channel_id].uaid)
        if ws is not None:
            try:
                await self._send(ws, self._notification(message))
            except ConnectionResetError:
                pass  # Firefox is reconnecting; the hello will flush the message
        return web.Response(status=201, headers={
            "Location": f"{self.origin}/m/{message.version}", "TTL": str(ttl)})

    def _check_push(self, request, registration, body):
        """(status, reason) for a push request; 201 when it must be delivered."""
        if registration is None:
            return 404, "no such subscription"
        if not registration.active:
            return 410, "subscription was unsubscribed"
        problem = self._vapid_problem(request.headers.get("Authorization", ""), registration)
        if problem:
            return 401, problem
        if not request.headers.get("TTL", "").isdigit():
            return 400, "missing or invalid TTL header"
        if body and request.headers.get("Content-Encoding", "").lower() != "aes128gcm":
            return 400, "Content-Encoding must be aes128gcm"
        if len(body) > self.MAX_PAYLOAD:
            return 413, f"payload over {self.MAX_PAYLOAD} bytes"
        return 201, "created"

    def _vapid_problem(self, authorization, registration):
        """Why `Authorization: vapid t=JWT, k=KEY` fails RFC 8292, or None;
        checked as the other test push service checks it (pushservice.py)."""
        try:
            _, key = verify_vapid(authorization, self.origin)
        except Rejected as rejected:
            return rejected.text
        if registration.key is not None and unb64url(key) != registration.key:
            return "VAPID key is not the subscription's applicationServerKey"
        return None


# -- WebDriver BiDi -------------------------------------------------------


class BiDiError(Exception):
    """An error answer to a BiDi command."""


class JavaScriptError(Exception):
    """script.evaluate threw or its promise rejected."""


_SPECIAL_NUMBERS = {"NaN": float("nan"), "-0": -0.0,
                    "Infinity": float("inf"), "-Infinity": float("-inf")}


def from_remote_value(value):
    """Turn a BiDi RemoteValue into plain Python (JSON-like) data.

    Nodes, functions, windows and the like have no Python form: return
    something JSON-able from the expression instead.
    """
    kind = value["type"]
    if kind in ("undefined", "null"):
        return None
    if kind in ("string", "boolean", "date"):
        return value["value"]
    if kind == "number":
        return _SPECIAL_NUMBERS.get(value["value"], value["value"])
    if kind == "bigint":
        return int(value["value"])
    if kind in ("array", "set"):
        return [from_remote_value(item) for item in value["value"]]
    if kind in ("object", "map"):
        return {key if isinstance(key, str) else from_remote_value(key): from_remote_value(item)
                for key, item in value["value"]}
    raise TypeError(f"BiDi value of type {kind!r} has no Python form")


class BiDi:
    """A synchronous WebDriver BiDi client: one command in flight at a time.

    No events are subscribed, so anything that is not the awaited answer is a
    late reply to a command that timed out and is skipped.
    """

    def __init__(self, url, timeout=30):
        # The remote agent refuses handshakes whose Origin it does not allow.
        self._ws = websocket.create_connection(url, timeout=timeout, suppress_origin=True)
        self._ids = itertools.count(1)

    def command(self, method, params=None, timeout=30):
        """Send a command and return its result, or raise BiDiError."""
        command_id = next(self._ids)
        self._ws.send(json.dumps({"id": command_id, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout
        while True:
            self._ws.settimeout(max(deadline - time.monotonic(), 0.001))
            try:
                answer = json.loads(self._ws.recv())
            except websocket.WebSocketTimeoutException:
                raise TimeoutError(f"BiDi {method} unanswered after {timeout}s") from None
            if answer.get("id") != command_id:
                continue
            if answer.get("type") == "error":
                raise BiDiError(f"{method}: {answer.get('error')}: {answer.get('message')}")
            return answer["result"]

    def close(self):
        """Close the WebSocket; Firefox ends the session with it."""
        self._ws.close()


# -- Firefox --------------------------------------------------------------


def firefox_prefs(push_server_url, dead_port):
    """user.js prefs: push via our service, notifications allowed, loopback only.

    Non-loopback traffic goes to a proxy on `dead_port`, where nothing listens,
    and may not fall back to a direct connection; loopback bypasses proxies.
    """
    dead_proxy = {}
    for scheme in ("http", "ssl", "socks"):
        dead_proxy[f"network.proxy.{scheme}"] = LOOPBACK
        dead_proxy[f"network.proxy.{scheme}_port"] = dead_port
    return {
        # Push through FirefoxPushServer; a ws:// URL is ignored without allowInsecure.
        "dom.push.serverURL": push_server_url,
        "dom.push.testing.allowInsecureServerURL": True,
        "dom.push.connection.enabled": True,  # the remote agent would turn it off
        "dom.push.testing.ignorePermission": True,
        "permissions.default.desktop-notification": 1,
        "alerts.useSystemBackend": False,  # headless: else showNotification fails
        # Push, chrome and page console messages go to stdout, i.e. the log file.
        "dom.push.loglevel": "Debug",
        "devtools.console.stdout.chrome": True,
        "devtools.console.stdout.content": True,
        # Loopback only.
        "network.proxy.type": 1,
        **dead_proxy,
        "network.proxy.failover_direct": False,
        "network.proxy.allow_hijacking_localhost": False,
        "network.dns.native-is-localhost": True,
        "network.trr.mode": 5,
        "network.dns.disablePrefetch": True,
        "network.prefetch-next": False,
        "network.predictor.enabled": False,
        "network.http.speculative-parallel-limit": 0,
        "network.captive-portal-service.enabled": False,
        "network.connectivity-service.enabled": False,
        "network.manage-offline-status": False,  # offline would stop push too
        "toolkit.telemetry.enabled": False,
        "toolkit.telemetry.unified": False,
        "toolkit.telemetry.archive.enabled": False,
        "toolkit.telemetry.server": "",
        "datareporting.healthreport.uploadEnabled": False,
        "datareporting.policy.dataSubmissionEnabled": False,
        "app.update.disabledForTesting": True,
        "app.normandy.enabled": False,
        "app.normandy.api_url": "",
        "app.shield.optoutstudies.enabled": False,
        "messaging-system.rsexperimentloader.enabled": False,
        "services.settings.server": "data:,#remote-settings-dummy/v1",
        "browser.safebrowsing.malware.enabled": False,
        "browser.safebrowsing.phishing.enabled": False,
        "browser.safebrowsing.downloads.enabled": False,
        "browser.safebrowsing.blockedURIs.enabled": False,
        "browser.search.update": False,
        "browser.region.network.url": "",
        "browser.region.update.enabled": False,
        "extensions.update.enabled": False,
        "extensions.getAddons.cache.enabled": False,
        "extensions.systemAddon.update.enabled": False,
        "extensions.blocklist.enabled": False,
        "media.gmp-manager.updateEnabled": False,
        "geo.provider.network.url": "",
        "identity.fxaccounts.enabled": False,
        "security.OCSP.enabled": 0,
        "security.remote_settings.crlite_filters.enabled": False,
        "security.remote_settings.intermediates.enabled": False,
        "browser.newtabpage.enabled": False,
        "browser.startup.page": 0,
        "browser.startup.homepage": "about:blank",
        "browser.shell.checkDefaultBrowser": False,
        "browser.aboutwelcome.enabled": False,
        "browser.backup.enabled": False,
        "datareporting.policy.firstRunURL": "",
    }


class Firefox:
    """A headless Firefox ESR with a fresh profile under `workdir`, driven by BiDi.

    Every process it starts carries a unique environment variable, so stop()
    finds them all: the content processes in its process group and also the
    crash helper, which leaves the group and the process tree.
    """

    def __init__(self, push_server_url, workdir, *, binary="firefox-esr",
                 extra_prefs=None, startup_timeout=30):
        self.workdir = Path(workdir)
        self.profile_dir = self.workdir / "firefox-profile"
        self.log_path = self.workdir / "firefox.log"
        self.context = None  # the browsing context commands use by default
        self._push_server_url = push_server_url
        self._binary = binary
        self._extra_prefs = extra_prefs or {}
        self._startup_timeout = startup_timeout
        self._marker = f"FIREFOX_HARNESS_RUN={uuid.uuid4().hex}"
        self._process = None
        self._log = None
        self._dead_port = None
        self.bidi = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def start(self):
        """Launch Firefox and open a BiDi session on its first tab."""
        try:
            self._launch()
            self.bidi = BiDi(self._bidi_url())
            self.bidi.command("session.new", {"capabilities": {}})
            self.context = self.bidi.command("browsingContext.getTree")["contexts"][0]["context"]
        except BaseException:
            self.stop()
            raise

    def _launch(self):
        """Write the profile and start Firefox in its own session, logging to a file."""
        self.profile_dir.mkdir(parents=True)
        # Bound but never listening: connections to it are refused, and no one
        # else can take the port while Firefox uses it as its proxy.
        self._dead_port = socket.socket()
        self._dead_port.bind((LOOPBACK, 0))
        prefs = firefox_prefs(self._push_server_url, self._dead_port.getsockname()[1])
        prefs.update(self._extra_prefs)
        (self.profile_dir / "user.js").write_text(
            "".join(f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in prefs.items()))
        home = self.workdir / "home"
        home.mkdir()
        name, _, value = self._marker.partition("=")
        env = {**os.environ, name: value, "HOME": str(home), "MOZ_CRASHREPORTER_DISABLE": "1",
               # Firefox's own test switch: without it release builds ignore
               # services.settings.server and retry Remote Settings in a loop.
               "MOZ_DISABLE_NONLOCAL_CONNECTIONS": "1"}
        self._log = open(self.log_path, "wb")
        self._process = subprocess.Popen(
            [self._binary, "--headless", "--no-remote", "--profile", str(self.profile_dir),
             "--remote-debugging-port", "0", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            env=env, start_new_session=True)

    def _bidi_url(self):
        """Wait for the BiDi address Firefox writes into the profile.

        Port 0 lets Firefox pick a free port itself, so no race over one.
        """
        server_file = self.profile_dir / "WebDriverBiDiServer.json"
        deadline = time.monotonic() + self._startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"Firefox exited with {self._process.returncode}\n{self.log_tail()}")
            try:
                address = json.loads(server_file.read_text())
                return f"ws://{address['ws_host']}:{address['ws_port']}/session"
            except (FileNotFoundError, json.JSONDecodeError, KeyError):
                time.sleep(0.05)
        raise TimeoutError(
            f"Firefox started no BiDi server in {self._startup_timeout}s\n{self.log_tail()}")

    def stop(self):
        """End Firefox and all its processes; raise if any survive.

        SIGTERM lets Firefox take its children down; SIGKILL then catches any
        process of this run still alive.
        """
        try:
            if self.bidi is not None:
                self.bidi.close()
        finally:
            self.bidi = None
            survivors = self._end_processes()
        if survivors:
            raise RuntimeError(f"Firefox processes survived SIGKILL: {survivors}")

    def _end_processes(self):
        """Terminate, then kill, every process of this run; return survivors."""
        survivors = []
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                pass
            survivors = self._kill_all()
            self._process.wait(5)
            self._process = None
        for resource in (self._log, self._dead_port):
            if resource is not None:
                resource.close()
        self._log = self._dead_port = None
        return survivors

    def _kill_all(self, timeout=10):
        """SIGKILL every process of this run until none is left; return survivors."""
        deadline = time.monotonic() + timeout
        pgid = self._process.pid  # start_new_session made Firefox its group's leader
        while (pids := _processes_of_run(pgid, self._marker)) and time.monotonic() < deadline:
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)
        return pids

    # -- driving the page ---------------------------------------------------

    def navigate(self, url, context=None, timeout=30):
        """Load url and wait for the load event."""
        self.bidi.command("browsingContext.navigate",
                          {"context": context or self.context, "url": url, "wait": "complete"},
                          timeout)

    def evaluate(self, expression, context=None, timeout=30):
        """Evaluate a JS expression in the page, await it, return it as Python data.

        userActivation makes it count as a user gesture (as a click would), which
        APIs such as Notification.requestPermission() ask for.
        """
        result = self.bidi.command("script.evaluate", {
            "expression": expression,
            "target": {"context": context or self.context},
            "awaitPromise": True,
            "userActivation": True,
            "resultOwnership": "none",
        }, timeout)
        if result["type"] == "exception":
            details = result["exceptionDetails"]
            raise JavaScriptError(f"{details['text']}\n  in: {expression}")
        return from_remote_value(result["result"])

    def wait_for(self, expression, timeout=10, context=None):
        """Poll a JS expression until it is truthy; return its value."""
        deadline = time.monotonic() + timeout
        while not (value := self.evaluate(expression, context)):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{expression!r} still {value!r} after {timeout}s\n{self.log_tail()}")
            time.sleep(0.1)
        return value

    def new_tab(self):
        """Open a tab and return its context id (commands still default to self.context)."""
        return self.bidi.command("browsingContext.create", {"type": "tab"})["context"]

    def screenshot(self, path, context=None):
        """Save a PNG of the page, for a failing test to leave behind."""
        data = self.bidi.command("browsingContext.captureScreenshot",
                                 {"context": context or self.context})["data"]
        Path(path).write_bytes(base64.b64decode(data))
        return Path(path)

    def log_tail(self, lines=60):
        """The end of Firefox's stdout/stderr (push debug log, console), for failure messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no Firefox log)"
        return "Firefox log (tail):\n" + "\n".join(text.splitlines()[-lines:])


def _processes_of_run(pgid, marker):
    """Live PIDs in Firefox's process group or whose environment has our marker.

    The group alone misses the crash helper (it calls setsid); the environment
    alone could miss processes whose environ we may not read.
    """
    needle = b"\0" + marker.encode() + b"\0"
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        state, _ppid, group = stat.rpartition(")")[2].split()[:3]
        if state != "Z" and (int(group) == pgid or needle in _environ(entry.name)):
            pids.append(int(entry.name))
    return pids


def _environ(pid):
    """A process's environment block with a leading NUL, or b"" if unreadable."""
    try:
        return b"\0" + Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return b""
