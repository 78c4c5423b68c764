"""Peewee models: users, their login sessions, push subscriptions, live sockets.

Times are naive UTC ``datetime`` values (SQLite and PostgreSQL store them
alike); ``iso_utc`` renders them for people and scripts.
"""
import hashlib
import secrets
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

from flask_login import UserMixin
from peewee import (
    BooleanField,
    CharField,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    Model,
)
from werkzeug.security import check_password_hash, generate_password_hash

from .db import Prepared, database


def utcnow():
    return datetime.now(timezone.utc).replace(tzinfo=None)


def iso_utc(value):
    """ISO 8601 with an explicit UTC offset, or None."""
    return value.replace(tzinfo=timezone.utc).isoformat() if value else None


def token_hash(token):
    """Sessions are stored by the hash of their cookie token, so a leaked
    database does not hand out live sessions."""
    return hashlib.sha256(token.encode()).hexdigest()


class BaseModel(Model):
    class Meta:
        database = database


class User(UserMixin, BaseModel):
    name = CharField(max_length=64, unique=True)
    password_hash = CharField(max_length=255)
    active = BooleanField(default=True)
    created_at = DateTimeField(default=utcnow)

    # Set by the login loader: the session this request or socket runs under.
    login_session = None

    def set_password(self, password):
        self.password_hash = generate_password_hash(password)

    def check_password(self, password):
        return check_password_hash(self.password_hash, password)

    @property
    def is_active(self):
        return self.active

    def get_id(self):
        """Flask-Login keeps this in the cookie: the login-session token, not
        the user id, so ending the session server-side signs the cookie out."""
        return self.login_session.token if self.login_session else None


class LoginSession(BaseModel):
    id = CharField(max_length=64, primary_key=True)  # sha256 of the cookie token
    user = ForeignKeyField(User, backref="login_sessions", on_delete="CASCADE")
    created_at = DateTimeField(default=utcnow)
    last_seen_at = DateTimeField(default=utcnow)
    user_agent = CharField(max_length=512, default="")

    token = None  # the clear token, known only to the request that created it

    @classmethod
    def start(cls, user, user_agent=""):
        """Open a session for ``user`` and return it with its clear token."""
        token = secrets.token_urlsafe(32)
        row = cls.create(id=token_hash(token), user=user, user_agent=user_agent[:512])
        row.token = token
        return row

    @classmethod
    def active_user(cls, session_id):
        """The active user of a live session, or None."""
        user = ACTIVE_USER.first(User, session_id=session_id)
        if user is not None:
            user.login_session = cls(id=session_id, user=user)
        return user

    @staticmethod
    def active_user_id(session_id):
        """The id of a live session's active user, or None: one primary-key
        read, run before every socket command."""
        row = ACTIVE_USER_ID.execute(session_id=session_id).fetchone()
        return row[0] if row else None


class PushSubscription(BaseModel):
    user = ForeignKeyField(User, backref="subscriptions", on_delete="CASCADE")
    login_session = ForeignKeyField(
        LoginSession, backref="subscriptions", null=True, on_delete="CASCADE"
    )
    endpoint = CharField(max_length=2048, unique=True)
    p256dh = CharField(max_length=128)
    auth = CharField(max_length=64)
    expiration_time = DateTimeField(null=True)
    user_agent = CharField(max_length=512, default="")
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)
    last_success_at = DateTimeField(null=True)
    failure_count = IntegerField(default=0)
    failing_since = DateTimeField(null=True)

    @property
    def push_service(self):
        """Which push service holds the subscription (FCM, Mozilla, Apple...)."""
        return urlsplit(self.endpoint).netloc

    def info(self):
        """The ``subscription_info`` dict pywebpush and browsers use."""
        return {"endpoint": self.endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth}}


class SocketPresence(BaseModel):
    """One row per open authenticated WebSocket, kept fresh by a heartbeat.

    Presence lives in the database, not in a process, so every worker on
    every host sees the same answer to "is this user online?".
    """

    id = CharField(max_length=32, primary_key=True)
    user = ForeignKeyField(User, backref="sockets", on_delete="CASCADE")
    login_session = ForeignKeyField(LoginSession, backref="sockets", on_delete="CASCADE")
    opened_at = DateTimeField(default=utcnow)
    heartbeat_at = DateTimeField(default=utcnow, index=True)

    @classmethod
    def online_user_ids(cls, user_ids, stale_after):
        """Which of ``user_ids`` have a socket that beat within ``stale_after`` seconds."""
        cutoff = utcnow() - timedelta(seconds=stale_after)
        query = cls.select(cls.user).where(
            (cls.user.in_(list(user_ids))) & (cls.heartbeat_at >= cutoff)
        )
        return {row.user_id for row in query}


class LoginThrottle(BaseModel):
    """Failed sign-ins counted per user name and per client address."""

    key = CharField(max_length=128, primary_key=True)
    failures = IntegerField(default=0)
    first_failure_at = DateTimeField(default=utcnow)
    locked_until = DateTimeField(null=True)


MODELS = [User, LoginSession, PushSubscription, SocketPresence, LoginThrottle]


def _active_user(session_id, *columns):
    return (
        User.select(*columns)
        .join(LoginSession)
        .where((LoginSession.id == session_id) & (User.active == True))  # noqa: E712
    )


ACTIVE_USER = Prepared(lambda session_id: _active_user(session_id))
ACTIVE_USER_ID = Prepared(lambda session_id: _active_user(session_id, User.id))
