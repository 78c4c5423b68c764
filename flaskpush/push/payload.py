"""What a push carries: the JSON plaintext and its RFC 8291 encryption."""
import json
import os

import http_ece
from cryptography.hazmat.primitives.asymmetric import ec

from .validation import decode_b64url

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
    """Encrypt for one subscription with a fresh ephemeral key (RFC 8291)."""
    return http_ece.encrypt(
        plaintext,
        salt=os.urandom(16),
        private_key=ec.generate_private_key(ec.SECP256R1()),
        dh=decode_b64url(p256dh),
        auth_secret=decode_b64url(auth),
        version="aes128gcm",
    )
