"""flaskpush: Web Push subscriptions over an authenticated WebSocket.

``create_app`` is the one place that wires configuration, the database, the
instance secrets, the login manager, the WebSocket and the blueprints.
"""
import os

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

DEFAULTS = {
    "DATABASE": None,  # sqlite:///<instance>/flaskpush.sqlite3
    "DATABASE_TIMEOUT": 10,  # seconds to wait for a lock (SQLite) or a pooled connection
    "DATABASE_POOL_SIZE": 20,  # connections per process; PostgreSQL must allow workers x this
    "VAPID_PRIVATE_KEY": None,  # <instance>/vapid_private.pem, created on first start
    "VAPID_SUBJECT": "mailto:admin@example.com",
    "ALLOW_INSECURE_ENDPOINTS": False,
    "ALLOWED_ORIGINS": [],
    "OPEN_REGISTRATION": True,
    "PROXY_COUNT": 0,  # reverse proxies in front whose X-Forwarded-* headers to trust
    "MIN_PASSWORD_LENGTH": 8,
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "SESSION_COOKIE_SECURE": False,
    "WS_MAX_MESSAGE_SIZE": 64 * 1024,
    "WS_PING_INTERVAL": 25,
    "PRESENCE_HEARTBEAT": 30,
    "WS_COMMAND_RATE": 20,  # commands per second per socket, on average
    "WS_COMMAND_BURST": 60,  # commands a socket may send at once
    "MAX_SUBSCRIPTIONS_PER_USER": 50,
    "LOGIN_MAX_FAILURES": 10,  # failed sign-ins per user name before a lockout
    "LOGIN_MAX_FAILURES_PER_ADDRESS": 30,  # per client address
    "LOGIN_FAILURE_WINDOW": 900,  # seconds in which failures add up
    "LOGIN_LOCKOUT": 900,  # seconds a locked name or address waits
    "PUSH_TTL": 86400,  # seconds a push service keeps a message for an offline browser
    "PUSH_CONNECT_TIMEOUT": 5,  # seconds
    "PUSH_READ_TIMEOUT": 15,  # seconds
    "PUSH_MAX_ATTEMPTS": 4,  # per subscription, for 429/503/5xx/connection errors
    "PUSH_RETRY_BUDGET": 60,  # seconds one subscription may spend waiting to retry
    "PUSH_BACKOFF": 1.0,  # first backoff in seconds, doubled each retry
    "PUSH_CONCURRENCY": 32,  # requests in flight per process
    "PUSH_ALLOWED_HOSTS": [],  # push-service hosts allowed ("host" or "*.suffix"); empty: any
    "PUSH_PRUNE_FAILING_AFTER": 7 * 24 * 3600,  # seconds a subscription may keep failing before `flask push prune`
    "QUEUE_URL": None,  # redis://...: fan-outs become RQ jobs for `flask push worker`; unset: in-process
    "QUEUE_NAME": "flaskpush",  # the RQ queue (and its Redis keys)
    "QUEUE_CHUNK_SIZE": 500,  # subscriptions per job; a killed worker's chunk is sent again
    "QUEUE_JOB_TIMEOUT": 600,  # seconds one chunk may run; a dead worker's chunk is rerun after it
    "QUEUE_MAINTENANCE_INTERVAL": 30,  # seconds between a worker's looks for abandoned chunks
}


def create_app(test_config=None):
    """Build the application: defaults, then ``instance/config.py``, then
    ``FLASKPUSH_*`` environment variables (tests pass ``test_config`` instead
    of the instance file)."""
    app = Flask(
        __name__,
        instance_relative_config=True,
        instance_path=os.environ.get("FLASKPUSH_INSTANCE_PATH"),
    )
    app.config.from_mapping(DEFAULTS)
    if test_config is None:
        app.config.from_pyfile("config.py", silent=True)
    else:
        app.config.from_mapping(test_config)
    app.config.from_prefixed_env("FLASKPUSH")
    os.makedirs(app.instance_path, exist_ok=True)
    if app.config["PROXY_COUNT"]:
        hops = app.config["PROXY_COUNT"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)

    from . import auth, cli, db, instance, pages, socket
    from .push import bp as push_bp

    instance.init_app(app)
    db.init_app(app)
    auth.init_app(app)
    socket.init_app(app)
    cli.init_app(app)
    app.register_blueprint(auth.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(socket.bp)
    app.register_blueprint(push_bp)
    return app
