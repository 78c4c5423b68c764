"""Group commit: on SQLite, socket commands run on one thread per process,
many to a transaction.

SQLite has one writer at a time. With a thread per socket, hundreds of
threads queued for that writer, each taking a pooled connection, opening a
transaction and committing alone; measured under load, the queueing cost
more CPU than the commands. Here a socket thread hands its command to the
database thread and waits. That thread takes every command waiting, runs
them in one transaction, commits once, and only then wakes the callers: no
reply says "saved" before the data is. Callers wake one another in turn
rather than all at once: dozens of threads woken together queue for the GIL,
and taking turns gave 10-20 % more commands per second (``bench/ws_load.py``).

A command that fails must change nothing, whatever the others in its batch
do. Almost every failure (bad input, not signed in, over a limit) happens
before a command writes, so the batch runs without savepoints. If a command
fails after it wrote, the whole batch is rolled back and run again with a
savepoint around each command.

PostgreSQL takes concurrent writers well, and a batch there would hold one
user's row locks while it runs another's commands, so there a command runs
on its caller's thread and connection, in its own transaction.
"""
import contextvars
import os
import queue
import threading

from . import db

MAX_BATCH = 256
IDLE_AFTER = 1.0  # seconds without a command before the connection goes back to the pool


class Undo(Exception):
    """A command failed after writing: roll the batch back."""


class Job:
    """One command waiting for the database thread."""

    __slots__ = ("call", "context", "done", "result", "error", "wrote_then_failed", "next")

    def __init__(self, call):
        self.call = call
        self.context = contextvars.copy_context()  # the caller's app context
        self.done = threading.Lock()
        self.done.acquire()
        self.result = self.error = None
        self.wrote_then_failed = False
        self.next = None  # the job whose caller this one's caller wakes

    def run(self, connection, savepoint):
        """Run once; keep the result or the exception for the caller."""
        self.result = self.error = None
        if savepoint:
            connection.execute("SAVEPOINT command")
        changes = connection.total_changes
        try:
            self.result = self.context.run(self.call)
        except BaseException as exc:  # even SystemExit: it is the caller's to raise, not this thread's
            self.error = exc
            if savepoint:
                connection.execute("ROLLBACK TO command")
            else:
                self.wrote_then_failed = connection.total_changes != changes or not connection.in_transaction
        if savepoint:
            connection.execute("RELEASE command")

    def finish(self, failure, after):
        """Settle the outcome once the batch is over; ``failure`` (the batch
        did not commit) overrides a result; ``after`` is the next job."""
        if failure is not None and self.error is None:
            self.error = failure
        self.next = after

    def outcome(self):
        """Wait for this job's turn, then give the next job its turn. Only
        a gevent worker killing its greenlets on exit can take a caller
        away mid-wait, and then the rest of its batch waits with it."""
        try:
            self.done.acquire()
        finally:
            if self.next is not None:
                self.next.done.release()
        if self.error is not None:
            raise self.error
        return self.result


class DatabaseThread:
    """The thread that runs one process's commands in batches."""

    def __init__(self):
        self.jobs = None
        self.thread = None
        self.pid = None
        self.start_lock = threading.Lock()

    def call(self, call):
        """Run ``call()`` on the database thread; return what it returns or
        raise what it raised."""
        if self.thread is not None and threading.get_ident() == self.thread.ident:
            return call()
        self._ensure_running()
        job = Job(call)
        self.jobs.put(job)
        return job.outcome()

    def _ensure_running(self):
        """Start the thread in this process: a forked worker inherits the
        object but not the thread. (Only the pid is checked on this hot
        path: ``Thread.is_alive`` cost 5 % of a gevent worker's CPU.)"""
        if self.pid == os.getpid():
            return
        with self.start_lock:
            if self.pid != os.getpid():
                self.jobs = queue.SimpleQueue()  # made here, after gevent's patching if any
                self.thread = threading.Thread(target=self._serve, name="flaskpush-database", daemon=True)
                self.thread.start()
                self.pid = os.getpid()

    def _serve(self):
        """Run batches for ever; nothing a command does can end this loop."""
        while True:
            try:
                batch = [self.jobs.get(timeout=IDLE_AFTER)]
            except queue.Empty:
                db.close_db()  # idle: hold no connection, as an idle socket holds none
                batch = [self.jobs.get()]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self.jobs.get_nowait())
                except queue.Empty:
                    break
            self._run(batch)

    def _run(self, batch):
        """Commit the batch, or fail every command in it: if the transaction
        cannot begin or commit, none of their writes happened."""
        failure = None
        try:
            try:
                self._attempt(batch, savepoints=False)
            except Undo:
                self._attempt([job for job in batch if not job.wrote_then_failed], savepoints=True)
        except Exception as exc:
            failure = exc
            db.close_db()
        for job, after in zip(batch, batch[1:] + [None]):
            job.finish(failure, after)
        batch[0].done.release()

    @staticmethod
    def _attempt(jobs, savepoints):
        with db.write_transaction():
            connection = db.database.connection()
            for job in jobs:
                job.run(connection, savepoints)
                if job.wrote_then_failed:
                    raise Undo


database_thread = DatabaseThread()


def run_command(call):
    """Run a socket command's database work: batched on SQLite, inline on PostgreSQL."""
    if db.is_sqlite():
        return database_thread.call(call)
    return call()
