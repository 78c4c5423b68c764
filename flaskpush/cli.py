"""Operator commands: ``flask user ...`` and ``flask push ...``."""
import json

import click
from flask import Blueprint
from peewee import IntegrityError

from .auth import create_user
from .models import PushSubscription, User, iso_utc
from .vapid import VapidUnavailable, get_vapid, public_key_b64

bp = Blueprint("cli", __name__, cli_group=None)


@bp.cli.group("user")
def user_group():
    """Manage accounts."""


@user_group.command("create")
@click.argument("name")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
              help="The password (prompted for, hidden, when omitted).")
def user_create(name, password):
    """Create the account NAME."""
    try:
        create_user(name, password)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    except IntegrityError:
        raise click.ClickException(f"a user named {name!r} already exists") from None
    click.echo(f"Created user {name}.")


@bp.cli.group("push")
def push_group():
    """Inspect and manage push subscriptions."""


@push_group.command("keys")
def push_keys():
    """Print the VAPID public key (base64url), as browsers need it."""
    try:
        click.echo(public_key_b64(get_vapid()))
    except VapidUnavailable as exc:
        raise click.ClickException(str(exc)) from None


def find_user(name):
    user = User.get_or_none(User.name == name)
    if user is None:
        raise click.BadParameter(f"no user named {name!r}", param_hint="--user")
    return user


def subscription_record(sub):
    return {
        "id": sub.id,
        "user": sub.user.name,
        "endpoint": sub.endpoint,
        "created_at": iso_utc(sub.created_at),
        "updated_at": iso_utc(sub.updated_at),
        "expiration_time": iso_utc(sub.expiration_time),
        "last_success_at": iso_utc(sub.last_success_at),
        "failure_count": sub.failure_count,
        "user_agent": sub.user_agent,
    }


@push_group.command("list")
@click.option("--user", "username", help="Only this user's subscriptions.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array for scripts.")
def push_list(username, as_json):
    """List push subscriptions."""
    query = PushSubscription.select(PushSubscription, User).join(User).order_by(PushSubscription.id)
    if username is not None:
        query = query.where(PushSubscription.user == find_user(username))
    records = [subscription_record(sub) for sub in query]
    if as_json:
        click.echo(json.dumps(records, indent=2))
        return
    for r in records:
        click.echo(f"{r['id']:>6}  {r['user']:<20}  {r['created_at']}  {r['endpoint']}")
    click.echo(f"{len(records)} subscription(s)")


def init_app(app):
    app.register_blueprint(bp)
