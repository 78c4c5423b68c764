"""Model rules the database enforces: uniqueness and cascades."""
import pytest
from conftest import make_subscription
from peewee import IntegrityError

from flaskpush.auth import create_user
from flaskpush.models import LoginSession, PushSubscription, SocketPresence
from flaskpush.push import store
from flaskpush.push.validation import validate_subscription


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield


def subscribe(user, endpoint):
    user.login_session = LoginSession.start(user)
    assert store.save(validate_subscription(make_subscription(endpoint)), user.id, user.login_session.id, "agent")
    return user.login_session


def test_passwords_are_salted_hashes(ctx):
    a = create_user("alice", "same password")
    b = create_user("bob", "same password")
    assert a.password_hash != b.password_hash and "same password" not in a.password_hash
    assert a.check_password("same password") and not a.check_password("other")


def test_user_names_are_unique(ctx):
    create_user("alice", "correct horse")
    with pytest.raises(IntegrityError):
        create_user("alice", "correct horse")


def test_deleting_a_user_deletes_everything_of_theirs(ctx):
    alice, bob = create_user("alice", "correct horse"), create_user("bob", "correct horse")
    session = subscribe(alice, "https://push.example.com/a")
    subscribe(bob, "https://push.example.com/b")
    SocketPresence.create(id="s1", user=alice, login_session=session)
    alice.delete_instance()
    assert [s.endpoint for s in PushSubscription.select()] == ["https://push.example.com/b"]
    assert SocketPresence.select().count() == 0
    assert LoginSession.select().count() == 1


def test_ending_a_session_removes_its_subscriptions_only(ctx):
    alice = create_user("alice", "correct horse")
    laptop = subscribe(alice, "https://push.example.com/laptop")
    subscribe(alice, "https://push.example.com/phone")
    laptop.delete_instance()
    assert [s.endpoint for s in PushSubscription.select()] == ["https://push.example.com/phone"]


def test_subscription_records_session_and_agent(ctx):
    alice = create_user("alice", "correct horse")
    session = subscribe(alice, "https://push.example.com/a")
    row = PushSubscription.get()
    assert row.login_session_id == session.id and row.user_agent == "agent"
    assert row.failure_count == 0 and row.last_success_at is None
