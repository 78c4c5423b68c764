"""``flask user ...``: accounts, for operators."""
import click
from peewee import IntegrityError, fn

from ..auth import check_password_rule, create_user
from ..db import write_transaction
from ..models import LoginSession, PushSubscription, User
from . import user
from .lookup import find_user
from .tables import echo_table, minute, plural

password_option = click.option(
    "--password", help="The new password; prompted for (hidden, twice) when omitted, "
    "which keeps it out of shell history."
)


def ask_password(password):
    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    return password


def count(model, owner):
    """A correlated ``SELECT COUNT(*)`` of ``model`` rows belonging to ``owner``."""
    return model.select(fn.COUNT(model.id)).where(model.user == owner.id)


@user.command("create")
@click.argument("name")
@password_option
def create(name, password):
    """Create the account NAME, active and ready to sign in."""
    if User.get_or_none(User.name == name) is not None:
        raise click.ClickException(f"a user named {name!r} already exists")
    try:
        create_user(name, ask_password(password))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    except IntegrityError:
        raise click.ClickException(f"a user named {name!r} already exists") from None
    click.echo(f"Created user {name}.")


@user.command("list")
def list_users():
    """List accounts with their push subscriptions and signed-in sessions."""
    query = User.select(
        User,
        count(PushSubscription, User).alias("subscriptions"),
        count(LoginSession, User).alias("sessions"),
    ).order_by(User.name)
    users = list(query)
    if not users:
        click.echo("No users.")
        return
    echo_table(
        ("NAME", "ACTIVE", "CREATED (UTC)", "SUBSCRIPTIONS", "SESSIONS"),
        [(u.name, "yes" if u.active else "no", minute(u.created_at), u.subscriptions, u.sessions)
         for u in users],
    )
    click.echo(plural(len(users), "user"))


@user.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def delete(name, yes):
    """Delete the account NAME with its sessions and push subscriptions."""
    account = find_user(name)
    subscriptions = plural(account.subscriptions.count(), "subscription")
    sessions = plural(account.login_sessions.count(), "session")
    if not yes:
        click.confirm(f"Delete user {name} with {subscriptions} and {sessions}?", abort=True, err=True)
    with write_transaction():
        User.delete().where(User.id == account.id).execute()  # the rest follows by ON DELETE CASCADE
    click.echo(f"Deleted user {name} ({subscriptions}, {sessions}).")


@user.command("set-password")
@click.argument("name")
@password_option
@click.option("--sign-out", is_flag=True,
              help="Also end every session of the user (and the subscriptions made through them).")
def set_password(name, password, sign_out):
    """Give the account NAME a new password.

    Sessions already signed in stay signed in unless --sign-out is given,
    which is what to do when the old password leaked.
    """
    account = find_user(name)
    password = ask_password(password)
    try:
        check_password_rule(password)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    account.set_password(password)
    with write_transaction():
        account.save()
        if sign_out:
            ended = LoginSession.delete().where(LoginSession.user == account.id).execute()
    click.echo(f"Changed the password of {name}.")
    if sign_out:
        click.echo(f"Ended {plural(ended, 'session')}.")


def set_active(name, active):
    account = find_user(name)
    with write_transaction():
        User.update(active=active).where(User.id == account.id).execute()
    state = "active" if active else "deactivated"
    click.echo(f"{name} was already {state}." if account.active == active else f"{name} is now {state}.")


@user.command("deactivate")
@click.argument("name")
def deactivate(name):
    """Stop the account NAME from signing in; its open sessions stop working
    at once. Its subscriptions stay (revoke them with `flask push revoke
    --user NAME`), and `activate` undoes this."""
    set_active(name, False)


@user.command("activate")
@click.argument("name")
def activate(name):
    """Let a deactivated account NAME sign in again; its sessions work again."""
    set_active(name, True)
