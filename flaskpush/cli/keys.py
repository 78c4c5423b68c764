"""``flask push keys``: show the VAPID public key, or replace the key pair."""
import os

import click
from flask import current_app

from ..db import write_transaction
from ..instance import new_vapid_pem
from ..models import PushSubscription
from ..vapid import VapidUnavailable, get_vapid, public_key_b64
from . import push
from .tables import plural

# Where the loaded key, and the VAPID headers signed with it, are kept per app.
CACHES = ("flaskpush.vapid", "flaskpush.vapid_headers")


def vapid_or_fail():
    """The server's VAPID key, or the error every command reports without one."""
    try:
        return get_vapid()
    except VapidUnavailable as exc:
        raise click.ClickException(
            f"VAPID keys not configured on this server ({exc}); "
            "`flask push keys --generate` creates them"
        ) from None


def write_key(path, pem):
    """Replace the key file in one rename, so no reader sees half a key."""
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def generate(force, revoke):
    """Write a new key pair at the configured path, after the warnings it needs."""
    path = current_app.config["VAPID_PRIVATE_KEY"]
    if os.path.exists(path) and not force:
        raise click.ClickException(
            f"a VAPID key already exists at {path}; replacing it makes every existing "
            "subscription stop working, so it takes --force"
        )
    count = PushSubscription.select().count()
    if count:
        click.echo(
            f"Warning: {plural(count, 'subscription')} made for the old key will stop "
            "working; those browsers must enable notifications again.",
            err=True,
        )
        if revoke is None:
            revoke = click.confirm("Revoke them now?", default=False, err=True)
    write_key(path, new_vapid_pem())
    for cache in CACHES:
        current_app.extensions.pop(cache, None)
    click.echo(f"Wrote a new VAPID key to {path}. Restart running servers to use it.", err=True)
    if count and revoke:
        with write_transaction():
            removed = PushSubscription.delete().execute()
        click.echo(f"Revoked {plural(removed, 'subscription')}.", err=True)


@push.command("keys")
@click.option("--generate", "new", is_flag=True, help="Create a new key pair at the VAPID_PRIVATE_KEY path first.")
@click.option("--force", is_flag=True, help="With --generate: replace an existing key.")
@click.option("--revoke/--keep", default=None,
              help="With --generate: remove (or keep) the old key's subscriptions instead of asking.")
def keys(new, force, revoke):
    """Print the VAPID public key, or make a new key pair with --generate.

    The key is printed in base64url, as browsers take it for
    applicationServerKey, and nothing else goes to standard output.

    --generate creates a key pair where VAPID_PRIVATE_KEY points. It refuses
    to replace an existing key without --force: push services reject pushes
    for subscriptions made with another key, so every existing subscription
    stops working. It offers to revoke those subscriptions.
    """
    if (force or revoke is not None) and not new:
        raise click.UsageError("--force, --revoke and --keep only go with --generate.")
    if new:
        generate(force, revoke)
    click.echo(public_key_b64(vapid_or_fail()))
