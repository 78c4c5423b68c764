"""The database: one Peewee proxy, bound by ``init_app`` to the configured URL.

Connections come from a pool: taken lazily, and given back at the end of
every request and of every WebSocket command, so a socket that stays open
for hours holds no connection between commands, and a command does not pay
for opening one.
"""
import inspect
import os
import threading
import weakref
from contextlib import contextmanager

from peewee import DatabaseProxy, PostgresqlDatabase, SqliteDatabase, Value
from playhouse import db_url

database = DatabaseProxy()

SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "foreign_keys": 1,
    "synchronous": "normal",
}


def open_database(url, timeout=10, pool_size=20):
    """Turn a ``FLASKPUSH_DATABASE`` URL into a pooled Peewee database.

    ``pool_size`` bounds the connections of one process (PostgreSQL's own
    ``max_connections`` must cover every worker's pool); ``timeout`` (seconds)
    bounds how long a command waits for a pooled connection or, on SQLite,
    for another process's write lock.
    """
    scheme, rest = url.split(":", 1)
    pool = {"max_connections": pool_size, "stale_timeout": 300, "timeout": timeout}
    if scheme in ("postgres", "postgresql"):
        return db_url.connect("postgresql+pool:" + rest, connect_timeout=max(1, int(timeout)), **pool)
    if scheme == "sqlite":
        pragmas = {**SQLITE_PRAGMAS, "busy_timeout": int(timeout * 1000)}
        return db_url.connect("sqlite+pool:" + rest, pragmas=pragmas, check_same_thread=False, **pool)
    return db_url.connect(url)


def is_sqlite():
    return isinstance(database.obj, SqliteDatabase)


_sqlite_writer = threading.RLock()


@contextmanager
def write_transaction():
    """A transaction for commands that write.

    SQLite allows one writer at a time. Writers of this process queue on a
    lock (woken at once when it frees) instead of in SQLite's busy handler,
    which sleeps in growing steps; the IMMEDIATE transaction then takes the
    write lock up front, because a deferred one that reads and then writes
    fails at once when another process wrote in between.

    Inside a transaction already open on this thread (a batch of socket
    commands, see ``group_commit``) the block is part of that transaction.
    """
    if database.in_transaction():
        yield
        return
    if not is_sqlite():
        with database.atomic():
            yield
        return
    # The connection first: a thread holding the lock must never wait for the
    # pool while the pool's connections wait for the lock.
    database.connect(reuse_if_open=True)
    with _sqlite_writer, database.atomic("IMMEDIATE"):
        yield


class Prepared:
    """A Peewee query turned into SQL once per database, then run many times.

    Building the SQL text is most of what a small Peewee query costs (about
    200 us, measured); the socket runs the same few queries thousands of
    times a second. ``build`` gets one placeholder per parameter name and
    returns the query; later runs only bind the real values.
    """

    CONSTANTS = (str, int, float, bool, type(None))

    def __init__(self, build):
        self.build = build
        self.names = list(inspect.signature(build).parameters)
        self.compiled = weakref.WeakKeyDictionary()  # database -> (sql, slots)

    def compile(self):
        db = database.obj
        if db not in self.compiled:
            marks = {f"\x00{name}\x00": name for name in self.names}
            query = self.build(**{name: Value(mark) for mark, name in marks.items()})
            sql, params = query.sql()
            slots = []
            for param in params:
                if isinstance(param, str) and param in marks:
                    slots.append((True, marks[param]))
                elif isinstance(param, self.CONSTANTS):
                    slots.append((False, param))
                else:  # e.g. a default of utcnow(): it would be frozen into the SQL
                    raise TypeError(f"{param!r} in {self.build} must be a parameter")
            columns = [(f.name, f.python_value) for f in getattr(query, "selected_columns", None) or []]
            self.compiled[db] = (sql, slots, columns)
        return self.compiled[db]

    def execute(self, **values):
        """Run it; returns the DB-API cursor."""
        sql, slots, _ = self.compile()
        return database.execute_sql(sql, [values[value] if named else value for named, value in slots])

    def first(self, model, **values):
        """The first row of a select of ``model``'s fields, as an instance, or None."""
        row = self.execute(**values).fetchone()
        if row is None:
            return None
        _, _, columns = self.compile()
        return model(**{name: convert(value) for (name, convert), value in zip(columns, row, strict=True)})


def close_db(exc=None):
    """Return this thread's connection to the pool."""
    if not database.is_closed():
        database.close()


def create_tables():
    """Create missing tables; safe when several workers start at once."""
    from .models import MODELS

    with database.connection_context():
        with write_transaction():
            if isinstance(database.obj, PostgresqlDatabase):
                database.execute_sql("SELECT pg_advisory_xact_lock(7311853)")
            database.create_tables(MODELS, safe=True)


def init_app(app):
    url = app.config.get("DATABASE")
    if not url:
        url = "sqlite:///" + os.path.join(app.instance_path, "flaskpush.sqlite3")
        app.config["DATABASE"] = url
    database.initialize(open_database(url, app.config["DATABASE_TIMEOUT"], app.config["DATABASE_POOL_SIZE"]))
    create_tables()
    app.teardown_appcontext(close_db)
