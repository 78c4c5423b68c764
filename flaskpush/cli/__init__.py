"""Operator commands: ``flask user ...`` and ``flask push ...``.

The two groups live here; each module below adds its commands to them.
"""
from flask import Blueprint

bp = Blueprint("cli", __name__, cli_group=None)


@bp.cli.group("user")
def user():
    """Manage accounts: create, list, delete, reset passwords, deactivate."""


@bp.cli.group("push")
def push():
    """Inspect, test and clean up push subscriptions and the VAPID key."""


from . import keys, send, subscriptions, users, worker  # noqa: E402,F401  (they fill the groups)


def init_app(app):
    app.register_blueprint(bp)
