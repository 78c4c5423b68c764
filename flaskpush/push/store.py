"""Writes to the subscription table, each one statement and race-free."""
from ..db import database, is_sqlite
from ..models import PushSubscription, User, utcnow


def save(subscription, user, user_agent=""):
    """Insert or update ``subscription`` for ``user``; False if another user
    holds the endpoint with different keys (then nothing changes).

    One ``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` decides the ownership
    rule inside the database, so two users racing for one endpoint cannot
    both win, on SQLite or PostgreSQL.
    """
    now = utcnow()
    row = {
        "user": user.id,
        "login_session": user.login_session.id if user.login_session else None,
        "endpoint": subscription.endpoint,
        "p256dh": subscription.p256dh,
        "auth": subscription.auth,
        "expiration_time": subscription.expiration_time,
        "user_agent": user_agent[:512],
        "created_at": now,
        "updated_at": now,
    }
    Sub = PushSubscription
    query = (
        Sub.insert(row)
        .on_conflict(
            conflict_target=[Sub.endpoint],
            update={
                Sub.user: user.id,
                Sub.login_session: row["login_session"],
                Sub.p256dh: subscription.p256dh,
                Sub.auth: subscription.auth,
                Sub.expiration_time: subscription.expiration_time,
                Sub.user_agent: row["user_agent"],
                Sub.updated_at: now,
                Sub.failure_count: 0,
                Sub.failing_since: None,
            },
            where=(
                (Sub.user == user.id)
                | ((Sub.p256dh == subscription.p256dh) & (Sub.auth == subscription.auth))
            ),
        )
        .returning(Sub.id)
    )
    with database.atomic():
        return len(list(query.execute())) == 1


def would_exceed(user, endpoint, limit):
    """Whether storing ``endpoint`` would give ``user`` more than ``limit``
    subscriptions. Call it inside ``write_transaction()``: on PostgreSQL the
    user's row is locked so two racing subscribes cannot both pass."""
    if not is_sqlite():
        User.select().where(User.id == user.id).for_update().execute()
    owned = PushSubscription.select().where(PushSubscription.user == user.id)
    if owned.where(PushSubscription.endpoint == endpoint).exists():
        return False
    return owned.count() >= limit


def remove(endpoint, user):
    """Delete ``user``'s own subscription to ``endpoint``; others' are untouched."""
    return (
        PushSubscription.delete()
        .where((PushSubscription.endpoint == endpoint) & (PushSubscription.user == user.id))
        .execute()
    )
