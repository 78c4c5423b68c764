"""Delivery against a real local push service: what it verified and decrypted,
and what each of its answers does to the stored subscription."""
import logging
import os
import time
from datetime import timedelta
from email.utils import formatdate

import pytest

from flaskpush.auth import create_user
from flaskpush.db import database
from flaskpush.models import PushSubscription, utcnow
from flaskpush.push.delivery import PayloadTooLarge, build_payload, send, send_to_user
from flaskpush.vapid import get_vapid, public_key_b64

pytestmark = pytest.mark.app_config(
    ALLOW_INSECURE_ENDPOINTS=True, PUSH_BACKOFF=0.05, PUSH_READ_TIMEOUT=1, PUSH_MAX_ATTEMPTS=3
)


@pytest.fixture
def user(app):
    with app.app_context():
        yield create_user("alice", "correct horse")


def subscribe(user, service, **fields):
    """Store a subscription the push service issued, as push_subscribe would."""
    info = service.new_subscription()
    return PushSubscription.create(
        user=user, endpoint=info["endpoint"], p256dh=info["keys"]["p256dh"],
        auth=info["keys"]["auth"], **fields,
    )


def reload(row):
    return PushSubscription.get_or_none(PushSubscription.id == row.id)


def test_push_carries_the_contract_payload_vapid_and_ttl(app, user, push_service):
    rows = [subscribe(user, push_service), subscribe(user, push_service)]
    payload = build_payload("Hello", "x" * 200, url="/inbox")
    results = send(rows, payload)
    assert [(r.outcome, r.status, r.attempts, r.reason) for r in results] == [("sent", 201, 1, "")] * 2
    messages = push_service.messages()
    assert sorted(m.endpoint for m in messages) == sorted(r.endpoint for r in rows)
    for message in messages:
        assert message.json() == {"title": "Hello", "body": "x" * 120, "url": "/inbox"}
        assert message.ttl == 86400
        assert message.vapid_key == public_key_b64(get_vapid())
        assert message.vapid_claims["aud"] == push_service.url
        assert message.vapid_claims["sub"] == app.config["VAPID_SUBJECT"]
        assert time.time() < message.vapid_claims["exp"] <= time.time() + 24 * 3600


def test_success_resets_the_failure_record(user, push_service):
    row = subscribe(user, push_service, failure_count=3, failing_since=utcnow())
    [result] = send([row], build_payload("t", "b"))
    assert result.outcome == "sent"
    row = reload(row)
    assert row.failure_count == 0 and row.failing_since is None
    assert row.last_success_at is not None
    assert push_service.wait_for(1)[0].json()["title"] == "t"


def test_ttl_urgency_and_topic_are_sent(user, push_service):
    row = subscribe(user, push_service)
    send([row], build_payload("t", "b"), ttl=60, urgency="high", topic="inbox-42")
    [message] = push_service.messages()
    assert (message.ttl, message.urgency, message.topic) == (60, "high", "inbox-42")


def test_bad_options_are_refused_before_sending(user, push_service):
    row = subscribe(user, push_service)
    for options in ({"urgency": "urgent"}, {"topic": "no spaces"}, {"ttl": -1}):
        with pytest.raises(ValueError):
            send([row], build_payload("t", "b"), **options)
    assert push_service.requests == []


def test_a_payload_that_just_fits_is_delivered(user, push_service):
    row = subscribe(user, push_service)
    frame = len(b'{"title":"t","body":"","pad":""}')
    payload = build_payload("t", "", pad="p" * (4096 - 103 - frame))
    [result] = send([row], payload)
    assert result.outcome == "sent"
    assert push_service.messages()[0].json() == payload


def test_a_payload_too_large_is_refused_before_any_request(user, push_service):
    row = subscribe(user, push_service)
    frame = len(b'{"title":"t","body":"","pad":""}')
    with pytest.raises(PayloadTooLarge, match="4096"):
        send([row], build_payload("t", "", pad="p" * (4096 - 103 - frame + 1)))
    with pytest.raises(PayloadTooLarge):
        send_to_user(user, "t", "", pad="p" * 5000)
    assert push_service.requests == []


@pytest.mark.parametrize("answer", [404, 410])
def test_gone_subscriptions_are_deleted(user, push_service, answer):
    row, other = subscribe(user, push_service), subscribe(user, push_service)
    if answer == 410:
        push_service.remove(row.endpoint)
    else:
        push_service.script(row.endpoint, 404)
    results = send([row, other], build_payload("t", "b"))
    gone = next(r for r in results if r.subscription_id == row.id)
    assert (gone.outcome, gone.status, gone.attempts) == ("gone", answer, 1)
    assert reload(row) is None and reload(other) is not None
    assert [m.endpoint for m in push_service.messages()] == [other.endpoint]


def test_expired_subscriptions_are_removed_without_sending(user, push_service):
    expired = subscribe(user, push_service, expiration_time=utcnow() - timedelta(minutes=1))
    later = subscribe(user, push_service, expiration_time=utcnow() + timedelta(days=1))
    results = {r.subscription_id: r for r in send([expired, later], build_payload("t", "b"))}
    assert (results[expired.id].outcome, results[expired.id].attempts) == ("gone", 0)
    assert results[later.id].outcome == "sent"
    assert reload(expired) is None
    assert [m.endpoint for m in push_service.messages()] == [later.endpoint]


def test_429_is_retried_after_retry_after_seconds(user, push_service):
    row = subscribe(user, push_service)
    push_service.script(row.endpoint, (429, {"Retry-After": "1"}))
    [result] = send([row], build_payload("t", "b"))
    assert (result.outcome, result.status, result.attempts) == ("sent", 201, 2)
    first, second = push_service.requests
    assert first.status == 429 and second.outcome == "accepted"
    assert second.received_at - first.received_at >= 0.9
    assert push_service.messages()[0].json()["title"] == "t"


def test_503_is_retried_after_an_http_date(user, push_service):
    row = subscribe(user, push_service)
    push_service.script(row.endpoint, (503, {"Retry-After": formatdate(time.time() + 2, usegmt=True)}))
    [result] = send([row], build_payload("t", "b"))
    assert (result.outcome, result.attempts) == ("sent", 2)
    first, second = push_service.requests
    assert second.received_at - first.received_at >= 0.9
    assert len(push_service.messages()) == 1


@pytest.mark.app_config(PUSH_RETRY_BUDGET=5)
def test_retry_after_beyond_the_budget_fails_at_once(user, push_service):
    row = subscribe(user, push_service)
    push_service.script(row.endpoint, (429, {"Retry-After": "3600"}))
    [result] = send([row], build_payload("t", "b"))
    assert (result.outcome, result.status, result.attempts) == ("failed", 429, 1)
    assert result.reason == "scripted 429"
    assert push_service.messages() == []


def test_server_errors_and_connection_errors_are_retried(user, push_service):
    row = subscribe(user, push_service)
    push_service.script(row.endpoint, 500, "reset")
    [result] = send([row], build_payload("t", "b"))
    assert (result.outcome, result.status, result.attempts) == ("sent", 201, 3)
    assert [r.outcome for r in push_service.requests] == ["scripted-500", "scripted-reset", "accepted"]
    assert len(push_service.messages()) == 1


def test_a_stalled_request_times_out_and_is_retried(user, push_service):
    row = subscribe(user, push_service)
    push_service.script(row.endpoint, "stall")
    [result] = send([row], build_payload("t", "b"))
    assert (result.outcome, result.attempts) == ("sent", 2)
    assert len(push_service.messages()) == 1


def test_retries_are_bounded_and_failures_counted(user, push_service):
    row = subscribe(user, push_service)
    push_service.script(row.endpoint, 500, 500, 500, 502, 502, 502)
    [result] = send([row], build_payload("t", "b"))
    assert (result.outcome, result.status, result.attempts) == ("failed", 500, 3)
    first = reload(row)
    assert first.failure_count == 1 and first.failing_since is not None
    [result] = send([first], build_payload("t", "b"))
    assert (result.outcome, result.status) == ("failed", 502)
    second = reload(row)
    assert second.failure_count == 2 and second.failing_since == first.failing_since
    assert push_service.messages() == []


@pytest.mark.app_config(PUSH_MAX_ATTEMPTS=1)
def test_a_timeout_has_no_status(user, push_service):
    row = subscribe(user, push_service)
    push_service.script(row.endpoint, "stall")
    [result] = send([row], build_payload("t", "b"))
    assert (result.outcome, result.status, result.reason) == ("failed", None, "timed out")


def test_413_fails_without_retry_and_logs_the_response(user, push_service, caplog):
    row = subscribe(user, push_service)
    push_service.script(row.endpoint, 413)
    with caplog.at_level(logging.WARNING):
        [result] = send([row], build_payload("t", "b"))
    assert (result.outcome, result.status, result.attempts) == ("failed", 413, 1)
    assert "scripted 413" in result.reason and "scripted 413" in caplog.text
    assert len(push_service.requests) == 1 and reload(row).failure_count == 1


@pytest.mark.parametrize("status", [400, 401, 403])
def test_auth_errors_say_vapid(user, push_service, caplog, status):
    row = subscribe(user, push_service)
    push_service.script(row.endpoint, status)
    with caplog.at_level(logging.WARNING):
        [result] = send([row], build_payload("t", "b"))
    assert (result.outcome, result.status, result.attempts) == ("failed", status, 1)
    assert "VAPID" in result.reason and "VAPID" in caplog.text


def test_progress_is_called_once_per_subscription(user, push_service):
    rows = [subscribe(user, push_service) for _ in range(5)]
    rows.append(subscribe(user, push_service, expiration_time=utcnow() - timedelta(days=1)))
    seen = []
    results = send(rows, build_payload("t", "b"), progress=seen.append)
    assert sorted(r.subscription_id for r in seen) == sorted(r.id for r in rows)
    assert len(results) == 6 and len(push_service.messages()) == 5


def test_one_vapid_header_per_origin_reused(user, push_service):
    from pushservice import PushService

    with PushService() as other_service:
        rows = [subscribe(user, push_service), subscribe(user, other_service)]
        send(rows, build_payload("one", "b"))
        send(rows, build_payload("two", "b"))
        other = other_service.messages()
    mine = push_service.messages()
    assert [m.json()["title"] for m in mine + other] == ["one", "two", "one", "two"]
    assert mine[0].vapid_claims == mine[1].vapid_claims
    assert mine[0].vapid_claims["aud"] == push_service.url
    assert other[0].vapid_claims["aud"] == other_service.url


def test_send_to_user_returns_a_future(app, user, push_service):
    subscribe(user, push_service)
    subscribe(create_user("bob", "correct horse"), push_service)
    future = send_to_user(user, "Hi", "there", url="/x", urgency="low")
    [result] = future.result(10)
    assert result.outcome == "sent"
    [message] = push_service.messages()
    assert message.json() == {"title": "Hi", "body": "there", "url": "/x"}
    assert message.urgency == "low"


def test_delivery_works_in_a_forked_child(app, user, push_service):
    """A gunicorn worker forks after the master may have sent: the child needs
    its own delivery loop, not the parent's dead thread."""
    first, second = subscribe(user, push_service), subscribe(user, push_service)
    send([first], build_payload("parent", "b"))
    database.close()
    getattr(database.obj, "close_all", lambda: None)()
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            with app.app_context():
                [result] = send([reload(second)], build_payload("child", "b"))
                status = 0 if result.outcome == "sent" else 2
        finally:
            os._exit(status)
    assert os.waitpid(pid, 0)[1] == 0
    assert {m.json()["title"] for m in push_service.messages()} == {"parent", "child"}


def test_vapid_header_is_renewed_before_it_expires(app):
    from flaskpush.push.authorization import LIFETIME, RENEW_BEFORE, HeaderCache

    with app.app_context():
        cache = HeaderCache(get_vapid(), "mailto:ops@example.com")
    now = time.time()
    first = cache.header("https://push.example.com/a", now)
    assert cache.header("https://push.example.com/b", now + 60) == first
    assert cache.header("https://other.example.com/a", now) != first
    assert cache.header("https://push.example.com/a", now + LIFETIME - RENEW_BEFORE + 1) != first
