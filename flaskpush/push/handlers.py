"""The three push commands of the wire protocol."""
from flask import current_app

from ..commands import CommandError, CommandSet
from ..db import write_transaction
from ..vapid import VapidUnavailable, get_vapid, public_key_b64
from . import store
from .validation import validate_subscription

commands = CommandSet()


@commands.command(
    "push_get_vapid",
    login_required=False,
    failure="VAPID keys not configured on this server",
)
def push_get_vapid(message, client):
    """The public key is public: anyone may ask, to call ``PushManager.subscribe``."""
    try:
        key = public_key_b64(get_vapid())
    except VapidUnavailable:
        current_app.logger.exception("VAPID key unavailable")
        raise CommandError("VAPID keys not configured on this server") from None
    return {"cmd": "push_vapid", "key": key}


@commands.command("push_subscribe", failure="Failed to save subscription")
def push_subscribe(message, client):
    if "subscription" not in message or not isinstance(message["subscription"], dict):
        raise CommandError("Missing subscription object")
    subscription = validate_subscription(
        message["subscription"], current_app.config["ALLOW_INSECURE_ENDPOINTS"]
    )
    limit = current_app.config["MAX_SUBSCRIPTIONS_PER_USER"]
    with write_transaction():
        if store.would_exceed(client.user, subscription.endpoint, limit):
            raise CommandError(f"Too many subscriptions for this user (at most {limit})")
        if not store.save(subscription, client.user, client.user_agent):
            raise CommandError("Endpoint registered to another user")
    return {"cmd": "push_subscribed", "success": True}


@commands.command("push_unsubscribe", failure="Failed to remove subscription")
def push_unsubscribe(message, client):
    endpoint = message.get("endpoint")
    if endpoint is None or endpoint == "":
        raise CommandError("Missing endpoint")
    if isinstance(endpoint, str):
        with write_transaction():
            store.remove(endpoint, client.user)
    return {"cmd": "push_unsubscribed", "success": True}
