"""``flask push list``, ``revoke``, ``prune`` and ``keys`` through Click's runner,
plus the real ``flask`` command in a subprocess."""
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import make_subscription, store_subscription

from flaskpush.auth import create_user
from flaskpush.models import PushSubscription, utcnow
from flaskpush.vapid import get_vapid, public_key_b64, read_key

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield


@pytest.fixture
def bob(ctx):
    return create_user("bob", "long enough")


@pytest.fixture
def carol(ctx):
    return create_user("carol", "long enough")


def ids():
    return sorted(s.id for s in PushSubscription.select())


# -- list ---------------------------------------------------------------


def test_list_table_is_aligned_and_counted(runner, bob, carol):
    one = store_subscription(bob, make_subscription("https://fcm.googleapis.com/fcm/send/" + "x" * 150))
    two = store_subscription(carol)
    result = runner.invoke(args=["push", "list"])
    assert result.exit_code == 0
    header, first, second, count = result.output.splitlines()
    assert header.split()[:4] == ["ID", "USER", "PUSH", "SERVICE"]
    assert first.split()[:3] == [str(one.id), "bob", "fcm.googleapis.com"]
    assert second.split()[:3] == [str(two.id), "carol", "push.example.com"]
    assert first.split()[-2:] == ["never", "0"]  # last success, failures
    assert "x" * 150 not in first  # the endpoint is shortened
    assert header.index("USER") == first.index("bob") == second.index("carol")
    assert count == "2 subscriptions"


def test_list_for_one_user(runner, bob, carol):
    mine = store_subscription(bob)
    store_subscription(carol)
    result = runner.invoke(args=["push", "list", "--user", "bob"])
    assert result.exit_code == 0
    assert [line.split()[0] for line in result.output.splitlines()[1:-1]] == [str(mine.id)]
    assert result.output.endswith("1 subscription\n")


def test_list_json_has_full_records(runner, bob):
    sub = store_subscription(bob)
    result = runner.invoke(args=["push", "list", "--json"])
    assert result.exit_code == 0
    [record] = json.loads(result.output)
    assert record["id"] == sub.id
    assert record["user"] == "bob"
    assert record["endpoint"] == sub.endpoint
    created = datetime.fromisoformat(record["created_at"])
    assert created.utcoffset() == timedelta(0)
    assert abs(created - datetime.now(timezone.utc)) < timedelta(minutes=5)
    assert record["failure_count"] == 0 and record["last_success_at"] is None


def test_list_empty_says_so(runner, bob):
    assert runner.invoke(args=["push", "list"]).output == "No subscriptions.\n"
    assert runner.invoke(args=["push", "list", "--user", "bob"]).output == "No subscriptions for bob.\n"
    assert json.loads(runner.invoke(args=["push", "list", "--json"]).output) == []


def test_list_unknown_user(runner, ctx):
    result = runner.invoke(args=["push", "list", "--user", "nobody"])
    assert result.exit_code == 1
    assert "no user named 'nobody'" in result.stderr


# -- revoke -------------------------------------------------------------


def test_revoke_one_id_needs_no_confirmation(runner, bob):
    gone, kept = store_subscription(bob), store_subscription(bob)
    result = runner.invoke(args=["push", "revoke", str(gone.id)])
    assert result.exit_code == 0, result.output
    assert f"Removed #{gone.id} bob push.example.com" in result.output
    assert "Removed 1 subscription." in result.output
    assert ids() == [kept.id]


def test_revoke_several_ids_asks_first(runner, bob):
    a, b, c = (store_subscription(bob) for _ in range(3))
    declined = runner.invoke(args=["push", "revoke", str(a.id), str(b.id)], input="n\n")
    assert declined.exit_code == 1 and "Remove 2 subscriptions?" in declined.output
    assert ids() == [a.id, b.id, c.id]
    accepted = runner.invoke(args=["push", "revoke", str(a.id), str(b.id)], input="y\n")
    assert accepted.exit_code == 0
    assert ids() == [c.id]


def test_revoke_user_asks_even_for_one_row(runner, bob, carol):
    store_subscription(bob)
    kept = store_subscription(carol)
    result = runner.invoke(args=["push", "revoke", "--user", "bob"], input="y\n")
    assert result.exit_code == 0
    assert "Remove 1 subscription of bob?" in result.output
    assert ids() == [kept.id]


def test_revoke_yes_and_endpoint(runner, bob):
    a, b = store_subscription(bob), store_subscription(bob)
    result = runner.invoke(args=["push", "revoke", "--endpoint", a.endpoint, "--yes"])
    assert result.exit_code == 0 and "?" not in result.output
    assert ids() == [b.id]
    assert runner.invoke(args=["push", "revoke", "--user", "bob", "--yes"]).exit_code == 0
    assert ids() == []


@pytest.mark.parametrize("args, message", [
    (["{known}", "999999"], "no subscription with id 999999"),
    (["--user", "nobody", "--yes"], "no user named 'nobody'"),
    (["--user", "carol", "--yes"], "user 'carol' has no subscriptions"),
    (["--endpoint", "https://push.example.com/send/none"], "no subscription with endpoint"),
])
def test_revoke_bad_selection_removes_nothing(runner, bob, carol, args, message):
    known = store_subscription(bob)
    result = runner.invoke(args=["push", "revoke", *[a.format(known=known.id) for a in args]])
    assert result.exit_code == 1
    assert message in result.stderr
    assert ids() == [known.id]


@pytest.mark.parametrize("args", [[], ["1", "--user", "bob"], ["--user", "bob", "--endpoint", "https://x/y"]])
def test_revoke_needs_exactly_one_selector(runner, bob, args):
    store_subscription(bob)
    result = runner.invoke(args=["push", "revoke", *args])
    assert result.exit_code == 2
    assert "exactly one" in result.stderr
    assert PushSubscription.select().count() == 1


def test_revoke_rejects_non_numeric_id(runner, ctx):
    result = runner.invoke(args=["push", "revoke", "abc"])
    assert result.exit_code == 2
    assert "'abc' is not a valid integer" in result.stderr


# -- prune --------------------------------------------------------------


@pytest.fixture
def ages(bob):
    """One healthy, one expired, one failing for 8 days, one failing for 1 day."""
    now = utcnow()
    rows = {name: store_subscription(bob) for name in ("healthy", "expired", "old_failure", "new_failure")}
    PushSubscription.update(expiration_time=now - timedelta(minutes=1)).where(
        PushSubscription.id == rows["expired"].id).execute()
    for name, days in (("old_failure", 8), ("new_failure", 1)):
        PushSubscription.update(failure_count=3, failing_since=now - timedelta(days=days)).where(
            PushSubscription.id == rows[name].id).execute()
    return {name: row.id for name, row in rows.items()}


def test_prune_removes_expired_and_long_failing(runner, ages):
    result = runner.invoke(args=["push", "prune"])
    assert result.exit_code == 0, result.output
    assert f"Removed #{ages['expired']} bob" in result.output and "(expired " in result.output
    assert f"Removed #{ages['old_failure']} bob" in result.output and "(failing since " in result.output
    assert "Removed 2 subscriptions." in result.output
    assert ids() == sorted([ages["healthy"], ages["new_failure"]])


def test_prune_dry_run_changes_nothing(runner, ages):
    result = runner.invoke(args=["push", "prune", "--dry-run"])
    assert result.exit_code == 0
    assert f"Would remove #{ages['expired']} bob" in result.output
    assert "Would remove 2 subscriptions; nothing was changed." in result.output
    assert len(ids()) == 4


@pytest.mark.app_config(PUSH_PRUNE_FAILING_AFTER=3600)
def test_prune_age_is_configurable(runner, ages):
    assert runner.invoke(args=["push", "prune"]).exit_code == 0
    assert ids() == [ages["healthy"]]


def test_prune_with_nothing_to_do(runner, bob):
    store_subscription(bob)
    result = runner.invoke(args=["push", "prune"])
    assert result.exit_code == 0 and result.output == "Nothing to prune.\n"


# -- keys ---------------------------------------------------------------


def test_keys_prints_exactly_the_public_key(app, runner, ctx):
    result = runner.invoke(args=["push", "keys"])
    assert result.exit_code == 0
    assert result.stdout == public_key_b64(read_key(app.config["VAPID_PRIVATE_KEY"])) + "\n"


def test_keys_missing_configured_key(tmp_path, runner, app):
    app.config["VAPID_PRIVATE_KEY"] = str(tmp_path / "absent.pem")
    with app.app_context():
        result = runner.invoke(args=["push", "keys"])
    assert result.exit_code == 1
    assert "VAPID keys not configured on this server" in result.stderr
    assert result.stdout == ""


def test_generate_refuses_to_replace_without_force(app, runner, ctx):
    path = app.config["VAPID_PRIVATE_KEY"]
    before = Path(path).read_bytes()
    result = runner.invoke(args=["push", "keys", "--generate"])
    assert result.exit_code == 1
    assert "--force" in result.stderr
    assert Path(path).read_bytes() == before


def test_generate_force_replaces_key_and_cached_key(app, runner, bob):
    old = public_key_b64(get_vapid())  # loads and caches the old key in this app
    result = runner.invoke(args=["push", "keys", "--generate", "--force"])
    assert result.exit_code == 0, result.output
    new = public_key_b64(read_key(app.config["VAPID_PRIVATE_KEY"]))
    assert new != old
    assert result.stdout == new + "\n"
    assert public_key_b64(get_vapid()) == new  # the in-process cache was dropped
    assert os.stat(app.config["VAPID_PRIVATE_KEY"]).st_mode & 0o077 == 0


def test_generate_warns_and_offers_to_revoke(runner, bob):
    store_subscription(bob)
    kept = runner.invoke(args=["push", "keys", "--generate", "--force"], input="n\n")
    assert kept.exit_code == 0
    assert "1 subscription made for the old key will stop working" in kept.stderr
    assert "Revoke them now?" in kept.stderr
    assert PushSubscription.select().count() == 1
    revoked = runner.invoke(args=["push", "keys", "--generate", "--force"], input="y\n")
    assert "Revoked 1 subscription." in revoked.stderr
    assert PushSubscription.select().count() == 0


def test_generate_revoke_flag_does_not_ask(runner, bob):
    store_subscription(bob)
    result = runner.invoke(args=["push", "keys", "--generate", "--force", "--revoke"])
    assert result.exit_code == 0 and "Revoke them now?" not in result.output
    assert PushSubscription.select().count() == 0


def test_generate_creates_a_missing_configured_key(tmp_path, app, runner, ctx):
    app.config["VAPID_PRIVATE_KEY"] = str(tmp_path / "keys" / "vapid.pem")
    result = runner.invoke(args=["push", "keys", "--generate"])
    assert result.exit_code == 0, result.output
    assert result.stdout == public_key_b64(read_key(app.config["VAPID_PRIVATE_KEY"])) + "\n"


def test_force_without_generate_is_a_usage_error(runner, ctx):
    result = runner.invoke(args=["push", "keys", "--force"])
    assert result.exit_code == 2
    assert "only go with --generate" in result.stderr


@pytest.mark.parametrize("command", ["list", "revoke", "test-send", "keys", "prune"])
def test_every_push_command_explains_itself(runner, command):
    result = runner.invoke(args=["push", command, "--help"])
    assert result.exit_code == 0
    assert len(result.output.split("\n\n")[2].split()) >= 10  # a paragraph, not a stub


# -- the real command -----------------------------------------------------


def flask(instance, db_url, *args, input=None):
    env = {**os.environ, "FLASKPUSH_INSTANCE_PATH": str(instance), "FLASKPUSH_DATABASE": db_url}
    return subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", *args], cwd=REPO, env=env,
                          input=input, capture_output=True, text=True, timeout=60)


def test_real_flask_command_against_an_instance_folder(instance_path, db_url):
    instance = instance_path  # not created yet: the first command makes it
    created = flask(instance, db_url, "user", "create", "dave", input="long enough\nlong enough\n")
    assert created.returncode == 0, created.stderr
    assert "Created user dave." in created.stdout
    key = flask(instance, db_url, "push", "keys")
    assert key.returncode == 0
    assert key.stdout == public_key_b64(read_key(instance / "vapid_private.pem")) + "\n"
    listed = flask(instance, db_url, "push", "list", "--json")
    assert json.loads(listed.stdout) == []
    missing = flask(instance, db_url, "push", "test-send", "--user", "dave")
    assert missing.returncode == 1
    assert "Error: user 'dave' has no subscriptions" in missing.stderr
    usage = flask(instance, db_url, "push", "revoke")
    assert usage.returncode == 2
