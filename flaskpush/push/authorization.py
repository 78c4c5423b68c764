"""VAPID ``Authorization`` headers (RFC 8292), one per push-service origin.

Signing is cheap but not free, and every push to one origin may carry the
same token, so each origin's header is signed once and reused until shortly
before its ``exp``. Claims are built fresh for each origin: a shared claims
dict (what pywebpush mutates) would carry one origin's ``aud`` to another.
"""
import threading
import time
from urllib.parse import urlsplit

LIFETIME = 12 * 3600  # push services refuse an exp more than 24 h ahead
RENEW_BEFORE = 3600  # never send a token that expires mid-flight


DEFAULT_PORTS = {"https": 443, "http": 80}


def origin_of(endpoint):
    """The ``aud`` for an endpoint: its origin as a browser writes it, with
    scheme and host in lower case and the port only when not the default."""
    parts = urlsplit(endpoint)
    netloc = parts.netloc.lower()
    if parts.port is not None and parts.port == DEFAULT_PORTS.get(parts.scheme):
        netloc = netloc.rsplit(":", 1)[0]
    return f"{parts.scheme}://{netloc}"


class HeaderCache:
    """Signed headers by origin for one VAPID key; safe to share between threads."""

    def __init__(self, vapid, subject):
        self.vapid = vapid
        self.subject = subject
        self._headers = {}  # origin -> (header, exp)
        self._lock = threading.Lock()

    def header(self, endpoint, now=None):
        """The ``Authorization`` value for ``endpoint``'s origin."""
        now = time.time() if now is None else now
        origin = origin_of(endpoint)
        cached = self._headers.get(origin)
        if cached is None or cached[1] - RENEW_BEFORE <= now:
            with self._lock:
                cached = self._sign(origin, int(now) + LIFETIME)
                self._headers[origin] = cached
        return cached[0]

    def _sign(self, origin, exp):
        claims = {"aud": origin, "exp": exp, "sub": self.subject}
        return self.vapid.sign(claims)["Authorization"], exp
