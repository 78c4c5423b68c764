"""``flask user ...`` through Click's runner, against the real database."""
import pytest
from conftest import store_subscription

from flaskpush.auth import authenticate, create_user
from flaskpush.models import LoginSession, PushSubscription, User


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield


def test_create_with_password_option(ctx, runner):
    result = runner.invoke(args=["user", "create", "bob", "--password", "long enough"])
    assert result.exit_code == 0, result.output
    assert "Created user bob." in result.output
    assert authenticate("bob", "long enough").name == "bob"


def test_create_prompts_hidden_with_confirmation(ctx, runner):
    result = runner.invoke(args=["user", "create", "bob"], input="long enough\nlong enough\n")
    assert result.exit_code == 0, result.output
    assert "long enough" not in result.output  # hidden input is not echoed
    assert "Repeat for confirmation" in result.output
    assert authenticate("bob", "long enough") is not None


def test_create_prompt_asks_again_when_confirmation_differs(ctx, runner):
    result = runner.invoke(args=["user", "create", "bob"],
                           input="long enough\ntypo typo\nlong enough\nlong enough\n")
    assert result.exit_code == 0, result.output
    assert "do not match" in result.output
    assert authenticate("bob", "long enough") is not None


def test_create_existing_name_fails_before_prompting(ctx, runner):
    create_user("bob", "long enough")
    result = runner.invoke(args=["user", "create", "bob"])
    assert result.exit_code == 1
    assert "already exists" in result.stderr
    assert "Password" not in result.output
    assert User.select().count() == 1


@pytest.mark.parametrize("name, password, message", [
    ("bob", "short", "at least 8 characters"),
    ("no spaces", "long enough", "Username must be"),
])
def test_create_rejects_bad_input(ctx, runner, name, password, message):
    result = runner.invoke(args=["user", "create", name, "--password", password])
    assert result.exit_code == 1
    assert message in result.stderr
    assert User.select().count() == 0


def test_list_shows_counts_and_state(ctx, runner):
    bob = create_user("bob", "long enough")
    create_user("carol", "long enough")
    store_subscription(bob)
    store_subscription(bob)
    LoginSession.start(bob)
    runner.invoke(args=["user", "deactivate", "carol"])
    result = runner.invoke(args=["user", "list"])
    assert result.exit_code == 0
    header, bob_line, carol_line, count = result.output.splitlines()
    assert header.split() == ["NAME", "ACTIVE", "CREATED", "(UTC)", "SUBSCRIPTIONS", "SESSIONS"]
    assert bob_line.split()[:2] == ["bob", "yes"] and bob_line.split()[-2:] == ["2", "1"]
    assert carol_line.split()[:2] == ["carol", "no"] and carol_line.split()[-2:] == ["0", "0"]
    assert len(header) == len(bob_line) == len(carol_line)  # aligned columns
    assert count == "2 users"


def test_list_empty(ctx, runner):
    result = runner.invoke(args=["user", "list"])
    assert result.exit_code == 0
    assert result.output == "No users.\n"


def test_delete_asks_and_cascades(ctx, runner):
    bob = create_user("bob", "long enough")
    store_subscription(bob)
    LoginSession.start(bob)
    keep = store_subscription(create_user("carol", "long enough"))
    result = runner.invoke(args=["user", "delete", "bob"], input="y\n")
    assert result.exit_code == 0, result.output
    assert "Delete user bob with 1 subscription and 1 session?" in result.output
    assert "Deleted user bob" in result.output
    assert User.get_or_none(User.name == "bob") is None
    assert [s.id for s in PushSubscription.select()] == [keep.id]
    assert LoginSession.select().count() == 0


def test_delete_declined_changes_nothing(ctx, runner):
    store_subscription(create_user("bob", "long enough"))
    result = runner.invoke(args=["user", "delete", "bob"], input="n\n")
    assert result.exit_code == 1
    assert "Aborted" in result.stderr
    assert User.select().count() == 1 and PushSubscription.select().count() == 1


def test_delete_yes_skips_the_question(ctx, runner):
    create_user("bob", "long enough")
    result = runner.invoke(args=["user", "delete", "bob", "--yes"])
    assert result.exit_code == 0
    assert "?" not in result.output
    assert User.select().count() == 0


@pytest.mark.parametrize("command", [
    ["user", "delete", "nobody", "--yes"],
    ["user", "set-password", "nobody", "--password", "long enough"],
    ["user", "deactivate", "nobody"],
    ["user", "activate", "nobody"],
])
def test_unknown_user_is_an_error(ctx, runner, command):
    result = runner.invoke(args=command)
    assert result.exit_code == 1
    assert "no user named 'nobody'" in result.stderr


def test_set_password_keeps_sessions_by_default(ctx, runner):
    bob = create_user("bob", "long enough")
    LoginSession.start(bob)
    result = runner.invoke(args=["user", "set-password", "bob"], input="new password\nnew password\n")
    assert result.exit_code == 0, result.output
    assert authenticate("bob", "new password") is not None
    assert authenticate("bob", "long enough") is None
    assert LoginSession.select().count() == 1


def test_set_password_sign_out_ends_sessions_and_their_subscriptions(ctx, runner):
    bob = create_user("bob", "long enough")
    bob.login_session = LoginSession.start(bob)
    store_subscription(bob)
    result = runner.invoke(args=["user", "set-password", "bob", "--password", "new password", "--sign-out"])
    assert result.exit_code == 0, result.output
    assert "Ended 1 session." in result.output
    assert LoginSession.select().count() == 0
    assert PushSubscription.select().count() == 0


def test_set_password_too_short_changes_nothing(ctx, runner):
    create_user("bob", "long enough")
    result = runner.invoke(args=["user", "set-password", "bob", "--password", "short"])
    assert result.exit_code == 1
    assert "at least 8 characters" in result.stderr
    assert authenticate("bob", "long enough") is not None


def test_deactivate_blocks_sign_in_and_sessions_until_activated(ctx, runner):
    bob = create_user("bob", "long enough")
    session = LoginSession.start(bob)
    result = runner.invoke(args=["user", "deactivate", "bob"])
    assert result.exit_code == 0 and result.output == "bob is now deactivated.\n"
    assert authenticate("bob", "long enough") is None
    assert LoginSession.active_user(session.id) is None
    assert runner.invoke(args=["user", "deactivate", "bob"]).output == "bob was already deactivated.\n"
    assert runner.invoke(args=["user", "activate", "bob"]).output == "bob is now active.\n"
    assert LoginSession.active_user(session.id).name == "bob"


@pytest.mark.parametrize("command", ["create", "list", "delete", "set-password", "deactivate", "activate"])
def test_every_user_command_explains_itself(runner, command):
    result = runner.invoke(args=["user", command, "--help"])
    assert result.exit_code == 0
    assert len(result.output.split("\n\n")[1].split()) >= 4  # a real sentence, not a stub
