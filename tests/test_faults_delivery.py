"""Push services that misbehave, on the in-process path: ones that never
answer, reset the connection or answer slowly. Sends time out as configured,
the bounded pool keeps serving the others, and no socket waits on a send.
(One stall, one reset, retried to success: test_delivery.py.)"""
import signal
import time
from pathlib import Path

import pytest
import requests

from flaskpush import create_app
from flaskpush.auth import create_user
from flaskpush.models import PushSubscription, User
from flaskpush.push.delivery import build_payload, send, send_to_user
from pushservice import PushService

CONCURRENCY = 4
READ_TIMEOUT = 2
pytestmark = pytest.mark.app_config(
    ALLOW_INSECURE_ENDPOINTS=True, PUSH_CONNECT_TIMEOUT=1, PUSH_READ_TIMEOUT=READ_TIMEOUT,
    PUSH_MAX_ATTEMPTS=2, PUSH_BACKOFF=0.05, PUSH_CONCURRENCY=CONCURRENCY,
)


class CountingService(PushService):
    """The push service, also counting the requests it holds at once."""

    in_flight = peak = 0

    async def _on_push(self, request):
        self.in_flight += 1  # one event loop thread: no lock needed
        self.peak = max(self.peak, self.in_flight)
        try:
            return await super()._on_push(request)
        finally:
            self.in_flight -= 1


@pytest.fixture
def service():
    with CountingService() as svc:
        yield svc


@pytest.fixture
def user(app):
    with app.app_context():
        yield create_user("alice", "correct horse")


def subscribe(user, service, count, *script):
    """``count`` stored subscriptions, each answering ``script`` first."""
    rows = []
    for _ in range(count):
        info = service.new_subscription()
        service.script(info["endpoint"], *script)
        rows.append(PushSubscription.create(user=user, endpoint=info["endpoint"],
                                            p256dh=info["keys"]["p256dh"], auth=info["keys"]["auth"]))
    return rows


@pytest.mark.parametrize("fault, reason", [
    ("stall", "timed out"), (("slow", READ_TIMEOUT + 2), "timed out"), ("reset", "connection error"),
])
def test_a_failing_service_fails_its_pushes_and_spares_the_rest(user, service, fault, reason):
    bad = subscribe(user, service, 2, fault, fault)  # both attempts
    good = subscribe(user, service, 6)
    results = {r.subscription_id: r for r in send(bad + good, build_payload("t", "b"))}
    for row in bad:
        assert (results[row.id].outcome, results[row.id].attempts) == ("failed", 2)
        assert results[row.id].reason.startswith(reason)
        assert PushSubscription.get_by_id(row.id).failure_count == 1
    assert {results[row.id].outcome for row in good} == {"sent"}
    assert {m.endpoint for m in service.messages()} == {row.endpoint for row in good}


def test_stalled_pushes_leave_the_other_slots_serving(app, user, service):
    """Two of four slots stall; the other pushes of the fan-out, and another
    fan-out's, go through the free slots before the stalls time out."""
    stalled = subscribe(user, service, 2, "stall")
    good = subscribe(user, service, 40)
    other = subscribe(create_user("bob", "correct horse"), service, 5)
    fan_out = send_to_user(user, "t", "b")
    while len([r for r in service.requests if r.outcome == "scripted-stall"]) < 2:
        time.sleep(0.01)
    assert {r.outcome for r in send(other, build_payload("t", "b"))} == {"sent"}
    results = {r.subscription_id: r for r in fan_out.result(30)}
    assert {(results[row.id].outcome, results[row.id].attempts) for row in stalled} == {("sent", 2)}
    assert {(results[row.id].outcome, results[row.id].attempts) for row in good} == {("sent", 1)}
    first_timeout = service.requests[0].received_at + READ_TIMEOUT
    unstalled = {row.endpoint for row in good + other}
    served = [m for m in service.messages() if m.endpoint in unstalled]
    assert len(served) == 45 and all(m.received_at < first_timeout for m in served)


def test_concurrency_bounds_the_requests_in_flight(user, service):
    rows = subscribe(user, service, 24, ("slow", 0.2))
    results = send(rows, build_payload("t", "b"))
    assert {r.outcome for r in results} == {"sent"}
    assert service.peak == CONCURRENCY  # the limit is used, and never passed


def test_a_socket_answers_while_a_fan_out_is_stalled(app, alice, service):
    with app.app_context():
        user = User.get(User.name == "alice")
        subscribe(user, service, 2 * CONCURRENCY, "stall")
        fan_out = send_to_user(user, "t", "b")
    while len(service.requests) < CONCURRENCY:
        time.sleep(0.01)
    assert "key" in alice.ws.call("push_get_vapid")
    info = service.new_subscription()
    assert alice.ws.call("push_subscribe", subscription=info) == {"cmd": "push_subscribed", "success": True}
    assert not fan_out.done()  # every slot still stalled, and the socket was served
    assert {(r.outcome, r.attempts) for r in fan_out.result(60)} == {("sent", 2)}


def fanout_app():
    """The app with one more route that starts a ``send_to_user`` fan-out,
    for the gunicorn test below (``gunicorn 'test_faults_delivery:fanout_app()'``)."""
    app = create_app()

    @app.post("/_fan_out/<name>")
    def fan_out(name):
        send_to_user(User.get(User.name == name), "t", "sent during shutdown")
        return "started"

    return app


def test_gunicorn_sigterm_lets_an_in_flight_fan_out_finish(app, user, service, gunicorn):
    """A worker told to stop finishes its background sends before it exits,
    within gunicorn's --graceful-timeout; past it the master kills the worker
    and what was still unsent is lost (use the job queue where that matters)."""
    rows = subscribe(user, service, 12, ("slow", 1))  # three rounds of four: about 3 s
    server = gunicorn(
        "test_faults_delivery:fanout_app()", threads=4, graceful_timeout=10,
        pythonpath=Path(__file__).resolve().parent,
        ALLOW_INSECURE_ENDPOINTS=True, PUSH_CONCURRENCY=CONCURRENCY,
    )
    assert requests.post(f"{server.url}/_fan_out/alice", json={}, timeout=30).text == "started"
    while service.in_flight == 0:
        time.sleep(0.01)
    server.process.send_signal(signal.SIGTERM)
    stopped_at = time.time()
    assert server.process.wait(15) == 0  # the bound: --graceful-timeout, and a margin
    assert sorted(m.endpoint for m in service.messages()) == sorted(row.endpoint for row in rows)
    assert max(m.received_at for m in service.messages()) > stopped_at  # sent while stopping
    assert PushSubscription.select().where(PushSubscription.last_success_at.is_null()).count() == 0
