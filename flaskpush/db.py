"""The database: one Peewee proxy, bound by ``init_app`` to the configured URL.

Connections are opened lazily and closed at the end of every request and of
every WebSocket command, so a socket that stays open for hours holds no
connection between commands.
"""
import os

from peewee import DatabaseProxy, PostgresqlDatabase, SqliteDatabase
from playhouse import db_url

database = DatabaseProxy()

SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "foreign_keys": 1,
    "synchronous": "normal",
}


def open_database(url, busy_timeout=10):
    """Turn a ``FLASKPUSH_DATABASE`` URL into a Peewee database.

    PostgreSQL URLs get a connection pool (threads come and go with sockets);
    SQLite gets WAL mode and a busy timeout so concurrent writers wait
    instead of failing with "database is locked". ``busy_timeout`` (seconds)
    bounds how long a command waits for a lock or a pooled connection.
    """
    scheme = url.split(":", 1)[0]
    if scheme in ("postgres", "postgresql"):
        url = "postgresql+pool" + url[len(scheme):]
        return db_url.connect(
            url, max_connections=32, stale_timeout=300, timeout=busy_timeout,
            connect_timeout=max(1, int(busy_timeout)),
        )
    if scheme == "sqlite":
        pragmas = {**SQLITE_PRAGMAS, "busy_timeout": int(busy_timeout * 1000)}
        return db_url.connect(url, pragmas=pragmas, timeout=busy_timeout, check_same_thread=False)
    return db_url.connect(url)


def is_sqlite():
    return isinstance(database.obj, SqliteDatabase)


def write_transaction():
    """A transaction that takes SQLite's write lock up front.

    A deferred SQLite transaction that reads and then writes cannot wait
    for the lock (it would see a stale snapshot) and fails at once; an
    IMMEDIATE one queues behind ``busy_timeout`` like any writer.
    """
    if is_sqlite():
        return database.atomic("IMMEDIATE")
    return database.atomic()


def close_db(exc=None):
    """Return this thread's connection (to the pool, for PostgreSQL)."""
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
    database.initialize(open_database(url, app.config["DATABASE_TIMEOUT"]))
    create_tables()
    app.teardown_appcontext(close_db)
