"""Limits against abuse: commands per socket, failed sign-ins per name and address.

The socket limit is a token bucket in the socket's own thread (a socket is
one connection, so process memory is the right place). Failed sign-ins are
counted in the database, so every worker on every host sees the same count.
"""
import time
from datetime import timedelta

from .models import LoginThrottle, utcnow


class TokenBucket:
    """``rate`` commands per second on average, bursts up to ``burst``."""

    def __init__(self, rate, burst):
        self.rate, self.burst = rate, burst
        self.tokens = burst
        self.stamp = time.monotonic()

    def allow(self):
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


def throttle_keys(username, address):
    return [f"user:{username.lower()}", f"addr:{address}"]


def sign_in_blocked_for(username, address):
    """Seconds until another attempt is allowed, or 0."""
    now = utcnow()
    rows = LoginThrottle.select().where(
        LoginThrottle.key.in_(throttle_keys(username, address)) & (LoginThrottle.locked_until > now)
    )
    waits = [(row.locked_until - now).total_seconds() for row in rows]
    return int(max(waits, default=0)) + (1 if waits else 0)


def record_failure(username, address, config):
    """Count one failed sign-in; lock the name or address at the limit."""
    now = utcnow()
    window = timedelta(seconds=config["LOGIN_FAILURE_WINDOW"])
    limits = {"user": config["LOGIN_MAX_FAILURES"], "addr": config["LOGIN_MAX_FAILURES_PER_ADDRESS"]}
    for key in throttle_keys(username, address):
        row, _ = LoginThrottle.get_or_create(key=key, defaults={"first_failure_at": now})
        if now - row.first_failure_at > window:
            row.failures, row.first_failure_at = 0, now
        row.failures += 1
        if row.failures >= limits[key.split(":", 1)[0]]:
            row.locked_until = now + timedelta(seconds=config["LOGIN_LOCKOUT"])
            row.failures, row.first_failure_at = 0, now
        row.save()


def clear_failures(username):
    LoginThrottle.delete().where(LoginThrottle.key == f"user:{username.lower()}").execute()
