"""The database layer under threads: pooled connections and the writer lock."""
import threading
import time

import pytest

from flaskpush.db import close_db, write_transaction
from flaskpush.models import LoginThrottle


def in_thread(app, work, errors):
    def run():
        with app.app_context():
            try:
                work()
            except Exception as exc:  # reported to the test below
                errors.append(exc)
            finally:
                close_db()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.app_config(DATABASE_POOL_SIZE=1, DATABASE_TIMEOUT=2)
def test_writer_lock_never_waits_for_the_pool(app):
    """One thread holds the only pooled connection and then wants to write;
    another starts a write with no connection. The second must not take the
    writer lock and then wait for a connection the first will not give back
    until it has written (a deadlock broken only by the pool's timeout)."""
    errors = []
    holder_ready = threading.Event()

    def holder():
        LoginThrottle.select().count()  # takes the only connection
        holder_ready.set()
        time.sleep(0.3)  # the other thread starts its write meanwhile
        with write_transaction():
            LoginThrottle.create(key="holder")

    def latecomer():
        holder_ready.wait()
        with write_transaction():
            LoginThrottle.create(key="latecomer")

    threads = [in_thread(app, holder, errors), in_thread(app, latecomer, errors)]
    for thread in threads:
        thread.join(10)
    assert not errors, errors  # a deadlock ends in the pool's timeout error
    with app.app_context():
        assert {row.key for row in LoginThrottle.select()} == {"holder", "latecomer"}
