"""Writes to the subscription table, each one statement and race-free.

These run on every socket command, so their SQL is built once (``Prepared``).
"""
from peewee import Case, fn

from ..db import Prepared, is_sqlite
from ..models import PushSubscription as Sub
from ..models import User, utcnow


def _upsert(user, login_session, endpoint, p256dh, auth, expiration_time, user_agent, now):
    """One ``INSERT ... ON CONFLICT DO UPDATE ... WHERE``: the database itself
    decides the ownership rule, so two users racing for one endpoint cannot
    both win, on SQLite or PostgreSQL."""
    fields = {
        Sub.user: user,
        Sub.login_session: login_session,
        Sub.p256dh: p256dh,
        Sub.auth: auth,
        Sub.expiration_time: expiration_time,
        Sub.user_agent: user_agent,
        Sub.updated_at: now,
        Sub.failure_count: 0,
        Sub.failing_since: None,
    }
    return (
        Sub.insert({**fields, Sub.endpoint: endpoint, Sub.created_at: now, Sub.last_success_at: None})
        .on_conflict(
            conflict_target=[Sub.endpoint],
            update=fields,
            where=(Sub.user == user) | ((Sub.p256dh == p256dh) & (Sub.auth == auth)),
        )
        .returning(Sub.id)
    )


UPSERT = Prepared(_upsert)
OWNED = Prepared(
    lambda user, endpoint: Sub.select(
        fn.COUNT(Sub.id), fn.SUM(Case(None, [(Sub.endpoint == endpoint, 1)], 0))
    ).where(Sub.user == user)
)
LOCK_USER = Prepared(lambda user: User.select(User.id).where(User.id == user).for_update())
REMOVE = Prepared(lambda user, endpoint: Sub.delete().where((Sub.endpoint == endpoint) & (Sub.user == user)))


def save(subscription, user_id, session_id=None, user_agent=""):
    """Insert or update ``subscription`` for the user, made through the login
    session ``session_id``; False if another user holds the endpoint with
    different keys (then nothing changes)."""
    cursor = UPSERT.execute(
        user=user_id,
        login_session=session_id,
        endpoint=subscription.endpoint,
        p256dh=subscription.p256dh,
        auth=subscription.auth,
        expiration_time=subscription.expiration_time,
        user_agent=user_agent[:512],
        now=utcnow(),
    )
    return len(cursor.fetchall()) == 1


def would_exceed(user_id, endpoint, limit):
    """Whether storing ``endpoint`` would give the user more than ``limit``
    subscriptions. Call it inside ``write_transaction()``: on PostgreSQL the
    user's row is locked so two racing subscribes cannot both pass."""
    if not is_sqlite():
        LOCK_USER.execute(user=user_id)
    count, held = OWNED.execute(user=user_id, endpoint=endpoint).fetchone()
    return not held and count >= limit


def remove(endpoint, user_id):
    """Delete the user's own subscription to ``endpoint``; others' are untouched."""
    return REMOVE.execute(user=user_id, endpoint=endpoint).rowcount
