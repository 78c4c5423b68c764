"""When to try a push again, and how long to wait first.

429 and 503 say when (``Retry-After``); other 5xx answers and connection
errors get exponential backoff. Both stop at ``PUSH_MAX_ATTEMPTS`` and at
``PUSH_RETRY_BUDGET`` seconds of waiting, so one slow push service cannot
hold a fan-out open for long. Every other answer is final.
"""
import random
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

RETRY_LATER = (429, 503)


def retry_after_seconds(value, now=None):
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    return max(0.0, (moment - now).total_seconds())


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    budget: float
    backoff: float

    @classmethod
    def from_config(cls, config):
        return cls(
            max_attempts=int(config["PUSH_MAX_ATTEMPTS"]),
            budget=float(config["PUSH_RETRY_BUDGET"]),
            backoff=float(config["PUSH_BACKOFF"]),
        )

    def delay(self, answer, attempts, waited):
        """Seconds to wait before attempt ``attempts + 1``, or None to stop."""
        if answer.refused or attempts >= self.max_attempts:
            return None
        if answer.status in RETRY_LATER:
            wait = retry_after_seconds(answer.retry_after)
            if wait is None:
                wait = self.backoff_delay(attempts)
        elif answer.status is None or answer.status >= 500:
            wait = self.backoff_delay(attempts)
        else:
            return None
        return wait if waited + wait <= self.budget else None

    def backoff_delay(self, attempts):
        """Doubling, with jitter so retries to one service do not arrive together."""
        return self.backoff * 2 ** (attempts - 1) * random.uniform(0.5, 1.0)
