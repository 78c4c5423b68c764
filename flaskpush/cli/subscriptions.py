"""``flask push list``, ``revoke`` and ``prune``: what is stored, and removing it."""
import json
from datetime import timedelta

import click
from flask import current_app

from ..db import write_transaction
from ..models import PushSubscription, iso_utc, utcnow
from . import push
from .lookup import find_user, select_subscriptions, selection_options, subscriptions
from .tables import describe, echo_table, minute, plural, short_endpoint

HEADERS = ("ID", "USER", "PUSH SERVICE", "ENDPOINT", "CREATED (UTC)", "LAST SUCCESS", "FAILURES")


def record(sub):
    """A subscription for scripts: every stored field but the keys, times in ISO 8601 UTC."""
    return {
        "id": sub.id,
        "user": sub.user.name,
        "endpoint": sub.endpoint,
        "created_at": iso_utc(sub.created_at),
        "updated_at": iso_utc(sub.updated_at),
        "expiration_time": iso_utc(sub.expiration_time),
        "last_success_at": iso_utc(sub.last_success_at),
        "failure_count": sub.failure_count,
        "failing_since": iso_utc(sub.failing_since),
        "user_agent": sub.user_agent,
    }


def row(sub):
    return (
        sub.id,
        sub.user.name,
        sub.push_service,
        short_endpoint(sub.endpoint),
        minute(sub.created_at),
        minute(sub.last_success_at) or "never",
        sub.failure_count,
    )


@push.command("list")
@click.option("--user", "username", metavar="NAME", help="Only this user's subscriptions.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array of full records, for scripts.")
def list_subscriptions(username, as_json):
    """List push subscriptions, oldest first.

    The table shows each subscription's id (what revoke and test-send take),
    its user, the push service that holds it, a shortened endpoint, when it
    was created, its last successful push and how many pushes failed since.
    """
    query = subscriptions()
    if username is not None:
        query = query.where(PushSubscription.user == find_user(username))
    rows = list(query)
    if as_json:
        click.echo(json.dumps([record(sub) for sub in rows], indent=2))
    elif not rows:
        click.echo(f"No subscriptions for {username}." if username else "No subscriptions.")
    else:
        echo_table(HEADERS, [row(sub) for sub in rows])
        click.echo(plural(len(rows), "subscription"))


def delete(rows, condition=True):
    """Delete ``rows`` (those still matching ``condition``); how many went."""
    with write_transaction():
        return (
            PushSubscription.delete()
            .where(PushSubscription.id.in_([sub.id for sub in rows]) & condition)
            .execute()
        )


@push.command("revoke")
@selection_options
@click.option("--yes", is_flag=True, help="Do not ask before removing several subscriptions.")
def revoke(ids, username, endpoint, yes):
    """Remove subscriptions by ID, by --user or by --endpoint.

    Picks the subscriptions with the given IDs, every one of --user, or the
    one with --endpoint. Those browsers get no more notifications until they enable them again.
    An ID, user or endpoint that matches nothing is an error and nothing at
    all is removed. Removing more than one subscription, or everything of a
    user, asks first unless --yes is given.
    """
    rows = select_subscriptions(ids, username, endpoint)
    if not yes and (len(rows) > 1 or username is not None):
        owner = f" of {username}" if username else ""
        click.confirm(f"Remove {plural(len(rows), 'subscription')}{owner}?", abort=True, err=True)
    removed = delete(rows)
    for sub in rows:
        click.echo(f"Removed {describe(sub)}")
    click.echo(f"Removed {plural(removed, 'subscription')}.")


@push.command("prune")
@click.option("--dry-run", is_flag=True, help="Only show what would be removed.")
def prune(dry_run):
    """Remove subscriptions that can no longer receive pushes.

    Those are the ones whose browser-given expiration time has passed and
    those whose pushes have been failing for longer than
    PUSH_PRUNE_FAILING_AFTER seconds (configuration; a week by default).
    Safe to run from cron.
    """
    now = utcnow()
    cutoff = now - timedelta(seconds=current_app.config["PUSH_PRUNE_FAILING_AFTER"])
    stale = (PushSubscription.expiration_time < now) | (PushSubscription.failing_since < cutoff)
    rows = list(subscriptions().where(stale))
    if not rows:
        click.echo("Nothing to prune.")
        return
    for sub in rows:
        if sub.expiration_time is not None and sub.expiration_time < now:
            reason = f"expired {minute(sub.expiration_time)} UTC"
        else:
            reason = f"failing since {minute(sub.failing_since)} UTC"
        click.echo(f"{'Would remove' if dry_run else 'Removed'} {describe(sub)} ({reason})")
    if dry_run:
        click.echo(f"Would remove {plural(len(rows), 'subscription')}; nothing was changed.")
    else:
        click.echo(f"Removed {plural(delete(rows, stale), 'subscription')}.")
