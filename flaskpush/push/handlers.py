"""The push commands of the wire protocol: the contract's three, and the
device list a user manages their browsers with."""
from flask import current_app

from ..commands import CommandError, CommandSet
from ..db import write_transaction
from ..models import PushSubscription, iso_utc
from ..vapid import VapidUnavailable, get_vapid, public_key_b64
from . import store
from .validation import validate_subscription

commands = CommandSet()
MAX_ID = 2**31 - 1  # ids are PostgreSQL integers; a larger one can name no row


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
        if store.would_exceed(client.user_id, subscription.endpoint, limit):
            raise CommandError(f"Too many subscriptions for this user (at most {limit})")
        if not store.save(subscription, client.user_id, client.session_id, client.user_agent):
            raise CommandError("Endpoint registered to another user")
    return {"cmd": "push_subscribed", "success": True}


@commands.command("push_unsubscribe", failure="Failed to remove subscription")
def push_unsubscribe(message, client):
    endpoint = message.get("endpoint")
    if endpoint is None or endpoint == "":
        raise CommandError("Missing endpoint")
    if isinstance(endpoint, str):
        with write_transaction():
            store.remove(endpoint, client.user_id)
    return {"cmd": "push_unsubscribed", "success": True}


def device(sub, current_endpoint):
    """A subscription as the page shows it: which browser, where, since when."""
    return {
        "id": sub.id,
        "push_service": sub.push_service,
        "user_agent": sub.user_agent,
        "created_at": iso_utc(sub.created_at),
        "last_success_at": iso_utc(sub.last_success_at),
        "current": sub.endpoint == current_endpoint,
    }


@commands.command("push_list_devices", failure="Failed to list devices")
def push_list_devices(message, client):
    """The caller's own subscriptions; ``endpoint``, if given, marks this browser's."""
    rows = PushSubscription.select().where(PushSubscription.user == client.user_id).order_by(PushSubscription.id)
    return {"cmd": "push_devices", "devices": [device(sub, message.get("endpoint")) for sub in rows]}


@commands.command("push_remove_device", failure="Failed to remove device")
def push_remove_device(message, client):
    """Like ``push_unsubscribe`` but by id, for another browser than this one:
    someone else's id answers success too and changes nothing."""
    device_id = message.get("id")
    if isinstance(device_id, bool) or not isinstance(device_id, int) or not 0 < device_id <= MAX_ID:
        raise CommandError("Invalid device id")
    with write_transaction():
        PushSubscription.delete().where(
            (PushSubscription.id == device_id) & (PushSubscription.user == client.user_id)
        ).execute()
    return {"cmd": "push_device_removed", "success": True}
