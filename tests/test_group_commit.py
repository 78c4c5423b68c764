"""Group commit on SQLite: commands batched in one transaction still succeed
and fail one by one, and no caller hears of a write before it is committed."""
import sqlite3
import threading
import time

import pytest
from conftest import wait_until

from flaskpush.group_commit import database_thread, run_command
from flaskpush.models import User

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def add_user(name):
    return User.create(name=name, password_hash="x").id


def names():
    return {user.name for user in User.select()}


class Failed(Exception):
    pass


def hold_database_thread():
    """Keep the database thread busy until the returned event is set, so
    that everything queued meanwhile runs in one batch."""
    running, gate = threading.Event(), threading.Event()

    def hold():
        running.set()
        gate.wait(10)

    def holder():
        try:
            run_command(hold)
        except Exception:
            pass  # this batch may fail too; the test is about the next one

    thread = threading.Thread(target=holder)
    thread.start()
    assert running.wait(5)
    return gate, thread


def start_all(*calls):
    """Start each call on a thread of its own; returns the threads and the
    list that will hold each call's result or exception, in order."""
    outcomes = [None] * len(calls)

    def call(i):
        try:
            outcomes[i] = run_command(calls[i])
        except Exception as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    return threads, outcomes


def in_one_batch(*calls):
    """Run ``calls`` on the database thread, all in one batch."""
    gate, holder = hold_database_thread()
    callers, outcomes = start_all(*calls)
    wait_until(lambda: database_thread.jobs.qsize() == len(calls))
    gate.set()
    for thread in [holder, *callers]:
        thread.join(10)
    return outcomes


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield


def test_a_command_that_fails_after_writing_is_undone_alone(ctx):
    def write_then_fail():
        add_user("bob")
        raise Failed("after a write")

    def fail_before_writing():
        raise Failed("before a write")

    first, failed_late, second, failed_early = in_one_batch(
        lambda: add_user("alice"), write_then_fail, lambda: add_user("carol"), fail_before_writing
    )
    assert isinstance(failed_late, Failed) and isinstance(failed_early, Failed)
    assert isinstance(first, int) and isinstance(second, int)
    assert names() == {"alice", "carol"}


def test_a_failed_statement_does_not_undo_the_others(ctx):
    add_user("taken")

    def duplicate():
        add_user("mine")
        add_user("taken")  # unique name: fails after the first insert wrote

    outcomes = in_one_batch(lambda: add_user("before"), duplicate, lambda: add_user("after"))
    assert isinstance(outcomes[1], Exception)
    assert names() == {"taken", "before", "after"}


def test_callers_hear_back_only_after_the_commit(ctx, app):
    """The second job keeps the batch open; a caller answered before the
    commit would find its row missing from another connection."""
    path = app.config["DATABASE"][len("sqlite:///"):]
    seen = {}

    def add_and_look():
        add_user("alice")
        return "done"

    def watcher():
        assert run_command(add_and_look) == "done"
        with sqlite3.connect(path) as other:
            seen["rows"] = other.execute("SELECT name FROM user").fetchall()

    gate, holder = hold_database_thread()
    looker = threading.Thread(target=watcher)
    slow = threading.Thread(target=run_command, args=(lambda: time.sleep(0.5),))
    looker.start()
    wait_until(lambda: database_thread.jobs.qsize() == 1)
    slow.start()
    wait_until(lambda: database_thread.jobs.qsize() == 2)
    gate.set()
    for thread in (holder, looker, slow):
        thread.join(10)
    assert seen["rows"] == [("alice",)]


@pytest.mark.app_config(DATABASE_TIMEOUT=0.2)
def test_commands_fail_when_their_batch_cannot_begin_and_the_thread_lives_on(ctx, app):
    blocker = sqlite3.connect(app.config["DATABASE"][len("sqlite:///"):], isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    callers, outcomes = start_all(lambda: add_user("alice"), lambda: add_user("bob"))
    for thread in callers:
        thread.join(10)
    blocker.close()
    assert all("locked" in str(outcome) for outcome in outcomes), outcomes
    assert names() == set()
    assert run_command(lambda: add_user("carol")) and names() == {"carol"}


def test_a_command_may_run_another_on_the_database_thread(ctx):
    """From the database thread itself, run_command runs inline instead of
    waiting for the thread it is on."""
    assert run_command(lambda: run_command(lambda: add_user("alice"))) > 0
    assert names() == {"alice"}
