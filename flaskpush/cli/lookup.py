"""Turning what an operator typed into rows, or into an error that changes nothing."""
import click

from ..models import PushSubscription, User


def find_user(name):
    user = User.get_or_none(User.name == name)
    if user is None:
        raise click.ClickException(f"no user named {name!r}")
    return user


def subscriptions():
    """All subscriptions with their users, oldest first."""
    return PushSubscription.select(PushSubscription, User).join(User).order_by(PushSubscription.id)


SELECTORS = (
    click.argument("ids", metavar="[ID]...", nargs=-1, type=click.IntRange(min=1)),
    click.option("--user", "username", metavar="NAME", help="Every subscription of this user."),
    click.option("--endpoint", metavar="URL", help="The subscription with this exact endpoint."),
)


def selection_options(command):
    """``ID...``, ``--user NAME`` and ``--endpoint URL``: the three ways to pick
    subscriptions, shared by every command that acts on a selection."""
    for decorator in reversed(SELECTORS):
        command = decorator(command)
    return command


def select_subscriptions(ids, username, endpoint):
    """The rows picked by exactly one of the selectors, all of them or none.

    Any id, user or endpoint that matches nothing is an error, raised before
    the caller changes anything: a typo must not act on the rest.
    """
    if sum((bool(ids), username is not None, endpoint is not None)) != 1:
        raise click.UsageError("Pick subscriptions with IDs, --user NAME or --endpoint URL (exactly one).")
    if ids:
        rows = list(subscriptions().where(PushSubscription.id.in_(ids)))
        missing = sorted(set(ids) - {row.id for row in rows})
        if missing:
            raise click.ClickException(f"no subscription with id {', '.join(map(str, missing))}")
    elif username is not None:
        rows = list(subscriptions().where(PushSubscription.user == find_user(username)))
        if not rows:
            raise click.ClickException(f"user {username!r} has no subscriptions")
    else:
        rows = list(subscriptions().where(PushSubscription.endpoint == endpoint))
        if not rows:
            raise click.ClickException(f"no subscription with endpoint {endpoint}")
    return rows
