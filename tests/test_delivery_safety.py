"""Send-time safety: no pushes to our own network, only allowed hosts, no
redirects. The push service proves nothing reached it."""
import pytest

from flaskpush.auth import create_user
from flaskpush.models import PushSubscription
from flaskpush.push.authorization import origin_of
from flaskpush.push.delivery import build_payload, send
from flaskpush.push.transport import host_allowed

pytestmark = pytest.mark.app_config(PUSH_BACKOFF=0.05, PUSH_READ_TIMEOUT=1)


@pytest.fixture
def user(app):
    with app.app_context():
        yield create_user("alice", "correct horse")


def subscribe(user, service, endpoint=None):
    info = service.new_subscription()
    return PushSubscription.create(
        user=user, endpoint=endpoint or info["endpoint"],
        p256dh=info["keys"]["p256dh"], auth=info["keys"]["auth"],
    )


def port_of(service):
    return service.url.rsplit(":", 1)[1]


@pytest.mark.parametrize("host", ["127.0.0.1", "2130706433", "[::ffff:127.0.0.1]", "localhost"])
def test_inward_addresses_are_refused(user, push_service, host):
    """IP literals in any spelling, and names that resolve inward, are refused
    on the address that would be connected to."""
    endpoint = f"https://{host}:{port_of(push_service)}/push/x"
    row = subscribe(user, push_service, endpoint)
    [result] = send([row], build_payload("t", "b"))
    assert (result.outcome, result.status, result.attempts) == ("failed", None, 1)
    assert result.reason.startswith("refused:")
    assert push_service.requests == []
    assert PushSubscription.get_by_id(row.id).failure_count == 1


def test_plain_http_is_refused_without_the_insecure_setting(user, push_service):
    row = subscribe(user, push_service)
    [result] = send([row], build_payload("t", "b"))
    assert result.outcome == "failed" and "https" in result.reason
    assert push_service.requests == []


@pytest.mark.app_config(ALLOW_INSECURE_ENDPOINTS=True,
                        PUSH_ALLOWED_HOSTS=["push.example.com", "*.example.net"])
def test_hosts_outside_the_allowlist_are_refused(user, push_service):
    [result] = send([subscribe(user, push_service)], build_payload("t", "b"))
    assert result.outcome == "failed" and "PUSH_ALLOWED_HOSTS" in result.reason
    assert push_service.requests == []


@pytest.mark.app_config(ALLOW_INSECURE_ENDPOINTS=True, PUSH_ALLOWED_HOSTS=["127.0.0.1"])
def test_allowlisted_hosts_are_sent_to(user, push_service):
    [result] = send([subscribe(user, push_service)], build_payload("t", "b"))
    assert result.outcome == "sent"
    assert push_service.messages()[0].json()["title"] == "t"


def test_allowlist_matches_exact_hosts_and_subdomains():
    allowed = ("fcm.googleapis.com", "*.push.apple.com")
    assert host_allowed("fcm.googleapis.com", allowed)
    assert host_allowed("web.push.apple.com", allowed)
    assert not host_allowed("push.apple.com", allowed)
    assert not host_allowed("evilpush.apple.com", allowed)
    assert not host_allowed("fcm.googleapis.com.evil.example", allowed)
    assert host_allowed("anything.example", ())


@pytest.mark.app_config(ALLOW_INSECURE_ENDPOINTS=True)
def test_redirects_are_not_followed(user, push_service):
    row, target = subscribe(user, push_service), subscribe(user, push_service)
    push_service.script(row.endpoint, (307, {"Location": target.endpoint}))
    [result] = send([row], build_payload("t", "b"))
    assert (result.outcome, result.status, result.attempts) == ("failed", 307, 1)
    assert "not followed" in result.reason
    assert push_service.messages() == []
    assert [r.endpoint for r in push_service.requests] == [row.endpoint]


@pytest.mark.parametrize(
    "endpoint, origin",
    [
        ("https://fcm.googleapis.com/fcm/send/x", "https://fcm.googleapis.com"),
        ("https://Push.Example.com:443/x", "https://push.example.com"),
        ("https://push.example.com:8443/x?y", "https://push.example.com:8443"),
        ("http://127.0.0.1:80/push/1", "http://127.0.0.1"),
        ("http://127.0.0.1:8080/push/1", "http://127.0.0.1:8080"),
    ],
)
def test_vapid_audience_is_the_endpoint_origin(endpoint, origin):
    assert origin_of(endpoint) == origin
