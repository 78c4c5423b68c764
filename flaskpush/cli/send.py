"""``flask push test-send``: a real push to chosen subscriptions, to check the whole path."""
import collections
import sys

import click

from ..push import delivery
from . import push
from .keys import vapid_or_fail
from .lookup import select_subscriptions, selection_options
from .tables import describe, plural

PROGRESS_FROM = 10  # subscriptions; fewer finish before a bar would be worth drawing
LABELS = {"sent": "sent", "gone": "removed as gone", "failed": "failed"}


def send_all(rows, payload, ttl):
    """``delivery.send``, with a progress bar on stderr for large selections."""
    if len(rows) < PROGRESS_FROM:
        return delivery.send(rows, payload, ttl=ttl)
    with click.progressbar(length=len(rows), label="Sending", file=sys.stderr) as bar:
        return delivery.send(rows, payload, ttl=ttl, progress=lambda result: bar.update(1))


def outcome(result):
    """``sent (201)``, ``removed as gone (410: ...)``, ``failed (500: ...)``."""
    detail = ": ".join(str(part) for part in (result.status, result.reason) if part)
    return f"{LABELS[result.outcome]} ({detail})" if detail else LABELS[result.outcome]


@push.command("test-send")
@selection_options
@click.option("--title", default="flaskpush test", show_default=True, help="Notification title.")
@click.option("--body", default="If you can read this, push notifications work.", show_default=True,
              help="Notification text (cut to its first 120 characters).")
@click.option("--url", help="Page a click on the notification opens (the service worker's default: /).")
@click.option("--ttl", type=click.IntRange(min=0), metavar="SECONDS",
              help="How long the push service keeps it for an offline browser (default PUSH_TTL).")
def test_send(ids, username, endpoint, title, body, url, ttl):
    """Send a real push to subscriptions and report what each one answered.

    Picks subscriptions by ID, every one of --user, or the one with
    --endpoint, and sends each an encrypted push through the delivery service.
    Prints what was sent, one result per subscription (sent, removed as gone
    when the push service says it no longer exists, or failed with the
    status and reason), then a summary. Exits 0 only when every selected
    subscription accepted the push, 1 otherwise, and 1 when nothing matched.
    """
    rows = select_subscriptions(ids, username, endpoint)
    vapid_or_fail()
    payload = delivery.build_payload(title, body, **({"url": url} if url else {}))
    try:
        results = {r.subscription_id: r for r in send_all(rows, payload, ttl)}
    except delivery.PayloadTooLarge as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Title: {payload['title']}")
    click.echo(f"Body: {payload['body']}")
    for sub in rows:
        click.echo(f"{describe(sub)}: {outcome(results[sub.id])}")
    counts = collections.Counter(r.outcome for r in results.values())
    summary = ", ".join(f"{counts[key]} {label}" for key, label in LABELS.items() if counts[key])
    click.echo(f"{plural(len(rows), 'subscription')}: {summary}.")
    if counts["sent"] != len(rows):
        click.get_current_context().exit(1)
