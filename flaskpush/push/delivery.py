"""Sending pushes: ``send`` to subscriptions, ``send_to_user`` in the background.

The caller's thread does the database work; the HTTP requests run with
bounded concurrency on this process's delivery loop (``runtime``), which
hands each finished subscription back through a deque. Results are then
written to the rows in batches and passed to ``progress`` one by one.

``send_once`` is the same without waiting to retry, for the job queue
(``queue``): it says which pushes the retry policy would try again, and when.
With ``QUEUE_URL`` set, ``send_to_user`` hands the fan-out to that queue.
"""
import asyncio
import collections
import logging
import re
from concurrent.futures import Future
from dataclasses import dataclass, replace

from flask import current_app

from ..models import PushSubscription, SocketPresence, utcnow
from ..vapid import get_vapid
from . import outcomes, runtime
from .authorization import HeaderCache
from .payload import PayloadTooLarge, build_payload, encode, encrypt
from .retry import RetryPolicy
from .transport import Refused, Settings, Transport

__all__ = ["PayloadTooLarge", "Result", "build_payload", "send", "send_once", "send_to_user"]

log = logging.getLogger(__name__)

URGENCIES = ("very-low", "low", "normal", "high")
TOPIC = re.compile(r"[A-Za-z0-9_-]{1,32}")
GONE = (404, 410)
VAPID_SUSPECT = (400, 401, 403)
STALE_BEATS = 3  # a socket that missed this many heartbeats is gone
RECORD_BATCH = 500
RECORD_INTERVAL = 0.2  # seconds


@dataclass
class Result:
    subscription_id: int
    endpoint: str
    outcome: str  # "sent" | "gone" | "failed"; "retry" only from ``send_once``
    status: int | None
    reason: str
    attempts: int
    retry_in: float | None = None  # seconds until the next attempt, for "retry"


@dataclass(frozen=True)
class Job:
    """What the delivery loop needs of a row (Peewee rows stay in their thread)."""

    subscription_id: int
    endpoint: str
    p256dh: str
    auth: str

    def result(self, outcome, status, reason, attempts):
        return Result(self.subscription_id, self.endpoint, outcome, status, reason, attempts)


@dataclass(frozen=True)
class Tried:
    """Where the retry policy resumes: attempts made and seconds waited so far."""

    attempts: int = 0
    waited: float = 0.0


def push_headers(config, ttl=None, urgency=None, topic=None):
    """The RFC 8030 headers, checked here so a bad option fails before sending."""
    ttl = config["PUSH_TTL"] if ttl is None else ttl
    if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 0:
        raise ValueError(f"ttl must be a non-negative integer, not {ttl!r}")
    headers = {"TTL": str(ttl), "Content-Encoding": "aes128gcm",
               "Content-Type": "application/octet-stream"}
    if urgency is not None:
        if urgency not in URGENCIES:
            raise ValueError(f"urgency must be one of {', '.join(URGENCIES)}")
        headers["Urgency"] = urgency
    if topic is not None:
        if not isinstance(topic, str) or not TOPIC.fullmatch(topic):
            raise ValueError("topic must be 1-32 base64url characters")
        headers["Topic"] = topic
    return headers


def header_cache(app):
    """The app's VAPID headers by origin: the key is loaded once (``get_vapid``)."""
    cache = app.extensions.get("flaskpush.vapid_headers")
    if cache is None:
        cache = HeaderCache(get_vapid(app), app.config["VAPID_SUBJECT"])
        app.extensions["flaskpush.vapid_headers"] = cache
    return cache


def conclude(job, answer, attempts):
    """Turn the last answer into a ``Result``."""
    if answer.status in (200, 201, 202):
        return job.result("sent", answer.status, "", attempts)
    outcome = "gone" if answer.status in GONE else "failed"
    reason = answer.text or (f"HTTP {answer.status}" if answer.status else "no answer")
    if answer.status in VAPID_SUSPECT:
        reason += " (probably a VAPID problem: key, subject or aud)"
    elif answer.status is not None and 300 <= answer.status < 400:
        reason += " (redirects are not followed)"
    return job.result(outcome, answer.status, reason, attempts)


@dataclass
class Batch:
    """One payload on its way to many subscriptions (runs on the delivery loop)."""

    plaintext: bytes
    headers: dict
    authorization: HeaderCache
    transport: Transport
    policy: RetryPolicy
    tried: Tried | None = None  # set: return retries instead of waiting for them

    async def run(self, jobs, done):
        """Deliver every job, at most ``PUSH_CONCURRENCY`` at a time."""
        pending = iter(jobs)
        workers = min(self.transport.settings.concurrency, len(jobs))
        await asyncio.gather(*(self.worker(pending, done) for _ in range(workers)))

    async def worker(self, pending, done):
        for job in pending:
            try:
                result = await self.deliver(job)
            except Exception as exc:  # a bad stored key must not stop the fan-out
                log.exception("push to subscription %s failed", job.subscription_id)
                result = job.result("failed", None, repr(exc)[:300], 0)
            done.append(result)

    async def deliver(self, job):
        """Post one push, retrying as the policy says."""
        try:
            self.transport.check(job.endpoint)
        except Refused as exc:
            return job.result("failed", None, f"refused: {exc}", 1)
        body = encrypt(self.plaintext, job.p256dh, job.auth)
        attempts, waited = (self.tried.attempts, self.tried.waited) if self.tried else (0, 0.0)
        while True:
            attempts += 1
            headers = {**self.headers, "Authorization": self.authorization.header(job.endpoint)}
            answer = await self.transport.post(job.endpoint, body, headers)
            delay = self.policy.delay(answer, attempts, waited)
            if delay is None:
                return conclude(job, answer, attempts)
            if self.tried:
                return replace(conclude(job, answer, attempts), outcome="retry", retry_in=delay)
            await asyncio.sleep(delay)
            waited += delay


def send(subscriptions, payload, *, ttl=None, urgency=None, topic=None, progress=None):
    """Push ``payload`` to each subscription row and wait; one ``Result`` each.

    Raises ``PayloadTooLarge`` (or ``ValueError`` for a bad option) before
    any network call. Expired subscriptions are removed without sending.
    """
    return dispatch(subscriptions, payload, (ttl, urgency, topic), progress, tried=None)


def send_once(subscriptions, payload, *, tried=Tried(), ttl=None, urgency=None, topic=None):
    """``send`` without waiting to retry: a push the retry policy would try
    again comes back with outcome "retry" and ``retry_in`` seconds, its row
    untouched, for the caller to schedule. ``tried`` is what earlier runs spent."""
    return dispatch(subscriptions, payload, (ttl, urgency, topic), None, tried=tried)


def dispatch(subscriptions, payload, options, progress, tried):
    """The body of ``send`` and ``send_once``."""
    app = current_app._get_current_object()
    batch = Batch(
        plaintext=encode(payload),
        headers=push_headers(app.config, *options),
        authorization=header_cache(app),
        transport=Transport.for_settings(Settings.from_config(app.config)),
        policy=RetryPolicy.from_config(app.config),
        tried=tried,
    )
    now = utcnow()
    jobs, expired = [], []
    for row in subscriptions:
        if row.expiration_time is not None and row.expiration_time <= now:
            expired.append(Result(row.id, row.endpoint, "gone", None, "subscription expired", 0))
        else:
            jobs.append(Job(row.id, row.endpoint, row.p256dh, row.auth))
    finish(expired, progress)
    if not jobs:
        return expired
    done = collections.deque()
    future = asyncio.run_coroutine_threadsafe(batch.run(jobs, done), runtime.loop())
    return expired + collect(done, len(jobs), future, progress)


def collect(done, count, future, progress):
    """Take results off the loop's deque every ``RECORD_INTERVAL`` seconds
    (or at once when all are in) and record them in batches: per-result
    wake-ups and transactions would cost more than the pushes."""
    results = []
    while len(results) < count:
        try:
            future.result(timeout=RECORD_INTERVAL)  # raises here if the loop failed
        except TimeoutError:
            pass
        except BaseException:  # e.g. a queue job's timeout: stop sending behind its back
            future.cancel()
            raise
        while done and len(results) < count:
            chunk = [done.popleft() for _ in range(min(len(done), RECORD_BATCH))]
            finish(chunk, progress)
            results.extend(chunk)
    return results


def finish(results, progress):
    """Write ``results`` to their rows, log the failures, report progress."""
    final = [result for result in results if result.outcome != "retry"]
    if final:
        outcomes.record(final)
    for result in results:
        if result.outcome == "failed":
            current_app.logger.warning(
                "push to subscription %s failed (%s): %s",
                result.subscription_id, result.status, result.reason,
            )
        if progress is not None:
            progress(result)


def send_to_user(user, title, body, *, only_if_offline=False, ttl=None, urgency=None,
                 topic=None, **extra):
    """Push to every subscription of ``user`` in the background.

    Returns a ``Future`` at once (it resolves to the list of ``Result``; an
    empty list when ``only_if_offline`` and the user has a live socket). A
    payload that cannot fit or a bad option raises here, in the caller.
    With ``QUEUE_URL`` set the workers of the job queue send instead, and the
    ``Future`` is already resolved, to the list of enqueued jobs.
    """
    app = current_app._get_current_object()
    payload = build_payload(title, body, **extra)
    check(app.config, payload, ttl, urgency, topic)
    options = {"ttl": ttl, "urgency": urgency, "topic": topic}
    if app.config["QUEUE_URL"]:
        return enqueued_to_user(app, user.id, payload, only_if_offline, options)
    return runtime.executor().submit(deliver_to_user, app, user.id, payload, only_if_offline, options)


def check(config, payload, ttl, urgency, topic):
    """Fail in the caller, not later in the background, on what could never be sent."""
    encode(payload)
    push_headers(config, ttl, urgency, topic)


def enqueued_to_user(app, user_id, payload, only_if_offline, options):
    """``send_to_user`` through the job queue: the jobs carry the row ids."""
    from . import queue  # rq is needed only with a queue configured

    jobs = []
    if not (only_if_offline and is_online(app, user_id)):
        ids = PushSubscription.select(PushSubscription.id).where(PushSubscription.user == user_id)
        jobs = queue.enqueue([row.id for row in ids], payload, **options)
    future = Future()
    future.set_result(jobs)
    return future


def is_online(app, user_id):
    """A fresh presence row on any worker of any host means "online"."""
    stale_after = STALE_BEATS * app.config["PRESENCE_HEARTBEAT"]
    return bool(SocketPresence.online_user_ids([user_id], stale_after))


def deliver_to_user(app, user_id, payload, only_if_offline, options):
    """The background half of ``send_to_user``."""
    with app.app_context():
        if only_if_offline and is_online(app, user_id):
            return []
        rows = PushSubscription.select().where(PushSubscription.user == user_id)
        return send(rows, payload, **options)
