"""What a valid push subscription is, checked before anything is stored.

The rules and the exact reasons are the contract's: an absent, null or empty
field is "missing"; a field of the wrong type or value is "invalid".
"""
import base64
import binascii
import ipaddress
import math
import re
import socket
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec

from ..commands import CommandError

MISSING = "subscription must include endpoint, keys.p256dh and keys.auth"
MAX_ENDPOINT_LENGTH = 2048
_B64URL = re.compile(r"[A-Za-z0-9_-]+={0,2}")
_URL_FORBIDDEN = re.compile(r"[\x00-\x20\x7f\\]")


@dataclass(frozen=True)
class Subscription:
    """A subscription that passed validation, with keys in canonical form."""

    endpoint: str
    p256dh: str
    auth: str
    expiration_time: datetime | None


def is_blank(value):
    return value is None or value == "" or value == {}


def decode_b64url(value):
    """Decode base64url with or without padding; None when it is not that."""
    if not isinstance(value, str) or not _B64URL.fullmatch(value):
        return None
    stripped = value.rstrip("=")
    try:
        return base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))
    except (binascii.Error, ValueError):
        return None


def is_p256_point(raw):
    """True for a 65-byte uncompressed point that lies on P-256."""
    if raw is None or len(raw) != 65 or raw[0] != 4:
        return False
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except ValueError:
        return False
    return True


def literal_ip(host):
    """The IP address a host name spells, in any form a resolver accepts
    (``127.1``, ``0x7f.0.0.1``, ``2130706433``, ``[::1]``), or None."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except (OSError, ValueError):
        return None


def is_public_address(address):
    """Loopback, private, link-local, unspecified and reserved addresses, and
    IPv4-mapped or 6to4 forms of them, are not public."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None and not is_public_address(embedded):
            return False
    return address.is_global and not address.is_multicast


def is_local_name(host):
    return host == "localhost" or host.endswith(".localhost")


def check_endpoint(endpoint, allow_insecure):
    """Raise "Invalid endpoint" unless ``endpoint`` may be stored."""
    if not isinstance(endpoint, str) or len(endpoint) > MAX_ENDPOINT_LENGTH:
        raise CommandError("Invalid endpoint")
    if _URL_FORBIDDEN.search(endpoint):
        raise CommandError("Invalid endpoint")
    try:
        parts = urlsplit(endpoint)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        raise CommandError("Invalid endpoint") from None
    schemes = ("https", "http") if allow_insecure else ("https",)
    host = (parts.hostname or "").rstrip(".")
    if parts.scheme not in schemes or not host or "@" in parts.netloc:
        raise CommandError("Invalid endpoint")
    if allow_insecure:
        return
    address = literal_ip(host)
    if is_local_name(host) or (address is not None and not is_public_address(address)):
        raise CommandError("Invalid endpoint")


def canonical_key(value, length_check):
    """The key re-encoded without padding, or "Invalid subscription keys"."""
    raw = decode_b64url(value)
    if raw is None or not length_check(raw):
        raise CommandError("Invalid subscription keys")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def parse_expiration(value):
    """``expirationTime`` is null or milliseconds since the epoch."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CommandError("Invalid expirationTime")
    try:
        moment = datetime.fromtimestamp(value / 1000, timezone.utc)
    except (OverflowError, OSError, ValueError):
        raise CommandError("Invalid expirationTime") from None
    return moment.replace(tzinfo=None)


def validate_subscription(subscription, allow_insecure=False):
    """Check a browser's ``PushSubscription.toJSON()`` and return it canonical."""
    if not isinstance(subscription, dict):
        raise CommandError("Missing subscription object")
    endpoint = subscription.get("endpoint")
    keys = subscription.get("keys")
    if is_blank(endpoint) or is_blank(keys):
        raise CommandError(MISSING)
    if isinstance(keys, dict) and (is_blank(keys.get("p256dh")) or is_blank(keys.get("auth"))):
        raise CommandError(MISSING)
    check_endpoint(endpoint, allow_insecure)
    if not isinstance(keys, dict):
        raise CommandError("Invalid subscription keys")
    return Subscription(
        endpoint=endpoint,
        p256dh=canonical_key(keys["p256dh"], is_p256_point),
        auth=canonical_key(keys["auth"], lambda raw: len(raw) == 16),
        expiration_time=parse_expiration(subscription.get("expirationTime")),
    )
