"""The server's VAPID key (RFC 8292): loaded once per app, never generated here."""
import base64
import threading

from cryptography.hazmat.primitives import serialization
from flask import current_app
from py_vapid import Vapid

_lock = threading.Lock()


class VapidUnavailable(Exception):
    """The configured VAPID private key is missing or unreadable."""


def b64url(data):
    """Base64url without padding, the encoding Web Push uses for keys."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def public_key_b64(vapid):
    """The uncompressed P-256 point browsers pass as ``applicationServerKey``."""
    raw = vapid.public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return b64url(raw)


def read_key(path):
    """Read a PEM key from ``path``; ``Vapid.from_file`` would create a missing one."""
    try:
        with open(path, "rb") as f:
            return Vapid.from_pem(f.read())
    except (OSError, ValueError, TypeError) as exc:
        raise VapidUnavailable(f"cannot read VAPID key {path}: {exc}") from exc


def get_vapid(app=None):
    """The app's VAPID key, read on first use and kept for the app's life."""
    app = app or current_app._get_current_object()
    cached = app.extensions.get("flaskpush.vapid")
    if cached is None:
        with _lock:
            cached = app.extensions.get("flaskpush.vapid")
            if cached is None:
                cached = read_key(app.config["VAPID_PRIVATE_KEY"])
                app.extensions["flaskpush.vapid"] = cached
    return cached
