"""``flask push test-send`` against the real local push service: what it
decrypted is what the command said it sent."""
import pytest
from conftest import store_subscription

from flaskpush.auth import create_user
from flaskpush.models import PushSubscription
from flaskpush.vapid import get_vapid, public_key_b64

pytestmark = pytest.mark.app_config(ALLOW_INSECURE_ENDPOINTS=True, PUSH_MAX_ATTEMPTS=1)


@pytest.fixture
def bob(app):
    with app.app_context():
        yield create_user("bob", "long enough")


def subscribe(push_service, user):
    return store_subscription(user, push_service.new_subscription())


def said(output, field):
    """The value the command printed for ``Title:`` or ``Body:``."""
    prefix = f"{field}: "
    return next(line[len(prefix):] for line in output.splitlines() if line.startswith(prefix))


def test_what_was_decrypted_is_what_was_said(runner, push_service, bob):
    subs = [subscribe(push_service, bob) for _ in range(2)]
    body = "Ünïcode and a long text. " * 10
    result = runner.invoke(args=["push", "test-send", "--user", "bob", "--title", "Hello ops",
                                 "--body", body, "--url", "/inbox", "--ttl", "60"])
    assert result.exit_code == 0, result.output
    messages = push_service.messages()
    assert sorted(m.endpoint for m in messages) == sorted(s.endpoint for s in subs)
    for message in messages:
        payload = message.json()
        assert payload["title"] == said(result.output, "Title") == "Hello ops"
        assert payload["body"] == said(result.output, "Body") == body[:120]
        assert payload["url"] == "/inbox"
        assert message.ttl == 60
        assert message.vapid_key == public_key_b64(get_vapid())
    for sub in subs:
        assert f"#{sub.id} bob 127.0.0.1:" in result.output
    assert result.output.count(": sent (201)") == 2
    assert result.output.endswith("2 subscriptions: 2 sent.\n")
    assert all(s.last_success_at for s in PushSubscription.select())


def test_gone_subscription_is_removed_and_exit_is_1(runner, push_service, bob):
    good, gone = subscribe(push_service, bob), subscribe(push_service, bob)
    push_service.remove(gone.endpoint)  # the browser unsubscribed: the service answers 410
    result = runner.invoke(args=["push", "test-send", str(good.id), str(gone.id)])
    assert result.exit_code == 1
    assert f"#{gone.id} bob" in result.output and "removed as gone (410" in result.output
    assert result.output.endswith("2 subscriptions: 1 sent, 1 removed as gone.\n")
    assert [s.id for s in PushSubscription.select()] == [good.id]
    assert len(push_service.messages(good.endpoint)) == 1


def test_failure_shows_status_and_reason_and_keeps_the_row(runner, push_service, bob):
    sub = subscribe(push_service, bob)
    push_service.script(sub.endpoint, 500)
    result = runner.invoke(args=["push", "test-send", "--endpoint", sub.endpoint])
    assert result.exit_code == 1
    assert f"#{sub.id} bob" in result.output and ": failed (500" in result.output
    assert result.output.endswith("1 subscription: 1 failed.\n")
    row = PushSubscription.get_by_id(sub.id)
    assert row.failure_count == 1 and row.failing_since is not None


def test_user_without_subscriptions_is_exit_1(runner, push_service, bob):
    result = runner.invoke(args=["push", "test-send", "--user", "bob"])
    assert result.exit_code == 1
    assert "user 'bob' has no subscriptions" in result.stderr
    assert push_service.requests == []


def test_unknown_id_sends_nothing(runner, push_service, bob):
    sub = subscribe(push_service, bob)
    result = runner.invoke(args=["push", "test-send", str(sub.id), "999999"])
    assert result.exit_code == 1
    assert "no subscription with id 999999" in result.stderr
    assert push_service.requests == []


def test_no_selection_is_a_usage_error(runner, push_service, bob):
    result = runner.invoke(args=["push", "test-send"])
    assert result.exit_code == 2
    assert "exactly one" in result.stderr


def test_missing_vapid_key_sends_nothing(tmp_path, app, runner, push_service, bob):
    subscribe(push_service, bob)
    app.config["VAPID_PRIVATE_KEY"] = str(tmp_path / "absent.pem")
    result = runner.invoke(args=["push", "test-send", "--user", "bob"])
    assert result.exit_code == 1
    assert "VAPID keys not configured on this server" in result.stderr
    assert push_service.requests == []


def test_payload_too_large_sends_nothing(runner, push_service, bob):
    subscribe(push_service, bob)
    result = runner.invoke(args=["push", "test-send", "--user", "bob", "--title", "x" * 5000])
    assert result.exit_code == 1
    assert "the limit is 4096" in result.stderr
    assert push_service.requests == []


def test_many_subscriptions_get_a_progress_bar(runner, push_service, bob):
    for _ in range(12):
        subscribe(push_service, bob)
    result = runner.invoke(args=["push", "test-send", "--user", "bob"])
    assert result.exit_code == 0, result.output
    assert "Sending" in result.stderr
    assert "Sending" not in result.stdout
    assert len(push_service.messages()) == 12
    assert result.stdout.endswith("12 subscriptions: 12 sent.\n")


def test_new_key_is_used_at_once_after_generate(runner, push_service, bob):
    sub = subscribe(push_service, bob)
    assert runner.invoke(args=["push", "test-send", str(sub.id)]).exit_code == 0
    new_key = runner.invoke(args=["push", "keys", "--generate", "--force", "--keep"]).stdout.strip()
    assert runner.invoke(args=["push", "test-send", str(sub.id)]).exit_code == 0
    first, second = push_service.messages(sub.endpoint)
    assert second.vapid_key == new_key != first.vapid_key
