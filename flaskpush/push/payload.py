"""What a push carries: the JSON plaintext and its RFC 8291 encryption."""
import json

from pywebpush import WebPusher

MAX_ENCRYPTED_SIZE = 4096
MAX_BODY_CHARS = 120
# aes128gcm adds a header (16 salt + 4 record size + 1 key length + 65 key)
# and, to the one record a push fits in, a padding delimiter and a 16-byte tag.
ENCRYPTION_OVERHEAD = 86 + 1 + 16


class PayloadTooLarge(ValueError):
    """The payload would not fit in a push once encrypted; nothing was sent."""


def build_payload(title, body, **extra):
    """The contract's payload: ``title``, ``body`` cut to 120 characters, extras."""
    return {"title": title, "body": body[:MAX_BODY_CHARS], **extra}


def encode(payload):
    """The payload as compact UTF-8 JSON, refused here if it cannot fit."""
    plaintext = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    size = len(plaintext) + ENCRYPTION_OVERHEAD
    if size > MAX_ENCRYPTED_SIZE:
        raise PayloadTooLarge(
            f"push payload would be {size} bytes encrypted; the limit is {MAX_ENCRYPTED_SIZE}"
        )
    return plaintext


def encrypt(plaintext, p256dh, auth):
    """Encrypt for one subscription with a fresh ephemeral key (RFC 8291
    aes128gcm), by pywebpush's encoder; only the HTTP side is ours."""
    subscription = {"endpoint": "", "keys": {"p256dh": p256dh, "auth": auth}}
    return WebPusher(subscription).encode(plaintext, content_encoding="aes128gcm")["body"]
