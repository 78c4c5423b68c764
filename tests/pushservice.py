"""A real Web Push service on loopback, for the tests and the benchmark.

Why it exists: what a push carries (CONTRACT.md, "What a push carries") can only
be checked by receiving it the way a browser's push service does - verify the
VAPID JWT (RFC 8292), then decrypt the aes128gcm body (RFC 8291) with the
subscription's private key. Tests send with the real pywebpush to this service
and assert on the decrypted plaintext; they never mock pywebpush.

It answers like a strict push service (RFC 8030). A POST to an endpoint is
checked in this order; the first failure is the answer:

    404 unknown endpoint, 410 one removed with remove()
    401 Authorization is not a valid `vapid t=<JWT>, k=<key>` (only the RFC 8292
        scheme; the body says which check failed: key, jwt, alg, signature, aud,
        exp, sub)
    --- a scripted response queued for the endpoint (script()) replaces the rest:
        a real service authenticates before it rate-limits or fails ---
    400 TTL missing or not a non-negative integer
    400 Content-Encoding is not aes128gcm (400 rather than 415, as Firefox's
        service does; so a push with no body and no Content-Encoding is refused)
    400 Urgency not one of very-low, low, normal, high; Topic not 1-32 base64url
        characters
    413 body over 4096 bytes
    400 "decryption failed"
    201 with Location: the decrypted Message is kept (messages(), wait_for()).

Every request to an endpoint is logged in `requests` with the status answered.
It only ever binds 127.0.0.1.

In-process (tests)::

    with PushService() as svc:
        sub = svc.new_subscription()
        webpush(sub, '{"title": "hi"}', ...)
        [message] = svc.wait_for(1)

As a process (benchmarks)::

    python tests/pushservice.py [--port 0] [--subscriptions N] [--out FILE] [--watch-stdin]

When ready it prints one JSON line {"url", "stats_url", "subscriptions"}; with
--out the subscriptions go to FILE instead (written atomically before the line is
printed) and the line has only url and stats_url. It serves until SIGTERM or
SIGINT (or, with --watch-stdin, until stdin reaches EOF) and then prints the
final stats as one JSON line. GET <url>/_stats returns the same stats at any time:
{"received", "accepted", "rejected": {reason: n}, "scripted": {kind: n}}.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import json
import os
import re
import secrets
import signal
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass, field

import http_ece
from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

HOST = "127.0.0.1"
MAX_BODY = 4096
MAX_EXP_AHEAD = 24 * 60 * 60
URGENCIES = ("very-low", "low", "normal", "high")
B64URL = re.compile(r"[A-Za-z0-9_-]*")
TOPIC = re.compile(r"[A-Za-z0-9_-]{1,32}")
TTL = re.compile(r"[0-9]+")
VAPID_CACHE_SIZE = 10_000


@dataclass(frozen=True)
class Message:
    """A push the service accepted: VAPID-verified and decrypted."""

    subscription_id: str
    endpoint: str
    plaintext: bytes
    ttl: int
    urgency: str | None  # None when the header was absent (RFC 8030 default: normal)
    topic: str | None
    vapid_claims: dict
    vapid_key: str  # the k= of the Authorization header
    received_at: float  # time.time()

    def json(self):
        """The plaintext parsed as JSON, which is what flaskpush sends."""
        return json.loads(self.plaintext)


@dataclass(frozen=True)
class Received:
    """One request to an endpoint and what the service did with it."""

    endpoint: str
    status: int | None  # None: no HTTP answer (scripted stall or reset)
    outcome: str  # "accepted", a rejection reason, or "scripted-<status|stall|reset>"
    received_at: float


@dataclass(frozen=True)
class _Scripted:
    """One queued answer that replaces the normal one (see PushService.script)."""

    kind: str  # "status", "stall", "reset" or "slow"
    status: int = 0
    headers: dict = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class _Subscription:
    """What the service keeps to decrypt pushes for one endpoint."""

    id: str
    endpoint: str
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes

    def to_json(self) -> dict:
        """The shape of a browser's PushSubscription.toJSON()."""
        public = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        keys = {"p256dh": b64url(public), "auth": b64url(self.auth)}
        return {"endpoint": self.endpoint, "expirationTime": None, "keys": keys}


class Rejected(Exception):
    """A non-201 answer; checks raise it and one place turns it into a response."""

    def __init__(self, status: int, outcome: str, text: str):
        super().__init__(text)
        self.status, self.outcome, self.text = status, outcome, text


def b64url(data: bytes) -> str:
    """Base64url without padding, as Web Push keys are written."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    """Decode strict base64url, padded or not; ValueError on anything else."""
    text = text.rstrip("=")
    if not B64URL.fullmatch(text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _parse_vapid(header: str | None) -> tuple[str, str]:
    """Split `vapid t=<JWT>, k=<key>` into (t, k); other schemes are refused."""
    if not header:
        raise Rejected(401, "vapid-missing", "vapid: no Authorization header")
    scheme, _, rest = header.partition(" ")
    if scheme.lower() != "vapid":
        raise Rejected(401, "vapid-scheme", f"vapid: scheme {scheme!r} is not 'vapid'")
    params = {}
    for part in rest.split(","):
        name, _, value = part.strip().partition("=")
        params[name.strip().lower()] = value.strip()
    if not params.get("t") or not params.get("k"):
        raise Rejected(401, "vapid-params", "vapid: Authorization needs t= and k=")
    return params["t"], params["k"]


def _public_key(k: str) -> ec.EllipticCurvePublicKey:
    """Load k, which RFC 8292 requires to be an uncompressed P-256 point."""
    try:
        raw = unb64url(k)
        if len(raw) != 65 or raw[0] != 4:
            raise ValueError("not an uncompressed point")
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except ValueError:
        raise Rejected(401, "vapid-key", "vapid: k is not a P-256 public key") from None


def _verify_jwt(token: str, k: str) -> dict:
    """Check the JWT is ES256 and signed by k; return its claims, not yet checked."""
    key = _public_key(k)
    try:
        head, body, signature = token.split(".")
        header, claims = json.loads(unb64url(head)), json.loads(unb64url(body))
        raw = unb64url(signature)
    except ValueError:
        raise Rejected(401, "vapid-jwt", "vapid: t is not a JWT") from None
    if not isinstance(header, dict) or header.get("alg") != "ES256":
        raise Rejected(401, "vapid-alg", "vapid: JWT alg is not ES256")
    if not isinstance(claims, dict):
        raise Rejected(401, "vapid-jwt", "vapid: JWT claims are not an object")
    if len(raw) != 64:
        raise Rejected(401, "vapid-signature", "vapid: JWT signature is not 64 bytes r||s")
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    try:
        key.verify(der, f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise Rejected(401, "vapid-signature", "vapid: JWT signature does not match k") from None
    return claims


def _check_claims(claims: dict, origin: str, now: float) -> None:
    """The claims a push service checks on every request: aud, exp, sub."""
    if claims.get("aud") != origin:
        raise Rejected(401, "vapid-aud", f"vapid: aud {claims.get('aud')!r} is not {origin!r}")
    exp = claims.get("exp")
    if not isinstance(exp, (int, float)) or isinstance(exp, bool):
        raise Rejected(401, "vapid-exp", "vapid: exp missing or not a number")
    if exp <= now:
        raise Rejected(401, "vapid-exp", f"vapid: exp {exp} has passed")
    if exp > now + MAX_EXP_AHEAD:
        raise Rejected(401, "vapid-exp", f"vapid: exp {exp} is more than 24 h ahead")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub.startswith(("mailto:", "https:")):
        raise Rejected(401, "vapid-sub", "vapid: sub must start with mailto: or https:")


def verify_signature(header: str | None) -> tuple[dict, str]:
    """(claims, k) of an ``Authorization: vapid t=..., k=...`` header whose JWT
    is ES256-signed by k; the claims are not checked yet."""
    token, key = _parse_vapid(header)
    return _verify_jwt(token, key), key


def verify_vapid(header: str | None, origin: str) -> tuple[dict, str]:
    """(claims, k) of a header valid for a push service at ``origin`` now
    (RFC 8292); raises ``Rejected`` (401, with the reason) otherwise."""
    claims, key = verify_signature(header)
    _check_claims(claims, origin, time.time())
    return claims, key


def _ttl(value: str | None) -> int:
    """TTL is required (RFC 8030 5.2)."""
    if value is None or not TTL.fullmatch(value):
        raise Rejected(400, "ttl", "TTL header missing or not a non-negative integer")
    return int(value)


def _check_encoding(value: str | None) -> None:
    """Only RFC 8291 aes128gcm is accepted; the legacy aesgcm is refused."""
    if (value or "").lower() != "aes128gcm":
        raise Rejected(400, "content-encoding", f"Content-Encoding {value!r} is not aes128gcm")


def _urgency(value: str | None) -> str | None:
    """Urgency, if sent, is one of the four RFC 8030 5.3 values."""
    if value is not None and value not in URGENCIES:
        raise Rejected(400, "urgency", f"Urgency {value!r} is not one of {URGENCIES}")
    return value


def _topic(value: str | None) -> str | None:
    """Topic, if sent, is at most 32 base64url characters (RFC 8030 5.4)."""
    if value is not None and not TOPIC.fullmatch(value):
        raise Rejected(400, "topic", "Topic must be 1-32 base64url characters")
    return value


async def _read_body(request: web.Request) -> bytes:
    """The body, refused with 413 when over the 4096 bytes a push may carry."""
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        body = None
    if body is None or len(body) > MAX_BODY:
        raise Rejected(413, "too-large", f"body over {MAX_BODY} bytes")
    return body


def _decrypt(body: bytes, sub: _Subscription) -> bytes:
    """Decrypt as the browser would; any failure means the sender got it wrong."""
    try:
        return http_ece.decrypt(
            body, private_key=sub.private_key, auth_secret=sub.auth, version="aes128gcm"
        )
    except Exception as exc:  # http_ece raises ECEException, ValueError, InvalidTag...
        raise Rejected(400, "decrypt", f"decryption failed: {exc!r}") from None


def _reset(request: web.Request) -> web.Response:
    """Drop the connection with a TCP RST and no HTTP answer, like a crashed
    service; the client sees a connection error. The returned response is never
    written."""
    transport = request.transport
    if transport is not None:
        linger = struct.pack("ii", 1, 0)
        transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        transport.abort()
    return web.Response()


def _scripted(response) -> _Scripted:
    """Read one script() argument, failing in the test's thread on a typo."""
    if isinstance(response, int) and not isinstance(response, bool):
        return _Scripted("status", status=response)
    if response in ("stall", "reset"):
        return _Scripted(response)
    if isinstance(response, tuple) and len(response) == 2:
        first, second = response
        if first == "slow" and isinstance(second, (int, float)):
            return _Scripted("slow", seconds=float(second))
        if isinstance(first, int) and isinstance(second, dict):
            return _Scripted("status", status=first, headers=dict(second))
    raise ValueError(f"cannot script {response!r}: use a status, (status, headers), "
                     "'stall', 'reset' or ('slow', seconds)")


class PushService:
    """A strict Web Push service on 127.0.0.1, run from a daemon thread.

    All public methods may be called from any thread.
    """

    def __init__(self, port: int = 0):
        self._port = port
        self._lock = threading.Condition()
        self._subscriptions: dict[str, _Subscription] = {}
        self._removed: set[str] = set()
        self._scripts: dict[str, collections.deque[_Scripted]] = {}
        self._messages: list[Message] = []
        self._requests: list[Received] = []
        self._vapid_cache: dict[str, tuple[dict, str]] = {}  # loop thread only
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._stopping: asyncio.Event | None = None

    # -- running ---------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:PORT; also the aud a JWT must carry."""
        if not self._port:
            raise RuntimeError("PushService: start() it first to learn its port")
        return f"http://{HOST}:{self._port}"

    def start(self) -> PushService:
        """Bind 127.0.0.1 and serve from a daemon thread; returns once listening."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((HOST, self._port))
        self._port = sock.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="pushservice", daemon=True
        )
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(sock), self._loop).result(10)
        return self

    def stop(self) -> None:
        """Stop serving; stalled requests are reset, so this returns promptly."""
        if self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        self._loop = None

    def __enter__(self) -> PushService:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    async def _serve(self, sock: socket.socket) -> None:
        """Set up the aiohttp app on the bound socket (runs in the loop thread)."""
        app = web.Application(client_max_size=64 * 1024)
        app.add_routes([web.post("/push/{id}", self._on_push), web.get("/_stats", self._on_stats)])
        self._stopping = asyncio.Event()
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    async def _shutdown(self) -> None:
        """Release stalled requests first, or cleanup would wait for them."""
        self._stopping.set()
        await self._runner.cleanup()

    # -- what tests drive -----------------------------------------------

    def new_subscription(self) -> dict:
        """A fresh subscription in PushSubscription.toJSON() shape; the service
        keeps its private key and auth secret to decrypt what is sent to it."""
        sub_id = secrets.token_urlsafe(16)
        sub = _Subscription(
            id=sub_id,
            endpoint=f"{self.url}/push/{sub_id}",
            private_key=ec.generate_private_key(ec.SECP256R1()),
            auth=secrets.token_bytes(16),
        )
        with self._lock:
            self._subscriptions[sub_id] = sub
        return sub.to_json()

    def remove(self, endpoint: str) -> None:
        """Forget a subscription as a browser's unsubscribe does: later posts get 410."""
        sub_id = self._id_of(endpoint)
        with self._lock:
            self._subscriptions.pop(sub_id, None)
            self._removed.add(sub_id)

    def script(self, endpoint: str, *responses) -> None:
        """Queue answers for the next requests to endpoint that pass the VAPID check.

        Each is a status (429), a status with headers ((429, {"Retry-After": "2"})),
        "stall" (never answer until stop(); the client times out), "reset" (drop
        the connection without an answer) or ("slow", seconds) (sleep, then answer
        normally). One is used per request, in order; then behaviour is normal.
        """
        queued = [_scripted(response) for response in responses]
        sub_id = self._id_of(endpoint)
        with self._lock:
            self._scripts.setdefault(sub_id, collections.deque()).extend(queued)

    def messages(self, endpoint: str | None = None) -> list[Message]:
        """Messages accepted so far, oldest first, for one endpoint or all."""
        with self._lock:
            return list(self._matching(endpoint))

    def wait_for(self, count: int, timeout: float = 5.0,
                 endpoint: str | None = None) -> list[Message]:
        """Block until count messages were accepted, for senders that run in the
        background; raises TimeoutError saying what was received instead."""
        with self._lock:
            if not self._lock.wait_for(lambda: len(self._matching(endpoint)) >= count, timeout):
                got = collections.Counter(r.outcome for r in self._requests)
                raise TimeoutError(f"{len(self._matching(endpoint))} of {count} messages "
                                   f"after {timeout}s; requests so far: {dict(got)}")
            return list(self._matching(endpoint))

    @property
    def requests(self) -> list[Received]:
        """Every request to an endpoint, oldest first, with the status answered."""
        with self._lock:
            return list(self._requests)

    def stats(self) -> dict:
        """Counts for benchmarks: accepted means VAPID-verified and decrypted."""
        with self._lock:
            outcomes = collections.Counter(r.outcome for r in self._requests)
        accepted = outcomes.pop("accepted", 0)
        scripted = {outcome.removeprefix("scripted-"): n
                    for outcome, n in outcomes.items() if outcome.startswith("scripted-")}
        rejected = {outcome: n
                    for outcome, n in outcomes.items() if not outcome.startswith("scripted-")}
        return {"received": accepted + sum(outcomes.values()), "accepted": accepted,
                "rejected": rejected, "scripted": scripted}

    # -- handling a push ------------------------------------------------

    async def _on_push(self, request: web.Request) -> web.StreamResponse:
        """Answer one push like a strict push service (order: module docstring)."""
        endpoint = self.url + request.path
        try:
            sub = self._subscription(request.match_info["id"])
            claims, key = self._vapid(request.headers.get("Authorization"))
            scripted = self._next_scripted(sub.id)
            if scripted and scripted.kind == "slow":
                await asyncio.sleep(scripted.seconds)
            elif scripted:
                return await self._play(request, endpoint, scripted)
            message = await self._receive(request, sub, claims, key)
        except Rejected as reject:
            self._log(endpoint, reject.status, reject.outcome)
            return web.Response(status=reject.status, text=reject.text)
        with self._lock:
            self._messages.append(message)
            self._requests.append(Received(endpoint, 201, "accepted", message.received_at))
            self._lock.notify_all()
        location = f"{self.url}/m/{secrets.token_urlsafe(12)}"  # RFC 8030 5: a message URL
        return web.Response(status=201, headers={"Location": location})

    async def _on_stats(self, request: web.Request) -> web.Response:
        """GET /_stats, for a benchmark running the service as a process."""
        return web.json_response(self.stats())

    def _subscription(self, sub_id: str) -> _Subscription:
        """The live subscription, or 404 if never issued, 410 if removed."""
        with self._lock:
            sub, gone = self._subscriptions.get(sub_id), sub_id in self._removed
        if sub is not None:
            return sub
        if gone:
            raise Rejected(410, "gone", "subscription removed")
        raise Rejected(404, "unknown", "no such subscription")

    def _vapid(self, header: str | None) -> tuple[dict, str]:
        """Verify Authorization; returns (claims, k). The signature check is cached
        per exact header, since senders reuse one JWT for many pushes; aud, exp and
        sub are checked on every request, so an expired cached token is refused."""
        cached = self._vapid_cache.get(header) if header else None
        if cached is None:
            cached = verify_signature(header)
            if len(self._vapid_cache) >= VAPID_CACHE_SIZE:
                self._vapid_cache.clear()
            self._vapid_cache[header] = cached
        _check_claims(cached[0], self.url, time.time())
        return cached

    def _next_scripted(self, sub_id: str) -> _Scripted | None:
        """Take the next queued scripted answer for this subscription, if any."""
        with self._lock:
            queue = self._scripts.get(sub_id)
            return queue.popleft() if queue else None

    async def _play(self, request: web.Request, endpoint: str,
                    scripted: _Scripted) -> web.StreamResponse:
        """Give a scripted status, stall or reset instead of the normal answer."""
        if scripted.kind == "status":
            await request.read()  # so the connection stays usable (keep-alive)
            self._log(endpoint, scripted.status, f"scripted-{scripted.status}")
            return web.Response(status=scripted.status, headers=scripted.headers,
                                text=f"scripted {scripted.status}")
        self._log(endpoint, None, f"scripted-{scripted.kind}")
        if scripted.kind == "stall":
            await self._stopping.wait()
        return _reset(request)

    async def _receive(self, request: web.Request, sub: _Subscription,
                       claims: dict, key: str) -> Message:
        """Check the RFC 8030 headers and the size, then decrypt the body."""
        headers = request.headers
        ttl = _ttl(headers.get("TTL"))
        _check_encoding(headers.get("Content-Encoding"))
        urgency, topic = _urgency(headers.get("Urgency")), _topic(headers.get("Topic"))
        plaintext = _decrypt(await _read_body(request), sub)
        return Message(sub.id, sub.endpoint, plaintext, ttl, urgency, topic,
                       dict(claims), key, time.time())

    def _log(self, endpoint: str, status: int | None, outcome: str) -> None:
        """Record a request that was not accepted."""
        with self._lock:
            self._requests.append(Received(endpoint, status, outcome, time.time()))

    def _matching(self, endpoint: str | None) -> list[Message]:
        """Accepted messages for endpoint (all if None); call with the lock held."""
        if endpoint is None:
            return self._messages
        return [m for m in self._messages if m.endpoint == endpoint]

    def _id_of(self, endpoint: str) -> str:
        """The subscription id in one of our endpoints; KeyError if not issued here."""
        prefix = f"{self.url}/push/"
        sub_id = endpoint[len(prefix):] if endpoint.startswith(prefix) else ""
        with self._lock:
            if sub_id not in self._subscriptions and sub_id not in self._removed:
                raise KeyError(f"not an endpoint of this push service: {endpoint}")
        return sub_id


# -- as a process ------------------------------------------------------------

def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--subscriptions", type=int, default=1, help="how many to issue")
    parser.add_argument("--out", help="write url and subscriptions to this JSON file")
    parser.add_argument("--watch-stdin", action="store_true", help="stop when stdin closes")
    return parser.parse_args(argv)


def _announce(svc: PushService, subscriptions: list[dict], out: str | None) -> None:
    """Tell the benchmark where to send; the file is complete before the line appears."""
    ready = {"url": svc.url, "stats_url": f"{svc.url}/_stats"}
    if out:
        with open(f"{out}.tmp", "w") as file:
            json.dump({**ready, "subscriptions": subscriptions}, file)
        os.replace(f"{out}.tmp", out)
    else:
        ready["subscriptions"] = subscriptions
    print(json.dumps(ready), flush=True)


def _stop_at_eof(stream, stop: threading.Event) -> None:
    """Let a parent stop us by closing our stdin, even if it dies without a signal."""
    while stream.read(65536):
        pass
    stop.set()


def main(argv: list[str] | None = None) -> None:
    """Serve until told to stop, then print the final stats."""
    args = _arguments(argv)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    if args.watch_stdin:
        threading.Thread(target=_stop_at_eof, args=(sys.stdin.buffer, stop), daemon=True).start()
    with PushService(args.port) as svc:
        _announce(svc, [svc.new_subscription() for _ in range(args.subscriptions)], args.out)
        stop.wait()
        print(json.dumps(svc.stats()), flush=True)


if __name__ == "__main__":
    main()
