"""What delivery results do to subscription rows, a batch at a time.

A fan-out to thousands of subscriptions writes three statements per batch
(one each for sent, gone and failed), not one per subscription.
"""
from peewee import fn

from ..db import write_transaction
from ..models import PushSubscription as Sub, utcnow


def record(results):
    """Mark successes, delete the gone, count failures."""
    now = utcnow()
    ids = {"sent": [], "gone": [], "failed": []}
    for result in results:
        ids[result.outcome].append(result.subscription_id)
    with write_transaction():
        if ids["sent"]:
            Sub.update(last_success_at=now, failure_count=0, failing_since=None).where(
                Sub.id.in_(ids["sent"])
            ).execute()
        if ids["gone"]:
            Sub.delete().where(Sub.id.in_(ids["gone"])).execute()
        if ids["failed"]:
            Sub.update(
                failure_count=Sub.failure_count + 1,
                failing_since=fn.COALESCE(Sub.failing_since, now),
            ).where(Sub.id.in_(ids["failed"])).execute()
